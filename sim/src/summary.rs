//! Per-scenario aggregation of run records (`summary.json`) and the verdict on each scenario's
//! `[expect]`.

use std::collections::BTreeMap;

pub use reports::model::{FaultSetting, ScenarioSettings};
use serde::{Deserialize, Serialize};

use crate::results::{RunOutcome, RunRecord, SessionCounts, WrongByCause};
use crate::scenario::{ClogTarget, FaultAction, Scenario};

/// A failing seed and how to replay it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The invariant violated.
    pub invariant: String,
    /// Step and simulated time of the violation.
    pub step: u64,
    /// Simulated time.
    pub time_ms: u64,
    /// The exact command that replays it.
    pub reproduce: String,
}

/// What one scenario (one sweep point) did over all its seeds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    /// Scenario name.
    pub scenario: String,
    /// File.
    pub path: String,
    /// Sweep parameters.
    pub params: BTreeMap<String, String>,
    /// Whether the scenario expects safety to hold.
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
    #[serde(default)]
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
    /// What the scenario file sets (see [`settings`]); absent in summaries written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ScenarioSettings>,
    #[serde(skip)]
    p50s: Vec<u64>,
    #[serde(skip)]
    p99s: Vec<u64>,
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

    /// Folds in one run.
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
        self.counts.sessions += record.counts.sessions;
        self.counts.decided += record.counts.decided;
        self.counts.correct += record.counts.correct;
        self.counts.escalated += record.counts.escalated;
        self.counts.no_decision += record.counts.no_decision;
        self.counts.undecided += record.counts.undecided;
        self.counts.fallback += record.counts.fallback;
        self.counts.influenced += record.counts.influenced;
        self.counts.honest_unresolved += record.counts.honest_unresolved;
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

/// What `scenario` sets, as the report shows it next to the scenario.
pub fn settings(scenario: &Scenario) -> ScenarioSettings {
    let network = &scenario.network;
    let tail = network.tail.map_or_else(String::new, |t| {
        format!("{} scale {} ms, shape {}, max {} ms", name(&t.kind), t.scale_ms, t.shape, t.max_ms)
    });
    let mut faults: Vec<FaultSetting> = scenario.faults.iter().map(|f| fault_setting(f.at_ms, &f.action)).collect();
    faults.sort_by_key(|f| f.at_ms);
    ScenarioSettings {
        description: scenario.description.lines().next().unwrap_or_default().trim().to_owned(),
        agents: scenario.agents.count,
        byzantine: scenario.byzantine.count,
        strategy: name(&scenario.byzantine.strategy),
        threshold: scenario.protocol.threshold,
        deadline_ms: scenario.protocol.deadline_ms,
        fallback: name(&scenario.protocol.fallback),
        detector: name(&scenario.protocol.detector),
        mutation: name(&scenario.protocol.mutation),
        sessions: scenario.workload.sessions,
        candidates: scenario.workload.candidates,
        concurrency: scenario.workload.concurrency,
        drop: network.drop,
        duplicate: network.duplicate,
        latency_ms: network.latency_ms,
        tail,
        faults,
    }
}

/// The harshest network condition of `scenario`, by the report's names
/// (`reports::aggregate::NETWORK_CONDITIONS`): partition (timed or by round), crash and
/// restart, clogs, latency tail, message loss, duplicates, else none. Recorded in every run
/// record, so that generated runs (each with its own faults) are placed by their own.
pub fn network_condition(scenario: &Scenario) -> &'static str {
    let has = |kind: fn(&FaultAction) -> bool| scenario.faults.iter().any(|f| kind(&f.action));
    let conditions = reports::aggregate::NETWORK_CONDITIONS;
    if has(|a| matches!(a, FaultAction::Partition { .. })) || !scenario.round_partitions.is_empty() {
        conditions[6]
    } else if has(|a| matches!(a, FaultAction::Crash { .. })) {
        conditions[5]
    } else if has(|a| matches!(a, FaultAction::Clog { .. } | FaultAction::Pause { .. })) {
        conditions[4]
    } else if scenario.network.tail.is_some() {
        conditions[3]
    } else if scenario.network.drop > 0.0 {
        conditions[2]
    } else if scenario.network.duplicate > 0.0 {
        conditions[1]
    } else {
        conditions[0]
    }
}

/// The fault families `scenario` has, in the order of `reports::aggregate::FAMILIES`, then one
/// `byzantine: NAME` per Byzantine behaviour: what the report's per-family table groups runs by.
pub fn families(scenario: &Scenario) -> Vec<String> {
    let has = |kind: fn(&FaultAction) -> bool| scenario.faults.iter().any(|f| kind(&f.action));
    let defaults = crate::scenario::Protocol::default();
    let p = &scenario.protocol;
    let present = [
        scenario.network.drop > 0.0,
        scenario.network.duplicate > 0.0,
        scenario.network.tail.is_some(),
        // Above the default prevote timeout: rounds time out before their messages arrive.
        scenario.network.latency_ms[1] > defaults.timeout_prevote_ms,
        has(|a| matches!(a, FaultAction::Partition { .. })),
        has(|a| matches!(a, FaultAction::Crash { .. })),
        has(|a| matches!(a, FaultAction::Clog { .. } | FaultAction::Pause { .. })),
        !scenario.round_partitions.is_empty(),
        !scenario.tamper.is_empty(),
        p.timeout_propose_ms < defaults.timeout_propose_ms || p.timeout_delta_ms < defaults.timeout_delta_ms,
    ];
    let mut out: Vec<String> = reports::aggregate::FAMILIES
        .iter()
        .zip(present)
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    if scenario.byzantine.count > 0 {
        out.extend(scenario.byzantine.behaviours().into_iter().map(|b| format!("byzantine: {}", b.name())));
    }
    out
}

