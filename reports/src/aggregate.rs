//! Grouping run records by scenario and the numbers the report shows.
//!
//! Counters are summed with saturation (a corrupt or huge input must not wrap or panic); rates
//! are computed in `f64` only at the end, for display.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::metrics::ConsensusMetrics;

use crate::model::{LatencySummary, RunRecord, SessionCounts, DEFAULT_DEADLINE_MS};
use crate::replay::Source;
use crate::summary::{ScenarioSettings, ScenarioSummary, Summary};

/// All the runs of one scenario (one sweep point), ordered by seed.
#[derive(Clone, Debug)]
pub struct Scenario<'a> {
    /// Full name, sweep labels included.
    pub name: String,
    /// The name before any `[` (the sweep's base name).
    pub base: String,
    /// Sweep parameters (of the first run; every run of a sweep point has the same).
    pub params: BTreeMap<String, String>,
    /// The runs, by seed.
    pub runs: Vec<&'a RunRecord>,
    /// The scenario's entry of `summary.json`, if any.
    pub summary: Option<&'a ScenarioSummary>,
    /// Summed counters.
    pub totals: Totals,
}

impl Scenario<'_> {
    /// Whether `summary.json` says this scenario is expected to break an invariant (a mutation).
    pub fn expects_violation(&self) -> bool {
        self.summary.is_some_and(|s| !s.expect_safety)
    }

    /// Mean number of Byzantine agents per run.
    pub fn byzantine_mean(&self) -> f64 {
        let total: u64 = self.runs.iter().map(|r| r.byzantine.len() as u64).fold(0, u64::saturating_add);
        ratio(total, self.runs.len() as u64)
    }

    /// The latency percentiles of the runs that recorded any decision.
    pub fn latencies(&self) -> Vec<LatencySummary> {
        self.runs.iter().map(|r| r.latency_ms).filter(LatencySummary::is_recorded).collect()
    }

    /// The scenario file's settings, when `summary.json` has them.
    pub fn settings(&self) -> Option<&ScenarioSettings> {
        self.summary.and_then(|s| s.settings.as_ref())
    }

    /// The SLA the scenario's runs are judged against: its session deadline (the runs'
    /// `deadline_ms`; the design's 500 ms for records that predate the field).
    pub fn deadline_ms(&self) -> u64 {
        let recorded = self.runs.first().map(|r| r.deadline_ms);
        match (recorded, self.settings().map(|s| s.deadline_ms).filter(|d| *d > 0)) {
            (Some(d), Some(set)) if d == DEFAULT_DEADLINE_MS => set,
            (Some(d), _) => d,
            (None, Some(set)) => set,
            (None, None) => DEFAULT_DEADLINE_MS,
        }
    }

    /// Agreement rates (0..=1) of the runs that decided at least one session.
    pub fn agreement_rates(&self) -> Vec<f64> {
        self.runs.iter().filter(|r| r.counts.decided > 0).map(|r| r.agreement_ppm as f64 / 1e6).collect()
    }
}

/// Counters summed over runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Runs.
    pub runs: u64,
    /// Runs that reported at least one violation.
    pub violation_runs: u64,
    /// How the sessions ended, summed.
    pub counts: SessionCounts,
    /// Honest decisions later than the deadline (`late_decisions` of the runs).
    pub late_decisions: u64,
    /// Sessions whose first honest decision came after the SLA, over the runs that know it.
    pub over_sla: u64,
    /// Sessions of the runs that know `over_sla` (its denominator).
    pub over_sla_of: u64,
}

impl Totals {
    /// Folds in one run.
    pub fn add(&mut self, run: &RunRecord) {
        self.runs = self.runs.saturating_add(1);
        self.violation_runs = self.violation_runs.saturating_add(u64::from(!run.violations.is_empty()));
        self.counts.add(&run.counts);
        self.late_decisions = self.late_decisions.saturating_add(run.late_decisions);
        if let Some(over) = run.sessions_over_sla() {
            self.over_sla = self.over_sla.saturating_add(over);
            self.over_sla_of = self.over_sla_of.saturating_add(run.counts.sessions);
        }
    }

