//! A git branch followed as plain files.
//!
//! [`GitSource::sync`] keeps a bare repository in the work dir (`repo.git`) and fetches the one
//! branch into it; the first fetch into the empty repository is the clone. It then reads the
//! tree of the branch tip and writes the blobs under `path` to `work_dir/<short SHA>/` (the
//! first 12 hex digits): into a temporary directory first, renamed when complete, so a reader
//! never sees a half-written set. Once the new directory is in place the older ones go.
//!
//! Transport is gitoxide (`gix`), in Rust. HTTPS goes through reqwest with rustls on ring.
//! `file://` URLs and local paths are another matter: gix serves them by running
//! `git-upload-pack`, so those need `git` on `PATH` (the tests use them). Credentials come only
//! from the URL (`https://user:token@host/org/repo.git`); git credential helpers, prompts and
//! the user's or system git configuration are never consulted. Every URL this module shows is
//! redacted ([`redact_url`]).

use std::borrow::Cow;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::{BStr, ByteSlice};
use gix::objs::tree::EntryKind;
use gix::remote::Direction;

/// The bare repository inside the work dir.
const REPO_DIR: &str = "repo.git";
/// Prefix of directories being written; never a valid short SHA, so readers can tell.
const TMP_PREFIX: &str = ".tmp-";
/// Hex digits of the commit in a materialised directory's name.
const SHORT_LEN: usize = 12;

/// A git branch to follow, materialised as plain files.
///
/// One `GitSource` per work dir: two of them sharing a directory would remove each other's
/// materialised sets.
pub struct GitSource {
    url: String,
    redacted_url: String,
    branch: String,
    path: PathBuf,
    work_dir: PathBuf,
    current: Option<Synced>,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // By hand, so the URL's credentials stay out of logs.
        f.debug_struct("GitSource")
            .field("url", &self.redacted_url)
            .field("branch", &self.branch)
            .field("path", &self.path)
            .field("work_dir", &self.work_dir)
            .field("current", &self.current)
            .finish()
    }
}

/// The files of one commit, written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The directory holding the files of `path` at `commit` (`work_dir/<short SHA>`).
    pub dir: PathBuf,
    /// The full SHA of the commit, 40 hex digits.
    pub commit: String,
}

