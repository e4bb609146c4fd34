//! The shape of a kind: [`Declared`] (the manifest side: spec, checks, references, IAM)
//! and [`Resource`] (the AWS side: observe, render, apply), and [`Typed`], which turns any
//! [`Resource`] into the engine's [`Reconciler`]: the plan skeleton (read errors fail every
//! manifest of the kind, ownership and adoption, the diff with `ignore`, replacement and
//! problems) is written once, here.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::from::{self, Field, Resolved, Value as FromValue};
use super::ownership::{self, Ownership};
use crate::manifest::error::Findings;
use crate::manifest::{Kind, Manifest, ManifestSet};
use crate::reconcile::diff::{diff_managed, ignored_fields};
use crate::reconcile::{
    Action, Applied, Cx, Owned, Planned, Problem, ReconcileError, Reconciler, ResourcePlan, Rollout,
};

/// A reference from one manifest to another, by name: checked to exist when the set loads,
/// and (by default) a dependency: the named resource is applied first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// JSON pointer of the field that names it (where an error is reported).
    pub pointer: String,
    /// The kind it names.
    pub kind: Kind,
    /// The name.
    pub name: String,
}

impl Reference {
    /// A reference at `pointer` to the `kind` manifest `name`.
    pub fn new(pointer: impl Into<String>, kind: Kind, name: impl Into<String>) -> Reference {
        Reference {
            pointer: pointer.into(),
            kind,
            name: name.into(),
        }
    }
}

/// Where a kind's manifests live in a [`ManifestSet`] (implemented by the registry).
pub trait InSet: 'static {
    /// The kind.
    const KIND: Kind;
    /// The manifest's `spec`.
    type Spec: DeserializeOwned + Serialize + JsonSchema + Clone + Debug + PartialEq + Send + Sync;
    /// The kind's manifests in `set`.
    fn manifests(set: &ManifestSet) -> &[Manifest<Self::Spec>];
    /// The kind's manifests in `set`, to add to.
    fn manifests_mut(set: &mut ManifestSet) -> &mut Vec<Manifest<Self::Spec>>;
}

/// The manifest side of a kind: pure, no I/O.
pub trait Declared: InSet {
    /// The AWS actions the kind's code calls (checked by a test against its sources), plus
    /// what AWS checks behind them; `mooring iam-policy` grants them.
    const ACTIONS: &'static [&'static str];
    /// What the kind keeps from pass to pass (e.g. task definitions by ARN).
    type State: Default + Send + Sync;

    /// Checks one manifest beyond what the schema says (ranges, formats, combinations).
    fn check(_m: &Manifest<Self::Spec>, _f: &mut Findings<'_>) {}

    /// The fields other manifests can read from this kind's live resources with
    /// `{from: Kind/name, field: …}`; read by [`Resource::fields`].
    const FIELDS: &'static [Field] = &[];

    /// The spec values that may be `from:` another resource, each with its JSON pointer in
    /// the document (e.g. `/spec/endpoint`).
    fn values(_spec: &Self::Spec) -> Vec<(String, &FromValue)> {
        Vec::new()
    }

    /// The other manifests this one names. The loader checks each exists.
    fn references(_m: &Manifest<Self::Spec>) -> Vec<Reference> {
        Vec::new()
    }

    /// Checks against the rest of the set (beyond references existing).
    fn check_set(_m: &Manifest<Self::Spec>, _set: &ManifestSet, _f: &mut Findings<'_>) {}

    /// What identifies the resource in AWS (e.g. `cluster/service`); two manifests of a kind
    /// must not share it.
    fn identity(m: &Manifest<Self::Spec>, set: &ManifestSet) -> String;

    /// The manifests that must be in place before this one is applied.
    fn dependencies(m: &Manifest<Self::Spec>, _set: &ManifestSet) -> Vec<(Kind, String)> {
        let mut deps: Vec<(Kind, String)> = Self::references(m)
            .into_iter()
            .filter(|r| !(r.kind == Self::KIND && r.name == m.metadata.name))
            .map(|r| (r.kind, r.name))
            .collect();
        deps.sort();
        deps.dedup();
        deps
    }

    /// The ARNs the kind's writes are scoped to in the IAM policy (empty: writes on `*`, or
    /// scoped otherwise by `mooring iam-policy`).
    fn iam_resources(_set: &ManifestSet) -> Vec<String> {
        Vec::new()
    }
}

/// What apply is asked to do for one resource.
pub struct Change<'a, D> {
    /// The manifest's document, with ignored fields taking the live values (so apply does
    /// not touch what `mooring.dev/ignore` names).
    pub desired: &'a D,
    /// The live document; `None` when the resource does not exist.
    pub live: Option<&'a D>,
    /// True when the resource must be deleted and created again (allowed by the manifest).
    pub replace: bool,
}