    /// Adds `other`'s counters to these.
    pub fn merge(&mut self, other: &Totals) {
        self.counts.add(&other.counts);
        let pairs = [
            (&mut self.runs, other.runs),
            (&mut self.violation_runs, other.violation_runs),
            (&mut self.late_decisions, other.late_decisions),
            (&mut self.over_sla, other.over_sla),
            (&mut self.over_sla_of, other.over_sla_of),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// Sums `runs`.
    pub fn of<'r>(runs: impl IntoIterator<Item = &'r RunRecord>) -> Totals {
        let mut totals = Totals::default();
        for run in runs {
            totals.add(run);
        }
        totals
    }

    /// Correctly decided sessions over all sessions.
    pub fn accuracy(&self) -> f64 {
        ratio(self.counts.correct, self.counts.sessions)
    }

    /// Sessions that ended (decided, escalated or agreed "no decision") over all sessions:
    /// `1 − undecided / sessions`.
    pub fn liveness(&self) -> f64 {
        if self.counts.sessions == 0 {
            return 0.0;
        }
        1.0 - ratio(self.counts.undecided, self.counts.sessions)
    }

    /// Sessions over the SLA as a share of the sessions that could be judged; `None` when no
    /// run records it.
    pub fn over_sla_share(&self) -> Option<f64> {
        (self.over_sla_of > 0).then(|| ratio(self.over_sla, self.over_sla_of))
    }

    /// Decided sessions over all sessions.
    pub fn success(&self) -> f64 {
        ratio(self.counts.decided, self.counts.sessions)
    }

    /// Session counts by outcome category (see [`OUTCOME_CATEGORIES`]).
    pub fn outcome_counts(&self) -> [u64; 6] {
        outcome_counts(
            self.counts.sessions,
            self.counts.decided,
            self.counts.correct,
            [self.counts.escalated, self.counts.no_decision, self.counts.undecided],
        )
    }
}

/// The outcome categories a session falls in, in stacking order. Every session is in exactly
/// one; "unaccounted" holds sessions a record does not place in any other category (zero for
/// consistent records). Fallback decisions are part of "decided correct"/"decided wrong".
pub const OUTCOME_CATEGORIES: [&str; 6] =
    ["decided correct", "decided wrong", "escalated", "no decision", "undecided", "unaccounted"];

/// The sessions of one run by outcome category; sums to `run.sessions` for a consistent record.
pub fn run_outcome_counts(run: &RunRecord) -> [u64; 6] {
    outcome_counts(
        run.counts.sessions,
        run.counts.decided,
        run.counts.correct,
        [run.counts.escalated, run.counts.no_decision, run.counts.undecided],
    )
}

fn outcome_counts(sessions: u64, decided: u64, correct: u64, rest: [u64; 3]) -> [u64; 6] {
    let correct = correct.min(decided);
    let wrong = decided - correct;
    let [escalated, no_decision, undecided] = rest;
    let placed = [decided, escalated, no_decision, undecided].into_iter().fold(0, u64::saturating_add);
    [correct, wrong, escalated, no_decision, undecided, sessions.saturating_sub(placed)]
}

/// `num / den`, or 0 when `den` is 0.
pub fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Everything the report is built from.
#[derive(Debug)]
pub struct Dataset<'a> {
    /// Scenarios ordered by name.
    pub scenarios: Vec<Scenario<'a>>,
    /// `summary.json`, if present.
    pub summary: Option<&'a Summary>,
    /// All runs.
    pub totals: Totals,
    /// Where the runs come from, for the replay commands.
    pub source: Source,
}

