//! The test cargo-mutants runs on every mutant (`scripts/mutants.sh`, docs/mutations.md,
//! "A mutation score nobody tuned"): the default `bftsim explore`, in-process, at a fixed master
//! seed, until its first finding or 2,000 runs. It fails on a finding and prints at which run
//! (`MUTANTS-FOUND run=<k> ...`), so the table can tell a mutant caught within 500 runs from one
//! caught within 2,000; on the correct protocol it passes (cargo-mutants' baseline checks that).
//!
//! Ignored in ordinary `cargo test` (CI): it runs only with `--ignored`. Its own binary (not a
//! module of `tests/it`) so that a mutant rebuilds this one small file, not the whole suite.
//! Environment: `MUTANTS_SEED` (master seed, default 1), `MUTANTS_RUNS` (budget, default
//! 2,000), `MUTANTS_JOBS` (worker threads, default 1: the shards of a mutation run share the
//! machine's cores).
#![cfg(madsim)]

use std::sync::atomic::AtomicBool;

use sim::explore::envelope::Envelope;
use sim::explore::{explore, ExploreConfig};
use sim::results::RunOutcome;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}")),
        Err(_) => default,
    }
}

/// The first failing run of an exploration: (run number, invariant, detail).
type First = Option<(u64, String, String)>;

#[test]
#[ignore = "the mutation-testing oracle: run by scripts/mutants.sh through cargo-mutants"]
fn explore_finds_nothing() {
    let master = env_u64("MUTANTS_SEED", 1);
    let runs = env_u64("MUTANTS_RUNS", 2_000);
    let jobs = usize::try_from(env_u64("MUTANTS_JOBS", 1)).unwrap_or(1);
    let config = ExploreConfig {
        envelope: Envelope::default(),
        envelope_name: "default".into(),
        master,
        runs,
        time: None,
        jobs,
        mode: None,
        // The code itself is mutated: the protocol option stays the correct protocol.
        mutation: "none".into(),
        shard: None,
        until_found: true,
        // Only whether and when: no finding is shrunk or written.
        shrink_runs: 1,
        max_findings: 0,
        // The default explore, as users run it: no corpus guidance.
        guided: false,
        generation: sim::explore::generate::guided::GENERATION,
    };
    let out = std::env::temp_dir().join(format!("bftsim-mutants-{}", std::process::id()));
    let mut first: First = None;
    let summary = explore(&config, &out, &AtomicBool::new(false), |done| {
        if done.record.outcome != RunOutcome::Ok && first.as_ref().is_none_or(|f| done.k < f.0) {
            let (invariant, detail) = done
                .record
                .violations
                .first()
                .map_or(("unknown".to_owned(), String::new()), |v| (v.invariant.clone(), v.detail.clone()));
            first = Some((done.k, invariant, detail));
        }
    });
    let _ = std::fs::remove_dir_all(&out);
    let summary = summary.unwrap_or_else(|e| panic!("explore failed: {e}"));
    if let Some((k, invariant, detail)) = first {
        // k counts from 0: the finding is the (k + 1)-th run.
        panic!(
            "MUTANTS-FOUND run={} invariant={invariant} master={master}\n  {detail}\n  replay: bftsim explore --seed {master} --emit {k}",
            k + 1
        );
    }
    println!("MUTANTS-CLEAN runs={} master={master}", summary.runs);
    assert_eq!(summary.runs, runs, "every run of the budget ran");
}
