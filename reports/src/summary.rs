//! `summary.json`: what one `bftsim run` did per scenario, written by `sim` (which fills it in
//! run by run with [`ScenarioSummary::add`]) and read back by the report and by `bftsim merge`,
//! one type for both.
//!
//! Compatibility: every field has a default (`#[serde(default)]` on the structs) and unknown
//! fields are ignored, so a summary written before a field existed, or by hand, still loads. A
//! scenario without `expect_safety` reads as expecting safety (the scenario file's default).
//! The JSON Schema is `docs/schemas/summary.schema.json`.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{params_as_strings, RunOutcome, RunRecord, SessionCounts, WrongByCause};
use crate::ReportError;

/// `summary.json` (without the shard and merge bookkeeping `sim` adds around it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Summary {
    /// Seeds per scenario.
    pub seeds: u64,
    /// First seed.
    pub seed_start: u64,
    /// Runs in total.
    pub runs: u64,
    /// Whether every scenario met its expectations.
    pub passed: bool,
    /// Per scenario, in the order they were given.
    pub scenarios: Vec<ScenarioSummary>,
}

impl Summary {
    /// The summary of `scenario`, if there is one.
    pub fn scenario(&self, scenario: &str) -> Option<&ScenarioSummary> {
        self.scenarios.iter().find(|s| s.scenario == scenario)
    }
}

/// A failing seed and how to replay it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The invariant violated.
    pub invariant: String,
    /// The trace step of the violation.
    pub step: u64,
    /// Simulated time of the violation.
    pub time_ms: u64,
    /// The exact command that replays it.
    pub reproduce: String,
}

/// What one scenario (one sweep point) did over all its seeds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ScenarioSummary {
    /// Scenario name (as in the run records; sweep points carry their labels).
    pub scenario: String,
    /// The scenario file.
    pub path: String,
    /// Sweep parameters, axis → value (numbers and booleans are read as their text).
    #[serde(deserialize_with = "params_as_strings")]
    pub params: BTreeMap<String, String>,
    /// Whether the scenario expects safety to hold (true when absent: the scenario file's
    /// default).
    #[serde(default = "expects_safety")]
    pub expect_safety: bool,
    /// The invariant expected to fail (safety = false).
    pub expect_invariant: Option<String>,
    /// Runs.
    pub runs: u64,
    /// Runs without a violation.
    pub ok: u64,
    /// Violations by invariant.
    pub violations: BTreeMap<String, u64>,
    /// Runs whose violation was not the expected invariant.
    pub expectation_failed: u64,
    /// How the sessions of all runs ended (`sessions`, `decided`, `correct`, … as fields of
    /// the scenario itself in `summary.json`).
    #[serde(flatten)]
    pub counts: SessionCounts,
    /// Wrong decisions by cause (the honest votes alone too, or caused by the Byzantine
    /// agents) and by honest margin, over the runs within the tolerance (at most f_max
    /// Byzantine agents); absent in summaries written before it.
    pub wrong_by_cause: WrongByCause,
    /// Honest decisions (one per honest agent and session) later than the deadline. Summaries
    /// written before the rename call it `sla_misses`.
    #[serde(alias = "sla_misses")]
    pub late_decisions: u64,
    /// Median over runs of the run's p50 latency.
    pub latency_p50_ms: u64,
    /// Median over runs of the run's p99 latency.
    pub latency_p99_ms: u64,
    /// Largest latency seen.
    pub latency_max_ms: u64,
    /// Messages sent over all runs.
    pub messages_sent: u64,
    /// The first failing seeds (at most 10), with reproduce commands.
    pub failures: Vec<Failure>,
    /// Whether the scenario met its `[expect]`.
    pub passed: bool,
    /// What the scenario file sets (`sim::summary::settings`); absent in summaries written
    /// before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<ScenarioSettings>,
    #[serde(skip)]
    p50s: Vec<u64>,
    #[serde(skip)]
    p99s: Vec<u64>,
}

