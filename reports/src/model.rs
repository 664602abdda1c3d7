//! The records bftsim writes and the report reads: [`RunRecord`] (one line of `runs.jsonl`,
//! shared with `sim`, which re-exports it from `sim::results`). `summary.json` is
//! [`crate::summary`].
//!
//! Compatibility: every field of [`RunRecord`] has a default (`#[serde(default)]` on the
//! struct) and unknown fields are ignored, so a `runs.jsonl` written before a field existed
//! still loads. Fields added later say what their default means for old records.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use consensus_core::metrics::ConsensusMetrics;
use consensus_core::TimeMs;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ReportError;

/// The SLA a record without `deadline_ms` is judged against: the design's 500 ms
/// (consensus-core's `metrics::SLA_MS`).
pub const DEFAULT_DEADLINE_MS: u64 = 500;

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// No invariant was violated.
    #[default]
    Ok,
    /// An invariant was violated.
    Violation,
    /// A violation of another invariant than the one the scenario expects (safety = false).
    ExpectationFailed,
}

/// The first invariant violation of a run, as the oracle reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Violation {
    /// Which invariant.
    pub invariant: String,
    /// The trace step at which it was detected.
    pub step: u64,
    /// Simulated time.
    pub time_ms: TimeMs,
    /// What happened, in words.
    pub detail: String,
}

/// Latency percentiles over every honest decision of the run (decide time − open time), in ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

impl LatencySummary {
    /// Nearest-rank percentiles of `samples` (any order).
    pub fn of(samples: &mut [u64]) -> LatencySummary {
        if samples.is_empty() {
            return LatencySummary::default();
        }
        samples.sort_unstable();
        let rank = |p: u64| {
            let n = samples.len() as u64;
            let k = (n * p).div_ceil(100).max(1);
            samples[usize::try_from(k - 1).unwrap_or(0).min(samples.len() - 1)]
        };
        LatencySummary { p50: rank(50), p95: rank(95), p99: rank(99), max: samples[samples.len() - 1] }
    }

