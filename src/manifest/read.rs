//! Reading a manifest directory from disk, within [`Limits`].
//!
//! Only regular files are read: a FIFO or a device named `x.yaml` is refused from its
//! metadata, before it is opened; a symbolic link must lead to a regular file inside the
//! manifest directory. Every file is read through `take(limit + 1)`, so no file is read past
//! its limit, whatever its metadata said. The walk and the reads run on a helper thread that
//! reports each step, and the caller gives up when a step takes longer than the read
//! timeout: a file on a hung mount makes the set fail, not `validate`, `plan` or the daemon
//! hang.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::error::ManifestError;
use super::limits::{Limits, human_bytes};

/// Helper threads given up on (still blocked in the kernel, e.g. on a hung mount) that have
/// not finished yet. Past [`MAX_ABANDONED`], a load fails at once instead of leaving one more
/// thread behind each pass.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);
const MAX_ABANDONED: usize = 4;

/// What a directory entry is, without following symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// A directory: searched.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (FIFO, socket, device), with its name for messages.
    Other(&'static str),
}

impl EntryType {
    fn of(t: std::fs::FileType) -> EntryType {
        use std::os::unix::fs::FileTypeExt;
        if t.is_dir() {
            EntryType::Dir
        } else if t.is_file() {
            EntryType::File
        } else if t.is_symlink() {
            EntryType::Symlink
        } else if t.is_fifo() {
            EntryType::Other("a FIFO")
        } else if t.is_socket() {
            EntryType::Other("a socket")
        } else if t.is_char_device() {
            EntryType::Other("a character device")
        } else if t.is_block_device() {
            EntryType::Other("a block device")
        } else {
            EntryType::Other("not a regular file")
        }
    }

    fn describe(self) -> &'static str {
        match self {
            EntryType::Dir => "a directory",
            EntryType::File => "a regular file",
            EntryType::Symlink => "a symbolic link",
            EntryType::Other(what) => what,
        }
    }
}

/// Lists one directory: `(path, type)` of each entry.
pub type ListDir = dyn Fn(&Path) -> std::io::Result<Vec<(PathBuf, EntryType)>> + Send + Sync;

/// The real directory listing.
fn list_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, EntryType)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        out.push((entry.path(), EntryType::of(entry.file_type()?)));
    }
    Ok(out)
}

fn error_at(file: &Path, line: usize, col: usize, message: String) -> ManifestError {
    ManifestError {
        file: file.to_path_buf(),
        line,
        col,
        field: String::new(),
        message,
    }
}

fn error(file: &Path, message: String) -> ManifestError {
    error_at(file, 1, 1, message)
}

/// One step of the helper thread.
enum Step {
    /// About to list this directory or read this file.
    Working(PathBuf),
    /// A file read and decoded.
    Read(PathBuf, String),
    /// A problem, reported against its own path.
    Failed(ManifestError),
}

/// Reads every `*.yaml`/`*.yml` under `dir` (hidden entries skipped), within `limits`:
/// the files read, in path order, and every problem met.
pub fn read_sources(dir: &Path, limits: &Limits) -> (Vec<(PathBuf, String)>, Vec<ManifestError>) {
    read_sources_with(dir, limits, Arc::new(list_dir))
}

/// [`read_sources`] with another directory listing (tests make one fail).
pub fn read_sources_with(
    dir: &Path,
    limits: &Limits,
    list: Arc<ListDir>,
) -> (Vec<(PathBuf, String)>, Vec<ManifestError>) {
    let worker_dir = dir.to_path_buf();
    let worker_limits = *limits;
    run_steps(dir, limits.read_timeout, move |tx| {
        walk_and_read(&worker_dir, &worker_limits, list.as_ref(), tx)
    })
}

