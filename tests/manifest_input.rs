//! Hostile and invalid manifest input: every file of `tests/fixtures/invalid/` is refused
//! with its expected message at its expected position, and so are the inputs too big or too
//! odd to commit (deep nesting, huge values, FIFOs, symbolic links), made here at test time.
//! No AWS: these run without the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mooring::manifest::{ManifestError, load_dir};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid")
}

/// What a case must produce: an error at `line:col` whose message contains `message` (and
/// whose field is `field`, when given), among whatever else the set gets.
#[derive(Debug)]
struct Expected {
    line: usize,
    col: usize,
    field: Option<String>,
    message: String,
}

impl Expected {
    fn at(line: usize, col: usize, message: &str) -> Expected {
        Expected {
            line,
            col,
            field: None,
            message: message.into(),
        }
    }

    fn field(mut self, field: &str) -> Expected {
        self.field = Some(field.into());
        self
    }

    /// Reads `NAME.expected`: `at: LINE:COL`, `message: TEXT`, optionally `field: PATH`.
    fn read(path: &Path) -> Expected {
        let text = std::fs::read_to_string(path).unwrap();
        let mut at = None;
        let mut field = None;
        let mut message = None;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (key, value) = line.split_once(": ").expect("`key: value` lines");
            match key {
                "at" => {
                    let (l, c) = value.split_once(':').expect("at: LINE:COL");
                    at = Some((l.parse().unwrap(), c.parse().unwrap()));
                }
                "field" => field = Some(value.to_string()),
                "message" => message = Some(value.to_string()),
                other => panic!("{}: unknown key {other}", path.display()),
            }
        }
        let (line, col) = at.unwrap_or_else(|| panic!("{}: no `at:`", path.display()));
        Expected {
            line,
            col,
            field,
            message: message.unwrap_or_else(|| panic!("{}: no `message:`", path.display())),
        }
    }

    fn matches(&self, file: &str, e: &ManifestError) -> bool {
        e.file.ends_with(file)
            && (e.line, e.col) == (self.line, self.col)
            && e.message.contains(&self.message)
            && self.field.as_ref().is_none_or(|f| *f == e.field)
    }
}

/// Loads `dir` and checks that the set is refused with the expected error about `file`.
fn assert_refused(dir: &Path, file: &str, expected: &Expected) {
    let errors = match load_dir(dir) {
        Ok(_) => panic!("{file}: accepted, expected {expected:?}"),
        Err(e) => e.0,
    };
    assert!(
        errors.iter().any(|e| expected.matches(file, e)),
        "{file}: expected {expected:?} among:\n{}",
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_file_of_the_invalid_corpus_is_refused_with_its_message() {
    let mut cases = 0;
    let mut entries: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let expected = Expected::read(&path.with_extension("expected"));
        // Each case is a set on its own.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&path, dir.path().join(&name)).unwrap();
        assert_refused(dir.path(), &name, &expected);
        cases += 1;
    }
    assert!(cases >= 20, "the corpus has {cases} cases");
}

/// Writes `content` as the only file of a new set.
fn one_file(name: &str, content: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), content).unwrap();
    dir
}

/// The stack document every valid set needs.
const STACK: &str = "apiVersion: mooring.dev/v1alpha1\nkind: Stack\nmetadata: {name: input}\n";

const SERVICE_HEAD: &str = "apiVersion: mooring.dev/v1alpha1
kind: Service
metadata:
  name: api
spec:
  cluster: prd
  network:
    subnets: {lookup: {vpc: default}}
    securityGroups: {lookup: {vpc: default, names: [default]}}
  taskDefinition:
    cpu: 256
    memory: 512
    container:
      image: nginx:1.27
      port: 3000
      environment:
";

