//! A bounded subset of the bundled scenarios (crash/restart, pause, partition, loss, clogs)
//! against real clusters, and the checker catching what a broken cluster would answer.

use std::path::{Path, PathBuf};

use cluster::check::{check, Context};
use cluster::procs::find_node_binary;
use cluster::run::{run, Options, Outcome};
use reports::model::RunOutcome;

/// The scenarios CI runs for real: one of each fault family the harness applies. Each takes a
/// few seconds of wall time (their faults end by 1.5 s; the liveness bound is only a bound).
const CI_SUBSET: [&str; 6] = [
    "baseline.toml",
    "crash-restart.toml",
    "pause-resume.toml",
    "partition-heal.toml",
    "net-drops.toml",
    "net-duplicates-clogs.toml",
];

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn options(seed: u64) -> Options {
    let node_bin = find_node_binary(None).unwrap_or_else(|e| panic!("{e}"));
    Options { node_bin, dir: std::env::temp_dir().join(format!("bftsim-cluster-it-{}", std::process::id())), seed }
}

/// One cluster at a time: each is 5 processes on a 2-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_file(file: &str, seed: u64) -> Outcome {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = sim::scenario::load(&scenarios().join(file)).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(run(&s, &options(seed))).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn the_ci_subset_of_bundled_scenarios_passes_against_real_processes() {
    for file in CI_SUBSET {
        let out = run_file(file, 1);
        let r = &out.record;
        assert!(r.violations.is_empty(), "{file}: {:?}", r.violations);
        assert_eq!(r.outcome, RunOutcome::Ok);
        assert!(r.real, "{file}: the record is not marked real");
        assert_eq!(
            (r.counts.decided + r.counts.escalated + r.counts.no_decision, r.counts.undecided),
            (r.counts.sessions, 0),
            "{file}: {r:?}"
        );
        // Every live honest node answered every acknowledged session.
        assert!(out.answers.values().all(Option::is_some), "{file}");
        assert!(out.answers.len() as u64 >= 4 * r.counts.sessions, "{file}: {} answers", out.answers.len());
        if file == "net-drops.toml" {
            assert!(r.messages.dropped > 0, "the proxy dropped nothing at 10% loss: {:?}", r.messages);
        }
        let _ = std::fs::remove_dir_all(&out.dir);
    }
}

/// The checks are not vacuous: a real run's history and answers, changed the way a broken
/// cluster would answer, are caught, each by its invariant.
#[test]
fn the_checker_catches_a_reused_id_a_changed_answer_a_disagreement_and_a_missing_decision() {
    let out = run_file("baseline.toml", 2);
    assert!(out.record.violations.is_empty(), "{:?}", out.record.violations);
    let (keyring, members) = &out.keys;
    let cx = Context { keyring, members, liveness: true, now_ms: 1 };
    let invariant = |history: &[cluster::client::Submission], answers: &cluster::check::Answers| {
        check(history, answers, &cx).map(|v| v.invariant)
    };
    assert_eq!(invariant(&out.history, &out.answers), None);

    // A restarted opener handing an acknowledged id out again.
    let mut reused = out.history.clone();
    reused[1].session = reused[0].session;
    assert_eq!(invariant(&reused, &out.answers).as_deref(), Some("acknowledged-durable"));

    // A node answering with a chosen candidate its certificate does not certify.
    let mut edited = out.answers.clone();
    let key = *edited.keys().next().unwrap_or_else(|| panic!("no answers"));
    if let Some(Some(v)) = edited.get_mut(&key) {
        let other = (v["chosen"].as_u64().unwrap_or(0) + 1) % 3;
        v["chosen"] = other.into();
    }
    assert_eq!(invariant(&out.history, &edited).as_deref(), Some("external-validity"));

    // Two nodes answering one session with certificates of different sessions' values.
    let mut split = out.answers.clone();
    let id0 = out.history[0].session.unwrap_or_else(|| panic!("not acknowledged"));
    let id1 = out.history[1].session.unwrap_or_else(|| panic!("not acknowledged"));
    let donor = split.get(&(1, id1)).cloned().flatten().unwrap_or_else(|| panic!("no answer"));
    if let Some(Some(v)) = split.get_mut(&(1, id0)) {
        v["certificate"] = donor["certificate"].clone();
    }
    let caught = invariant(&out.history, &split);
    assert!(matches!(caught.as_deref(), Some("external-validity") | Some("agreement")), "{caught:?}");

    // A node that never decides an acknowledged session.
    let mut missing = out.answers.clone();
    missing.insert((2, id0), None);
    assert_eq!(invariant(&out.history, &missing).as_deref(), Some("liveness"));
    let _ = std::fs::remove_dir_all(&out.dir);
}

/// A scenario the harness cannot run for real is refused with the reason, before any process
/// starts.
#[test]
fn a_disk_fault_scenario_is_refused_with_the_reason() {
    let s = sim::scenario::load(&scenarios().join("disk-full.toml")).unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let err = runtime.block_on(run(&s, &options(1))).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("disk faults") && err.contains("disk-full"), "{err}");
}