    /// Whether the run recorded any decision latency (a run without decisions has all zeros).
    pub fn is_recorded(&self) -> bool {
        self.max > 0 || self.p99 > 0
    }
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct MessageCounts {
    /// Frames handed to the network.
    pub sent: u64,
    /// Frames that reached a live agent.
    pub delivered: u64,
    /// Frames lost to drops, partitions, clogs or crashed recipients.
    pub dropped: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// How sessions ended, counted: the counters a run record, a scenario summary and the
/// report's totals share (one definition, one way to add them up). In `runs.jsonl` and
/// `summary.json` they are fields of the record or scenario itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SessionCounts {
    /// Sessions in the workload.
    pub sessions: u64,
    /// Sessions decided for a candidate (the fallback included).
    pub decided: u64,
    /// Decided sessions whose choice was the ground-truth best candidate.
    pub correct: u64,
    /// Sessions escalated to people.
    pub escalated: u64,
    /// Sessions agreed as "no decision" by the engine.
    pub no_decision: u64,
    /// Sessions no honest agent decided by the end of the run.
    pub undecided: u64,
    /// Decided sessions that the timeout fallback decided.
    pub fallback: u64,
    /// Byzantine influence: sessions whose first honest decision differs from what the engine
    /// gives on the honest agents' votes alone (another candidate, a candidate where the honest
    /// votes give none, or an escalation / "no decision" they would not give). Only runs with
    /// Byzantine agents count any; 0 in records written before the field existed.
    pub influenced: u64,
    /// Sessions escalated or agreed "no decision" that the honest votes alone would not
    /// decide either: honest disagreement, not Byzantine influence. 0 in records written before
    /// the field existed (and in runs without Byzantine agents, where every escalation is honest).
    pub honest_unresolved: u64,
}

impl SessionCounts {
    /// Adds `other`'s counters to these (saturating).
    pub fn add(&mut self, other: &SessionCounts) {
        let pairs = [
            (&mut self.sessions, other.sessions),
            (&mut self.decided, other.decided),
            (&mut self.correct, other.correct),
            (&mut self.escalated, other.escalated),
            (&mut self.no_decision, other.no_decision),
            (&mut self.undecided, other.undecided),
            (&mut self.fallback, other.fallback),
            (&mut self.influenced, other.influenced),
            (&mut self.honest_unresolved, other.honest_unresolved),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// Decided sessions whose choice was not the best candidate.
    pub fn wrong(&self) -> u64 {
        self.decided.saturating_sub(self.correct)
    }
}

/// One run: the record `bftsim run` writes as one line of `runs.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RunRecord {
    /// Scenario name; sweep points carry their labels, e.g. `sweep[network.drop=0.1]`.
    pub scenario: String,
    /// Sweep parameter values, axis → value (empty outside sweeps). Numbers and booleans are
    /// read as their text.
    #[serde(deserialize_with = "params_as_strings")]
    pub params: BTreeMap<String, String>,
    /// The seed.
    pub seed: u64,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The violation found, if any (at most one: the first stops the run).
    pub violations: Vec<Violation>,
    /// How the run's sessions ended (`sessions`, `decided`, `correct`, … as fields of the
    /// record itself in `runs.jsonl`).
    #[serde(flatten)]
    pub counts: SessionCounts,
    /// Latency of honest decisions.
    pub latency_ms: LatencySummary,
    /// Honest decisions (one per honest agent and session) later than `deadline_ms`. Not the
    /// same count as `metrics.sla_misses` (the design's metric: sessions slower than 500 ms) nor
    /// `sessions_over_sla` (sessions whose first honest decision came after `deadline_ms`).
    /// Records written before the rename call it `sla_misses`.
    #[serde(alias = "sla_misses")]
    pub late_decisions: u64,
    /// Mean agreement rate of decided sessions, in parts per million.
    pub agreement_ppm: u64,
    /// Byzantine agents of this run.
    pub byzantine: Vec<u32>,
    /// Agents the engine flagged in decided sessions.
    pub detected: Vec<u32>,
    /// Honest agents the engine flagged.
    pub wrongly_flagged: Vec<u32>,
    /// Network counters.
    pub messages: MessageCounts,
    /// Hash of every send, delivery, drop, timeout, decision and fault, in order.
    pub trace_hash: String,
    /// Simulated time at the end of the run.
    pub sim_time_ms: u64,
    /// The design's monitoring metrics (its `ConsensusMetrics`) over this run. Missing fields
    /// read as zero.
    #[serde(deserialize_with = "lenient")]
    pub metrics: ConsensusMetrics,
    /// Titles of the design's alerts that fired.
    pub alerts: Vec<String>,
    /// The scenario's session deadline (`[protocol] deadline_ms`): the SLA this run is judged
    /// against. Records written before the field existed read as the design's 500 ms.
    pub deadline_ms: u64,
    /// Agents in the committee (`[agents] count`); 0 in records written before the field
    /// existed (the report then falls back to the scenario settings or the metrics).
    pub agents: u32,
    /// Sessions whose first honest decision came later than `deadline_ms` ("sessions over the
    /// SLA"; undecided sessions are not counted here). `None` in records written before the
    /// field existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_over_sla: Option<u64>,
    /// The run's harshest network condition, one of [`crate::aggregate::NETWORK_CONDITIONS`]
    /// (round partitions count as partitions); empty in records written before the field
    /// existed (the report then reads the scenario settings).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// The fault families the run's scenario has, by name (see
    /// [`crate::aggregate::FAMILIES`]): network faults, timed faults, round faults and the
    /// Byzantine behaviours (`byzantine: equivocate`); empty in records written before it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<String>,
    /// Wrong decisions by cause and by honest margin; all zero in records written before it.
    pub wrong_by_cause: WrongByCause,
    /// The protocol coverage of the honest agents: which rules fired, which checks passed or
    /// failed, which rejections and abstract states occurred (docs/coverage.md). `None` in
    /// records written before the field existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::coverage::CoverageRecord>,
    /// A run of real `bftsim-node` processes (`bftsim-cluster`: SIGKILL, SIGSTOP, a proxy for
    /// the network) rather than a simulation; false in records written before it. Such a
    /// run's `sim_time_ms` is wall-clock time, its `trace_hash` is empty (real runs are not
    /// deterministic) and its `messages` are the proxy's frame counts.
    #[serde(skip_serializing_if = "is_false")]
    pub real: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Wrong decisions (sessions decided for a candidate other than the best) split by cause: the
/// honest votes alone would have made them too (evaluator noise, close candidates), or the
/// Byzantine agents caused them (the session was influenced, [`RunRecord::influenced`]), or
/// the run cannot tell (fewer than q honest agents voted); and by honest margin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct WrongByCause {
    /// The honest votes alone give the same wrong decision; in runs without Byzantine agents
    /// every wrong decision.
    pub honest: u64,
    /// The Byzantine agents caused them: the honest votes alone give another outcome.
    pub byzantine: u64,
    /// Not judged: fewer than q honest agents voted in the session.
    pub unjudged: u64,
    /// Byzantine-caused wrong decisions whose honest margin exceeds the influence bound
    /// (docs/protocol.md): 0 unless the invariant `influence-bound` failed (or the run is
    /// beyond f_max, or agreement is by weight, where the bound is not promised).
    pub beyond_bound: u64,
    /// The same decisions by honest margin (honest votes supporting the best candidate minus
    /// those supporting the chosen one), ascending.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_margin: Vec<MarginCount>,
}

/// Wrong decisions of one honest margin, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct MarginCount {
    /// Honest votes for the best candidate minus honest votes for the chosen one (negative:
    /// the honest agents themselves preferred the chosen candidate).
    pub margin: i64,
    /// Wrong decisions the honest votes alone would also have made.
    pub honest: u64,
    /// Wrong decisions the Byzantine agents caused.
    pub byzantine: u64,
    /// Wrong decisions not judged.
    pub unjudged: u64,
}

/// Why a session was decided wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrongCause {
    /// The honest votes alone decide the same.
    Honest,
    /// The Byzantine agents changed the outcome.
    Byzantine,
    /// Too few honest votes to tell.
    Unjudged,
}