impl<'a> Dataset<'a> {
    /// Groups `runs` by scenario name.
    pub fn new(runs: &'a [RunRecord], summary: Option<&'a Summary>) -> Dataset<'a> {
        // Runs of real processes (`bftsim-cluster`) are a row of their own beside the
        // simulated runs of the same scenario: same base name, so they sort next to them.
        let mut groups: BTreeMap<String, Vec<&RunRecord>> = BTreeMap::new();
        for run in runs {
            let key = if run.real { real_name(&run.scenario) } else { run.scenario.clone() };
            groups.entry(key).or_default().push(run);
        }
        let scenarios = groups
            .into_iter()
            .map(|(name, mut runs)| {
                runs.sort_by_key(|r| r.seed);
                let name = name.as_str();
                Scenario {
                    name: name.to_owned(),
                    base: base_name(name).trim_end_matches(REAL_SUFFIX).to_owned(),
                    // An exploration's records carry bookkeeping, not sweep axes, in `params`.
                    params: runs
                        .first()
                        .filter(|r| crate::replay::is_sweep_point(r))
                        .map(|r| r.params.clone())
                        .unwrap_or_default(),
                    summary: summary.and_then(|s| s.scenario(name)),
                    totals: Totals::of(runs.iter().copied()),
                    runs,
                }
            })
            .collect::<Vec<_>>();
        let mut scenarios = scenarios;
        scenarios.sort_by(|a, b| scenario_order(a).cmp(&scenario_order(b)));
        Dataset { scenarios, summary, totals: Totals::of(runs), source: Source::default() }
    }

    /// Distinct seeds over all runs.
    pub fn seed_count(&self) -> usize {
        self.scenarios.iter().flat_map(|s| s.runs.iter().map(|r| r.seed)).collect::<BTreeSet<_>>().len()
    }
}

/// Sort key of a scenario: base name, then sweep parameters (numbers in numeric order), then
/// the full name.
fn scenario_order<'s>(s: &'s Scenario<'_>) -> (&'s str, Vec<(&'s str, ParamValue<'s>)>, &'s str) {
    let params = s.params.iter().map(|(k, v)| (k.as_str(), ParamValue::of(v))).collect();
    (s.base.as_str(), params, s.name.as_str())
}

/// A parameter value that orders numbers numerically (before any text).
#[derive(Debug, PartialEq, PartialOrd)]
enum ParamValue<'s> {
    Number(f64),
    Text(&'s str),
}

impl<'s> ParamValue<'s> {
    fn of(value: &'s str) -> Self {
        match value.parse::<f64>() {
            Ok(n) if n.is_finite() => ParamValue::Number(n),
            _ => ParamValue::Text(value),
        }
    }
}

impl Eq for ParamValue<'_> {}

impl Ord for ParamValue<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.partial_cmp(other).unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// What the report appends to a scenario's name for its runs of real processes.
pub const REAL_SUFFIX: &str = " (real processes)";

/// The report's name of the real runs of `scenario`.
pub fn real_name(scenario: &str) -> String {
    format!("{scenario}{REAL_SUFFIX}")
}

/// The part of a scenario name before `[`.
pub fn base_name(name: &str) -> &str {
    name.split('[').next().unwrap_or(name)
}

/// The design's monitoring metrics averaged over runs, as floating point for display: times
/// in ms, rates in parts per million, agents as counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[allow(missing_docs)]
pub struct MeanMetrics {
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

/// Mean of each metric over `runs` (all zeros for no runs).
pub fn average_metrics(runs: &[&RunRecord]) -> MeanMetrics {
    let n = runs.len().max(1) as f64;
    let mean = |f: fn(&ConsensusMetrics) -> f64| runs.iter().map(|r| f(&r.metrics)).sum::<f64>() / n;
    MeanMetrics {
        average_consensus_time_ms: mean(|m| m.average_consensus_time_ms as f64),
        p95_consensus_time_ms: mean(|m| m.p95_consensus_time_ms as f64),
        p99_consensus_time_ms: mean(|m| m.p99_consensus_time_ms as f64),
        timeout_rate: mean(|m| f64::from(m.timeout_rate.raw())),
        consensus_success_rate: mean(|m| f64::from(m.consensus_success_rate.raw())),
        average_agreement_rate: mean(|m| f64::from(m.average_agreement_rate.raw())),
        byzantine_detection_rate: mean(|m| f64::from(m.byzantine_detection_rate.raw())),
        active_agents: mean(|m| m.active_agents as f64),
        quarantined_agents: mean(|m| m.quarantined_agents as f64),
        excluded_agents: mean(|m| m.excluded_agents as f64),
        agent_performance_variance: mean(|m| f64::from(m.agent_performance_variance.raw())),
    }
}

/// In how many of `runs` each alert title fired (a title listed twice by one run counts once).
pub fn alert_counts(runs: &[&RunRecord]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for run in runs {
        for title in run.alerts.iter().collect::<BTreeSet<_>>() {
            let count: &mut u64 = counts.entry(title.clone()).or_default();
            *count = count.saturating_add(1);
        }
    }
    counts
}

/// Byzantine detection summed over the runs of one strategy/detector group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectionGroup {
    /// "strategy X, detector Y", or the scenario name when neither is known.
    pub label: String,
    /// Runs.
    pub runs: u64,
    /// Byzantine agents summed over runs.
    pub byzantine: u64,
    /// Byzantine agents the engine flagged, summed over runs.
    pub caught: u64,
    /// Honest agents the engine flagged, summed over runs.
    pub wrongly_flagged: u64,
}

