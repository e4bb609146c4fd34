//! Where manifests come from besides a local directory.
//!
//! `git` follows one branch of a git remote and writes the files under one path of its tip
//! commit into a directory of their own, so the rest of mooring reads plain files either way.

pub mod git;
