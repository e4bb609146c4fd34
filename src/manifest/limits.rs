//! Limits on manifest input. A manifest set comes from a directory or a git branch that
//! anyone with commit rights can write, so every dimension of it is bounded: no file, however
//! small or odd, may crash, hang or exhaust the daemon. Each limit, when hit, is a manifest
//! error at `file:line:col` like any other.

use std::time::Duration;

/// Limits on what the YAML reader accepts from one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Mappings and sequences nested in one another (the document's top level is 1).
    pub max_depth: usize,
    /// Nodes that aliases (`*name`) may copy in one file: what stops "billion laughs".
    pub max_alias_nodes: usize,
    /// Bytes (of scalars and keys) that aliases may copy in one file: what stops a long
    /// string aliased many times.
    pub max_alias_bytes: usize,
    /// Documents in one file.
    pub max_documents: usize,
    /// Bytes in one scalar (a value or a key).
    pub max_scalar_bytes: usize,
    /// Errors reported for one file before the reader gives up on it.
    pub max_errors: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_depth: 64,
            max_alias_nodes: 10_000,
            max_alias_bytes: 1024 * 1024,
            max_documents: 500,
            max_scalar_bytes: 64 * 1024,
            max_errors: 100,
        }
    }
}

/// Limits on reading a manifest directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one file.
    pub max_file_bytes: usize,
    /// Bytes in all the files of a set together.
    pub max_total_bytes: usize,
    /// Manifest files in a set.
    pub max_files: usize,
    /// Directory entries looked at while searching for manifest files.
    pub max_entries: usize,
    /// Directories below the manifest directory (it is level 0).
    pub max_dir_depth: usize,
    /// How long reading one file (or listing one directory) may take: a file on a hung
    /// mount must not hang `validate`, `plan` or the daemon.
    pub read_timeout: Duration,
    /// Limits inside each file.
    pub yaml: YamlLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 1024 * 1024,
            max_total_bytes: 16 * 1024 * 1024,
            max_files: 1_000,
            max_entries: 20_000,
            max_dir_depth: 16,
            read_timeout: Duration::from_secs(10),
            yaml: YamlLimits::default(),
        }
    }
}

/// `1048576` → `1 MiB`, for messages.
pub fn human_bytes(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(1024 * 1024), "1 MiB");
        assert_eq!(human_bytes(64 * 1024), "64 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