impl WrongByCause {
    /// Counts one wrong decision.
    pub fn add(&mut self, cause: WrongCause, margin: i64) {
        let mut one = MarginCount { margin, ..MarginCount::default() };
        match cause {
            WrongCause::Honest => one.honest = 1,
            WrongCause::Byzantine => one.byzantine = 1,
            WrongCause::Unjudged => one.unjudged = 1,
        }
        let (honest, byzantine, unjudged) = (one.honest, one.byzantine, one.unjudged);
        self.merge(&WrongByCause { honest, byzantine, unjudged, beyond_bound: 0, by_margin: vec![one] });
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &WrongByCause) {
        self.honest = self.honest.saturating_add(other.honest);
        self.byzantine = self.byzantine.saturating_add(other.byzantine);
        self.unjudged = self.unjudged.saturating_add(other.unjudged);
        self.beyond_bound = self.beyond_bound.saturating_add(other.beyond_bound);
        for m in &other.by_margin {
            let at = match self.by_margin.binary_search_by_key(&m.margin, |x| x.margin) {
                Ok(at) => at,
                Err(at) => {
                    self.by_margin.insert(at, MarginCount { margin: m.margin, ..MarginCount::default() });
                    at
                }
            };
            let row = &mut self.by_margin[at];
            row.honest = row.honest.saturating_add(m.honest);
            row.byzantine = row.byzantine.saturating_add(m.byzantine);
            row.unjudged = row.unjudged.saturating_add(m.unjudged);
        }
    }

    /// Every wrong decision counted.
    pub fn total(&self) -> u64 {
        self.honest.saturating_add(self.byzantine).saturating_add(self.unjudged)
    }
}

impl Default for RunRecord {
    fn default() -> Self {
        RunRecord {
            scenario: String::new(),
            params: BTreeMap::new(),
            seed: 0,
            outcome: RunOutcome::Ok,
            violations: Vec::new(),
            counts: SessionCounts::default(),
            latency_ms: LatencySummary::default(),
            late_decisions: 0,
            agreement_ppm: 0,
            byzantine: Vec::new(),
            detected: Vec::new(),
            wrongly_flagged: Vec::new(),
            messages: MessageCounts::default(),
            trace_hash: String::new(),
            sim_time_ms: 0,
            metrics: ConsensusMetrics::default(),
            alerts: Vec::new(),
            deadline_ms: DEFAULT_DEADLINE_MS,
            agents: 0,
            sessions_over_sla: None,
            network: String::new(),
            families: Vec::new(),
            wrong_by_cause: WrongByCause::default(),
            coverage: None,
            real: false,
        }
    }
}

