//! The git manifest source against local repositories made with the `git` CLI.
//!
//! Local paths and `file://` URLs are served by gix through `git-upload-pack`, so these tests
//! need `git` on PATH, as they need it to make the repositories. The one HTTP URL goes to a
//! closed port on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use mooring::source::git::{GitError, GitSource, Synced};

/// Run `git` in `dir` with a fixed identity and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Mooring Test")
        .env("GIT_AUTHOR_EMAIL", "test@mooring.invalid")
        .env("GIT_COMMITTER_NAME", "Mooring Test")
        .env("GIT_COMMITTER_EMAIL", "test@mooring.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A repository on branch `main` with `manifests/a.yaml` (and a file outside `manifests`).
fn origin(root: &Path) -> PathBuf {
    let repo = root.join("origin");
    fs::create_dir_all(repo.join("manifests/nested")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    fs::write(repo.join("manifests/a.yaml"), "kind: Service\nname: one\n").unwrap();
    fs::write(repo.join("manifests/nested/b.yaml"), "kind: Cluster\n").unwrap();
    fs::write(repo.join("README.md"), "not a manifest\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    repo
}

fn head(repo: &Path) -> String {
    git(repo, &["rev-parse", "HEAD"])
}

/// The materialised directories (12 hex digits) and leftovers in `work`.
fn sets(work: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "repo.git")
        .collect();
    names.sort();
    names
}

#[test]
fn sync_follows_the_branch_and_cleans_older_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = origin(tmp.path());
    let work = tmp.path().join("work");
    let mut source = GitSource::new(
        repo.to_str().unwrap(),
        "main",
        Path::new("manifests"),
        &work,
    );

    let first = source.sync().expect("first sync clones");
    let sha1 = head(&repo);
    assert_eq!(first.commit, sha1);
    assert_eq!(first.commit.len(), 40);
    assert_eq!(first.dir, work.join(&sha1[..12]).join("manifests"));
    assert_eq!(
        fs::read_to_string(first.dir.join("a.yaml")).unwrap(),
        "kind: Service\nname: one\n"
    );
    assert_eq!(
        fs::read_to_string(first.dir.join("nested/b.yaml")).unwrap(),
        "kind: Cluster\n"
    );
    assert!(
        !first.dir.join("../README.md").exists(),
        "only `path` is written"
    );
    assert_eq!(sets(&work), vec![sha1[..12].to_string()]);

    // Nothing new: same commit, same directory.
    assert_eq!(source.sync().unwrap(), first);

    fs::write(repo.join("manifests/a.yaml"), "kind: Service\nname: two\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "second"]);
    let sha2 = head(&repo);
    assert_ne!(sha1, sha2);

    let second = source.sync().expect("second sync fetches");
    assert_eq!(
        second,
        Synced {
            dir: work.join(&sha2[..12]).join("manifests"),
            commit: sha2.clone()
        }
    );
    assert_eq!(
        fs::read_to_string(second.dir.join("a.yaml")).unwrap(),
        "kind: Service\nname: two\n"
    );
    assert!(!first.dir.exists(), "the previous set is removed");
    assert_eq!(sets(&work), vec![sha2[..12].to_string()]);

    // A fresh source on the same work dir (a restart) reuses the clone and finds the same tip;
    // a force-push that rewinds the branch is followed too.
    let mut restarted = GitSource::new(
        repo.to_str().unwrap(),
        "main",
        Path::new("manifests"),
        &work,
    );
    assert_eq!(restarted.sync().unwrap(), second);
    git(&repo, &["reset", "-q", "--hard", &sha1]);
    let rewound = restarted.sync().unwrap();
    assert_eq!(rewound.commit, sha1);
    assert_eq!(
        fs::read_to_string(rewound.dir.join("a.yaml")).unwrap(),
        "kind: Service\nname: one\n"
    );
    assert_eq!(sets(&work), vec![sha1[..12].to_string()]);
}

#[test]
fn file_url_and_whole_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = origin(tmp.path());
    let url = format!("file://{}", repo.display());
    let mut source = GitSource::new(
        &url,
        "refs/heads/main",
        Path::new("."),
        &tmp.path().join("w"),
    );
    let synced = source.sync().expect("file:// URL syncs");
    assert_eq!(synced.commit, head(&repo));
    assert!(synced.dir.join("README.md").is_file());
    assert!(synced.dir.join("manifests/a.yaml").is_file());
}

#[test]
fn other_branch_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = origin(tmp.path());
    git(&repo, &["checkout", "-q", "-b", "staging"]);
    fs::write(repo.join("manifests/a.yaml"), "staging\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "staging"]);
    let staging = head(&repo);
    git(&repo, &["checkout", "-q", "main"]);

    let mut source = GitSource::new(
        repo.to_str().unwrap(),
        "staging",
        Path::new("manifests"),
        &tmp.path().join("w"),
    );
    let synced = source.sync().unwrap();
    assert_eq!(synced.commit, staging);
    assert_eq!(
        fs::read_to_string(synced.dir.join("a.yaml")).unwrap(),
        "staging\n"
    );
}

#[test]
fn missing_branch_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = origin(tmp.path());
    let work = tmp.path().join("w");
    let mut source = GitSource::new(
        repo.to_str().unwrap(),
        "no-such-branch",
        Path::new("manifests"),
        &work,
    );
    let err = source.sync().unwrap_err();
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no-such-branch"), "{text}");
    assert!(text.contains(repo.to_str().unwrap()), "{text}");
    assert!(
        sets(&work).is_empty(),
        "nothing materialised: {:?}",
        sets(&work)
    );
}

