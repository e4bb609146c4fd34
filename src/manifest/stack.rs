//! `kind: Stack`: the one document every manifest set has, naming the stack it describes.
//!
//! The stack's name goes into the ownership tags of everything mooring creates
//! (`mooring.dev/stack`), so two stacks in one account never take each other's resources
//! for their own: orphans, prune and adoption only consider the set's own stack.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Metadata;
use super::error::Findings;
use super::yaml::YamlDocument;

/// The `kind` of the stack document.
pub const KIND: &str = "Stack";

/// The stack a manifest set describes. `metadata.name` is the stack's name: 1-63
/// lower-case letters, digits and inner hyphens (it goes into tags and lease names).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackSpec {}

/// The stack document's envelope (`spec` may be left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackDocument {
    /// Always `mooring.dev/v1alpha1`.
    pub api_version: String,
    /// Always `Stack`.
    pub kind: String,
    /// The stack's name (and free-form labels and annotations).
    pub metadata: Metadata,
    /// Nothing yet.
    #[serde(default)]
    pub spec: StackSpec,
}

/// True for a valid stack name.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Checks a stack document; returns its name when it is valid.
pub fn check(doc: &YamlDocument, f: &mut Findings<'_>) -> Option<String> {
    let before = f.errors.len();
    for err in super::schema::stack_validator().iter_errors(&doc.value) {
        let path = err.instance_path().as_str().to_string();
        if path == "/apiVersion" || path == "/kind" {
            continue; // checked with the envelope
        }
        f.at(&path, err.to_string());
    }
    let name = doc.value["metadata"]["name"].as_str().unwrap_or_default();
    if f.errors.len() == before && !valid_name(name) {
        f.at(
            "/metadata/name",
            format!("`{name}` is not a valid stack name (1-63 lower-case letters, digits and inner hyphens)"),
        );
    }
    (f.errors.len() == before).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names() {
        for ok in ["shop", "salon-booking", "a1", "x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Shop", "-a", "a-", "a/b", "a_b", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
