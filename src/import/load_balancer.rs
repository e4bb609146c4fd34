//! The load balancers whose listeners forward to the imported target groups
//! (`load-balancers.yaml`). Only listeners whose default action the manifest can express
//! are written, with their rules when every rule can be written (a listener that declares
//! `rules:` owns them all); otherwise without `rules:`, which keeps its rules as they are.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum};
use serde_json::{Value, json};

use super::target_group::TargetGroup;
use super::{Ctx, Imported, Names, read_failed, user_tags};
use crate::kinds::load_balancer::spec::DEFAULT_SSL_POLICY;

/// An imported load balancer.
pub(crate) struct LoadBalancer {
    /// Its manifest.
    pub doc: Imported,
    /// The target groups (ARNs) its written listeners forward to.
    pub forwards: Vec<String>,
}

/// The tags of ELBv2 resources, by ARN (20 per call).
pub(crate) async fn tags(
    cx: &Ctx<'_>,
    arns: &[String],
) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let page = cx
            .aws
            .elbv2
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| read_failed("tags", "elasticloadbalancing:DescribeTags", e))?;
        for d in page.tag_descriptions() {
            let t = d
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect();
            out.insert(d.resource_arn().unwrap_or_default().to_string(), t);
        }
    }
    Ok(out)
}

/// A default action as the manifest writes it, and the target group it forwards to.
fn action(
    a: &Action,
    tgs: &BTreeMap<String, TargetGroup>,
) -> Result<(Value, Option<String>), String> {
    match a.r#type() {
        Some(ActionTypeEnum::Forward) => {
            let groups: Vec<&str> = a
                .forward_config()
                .map(|c| {
                    c.target_groups()
                        .iter()
                        .filter_map(|t| t.target_group_arn())
                        .collect()
                })
                .unwrap_or_default();
            let sticky = a
                .forward_config()
                .and_then(|c| c.target_group_stickiness_config())
                .is_some_and(|s| s.enabled() == Some(true));
            let arn = a.target_group_arn().or(match groups.as_slice() {
                [one] => Some(*one),
                _ => None,
            });
            match arn {
                Some(arn) if !sticky && groups.len() <= 1 => match tgs.get(arn) {
                    Some(tg) => Ok((json!({"forward": tg.doc.name}), Some(arn.to_string()))),
                    None => Err(format!("forwards to {arn}, which no imported service uses")),
                },
                _ => Err("forwards to several target groups".into()),
            }
        }
        Some(ActionTypeEnum::Redirect) => {
            let c = a
                .redirect_config()
                .ok_or("a redirect without its settings")?;
            // Written even when it is the default: `redirect: {protocol: HTTPS}` says what
            // the listener does (and an empty map would read as nothing).
            let protocol = match c.protocol() {
                Some("HTTPS") | None => "HTTPS",
                Some("HTTP") => "HTTP",
                Some(other) => return Err(format!("redirects with protocol `{other}`")),
            };
            let port = match c.port() {
                Some("443") => None,
                Some(p) => Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("redirects to port `{p}`"))?,
                ),
                None => return Err("redirects to the request's port".into()),
            };
            let keep =
                |v: Option<&str>, default: &str| v.filter(|v| *v != default).map(str::to_string);
            let status = c.status_code().map_or("HTTP_301", |s| s.as_str());
            Ok((
                json!({"redirect": {
                    "protocol": protocol,
                    "port": port,
                    "host": keep(c.host(), "#{host}"),
                    "path": keep(c.path(), "/#{path}"),
                    "query": keep(c.query(), "#{query}"),
                    "statusCode": (status != "HTTP_301").then_some(status),
                }}),
                None,
            ))
        }
        Some(ActionTypeEnum::FixedResponse) => {
            let c = a
                .fixed_response_config()
                .ok_or("a fixed response without its settings")?;
            let code: u16 = c
                .status_code()
                .and_then(|s| s.parse().ok())
                .ok_or("an unknown status code")?;
            Ok((
                json!({"fixedResponse": {
                    "statusCode": code,
                    "contentType": c.content_type().filter(|t| *t != "text/plain"),
                    "messageBody": c.message_body().filter(|b| !b.is_empty()),
                }}),
                None,
            ))
        }
        other => Err(format!(
            "a `{}` action",
            other.map_or("(none)", |t| t.as_str())
        )),
    }
}

