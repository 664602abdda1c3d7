//! Interrupted runs: SIGINT or SIGTERM stops `bftsim run` cleanly (summary.json marked
//! interrupted, the finished runs kept, a resume command printed), and `--resume` completes
//! it without rerunning a finished (scenario, seed) pair, to the same runs as an uninterrupted
//! run. `bftsim explore` stops on SIGTERM as on Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::scenarios;

/// A child process killed when the test ends, whatever happens.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bftsim-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Waits (at most 2 minutes) until `file` holds a complete line.
fn wait_for_a_line(file: &Path, child: &mut Guard) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if std::fs::read_to_string(file).is_ok_and(|t| t.contains('\n')) {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("bftsim ended before writing a run: {status:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no run written to {} within 2 minutes", file.display());
}

/// Sends `signal` to the child with kill(1) (the workspace forbids `unsafe`, so no libc call)
/// and waits (at most 2 minutes) for it to end; returns its exit code.
fn signal_and_wait(child: &mut Guard, signal: &str) -> Option<i32> {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.0.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success(), "kill -{signal} failed");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(Some(status)) = child.0.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("bftsim did not stop within 2 minutes of SIG{signal}");
}

/// (scenario, seed) → trace hash of every line of a runs.jsonl; panics on a pair seen twice.
fn runs(dir: &Path) -> BTreeMap<(String, u64), String> {
    let text = std::fs::read_to_string(dir.join("runs.jsonl")).unwrap_or_default();
    let mut runs = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let key = (v["scenario"].as_str().unwrap_or("?").to_owned(), v["seed"].as_u64().unwrap_or(u64::MAX));
        let hash = v["trace_hash"].as_str().unwrap_or("?").to_owned();
        assert!(runs.insert(key.clone(), hash).is_none(), "{key:?} appears twice in {}", dir.display());
    }
    runs
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default()).unwrap_or_default()
}

fn run_command(out: &Path, seeds: u64, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bftsim"));
    command
        .args(["run", "--quiet", "--jobs", "2", "--seeds", &seeds.to_string(), "--out"])
        .arg(out)
        .arg(scenarios().join("baseline.toml"))
        .arg(scenarios().join("byz-silent.toml"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

#[test]
fn an_interrupted_run_resumes_to_the_runs_of_an_uninterrupted_one() {
    let dir = tempdir("interrupt");
    let partial = dir.join("partial");
    // Far more seeds than can run before the signal.
    let mut child = Guard(run_command(&partial, 1_000_000, &[]).spawn().unwrap_or_else(|e| panic!("{e}")));
    wait_for_a_line(&partial.join("runs.jsonl"), &mut child);
    let code = signal_and_wait(&mut child, "INT");
    assert_eq!(code, Some(130), "an interrupted run exits 130");
    let mut stdout = String::new();
    if let Some(mut pipe) = child.0.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stdout);
    }
    assert!(stdout.contains("--resume"), "{stdout}");
    let s = summary(&partial);
    assert_eq!(s["interrupted"], true, "{s}");
    let done = runs(&partial);
    assert!(!done.is_empty());
    assert_eq!(s["runs"].as_u64(), Some(done.len() as u64));
    // Merge refuses a partial directory until it is resumed.
    let merge = Command::new(env!("CARGO_BIN_EXE_bftsim"))
        .arg("merge")
        .arg(&partial)
        .arg("--out")
        .arg(dir.join("merged"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(merge.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&merge.stderr).contains("--resume"));
    // A run killed mid-write leaves half a line: resume drops it.
    let mut text = std::fs::read_to_string(partial.join("runs.jsonl")).unwrap_or_default();
    text.push_str("{\"scenario\":\"baseline\",\"se");
    std::fs::write(partial.join("runs.jsonl"), text).unwrap_or_default();

    // Resume a command whose seeds cover every finished run and a few more.
    let seeds = done.keys().map(|(_, seed)| seed + 1).max().unwrap_or(0) + 3;
    let resumed = run_command(&partial, seeds, &["--resume"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stdout));
    let whole = dir.join("whole");
    let uninterrupted = run_command(&whole, seeds, &[]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(uninterrupted.status.code(), Some(0));
    let (resumed_runs, whole_runs) = (runs(&partial), runs(&whole));
    assert_eq!(resumed_runs.len() as u64, 2 * seeds);
    assert_eq!(resumed_runs, whole_runs, "same (scenario, seed) pairs and trace hashes");
    for (key, hash) in &done {
        assert_eq!(resumed_runs.get(key), Some(hash), "a finished run changed: {key:?}");
    }
    let (a, b) = (summary(&partial), summary(&whole));
    assert_eq!(a["interrupted"], false);
    assert_eq!(a["runs"], b["runs"]);
    assert_eq!(a["passed"], b["passed"]);
    let resumed_scenarios = a["scenarios"].as_array().cloned().unwrap_or_default();
    let whole_scenarios = b["scenarios"].as_array().cloned().unwrap_or_default();
    for (x, y) in resumed_scenarios.iter().zip(&whole_scenarios) {
        for key in ["runs", "ok", "sessions", "decided", "correct", "late_decisions", "latency_p99_ms"] {
            assert_eq!(x[key], y[key], "{key} of {}", x["scenario"]);
        }
    }
    // A resume must repeat the interrupted command: runs it would not schedule are refused.
    let fewer = run_command(&partial, 1, &["--resume"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fewer.status.code(), Some(2));
}

#[test]
fn explore_stops_on_sigterm_and_writes_what_it_has() {
    let out = tempdir("explore-term");
    let mut child = Guard(
        Command::new(env!("CARGO_BIN_EXE_bftsim"))
            .args(["explore", "--seed", "1", "--runs", "1000000", "--jobs", "1", "--quiet", "--out"])
            .arg(&out)
            .arg("--envelope")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/small-envelope.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    wait_for_a_line(&out.join("runs.jsonl"), &mut child);
    let code = signal_and_wait(&mut child, "TERM");
    assert!(matches!(code, Some(130) | Some(1)), "{code:?}: 130, or 1 if it had a finding");
    let explore: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("explore.json")).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(explore["interrupted"], true, "{explore}");
}