/// Why a sync failed. The caller keeps its last good set; URLs in these are redacted.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The remote could not be reached, or the fetch itself failed.
    #[error("git {url}: cannot fetch branch {branch}: {message}")]
    Fetch {
        /// The remote, redacted.
        url: String,
        /// The branch followed.
        branch: String,
        /// What gix reported, with credentials scrubbed.
        message: String,
    },
    /// The remote has no such branch.
    #[error("git {url}: branch {branch} does not exist on the remote")]
    BranchNotFound {
        /// The remote, redacted.
        url: String,
        /// The branch followed.
        branch: String,
    },
    /// The commit has nothing at `path`.
    #[error("git {url} branch {branch} at {commit}: path {path} does not exist in the commit")]
    PathNotFound {
        /// The remote, redacted.
        url: String,
        /// The branch followed.
        branch: String,
        /// The commit fetched.
        commit: String,
        /// The path inside the repository.
        path: String,
    },
    /// `path` names a file (or a symlink, or a submodule), not a directory.
    #[error("git {url} branch {branch} at {commit}: path {path} is not a directory")]
    NotADirectory {
        /// The remote, redacted.
        url: String,
        /// The branch followed.
        branch: String,
        /// The commit fetched.
        commit: String,
        /// The path inside the repository.
        path: String,
    },
    /// `path` leaves the repository (`..`).
    #[error("git {url} branch {branch}: path {path} must stay inside the repository (no `..`)")]
    InvalidPath {
        /// The remote, redacted.
        url: String,
        /// The branch followed.
        branch: String,
        /// The path as given.
        path: String,
    },
    /// An environment at `path` names a base outside the repository.
    #[error(
        "git {url} branch {branch}: the environment at {path} names the base `{base}`, which lies outside the repository: a base must be a directory of the same repository"
    )]
    BaseOutside {
        /// The remote, redacted.
        url: String,
        /// The branch followed.
        branch: String,
        /// The environment directory.
        path: String,
        /// The base as the environment file writes it.
        base: String,
    },
    /// An object of the fetched commit could not be read from the local repository.
    #[error("git {url} branch {branch} at {commit}: cannot read {what}: {message}")]
    Read {
        /// The remote, redacted.
        url: String,
        /// The branch followed.
        branch: String,
        /// The commit fetched.
        commit: String,
        /// Which object (the commit, its tree, a path).
        what: String,
        /// What gix reported.
        message: String,
    },
    /// The local bare repository could not be opened or created.
    #[error("git {url}: cannot use the local repository {dir}: {message}")]
    Repo {
        /// The remote, redacted.
        url: String,
        /// The repository directory.
        dir: PathBuf,
        /// What gix reported.
        message: String,
    },
    /// Writing the files (or cleaning up) failed.
    #[error("git {url}: cannot write {path}: {source}")]
    Io {
        /// The remote, redacted.
        url: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl GitSource {
    /// Follow `branch` of `url`, materialising the directory `path` of the repository (empty or
    /// `.` for all of it) under `work_dir`. Nothing happens until [`GitSource::sync`].
    ///
    /// `branch` may be given as `main` or `refs/heads/main`. `url` may carry credentials
    /// (`https://user:token@host/…`); they are never shown.
    pub fn new(url: &str, branch: &str, path: &Path, work_dir: &Path) -> GitSource {
        let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        GitSource {
            url: url.to_string(),
            redacted_url: redact_url(url),
            branch: branch.to_string(),
            path: path.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            current: None,
        }
    }

    /// How status and metrics name the source: `URL#branch:path`, credentials redacted.
    pub fn label(&self) -> String {
        format!(
            "{}#{}:{}",
            self.redacted_url(),
            self.branch,
            self.path.display()
        )
    }

    /// The remote with any credentials replaced by `***`, for logs and status.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// Blocking (callers use `spawn_blocking`): clone on first call, fetch afterwards; write the
    /// files of `path` at the branch tip into a directory under the work dir and return it with
    /// the commit. The same commit again returns the same directory without rewriting it.
    pub fn sync(&mut self) -> Result<Synced, GitError> {
        // reqwest builds its TLS configuration from the process-wide rustls provider; ring is the
        // one the AWS client uses too. An error means a provider is installed already: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let rel = self.relative_path()?;
        fs::create_dir_all(&self.work_dir).map_err(|e| self.io(&self.work_dir, e))?;
        let repo = self.open_repo()?;
        let tip = self.fetch(&repo)?;
        let commit = tip.to_string();

        if let Some(current) = &self.current
            && current.commit == commit
            && current.dir.is_dir()
        {
            return Ok(current.clone());
        }

        let root = self.work_dir.join(&commit[..SHORT_LEN]);
        self.materialise(&repo, tip, &rel, &commit, &root)?;
        self.remove_others(&root);
        let synced = Synced {
            dir: root.join(&rel),
            commit,
        };
        self.current = Some(synced.clone());
        Ok(synced)
    }

    /// `path` relative to the repository root: `.` and a leading `/` dropped, `..` refused.
    fn relative_path(&self) -> Result<PathBuf, GitError> {
        let mut rel = PathBuf::new();
        for component in self.path.components() {
            match component {
                Component::Normal(part) => rel.push(part),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    return Err(GitError::InvalidPath {
                        url: self.redacted_url.clone(),
                        branch: self.branch.clone(),
                        path: self.path.display().to_string(),
                    });
                }
            }
        }
        Ok(rel)
    }

    /// Open the bare repository, creating it if missing and recreating it if unreadable (it is
    /// only a cache of the remote).
    fn open_repo(&self) -> Result<gix::Repository, GitError> {
        let dir = self.work_dir.join(REPO_DIR);
        let repo_err = |err: gix::Error| GitError::Repo {
            url: self.redacted_url.clone(),
            dir: dir.clone(),
            message: render(&err),
        };
        if dir.exists() {
            match gix::open_opts(&dir, gix::open::Options::isolated()) {
                Ok(repo) => return Ok(repo),
                Err(err) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        error = %render(&err),
                        "git: local repository unreadable, cloning again"
                    );
                    fs::remove_dir_all(&dir).map_err(|e| self.io(&dir, e))?;
                }
            }
        }
        // Isolated: no system, user or environment git configuration, and no run of the `git`
        // binary to find the installation's configuration.
        gix::ThreadSafeRepository::init_opts(
            &dir,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
            gix::open::Options::isolated(),
        )
        .map(gix::Repository::from)
        .map_err(repo_err)
    }

    /// Fetch the branch into `refs/remotes/origin/<branch>` and return the commit it points at.
    fn fetch(&self, repo: &gix::Repository) -> Result<gix::ObjectId, GitError> {
        let fetch_err = |err: gix::Error| GitError::Fetch {
            url: self.redacted_url.clone(),
            branch: self.branch.clone(),
            message: scrub(&render(&err), &self.url),
        };
        let wanted = format!("refs/heads/{}", self.branch);
        let refspec = format!("+{wanted}:refs/remotes/origin/{}", self.branch);
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(fetch_err)?
            .with_refspecs([refspec.as_str()], Direction::Fetch)
            .map_err(fetch_err)?
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let prepare = remote
            .connect(Direction::Fetch)
            .map_err(fetch_err)?
            .with_credentials(credentials_from_url_only)
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(fetch_err)?;
        let tip = prepare
            .ref_map()
            .mappings
            .iter()
            .find(|mapping| mapping.remote.as_name() == Some(wanted.as_bytes().as_bstr()))
            .and_then(|mapping| mapping.remote.as_id())
            .map(ToOwned::to_owned);
        let Some(tip) = tip else {
            return Err(GitError::BranchNotFound {
                url: self.redacted_url.clone(),
                branch: self.branch.clone(),
            });
        };
        let interrupt = AtomicBool::new(false);
        prepare
            .receive(gix::progress::Discard, &interrupt)
            .map_err(fetch_err)?;
        Ok(tip)
    }

    /// Write the tree at `rel` of commit `tip` to `root/rel`, through a temporary directory.
    /// When `rel` is an environment directory, its bases (relative to it) are written at
    /// their places too, so the environment reads them from the same commit; a base that
    /// lies outside the repository is refused, and one that is missing is left for the load
    /// to report at the environment file's line.
    fn materialise(
        &self,
        repo: &gix::Repository,
        tip: gix::ObjectId,
        rel: &Path,
        commit: &str,
        root: &Path,
    ) -> Result<(), GitError> {
        let tree = repo
            .find_commit(tip)
            .and_then(|c| c.tree())
            .map_err(|e| self.read_err(commit, "the commit's tree", &e))?;
        let env_tree = self.subtree(&tree, rel, commit)?;

        let tmp = self.work_dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            &commit[..SHORT_LEN],
            std::process::id()
        ));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| self.io(&tmp, e))?;
        }
        fs::create_dir(&tmp).map_err(|e| self.io(&tmp, e))?;
        let written = (|| {
            let at = tmp.join(rel);
            fs::create_dir_all(&at).map_err(|e| self.io(&at, e))?;
            self.write_tree(repo, env_tree, &at, commit)?;
            let mut bases = Vec::new();
            for base in crate::manifest::environment::base_paths(&at) {
                let Some(inside) = within(rel, &base) else {
                    return Err(GitError::BaseOutside {
                        url: self.redacted_url.clone(),
                        branch: self.branch.clone(),
                        path: rel.display().to_string(),
                        base,
                    });
                };
                bases.push(inside);
            }
            // Each base's tree once, and not one inside another or the environment (the
            // load refuses overlapping bases at the environment file's line).
            bases.sort();
            bases.dedup();
            let mut done: Vec<PathBuf> = vec![rel.to_path_buf()];
            for base in bases {
                if done
                    .iter()
                    .any(|d| base.starts_with(d) || d.starts_with(&base))
                {
                    continue;
                }
                let Ok(id) = self.subtree(&tree, &base, commit) else {
                    continue;
                };
                let at = tmp.join(&base);
                fs::create_dir_all(&at).map_err(|e| self.io(&at, e))?;
                self.write_tree(repo, id, &at, commit)?;
                done.push(base);
            }
            Ok(())
        })();
        if let Err(err) = written {
            let _ = fs::remove_dir_all(&tmp);
            return Err(err);
        }
        // Only after a restart (or a vanished `current`) can the directory exist already; it
        // is complete then, but may hold another `path`, so it is replaced.
        if root.exists() {
            fs::remove_dir_all(root).map_err(|e| self.io(root, e))?;
        }
        fs::rename(&tmp, root).map_err(|e| self.io(root, e))
    }

    /// The tree at `rel` of a commit's `tree`.
    fn subtree(
        &self,
        tree: &gix::Tree<'_>,
        rel: &Path,
        commit: &str,
    ) -> Result<gix::ObjectId, GitError> {
        let path = rel.display().to_string();
        if rel.as_os_str().is_empty() {
            return Ok(tree.id);
        }
        let entry = tree
            .lookup_entry_by_path(rel)
            .map_err(|e| self.read_err(commit, &format!("path {path}"), &e))?;
        match entry {
            Some(entry) if entry.mode().is_tree() => Ok(entry.object_id()),
            Some(_) => Err(GitError::NotADirectory {
                url: self.redacted_url.clone(),
                branch: self.branch.clone(),
                commit: commit.to_string(),
                path,
            }),
            None => Err(GitError::PathNotFound {
                url: self.redacted_url.clone(),
                branch: self.branch.clone(),
                commit: commit.to_string(),
                path,
            }),
        }
    }

    /// Write the blobs of tree `id` into the existing directory `dir`, recursively.
    fn write_tree(
        &self,
        repo: &gix::Repository,
        id: gix::ObjectId,
        dir: &Path,
        commit: &str,
    ) -> Result<(), GitError> {
        let tree = repo
            .find_tree(id)
            .map_err(|e| self.read_err(commit, &format!("tree {id}"), &e))?;
        let entries: Vec<(EntryKind, gix::bstr::BString, gix::ObjectId)> = tree
            .decode()
            .map_err(|e| self.read_err(commit, &format!("tree {id}"), &e))?
            .entries
            .iter()
            .map(|e| (e.mode.kind(), e.filename.to_owned(), e.oid.to_owned()))
            .collect();
        for (kind, name, oid) in entries {
            let Some(file_name) = safe_file_name(name.as_bstr()) else {
                tracing::warn!(commit, name = %name, "git: skipping a tree entry with an unusable name");
                continue;
            };
            let target = dir.join(file_name);
            match kind {
                EntryKind::Tree => {
                    fs::create_dir(&target).map_err(|e| self.io(&target, e))?;
                    self.write_tree(repo, oid, &target, commit)?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let blob = repo
                        .find_blob(oid)
                        .map_err(|e| self.read_err(commit, &format!("blob {oid}"), &e))?;
                    fs::write(&target, &blob.data).map_err(|e| self.io(&target, e))?;
                    #[cfg(unix)]
                    if kind == EntryKind::BlobExecutable {
                        use std::os::unix::fs::PermissionsExt;
                        fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
                            .map_err(|e| self.io(&target, e))?;
                    }
                }
                EntryKind::Link | EntryKind::Commit => {
                    // A symlink could point outside the set, a submodule is another repository.
                    tracing::warn!(
                        commit,
                        path = %target.display(),
                        "git: skipping a symlink or submodule"
                    );
                }
            }
        }
        Ok(())
    }

    /// Remove materialised and temporary directories other than `keep`. Failures are logged:
    /// the new set is in place either way.
    fn remove_others(&self, keep: &Path) {
        let Ok(entries) = fs::read_dir(&self.work_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path == keep {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let materialised =
                name.len() == SHORT_LEN && name.bytes().all(|b| b.is_ascii_hexdigit());
            if !(materialised || name.starts_with(TMP_PREFIX)) {
                continue;
            }
            if let Err(err) = fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %err, "git: cannot remove an old set");
            }
        }
    }

    fn io(&self, path: &Path, source: std::io::Error) -> GitError {
        GitError::Io {
            url: self.redacted_url.clone(),
            path: path.to_path_buf(),
            source,
        }
    }

    fn read_err(&self, commit: &str, what: &str, err: &gix::Error) -> GitError {
        GitError::Read {
            url: self.redacted_url.clone(),
            branch: self.branch.clone(),
            commit: commit.to_string(),
            what: what.to_string(),
            message: render(err),
        }
    }
}