fn fault_setting(at_ms: u64, action: &FaultAction) -> FaultSetting {
    let clog = |target: &ClogTarget| target.to_string();
    let (kind, target) = match action {
        FaultAction::Partition { groups, one_way } => {
            let groups: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
            let direction = if *one_way { " (one way: only from the first group)" } else { "" };
            ("partition", format!("groups {}{direction}", groups.join(" | ")))
        }
        FaultAction::Heal => ("heal", String::new()),
        FaultAction::Crash { agent } => ("crash", format!("agent {agent}")),
        FaultAction::Restart { agent } => ("restart", format!("agent {agent}")),
        FaultAction::Clog { target } => ("clog", clog(target)),
        FaultAction::Unclog { target } => ("unclog", clog(target)),
        FaultAction::Pause { agent } => ("pause", format!("agent {agent}")),
        FaultAction::Resume { agent } => ("resume", format!("agent {agent}")),
        FaultAction::FlipBit { agent } => ("flip-bit", format!("agent {agent}")),
        FaultAction::FailSync { agent } => ("fail-sync", format!("agent {agent}")),
        FaultAction::DiskFull { agent } => ("disk-full", format!("agent {agent}")),
        FaultAction::SlowDisk { agent, sync_ms } => ("slow-disk", format!("agent {agent}, {sync_ms} ms per fsync")),
    };
    FaultSetting { at_ms, kind: kind.to_owned(), target }
}

/// The name a value serialises to: the kebab-case name the scenario file uses.
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_owned(),
    }
}

fn median(values: &mut [u64]) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[(values.len() - 1) / 2]
}

/// `summary.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::Violation;

    fn record(seed: u64, violation: Option<&str>) -> RunRecord {
        RunRecord {
            scenario: "s".into(),
            params: BTreeMap::new(),
            seed,
            outcome: if violation.is_some() { RunOutcome::Violation } else { RunOutcome::Ok },
            violations: violation
                .map(|v| Violation { invariant: v.into(), step: 3, time_ms: 40, detail: String::new() })
                .into_iter()
                .collect(),
            counts: SessionCounts { sessions: 10, decided: 9, correct: 8, escalated: 1, ..SessionCounts::default() },
            latency_ms: crate::results::LatencySummary { p50: 50, p95: 90, p99: 100 + seed, max: 120 + seed },
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
        s.add(&record(3, Some("agreement")), || "bftsim reproduce p --seed 3".into());
        s.finish();
        assert!(!s.passed);
        assert_eq!(s.failures[0].reproduce, "bftsim reproduce p --seed 3");
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

    fn scenario(text: &str) -> Scenario {
        crate::scenario::parse(text, std::path::Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A run is placed by its harshest network condition and counted under every fault family
    /// it has, its Byzantine behaviours last.
    #[test]
    fn network_condition_and_families_name_what_the_scenario_has() {
        let quiet = scenario("[network]\nlatency_ms = [1, 20]\n");
        assert_eq!((network_condition(&quiet), families(&quiet)), ("no network faults", Vec::new()));
        let text = "[network]\ndrop = 0.1\nduplicate = 0.2\n[byzantine]\ncount = 1\nstrategy = \"equivocate\"\n\
                    [[faults]]\nat_ms = 100\nkind = \"clog\"\nagent = 1\n[[faults]]\nat_ms = 200\nkind = \"crash\"\nagent = 2\n";
        let harsh = scenario(text);
        assert_eq!(network_condition(&harsh), "crash and restart", "a crash is harsher than clogs and loss");
        assert_eq!(
            families(&harsh),
            ["message loss", "duplicates", "crash and restart", "clogs", "byzantine: equivocate"].map(String::from)
        );
        for condition in [network_condition(&quiet), network_condition(&harsh)] {
            assert!(reports::aggregate::NETWORK_CONDITIONS.contains(&condition));
        }
    }

    /// Wrong decisions by cause are summed over the runs within f_max only.
    #[test]
    fn wrong_decisions_by_cause_count_runs_within_the_tolerance() {
        let mut s = ScenarioSummary::new("s".into(), "p".into(), BTreeMap::new(), true, None);
        let mut within = record(1, None);
        within.byzantine = vec![4];
        within.wrong_by_cause.add(crate::results::WrongCause::Byzantine, 1);
        let mut beyond = within.clone();
        beyond.byzantine = vec![3, 4];
        s.add(&within, String::new);
        s.add(&beyond, String::new);
        assert_eq!((s.wrong_by_cause.byzantine, s.wrong_by_cause.total()), (1, 1), "5 agents tolerate 1");
        assert_eq!(s.wrong_by_cause.by_margin.len(), 1);
    }
}
