//! Leader election: of several replicas, the one holding a lease in DynamoDB applies
//! changes; the others plan and serve `/status` as standby, and take over when the lease
//! expires.
//!
//! The lease is one item `{name, holder, token, expiresAt}` in a table keyed by `name`
//! (string). Every write is conditional on what was read, so two replicas cannot both win
//! a takeover. The token (the fencing token) grows by one on every change of holder.
//!
//! A leader only applies while its lease is valid by its *own monotonic clock*: it counts
//! the lease from the moment it sent the write that won it, minus a safety margin for
//! clock skew between replicas. A leader that was paused (GC, a stopped container, a
//! network partition) longer than that finds its lease expired when it wakes, before it
//! applies anything, and must win it back with a conditional write that fails if another
//! replica has taken over meanwhile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use tracing::{info, warn};

use crate::aws::{AwsError, ErrorCategory};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The DynamoDB table (partition key `name`, a string).
    pub table: String,
    /// The lease's name (one per managed stack).
    pub name: String,
    /// Who this replica is (pod or task name).
    pub holder: String,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
    /// Where the other replicas reach this one's HTTP server (`http://10.0.1.7:8080`),
    /// stored in the lease while this replica holds it, so that a standby forwards
    /// `POST /reconcile` to the leader.
    pub url: Option<String>,
}

impl LeaseConfig {
    /// How often the holder renews (and standbys try to take over): a third of the lease.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// Time subtracted from the lease for clock skew between replicas.
    pub fn margin(&self) -> Duration {
        self.duration / 5
    }
}

/// The lease item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Who holds it.
    pub holder: String,
    /// The fencing token.
    pub token: u64,
    /// Wall-clock expiry, milliseconds since the epoch.
    pub expires_at_ms: u64,
    /// The holder's HTTP server, as it advertised it.
    pub url: Option<String>,
}

/// What to do after reading the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it: create it with token 1.
    Create,
    /// We hold it: extend it, keeping the token.
    Renew {
        /// Our token.
        token: u64,
    },
    /// It expired: take it over with the next token.
    TakeOver {
        /// The expired holder's token.
        token: u64,
    },
    /// Someone else holds a valid lease.
    Standby {
        /// The leader.
        holder: String,
    },
}

/// The pure part of the protocol.
pub fn decide(item: Option<&Item>, me: &str, now_ms: u64) -> Decision {
    match item {
        None => Decision::Create,
        Some(i) if i.holder == me => Decision::Renew { token: i.token },
        Some(i) if i.expires_at_ms <= now_ms => Decision::TakeOver { token: i.token },
        Some(i) => Decision::Standby {
            holder: i.holder.clone(),
        },
    }
}

/// What this replica knows about leadership, for `/status`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leadership {
    /// True while this replica may apply.
    pub leader: bool,
    /// Who holds the lease, as last read.
    pub holder: Option<String>,
    /// Our fencing token while we lead.
    pub token: Option<u64>,
    /// How many times this replica became leader.
    pub acquisitions: u64,
    /// Where the leader's HTTP server is, as its lease says, while another replica leads:
    /// a `POST /reconcile` reaching this standby is forwarded there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_url: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    token: Option<u64>,
    /// Until when we may apply, by our monotonic clock.
    valid_until: Option<Instant>,
    holder: Option<String>,
    /// The holder's URL, as last read.
    holder_url: Option<String>,
    acquisitions: u64,
}

