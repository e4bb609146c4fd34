//! A property test of the manifest loader: mutated example manifests and generated nested
//! YAML (anchors, aliases, tags, deep nesting) go through `load_sources`, which must never
//! panic and must answer within its limits. Seeded and bounded so it runs in CI in a few
//! seconds; `MOORING_FUZZ_SEED=N MOORING_FUZZ_CASES=M` replays or extends a run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use mooring::manifest::ManifestErrors;
use mooring::manifest::limits::Limits;
use mooring::manifest::load::load_sources;

fn examples() -> Vec<Vec<(PathBuf, String)>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
    let mut sets = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect();
        files.sort();
        // Each example is a whole set that loads as it is.
        assert!(
            load_sources(&files).is_ok(),
            "{} does not load",
            dir.display()
        );
        sets.push(files);
    }
    sets.sort();
    assert!(sets.len() >= 2, "the examples are the seed corpus");
    sets
}

/// Fragments that reach the reader's corners.
const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!Ref ",
    "!!str ",
    "!!int ",
    "? ",
    "---\n",
    "...\n",
    "\t",
    "\"",
    "'",
    "#",
    "|\n",
    ">-\n",
    "\u{feff}",
    "\0",
    "\u{85}",
    "~",
    "<<: *a\n",
    "99999999999999999999",
    "-1",
    "0x1F",
    "1e400",
    "%YAML 1.2\n",
    "%TAG ! tag:x:\n",
    "\r\n",
];

fn mutate(rng: &mut fastrand::Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..rng.usize(1..=8) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.usize(..lines.len());
        match rng.u8(..8) {
            // Insert a fragment inside a line.
            0 | 1 => {
                let line = &mut lines[i];
                let at = (0..=line.len())
                    .filter(|&k| line.is_char_boundary(k))
                    .nth(rng.usize(..=line.chars().count()))
                    .unwrap_or(0);
                line.insert_str(at, FRAGMENTS[rng.usize(..FRAGMENTS.len())]);
            }
            // Delete a line, duplicate one, swap two.
            2 => {
                lines.remove(i);
            }
            3 => {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            }
            4 => {
                let j = rng.usize(..lines.len());
                lines.swap(i, j);
            }
            // Shift a block of lines in or out.
            5 => {
                let end = (i + rng.usize(1..6)).min(lines.len());
                let shift = " ".repeat(rng.usize(1..4));
                for line in &mut lines[i..end] {
                    if rng.bool() {
                        line.insert_str(0, &shift);
                    } else {
                        *line = line.trim_start().to_string();
                    }
                }
            }
            // Repeat a line many times (sizes, duplicate keys).
            6 => {
                let copy = lines[i].clone();
                for _ in 0..rng.usize(10..200) {
                    lines.insert(i, copy.clone());
                }
            }
            // Cut the file somewhere.
            _ => lines.truncate(i),
        }
    }
    let mut out = lines.join("\n");
    if rng.bool() {
        out.push('\n');
    }
    out
}

/// A random nested value in flow style, with anchors, aliases and tags.
fn generate(rng: &mut fastrand::Rng, depth: usize, anchors: &mut usize, out: &mut String) {
    let nested = depth < 90 && out.len() < 20_000 && rng.u8(..10) < 7;
    if rng.u8(..10) == 0 {
        *anchors += 1;
        out.push_str(&format!("&a{} ", *anchors));
    }
    if !nested {
        match rng.u8(..6) {
            0 if *anchors > 0 => out.push_str(&format!("*a{}", rng.usize(1..=*anchors))),
            1 => out.push_str("!Ref x"),
            2 => out.push_str(&rng.u64(..).to_string()),
            3 => out.push_str("'quoted'"),
            4 => out.push_str(&"v".repeat(rng.usize(0..100))),
            _ => out.push_str("null"),
        }
        return;
    }
    let n = rng.usize(0..5);
    if rng.bool() {
        out.push('[');
        for k in 0..n {
            if k > 0 {
                out.push_str(", ");
            }
            generate(rng, depth + 1, anchors, out);
        }
        out.push(']');
    } else {
        out.push('{');
        for k in 0..n {
            if k > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("k{k}: "));
            generate(rng, depth + 1, anchors, out);
        }
        out.push('}');
    }
}