impl<D: PartialEq> Change<'_, D> {
    /// True when `field` of the desired document differs from the live one (or the
    /// resource does not exist).
    pub fn differs<T: PartialEq + ?Sized>(&self, field: impl Fn(&D) -> &T) -> bool {
        self.live.is_none_or(|l| field(self.desired) != field(l))
    }
}

/// The AWS side of a kind: one batched read, one observation per manifest, the normalised
/// documents compared, and apply.
#[async_trait::async_trait]
pub trait Resource: Declared {
    /// What one batched read returns for all of the kind's manifests.
    type Live: Send + Sync;
    /// One resource as observed: its live state and whatever its desired state was
    /// resolved against (IDs, ARNs).
    type Observed: Send + Sync;
    /// The normalised document plan compares. Fields mooring does not manage are not in
    /// it; defaults AWS fills are filled on the desired side.
    type Doc: Serialize + DeserializeOwned + PartialEq + Clone + Send + Sync;

    /// Reads what the kind needs for all of `manifests` at once.
    async fn read(
        cx: &Cx<'_>,
        manifests: &[Manifest<Self::Spec>],
    ) -> Result<Self::Live, ReconcileError>;

    /// Observes one resource, from the batched read plus per-resource lookups.
    async fn observe(
        cx: &Cx<'_>,
        m: &Manifest<Self::Spec>,
        live: &Self::Live,
    ) -> Result<Self::Observed, ReconcileError>;

    /// Who the live resource says it belongs to; `None` when it does not exist.
    fn ownership(obs: &Self::Observed) -> Option<Ownership>;

    /// The manifest, rendered (pure).
    fn desired(set: &ManifestSet, m: &Manifest<Self::Spec>, obs: &Self::Observed) -> Self::Doc;

    /// The live resource in the same shape (pure); `None` when it does not exist.
    fn live(set: &ManifestSet, m: &Manifest<Self::Spec>, obs: &Self::Observed)
    -> Option<Self::Doc>;

    /// The resource's ARN, or the name it will get.
    fn aws_id(set: &ManifestSet, m: &Manifest<Self::Spec>, obs: &Self::Observed) -> String;

    /// The fields that differ and that AWS cannot change in place, with what a replacement
    /// loses (e.g. "target group (ELBv2 refuses…)").
    fn replacement(_desired: &Self::Doc, _live: &Self::Doc) -> (Vec<&'static str>, &'static str) {
        (Vec::new(), "")
    }

    /// What is wrong that apply must not fix (e.g. a required parameter nobody set).
    fn problems(_m: &Manifest<Self::Spec>, _obs: &Self::Observed) -> Vec<Problem> {
        Vec::new()
    }

