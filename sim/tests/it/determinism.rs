//! One seed determines a run: the same (scenario, seed) gives the same trace hash whatever the
//! thread count and however many runs came before it on the thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use sim::exec::{execute, ExecOptions, Job};
use sim::scenario;

use crate::scenarios;

fn jobs(files: &[&str], seeds: std::ops::Range<u64>) -> Vec<Job> {
    let mut jobs = Vec::new();
    for file in files {
        let path = scenarios().join(file);
        let s = Arc::new(scenario::load(&path).unwrap_or_else(|e| panic!("{e}")));
        for seed in seeds.clone() {
            jobs.push(Job { scenario: s.clone(), path: path.clone(), params: BTreeMap::new(), seed });
        }
    }
    jobs
}

fn hashes(jobs: &[Job], threads: usize) -> BTreeMap<(String, u64), String> {
    let mut out = BTreeMap::new();
    execute(jobs, ExecOptions { jobs: threads, check_determinism: false }, |job, record| {
        out.insert((job.scenario.name.clone(), job.seed), record.trace_hash);
    });
    out
}

#[test]
fn trace_hashes_do_not_depend_on_threads_or_order() {
    let files = ["baseline.toml", "byz-equivocate.toml", "net-drops.toml", "crash-restart.toml", "partition-heal.toml"];
    let forward = jobs(&files, 0..12);
    let one_thread = hashes(&forward, 1);
    let mut backward = forward.clone();
    backward.reverse();
    let two_threads = hashes(&backward, 2);
    assert_eq!(one_thread.len(), forward.len());
    assert_eq!(one_thread, two_threads);
    // Different seeds do give different runs.
    let distinct: std::collections::BTreeSet<_> = one_thread.values().collect();
    assert!(distinct.len() > forward.len() / 2, "{} distinct hashes of {}", distinct.len(), forward.len());
}

#[test]
fn check_determinism_flags_nothing_on_the_real_simulator() {
    let jobs = jobs(&["byz-random.toml", "net-latency-tail.toml"], 0..5);
    execute(&jobs, ExecOptions { jobs: 2, check_determinism: true }, |job, record| {
        assert!(
            record.violations.iter().all(|v| v.invariant != "determinism"),
            "{} seed {}: {:?}",
            job.scenario.name,
            job.seed,
            record.violations
        );
    });
}
