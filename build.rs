//! Bakes the git revision into the binary (`mooring --version`, `/status`): from the
//! `MOORING_REVISION` environment variable (the Dockerfile passes its build argument), else
//! from the checkout's `.git` (read as files: no git program needed), else `unknown`.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=MOORING_REVISION");
    let revision = std::env::var("MOORING_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(from_checkout)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MOORING_REVISION={}", revision.trim());
}

/// The commit `.git/HEAD` points at, first 12 hex digits.
fn from_checkout() -> Option<String> {
    let git = Path::new(".git");
    let head_file = git.join("HEAD");
    println!("cargo:rerun-if-changed={}", head_file.display());
    let head = std::fs::read_to_string(&head_file).ok()?;
    let head = head.trim();
    let commit = match head.strip_prefix("ref: ") {
        None => head.to_string(),
        Some(reference) => {
            let loose = git.join(reference);
            println!("cargo:rerun-if-changed={}", loose.display());
            let packed = git.join("packed-refs");
            println!("cargo:rerun-if-changed={}", packed.display());
            match std::fs::read_to_string(&loose) {
                Ok(c) => c.trim().to_string(),
                Err(_) => std::fs::read_to_string(&packed)
                    .ok()?
                    .lines()
                    .find_map(|l| {
                        let (sha, name) = l.split_once(' ')?;
                        (name == reference).then(|| sha.to_string())
                    })?,
            }
        }
    };
    (commit.len() >= 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| commit[..12].to_string())
}