/// The credentials callback: none beyond the URL's, and never a prompt or a helper program.
fn credentials_from_url_only(
    action: gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>> {
    match action {
        gix::credentials::helper::Action::Get(_) => Err(gix::error::unauthenticated(
            "the remote wants credentials: mooring only uses those in the URL \
             (https://user:token@host/...)",
        )
        .unauthenticated_error()),
        _ => Ok(None),
    }
}

/// A tree entry's name as a single path component, or `None` for names that could escape
/// the directory (`..`, separators) or that the platform cannot represent.
fn safe_file_name(name: &BStr) -> Option<&Path> {
    if name.is_empty() || name == "." || name == ".." || name.contains(&b'/') || name.contains(&0) {
        return None;
    }
    #[cfg(windows)]
    if name.contains(&b'\\') {
        return None;
    }
    gix::path::from_byte_slice(name).ok()
}

/// A gix error with its causes, one line.
fn render(err: &gix::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.iter_errors() {
        let text = cause.to_string();
        if !text.is_empty() && !parts.contains(&text) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// `base`, written relative to the directory `rel` of a repository, as a path from the
/// repository's root; `None` when it leaves the repository (`..` past the root) or is
/// absolute.
fn within(rel: &Path, base: &str) -> Option<PathBuf> {
    let mut out = rel.to_path_buf();
    for c in Path::new(base).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// `url` with its credentials replaced by `***`: the user information (`user:password@`, or
/// a token as user name), the values of credential-looking query parameters
/// (`access_token`, `private_token`, `key`, `sig`, anything with `token`, `secret`,
/// `password`…) and the fragment. URLs without `scheme://` (like `git@host:org/repo`) carry
/// no password in the authority and keep it.
pub fn redact_url(url: &str) -> String {
    let without_userinfo = match userinfo(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_string(),
    };
    let (rest, fragment) = match without_userinfo.split_once('#') {
        Some((rest, f)) => (rest, Some(f)),
        None => (without_userinfo.as_str(), None),
    };
    let mut out = match rest.split_once('?') {
        Some((base, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if credential_key(key) => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}?{}", pairs.join("&"))
        }
        None => rest.to_string(),
    };
    if let Some(f) = fragment {
        out.push('#');
        if !f.is_empty() {
            out.push_str("***");
        }
    }
    out
}

/// True for query parameter names that carry credentials.
fn credential_key(key: &str) -> bool {
    let key = percent_decode(key).to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "signature",
        "auth",
    ]
    .iter()
    .any(|word| key.contains(word))
        || key.ends_with("key")
        || key == "sig"
        || key == "pwd"
}

/// The secret parts of `url`: the password (or a token given as user name), the values of
/// credential-looking query parameters, and the fragment.
fn secrets(url: &str) -> Vec<&str> {
    let mut out = Vec::new();
    if let Some((start, end)) = userinfo(url) {
        let info = &url[start..end];
        out.push(info.split_once(':').map_or(info, |(_, password)| password));
    }
    let (rest, fragment) = url
        .split_once('#')
        .map_or((url, None), |(r, f)| (r, Some(f)));
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && credential_key(key)
            {
                out.push(value);
            }
        }
    }
    out.extend(fragment);
    out
}

/// Byte range of the user information of `url` (without the `@`), if any.
fn userinfo(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')? + start;
    Some((start, at))
}

/// Remove the credentials of `url` from `text` wherever they appear: the URL itself
/// (replaced by its redacted form), the whole user information, and each secret alone (see
/// [`redact_url`]) in raw and percent-decoded form.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Some((start, end)) = userinfo(url) {
        out = out.replace(&url[start..end], "***");
    }
    for secret in secrets(url) {
        for candidate in [Cow::Borrowed(secret), percent_decode(secret)] {
            // A short secret would blank out ordinary words; the URL as a whole was
            // replaced above in any case.
            if candidate.len() >= 4 {
                out = out.replace(candidate.as_ref(), "***");
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = s
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_user_information() {
        assert_eq!(
            redact_url("https://user:secret@example.com/org/repo.git"),
            "https://***@example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@example.com/org/repo.git"),
            "https://***@example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("https://example.com/org/repo.git"),
            "https://example.com/org/repo.git"
        );
        assert_eq!(
            redact_url("https://example.com/a@b/repo.git"),
            "https://example.com/a@b/repo.git"
        );
        assert_eq!(
            redact_url("git@example.com:org/repo.git"),
            "git@example.com:org/repo.git"
        );
    }

    #[test]
    fn redacts_credentials_in_the_query_and_the_fragment() {
        assert_eq!(
            redact_url("https://example.com/org/repo.git?access_token=ghp_abc123&ref=main"),
            "https://example.com/org/repo.git?access_token=***&ref=main"
        );
        assert_eq!(
            redact_url(
                "https://u:p@example.com/r.git?private_token=glpat-1&X-Amz-Signature=ab12&sig=cd34&key=k1&api_key=k2&my_secret=s&password=pw&page=2#token=frag"
            ),
            "https://***@example.com/r.git?private_token=***&X-Amz-Signature=***&sig=***&key=***&api_key=***&my_secret=***&password=***&page=2#***"
        );
        assert_eq!(
            redact_url("https://example.com/r.git#"),
            "https://example.com/r.git#"
        );
        assert_eq!(
            redact_url("https://example.com/r.git?%74oken=abcd"),
            "https://example.com/r.git?%74oken=***"
        );
        // Nothing secret: unchanged.
        assert_eq!(
            redact_url("https://example.com/r.git?ref=main&depth=1"),
            "https://example.com/r.git?ref=main&depth=1"
        );
        // The source label (status, metrics, alerts) goes through it.
        let source = GitSource::new(
            "https://example.com/r.git?access_token=ghp_abc123",
            "main",
            Path::new("deploy"),
            Path::new("/nonexistent"),
        );
        assert_eq!(
            source.label(),
            "https://example.com/r.git?access_token=***#main:deploy"
        );
        assert!(!format!("{source:?}").contains("ghp_abc123"));
    }

    #[test]
    fn scrubs_query_secrets_from_error_text() {
        let url = "https://example.com/r.git?access_token=ghp_s%65cret&x=1";
        let text = format!("failed to fetch {url}: 401 for token ghp_secret (ghp_s%65cret)");
        let out = scrub(&text, url);
        assert!(!out.contains("ghp_s"), "{out}");
        assert!(
            out.contains("https://example.com/r.git?access_token=***&x=1"),
            "{out}"
        );
    }

    #[test]
    fn scrubs_secrets_in_any_form() {
        let url = "https://user:s%65cret-1@example.com/repo.git";
        let text = "failed for https://user:s%65cret-1@example.com/repo.git (secret-1, s%65cret-1)";
        let out = scrub(text, url);
        assert!(
            !out.contains("secret-1") && !out.contains("s%65cret-1"),
            "{out}"
        );
        assert!(out.contains("https://***@example.com/repo.git"), "{out}");
    }

    #[test]
    fn refuses_unsafe_names() {
        for name in ["", ".", "..", "a/b", "a\0b"] {
            assert!(
                safe_file_name(name.as_bytes().as_bstr()).is_none(),
                "{name:?}"
            );
        }
        assert_eq!(
            safe_file_name(b"a.yaml".as_bstr()),
            Some(Path::new("a.yaml"))
        );
    }
}