    /// The values of [`Declared::FIELDS`] the live resource has (none when it does not
    /// exist), for the manifests that read them.
    fn fields(_obs: &Self::Observed) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Notes plan shows beside changed fields, field path → note (why an image changes:
    /// `tag latest`).
    fn notes(_obs: &Self::Observed) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Lines plan shows besides the changed fields when the resource is created or
    /// changed, as changes of made-up fields (e.g. a service's pre-deploy task).
    fn extra_changes(
        _m: &Manifest<Self::Spec>,
        _obs: &Self::Observed,
        _changes: &[crate::reconcile::diff::FieldChange],
    ) -> Vec<crate::reconcile::diff::FieldChange> {
        Vec::new()
    }

    /// Changes the resource takes once a dependency's planned changes (`dep`) are
    /// applied, which its own reads cannot show (see [`Reconciler::follow`]).
    fn follows(
        _m: &Manifest<Self::Spec>,
        _obs: &Self::Observed,
        _dep: &crate::reconcile::ResourcePlan,
    ) -> Vec<crate::reconcile::diff::FieldChange> {
        Vec::new()
    }

    /// The deployment under way, for services.
    fn rollout(_obs: &Self::Observed) -> Option<Rollout> {
        None
    }

    /// Makes one resource match its manifest. Idempotent.
    async fn apply(
        cx: &Cx<'_>,
        m: &Manifest<Self::Spec>,
        obs: &Self::Observed,
        change: &Change<'_, Self::Doc>,
    ) -> Result<Applied, ReconcileError>;

    /// Every live resource of the kind that carries this stack's ownership tags; `None`
    /// when the kind cannot list them (it is not pruned).
    async fn owned(_cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        None
    }

    /// Deletes an owned resource that no manifest names any more (pruning).
    async fn delete(_cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        Err(ReconcileError::NotConverged(format!(
            "pruning is not supported for {}",
            owned.aws_id
        )))
    }
}

/// The names of the fields whose flag is set: for [`Resource::replacement`], from
/// `[("port", desired.port != live.port), …]`.
pub fn differing(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect()
}

/// What plan hands to apply for one resource of kind `R`.
struct Observation<R: Resource> {
    index: usize,
    /// The manifest with the `from:` values known this pass written in; `None` when that
    /// is the set's own (it reads none, or none is known yet).
    resolved: Option<Manifest<R::Spec>>,
    /// Its `from:` values, as resolved.
    values: Vec<Resolved>,
    obs: Arc<R::Observed>,
    desired: R::Doc,
    live: Option<R::Doc>,
}

/// Any [`Resource`] as the engine's [`Reconciler`], for one pass: what plan observed is
/// kept here, by manifest name, for apply.
pub struct Typed<R: Resource> {
    observations: Mutex<HashMap<String, Arc<Observation<R>>>>,
}

impl<R: Resource> Typed<R> {
    /// The reconciler of kind `R`.
    pub fn boxed() -> Box<dyn Reconciler> {
        Box::new(Typed::<R> {
            observations: Mutex::default(),
        })
    }
}

fn to_json<T: Serialize>(doc: &T) -> Value {
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// `desired` with every field `mooring.dev/ignore` names set to its live value (or left out
/// where live has none), so apply leaves those fields as they are. Paths are matched the
/// way the diff names fields (keys may themselves hold dots, as SSM names and tag keys do).
/// An error when the result is no longer a valid document: apply then refuses rather than
/// send the manifest's value for an ignored field.
fn effective<D: Serialize + DeserializeOwned + Clone>(
    ignored: &[String],
    desired: &D,
    live: Option<&D>,
) -> Result<D, String> {
    let Some(live) = live.filter(|_| !ignored.is_empty()) else {
        return Ok(desired.clone());
    };
    let mut d = to_json(desired);
    keep_live("", &mut d, Some(&to_json(live)), ignored);
    // mooring's own tags stay as the manifest says, even under an ignored `tags`.
    if let (Some(Value::Object(own)), Value::Object(doc)) = (to_json(desired).get("tags"), &mut d) {
        let kept = doc
            .entry("tags")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(kept) = kept {
            for (k, v) in own {
                if format!("tags.{k}").starts_with(crate::reconcile::diff::OWN_TAGS) {
                    kept.insert(k.clone(), v.clone());
                }
            }
        }
    }
    serde_json::from_value(d).map_err(|e| {
        format!(
            "the fields `{}` names cannot take their live values: {e}",
            crate::manifest::annotations::IGNORE
        )
    })
}

fn keep_live(path: &str, d: &mut Value, l: Option<&Value>, ignored: &[String]) {
    let Value::Object(dm) = d else {
        return;
    };
    let mut keys: Vec<String> = dm.keys().cloned().collect();
    if let Some(Value::Object(lm)) = l {
        keys.extend(lm.keys().filter(|k| !dm.contains_key(*k)).cloned());
    }
    for k in keys {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        let lv = l.and_then(|l| l.get(&k));
        if crate::reconcile::diff::ignore_covers(&p, ignored) {
            match lv {
                Some(v) if !v.is_null() => {
                    dm.insert(k, v.clone());
                }
                _ => {
                    dm.remove(&k);
                }
            }
        } else if let Some(dv) = dm.get_mut(&k) {
            keep_live(&p, dv, lv, ignored);
        }
    }
}

impl<R: Resource> Typed<R> {
    /// `m` with its `from:` values read from what this pass observed.
    fn resolve<'m>(
        cx: &Cx<'_>,
        m: &'m Manifest<R::Spec>,
    ) -> (std::borrow::Cow<'m, Manifest<R::Spec>>, Vec<Resolved>) {
        from::resolve::<R>(m, |kind, name, field| {
            cx.cache.fields.get(kind, name, field)
        })
    }

    fn observation(&self, name: &str) -> Option<Arc<Observation<R>>> {
        self.observations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    fn plan_one(
        &self,
        set: &ManifestSet,
        index: usize,
        manifest: std::borrow::Cow<'_, Manifest<R::Spec>>,
        values: Vec<Resolved>,
        obs: Arc<R::Observed>,
    ) -> Result<Planned, ReconcileError> {
        let m: &Manifest<R::Spec> = &manifest;
        let in_set = |resource: &str| {
            R::manifests(set)
                .iter()
                .any(|other| format!("{}/{}", R::KIND, other.metadata.name) == resource)
        };
        if let Some(conflict) = R::ownership(&obs)
            .and_then(|o| ownership::conflict(R::KIND, &m.metadata, set.owner(), &o, &in_set))
        {
            return Err(ReconcileError::Ownership(format!(
                "{}: {conflict}",
                R::identity(m, set)
            )));
        }
        let desired = R::desired(set, m, &obs);
        let live = R::live(set, m, &obs);
        let mut changes = from::shown(
            diff_managed(
                &m.metadata,
                &to_json(&desired),
                live.as_ref().map(to_json).as_ref(),
            ),
            &values,
        );
        for (field, note) in R::notes(&obs) {
            for c in changes.iter_mut().filter(|c| c.field == field) {
                c.note = Some(note.clone());
            }
        }
        let mut action = match (&live, changes.is_empty()) {
            (None, _) => Action::Create,
            (Some(_), true) => Action::None,
            (Some(_), false) => Action::Update,
        };
        if action != Action::None {
            let notes = R::extra_changes(m, &obs, &changes);
            changes.extend(notes);
        }
        let mut problems = R::problems(m, &obs);
        if let Some(l) = live.as_ref().filter(|_| action == Action::Update) {
            let eff = effective(&ignored_fields(&m.metadata), &desired, Some(l))
                .unwrap_or_else(|_| desired.clone());
            let (fixed, what) = R::replacement(&eff, l);
            if !fixed.is_empty() {
                action = Action::Replace;
                if set.protect {
                    // The annotation was dropped: say why, not to add it.
                    problems.push(Problem::replacement(format!(
                        "changing {} needs a new {what}, and the environment `{}` is protected (`protect: true`): mooring replaces nothing in it; change the field back, or lift `protect` for this change",
                        fixed.join(", "),
                        set.environment.as_deref().unwrap_or_default()
                    )));
                } else if !ownership::allows_replacement(&m.metadata) {
                    problems.push(Problem::replacement(format!(
                        "changing {} needs a new {what}; apply replaces it (deletes it, then creates it) only when the manifest has the annotation `{}: \"true\"`",
                        fixed.join(", "),
                        crate::manifest::annotations::ALLOW_REPLACEMENT
                    )));
                }
            }
        }
        let plan = ResourcePlan {
            kind: R::KIND,
            name: m.metadata.name.clone(),
            aws_id: R::aws_id(set, m, &obs),
            action,
            changes,
            rollout: R::rollout(&obs),
            problems,
        };
        self.observations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                m.metadata.name.clone(),
                Arc::new(Observation {
                    index,
                    resolved: match manifest {
                        std::borrow::Cow::Owned(m) => Some(m),
                        std::borrow::Cow::Borrowed(_) => None,
                    },
                    values,
                    obs,
                    desired,
                    live,
                }),
            );
        Ok(Planned {
            plan,
            unfollowed: None,
        })
    }
}

#[async_trait::async_trait]
impl<R: Resource> Reconciler for Typed<R> {
    fn kind(&self) -> Kind {
        R::KIND
    }