#[test]
fn missing_path_is_an_error_naming_it_and_keeps_the_last_set() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = origin(tmp.path());
    let work = tmp.path().join("w");

    let mut missing = GitSource::new(
        repo.to_str().unwrap(),
        "main",
        Path::new("deploy/prod"),
        &work,
    );
    let err = missing.sync().unwrap_err();
    assert!(matches!(err, GitError::PathNotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("deploy/prod"), "{text}");
    assert!(text.contains(&head(&repo)), "{text}");

    let mut file = GitSource::new(
        repo.to_str().unwrap(),
        "main",
        Path::new("README.md"),
        &work,
    );
    let err = file.sync().unwrap_err();
    assert!(matches!(err, GitError::NotADirectory { .. }), "{err:?}");
    assert!(err.to_string().contains("README.md"), "{err}");

    let mut escaping = GitSource::new(repo.to_str().unwrap(), "main", Path::new("../x"), &work);
    let err = escaping.sync().unwrap_err();
    assert!(matches!(err, GitError::InvalidPath { .. }), "{err:?}");

    // A good set, then the directory disappears upstream: the error leaves the set alone.
    let mut source = GitSource::new(
        repo.to_str().unwrap(),
        "main",
        Path::new("manifests"),
        &work,
    );
    let good = source.sync().unwrap();
    git(&repo, &["rm", "-q", "-r", "manifests"]);
    git(&repo, &["commit", "-q", "-m", "drop manifests"]);
    let err = source.sync().unwrap_err();
    assert!(matches!(err, GitError::PathNotFound { .. }), "{err:?}");
    assert!(good.dir.join("a.yaml").is_file(), "last good set kept");
    assert_eq!(sets(&work), vec![good.commit[..12].to_string()]);
}

#[test]
fn unreachable_remote_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("does-not-exist");
    let mut source = GitSource::new(
        gone.to_str().unwrap(),
        "main",
        Path::new("manifests"),
        &tmp.path().join("w"),
    );
    let err = source.sync().unwrap_err();
    assert!(matches!(err, GitError::Fetch { .. }), "{err:?}");
    assert!(err.to_string().contains("does-not-exist"), "{err}");

    // Nothing listens on port 1.
    let mut http = GitSource::new(
        "http://127.0.0.1:1/org/repo.git",
        "main",
        Path::new("manifests"),
        &tmp.path().join("w2"),
    );
    let err = http.sync().unwrap_err();
    assert!(matches!(err, GitError::Fetch { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[test]
fn credentials_never_appear_in_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = origin(tmp.path());
    let urls = [
        "http://user:secret@127.0.0.1:1/org/repo.git".to_string(),
        "https://user:secret@127.0.0.1:1/org/repo.git".to_string(),
        "https://secret-token-as-user@127.0.0.1:1/org/repo.git".to_string(),
        format!("file://user:secret@{}", repo.display()),
        format!(
            "file://user:secret@localhost{}",
            tmp.path().join("nope").display()
        ),
    ];
    for url in urls {
        let mut source =
            GitSource::new(&url, "main", Path::new("manifests"), &tmp.path().join("w"));
        let debug = format!("{source:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(
            source.redacted_url().contains("***@"),
            "{}",
            source.redacted_url()
        );
        let err = source.sync().unwrap_err();
        let (text, debug) = (err.to_string(), format!("{err:?}"));
        eprintln!("{url} -> {text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(text.contains("***@"), "{text}");
    }
}

#[test]
fn types_move_into_spawn_blocking() {
    fn send<T: Send + 'static>() {}
    send::<GitSource>();
    send::<Synced>();
    send::<GitError>();
}

/// An environment directory as `path`: its bases come from the same commit, written at
/// their places beside it (nothing else of the repository is), and the set loads; a base
/// that leaves the repository is refused, naming it.
#[test]
fn an_environment_reads_its_bases_from_the_same_commit_and_never_outside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("origin");
    let base = repo.join("manifests/base");
    let prd = repo.join("manifests/envs/prd");
    fs::create_dir_all(&base).unwrap();
    fs::create_dir_all(&prd).unwrap();
    fs::create_dir_all(repo.join("src")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    fs::write(
        base.join("stack.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {name: shop}\n",
    )
    .unwrap();
    fs::write(
        base.join("cluster.yaml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: main}\nspec: {}\n",
    )
    .unwrap();
    let env = "apiVersion: mooring.dev/v1alpha1\nkind: Environment\nmetadata: {name: prd}\nspec:\n  bases: [BASE]\n";
    fs::write(
        prd.join("environment.yaml"),
        env.replace("BASE", "../../base"),
    )
    .unwrap();
    fs::write(repo.join("src/main.ts"), "// the application\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let work = tmp.path().join("work");
    let mut source = GitSource::new(
        repo.to_str().unwrap(),
        "main",
        Path::new("manifests/envs/prd"),
        &work,
    );
    let synced = source.sync().expect("sync");
    assert!(synced.dir.join("environment.yaml").is_file());
    assert!(synced.dir.join("../../base/cluster.yaml").is_file());
    assert!(
        !synced.dir.join("../../../src").exists(),
        "only the environment and its bases"
    );
    let set = mooring::manifest::load_dir(&synced.dir).expect("the environment loads");
    assert_eq!(set.environment.as_deref(), Some("prd"));
    assert_eq!(set.clusters.len(), 1);

    // A base outside the repository (the daemon's own files): refused, naming it.
    fs::write(
        prd.join("environment.yaml"),
        env.replace("BASE", "../../../../etc"),
    )
    .unwrap();
    git(&repo, &["commit", "-q", "-am", "escape"]);
    let err = source.sync().unwrap_err();
    assert!(matches!(err, GitError::BaseOutside { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("`../../../../etc`") && text.contains("outside the repository"),
        "{text}"
    );
}
