//! The SSM parameters the services' secrets read (`parameters.yaml`), one `ParameterSet`
//! per parent path. `String` parameters become managed values (their values are read,
//! without decryption); `SecureString` and `StringList` ones, and a `String` named like a
//! secret (`…password…`, `…token…`), become `required` entries, whose values are never
//! read.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType};
use serde_json::json;

use super::{Ctx, Imported, Names, read_failed};
use crate::reconcile::diff::looks_secret;

/// The parameter names the services read.
#[derive(Default)]
pub(crate) struct Collector(BTreeSet<String>);

impl Collector {
    /// Adds a service's parameters.
    pub(crate) fn collect(&mut self, names: &[String]) {
        self.0.extend(names.iter().cloned());
    }

    /// Reads their types (and the values of `String` ones) and builds the sets.
    pub(crate) async fn build(
        &self,
        cx: &Ctx<'_>,
        names: &mut Names,
    ) -> Result<Vec<Imported>, String> {
        let ssm = &cx.aws.ssm;
        let wanted: Vec<String> = self
            .0
            .iter()
            .filter(|n| n.starts_with('/'))
            .cloned()
            .collect();
        let mut types: BTreeMap<String, ParameterType> = BTreeMap::new();
        for chunk in wanted.chunks(50) {
            let filter = ParameterStringFilter::builder()
                .key("Name")
                .option("Equals")
                .set_values(Some(chunk.to_vec()))
                .build()
                .map_err(|e| format!("failed to read parameters: {e}"))?;
            let pages: Vec<_> = ssm
                .describe_parameters()
                .parameter_filters(filter)
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| read_failed("parameters", "ssm:DescribeParameters", e))?;
            for p in pages.iter().flat_map(|p| p.parameters()) {
                if let (Some(n), Some(t)) = (p.name(), p.r#type()) {
                    types.insert(n.to_string(), t.clone());
                }
            }
        }
        // Values of String parameters only; SecureStrings are never requested, nor a
        // String named like a secret (`…password…`, `…token…`): it becomes `required`.
        let plain: Vec<String> = types
            .iter()
            .filter(|(n, t)| **t == ParameterType::String && !looks_secret(n))
            .map(|(n, _)| n.clone())
            .collect();
        let mut values = BTreeMap::new();
        for chunk in plain.chunks(10) {
            let out = ssm
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(false)
                .send()
                .await
                .map_err(|e| read_failed("parameters", "ssm:GetParameters", e))?;
            for p in out.parameters() {
                if p.r#type() == Some(&ParameterType::String)
                    && let (Some(n), Some(v)) = (p.name(), p.value())
                {
                    values.insert(n.to_string(), v.to_string());
                }
            }
        }
        // One set per parent path.
        let mut by_path: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for n in &wanted {
            let parent = n.rsplit_once('/').map(|(p, _)| p).unwrap_or_default();
            by_path.entry(parent.to_string()).or_default().push(n);
        }
        let mut docs = Vec::new();
        for (path, members) in by_path {
            let mut parameters = BTreeMap::new();
            let mut required = BTreeMap::new();
            let mut missing = Vec::new();
            let mut doc_notes = Vec::new();
            for full in members.iter().copied() {
                let rel = full[path.len() + 1..].to_string();
                match (types.get(full), values.get(full)) {
                    (Some(ParameterType::String), Some(v)) if !v.is_empty() => {
                        parameters.insert(rel, v.clone());
                    }
                    (Some(t), _) => {
                        if *t == ParameterType::String {
                            doc_notes.push(format!(
                                "{full} is a String named like a secret: declared `required` (its value is not read into git)"
                            ));
                        }
                        required.insert(rel, t.as_str().to_string());
                    }
                    (None, _) => {
                        // Declared so the set's path covers it; plan reports it missing.
                        required.insert(rel, "SecureString".to_string());
                        missing.push(full.clone());
                    }
                }
            }
            if path.is_empty() {
                // Top-level names (`/x`): a set needs a path; keep them as plain references.
                continue;
            }
            let source = members
                .iter()
                .map(|m| {
                    format!(
                        "arn:{}:ssm:{}:{}:parameter{m}",
                        cx.aws.partition(),
                        cx.region,
                        cx.account
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let label = path.trim_start_matches('/');
            let mut doc = Imported::new(
                "ParameterSet",
                names.take("ParameterSet", label),
                source,
                json!({"path": path, "parameters": parameters, "required": required}),
            );
            doc.notes.extend(doc_notes);
            for m in missing {
                doc.notes.push(format!(
                    "{m} is read by a service but does not exist (declared `required` as a SecureString): set it by hand"
                ));
            }
            if parameters.is_empty() && required.is_empty() {
                continue;
            }
            doc.notes.push("only the parameters the services read are declared; others under the path are left alone".into());
            docs.push(doc);
        }
        Ok(docs)
    }
}
