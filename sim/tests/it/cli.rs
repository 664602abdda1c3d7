//! The `bftsim` binary: run writes streamed results and a summary with reproduce commands,
//! reproduce replays the same trace hash, bad input gives exit code 2 and a located error.

use std::path::Path;
use std::process::Command;

use crate::scenarios;

fn bftsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bftsim"))
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bftsim-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

#[test]
fn run_then_reproduce_gives_the_same_trace_hash() {
    let out = tempdir("run");
    let status = bftsim()
        .args(["run", "--seeds", "3", "--jobs", "2", "--quiet", "--out"])
        .arg(&out)
        .arg(scenarios().join("baseline.toml"))
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{status:?}");
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap_or_default();
    let records: Vec<serde_json::Value> = runs.lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
    assert_eq!(records.len(), 3);
    for key in [
        "scenario",
        "seed",
        "outcome",
        "violations",
        "sessions",
        "decided",
        "correct",
        "escalated",
        "fallback",
        "latency_ms",
        "byzantine",
        "detected",
        "messages",
        "trace_hash",
        "coverage",
    ] {
        assert!(records[0].get(key).is_some(), "runs.jsonl lacks {key}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(summary["passed"], true);
    let seed = records[1]["seed"].as_u64().unwrap_or(0);
    let trace = out.join("trace.jsonl");
    let output = bftsim()
        .args(["reproduce", "--seed", &seed.to_string(), "--limit", "5", "--coverage", "--trace"])
        .arg(&trace)
        .arg(scenarios().join("baseline.toml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let hash = records[1]["trace_hash"].as_str().unwrap_or("?");
    assert!(stdout.contains(&format!("trace_hash {hash}")), "{stdout}");
    // --coverage lists the points by name: the decision rule fired in every baseline run.
    assert!(stdout.contains("coverage (point table version 2)") && stdout.contains("L50"), "{stdout}");
    // The trace file lets a separate tool re-check agreement: decide events carry value and honest.
    let events = std::fs::read_to_string(&trace).unwrap_or_default();
    let decides: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "decide")
        .collect();
    assert!(!decides.is_empty());
    for d in &decides {
        let keys = ["step", "time_ms", "kind", "agent", "session", "value", "honest"];
        // Structured fields, so that a checker never parses the prose of `detail`.
        for key in keys.into_iter().chain(["value_id", "round", "candidate", "method"]) {
            assert!(d.get(key).is_some(), "decide event lacks {key}: {d}");
        }
        assert_eq!(d["value_id"].as_str().map(str::len), Some(64), "{d}");
    }
    // Every detail is a sentence, never a Rust Debug dump of a struct.
    for line in events.lines() {
        let detail = serde_json::from_str::<serde_json::Value>(line).unwrap_or_default()["detail"].to_string();
        assert!(!detail.contains("{ ") && !detail.contains("Id("), "Debug text in {line}");
    }
}

#[test]
fn failing_scenarios_exit_1_and_print_the_reproduce_command() {
    let out = tempdir("fail");
    let file = out.join("broken.toml");
    let text = std::fs::read_to_string(scenarios().join("mut-skip-signature-check.toml")).unwrap_or_default();
    // The same broken protocol, but claiming to be safe: the run must fail and say how to replay.
    std::fs::write(
        &file,
        text.replace("safety = false", "safety = true").replace("invariant = \"evidence-sound\"\n", ""),
    )
    .unwrap_or_default();
    let output = bftsim()
        .args(["run", "--seeds", "2", "--quiet", "--out"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("bftsim reproduce {} --seed 0", file.display())), "{stdout}");
}

#[test]
fn bad_scenarios_exit_2_with_file_line_and_column() {
    let out = tempdir("bad");
    let file = out.join("bad.toml");
    std::fs::write(&file, "[agents]\ncount = 5\n[network]\ndrop = 1.7\n").unwrap_or_default();
    let output = bftsim().args(["check"]).arg(&file).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{}:4:", file.display())), "{stderr}");
    let output = bftsim().args(["run", "--seeds", "0"]).arg(&file).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn list_and_check_cover_the_bundled_suite() {
    let output = bftsim().args(["list", "--dir"]).arg(scenarios()).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success());
    // A header line says what is listed, then one line per file.
    let listed = String::from_utf8_lossy(&output.stdout).lines().count() - 1;
    let files = std::fs::read_dir(scenarios())
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "toml")).count())
        .unwrap_or(0);
    assert_eq!(listed, files);
    assert!(files >= 15);
    let output =
        bftsim().arg("check").arg(scenarios().join("baseline.toml")).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&output.stdout).contains("BFT quorum q = 4"));
}