    fn dependencies(&self, set: &ManifestSet, name: &str) -> Vec<(Kind, String)> {
        let Some(m) = R::manifests(set).iter().find(|m| m.metadata.name == name) else {
            return Vec::new();
        };
        let mut deps = R::dependencies(m, set);
        deps.extend(from::sources::<R>(m));
        deps.sort();
        deps.dedup();
        deps
    }

    fn follow(
        &self,
        set: &ManifestSet,
        planned: &Planned,
        deps: &[&crate::reconcile::ResourcePlan],
    ) -> Option<Planned> {
        let o = self.observation(&planned.plan.name)?;
        let m = o
            .resolved
            .as_ref()
            .or_else(|| R::manifests(set).get(o.index))?;
        let mut follows: Vec<crate::reconcile::diff::FieldChange> = Vec::new();
        for c in deps.iter().flat_map(|d| R::follows(m, &o.obs, d)) {
            let known = planned
                .plan
                .changes
                .iter()
                .chain(&follows)
                .any(|k| k.field == c.field);
            if !known {
                follows.push(c);
            }
        }
        if follows.is_empty() || matches!(planned.plan.action, Action::Create | Action::Replace) {
            return None;
        }
        let mut plan = planned.plan.clone();
        let unfollowed = (plan.action == Action::None).then(|| Box::new(planned.plan.clone()));
        if plan.action == Action::None {
            plan.action = Action::Update;
            let notes = R::extra_changes(m, &o.obs, &follows);
            follows.extend(notes);
        }
        plan.changes.extend(follows);
        Some(Planned { plan, unfollowed })
    }