impl RunRecord {
    /// Sessions over the SLA: `sessions_over_sla`, or for records without it the metrics'
    /// count of sessions slower than 500 ms when the deadline is 500 ms (the same definition);
    /// `None` when neither is known.
    pub fn sessions_over_sla(&self) -> Option<u64> {
        self.sessions_over_sla.or_else(|| (self.deadline_ms == DEFAULT_DEADLINE_MS).then_some(self.metrics.sla_misses))
    }

    /// Decided sessions whose choice was not the best candidate.
    pub fn wrong(&self) -> u64 {
        self.counts.wrong()
    }
}

/// Parses `runs.jsonl` text; blank lines are skipped. `path` only names the file in errors.
pub fn parse_runs(text: &str, path: &Path) -> Result<Vec<RunRecord>, ReportError> {
    let mut runs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let run: RunRecord = serde_json::from_str(line).map_err(|source| ReportError::BadRecord {
            path: path.to_path_buf(),
            line: index + 1,
            source,
        })?;
        runs.push(run);
    }
    Ok(runs)
}

/// Reads `runs.jsonl`.
pub fn read_runs(path: &Path) -> Result<Vec<RunRecord>, ReportError> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.to_path_buf(), source })?;
    parse_runs(&text, path)
}

/// Reads a JSON object over the default value of `T`: fields it lacks keep their defaults
/// (for types, like consensus-core's, that do not default their fields themselves).
fn lenient<'de, D: Deserializer<'de>, T: Default + Serialize + DeserializeOwned>(
    deserializer: D,
) -> Result<T, D::Error> {
    use serde::de::Error as _;
    let given = Option::<serde_json::Value>::deserialize(deserializer)?;
    let Some(serde_json::Value::Object(given)) = given else {
        return Ok(T::default());
    };
    let mut merged = serde_json::to_value(T::default()).map_err(D::Error::custom)?;
    if let serde_json::Value::Object(base) = &mut merged {
        base.extend(given);
    }
    serde_json::from_value(merged).map_err(D::Error::custom)
}

