//! SSM parameters (`kind: ParameterSet`).
//!
//! Reads: one DescribeParameters listing per set (metadata only: names and types, never
//! values), then GetParameters for the *managed* names only, 10 per call, without
//! decryption. Required parameters' values are never requested, so they cannot reach
//! logs, plans, `/status` or alerts.
//!
//! Tags are written when mooring creates a parameter. Their drift is not checked: it would
//! cost one ListTagsForResource call per parameter and pass.

pub mod spec;

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType as SsmType, Tag};
use serde_json::{Map, Value, json};
use tracing::info;

use crate::aws::AwsError;
use crate::kinds::Reference;
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet, ParameterSetSpec, owned_tags};
use crate::reconcile::diff::diff_managed;
use crate::reconcile::{
    Action, Applied, Context, Planned, ReconcileError, Reconciler, ResourcePlan,
};

/// GetParameters takes at most 10 names per call.
const GET_BATCH: usize = 10;

/// Reconciles `kind: ParameterSet` manifests.
pub struct ParameterSetReconciler {
    manifests: Vec<Manifest<ParameterSetSpec>>,
}

impl ParameterSetReconciler {
    /// The reconciler for the set's parameter sets.
    pub fn new(set: &ManifestSet) -> Self {
        ParameterSetReconciler {
            manifests: set.parameter_sets.clone(),
        }
    }
}

/// What AWS has for one parameter name. `value` is only ever read for `String`
/// parameters that the manifest manages.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveParameter {
    /// SSM type.
    pub kind: String,
    /// Value, for managed `String` parameters.
    pub value: Option<String>,
}

struct Observed {
    manifest: Manifest<ParameterSetSpec>,
    live: BTreeMap<String, LiveParameter>,
}

/// The managed parameters as plan compares them: full name → type and value.
pub fn desired_doc(spec: &ParameterSetSpec) -> Value {
    let params: Map<String, Value> = spec
        .parameters
        .iter()
        .map(|(rel, v)| (spec.full_name(rel), json!({"type": "String", "value": v})))
        .collect();
    json!({"parameters": params})
}

/// The live side of [`desired_doc`]. A managed name that exists as another type shows its
/// type and no value.
pub fn live_doc(spec: &ParameterSetSpec, live: &BTreeMap<String, LiveParameter>) -> Value {
    let params: Map<String, Value> = spec
        .parameters
        .keys()
        .map(|rel| {
            let full = spec.full_name(rel);
            let v = live
                .get(&full)
                .map_or(Value::Null, |p| json!({"type": p.kind, "value": p.value}));
            (full, v)
        })
        .collect();
    json!({"parameters": params})
}

/// What apply cannot fix: missing or mistyped required parameters, and managed names that
/// exist as SecureString (mooring will not overwrite a secret with a plain value).
pub fn problems(spec: &ParameterSetSpec, live: &BTreeMap<String, LiveParameter>) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, want) in &spec.required {
        let full = spec.full_name(rel);
        match live.get(&full) {
            None => out.push(format!(
                "required parameter {full} is missing: set it by hand as {} (mooring never writes it)",
                want.as_str()
            )),
            Some(p) if p.kind != want.as_str() => out.push(format!(
                "required parameter {full} is a {}, expected {}",
                p.kind,
                want.as_str()
            )),
            Some(_) => {}
        }
    }
    for rel in spec.parameters.keys() {
        let full = spec.full_name(rel);
        if live.get(&full).is_some_and(|p| p.kind == "SecureString") {
            out.push(format!(
                "parameter {full} exists as a SecureString; mooring will not overwrite it with a plain String"
            ));
        }
    }
    out
}