/// The group label of a run: the `byzantine.strategy`/`protocol.detector` sweep parameters,
/// else its scenario's settings, else the scenario name.
pub fn detection_label(run: &RunRecord, settings: Option<&ScenarioSettings>) -> String {
    let known = |s: &String| !s.is_empty();
    // A generated run names its behaviours in `params.byzantine` (`equivocate+silent`).
    let generated = crate::replay::Generated::of(run).and_then(|_| run.params.get("byzantine").cloned());
    let strategy = run
        .params
        .get("byzantine.strategy")
        .cloned()
        .or(generated)
        .or_else(|| settings.map(|s| s.strategy.clone()).filter(known));
    let detector =
        run.params.get("protocol.detector").cloned().or_else(|| settings.map(|s| s.detector.clone()).filter(known));
    match (strategy, detector) {
        (None, None) => run.scenario.clone(),
        (s, d) => format!(
            "strategy {}, detector {}",
            s.as_deref().unwrap_or("(scenario default)"),
            d.as_deref().unwrap_or("(scenario default)")
        ),
    }
}

/// Detection per group, in order of first appearance in `runs` (each with its scenario's
/// settings), for the groups with any Byzantine or flagged agent.
pub fn detection_groups<'r>(
    runs: impl IntoIterator<Item = (&'r RunRecord, Option<&'r ScenarioSettings>)>,
) -> Vec<DetectionGroup> {
    let mut groups: Vec<DetectionGroup> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for (run, settings) in runs {
        let label = detection_label(run, settings);
        let at = *index.entry(label.clone()).or_insert_with(|| {
            groups.push(DetectionGroup { label, ..Default::default() });
            groups.len() - 1
        });
        let group = &mut groups[at];
        let byzantine: BTreeSet<u32> = run.byzantine.iter().copied().collect();
        let caught = run.detected.iter().collect::<BTreeSet<_>>().into_iter().filter(|a| byzantine.contains(a));
        group.runs = group.runs.saturating_add(1);
        group.byzantine = group.byzantine.saturating_add(byzantine.len() as u64);
        group.caught = group.caught.saturating_add(caught.count() as u64);
        group.wrongly_flagged = group.wrongly_flagged.saturating_add(run.wrongly_flagged.len() as u64);
    }
    groups.retain(|g| g.byzantine > 0 || g.wrongly_flagged > 0);
    groups
}

/// The committee size n of a run: its `agents`, else the scenario settings', else an
/// `agents.count` sweep parameter; `None` when none is known (records that predate the field).
pub fn committee_size(run: &RunRecord, settings: Option<&ScenarioSettings>) -> Option<u32> {
    Some(run.agents)
        .filter(|n| *n > 0)
        .or_else(|| settings.map(|s| s.agents).filter(|n| *n > 0))
        .or_else(|| run.params.get("agents.count").and_then(|v| v.parse().ok()).filter(|n| *n > 0))
}