/// Accepts parameter values as strings, numbers or booleans (all shown as text).
pub(crate) fn params_as_strings<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
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
    fn session_counts_add_up_and_stay_fields_of_the_record() {
        let mut total = SessionCounts { sessions: 3, decided: 2, correct: 1, escalated: 1, ..SessionCounts::default() };
        total.add(&SessionCounts { sessions: 2, decided: 2, correct: 2, influenced: 1, ..SessionCounts::default() });
        assert_eq!((total.sessions, total.decided, total.correct, total.escalated), (5, 4, 3, 1));
        assert_eq!((total.influenced, total.wrong()), (1, 1));
        total.add(&SessionCounts { sessions: u64::MAX, ..SessionCounts::default() });
        assert_eq!(total.sessions, u64::MAX);
        // In runs.jsonl the counters are fields of the record itself, in their old order.
        let record = RunRecord { counts: SessionCounts { sessions: 4, decided: 3, ..total }, ..RunRecord::default() };
        let json = serde_json::to_string(&record).unwrap_or_default();
        assert!(json.contains(r#""violations":[],"sessions":4,"decided":3,"correct":3,"escalated":1,"#), "{json}");
        assert!(!json.contains("counts"), "{json}");
        let back: RunRecord = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, record);
    }

    #[test]
    fn unknown_and_missing_fields_are_tolerated() {
        let text = r#"{"scenario":"a","seed":3,"future_field":{"x":1},"latency_ms":{"p50":1,"p99":2}}

{"scenario":"b","params":{"n":4,"drop":"0.1","on":true},"decided":2,"strategy":"silent","metrics":null}"#;
        let runs = parse_runs(text, Path::new("runs.jsonl")).unwrap();
        assert_eq!(runs.len(), 2, "the blank line is skipped");
        assert_eq!((runs[0].seed, runs[0].latency_ms.p99, runs[0].counts.sessions), (3, 2, 0));
        assert_eq!(runs[1].params["n"], "4");
        assert_eq!(runs[1].params["drop"], "0.1");
        assert_eq!(runs[1].params["on"], "true");
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
            r#"{{"sessions":{max},"latency_ms":{{"max":{max}}},"metrics":{{"timeout_rate":4294967295}}}}"#,
            max = u64::MAX
        );
        let runs = parse_runs(&line, Path::new("r")).unwrap();
        assert_eq!(runs[0].counts.sessions, u64::MAX);
        assert!(runs[0].latency_ms.is_recorded());
        assert_eq!(runs[0].metrics.timeout_rate.raw(), u32::MAX);
    }

    #[test]
    fn sim_records_parse() {
        let line = r#"{"scenario":"baseline","params":{},"seed":1,"outcome":"ok","violations":[{"invariant":"agreement","step":3,"time_ms":40,"detail":"d"}],"sessions":20,"decided":20,"correct":19,"escalated":0,"no_decision":0,"undecided":0,"fallback":0,"latency_ms":{"p50":94,"p95":139,"p99":144,"max":145},"sla_misses":3,"agreement_ppm":1000000,"byzantine":[4],"detected":[4],"wrongly_flagged":[],"messages":{"sent":1719,"delivered":1715,"dropped":0,"bytes":322563},"trace_hash":"74436a3dc72986d9","sim_time_ms":2066,"metrics":{"average_consensus_time_ms":98,"timeout_rate":0,"consensus_success_rate":1000000,"active_agents":5},"alerts":["Consensus SLA Violation"]}"#;
        let run = &parse_runs(line, Path::new("r")).unwrap()[0];
        assert_eq!(run.violations[0].invariant, "agreement");
        assert_eq!(run.metrics.consensus_success_rate.raw(), 1_000_000);
        assert_eq!(run.metrics.active_agents, 5);
        assert_eq!(run.alerts, vec!["Consensus SLA Violation".to_owned()]);
        assert_eq!(run.deadline_ms, DEFAULT_DEADLINE_MS, "old records are judged against the design's 500 ms");
        assert_eq!(run.sessions_over_sla(), Some(0), "the metrics' 500 ms count stands in");
        assert_eq!(run.late_decisions, 3, "the old name of late_decisions is still read");
        let written = serde_json::to_string(run).unwrap();
        assert!(written.contains(r#""late_decisions":3"#) && !written.contains(r#""sla_misses":3"#), "{written}");
    }

    #[test]
    fn records_round_trip_and_new_fields_are_read() {
        let record = RunRecord {
            scenario: "s".into(),
            seed: 4,
            deadline_ms: 1000,
            agents: 7,
            sessions_over_sla: Some(2),
            violations: vec![Violation { invariant: "agreement".into(), step: 1, time_ms: 2, detail: "d".into() }],
            coverage: Some(crate::coverage::CoverageRecord { version: 1, points: "0a".into() }),
            ..RunRecord::default()
        };
        let line = serde_json::to_string(&record).unwrap();
        let back = &parse_runs(&line, Path::new("r")).unwrap()[0];
        assert_eq!(back, &record);
        let mut old = record.clone();
        old.sessions_over_sla = None;
        assert_eq!(old.sessions_over_sla(), None, "a 1000 ms deadline cannot use the 500 ms count");
        assert!(!serde_json::to_string(&old).unwrap().contains("sessions_over_sla"));
        old.coverage = None;
        assert!(!serde_json::to_string(&old).unwrap().contains("coverage"), "absent coverage is not written");
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        let s = LatencySummary::of(&mut samples);
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50, 95, 99, 100));
        assert_eq!(LatencySummary::of(&mut []), LatencySummary::default());
        assert_eq!(LatencySummary::of(&mut [7]).p99, 7);
    }

    #[test]
    fn outcome_names_are_kebab_case() {
        let json = serde_json::to_string(&RunOutcome::ExpectationFailed).unwrap_or_default();
        assert_eq!(json, "\"expectation-failed\"");
    }
}