async fn observe(
    ctx: &Context,
    spec: &ParameterSetSpec,
) -> Result<BTreeMap<String, LiveParameter>, AwsError> {
    let mut live = BTreeMap::new();
    let mut token = None;
    loop {
        let out = ctx
            .aws
            .ssm
            .describe_parameters()
            .parameter_filters(
                ParameterStringFilter::builder()
                    .key("Path")
                    .option("Recursive")
                    .values(&spec.path)
                    .build()
                    .map_err(|e| AwsError::invalid_request("ssm:DescribeParameters", e))?,
            )
            .max_results(50)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:DescribeParameters", e))?;
        for p in out.parameters() {
            if let (Some(name), Some(kind)) = (p.name(), p.r#type()) {
                live.insert(
                    name.to_string(),
                    LiveParameter {
                        kind: kind.as_str().to_string(),
                        value: None,
                    },
                );
            }
        }
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    // Values of managed plain parameters only.
    let names: Vec<String> = spec
        .parameters
        .keys()
        .map(|rel| spec.full_name(rel))
        .filter(|n| live.get(n).is_some_and(|p| p.kind == "String"))
        .collect();
    for chunk in names.chunks(GET_BATCH) {
        let out = ctx
            .aws
            .ssm
            .get_parameters()
            .set_names(Some(chunk.to_vec()))
            .with_decryption(false)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:GetParameters", e))?;
        for p in out.parameters() {
            if let (Some(name), Some(value)) = (p.name(), p.value())
                && let Some(entry) = live.get_mut(name)
            {
                entry.value = Some(value.to_string());
            }
        }
    }
    Ok(live)
}

#[async_trait::async_trait]
impl Reconciler for ParameterSetReconciler {
    fn kind(&self) -> Kind {
        Kind::ParameterSet
    }

    fn dependencies(&self, _name: &str) -> Vec<(Kind, String)> {
        Vec::new()
    }

    async fn plan(&self, ctx: &Context) -> Vec<(String, Result<Planned, ReconcileError>)> {
        let mut out = Vec::new();
        for m in &self.manifests {
            let result = observe(ctx, &m.spec)
                .await
                .map_err(ReconcileError::from)
                .map(|live| {
                    let changes = diff_managed(
                        &m.metadata,
                        &desired_doc(&m.spec),
                        Some(&live_doc(&m.spec, &live)),
                    );
                    let missing = m
                        .spec
                        .parameters
                        .keys()
                        .all(|rel| !live.contains_key(&m.spec.full_name(rel)));
                    let action = match (changes.is_empty(), missing) {
                        (true, _) => Action::None,
                        (false, true) => Action::Create,
                        (false, false) => Action::Update,
                    };
                    Planned {
                        plan: ResourcePlan {
                            kind: Kind::ParameterSet,
                            name: m.name().to_string(),
                            aws_id: m.spec.path.clone(),
                            action,
                            changes,
                            rollout: None,
                            problems: problems(&m.spec, &live),
                        },
                        observed: Box::new(Observed {
                            manifest: m.clone(),
                            live,
                        }),
                    }
                });
            out.push((m.name().to_string(), result));
        }
        out
    }

    async fn apply(&self, ctx: &Context, planned: &Planned) -> Result<Applied, ReconcileError> {
        let Some(obs) = planned.observed.downcast_ref::<Observed>() else {
            return Err(ReconcileError::NotConverged("plan of another kind".into()));
        };
        let spec = &obs.manifest.spec;
        let tags: Vec<Tag> = owned_tags(Kind::ParameterSet, obs.manifest.name(), &spec.tags)
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        for (rel, value) in &spec.parameters {
            let full = spec.full_name(rel);
            let current = obs.live.get(&full);
            if current.is_some_and(|p| p.kind == "String" && p.value.as_deref() == Some(value)) {
                continue;
            }
            if current.is_some_and(|p| p.kind == "SecureString") {
                continue; // reported as a problem; never overwrite a secret
            }
            let exists = current.is_some();
            // SSM refuses tags together with Overwrite: tags go on at creation only.
            ctx.aws
                .ssm
                .put_parameter()
                .name(&full)
                .value(value)
                .r#type(SsmType::String)
                .overwrite(exists)
                .set_tags((!exists).then(|| tags.clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ssm:PutParameter", e))?;
            info!(parameter = %full, created = !exists, "wrote parameter");
        }
        Ok(Applied {
            aws_id: spec.path.clone(),
            rollout: None,
        })
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parameters::ParameterType;
    use crate::reconcile::diff::diff;

    fn spec() -> ParameterSetSpec {
        ParameterSetSpec {
            path: "/app/prd".into(),
            parameters: BTreeMap::from([
                ("db/host".into(), "db.internal".into()),
                ("db/port".into(), "5432".into()),
            ]),
            required: BTreeMap::from([("db/password".into(), ParameterType::SecureString)]),
            tags: BTreeMap::new(),
        }
    }

    fn live(entries: &[(&str, &str, Option<&str>)]) -> BTreeMap<String, LiveParameter> {
        entries
            .iter()
            .map(|(n, k, v)| {
                (
                    n.to_string(),
                    LiveParameter {
                        kind: k.to_string(),
                        value: v.map(str::to_string),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn in_sync_parameters_have_no_changes_or_problems() {
        let l = live(&[
            ("/app/prd/db/host", "String", Some("db.internal")),
            ("/app/prd/db/port", "String", Some("5432")),
            ("/app/prd/db/password", "SecureString", None),
            ("/app/prd/unmanaged", "String", Some("x")),
        ]);
        assert!(diff(&desired_doc(&spec()), Some(&live_doc(&spec(), &l))).is_empty());
        assert!(problems(&spec(), &l).is_empty());
    }

    #[test]
    fn changed_and_missing_values_are_named() {
        let l = live(&[("/app/prd/db/host", "String", Some("old.internal"))]);
        let changes = diff(&desired_doc(&spec()), Some(&live_doc(&spec(), &l)));
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "parameters./app/prd/db/host.value",
                "parameters./app/prd/db/port.type",
                "parameters./app/prd/db/port.value"
            ]
        );
        assert_eq!(changes[0].live, json!("old.internal"));
    }

    #[test]
    fn required_parameters_are_checked_without_values() {
        let missing = problems(&spec(), &live(&[]));
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("/app/prd/db/password is missing"));
        let wrong = problems(&spec(), &live(&[("/app/prd/db/password", "String", None)]));
        assert!(
            wrong[0].contains("is a String, expected SecureString"),
            "{wrong:?}"
        );
        let secret = problems(
            &spec(),
            &live(&[
                ("/app/prd/db/password", "SecureString", None),
                ("/app/prd/db/host", "SecureString", None),
            ]),
        );
        assert!(secret[0].contains("will not overwrite it"), "{secret:?}");
    }
}
