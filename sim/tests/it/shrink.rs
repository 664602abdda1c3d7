//! `bftsim shrink`: every mutation's failure shrinks to a strictly smaller scenario that still
//! violates the same invariant at the same seed, and the file it writes replays that failure.

use std::process::Command;

use sim::run::{run, RunOptions};
use sim::scenario::{self, Scenario};
use sim::shrink::{self, ShrinkOptions};

use crate::scenarios;

/// The mutation scenarios with the first seed each fails at (when this test was written).
const MUTATIONS: [(&str, u64); 4] = [
    ("mut-quorum-one-short.toml", 0),
    ("mut-skip-signature-check.toml", 0),
    ("mut-local-timeout-fallback.toml", 5),
    ("mut-no-locking.toml", 5),
];

fn first_violation(s: &Scenario, seed: u64) -> Option<String> {
    run(s, seed, Default::default(), RunOptions::default()).record.violations.first().map(|v| v.invariant.clone())
}

/// The scenario and a seed at which it violates its expected invariant: the recorded seed, or,
/// if the protocol has changed since, the first such seed from 0 (as the mutation tests do).
fn failing(file: &str, recorded: u64) -> (Scenario, u64, String) {
    let s = scenario::load(&scenarios().join(file)).unwrap_or_else(|e| panic!("{e}"));
    let expected = s.expect.invariant.clone().unwrap_or_else(|| panic!("{file} names no invariant"));
    let seed = std::iter::once(recorded)
        .chain(0..1_000)
        .find(|&seed| first_violation(&s, seed).as_deref() == Some(expected.as_str()))
        .unwrap_or_else(|| panic!("{file}: no {expected} violation in 1,000 seeds"));
    (s, seed, expected)
}

#[test]
fn every_mutation_shrinks_to_a_smaller_scenario_that_fails_the_same_way() {
    let mut report = Vec::new();
    for (file, recorded) in MUTATIONS {
        let (original, seed, expected) = failing(file, recorded);
        let shrunk = shrink::shrink(&original, ShrinkOptions::default(), |c| shrink::violation_at(c, seed), |_| {})
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(shrunk.invariant, expected, "{file}");
        assert_eq!(shrunk.original_size, shrink::size(&original));
        assert!(
            shrunk.size < shrunk.original_size,
            "{file} seed {seed}: size {} → {}",
            shrunk.original_size,
            shrunk.size
        );
        assert!(shrunk.runs <= ShrinkOptions::default().max_runs);
        // What the file will say is what the run does: read back, it fails the same way.
        let out = std::env::temp_dir().join(format!("bftsim-it-shrink-{}-{file}", std::process::id()));
        let text = shrink::render(&shrunk, &scenarios().join(file), &[], seed, &out);
        let back = scenario::parse(&text, &out).unwrap_or_else(|e| panic!("{file}: {e}\n{text}"));
        assert_eq!(first_violation(&back, seed).as_deref(), Some(expected.as_str()), "{file}\n{text}");
        assert_eq!(shrink::size(&back), shrunk.size);
        // Only counts, rates and faults changed.
        assert_eq!((back.protocol, back.byzantine.strategy), (original.protocol, original.byzantine.strategy));
        assert_eq!(back.expect, original.expect);
        report.push(format!("{file} seed {seed}: {expected}, size {} → {}", shrunk.original_size, shrunk.size));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_shrink_command_writes_a_file_that_reproduces_the_failure() {
    let dir = std::env::temp_dir().join(format!("bftsim-it-shrink-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // The default output path is out/<stem>-seed<S>.min.toml under the working directory.
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let (_, seed, _) = failing("mut-quorum-one-short.toml", 0);
    let output = Command::new(env!("CARGO_BIN_EXE_bftsim"))
        .current_dir(&dir)
        .args(["shrink", "--seed", &seed.to_string()])
        .arg(scenarios().join("mut-quorum-one-short.toml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let file = format!("out/mut-quorum-one-short-seed{seed}.min.toml");
    let command = format!("bftsim reproduce {file} --seed {seed}");
    assert!(stdout.contains(&command), "{stdout}");
    let text = std::fs::read_to_string(dir.join(&file)).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.starts_with("# Minimized by `bftsim shrink` from "), "{text}");
    assert!(text.contains(&format!("at seed {seed}: still violates `agreement`")), "{text}");
    assert!(text.lines().count() <= 15, "the minimized file is short:\n{text}");
    assert!(scenario::load(&dir.join(&file)).is_ok_and(|s| s.sweep.is_empty()));
    let replay = Command::new(env!("CARGO_BIN_EXE_bftsim"))
        .current_dir(&dir)
        .args(["reproduce", &file, "--seed", &seed.to_string(), "--limit", "0"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replay.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("VIOLATION agreement"));

    // A seed without a failure is an error, and nothing is written.
    let clean = Command::new(env!("CARGO_BIN_EXE_bftsim"))
        .current_dir(&dir)
        .args(["shrink", "--seed", "0", "--out", "clean.toml"])
        .arg(scenarios().join("baseline.toml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(clean.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&clean.stderr).contains("violates no invariant"));
    assert!(!dir.join("clean.toml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
