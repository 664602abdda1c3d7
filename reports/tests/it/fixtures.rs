//! Small synthetic result sets written to fresh temporary directories.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use reports::{generate, ReportOptions, ReportOutput};
use serde_json::{json, Value};

/// The report of [`sample_records`] and [`sample_summary`] with the title "My title", generated
/// once and shared by the tests that only read it.
pub fn sample_report() -> &'static ReportOutput {
    static REPORT: OnceLock<ReportOutput> = OnceLock::new();
    REPORT.get_or_init(|| {
        let input = write_input("sample-in", &sample_records(), Some(&sample_summary()));
        let options = ReportOptions { title: "My title".into() };
        generate(&input, &temp_dir("sample-out"), &options).expect("sample report")
    })
}

/// A fresh, empty directory under the system temp dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bftsim-reports-it-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// One run record as `bftsim run` writes it (plus whatever `extra` sets or adds).
pub fn record(scenario: &str, seed: u64, counts: [u64; 7], extra: Value) -> Value {
    let [sessions, decided, correct, escalated, no_decision, undecided, fallback] = counts;
    let p = 90 + (seed % 100) * 7;
    let mut r = json!({
        "scenario": scenario, "params": {}, "seed": seed, "outcome": "ok", "violations": [],
        "sessions": sessions, "decided": decided, "correct": correct, "escalated": escalated,
        "no_decision": no_decision, "undecided": undecided, "fallback": fallback,
        "latency_ms": {"p50": p, "p95": p * 2, "p99": p * 3, "max": p * 4},
        "sla_misses": 0, "agreement_ppm": 900_000 + (seed % 10) * 10_000,
        "byzantine": [], "detected": [], "wrongly_flagged": [],
        "messages": {"sent": 100, "delivered": 99, "dropped": 1, "bytes": 1000},
        "trace_hash": "00", "sim_time_ms": 1000,
        "metrics": {"average_consensus_time_ms": p, "p95_consensus_time_ms": p * 2, "p99_consensus_time_ms": p * 3,
                    "max_consensus_time_ms": p * 4, "timeout_rate": 0, "consensus_success_rate": 1_000_000,
                    "average_agreement_rate": 950_000, "byzantine_detection_rate": 0, "active_agents": 5,
                    "quarantined_agents": 0, "excluded_agents": 0, "agent_performance_variance": 1200,
                    "sessions": sessions, "sla_misses": 0},
        "alerts": []
    });
    if let (Some(target), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    r
}

/// A result set with plain scenarios, Byzantine agents, a mutation with violations, a
/// two-axis sweep with a missing point, a one-axis sweep, a single run without decisions and a
/// record with fields this crate does not know.
pub fn sample_records() -> Vec<Value> {
    let mut runs = Vec::new();
    for seed in 0..3 {
        runs.push(record("baseline", seed, [10, 10, 10, 0, 0, 0, 0], json!({})));
    }
    for seed in 0..2 {
        runs.push(record(
            "byz-collude",
            seed,
            [10, 9, 8, 1, 0, 0, 1],
            json!({"byzantine": [3, 4], "detected": [4], "wrongly_flagged": if seed == 0 { json!([1]) } else { json!([]) },
                   "alerts": ["Low Consensus Success Rate"], "a_future_field": {"nested": [1, 2, 3]}}),
        ));
    }
    runs.push(record(
        "mut-quorum",
        0,
        [10, 4, 3, 0, 0, 6, 0],
        json!({"outcome": "violation", "byzantine": [2],
               "violations": [{"invariant": "agreement", "step": 41, "time_ms": 230, "detail": "agent-1 and agent-2 decided differently"}],
               "alerts": ["Low Consensus Success Rate", "Consensus SLA Violation"]}),
    ));
    runs.push(record(
        "mut-quorum",
        1,
        [10, 2, 2, 0, 0, 8, 0],
        json!({"outcome": "violation", "byzantine": [2],
               "violations": [{"invariant": "agreement", "step": 7, "time_ms": 90, "detail": "second violation"}]}),
    ));
    for (count, drop, decided) in [("0", "0.0", 5), ("1", "0.0", 4), ("0", "0.1", 3)] {
        for seed in 0..2 {
            let name = format!("sw[byzantine.count={count},network.drop={drop}]");
            let params = json!({"byzantine.count": count, "network.drop": drop});
            runs.push(record(&name, seed, [5, decided, decided, 0, 0, 5 - decided, 0], json!({"params": params})));
        }
    }
    for n in ["4", "7", "10"] {
        let name = format!("line[agents.count={n}]");
        runs.push(record(&name, 0, [5, 5, 5, 0, 0, 0, 0], json!({"params": {"agents.count": n}})));
    }
    runs.push(record(
        "single",
        9,
        [3, 0, 0, 0, 0, 3, 0],
        json!({"latency_ms": {"p50": 0, "p95": 0, "p99": 0, "max": 0}, "agreement_ppm": 0}),
    ));
    runs
}

/// `summary.json` for [`sample_records`] (only the fields the report reads, plus some it does not).
pub fn sample_summary() -> Value {
    json!({
        "seeds": 3, "seed_start": 0, "runs": 18, "passed": false,
        "scenarios": [
            {"scenario": "baseline", "path": "scenarios/baseline.toml", "params": {}, "expect_safety": true, "passed": true, "failures": []},
            {"scenario": "byz-collude", "path": "scenarios/byz-collude.toml", "params": {}, "expect_safety": true, "passed": true, "failures": [],
             "settings": {"agents": 5, "byzantine": 2, "strategy": "collude", "detector": "median-mad", "deadline_ms": 500}},
            {"scenario": "mut-quorum", "path": "scenarios/mut-quorum.toml", "params": {}, "expect_safety": false,
             "expect_invariant": "agreement", "passed": true,
             "failures": [{"seed": 0, "invariant": "agreement", "step": 41, "time_ms": 230,
                           "reproduce": "bftsim reproduce scenarios/mut-quorum.toml --seed 0"}]},
            {"scenario": "sw[byzantine.count=1,network.drop=0.0]", "path": "scenarios/sw.toml",
             "params": {"byzantine.count": "1", "network.drop": "0.0"}, "expect_safety": true, "passed": false, "failures": []}
        ]
    })
}

/// Writes `records` as `runs.jsonl` (and `summary` as `summary.json`) into a new temp dir.
pub fn write_input(name: &str, records: &[Value], summary: Option<&Value>) -> PathBuf {
    let dir = temp_dir(name);
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    fs::write(dir.join("runs.jsonl"), lines.join("\n") + "\n").expect("write runs.jsonl");
    if let Some(summary) = summary {
        fs::write(dir.join("summary.json"), summary.to_string()).expect("write summary.json");
    }
    dir
}