/// Runs `work` on a helper thread and collects its steps, giving up when one step takes
/// longer than `timeout`.
fn run_steps(
    dir: &Path,
    timeout: std::time::Duration,
    work: impl FnOnce(&mpsc::Sender<Step>) + Send + 'static,
) -> (Vec<(PathBuf, String)>, Vec<ManifestError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    if ABANDONED.load(Ordering::SeqCst) >= MAX_ABANDONED {
        errors.push(error(
            dir,
            format!(
                "failed to read manifest directory: {MAX_ABANDONED} earlier reads are still hanging (a hung mount?)"
            ),
        ));
        return (files, errors);
    }
    let (tx, rx) = mpsc::channel();
    let abandoned = Arc::new(AtomicBool::new(false));
    let worker_abandoned = abandoned.clone();
    let spawned = std::thread::Builder::new()
        .name("mooring-read".into())
        .spawn(move || {
            work(&tx);
            // Its reader gave up on it: it no longer counts as hanging.
            if worker_abandoned.load(Ordering::SeqCst) {
                ABANDONED.fetch_sub(1, Ordering::SeqCst);
            }
        });
    if let Err(e) = spawned {
        errors.push(error(
            dir,
            format!("failed to read manifest directory: cannot start a reader thread: {e}"),
        ));
        return (files, errors);
    }
    let mut current = dir.to_path_buf();
    loop {
        match rx.recv_timeout(timeout) {
            Ok(Step::Working(path)) => current = path,
            Ok(Step::Read(path, text)) => files.push((path, text)),
            Ok(Step::Failed(e)) => errors.push(e),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Counted before the flag is set, so the worker's decrement never comes
                // first.
                ABANDONED.fetch_add(1, Ordering::SeqCst);
                abandoned.store(true, Ordering::SeqCst);
                errors.push(error(
                    &current,
                    format!(
                        "failed to read: no answer within {}s (a hung mount?)",
                        timeout.as_secs_f64()
                    ),
                ));
                break;
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    (files, errors)
}

/// The helper thread's work: find the files, then read them one by one.
fn walk_and_read(dir: &Path, limits: &Limits, list: &ListDir, tx: &mpsc::Sender<Step>) {
    let fail = |e: ManifestError| {
        let _ = tx.send(Step::Failed(e));
    };
    let _ = tx.send(Step::Working(dir.to_path_buf()));
    let root = match std::fs::canonicalize(dir) {
        Ok(r) => r,
        Err(e) => {
            return fail(error(
                dir,
                format!("failed to read manifest directory: {e}"),
            ));
        }
    };
    let found = find_files(dir, limits, list, tx);
    let mut total = 0usize;
    for (path, kind) in found {
        let _ = tx.send(Step::Working(path.clone()));
        match read_file(&path, kind, &root, limits, &mut total) {
            Ok(text) => {
                let _ = tx.send(Step::Read(path, text));
            }
            Err(e) => fail(e),
        }
    }
}

/// The manifest files under `dir`, in path order. Problems with a directory are reported
/// against that directory.
fn find_files(
    dir: &Path,
    limits: &Limits,
    list: &ListDir,
    tx: &mpsc::Sender<Step>,
) -> Vec<(PathBuf, EntryType)> {
    let fail = |e: ManifestError| {
        let _ = tx.send(Step::Failed(e));
    };
    let mut out = Vec::new();
    let mut entries = 0usize;
    let mut pending = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = pending.pop() {
        let _ = tx.send(Step::Working(d.clone()));
        let listed = match list(&d) {
            Ok(l) => l,
            Err(e) if depth == 0 => {
                fail(error(&d, format!("failed to read manifest directory: {e}")));
                continue;
            }
            Err(e) => {
                fail(error(&d, format!("failed to read directory: {e}")));
                continue;
            }
        };
        for (path, kind) in listed {
            entries += 1;
            if entries > limits.max_entries {
                fail(error(
                    &d,
                    format!(
                        "more than {} entries under the manifest directory; stopped searching here",
                        limits.max_entries
                    ),
                ));
                return sorted(out);
            }
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if hidden {
                continue;
            }
            if kind == EntryType::Dir {
                if depth + 1 > limits.max_dir_depth {
                    fail(error(
                        &path,
                        format!(
                            "directory nested more than {} levels below the manifest directory; not searched",
                            limits.max_dir_depth
                        ),
                    ));
                } else {
                    pending.push((path, depth + 1));
                }
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                if out.len() >= limits.max_files {
                    fail(error(
                        &path,
                        format!(
                            "more than {} manifest files; this one and the rest were not read",
                            limits.max_files
                        ),
                    ));
                    return sorted(out);
                }
                out.push((path, kind));
            }
        }
    }
    sorted(out)
}

fn sorted(mut files: Vec<(PathBuf, EntryType)>) -> Vec<(PathBuf, EntryType)> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// Reads one manifest file: a regular file, or a symbolic link to a regular file inside
/// `root`, within the size limits. `total` counts the bytes of the set read so far.
fn read_file(
    path: &Path,
    kind: EntryType,
    root: &Path,
    limits: &Limits,
    total: &mut usize,
) -> Result<String, ManifestError> {
    let open_path = match kind {
        EntryType::File => path.to_path_buf(),
        EntryType::Symlink => {
            let target = std::fs::canonicalize(path)
                .map_err(|e| error(path, format!("failed to follow symbolic link: {e}")))?;
            if !target.starts_with(root) {
                return Err(error(
                    path,
                    format!(
                        "symbolic link to {} leads outside the manifest directory; only files inside it are read",
                        target.display()
                    ),
                ));
            }
            let meta = std::fs::metadata(&target)
                .map_err(|e| error(path, format!("failed to follow symbolic link: {e}")))?;
            let what = EntryType::of(meta.file_type());
            if what != EntryType::File {
                return Err(error(
                    path,
                    format!(
                        "symbolic link to {} which is {}; only regular files are read",
                        target.display(),
                        what.describe()
                    ),
                ));
            }
            target
        }
        other => {
            return Err(error(
                path,
                format!(
                    "{} is not a regular file; only regular files are read",
                    other.describe()
                ),
            ));
        }
    };
    let file = std::fs::File::open(&open_path)
        .map_err(|e| error(path, format!("failed to read file: {e}")))?;
    // Checked again on the open file: the entry may have been replaced since it was listed.
    let meta = file
        .metadata()
        .map_err(|e| error(path, format!("failed to read file: {e}")))?;
    if !meta.file_type().is_file() {
        let what = EntryType::of(meta.file_type()).describe();
        return Err(error(
            path,
            format!("{what} is not a regular file; only regular files are read"),
        ));
    }
    let too_big = || {
        error(
            path,
            format!(
                "file is larger than the limit of {} per manifest file",
                human_bytes(limits.max_file_bytes)
            ),
        )
    };
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if size > limits.max_file_bytes {
        return Err(too_big());
    }
    let over_total = || {
        error(
            path,
            format!(
                "the manifest files add up to more than {}; this file was not read",
                human_bytes(limits.max_total_bytes)
            ),
        )
    };
    if total.saturating_add(size) > limits.max_total_bytes {
        return Err(over_total());
    }
    let mut bytes = Vec::with_capacity(size);
    file.take(limits.max_file_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(path, format!("failed to read file: {e}")))?;
    if bytes.len() > limits.max_file_bytes {
        return Err(too_big());
    }
    *total += bytes.len();
    if *total > limits.max_total_bytes {
        return Err(over_total());
    }
    decode(path, bytes)
}

/// UTF-8 text, or an error at the first byte that is not.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, ManifestError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The valid prefix is UTF-8 by definition.
        let prefix = String::from_utf8_lossy(valid);
        let line = prefix.matches('\n').count() + 1;
        let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        error_at(
            path,
            line,
            col,
            "file is not valid UTF-8 text; manifests must be UTF-8".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn an_unreadable_subdirectory_is_reported_against_itself() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("team-b");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a: 1\n").unwrap();
        std::fs::write(sub.join("b.yaml"), "b: 1\n").unwrap();
        // Root reads every directory, so the failure is injected for `team-b` only.
        let failing = sub.clone();
        let list: Arc<ListDir> = Arc::new(move |d: &Path| {
            if d == failing {
                Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            } else {
                list_dir(d)
            }
        });
        let (files, errors) = read_sources_with(dir.path(), &limits(), list);
        assert_eq!(files.len(), 1, "the readable file is still read");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].file, sub);
        assert!(
            errors[0].message.starts_with("failed to read directory: "),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_read_that_hangs_is_given_up_after_the_timeout() {
        let (release, blocked) = mpsc::channel::<()>();
        let stuck = PathBuf::from("/hung/mount/x.yaml");
        let path = stuck.clone();
        let (files, errors) = run_steps(Path::new("/hung"), Duration::from_millis(200), {
            move |tx| {
                let _ = tx.send(Step::Working(path));
                // Blocks until the test ends (the sender is dropped).
                let _ = blocked.recv();
            }
        });
        assert!(files.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, stuck, "named after the file being read");
        assert!(errors[0].message.contains("no answer within 0.2s"));
        drop(release);
    }

    #[test]
    fn invalid_utf8_is_placed_at_its_byte() {
        let e = decode(Path::new("x.yaml"), b"a: 1\nbb: \xff\n".to_vec()).unwrap_err();
        assert_eq!((e.line, e.col), (2, 5));
        assert!(e.message.contains("not valid UTF-8"));
    }

    #[test]
    fn file_and_set_sizes_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a: 1\n".repeat(10)).unwrap();
        std::fs::write(dir.path().join("b.yaml"), "a: 1\n".repeat(30)).unwrap();
        std::fs::write(dir.path().join("c.yaml"), "a: 1\n".repeat(16)).unwrap();
        let limits = Limits {
            max_file_bytes: 100,
            max_total_bytes: 120,
            ..limits()
        };
        let (files, errors) = read_sources(dir.path(), &limits);
        let read: Vec<_> = files.iter().map(|(p, _)| p.file_name().unwrap()).collect();
        assert_eq!(read, ["a.yaml"]);
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("b.yaml:1:1: file is larger than the limit of 100 bytes"));
        assert!(messages[1].contains("c.yaml:1:1: the manifest files add up to more than 120"));
    }

    #[test]
    fn deep_directories_and_many_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("1/2/3");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("x.yaml"), "a: 1\n").unwrap();
        for i in 0..3 {
            std::fs::write(dir.path().join(format!("{i}.yaml")), "a: 1\n").unwrap();
        }
        let limits = Limits {
            max_dir_depth: 2,
            max_files: 2,
            ..limits()
        };
        let (files, errors) = read_sources(dir.path(), &limits);
        assert_eq!(files.len(), 2);
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("more than 2 manifest files")),
            "{messages:?}"
        );
        // The walk stops at the file limit; a deeper walk is checked on its own.
        let (_, errors) = read_sources(
            dir.path(),
            &Limits {
                max_dir_depth: 2,
                ..Limits::default()
            },
        );
        assert!(
            errors.iter().any(|e| e.file == dir.path().join("1/2/3")
                && e.message.contains("nested more than 2 levels")),
            "{errors:?}"
        );
    }
}