fn expects_safety() -> bool {
    true
}

impl ScenarioSummary {
    /// An empty summary for a scenario.
    pub fn new(
        scenario: String,
        path: String,
        params: BTreeMap<String, String>,
        expect_safety: bool,
        expect_invariant: Option<String>,
    ) -> ScenarioSummary {
        ScenarioSummary { scenario, path, params, expect_safety, expect_invariant, ..ScenarioSummary::default() }
    }

    /// The same summary with the scenario's settings, for the report.
    pub fn with_settings(mut self, settings: ScenarioSettings) -> ScenarioSummary {
        self.settings = Some(settings);
        self
    }

    /// Folds in one run; `reproduce` gives its replay command when the run is a kept failure.
    pub fn add(&mut self, record: &RunRecord, reproduce: impl FnOnce() -> String) {
        self.runs += 1;
        match record.outcome {
            RunOutcome::Ok => self.ok += 1,
            RunOutcome::ExpectationFailed => self.expectation_failed += 1,
            RunOutcome::Violation => {}
        }
        if let Some(v) = record.violations.first() {
            *self.violations.entry(v.invariant.clone()).or_default() += 1;
            // Keep the 10 lowest failing seeds, whatever order the runs finish in.
            let worth_keeping = self.failures.len() < 10 || self.failures.iter().any(|f| f.seed > record.seed);
            if worth_keeping {
                self.failures.push(Failure {
                    seed: record.seed,
                    invariant: v.invariant.clone(),
                    step: v.step,
                    time_ms: v.time_ms,
                    reproduce: reproduce(),
                });
                self.failures.sort_by_key(|f| f.seed);
                self.failures.truncate(10);
            }
        }
        self.counts.add(&record.counts);
        if record.byzantine.len() as u64 <= consensus_core::quorum::f_max(u64::from(record.agents)) {
            self.wrong_by_cause.merge(&record.wrong_by_cause);
        }
        self.late_decisions += record.late_decisions;
        self.messages_sent += record.messages.sent;
        self.latency_max_ms = self.latency_max_ms.max(record.latency_ms.max);
        self.p50s.push(record.latency_ms.p50);
        self.p99s.push(record.latency_ms.p99);
    }

    /// Computes medians and the verdict once every run is in.
    pub fn finish(&mut self) {
        self.failures.sort_by_key(|f| f.seed);
        self.latency_p50_ms = median(&mut self.p50s);
        self.latency_p99_ms = median(&mut self.p99s);
        let violated: u64 = self.violations.values().sum();
        self.passed = if self.expect_safety {
            violated == 0
        } else {
            match &self.expect_invariant {
                Some(name) => self.violations.get(name).copied().unwrap_or(0) > 0,
                None => violated > 0,
            }
        };
    }

    /// One line of the table `bftsim run` prints, the scenario name padded to `name_width`
    /// (never cut: see [`ScenarioSummary::name_width`]). A scenario that decided nothing has no
    /// latency: its p99 shows as "—", not 0.
    pub fn table_row(&self, name_width: usize) -> String {
        let pct = |x: u64| if self.counts.sessions == 0 { 0.0 } else { x as f64 * 100.0 / self.counts.sessions as f64 };
        let violated: u64 = self.violations.values().sum();
        let expect = if self.expect_safety {
            "safe".to_owned()
        } else {
            format!("finds {}", self.expect_invariant.as_deref().unwrap_or("a violation"))
        };
        let p99 = if self.counts.decided == 0 { "—".to_owned() } else { self.latency_p99_ms.to_string() };
        format!(
            "{:<name_width$} {:>6} {:>6} {:>7.1}% {:>7.1}% {:>6.1}% {:>6.1}% {:>7} {:>7}  {:<28} {}",
            self.scenario,
            self.runs,
            violated,
            pct(self.counts.decided),
            pct(self.counts.correct),
            pct(self.counts.escalated + self.counts.no_decision + self.counts.undecided),
            pct(self.counts.influenced),
            p99,
            self.late_decisions,
            expect,
            if self.passed { "PASS" } else { "FAIL" }
        )
    }