/// The most Byzantine agents a committee of `n` tolerates: `⌊(n − 1) / 3⌋` (n ≥ 3f + 1).
pub fn f_max(n: u32) -> u32 {
    n.saturating_sub(1) / 3
}

/// Where a run's Byzantine count f stands against what its committee tolerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tolerance {
    /// No Byzantine agent.
    None,
    /// 0 < f < f_max.
    Below,
    /// f = f_max > 0: as many as the committee tolerates.
    AtLimit,
    /// f > f_max: more than the committee tolerates (safety is not promised).
    Beyond,
    /// The committee size is not recorded.
    Unknown,
}

impl Tolerance {
    /// The category of `byzantine` Byzantine agents of `n`.
    pub fn of(byzantine: u32, n: Option<u32>) -> Tolerance {
        match (byzantine, n) {
            (0, _) => Tolerance::None,
            (_, None) => Tolerance::Unknown,
            (f, Some(n)) if f > f_max(n) => Tolerance::Beyond,
            (f, Some(n)) if f == f_max(n) => Tolerance::AtLimit,
            _ => Tolerance::Below,
        }
    }

    /// Every category, in axis order.
    pub const ALL: [Tolerance; 5] =
        [Tolerance::None, Tolerance::Below, Tolerance::AtLimit, Tolerance::Beyond, Tolerance::Unknown];

    /// Axis label.
    pub fn label(self) -> &'static str {
        match self {
            Tolerance::None => "f = 0",
            Tolerance::Below => "0 < f < f_max",
            Tolerance::AtLimit => "f = f_max",
            Tolerance::Beyond => "f > f_max",
            Tolerance::Unknown => "n unknown",
        }
    }
}

/// Totals pooled by Byzantine share f/n (in thousandths, so equal shares pool exactly); runs
/// whose committee size is unknown are left out.
pub fn by_byzantine_share<'r>(
    runs: impl IntoIterator<Item = (&'r RunRecord, Option<&'r ScenarioSettings>)>,
) -> BTreeMap<u64, Totals> {
    let mut pooled: BTreeMap<u64, Totals> = BTreeMap::new();
    for (run, settings) in runs {
        if let Some(n) = committee_size(run, settings) {
            let share_milli = (run.byzantine.len() as u64).saturating_mul(1000) / u64::from(n);
            pooled.entry(share_milli).or_default().add(run);
        }
    }
    pooled
}

/// Network conditions as the report names them, in display order (mildest first).
pub const NETWORK_CONDITIONS: [&str; 8] = [
    "no network faults",
    "duplicates",
    "message loss",
    "latency tail",
    "clogs",
    "crash and restart",
    "partition",
    "not recorded",
];

/// The fault families a run record lists ([`RunRecord::families`]), in display order; the
/// Byzantine behaviours follow as `byzantine: NAME`. "high latency" is a latency bound above
/// the default prevote timeout (50 ms); "short timeouts" are round timeouts below the
/// defaults.
pub const FAMILIES: [&str; 10] = [
    "message loss",
    "duplicates",
    "latency tail",
    "high latency",
    "partition",
    "crash and restart",
    "clogs",
    "round partitions",
    "message tampering",
    "short timeouts",
];

/// The harshest network condition of a scenario: partition, crash and restart, clogs, latency
/// tail, message loss, duplicates, else none; from its settings, else from `network.drop`
/// sweep parameters; "not recorded" when neither says.
pub fn network_condition(settings: Option<&ScenarioSettings>, params: &BTreeMap<String, String>) -> &'static str {
    let param = |key: &str| params.get(key).and_then(|v| v.parse::<f64>().ok());
    let Some(s) = settings else {
        return match param("network.drop") {
            Some(drop) if drop > 0.0 => NETWORK_CONDITIONS[2],
            Some(_) => NETWORK_CONDITIONS[0],
            None => NETWORK_CONDITIONS[7],
        };
    };
    let has = |kind: &str| s.faults.iter().any(|f| f.kind == kind);
    let drop = param("network.drop").unwrap_or(s.drop);
    let duplicate = param("network.duplicate").unwrap_or(s.duplicate);
    if has("partition") {
        NETWORK_CONDITIONS[6]
    } else if has("crash") {
        NETWORK_CONDITIONS[5]
    } else if has("clog") {
        NETWORK_CONDITIONS[4]
    } else if !s.tail.is_empty() {
        NETWORK_CONDITIONS[3]
    } else if drop > 0.0 {
        NETWORK_CONDITIONS[2]
    } else if duplicate > 0.0 {
        NETWORK_CONDITIONS[1]
    } else {
        NETWORK_CONDITIONS[0]
    }
}