#[test]
fn four_thousand_levels_of_block_nesting_are_refused_at_the_limit() {
    // The 8 KB file that overflowed the parser's stack: `- - - … x`.
    let text = format!("{}x\n", "- ".repeat(4000));
    assert!(text.len() < 8 * 1024);
    let dir = one_file("deep.yaml", text.as_bytes());
    assert_refused(
        dir.path(),
        "deep.yaml",
        &Expected::at(1, 129, "nesting deeper than 64 levels"),
    );
    // Mappings, one level per line.
    let text: String = (0..1000usize)
        .map(|l| format!("{}a:\n", " ".repeat(l)))
        .collect();
    let dir = one_file("deep-map.yaml", text.as_bytes());
    assert_refused(
        dir.path(),
        "deep-map.yaml",
        &Expected::at(65, 66, "nesting deeper than 64 levels"),
    );
    // And in flow style: 100,000 brackets (yaml-rust2's scanner has a limit of its own on
    // flow nesting, and looks ahead of the parser, so it is the one that refuses here; the
    // corpus has a flow case that the reader's limit refuses).
    let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let dir = one_file("deep-flow.yaml", text.as_bytes());
    assert_refused(
        dir.path(),
        "deep-flow.yaml",
        &Expected::at(1, 259, "invalid YAML: recursion limit exceeded"),
    );
}

#[test]
fn huge_values_are_refused_naming_the_field() {
    // 100 KiB fits the file limit but not the value limit: the field is named.
    let text = format!("{SERVICE_HEAD}        BIG: {}\n", "x".repeat(100 * 1024));
    let dir = one_file("svc.yaml", text.as_bytes());
    assert_refused(
        dir.path(),
        "svc.yaml",
        &Expected::at(
            17,
            14,
            "value of 102400 bytes is longer than the limit of 64 KiB",
        )
        .field("spec.taskDefinition.container.environment.BIG"),
    );
    // 50 MB is refused from the file's size, before it is read.
    let text = format!(
        "{SERVICE_HEAD}        BIG: {}\n",
        "x".repeat(50 * 1024 * 1024)
    );
    let dir = one_file("svc.yaml", text.as_bytes());
    drop(text);
    assert_refused(
        dir.path(),
        "svc.yaml",
        &Expected::at(
            1,
            1,
            "file is larger than the limit of 1 MiB per manifest file",
        ),
    );
    // A key, too.
    let text = format!("? {}\n: 1\n", "k".repeat(70 * 1024));
    let dir = one_file("key.yaml", text.as_bytes());
    assert_refused(
        dir.path(),
        "key.yaml",
        &Expected::at(
            1,
            3,
            "key of 71680 bytes is longer than the limit of 64 KiB",
        ),
    );
}

#[test]
fn ten_thousand_documents_are_refused_at_the_limit() {
    let doc = "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {}\n";
    let text = format!("---\n{doc}").repeat(10_000);
    let dir = one_file("many.yaml", text.as_bytes());
    assert_refused(
        dir.path(),
        "many.yaml",
        &Expected::at(2501, 1, "more than 500 documents in one file"),
    );
    // 500 broken documents (each missing its kind) are not a 1,000-line report.
    let text = "---\nspec: {}\n".repeat(10_000);
    let dir = one_file("broken.yaml", text.as_bytes());
    let errors = load_dir(dir.path()).unwrap_err().0;
    // 100 shown, one line for the rest, the document limit, and the set's missing Stack.
    assert!(errors.len() <= 103, "{} errors", errors.len());
    assert!(
        errors
            .iter()
            .any(|e| e.message.ends_with("more error(s) in this file not shown")),
        "{:?}",
        &errors[errors.len() - 2..]
    );
    assert!(
        errors
            .iter()
            .any(|e| e.message.starts_with("more than 500 documents"))
    );
    // Empty documents count too.
    let dir = one_file("seps.yaml", "---\n".repeat(10_000).as_bytes());
    assert_refused(
        dir.path(),
        "seps.yaml",
        &Expected::at(501, 1, "more than 500 documents in one file"),
    );
}

