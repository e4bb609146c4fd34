//! The git-push webhook's way to the leader.
//!
//! With leader election, a Service (or load balancer) in front of the replicas sends a
//! `POST /reconcile` to any of them. Only the leader applies, so a standby that receives
//! one (signature checked) forwards it to the leader, at the URL the leader wrote into the
//! lease (`--advertise-url`). The forwarded request carries the same body and the same
//! signature, so the leader checks it again, plus [`FORWARDED_HEADER`], so it is
//! forwarded at most once: a replica never forwards a forwarded request, whatever its
//! lease says (two replicas that each think the other leads cannot bounce it).
//!
//! Why forward rather than route: a Service that selects only the leader needs the leader
//! to label its own pod through the Kubernetes API (RBAC, a client, and a window after
//! each handover where the label is wrong), and means nothing on ECS. The lease already
//! says who leads; forwarding reads it.

use std::time::Duration;

/// Marks a forwarded request; its value is the forwarding replica's view of the leader.
pub const FORWARDED_HEADER: &str = "x-mooring-forwarded";

/// Longest a forward may take (the webhook caller waits for it).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks an advertised URL: `http://` or `https://`, a host, no path, query or
/// credentials. Returns it without a trailing `/`.
pub fn parse_advertise_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("`{url}` is not an http:// or https:// URL (e.g. http://10.0.1.7:8080)")
        })?;
    if rest.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
        return Err(format!(
            "`{url}` must be only scheme, host and port (no path, query or credentials)"
        ));
    }
    // An IPv6 pod address dropped into `http://$(POD_IP):8080` (the chart) comes without
    // brackets: `http://fd00::1:8080` is put in them, `http://[fd00::1]:8080`.
    if !rest.starts_with('[') && rest.matches(':').count() > 1 {
        let scheme = &trimmed[..trimmed.len() - rest.len()];
        return match rest.rsplit_once(':') {
            Some((host, port))
                if !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && host.parse::<std::net::Ipv6Addr>().is_ok() =>
            {
                Ok(format!("{scheme}[{host}]:{port}"))
            }
            _ => Err(format!(
                "`{url}` has an IPv6 address without brackets and port (e.g. http://[fd00::1]:8080)"
            )),
        };
    }
    Ok(trimmed.to_string())
}

/// POSTs a verified webhook `body` with its `signature` to `leader_url` + `/reconcile`.
/// Returns the leader's status code; a connection failure or timeout is an error.
pub async fn forward_reconcile(
    leader_url: &str,
    body: Vec<u8>,
    signature: String,
    via: String,
) -> Result<u16, String> {
    let url = format!("{}/reconcile", leader_url.trim_end_matches('/'));
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(FORWARD_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        agent
            .post(&url)
            .header("x-hub-signature-256", &signature)
            .header(FORWARDED_HEADER, &via)
            .header("content-type", "application/json")
            .send(&body[..])
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("failed to forward to the leader at {url}: {e}"))
    })
    .await
    .map_err(|e| format!("failed to forward to the leader: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_urls_are_scheme_host_and_port_only() {
        assert_eq!(
            parse_advertise_url("http://10.0.1.7:8080/").unwrap(),
            "http://10.0.1.7:8080"
        );
        assert_eq!(
            parse_advertise_url("https://mooring-0.mooring:8443").unwrap(),
            "https://mooring-0.mooring:8443"
        );
        for bad in [
            "10.0.1.7:8080",
            "ftp://host",
            "http://",
            "http://host/reconcile",
            "http://user:pw@host",
            "http://host?x=1",
        ] {
            assert!(parse_advertise_url(bad).is_err(), "{bad} accepted");
        }
    }

    /// The chart advertises `http://$(POD_IP):8080`; on an IPv6 cluster that is
    /// `http://fd00::1:8080`, which no HTTP client can reach. It is bracketed.
    #[test]
    fn an_ipv6_pod_address_is_bracketed() {
        assert!(
            "http://fd00:10:244::7:8080/reconcile"
                .parse::<axum::http::Uri>()
                .is_err(),
            "unbracketed, it is no URL"
        );
        let url = parse_advertise_url("http://fd00:10:244::7:8080").unwrap();
        assert_eq!(url, "http://[fd00:10:244::7]:8080");
        assert!(
            format!("{url}/reconcile")
                .parse::<axum::http::Uri>()
                .is_ok()
        );
        assert_eq!(
            parse_advertise_url("https://[fd00::1]:8443").unwrap(),
            "https://[fd00::1]:8443"
        );
        assert!(parse_advertise_url("http://not:an:address").is_err());
    }
}