/// One invariant violation with the command that replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViolationRow {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Invariant.
    pub invariant: String,
    /// Trace step.
    pub step: u64,
    /// Simulated time.
    pub time_ms: u64,
    /// What happened.
    pub detail: String,
    /// The replay command (`None`: the scenario file is not recorded).
    pub reproduce: Option<String>,
}

/// Every violation of every run, by scenario and seed.
pub fn violations(data: &Dataset<'_>) -> Vec<ViolationRow> {
    let mut rows = Vec::new();
    for scenario in &data.scenarios {
        for run in &scenario.runs {
            for v in &run.violations {
                rows.push(ViolationRow {
                    scenario: scenario.name.clone(),
                    seed: run.seed,
                    invariant: v.invariant.clone(),
                    step: v.step,
                    time_ms: v.time_ms,
                    detail: v.detail.clone(),
                    reproduce: data.source.command(scenario.summary, run),
                });
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_runs_are_a_row_of_their_own_beside_the_simulated_runs_of_their_scenario() {
        let simulated = run("crash-restart", 1, [10, 10, 9, 0, 0, 0, 0]);
        let real = RunRecord { real: true, ..run("crash-restart", 1, [10, 10, 10, 0, 0, 0, 0]) };
        let other = run("baseline", 1, [10, 10, 10, 0, 0, 0, 0]);
        let runs = [real, other, simulated];
        let data = Dataset::new(&runs, None);
        let names: Vec<&str> = data.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["baseline", "crash-restart", "crash-restart (real processes)"]);
        assert_eq!(data.scenarios[2].base, "crash-restart");
        assert!(data.scenarios[2].runs.iter().all(|r| r.real) && !data.scenarios[1].runs[0].real);
    }

    fn run(scenario: &str, seed: u64, counts: [u64; 7]) -> RunRecord {
        let [sessions, decided, correct, escalated, no_decision, undecided, fallback] = counts;
        RunRecord {
            scenario: scenario.into(),
            seed,
            counts: SessionCounts {
                sessions,
                decided,
                correct,
                escalated,
                no_decision,
                undecided,
                fallback,
                ..SessionCounts::default()
            },
            ..RunRecord::default()
        }
    }

    #[test]
    fn outcome_categories_sum_to_sessions() {
        for counts in [[10, 7, 5, 1, 1, 1, 2], [10, 10, 10, 0, 0, 0, 0], [5, 0, 0, 0, 0, 5, 0], [1, 0, 0, 1, 0, 0, 0]] {
            let r = run("s", 0, counts);
            let cats = run_outcome_counts(&r);
            assert_eq!(cats.iter().sum::<u64>(), r.counts.sessions, "{counts:?}");
            assert_eq!(cats[5], 0, "consistent records leave nothing unaccounted");
            assert_eq!(cats[0] + cats[1], r.counts.decided);
        }
        let cats = run_outcome_counts(&run("s", 0, [10, 4, 3, 0, 0, 2, 0]));
        assert_eq!(cats, [3, 1, 0, 0, 2, 4], "missing sessions are shown as unaccounted");
        let cats = run_outcome_counts(&run("s", 0, [10, 4, 9, 0, 0, 0, 0]));
        assert_eq!((cats[0], cats[1]), (4, 0), "correct is capped at decided");
    }

    #[test]
    fn rates_of_totals() {
        let runs = [run("s", 0, [10, 8, 6, 1, 0, 1, 0]), run("s", 1, [10, 10, 10, 0, 0, 0, 3])];
        let t = Totals::of(&runs);
        assert_eq!((t.runs, t.counts.sessions, t.counts.decided, t.counts.fallback), (2, 20, 18, 3));
        assert!((t.accuracy() - 0.8).abs() < 1e-12);
        assert!((t.liveness() - 0.95).abs() < 1e-12);
        assert!((t.success() - 0.9).abs() < 1e-12);
        assert_eq!(Totals::default().liveness(), 0.0, "no sessions: nothing to claim");
        assert_eq!(t.outcome_counts().iter().sum::<u64>(), 20);
        let mut twice = t;
        twice.merge(&t);
        assert_eq!((twice.runs, twice.counts.sessions, twice.counts.fallback), (4, 40, 6));
    }

    #[test]
    fn huge_counters_saturate() {
        let big = run("s", 0, [u64::MAX, u64::MAX, u64::MAX, u64::MAX, 0, 0, 0]);
        let t = Totals::of([&big, &big]);
        assert_eq!(t.counts.sessions, u64::MAX);
        assert_eq!(t.accuracy(), 1.0);
        assert_eq!(run_outcome_counts(&big)[5], 0);
    }

    #[test]
    fn grouping_by_scenario_sorts_seeds() {
        let mut runs = vec![run("b", 2, [1; 7]), run("a[x=1]", 0, [1; 7]), run("b", 1, [1; 7])];
        for x in ["0.05", "0.0", "10", "2"] {
            let mut r = run(&format!("a[x={x}]"), 0, [1; 7]);
            r.params.insert("x".into(), x.into());
            runs.push(r);
        }
        let data = Dataset::new(&runs, None);
        let names: Vec<_> = data.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["a[x=1]", "a[x=0.0]", "a[x=0.05]", "a[x=2]", "a[x=10]", "b"],
            "sweep points in numeric order"
        );
        assert_eq!(data.scenarios[0].base, "a");
        assert_eq!(data.scenarios[5].runs.iter().map(|r| r.seed).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(data.totals.runs, 7);
        assert_eq!(data.seed_count(), 3);
    }

    #[test]
    fn detection_counts_only_byzantine_agents_as_caught() {
        let mut a = run("byz-x", 0, [1; 7]);
        a.byzantine = vec![3, 4];
        a.detected = vec![4, 1, 4];
        a.wrongly_flagged = vec![1];
        let mut b = run("byz-x", 1, [1; 7]);
        b.byzantine = vec![3, 4];
        let mut c = run("sweep[byzantine.strategy=silent]", 0, [1; 7]);
        c.params.insert("byzantine.strategy".into(), "silent".into());
        c.byzantine = vec![0];
        let d = run("other", 0, [1; 7]);
        let settings =
            ScenarioSettings { strategy: "collude".into(), detector: "median-mad".into(), ..Default::default() };
        let quiet = run("baseline", 0, [1; 7]);
        let groups = detection_groups([(&a, None), (&b, None), (&c, None), (&d, Some(&settings)), (&quiet, None)]);
        let labels: Vec<_> = groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(labels, ["byz-x", "strategy silent, detector (scenario default)"]);
        assert_eq!((groups[0].runs, groups[0].byzantine, groups[0].caught, groups[0].wrongly_flagged), (2, 4, 1, 1));
        assert_eq!(detection_label(&d, Some(&settings)), "strategy collude, detector median-mad");
    }

    #[test]
    fn metrics_and_alerts_aggregate() {
        let mut a = run("s", 0, [1; 7]);
        a.metrics.timeout_rate = consensus_core::Ppm::saturating(100);
        a.alerts = vec!["SLA".into(), "Low".into(), "SLA".into()];
        let mut b = run("s", 1, [1; 7]);
        b.metrics.timeout_rate = consensus_core::Ppm::saturating(300);
        b.alerts = vec!["SLA".into()];
        assert_eq!(average_metrics(&[&a, &b]).timeout_rate, 200.0);
        assert_eq!(average_metrics(&[]).timeout_rate, 0.0);
        let alerts = alert_counts(&[&a, &b]);
        assert_eq!(alerts.into_iter().collect::<Vec<_>>(), [("Low".into(), 1), ("SLA".into(), 2)]);
    }

    #[test]
    fn byzantine_pooling_by_share() {
        let mut a = run("a", 0, [10, 10, 9, 0, 0, 0, 0]);
        a.byzantine = vec![1];
        a.agents = 5;
        let b = run("b", 0, [10, 5, 5, 0, 0, 5, 0]);
        let settings = ScenarioSettings { agents: 4, ..Default::default() };
        let unknown = run("c", 0, [10, 0, 0, 0, 0, 10, 0]);
        let pooled = by_byzantine_share([(&a, None), (&b, Some(&settings)), (&unknown, None)]);
        assert_eq!(pooled.keys().copied().collect::<Vec<_>>(), [0, 200], "f/n in thousandths; unknown n left out");
        assert!((pooled[&200].accuracy() - 0.9).abs() < 1e-12);
        assert!((pooled[&0].liveness() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn network_conditions_pick_the_harshest() {
        let none = BTreeMap::new();
        assert_eq!(network_condition(None, &none), "not recorded");
        let drop = BTreeMap::from([("network.drop".to_owned(), "0.1".to_owned())]);
        assert_eq!(network_condition(None, &drop), "message loss");
        let mut s = ScenarioSettings { drop: 0.05, duplicate: 0.01, ..Default::default() };
        assert_eq!(network_condition(Some(&s), &none), "message loss");
        let zero = BTreeMap::from([("network.drop".to_owned(), "0.0".to_owned())]);
        assert_eq!(network_condition(Some(&s), &zero), "duplicates", "the sweep value wins");
        s.faults.push(crate::summary::FaultSetting { at_ms: 1, kind: "crash".into(), target: "agent 1".into() });
        s.faults.push(crate::summary::FaultSetting { at_ms: 2, kind: "partition".into(), target: String::new() });
        assert_eq!(network_condition(Some(&s), &none), "partition");
        assert_eq!(network_condition(Some(&ScenarioSettings::default()), &none), "no network faults");
    }

    #[test]
    fn tolerance_categories() {
        assert_eq!((f_max(4), f_max(5), f_max(7), f_max(31), f_max(0)), (1, 1, 2, 10, 0));
        assert_eq!(Tolerance::of(0, None), Tolerance::None);
        assert_eq!(Tolerance::of(1, None), Tolerance::Unknown);
        assert_eq!(Tolerance::of(1, Some(7)), Tolerance::Below);
        assert_eq!(Tolerance::of(2, Some(7)), Tolerance::AtLimit);
        assert_eq!(Tolerance::of(2, Some(5)), Tolerance::Beyond);
        assert_eq!(Tolerance::of(1, Some(3)), Tolerance::Beyond, "3 agents tolerate none");
        let mut r = run("s", 0, [1; 7]);
        assert_eq!(committee_size(&r, None), None);
        r.params.insert("agents.count".into(), "10".into());
        assert_eq!(committee_size(&r, None), Some(10));
        r.agents = 7;
        assert_eq!(committee_size(&r, None), Some(7));
    }

    #[test]
    fn sessions_over_the_sla_have_a_denominator() {
        let mut a = run("s", 0, [10, 10, 10, 0, 0, 0, 0]);
        a.sessions_over_sla = Some(3);
        let mut old = run("s", 1, [10, 10, 10, 0, 0, 0, 0]);
        old.deadline_ms = 1000; // predates the field with a deadline other than 500: unknown
        let t = Totals::of([&a, &old]);
        assert_eq!((t.over_sla, t.over_sla_of), (3, 10));
        assert_eq!(t.over_sla_share(), Some(0.3));
        assert_eq!(Totals::of([&old]).over_sla_share(), None);
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("sweep[a=1,b=2]"), "sweep");
        assert_eq!(base_name("plain"), "plain");
        assert_eq!(base_name(""), "");
    }
}