    /// The width of the scenario column for `summaries`: the longest name (sweep points carry
    /// their labels), at least 20 characters.
    pub fn name_width(summaries: &[ScenarioSummary]) -> usize {
        summaries.iter().map(|s| s.scenario.chars().count()).max().unwrap_or(0).max(20)
    }

    /// The table header, the scenario column `name_width` wide.
    pub fn table_header(name_width: usize) -> String {
        format!(
            "{:<name_width$} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7}  {:<28} {}",
            "scenario",
            "seeds",
            "viol",
            "decided",
            "correct",
            "other",
            "byz-inf",
            "p99 ms",
            "late",
            "expect",
            "verdict"
        )
    }
}

fn median(values: &mut [u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[(values.len() - 1) / 2]
}

/// What a scenario file sets: the `settings` of a scenario in `summary.json`, written by `sim`
/// (`sim::summary::settings`) and shown by the report next to each scenario. Every field has a
/// default so that a summary without some of them still loads; enum values are the names the
/// scenario file uses (`equivocate`, `mean-deviation`, `simple-majority`…).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ScenarioSettings {
    /// One line from the file's `description`.
    pub description: String,
    /// `[agents] count`: the committee size n.
    pub agents: u32,
    /// `[byzantine] count`.
    pub byzantine: u32,
    /// `[byzantine] strategy`.
    pub strategy: String,
    /// `[protocol] threshold`, a fraction.
    pub threshold: f64,
    /// `[protocol] deadline_ms`: the session deadline, which is the SLA.
    pub deadline_ms: u64,
    /// `[protocol] fallback`.
    pub fallback: String,
    /// `[protocol] detector`.
    pub detector: String,
    /// `[protocol] mutation` (`none` for the real protocol).
    pub mutation: String,
    /// `[workload] sessions`.
    pub sessions: u64,
    /// `[workload] candidates`.
    pub candidates: u32,
    /// `[workload] concurrency`.
    pub concurrency: u64,
    /// `[network] drop`, a probability.
    pub drop: f64,
    /// `[network] duplicate`, a probability.
    pub duplicate: f64,
    /// `[network] latency_ms`: the uniform latency range.
    pub latency_ms: [u64; 2],
    /// `[network] tail` in words (`pareto scale 5 ms, shape 1.5, max 2000 ms`), empty for none.
    pub tail: String,
    /// `[[faults]]` in time order.
    pub faults: Vec<FaultSetting>,
}

/// One timed fault of a scenario file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct FaultSetting {
    /// When it happens, in simulated ms.
    pub at_ms: u64,
    /// `partition`, `heal`, `crash`, `restart`, `clog`, `unclog`.
    pub kind: String,
    /// Its target in words (`groups [0, 1] | [2, 3, 4]`, `agent 2`, `link 0–3`), empty for `heal`.
    pub target: String,
}