/// Runs `bftsim` with `args` in `dir` and returns (exit code, stdout, stderr).
fn bftsim_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = bftsim().current_dir(dir).args(args).output().unwrap_or_else(|e| panic!("{e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code(), text(&output.stdout), text(&output.stderr))
}

/// `bftsim list | head -1` and the like: a reader that goes away early must not make any
/// subcommand panic; the command finishes its work and exits with its usual code. The test
/// closes the pipe before the child writes anything, so every write meets a closed pipe.
#[test]
fn a_closed_stdout_ends_quietly_with_the_usual_exit_code() {
    let out = tempdir("pipe");
    let baseline = scenarios().join("baseline.toml");
    let mutation = scenarios().join("mut-no-locking.toml");
    let run_out = out.join("run");
    let cases: Vec<(Vec<std::ffi::OsString>, i32)> = vec![
        (vec!["list".into(), "--dir".into(), scenarios().into()], 0),
        (vec!["reproduce".into(), baseline.clone().into(), "--seed".into(), "1".into()], 0),
        (vec!["reproduce".into(), mutation.into(), "--seed".into(), "5".into(), "--limit".into(), "5".into()], 1),
        (
            vec![
                "run".into(),
                baseline.clone().into(),
                "--seeds".into(),
                "3".into(),
                "--out".into(),
                run_out.clone().into(),
            ],
            0,
        ),
        (vec!["check".into(), baseline.into()], 0),
        (vec!["audit".into(), "--agents".into(), "9".into(), "--byzantine".into(), "3".into()], 1),
    ];
    for (args, code) in cases {
        let mut child = bftsim()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    }
    // The run still wrote its results although nobody read its table.
    assert!(run_out.join("summary.json").is_file());
    assert_eq!(std::fs::read_to_string(run_out.join("runs.jsonl")).unwrap_or_default().lines().count(), 3);
}

/// One exit-code contract for every subcommand: 0 when everything met its expectations, 1 for
/// a finding, 2 for a usage or input error.
#[test]
fn every_subcommand_follows_the_exit_code_contract() {
    let dir = tempdir("codes");
    let suite = scenarios();
    let path = |name: &str| suite.join(name).display().to_string();
    let low = dir.join("low-threshold.toml");
    std::fs::write(&low, "[agents]\ncount = 5\n[protocol]\nthreshold = 0.5\n").unwrap_or_default();
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap_or_default();
    let low = low.display().to_string();
    let empty = empty.display().to_string();
    let sweep = path("sweep-drop-byzantine.toml");
    let baseline = path("baseline.toml");
    let mutation = path("mut-no-locking.toml");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["check", &empty], 0, "ok; 1 sweep point(s)\n"),
        (vec!["check", &low], 1, "ERROR: the configuration audit below fails"),
        (vec!["check", "no-such-file.toml"], 2, ""),
        (vec!["audit"], 0, "BFT quorum q = 4"),
        (vec!["audit", "--agents", "9", "--byzantine", "3"], 1, "[ERROR] too-few-agents"),
        (vec!["audit", "--threshold", "1.5"], 2, ""),
        (vec!["reproduce", &baseline, "--seed", "1", "--limit", "0"], 0, "trace_hash"),
        (vec!["reproduce", &mutation, "--seed", "5", "--limit", "0"], 1, "VIOLATION lock-respected"),
        (vec!["reproduce", &sweep, "--seed", "3"], 2, ""),
        (vec!["reproduce", &baseline, "--seed", "1", "--kind", "nonsense"], 2, ""),
        (vec!["run", "--no-such-flag"], 2, ""),
        (vec!["explore", "--runs", "0"], 2, ""),
        (vec!["list", "--dir", "no-such-dir"], 2, ""),
    ];
    for (args, code, expected) in cases {
        let (status, stdout, stderr) = bftsim_in(&dir, &args);
        assert_eq!(status, Some(code), "{args:?}\nstdout: {stdout}\nstderr: {stderr}");
        assert!(stdout.contains(expected), "{args:?}: {stdout}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // A sweep without --set lists its points as commands to copy.
    let (_, _, stderr) = bftsim_in(&dir, &["reproduce", &sweep, "--seed", "3"]);
    assert!(stderr.contains("is a sweep of 12 points"), "{stderr}");
    assert!(stderr.contains("--seed 3 --set byzantine.count=2 --set network.drop=0.2"), "{stderr}");
    // More Byzantine agents than the committee tolerates: the run says so.
    let (_, _, stderr) =
        bftsim_in(&dir, &["run", "--seeds", "1", "--quiet", "--out", "o", &path("two-byzantine-of-five.toml")]);
    assert!(stderr.contains("exceeds f_max = 1"), "{stderr}");
}

/// Outside the repository `bftsim list` finds the bundled scenarios (of the repository it was
/// built from) and says where they are.
#[test]
fn list_works_from_any_directory() {
    let dir = tempdir("elsewhere");
    let (status, stdout, stderr) = bftsim_in(&dir, &["list"]);
    assert_eq!(status, Some(0), "{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("scenario file(s) in") && first.contains("scenarios"), "{first}");
    assert!(stdout.lines().any(|l| l.trim_start().starts_with("design-fallback ")), "{stdout}");
}

/// `reproduce`'s filters keep only matching events, and its session summary names rounds and
/// decisions.
#[test]
fn reproduce_filters_events_and_summarises_sessions() {
    let file = scenarios().join("baseline.toml");
    let output = bftsim()
        .arg("reproduce")
        .arg(&file)
        .args(["--seed", "1", "--session", "2", "--kind", "decide,send", "--agent", "3", "--limit", "10000"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events: Vec<&str> = stdout.lines().take_while(|l| !l.is_empty()).collect();
    assert!(!events.is_empty(), "{stdout}");
    for line in &events {
        assert!(line.contains(" s2 "), "{line}");
        assert!(line.contains(" decide ") || line.contains(" send "), "{line}");
        assert!(line.contains("a3"), "{line}");
        assert!(!line.contains("CandidateId(") && !line.contains("Some("), "debug text: {line}");
    }
    assert!(events.iter().any(|l| l.contains(" decide ") && l.contains(": candidate ")), "{stdout}");
    assert!(stdout.contains("sessions (rounds reached"), "{stdout}");
    assert!(stdout.lines().any(|l| l.trim_start().starts_with("s2 ") && l.contains("max round")), "{stdout}");
}