/// Loads `sources`, failing with a replayable report on a panic or an answer outside the
/// limits.
fn check(seed: u64, case: usize, sources: &[(PathBuf, String)]) -> Vec<String> {
    let result = std::panic::catch_unwind(|| load_sources(sources));
    let Ok(result) = result else {
        let dump = std::env::temp_dir().join(format!("mooring-fuzz-{seed}-{case}.yaml"));
        let all: String = sources
            .iter()
            .map(|(p, t)| format!("# ---- {}\n{t}\n", p.display()))
            .collect();
        std::fs::write(&dump, all).unwrap();
        panic!(
            "load_sources panicked on seed {seed} case {case}; input saved to {}",
            dump.display()
        );
    };
    let limits = Limits::default();
    match result {
        Ok(set) => {
            let documents = set.clusters.len()
                + set.services.len()
                + set.parameter_sets.len()
                + set.security_groups.len()
                + set.target_groups.len()
                + set.load_balancers.len()
                + set.replication_groups.len()
                + set.scalable_targets.len()
                + set.connections.len()
                + set.api_destinations.len()
                + set.rules.len();
            assert!(documents <= limits.yaml.max_documents * sources.len());
            Vec::new()
        }
        Err(ManifestErrors(errors)) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(
                    e.line >= 1 && e.col >= 1,
                    "seed {seed} case {case}: no position: {e}"
                );
                assert!(
                    sources.iter().any(|(p, _)| p == &e.file),
                    "seed {seed} case {case}: error about an unknown file: {e}"
                );
                let text = &sources.iter().find(|(p, _)| p == &e.file).unwrap().1;
                assert!(
                    e.line <= text.split('\n').count() + 1,
                    "seed {seed} case {case}: line past the end of the file: {e}"
                );
            }
            errors.into_iter().map(|e| e.message).collect()
        }
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_loader_never_panics_on_mutated_manifests() {
    let seed = env_number("MOORING_FUZZ_SEED").unwrap_or(0x6d6f6f72);
    let cases = env_number("MOORING_FUZZ_CASES").unwrap_or(400) as usize;
    let corpus = examples();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut refused = 0;
    for case in 0..cases {
        // One file of a whole example set mutated; the set loaded together, so references
        // between files (target groups, `from:`, the stack) are checked too.
        let mut set = corpus[rng.usize(..corpus.len())].clone();
        let i = rng.usize(..set.len());
        set[i].1 = mutate(&mut rng, &set[i].1);
        refused += usize::from(!check(seed, case, &set).is_empty());
    }
    // The mutations do break things: most cases are refused, not all.
    assert!(
        refused > cases / 2 && refused < cases,
        "{refused} of {cases} refused"
    );
}

#[test]
fn the_loader_never_panics_on_generated_nesting() {
    let seed = env_number("MOORING_FUZZ_SEED").unwrap_or(0x6e657374);
    let cases = env_number("MOORING_FUZZ_CASES").unwrap_or(400) as usize;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut limits_hit = [0usize; 3];
    for case in 0..cases {
        let mut text = String::from(
            "apiVersion: mooring.dev/v1alpha1\nkind: Cluster\nmetadata: {name: c}\nspec: {tags: ",
        );
        let mut anchors = 0;
        generate(&mut rng, 2, &mut anchors, &mut text);
        text.push_str("}\n");
        for message in check(seed, case, &[(Path::new("gen.yaml").to_path_buf(), text)]) {
            for (i, what) in ["nesting deeper than", "is not supported", "recursive"]
                .iter()
                .enumerate()
            {
                limits_hit[i] += usize::from(message.contains(what));
            }
        }
    }
    // The generator reaches the limits it is there to exercise.
    assert!(limits_hit.iter().all(|&n| n > 0), "{limits_hit:?}");
}
