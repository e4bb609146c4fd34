//! `kind: LogGroup` — a CloudWatch Logs log group.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::Metadata;
use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;

/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// A CloudWatch Logs log group, e.g. the one a service's containers write to (name it in
/// the service's `logs.group` and it is created before the service).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogGroupSpec {
    /// Name of the log group in CloudWatch Logs, e.g. `/ecs/salon-backend` (1-512 of
    /// `A-Za-z0-9._-/#`). Defaults to `metadata.name`.
    #[serde(default)]
    pub log_group_name: Option<String>,
    /// Days CloudWatch keeps the group's events, one of 1, 3, 5, 7, 14, 30, 60, 90, 120,
    /// 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653. Unset: kept
    /// forever (CloudWatch's default, and a cost that only grows).
    #[serde(default)]
    #[schemars(extend("enum" = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]))]
    pub retention_in_days: Option<u32>,
    /// ARN of the KMS key that encrypts the group's events
    /// (`arn:aws:kms:REGION:ACCOUNT:key/ID`; the key policy must let CloudWatch Logs use
    /// it). Unset: CloudWatch's own encryption.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Tags to put on the log group (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// True for a name CloudWatch Logs accepts for a log group.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b))
}

impl LogGroupSpec {
    /// The log group's name in CloudWatch Logs.
    pub fn aws_name<'a>(&'a self, meta: &'a Metadata) -> &'a str {
        self.log_group_name.as_deref().unwrap_or(&meta.name)
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, meta: &Metadata, f: &mut Findings<'_>) {
        let name = self.aws_name(meta);
        if !valid_name(name) {
            let pointer = if self.log_group_name.is_some() {
                "/spec/logGroupName"
            } else {
                "/metadata/name"
            };
            f.at(
                pointer,
                format!(
                    "`{name}` is not a valid log group name (1-512 characters of A-Z, a-z, 0-9, `.`, `_`, `-`, `/`, `#`)"
                ),
            );
        }
        if let Some(days) = self.retention_in_days
            && !RETENTION_DAYS.contains(&days)
        {
            f.at(
                "/spec/retentionInDays",
                format!(
                    "CloudWatch Logs does not accept a retention of {days} days; use one of {}",
                    RETENTION_DAYS.map(|d| d.to_string()).join(", ")
                ),
            );
        }
        if let Some(key) = &self.kms_key_id {
            let parts: Vec<&str> = key.splitn(6, ':').collect();
            let ok = matches!(parts.as_slice(), ["arn", _, "kms", _, _, rest] if rest.starts_with("key/") && rest.len() > 4);
            if !ok {
                f.at(
                    "/spec/kmsKeyId",
                    format!(
                        "`{key}` is not a KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`): CloudWatch Logs takes the key's ARN, not an alias or a key ID"
                    ),
                );
            }
        }
        check_tags(&self.tags, "/spec/tags", f);
    }
}
