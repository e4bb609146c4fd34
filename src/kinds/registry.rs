//! The `kinds!` table: the one place that lists the kinds. Everything per kind that the
//! compiler cannot find on its own is generated from it.

/// Generates, from one line per kind (`Variant => module::SpecType, set_field;`, in
/// dependency order): the kind modules, [`Kind`](crate::manifest::Kind), the fields of
/// [`ManifestSet`](crate::manifest::ManifestSet), [`InSet`](super::InSet) for each kind's
/// `Unit`, per-kind lasting state ([`KindStates`]) and the dispatch from a `Kind` value to
/// the kind's types ([`Kind::visit`]).
macro_rules! kinds {
    ($( $(#[$doc:meta])* $kind:ident => $module:ident :: $spec:ident, $field:ident; )*) => {
        $( pub mod $module; )*

        /// The kinds of resources a manifest can describe, in the order they are applied.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        pub enum Kind {
            $( $(#[$doc])* $kind, )*
        }

        impl Kind {
            /// Every kind, in dependency order (a kind only references kinds before it).
            pub const ALL: &'static [Kind] = &[ $( Kind::$kind, )* ];

            /// The name used in manifests, URLs and metrics.
            pub fn as_str(self) -> &'static str {
                match self { $( Kind::$kind => stringify!($kind), )* }
            }

            /// Parses the `kind` field of a manifest.
            pub fn parse(s: &str) -> Option<Kind> {
                Kind::ALL.iter().copied().find(|k| k.as_str() == s)
            }

            /// The kind's folder under `src/kinds`.
            pub fn module(self) -> &'static str {
                match self { $( Kind::$kind => stringify!($module), )* }
            }

            /// The AWS actions the kind's code may call.
            pub fn actions(self) -> &'static [&'static str] {
                match self { $( Kind::$kind => <$module::Unit as $crate::kinds::Declared>::ACTIONS, )* }
            }

            /// The engine's view of the kind, for one pass.
            pub fn reconciler(self) -> Box<dyn $crate::reconcile::Reconciler> {
                match self { $( Kind::$kind => $crate::kinds::Typed::<$module::Unit>::boxed(), )* }
            }

            /// Runs `v` on this kind's types.
            pub fn visit<V: $crate::kinds::Visitor>(self, v: &mut V) -> V::Out {
                match self { $( Kind::$kind => v.visit::<$module::Unit>(), )* }
            }
        }

        impl std::fmt::Display for Kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $(
            impl $crate::kinds::InSet for $module::Unit {
                const KIND: Kind = Kind::$kind;
                type Spec = $module::spec::$spec;
                fn manifests(set: &ManifestSet) -> &[$crate::manifest::Manifest<Self::Spec>] {
                    &set.$field
                }
                fn manifests_mut(
                    set: &mut ManifestSet,
                ) -> &mut Vec<$crate::manifest::Manifest<Self::Spec>> {
                    &mut set.$field
                }
            }
        )*

        /// A whole, validated set of manifests: the desired state of one stack.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct ManifestSet {
            $(
                #[doc = concat!("`", stringify!($kind), "` manifests, in the order they are applied.")]
                pub $field: Vec<$crate::manifest::Manifest<$module::spec::$spec>>,
            )*
            /// The stack the set describes: resources carry it in their ownership tags, and
            /// only this stack's resources are its own (orphans, prune, adoption).
            pub stack: String,
            /// Content hash of the files the set was loaded from (`sha256:…`, 12 hex digits).
            pub revision: String,
            /// Findings that do not stop the set from loading, for people to read.
            pub warnings: Vec<$crate::manifest::ManifestError>,
            /// The environment the set was resolved for (`kind: Environment`), if any.
            pub environment: Option<String>,
            /// The environment forbids replacement and deletion (`protect: true`): prune
            /// deletes nothing and no resource may be replaced.
            pub protect: bool,
        }

        impl ManifestSet {
            /// Who the set is for ownership: its stack and environment (see
            /// [`crate::kinds::ownership::Owner`]).
            pub fn owner(&self) -> $crate::kinds::ownership::Owner<'_> {
                $crate::kinds::ownership::Owner {
                    stack: &self.stack,
                    environment: self.environment.as_deref(),
                }
            }

            /// Every resource's metadata with its kind, in dependency order.
            pub fn metadata(&self) -> Vec<(Kind, &$crate::manifest::Metadata)> {
                let mut out = Vec::with_capacity(self.len());
                $( out.extend(self.$field.iter().map(|m| (Kind::$kind, &m.metadata))); )*
                out
            }

            /// Number of resources in the set.
            pub fn len(&self) -> usize {
                0 $( + self.$field.len() )*
            }
        }

        /// What each kind keeps from pass to pass.
        #[derive(Default)]
        pub struct KindStates {
            $(
                #[doc = concat!("State of `", stringify!($kind), "`.")]
                pub $field: <$module::Unit as $crate::kinds::Declared>::State,
            )*
        }
    };
}
