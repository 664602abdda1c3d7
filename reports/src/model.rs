//! What the report reads: `runs.jsonl` (one run record per line) and `summary.json`.
//!
//! These structs mirror only the fields the report uses of `sim`'s `RunRecord` and `Summary`.
//! Every field has a default and unknown fields are ignored, so a record with more (or fewer)
//! fields than this crate knows still parses: the simulator and the report can evolve apart.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::ReportError;

/// One run: one line of `runs.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Run {
    /// Scenario name; sweep points carry their labels, e.g. `sweep[network.drop=0.1]`.
    pub scenario: String,
    /// Sweep parameter values, axis → value (empty outside sweeps).
    #[serde(deserialize_with = "params_as_strings")]
    pub params: BTreeMap<String, String>,
    /// The seed.
    pub seed: u64,
    /// `ok`, `violation` or `expectation-failed`.
    pub outcome: String,
    /// The violations found (the simulator stops at the first).
    pub violations: Vec<Violation>,
    /// Sessions in the workload.
    pub sessions: u64,
    /// Sessions decided for a candidate (the fallback included).
    pub decided: u64,
    /// Decided sessions whose choice was the ground-truth best candidate.
    pub correct: u64,
    /// Sessions escalated to people.
    pub escalated: u64,
    /// Sessions agreed as "no decision".
    pub no_decision: u64,
    /// Sessions no honest agent decided by the end of the run.
    pub undecided: u64,
    /// Decided sessions that the timeout fallback decided.
    pub fallback: u64,
    /// Percentiles of the run's honest decision latencies.
    pub latency_ms: Latency,
    /// Honest decisions later than the SLA.
    pub sla_misses: u64,
    /// Mean agreement rate of decided sessions, in parts per million.
    pub agreement_ppm: u64,
    /// Byzantine agents of this run.
    pub byzantine: Vec<u64>,
    /// Agents the engine flagged.
    pub detected: Vec<u64>,
    /// Honest agents the engine flagged.
    pub wrongly_flagged: Vec<u64>,
    /// The seed's monitoring metrics over this run.
    pub metrics: Metrics,
    /// Titles of the alerts that fired.
    pub alerts: Vec<String>,
    /// Byzantine strategy, when the simulator records it.
    pub strategy: Option<String>,
    /// Detector, when the simulator records it.
    pub detector: Option<String>,
}

/// An invariant violation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Violation {
    /// Which invariant.
    pub invariant: String,
    /// Trace step.
    pub step: u64,
    /// Simulated time.
    pub time_ms: u64,
    /// What happened, in words.
    pub detail: String,
}

/// Latency percentiles of one run, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

impl Latency {
    /// Whether the run recorded any decision latency (a run without decisions has all zeros).
    pub fn is_recorded(&self) -> bool {
        self.max > 0 || self.p99 > 0
    }
}

/// The seed's `ConsensusMetrics`; rates are parts per million, times milliseconds. Read as
/// floating point so that integer or fractional encodings both parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct Metrics {
    pub average_consensus_time_ms: f64,
    pub p95_consensus_time_ms: f64,
    pub p99_consensus_time_ms: f64,
    pub timeout_rate: f64,
    pub consensus_success_rate: f64,
    pub average_agreement_rate: f64,
    pub byzantine_detection_rate: f64,
    pub active_agents: f64,
    pub quarantined_agents: f64,
    pub excluded_agents: f64,
    pub agent_performance_variance: f64,
}

/// `summary.json`: what the report takes from it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Seeds per scenario.
    pub seeds: u64,
    /// First seed.
    pub seed_start: u64,
    /// Whether every scenario met its expectations.
    pub passed: bool,
    /// Per scenario.
    pub scenarios: Vec<ScenarioSummary>,
}

/// One scenario of `summary.json`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ScenarioSummary {
    /// Scenario name (as in the run records).
    pub scenario: String,
    /// The scenario file.
    pub path: String,
    /// Whether the scenario expects safety to hold.
    pub expect_safety: Option<bool>,
    /// The invariant a mutation scenario expects to fail.
    pub expect_invariant: Option<String>,
    /// Failing seeds with their reproduce commands.
    pub failures: Vec<Failure>,
    /// Whether the scenario met its expectations.
    pub passed: Option<bool>,
}

