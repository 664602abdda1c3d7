//! `bftsim run --shard I/N` and `bftsim merge`: shards of a run, merged, equal the unsharded
//! run: the same runs (scenario, seed, trace hash), in a deterministic order, and the same
//! summary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sim::exec::Job;
use sim::scenario;

use crate::scenarios;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bftsim-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

fn bftsim(args: &[&str], paths: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bftsim")).args(args).args(paths).output().unwrap_or_else(|e| panic!("{e}"))
}

fn run_into(out: &Path, shard: Option<&str>) {
    let mut args = vec!["run", "--seeds", "6", "--jobs", "2", "--quiet"];
    match shard {
        Some(shard) => args.extend(["--shard", shard]),
        // The unsharded run also writes its report at the end.
        None => args.push("--report"),
    }
    args.push("--out");
    let output = bftsim(&args, &[out, &scenarios().join("baseline.toml"), &scenarios().join("byz-silent.toml")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn records(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("runs.jsonl")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn runs(dir: &Path) -> BTreeSet<(String, u64, String)> {
    records(dir)
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("scenario"), r["seed"].as_u64().unwrap_or(u64::MAX), s("trace_hash"))
        })
        .collect()
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

#[test]
fn merged_shards_equal_the_unsharded_run() {
    let root = tempdir("shard");
    let whole = root.join("whole");
    run_into(&whole, None);
    assert!(whole.join("report.html").is_file() && whole.join("report.md").is_file(), "run --report wrote no report");
    let mut shards = Vec::new();
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        let dir = root.join(format!("shard-{i}"));
        run_into(&dir, Some(&format!("{i}/3")));
        assert_eq!(summary(&dir)["shard"], serde_json::json!({ "index": i, "count": 3 }));
        let mine = runs(&dir);
        assert_eq!(mine.len(), 4, "12 jobs over 3 shards");
        assert!(mine.iter().all(|r| seen.insert(r.clone())), "shards overlap");
        shards.push(dir);
    }
    let merged = root.join("merged");
    let mut args: Vec<&Path> = shards.iter().map(PathBuf::as_path).collect();
    args.reverse();
    let output = bftsim(&["merge", "--out", merged.to_str().unwrap_or_default()], &args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("merged 12 run(s) from 3 directories"));

    // The same runs, with the same trace hashes...
    assert_eq!(runs(&merged), runs(&whole));
    assert_eq!(runs(&merged).len(), 12);
    // ...sorted by (scenario order, seed): the unsharded records in that order, line for line.
    let mut expected = records(&whole);
    let order = |r: &serde_json::Value| (r["scenario"] != "baseline", r["seed"].as_u64());
    expected.sort_by_key(order);
    assert_eq!(records(&merged), expected);
    // ...and the same summary, apart from where it came from.
    let mut merged_summary = summary(&merged);
    assert_eq!(merged_summary["merged_from"].as_array().map(Vec::len), Some(3));
    if let Some(o) = merged_summary.as_object_mut() {
        o.remove("merged_from");
    }
    assert_eq!(merged_summary, summary(&whole));

    // `bftsim report` reads the merged directory like any run's.
    let report = root.join("report");
    let output =
        bftsim(&["report", merged.to_str().unwrap_or_default(), "--out", report.to_str().unwrap_or_default()], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for file in ["report.html", "report.md"] {
        assert!(report.join(file).is_file(), "{file} missing");
        assert!(stdout.contains(&report.join(file).display().to_string()), "{stdout}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn shards_must_be_within_their_count() {
    let root = tempdir("bad-shard");
    for bad in ["3/3", "0/0", "1", "x/2"] {
        let output =
            bftsim(&["run", "--seeds", "1", "--shard", bad, "--out"], &[&root, &scenarios().join("baseline.toml")]);
        assert_eq!(output.status.code(), Some(2), "--shard {bad}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("--shard"), "--shard {bad}");
    }
    // A missing shard is refused rather than merged into an incomplete result.
    let shard = root.join("shard-0");
    let output = bftsim(
        &["run", "--seeds", "2", "--quiet", "--shard", "0/2", "--out"],
        &[&shard, &scenarios().join("baseline.toml")],
    );
    assert!(output.status.success());
    let output = bftsim(&["merge", "--out", root.join("merged").to_str().unwrap_or_default()], &[&shard]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("shard(s) 1/2 missing"));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn shards_leave_the_verdict_to_the_merge() {
    // local-timeout-fallback first fails at seed 5: neither shard of seeds 0..2 finds its
    // expected violation. Each shard still exits 0; the merge reports the miss and exits 1.
    let root = tempdir("verdict");
    let file = scenarios().join("mut-local-timeout-fallback.toml");
    let mut shards = Vec::new();
    for shard in ["0/2", "1/2"] {
        let dir = root.join(shard.replace('/', "-of-"));
        let output = bftsim(&["run", "--seeds", "2", "--quiet", "--shard", shard, "--out"], &[&dir, &file]);
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
        assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("shard {shard}: the verdicts above")));
        shards.push(dir);
    }
    let paths: Vec<&Path> = shards.iter().map(PathBuf::as_path).collect();
    let output = bftsim(&["merge", "--out", root.join("merged").to_str().unwrap_or_default()], &paths);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("expected a agreement violation but found none"));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn merge_rebuilds_reproduce_commands_as_the_executor_does() {
    let path = scenarios().join("sweep-drop-byzantine.toml");
    let s = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    for (labels, point) in s.expand().unwrap_or_else(|e| panic!("{e}")) {
        let params: BTreeMap<String, String> = labels.into_iter().collect();
        let job = Job { scenario: Arc::new(point), path: path.clone(), params: params.clone(), seed: 17 };
        assert_eq!(sim::merge::reproduce_command(&path.display().to_string(), 17, &params), job.reproduce_command());
    }
}