/// One replica's view of the lease, shared by the loop (which asks before applying) and
/// the renewal task.
#[derive(Clone)]
pub struct Lease {
    config: LeaseConfig,
    client: aws_sdk_dynamodb::Client,
    state: Arc<Mutex<State>>,
    /// One refresh at a time (the loop and the renewal task both refresh): two racing
    /// conditional writes of the same replica would make it lose to itself.
    busy: Arc<tokio::sync::Mutex<()>>,
    /// Set by [`Lease::release`]: no refresh takes the lease back afterwards.
    released: Arc<std::sync::atomic::AtomicBool>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl Lease {
    /// A lease handle; nothing is read or written yet.
    pub fn new(config: LeaseConfig, client: aws_sdk_dynamodb::Client) -> Lease {
        Lease {
            config,
            client,
            state: Arc::default(),
            busy: Arc::default(),
            released: Arc::default(),
        }
    }

    /// How often to renew.
    pub fn renew_every(&self) -> Duration {
        self.config.renew_every()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while this replica holds a valid lease by its own clock: the check before
    /// every apply.
    pub fn is_leader(&self) -> bool {
        self.state()
            .valid_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// The fencing token while leading.
    pub fn token(&self) -> Option<u64> {
        self.is_leader().then(|| self.state().token).flatten()
    }

    /// For `/status`.
    pub fn leadership(&self) -> Leadership {
        let leader = self.is_leader();
        let s = self.state();
        let other = s.holder.as_deref() != Some(self.config.holder.as_str());
        Leadership {
            leader,
            holder: s.holder.clone(),
            token: if leader { s.token } else { None },
            acquisitions: s.acquisitions,
            leader_url: s.holder_url.clone().filter(|_| !leader && other),
        }
    }

    /// Reads the lease and renews, creates or takes it over as [`decide`] says. Returns
    /// whether this replica leads afterwards.
    ///
    /// A refresh that fails (DynamoDB unreachable, throttled, denied) ends leadership at
    /// once: a replica that cannot prove it holds the lease stops writing and says
    /// `leader: false`, rather than writing on until its lease runs out.
    pub async fn refresh(&self) -> Result<bool, AwsError> {
        let _one = self.busy.lock().await;
        let result = self.refresh_once().await;
        if result.is_err() {
            let mut s = self.state();
            if s.valid_until.take().is_some() {
                warn!("cannot renew the lease: not leading until it is renewed");
            }
            s.token = None;
        }
        result
    }

    /// A write guard for [`crate::aws::Fence`]: true while this replica holds a valid
    /// lease, checked again before every write.
    pub fn may_write(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let lease = self.clone();
        move || lease.is_leader()
    }

    async fn refresh_once(&self) -> Result<bool, AwsError> {
        if self.released.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(false);
        }
        let me = self.config.holder.clone();
        let item = self.read().await?;
        let sent = Instant::now();
        let now = now_ms();
        let expires = now + u64::try_from(self.config.duration.as_millis()).unwrap_or(u64::MAX);
        let decision = decide(item.as_ref(), &me, now);
        let won = match &decision {
            Decision::Standby { holder } => {
                let mut s = self.state();
                s.valid_until = None;
                s.token = None;
                s.holder = Some(holder.clone());
                s.holder_url = item.as_ref().and_then(|i| i.url.clone());
                return Ok(false);
            }
            Decision::Create => self.write(None, 1, expires, now).await?.then_some(1),
            Decision::Renew { token } => self
                .write(Some((&me, *token, None)), *token, expires, now)
                .await?
                .then_some(*token),
            Decision::TakeOver { token } => {
                // Also conditional on the expiry as read: a holder that renewed in the
                // meantime keeps its lease.
                let (holder, old_expiry) = item
                    .as_ref()
                    .map(|i| (i.holder.clone(), i.expires_at_ms))
                    .unwrap_or_default();
                self.write(
                    Some((&holder, *token, Some(old_expiry))),
                    token + 1,
                    expires,
                    now,
                )
                .await?
                .then_some(token + 1)
            }
        };
        let mut s = self.state();
        match won {
            Some(token) => {
                let was_leader = s.valid_until.is_some_and(|u| Instant::now() < u);
                if !was_leader || s.token != Some(token) {
                    s.acquisitions += 1;
                    info!(token, holder = %me, "acquired the lease: leading");
                }
                s.token = Some(token);
                s.holder = Some(me);
                s.holder_url = self.config.url.clone();
                s.valid_until =
                    Some(sent + self.config.duration.saturating_sub(self.config.margin()));
                Ok(true)
            }
            None => {
                if s.valid_until.is_some() {
                    warn!("lost the lease: standing by");
                }
                s.valid_until = None;
                s.token = None;
                Ok(false)
            }
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once.
    pub async fn release(&self) {
        let _one = self.busy.lock().await;
        self.released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let token = self.state().token;
        if let Some(token) = token {
            let me = self.config.holder.clone();
            let _ = self.write(Some((&me, token, None)), token, 0, 0).await;
            let mut s = self.state();
            s.valid_until = None;
            s.token = None;
        }
    }

    /// A missing table, said plainly.
    fn table_error(&self, e: AwsError) -> AwsError {
        if e.category == ErrorCategory::NotFound {
            AwsError {
                message: format!(
                    "the lease table {} does not exist (it needs the partition key `name`, a string): {}",
                    self.config.table, e.message
                ),
                ..e
            }
        } else {
            e
        }
    }

    async fn read(&self) -> Result<Option<Item>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .key("name", AttributeValue::S(self.config.name.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.table_error(AwsError::from_sdk("dynamodb:GetItem", e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let n = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Ok(Some(Item {
            holder: s("holder").unwrap_or_default(),
            token: n("token").unwrap_or_default(),
            expires_at_ms: n("expiresAt").unwrap_or_default(),
            // Anyone who can write the table can write this: followed only when it is what
            // `--advertise-url` accepts (scheme, host and port), never a path or query.
            url: s("url").and_then(|u| crate::webhook::parse_advertise_url(&u).ok()),
        }))
    }

    /// Writes the lease if it is still as read: `expected` is (holder, token, expiry when
    /// it matters) as read, or `None` when there was no item. False when another replica
    /// got there first.
    async fn write(
        &self,
        expected: Option<(&str, u64, Option<u64>)>,
        token: u64,
        expires_at_ms: u64,
        now: u64,
    ) -> Result<bool, AwsError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .item("name", AttributeValue::S(self.config.name.clone()))
            .item("holder", AttributeValue::S(self.config.holder.clone()))
            .item("token", AttributeValue::N(token.to_string()))
            .item("expiresAt", AttributeValue::N(expires_at_ms.to_string()));
        if let Some(url) = &self.config.url {
            put = put.item("url", AttributeValue::S(url.clone()));
        }
        if expires_at_ms == 0 {
            // Releasing: leave the lease expired but keep the token for the next holder.
            put = put.item("releasedAt", AttributeValue::N(now.to_string()));
        }
        put = match expected {
            None => put.condition_expression("attribute_not_exists(#n)"),
            Some((holder, old, expiry)) => {
                let put = put
                    .expression_attribute_names("#h", "holder")
                    .expression_attribute_names("#t", "token")
                    .expression_attribute_values(":holder", AttributeValue::S(holder.to_string()))
                    .expression_attribute_values(":token", AttributeValue::N(old.to_string()));
                match expiry {
                    None => put.condition_expression("#h = :holder AND #t = :token"),
                    Some(e) => put
                        .condition_expression("#h = :holder AND #t = :token AND #e = :expires")
                        .expression_attribute_names("#e", "expiresAt")
                        .expression_attribute_values(":expires", AttributeValue::N(e.to_string())),
                }
            }
        };
        if expected.is_none() {
            put = put.expression_attribute_names("#n", "name");
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from_sdk("dynamodb:PutItem", e);
                if e.code.as_deref() == Some("ConditionalCheckFailedException") {
                    Ok(false)
                } else {
                    Err(self.table_error(e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(holder: &str, token: u64, expires: u64) -> Item {
        Item {
            holder: holder.into(),
            token,
            expires_at_ms: expires,
            url: None,
        }
    }

    #[test]
    fn expiry_renewal_and_takeover_follow_the_item() {
        assert_eq!(decide(None, "a", 100), Decision::Create);
        assert_eq!(
            decide(Some(&item("a", 3, 50)), "a", 100),
            Decision::Renew { token: 3 },
            "our own lease is renewed even when it has just expired"
        );
        assert_eq!(
            decide(Some(&item("b", 3, 200)), "a", 100),
            Decision::Standby { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&item("b", 3, 100)), "a", 100),
            Decision::TakeOver { token: 3 },
            "expiry is inclusive"
        );
    }

    #[test]
    fn a_paused_leader_stops_applying_when_its_own_clock_says_so() {
        let lease = Lease::new(
            LeaseConfig {
                table: "t".into(),
                name: "mooring".into(),
                holder: "a".into(),
                duration: Duration::from_millis(100),
                url: None,
            },
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::Config::builder()
                    .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                    .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
                    .build(),
            ),
        );
        {
            let mut s = lease.state();
            s.token = Some(7);
            s.valid_until = Some(Instant::now() + Duration::from_millis(30));
        }
        assert!(lease.is_leader());
        assert_eq!(lease.token(), Some(7));
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            !lease.is_leader(),
            "no apply after the lease ran out locally"
        );
        assert_eq!(lease.token(), None, "no fencing token to apply with");
        let config = LeaseConfig {
            table: "t".into(),
            name: "n".into(),
            holder: "a".into(),
            duration: Duration::from_secs(15),
            url: None,
        };
        assert_eq!(config.renew_every(), Duration::from_secs(5));
        assert_eq!(config.margin(), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_failed_renewal_ends_leadership_at_once() {
        // A port nothing listens on: DynamoDB is unreachable.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
                .endpoint_url(format!("http://127.0.0.1:{port}"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
                .http_client(crate::aws::http_client())
                .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
                .build(),
        );
        let lease = Lease::new(
            LeaseConfig {
                table: "t".into(),
                name: "mooring".into(),
                holder: "a".into(),
                duration: Duration::from_secs(60),
                url: None,
            },
            client,
        );
        {
            let mut s = lease.state();
            s.token = Some(4);
            s.valid_until = Some(Instant::now() + Duration::from_secs(60));
        }
        let fence = crate::aws::Fence::default();
        fence.guard_with(lease.may_write());
        assert!(lease.is_leader() && fence.allows_writes());
        let e = lease.refresh().await.unwrap_err();
        assert_eq!(e.category, ErrorCategory::Transient, "{e}");
        assert!(
            !lease.is_leader(),
            "a replica that cannot renew does not lead, though its lease has 60 s left"
        );
        assert!(!fence.allows_writes(), "and its writes are fenced");
        assert!(!lease.leadership().leader);
        assert_eq!(lease.token(), None);
    }
}