/// A listener's rules as the manifest writes them, and the target groups they forward to;
/// `Err` (why) when one of them cannot be written, so the listener keeps its rules unowned.
async fn rules(
    cx: &Ctx<'_>,
    listener_arn: &str,
    tgs: &BTreeMap<String, TargetGroup>,
) -> Result<Result<(Vec<Value>, Vec<String>), String>, String> {
    let live: Vec<_> = cx
        .aws
        .elbv2
        .describe_rules()
        .listener_arn(listener_arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| {
            read_failed(
                format!("the rules of {listener_arn}"),
                "elasticloadbalancing:DescribeRules",
                e,
            )
        })?;
    let docs = crate::kinds::load_balancer::rules::live_rules(&live);
    let mut out = Vec::new();
    let mut forwards = Vec::new();
    let mut sorted: Vec<_> = live
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .filter_map(|r| Some((r.priority()?.parse::<u32>().ok()?, r)))
        .collect();
    sorted.sort_by_key(|(p, _)| *p);
    for (priority, r) in sorted {
        let Some(doc) = docs.get(&priority) else {
            continue;
        };
        let c = &doc.conditions;
        if !c.other.is_empty() {
            return Ok(Err(format!(
                "rule {priority} matches on {}",
                c.other.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let Some(a) = r.actions().first() else {
            return Ok(Err(format!("rule {priority} has no action")));
        };
        let (action, forward) = match action(a, tgs) {
            Ok(x) => x,
            Err(why) => return Ok(Err(format!("rule {priority}'s action {why}"))),
        };
        forwards.extend(forward);
        out.push(json!({
            "priority": priority,
            "conditions": {
                "pathPatterns": c.path_patterns,
                "hostHeaders": c.host_headers,
                "httpHeaders": c.http_headers.iter().map(|(n, v)| json!({"name": n, "values": v})).collect::<Vec<_>>(),
                "queryStrings": c.query_strings,
            },
            "action": action,
        }));
    }
    Ok(Ok((out, forwards)))
}

/// Reads the load balancers of the imported target groups.
pub(crate) async fn read(
    cx: &Ctx<'_>,
    tgs: &BTreeMap<String, TargetGroup>,
    names: &mut Names,
) -> Result<Vec<LoadBalancer>, String> {
    let arns: BTreeSet<String> = tgs
        .values()
        .flat_map(|t| t.load_balancers.iter().cloned())
        .collect();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let elb = &cx.aws.elbv2;
    let list: Vec<String> = arns.into_iter().collect();
    let mut lbs = Vec::new();
    for chunk in list.chunks(20) {
        let page = elb
            .describe_load_balancers()
            .set_load_balancer_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| {
                read_failed(
                    "load balancers",
                    "elasticloadbalancing:DescribeLoadBalancers",
                    e,
                )
            })?;
        lbs.extend(page.load_balancers().iter().cloned());
    }
    lbs.sort_by(|a, b| a.load_balancer_name().cmp(&b.load_balancer_name()));
    let tags = tags(cx, &list).await?;
    let mut out = Vec::new();
    for lb in lbs {
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        if lb.r#type().map(|t| t.as_str()) != Some("application") {
            continue; // NLBs and others: their target groups are named by ARN
        }
        let live_tags = || {
            tags.get(&arn)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str()))
        };
        if names.refuse("load balancer", &arn, live_tags()) {
            continue; // its target groups are named by ARN
        }
        let mut listeners: Vec<_> = elb
            .describe_listeners()
            .load_balancer_arn(&arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| {
                read_failed(
                    format!("the listeners of {arn}"),
                    "elasticloadbalancing:DescribeListeners",
                    e,
                )
            })?;
        listeners.sort_by_key(|l| l.port());
        let mut written = Vec::new();
        let mut forwards = Vec::new();
        let mut notes = Vec::new();
        for l in &listeners {
            let port = l.port().unwrap_or_default();
            let protocol = l.protocol().map(|p| p.as_str()).unwrap_or_default();
            if protocol != "HTTP" && protocol != "HTTPS" {
                notes.push(format!(
                    "listener {port} ({protocol}) is left out and left as it is"
                ));
                continue;
            }
            let Some(default) = l.default_actions().first() else {
                continue;
            };
            let (action, forward) = match action(default, tgs) {
                Ok(a) => a,
                Err(why) => {
                    notes.push(format!(
                        "listener {port} is left out and left as it is: its default action {why}"
                    ));
                    continue;
                }
            };
            forwards.extend(forward);
            let https = protocol == "HTTPS";
            let mut listener = json!({
                "port": port,
                "protocol": protocol,
                "certificateArn": https.then(|| l.certificates().first().and_then(|c| c.certificate_arn())).flatten(),
                "sslPolicy": https.then(|| l.ssl_policy().filter(|p| *p != DEFAULT_SSL_POLICY)).flatten(),
                "defaultAction": action,
            });
            // Rules are written (and then owned) only when every one of them can be.
            match rules(cx, l.listener_arn().unwrap_or_default(), tgs).await? {
                Ok((list, more)) if !list.is_empty() => {
                    forwards.extend(more);
                    listener["rules"] = json!(list);
                }
                Ok(_) => {}
                Err(why) => notes.push(format!(
                    "the rules of listener {port} are left out and left as they are: {why}"
                )),
            }
            written.push(listener);
        }
        if forwards.is_empty() {
            continue; // nothing the import needs: its target groups are named by ARN
        }
        let aws_name = lb.load_balancer_name().unwrap_or_default().to_string();
        let mut subnets: Vec<String> = lb
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_string))
            .collect();
        subnets.sort();
        let mut sgs = lb.security_groups().to_vec();
        sgs.sort();
        let internal = lb.scheme().map(|s| s.as_str()) == Some("internal");
        let spec = json!({
            "loadBalancerName": aws_name,
            "scheme": internal.then_some("internal"),
            "subnets": {"ids": subnets},
            "securityGroups": {"ids": sgs},
            "listeners": written,
            "tags": user_tags(tags.get(&arn).into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()))),
        });
        let mut doc = Imported::new(
            "LoadBalancer",
            names.take_owned("LoadBalancer", &aws_name, live_tags()),
            arn,
            spec,
        );
        doc.notes = notes;
        out.push(LoadBalancer { doc, forwards });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{
        FixedResponseActionConfig, ForwardActionConfig, RedirectActionConfig,
        RedirectActionStatusCodeEnum, TargetGroupTuple,
    };

    fn tgs() -> BTreeMap<String, TargetGroup> {
        let doc = Imported::new("TargetGroup", "api".into(), "arn:tg/api".into(), json!({}));
        BTreeMap::from([(
            "arn:tg/api".to_string(),
            TargetGroup {
                doc,
                health_path: "/".into(),
                load_balancers: vec![],
            },
        )])
    }

    #[test]
    fn default_actions_are_written_with_defaults_left_out_or_refused_with_the_reason() {
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("arn:tg/api")
            .build();
        assert_eq!(
            action(&forward, &tgs()).unwrap(),
            (json!({"forward": "api"}), Some("arn:tg/api".to_string()))
        );
        let redirect = Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol("HTTPS")
                    .port("8443")
                    .host("#{host}")
                    .path("/#{path}")
                    .query("#{query}")
                    .status_code(RedirectActionStatusCodeEnum::Http302)
                    .build(),
            )
            .build();
        assert_eq!(
            crate::import::clean(action(&redirect, &tgs()).unwrap().0),
            json!({"redirect": {"protocol": "HTTPS", "port": 8443, "statusCode": "HTTP_302"}})
        );
        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .content_type("text/plain")
                    .build(),
            )
            .build();
        assert_eq!(
            crate::import::clean(action(&fixed, &tgs()).unwrap().0),
            json!({"fixedResponse": {"statusCode": 503}})
        );
        let elsewhere = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn("arn:tg/other")
            .build();
        assert!(
            action(&elsewhere, &tgs())
                .unwrap_err()
                .contains("arn:tg/other")
        );
        let weighted = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("arn:tg/api")
                            .weight(9)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn("arn:tg/b")
                            .weight(1)
                            .build(),
                    )
                    .build(),
            )
            .build();
        assert!(action(&weighted, &tgs()).unwrap_err().contains("several"));
        let from_port = Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .status_code(RedirectActionStatusCodeEnum::Http301)
                    .build(),
            )
            .build();
        assert!(
            action(&from_port, &tgs())
                .unwrap_err()
                .contains("request's port")
        );
    }
}