/// Reads `summary.json` when it exists.
pub fn read_summary(path: &Path) -> Result<Option<Summary>, ReportError> {
    crate::read_json_if_exists(path, "summary.json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LatencySummary, Violation, WrongCause};

    fn record(seed: u64, violation: Option<&str>) -> RunRecord {
        RunRecord {
            scenario: "s".into(),
            seed,
            outcome: if violation.is_some() { RunOutcome::Violation } else { RunOutcome::Ok },
            violations: violation
                .map(|v| Violation { invariant: v.into(), step: 3, time_ms: 40, detail: String::new() })
                .into_iter()
                .collect(),
            counts: SessionCounts { sessions: 10, decided: 9, correct: 8, escalated: 1, ..SessionCounts::default() },
            latency_ms: LatencySummary { p50: 50, p95: 90, p99: 100 + seed, max: 120 + seed },
            agreement_ppm: 900_000,
            deadline_ms: 500,
            agents: 5,
            sessions_over_sla: Some(0),
            ..RunRecord::default()
        }
    }

    #[test]
    fn safe_scenarios_pass_only_without_violations() {
        let mut s = ScenarioSummary::new("s".into(), "p".into(), BTreeMap::new(), true, None);
        s.add(&record(1, None), String::new);
        s.add(&record(2, None), String::new);
        s.finish();
        assert!(s.passed);
        assert_eq!((s.latency_p99_ms, s.latency_max_ms), (101, 122));
        assert_eq!((s.counts.sessions, s.counts.decided, s.counts.escalated), (20, 18, 2));
        s.add(&record(3, Some("agreement")), || "bftsim reproduce p --seed 3".into());
        s.finish();
        assert!(!s.passed);
        assert_eq!(s.failures[0].reproduce, "bftsim reproduce p --seed 3");
        assert_eq!((s.failures[0].step, s.failures[0].time_ms), (3, 40));
    }

    #[test]
    fn mutation_scenarios_pass_only_when_their_invariant_fails() {
        let mut s = ScenarioSummary::new("m".into(), "p".into(), BTreeMap::new(), false, Some("agreement".into()));
        s.add(&record(1, None), String::new);
        s.finish();
        assert!(!s.passed);
        s.add(&record(2, Some("liveness")), String::new);
        s.finish();
        assert!(!s.passed, "another invariant is not the expected finding");
        s.add(&record(3, Some("agreement")), String::new);
        s.finish();
        assert!(s.passed);
    }

    /// Wrong decisions by cause are summed over the runs within f_max only.
    #[test]
    fn wrong_decisions_by_cause_count_runs_within_the_tolerance() {
        let mut s = ScenarioSummary::new("s".into(), "p".into(), BTreeMap::new(), true, None);
        let mut within = record(1, None);
        within.byzantine = vec![4];
        within.wrong_by_cause.add(WrongCause::Byzantine, 1);
        let mut beyond = within.clone();
        beyond.byzantine = vec![3, 4];
        s.add(&within, String::new);
        s.add(&beyond, String::new);
        assert_eq!((s.wrong_by_cause.byzantine, s.wrong_by_cause.total()), (1, 1), "5 agents tolerate 1");
        assert_eq!(s.wrong_by_cause.by_margin.len(), 1);
    }

    /// What the simulator writes reads back as the same value (the run-time medians aside),
    /// and a summary with only some fields, numbers as sweep values and unknown fields loads.
    #[test]
    fn written_summaries_read_back_and_sparse_ones_load() {
        let mut s =
            ScenarioSummary::new("s".into(), "p".into(), BTreeMap::from([("n".into(), "4".into())]), true, None)
                .with_settings(ScenarioSettings { agents: 4, ..ScenarioSettings::default() });
        s.add(&record(1, Some("agreement")), || "bftsim reproduce p --seed 1".into());
        s.finish();
        let summary = Summary { seeds: 1, seed_start: 1, runs: 1, passed: s.passed, scenarios: vec![s] };
        let json = serde_json::to_string(&summary).unwrap_or_default();
        assert!(json.contains(r#""expectation_failed":0,"sessions":10,"decided":9,"#), "counts are fields: {json}");
        let back: Summary = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(serde_json::to_string(&back).unwrap_or_default(), json);
        let sparse = r#"{"scenarios":[{"scenario":"a","params":{"n":4},"passed":true,"future":1},
                        {"scenario":"b","expect_safety":false,"failures":[{"seed":2,"reproduce":"r"}]}]}"#;
        let read: Summary = serde_json::from_str(sparse).unwrap_or_default();
        let a = read.scenario("a").cloned().unwrap_or_default();
        assert!(a.expect_safety && a.passed, "an absent expectation is safety");
        assert_eq!(a.params["n"], "4");
        let b = read.scenario("b").cloned().unwrap_or_default();
        assert!(!b.expect_safety && !b.passed);
        assert_eq!((b.failures[0].seed, b.failures[0].step), (2, 0));
    }
}
