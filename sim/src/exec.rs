//! Runs many (scenario, seed) jobs on worker threads, one madsim runtime per run, and hands each
//! record to the caller as soon as it is done (so results stream to disk).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use crate::oracle::Violation;
use crate::results::{RunOutcome, RunRecord, SessionCounts};
use crate::run::{run, RunOptions};
use crate::scenario::Scenario;

/// One run to do.
#[derive(Clone, Debug)]
pub struct Job {
    /// The scenario (sweep points already expanded).
    pub scenario: Arc<Scenario>,
    /// The file it came from.
    pub path: PathBuf,
    /// Sweep parameter values.
    pub params: BTreeMap<String, String>,
    /// The seed.
    pub seed: u64,
}

impl Job {
    /// The exact command that replays this run.
    pub fn reproduce_command(&self) -> String {
        crate::merge::reproduce_command(&self.path.display().to_string(), self.seed, &self.params)
    }
}

/// How to run.
#[derive(Clone, Copy, Debug)]
pub struct ExecOptions {
    /// Worker threads.
    pub jobs: usize,
    /// Run every seed twice and compare trace hashes.
    pub check_determinism: bool,
}

/// Runs one job, turning a panic (a simulator bug) into a reported violation.
pub fn run_job(job: &Job, check_determinism: bool) -> RunRecord {
    let attempt = || run(&job.scenario, job.seed, job.params.clone(), RunOptions::default()).record;
    let mut record = match catch_unwind(AssertUnwindSafe(attempt)) {
        Ok(record) => record,
        Err(panic) => return panicked(job, &panic),
    };
    if check_determinism {
        if let Ok(again) = catch_unwind(AssertUnwindSafe(attempt)) {
            if again.trace_hash != record.trace_hash {
                record.outcome = RunOutcome::Violation;
                record.violations.push(Violation {
                    invariant: "determinism".into(),
                    step: 0,
                    time_ms: 0,
                    detail: format!("trace hash {} then {} for the same seed", record.trace_hash, again.trace_hash),
                });
            }
        }
    }
    record
}

fn panicked(job: &Job, panic: &(dyn std::any::Any + Send)) -> RunRecord {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into());
    RunRecord {
        scenario: job.scenario.name.clone(),
        params: job.params.clone(),
        seed: job.seed,
        outcome: RunOutcome::Violation,
        violations: vec![Violation { invariant: "panic".into(), step: 0, time_ms: 0, detail: message }],
        counts: SessionCounts {
            sessions: job.scenario.workload.sessions,
            undecided: job.scenario.workload.sessions,
            ..SessionCounts::default()
        },
        deadline_ms: job.scenario.protocol.deadline_ms,
        agents: job.scenario.agents.count,
        sessions_over_sla: Some(0),
        network: crate::summary::network_condition(&job.scenario).to_owned(),
        families: crate::summary::families(&job.scenario),
        ..RunRecord::default()
    }
}

/// Runs every job on `options.jobs` threads; `on_record` sees each record (in completion order)
/// on the calling thread.
pub fn execute(jobs: &[Job], options: ExecOptions, on_record: impl FnMut(&Job, RunRecord)) {
    execute_until(jobs, options, &AtomicBool::new(false), on_record);
}

/// [`execute`], stopping early once `stop` is set (Ctrl-C, SIGTERM): no job starts after that,
/// the runs in flight finish and are handed to `on_record` like the others. Returns how many
/// jobs ran (all of them unless stopped).
pub fn execute_until(
    jobs: &[Job],
    options: ExecOptions,
    stop: &AtomicBool,
    mut on_record: impl FnMut(&Job, RunRecord),
) -> usize {
    let next = AtomicUsize::new(0);
    let mut ran = 0;
    let (tx, rx) = mpsc::channel::<(usize, RunRecord)>();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                if tx.send((i, run_job(job, options.check_determinism))).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for (i, record) in rx {
            if let Some(job) = jobs.get(i) {
                ran += 1;
                on_record(job, record);
            }
        }
    });
    debug_assert!(ran <= jobs.len(), "{ran} records for {} jobs", jobs.len());
    ran
}