#[test]
fn binary_garbage_and_broken_encodings_are_refused_with_a_position() {
    // Bytes that are not UTF-8 at all.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dir = one_file("garbage.yaml", &garbage);
    let errors = load_dir(dir.path()).unwrap_err().0;
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("not valid UTF-8") && e.line >= 1),
        "{errors:?}"
    );
    // Valid UTF-8, but control characters.
    let dir = one_file("controls.yaml", b"apiVersion: \x00\x01\x02\nkind: x\n");
    assert_refused(
        dir.path(),
        "controls.yaml",
        &Expected::at(1, 13, "control character U+0000 is not allowed"),
    );
    // Latin-1 in the middle of a valid file: the first bad byte is placed.
    let dir = one_file(
        "latin1.yaml",
        b"apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: caf\xe9\n",
    );
    assert_refused(
        dir.path(),
        "latin1.yaml",
        &Expected::at(4, 12, "file is not valid UTF-8 text"),
    );
}

#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let text = "\u{feff}apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: prd\nspec: {}\n";
    let dir = one_file("cluster.yaml", text.as_bytes());
    std::fs::write(dir.path().join("stack.yaml"), STACK).unwrap();
    let set = load_dir(dir.path()).expect("a BOM is stripped");
    assert_eq!(set.clusters.len(), 1);
    assert_eq!(set.clusters[0].metadata.name, "prd");
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_is_refused_without_being_opened() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("x.yaml"));
    // Nobody ever writes to the FIFO: opening it for reading would block forever.
    assert_refused(
        dir.path(),
        "x.yaml",
        &Expected::at(
            1,
            1,
            "a FIFO is not a regular file; only regular files are read",
        ),
    );
    // A symbolic link to it is refused the same way.
    let dir2 = tempfile::tempdir().unwrap();
    mkfifo(&dir2.path().join("fifo"));
    std::os::unix::fs::symlink(dir2.path().join("fifo"), dir2.path().join("y.yaml")).unwrap();
    assert_refused(
        dir2.path(),
        "y.yaml",
        &Expected::at(1, 1, "which is a FIFO; only regular files are read"),
    );
}

#[test]
fn validate_refuses_a_fifo_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("x.yaml"));
    let out = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("validate")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("x.yaml:1:1: a FIFO is not a regular file"),
        "{text}"
    );
}

#[test]
fn symbolic_links_must_lead_to_regular_files_inside_the_directory() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(&secret, "password: hunter2\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("outside.yaml")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling.yaml"))
        .unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("sub"), dir.path().join("dir.yaml")).unwrap();
    assert_refused(
        dir.path(),
        "zero.yaml",
        &Expected::at(
            1,
            1,
            "symbolic link to /dev/zero leads outside the manifest directory",
        ),
    );
    assert_refused(
        dir.path(),
        "outside.yaml",
        &Expected::at(1, 1, "leads outside the manifest directory"),
    );
    assert_refused(
        dir.path(),
        "dangling.yaml",
        &Expected::at(1, 1, "failed to follow symbolic link"),
    );
    assert_refused(
        dir.path(),
        "dir.yaml",
        &Expected::at(1, 1, "which is a directory; only regular files are read"),
    );
    let errors = load_dir(dir.path()).unwrap_err().0;
    assert!(
        errors.iter().all(|e| !e.to_string().contains("hunter2")),
        "the outside file was not read"
    );

    // A link to a regular file inside the directory is read (the hidden directory itself
    // is not searched, so the link is the only way to the file).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".shared")).unwrap();
    std::fs::write(
        dir.path().join(".shared/cluster.yml"),
        "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: prd\nspec: {}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(".shared/cluster.yml", dir.path().join("prd.yaml")).unwrap();
    std::fs::write(dir.path().join("stack.yaml"), STACK).unwrap();
    let set = load_dir(dir.path()).expect("a link inside the directory is followed");
    assert_eq!(set.clusters[0].metadata.name, "prd");
}

#[test]
fn a_set_larger_than_the_total_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 20 files of 900 KiB (each under the file limit) add up past 16 MiB.
    let filler = format!("# {}\n", "x".repeat(900 * 1024));
    for i in 0..20 {
        std::fs::write(dir.path().join(format!("f{i:02}.yaml")), &filler).unwrap();
    }
    assert_refused(
        dir.path(),
        "f18.yaml",
        &Expected::at(1, 1, "the manifest files add up to more than 16 MiB"),
    );
}
