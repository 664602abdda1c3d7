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
        .args(["reproduce", "--seed", &seed.to_string(), "--limit", "5", "--trace"])
        .arg(&trace)
        .arg(scenarios().join("baseline.toml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let hash = records[1]["trace_hash"].as_str().unwrap_or("?");
    assert!(stdout.contains(&format!("trace_hash {hash}")), "{stdout}");
    // The trace file lets a separate tool re-check agreement: decide events carry value and honest.
    let events = std::fs::read_to_string(&trace).unwrap_or_default();
    let decides: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "decide")
        .collect();
    assert!(!decides.is_empty());
    for d in &decides {
        for key in ["step", "time_ms", "kind", "agent", "session", "value", "honest"] {
            assert!(d.get(key).is_some(), "decide event lacks {key}: {d}");
        }
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
        text.replace("safety = false", "safety = true").replace("invariant = \"external-validity\"\n", ""),
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
    let listed = String::from_utf8_lossy(&output.stdout).lines().count();
    let files = std::fs::read_dir(scenarios())
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "toml")).count())
        .unwrap_or(0);
    assert_eq!(listed, files);
    assert!(files >= 15);
    let output =
        bftsim().arg("check").arg(scenarios().join("baseline.toml")).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&output.stdout).contains("BFT quorum q = 4"));
    let _ = Path::new("");
}
