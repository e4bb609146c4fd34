//! mooring's own annotations and ownership tags: every key in one place, with the values
//! each annotation takes.

/// Tag key on everything mooring creates.
pub const TAG_MANAGED_BY: &str = "mooring.dev/managed-by";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGED_BY: &str = "mooring";
/// Tag key: `Kind/name` of the manifest a resource belongs to.
pub const TAG_RESOURCE: &str = "mooring.dev/resource";
/// Tag key: the stack (manifest set) a resource belongs to. Resources created before stacks
/// existed lack it; the first apply of the stack that names them adds it.
pub const TAG_STACK: &str = "mooring.dev/stack";
/// Tag key: the environment (`kind: Environment`) a resource belongs to, on what a set
/// resolved for an environment creates. Two environments of one base that keep the base's
/// names share a stack name; this tag keeps each one's resources its own.
pub const TAG_ENVIRONMENT: &str = "mooring.dev/environment";

/// `observe` (report drift, change nothing) or `enforce` for this resource, whatever the
/// daemon's mode.
pub const MODE: &str = "mooring.dev/mode";
/// `"true"` pauses the resource: it is still checked, never changed.
pub const PAUSED: &str = "mooring.dev/paused";
/// `"true"` lets mooring take over a resource it did not create (or one whose ownership
/// tags name another manifest or stack).
pub const ADOPT: &str = "mooring.dev/adopt";
/// `"true"` lets apply replace (delete, then create) a resource when a field that AWS
/// cannot change in place differs. Without it such a change is refused.
pub const ALLOW_REPLACEMENT: &str = "mooring.dev/allow-replacement";
/// Fields whose differences are not drift, comma-separated dotted paths as plan prints
/// them (`desiredCount`, `tags.cost-center`). A path covers everything below it.
pub const IGNORE: &str = "mooring.dev/ignore";

/// The annotations with a fixed set of values, and those values.
pub const CHOICES: [(&str, &[&str]); 4] = [
    (MODE, &["enforce", "observe"]),
    (PAUSED, &["true", "false"]),
    (ADOPT, &["true", "false"]),
    (ALLOW_REPLACEMENT, &["true", "false"]),
];

/// Every annotation mooring knows (others under `mooring.dev/` are typos).
pub const KNOWN: [&str; 5] = [MODE, PAUSED, ADOPT, ALLOW_REPLACEMENT, IGNORE];

/// What each annotation does, for the editor schema (the same words as the constants' docs).
pub const DESCRIPTIONS: [(&str, &str); 5] = [
    (
        MODE,
        "`observe` (report drift, change nothing) or `enforce` for this resource, whatever the daemon's mode.",
    ),
    (
        PAUSED,
        "`\"true\"` pauses the resource: it is still checked, never changed.",
    ),
    (
        ADOPT,
        "`\"true\"` lets mooring take over a resource it did not create (or one whose ownership tags name another manifest or stack).",
    ),
    (
        ALLOW_REPLACEMENT,
        "`\"true\"` lets apply replace (delete, then create) a resource when a field that AWS cannot change in place differs. Without it such a change is refused.",
    ),
    (
        IGNORE,
        "Fields whose differences are not drift, comma-separated dotted paths as plan prints them (`desiredCount`, `tags.cost-center`). A path covers everything below it.",
    ),
];
