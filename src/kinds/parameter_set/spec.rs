//! `kind: ParameterSet` — SSM parameters under one path prefix.
//!
//! Values that live in git are *managed*: mooring creates and updates them (type
//! `String`). Parameters people set by hand (passwords, keys — usually `SecureString`) are
//! *required*: mooring checks that they exist with the declared type and never reads,
//! writes, logs or returns their values.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::common::check_tags;
use crate::manifest::error::Findings;
use crate::manifest::yaml::escape_segment;

/// SSM parameters under one path prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParameterSetSpec {
    /// Path prefix, e.g. `/salon/prd`. Names below are relative to it.
    pub path: String,
    /// Values that live in git, by name relative to `path` (`database/host: db.internal`).
    /// Stored as `String` parameters; numbers and booleans are written as text.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, crate::manifest::ScalarSchema>")]
    #[serde(deserialize_with = "crate::manifest::scalar_map")]
    pub parameters: BTreeMap<String, String>,
    /// Parameters set by hand, by name relative to `path`, with the type they must have.
    /// mooring reports a missing one as a failure and never touches its value.
    #[serde(default)]
    pub required: BTreeMap<String, ParameterType>,
    /// Tags for the parameters mooring creates (the ownership tags are added).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An SSM parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ParameterType {
    /// Plain text.
    String,
    /// Comma-separated list.
    StringList,
    /// Encrypted with KMS.
    SecureString,
}

impl ParameterType {
    /// The name SSM uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "String",
            ParameterType::StringList => "StringList",
            ParameterType::SecureString => "SecureString",
        }
    }
}

/// Longest value of a standard-tier parameter.
const MAX_VALUE: usize = 4096;

impl ParameterSetSpec {
    /// The full SSM name of a parameter given relative to `path`.
    pub fn full_name(&self, relative: &str) -> String {
        format!("{}/{}", self.path.trim_end_matches('/'), relative)
    }

    /// True when `full_name` is declared here, managed or required.
    pub fn declares(&self, full_name: &str) -> bool {
        self.relative(full_name)
            .is_some_and(|rel| self.parameters.contains_key(rel) || self.required.contains_key(rel))
    }

    /// `full_name` relative to `path`, when it is under it.
    pub fn relative<'a>(&self, full_name: &'a str) -> Option<&'a str> {
        full_name
            .strip_prefix(self.path.trim_end_matches('/'))?
            .strip_prefix('/')
    }

    /// Checks what the schema cannot express.
    pub fn check(&self, f: &mut Findings<'_>) {
        let path_ok = self.path.starts_with('/')
            && !self.path.ends_with('/')
            && !self.path.contains("//")
            && self.path.bytes().all(name_byte);
        if !path_ok {
            f.at(
                "/spec/path",
                "must start with `/`, not end with `/`, and use only letters, digits and `_.-/`",
            );
        }
        let first = self.path.trim_start_matches('/').to_ascii_lowercase();
        if first.starts_with("aws") || first.starts_with("ssm") {
            f.at(
                "/spec/path",
                "SSM reserves names starting with `aws` or `ssm`",
            );
        }
        check_tags(&self.tags, "/spec/tags", f);
        if self.parameters.is_empty() && self.required.is_empty() {
            f.at(
                "/spec",
                "declare at least one of `parameters` and `required`",
            );
        }
        for (section, names) in [
            ("parameters", self.parameters.keys().collect::<Vec<_>>()),
            ("required", self.required.keys().collect()),
        ] {
            for name in names {
                let p = format!("/spec/{section}/{}", escape_segment(name));
                let full = self.full_name(name);
                let ok = !name.is_empty()
                    && !name.starts_with('/')
                    && !name.ends_with('/')
                    && !name.contains("//")
                    && name.bytes().all(name_byte);
                if !ok {
                    f.at(
                        &p,
                        format!("`{name}` is not a valid parameter name (letters, digits, `_.-`, `/` between levels)"),
                    );
                }
                if full.len() > 1011 {
                    f.at(
                        &p,
                        "the full name is longer than SSM allows (1011 characters)",
                    );
                }
                if full.matches('/').count() > 15 {
                    f.at(&p, "SSM allows at most 15 levels in a parameter name");
                }
                if section == "required" && self.parameters.contains_key(name) {
                    f.at(
                        &p,
                        format!("`{name}` is both managed (`parameters`) and `required`"),
                    );
                }
            }
        }
        for (name, value) in &self.parameters {
            let p = format!("/spec/parameters/{}", escape_segment(name));
            if value.is_empty() {
                f.at(&p, "SSM does not store empty values");
            }
            if value.chars().count() > MAX_VALUE {
                f.at(
                    &p,
                    format!("values are at most {MAX_VALUE} characters (standard tier)"),
                );
            }
        }
    }
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_.-/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str) -> ParameterSetSpec {
        ParameterSetSpec {
            path: path.into(),
            parameters: BTreeMap::from([("database/host".into(), "db".into())]),
            required: BTreeMap::from([("database/password".into(), ParameterType::SecureString)]),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn names_resolve_under_the_path() {
        let s = spec("/salon/prd");
        assert_eq!(s.full_name("database/host"), "/salon/prd/database/host");
        assert!(s.declares("/salon/prd/database/password"));
        assert!(!s.declares("/salon/prd/database/user"));
        assert!(!s.declares("/salon/prdx/database/host"));
        assert_eq!(s.relative("/salon/prd/a/b"), Some("a/b"));
        assert_eq!(s.relative("/salon/prd"), None);
    }
}