    fn live_fingerprint(&self, name: &str) -> Option<String> {
        let o = self.observation(name)?;
        Some(crate::planfile::fingerprint(
            &o.live.as_ref().map(to_json).unwrap_or(Value::Null),
        ))
    }

    async fn plan(&self, cx: &Cx<'_>) -> Vec<(String, Result<Planned, ReconcileError>)> {
        let manifests = R::manifests(cx.set);
        if manifests.is_empty() {
            return Vec::new();
        }
        let live = match R::read(cx, manifests).await {
            Ok(live) => live,
            Err(e) => {
                return manifests
                    .iter()
                    .map(|m| (m.metadata.name.clone(), Err(e.clone())))
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(manifests.len());
        for (index, m) in manifests.iter().enumerate() {
            let (resolved, values) = Self::resolve(cx, m);
            let planned = match R::observe(cx, &resolved, &live).await {
                Ok(obs) => {
                    let fields = R::fields(&obs);
                    let planned = self.plan_one(cx.set, index, resolved, values, Arc::new(obs));
                    if planned.is_ok() && !R::FIELDS.is_empty() {
                        cx.cache.fields.put(R::KIND, m.name(), fields);
                    }
                    planned
                }
                Err(e) => Err(e),
            };
            out.push((m.metadata.name.clone(), planned));
        }
        out
    }

    async fn apply(&self, cx: &Cx<'_>, planned: &Planned) -> Result<Applied, ReconcileError> {
        let observed = self.observation(&planned.plan.name);
        let Some(o) = observed.filter(|_| planned.plan.kind == R::KIND) else {
            return Err(ReconcileError::NotConverged(format!(
                "{}/{} was not planned in this pass",
                planned.plan.kind, planned.plan.name
            )));
        };
        let Some(m) = o
            .resolved
            .as_ref()
            .or_else(|| R::manifests(cx.set).get(o.index))
        else {
            return Err(ReconcileError::NotConverged(format!(
                "{}/{} is no longer in the manifests",
                R::KIND,
                planned.plan.name
            )));
        };
        if let Some(v) = o.values.iter().find(|v| v.value.is_none()) {
            return Err(ReconcileError::Dependency(v.waiting()));
        }
        let desired = effective(&ignored_fields(&m.metadata), &o.desired, o.live.as_ref())
            .map_err(|e| {
                ReconcileError::NotConverged(format!("{}/{}: {e}", R::KIND, planned.plan.name))
            })?;
        let change = Change {
            desired: &desired,
            live: o.live.as_ref(),
            replace: planned.plan.action == Action::Replace && planned.plan.problems.is_empty(),
        };
        let applied = R::apply(cx, m, &o.obs, &change).await?;
        if !R::FIELDS.is_empty() && from::is_read(cx.set, R::KIND, m.name()) {
            // Manifests applied after this one read its fields as they are now (a new
            // endpoint after a replacement): read it again, past what the pass had cached.
            cx.cache.clear();
            let read = match R::read(cx, std::slice::from_ref(m)).await {
                Ok(live) => R::observe(cx, m, &live).await.map(|obs| R::fields(&obs)),
                Err(e) => Err(e),
            };
            // Unread, its fields count as unknown: its readers wait for a later pass.
            let fields = read.unwrap_or_else(|e| {
                tracing::warn!(kind = %R::KIND, name = %m.name(), error = %e, "failed to read the fields other manifests read from it");
                Vec::new()
            });
            cx.cache.fields.put(R::KIND, m.name(), fields);
        }
        Ok(applied)
    }

    async fn owned(&self, cx: &Cx<'_>) -> Option<Result<Vec<Owned>, ReconcileError>> {
        R::owned(cx).await
    }

    async fn delete(&self, cx: &Cx<'_>, owned: &Owned) -> Result<(), ReconcileError> {
        R::delete(cx, owned).await
    }
}

/// A visit of one kind's types: the registry dispatches a [`Kind`] value to
/// `visit::<that kind's unit>()`, so per-kind code (loading, schema, IAM) is written once,
/// generically.
pub trait Visitor {
    /// What a visit returns.
    type Out;
    /// Visits kind `K`.
    fn visit<K: Declared>(&mut self) -> Self::Out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        desired_count: Option<u32>,
        image: String,
        tags: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn ignored_fields_keep_their_live_values_for_apply() {
        let desired = Doc {
            desired_count: Some(2),
            image: "app:2".into(),
            tags: [("team".to_string(), "a".to_string())].into(),
        };
        let live = Doc {
            desired_count: Some(5),
            image: "app:1".into(),
            tags: [("team".to_string(), "b".to_string())].into(),
        };
        let ignored = vec!["desiredCount".to_string(), "tags.team".to_string()];
        let eff = effective(&ignored, &desired, Some(&live)).unwrap();
        assert_eq!(eff.desired_count, Some(5));
        assert_eq!(eff.tags["team"], "b");
        assert_eq!(
            eff.image, "app:2",
            "fields not ignored keep the manifest's value"
        );
        assert_eq!(
            effective(&ignored, &desired, None).unwrap(),
            desired,
            "nothing is ignored when creating"
        );
        let change = Change {
            desired: &eff,
            live: Some(&live),
            replace: false,
        };
        assert!(change.differs(|d| &d.image));
        assert!(!change.differs(|d| &d.desired_count));
    }

    /// Ignoring `tags` (or one of mooring's own) never lets mooring's own tags drift: prune
    /// and adopt decide by them (an ECR repository's deletion policy is one).
    #[test]
    fn ignoring_tags_keeps_moorings_own_tags_as_the_manifest_says() {
        let own = |policy: &str| -> std::collections::BTreeMap<String, String> {
            [
                ("team".to_string(), "a".to_string()),
                (
                    "mooring.dev/deletion-policy".to_string(),
                    policy.to_string(),
                ),
            ]
            .into()
        };
        let desired = Doc {
            desired_count: Some(2),
            image: "app:2".into(),
            tags: own("retain"),
        };
        let live = Doc {
            desired_count: Some(2),
            image: "app:2".into(),
            tags: [(
                "mooring.dev/deletion-policy".to_string(),
                "delete".to_string(),
            )]
            .into(),
        };
        for ignored in [
            vec!["tags".to_string()],
            vec!["tags.mooring.dev/deletion-policy".to_string()],
        ] {
            let eff = effective(&ignored, &desired, Some(&live)).unwrap();
            assert_eq!(
                eff.tags["mooring.dev/deletion-policy"], "retain",
                "{ignored:?}"
            );
            let meta: crate::manifest::Metadata = serde_json::from_value(serde_json::json!({
                "name": "x",
                "annotations": {"mooring.dev/ignore": ignored.join(",")}
            }))
            .unwrap();
            let changes = crate::reconcile::diff::diff_managed(
                &meta,
                &to_json(&desired),
                Some(&to_json(&live)),
            );
            assert!(
                changes
                    .iter()
                    .any(|c| c.field == "tags.mooring.dev/deletion-policy"),
                "{ignored:?}: {changes:?}"
            );
        }
        // Other tags under an ignored `tags` keep their live values.
        let eff = effective(&["tags".to_string()], &desired, Some(&live)).unwrap();
        assert!(!eff.tags.contains_key("team"));
    }

    #[test]
    fn ignored_keys_with_dots_and_fields_live_lacks_are_matched_like_the_diff() {
        let desired = Doc {
            desired_count: Some(2),
            image: "app:2".into(),
            tags: [
                ("cost.center".to_string(), "42".to_string()),
                ("team".to_string(), "a".to_string()),
            ]
            .into(),
        };
        let live = Doc {
            desired_count: None,
            image: "app:1".into(),
            tags: [("cost.center".to_string(), "7".to_string())].into(),
        };
        let ignored = vec![
            "tags.cost.center".to_string(),
            "tags.team".to_string(),
            "desiredCount".to_string(),
        ];
        let eff = effective(&ignored, &desired, Some(&live)).unwrap();
        assert_eq!(eff.tags.get("cost.center").map(String::as_str), Some("7"));
        assert_eq!(
            eff.tags.get("team"),
            None,
            "live has no `team`: left out, not set"
        );
        assert_eq!(eff.desired_count, None, "live has none: not sent");
        assert_eq!(eff.image, "app:2");
    }
}