/// A failing seed of `summary.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The command that replays it.
    pub reproduce: String,
}

impl Summary {
    /// The summary of `scenario`, if there is one.
    pub fn scenario(&self, scenario: &str) -> Option<&ScenarioSummary> {
        self.scenarios.iter().find(|s| s.scenario == scenario)
    }
}

/// Parses `runs.jsonl` text; blank lines are skipped. `path` only names the file in errors.
pub fn parse_runs(text: &str, path: &Path) -> Result<Vec<Run>, ReportError> {
    let mut runs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let run: Run = serde_json::from_str(line).map_err(|source| ReportError::BadRecord {
            path: path.to_path_buf(),
            line: index + 1,
            source,
        })?;
        runs.push(run);
    }
    Ok(runs)
}

/// Reads `runs.jsonl`.
pub fn read_runs(path: &Path) -> Result<Vec<Run>, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.to_path_buf(), source })?;
    parse_runs(&text, path)
}

/// Reads `summary.json` when it exists.
pub fn read_summary(path: &Path) -> Result<Option<Summary>, ReportError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReportError::Read { path: path.to_path_buf(), source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|source| ReportError::BadSummary {
        path: path.to_path_buf(),
        line: source.line(),
        column: source.column(),
        source,
    })
}

/// Accepts parameter values as strings, numbers or booleans (all shown as text).
fn params_as_strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_fields_are_tolerated() {
        let text = r#"{"scenario":"a","seed":3,"future_field":{"x":1},"latency_ms":{"p50":1,"p99":2}}

{"scenario":"b","params":{"n":4,"drop":"0.1","on":true},"decided":2,"strategy":"silent"}"#;
        let runs = parse_runs(text, Path::new("runs.jsonl")).unwrap();
        assert_eq!(runs.len(), 2, "the blank line is skipped");
        assert_eq!((runs[0].seed, runs[0].latency_ms.p99, runs[0].sessions), (3, 2, 0));
        assert_eq!(runs[1].params["n"], "4");
        assert_eq!(runs[1].params["drop"], "0.1");
        assert_eq!(runs[1].params["on"], "true");
        assert_eq!(runs[1].strategy.as_deref(), Some("silent"));
    }

    #[test]
    fn bad_lines_are_named_by_file_and_line() {
        let err = parse_runs("{}\n{\"seed\": \"x\"}\n", Path::new("in/runs.jsonl")).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("in/runs.jsonl:2:"), "{message}");
    }

    #[test]
    fn huge_numbers_parse() {
        let line = format!(
            r#"{{"sessions":{max},"latency_ms":{{"max":{max}}},"metrics":{{"timeout_rate":1e300}}}}"#,
            max = u64::MAX
        );
        let runs = parse_runs(&line, Path::new("r")).unwrap();
        assert_eq!(runs[0].sessions, u64::MAX);
        assert!(runs[0].latency_ms.is_recorded());
    }

    #[test]
    fn sim_records_parse() {
        let line = r#"{"scenario":"baseline","params":{},"seed":1,"outcome":"ok","violations":[{"invariant":"agreement","step":3,"time_ms":40,"detail":"d"}],"sessions":20,"decided":20,"correct":19,"escalated":0,"no_decision":0,"undecided":0,"fallback":0,"latency_ms":{"p50":94,"p95":139,"p99":144,"max":145},"sla_misses":0,"agreement_ppm":1000000,"byzantine":[4],"detected":[4],"wrongly_flagged":[],"messages":{"sent":1719,"delivered":1715,"dropped":0,"bytes":322563},"trace_hash":"74436a3dc72986d9","sim_time_ms":2066,"metrics":{"average_consensus_time_ms":98,"timeout_rate":0,"consensus_success_rate":1000000,"active_agents":5},"alerts":["Consensus SLA Violation"]}"#;
        let run = &parse_runs(line, Path::new("r")).unwrap()[0];
        assert_eq!(run.violations[0].invariant, "agreement");
        assert_eq!(run.metrics.consensus_success_rate, 1_000_000.0);
        assert_eq!(run.alerts, vec!["Consensus SLA Violation".to_owned()]);
    }
}
