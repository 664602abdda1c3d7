//! Monitoring and alerting (design §6.1 `ConsensusMonitoringSystem`, `ConsensusMetrics`,
//! `check_alert_conditions`).
//!
//! A [`MetricsRecorder`] folds the [`SessionOutcome`] of every session into counters and a
//! fixed latency histogram, so its memory does not grow with the number of sessions. Two
//! recorders [`merge`](MetricsRecorder::merge) into exactly the recorder that would have seen
//! both streams, so simulator shards can be combined in any order. A
//! [`snapshot`](MetricsRecorder::snapshot) turns the counters (and, optionally, a [`Registry`])
//! into the design's [`ConsensusMetrics`], and [`check_alerts`] applies the design's four alert
//! conditions to it. Everything is integer arithmetic; floats appear only in the alert texts.
//!
//! ## Definitions
//!
//! Over the `sessions` recorded:
//!
//! - **success**: a session that ended [`SessionResult::Decided`], including decisions by the
//!   timeout fallback; `consensus_success_rate = decided / sessions`, rounded down.
//! - **timeout**: a session that ended [`SessionResult::TimedOut`];
//!   `timeout_rate = timed_out / sessions`, rounded *up*.
//! - `average_agreement_rate`: the mean `agreement` of the decided sessions (0 when none),
//!   rounded down.
//! - `byzantine_detection_rate = Σ votes_flagged / Σ (votes_counted + votes_flagged)`, summed over
//!   sessions, rounded *up*.
//! - `average_consensus_time_ms`: mean latency, rounded down; `p95_…`/`p99_…`: nearest-rank
//!   percentiles ([`MetricsRecorder::latency_percentile_ms`]); `max_…`: the exact maximum.
//! - `sla_misses`: sessions whose latency is strictly above [`SLA_MS`] (500 ms).
//! - `active_agents`, `quarantined_agents`, `excluded_agents`: the registry's counts per
//!   [`AgentStatus`]; 0 without a registry.
//! - `agent_performance_variance`: the population variance of
//!   [`AgentRecord::accuracy_multiplier`](crate::registry::AgentRecord::accuracy_multiplier) over
//!   all registered agents (whatever their standing), in `[0, 1]` units expressed in parts per
//!   million (so at most 250 000); 0 without a registry.
//!
//! Rates that alert when *high* are rounded up and the rate that alerts when *low* is rounded
//! down, so comparing them with an integer-ppm threshold gives the same answer as comparing the
//! exact fractions: a timeout rate of 5.00001% still fires the 5% alert.
//!
//! ## Bounded memory
//!
//! Latencies go into [`HISTOGRAM_MS`] one-millisecond buckets (`0 ..= 9 999` ms) and one overflow
//! bucket for everything from 10 s up; the exact maximum is kept separately. Percentiles are
//! therefore exact to the millisecond below 10 s; a rank that falls into the overflow bucket
//! reports the maximum.

use serde::{Deserialize, Serialize};

use crate::fixed::{Ppm, PPM_ONE};
use crate::registry::Registry;
use crate::types::{AgentStatus, SessionId, TimeMs};

/// The design's consensus SLA: p99 latency at most 500 ms (design §6.1 and 6.2 "<500ms Target").
pub const SLA_MS: TimeMs = 500;

/// Latencies below this many milliseconds are kept to the millisecond; above, only counted.
pub const HISTOGRAM_MS: usize = 10_000;

/// Histogram buckets: one per millisecond below [`HISTOGRAM_MS`], plus the overflow bucket.
const BUCKETS: usize = HISTOGRAM_MS + 1;

// `sla_misses` is read off the exact part of the histogram.
const _: () = assert!((SLA_MS as usize) < HISTOGRAM_MS);

/// How one session ended, as the monitor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionResult {
    /// A candidate was chosen.
    Decided {
        /// Support for the chosen candidate.
        agreement: Ppm,
        /// Whether the timeout fallback decided (design §5.2).
        fallback: bool,
    },
    /// Handed to people (design §4.2 escalation).
    Escalated,
    /// All votes were in but no candidate could be chosen.
    NoDecision,
    /// The deadline passed without a decision.
    TimedOut,
}

/// What the monitor records about one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionOutcome {
    /// The session.
    pub session: SessionId,
    /// From the session's start to its end, on the caller's clock.
    pub latency_ms: TimeMs,
    /// How it ended.
    pub result: SessionResult,
    /// Votes counted towards the decision.
    pub votes_counted: u32,
    /// Votes from agents flagged as Byzantine (not counted).
    pub votes_flagged: u32,
}

/// Accumulates session outcomes in bounded memory.
///
/// Invariant: the histogram always has [`HISTOGRAM_MS`] + 1 buckets, and their counts sum to
/// `sessions` (both saturate at `u64::MAX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsRecorder {
    sessions: u64,
    decided: u64,
    timed_out: u64,
    agreement_ppm_sum: u128,
    votes_counted: u64,
    votes_flagged: u64,
    latency_ms_sum: u128,
    latency_ms_max: TimeMs,
    /// `buckets[ms]` counts latencies of `ms` milliseconds; the last bucket, all from 10 s up.
    buckets: Box<[u64]>,
}

impl Default for MetricsRecorder {
    fn default() -> Self {
        MetricsRecorder::new()
    }
}

impl MetricsRecorder {
    /// An empty recorder.
    pub fn new() -> MetricsRecorder {
        MetricsRecorder {
            sessions: 0,
            decided: 0,
            timed_out: 0,
            agreement_ppm_sum: 0,
            votes_counted: 0,
            votes_flagged: 0,
            latency_ms_sum: 0,
            latency_ms_max: 0,
            buckets: vec![0; BUCKETS].into_boxed_slice(),
        }
    }

    /// Folds one session's outcome in.
    pub fn record(&mut self, outcome: &SessionOutcome) {
        self.sessions = self.sessions.saturating_add(1);
        match outcome.result {
            SessionResult::Decided { agreement, .. } => {
                self.decided = self.decided.saturating_add(1);
                self.agreement_ppm_sum = self.agreement_ppm_sum.saturating_add(u128::from(agreement.raw()));
            }
            SessionResult::TimedOut => self.timed_out = self.timed_out.saturating_add(1),
            SessionResult::Escalated | SessionResult::NoDecision => {}
        }
        self.votes_counted = self.votes_counted.saturating_add(u64::from(outcome.votes_counted));
        self.votes_flagged = self.votes_flagged.saturating_add(u64::from(outcome.votes_flagged));
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(u128::from(outcome.latency_ms));
        self.latency_ms_max = self.latency_ms_max.max(outcome.latency_ms);
        let index = bucket_index(outcome.latency_ms);
        debug_assert!(index < self.buckets.len(), "bucket {index} out of {}", self.buckets.len());
        if let Some(count) = self.buckets.get_mut(index) {
            *count = count.saturating_add(1);
        }
        debug_assert!(self.decided.saturating_add(self.timed_out) <= self.sessions);
    }

    /// Adds everything `other` recorded, as if its outcomes had been recorded here.
    pub fn merge(&mut self, other: &MetricsRecorder) {
        debug_assert_eq!(self.buckets.len(), BUCKETS);
        debug_assert_eq!(other.buckets.len(), BUCKETS);
        self.sessions = self.sessions.saturating_add(other.sessions);
        self.decided = self.decided.saturating_add(other.decided);
        self.timed_out = self.timed_out.saturating_add(other.timed_out);
        self.agreement_ppm_sum = self.agreement_ppm_sum.saturating_add(other.agreement_ppm_sum);
        self.votes_counted = self.votes_counted.saturating_add(other.votes_counted);
        self.votes_flagged = self.votes_flagged.saturating_add(other.votes_flagged);
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(other.latency_ms_sum);
        self.latency_ms_max = self.latency_ms_max.max(other.latency_ms_max);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// Sessions recorded.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Histogram buckets held: always [`HISTOGRAM_MS`] + 1, however many sessions were recorded.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The largest latency recorded (0 when none).
    pub fn latency_max_ms(&self) -> TimeMs {
        self.latency_ms_max
    }

    /// The nearest-rank percentile of the latencies: the smallest recorded latency `l` such
    /// that at least `p_ppm / 1 000 000` of the sessions took `l` or less. Exact below
    /// [`HISTOGRAM_MS`]; a rank in the overflow bucket reports the maximum. `None` when nothing
    /// was recorded or `p_ppm` exceeds one million; `p_ppm = 0` gives the minimum.
    pub fn latency_percentile_ms(&self, p_ppm: u32) -> Option<TimeMs> {
        if self.sessions == 0 || p_ppm > PPM_ONE {
            return None;
        }
        let rank = nearest_rank(self.sessions, p_ppm);
        debug_assert!(rank >= 1 && rank <= self.sessions);
        let mut seen: u64 = 0;
        for (ms, count) in self.buckets.iter().take(HISTOGRAM_MS).enumerate() {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                let ms = ms as TimeMs;
                debug_assert!(ms <= self.latency_ms_max, "percentile {ms} above max {}", self.latency_ms_max);
                return Some(ms);
            }
        }
        Some(self.latency_ms_max)
    }

    /// Sessions whose latency was strictly above [`SLA_MS`].
    pub fn sla_misses(&self) -> u64 {
        let first_miss = SLA_MS as usize + 1;
        self.buckets.iter().skip(first_miss).fold(0u64, |sum, count| sum.saturating_add(*count))
    }

    /// The design's `ConsensusMetrics` for everything recorded so far; agent counts and the
    /// performance variance come from `registry` (zero without one).
    pub fn snapshot(&self, registry: Option<&Registry>) -> ConsensusMetrics {
        let sessions = u128::from(self.sessions);
        let average_consensus_time_ms =
            self.latency_ms_sum.checked_div(sessions).map_or(0, |ms| TimeMs::try_from(ms).unwrap_or(TimeMs::MAX));
        let average_agreement_rate = self
            .agreement_ppm_sum
            .checked_div(u128::from(self.decided))
            .map_or(Ppm::ZERO, |ppm| Ppm::saturating(u64::try_from(ppm).unwrap_or(u64::MAX)));
        let votes_seen = u128::from(self.votes_counted) + u128::from(self.votes_flagged);
        let mut metrics = ConsensusMetrics {
            average_consensus_time_ms,
            p95_consensus_time_ms: self.latency_percentile_ms(950_000).unwrap_or(0),
            p99_consensus_time_ms: self.latency_percentile_ms(990_000).unwrap_or(0),
            max_consensus_time_ms: self.latency_ms_max,
            timeout_rate: ratio_ceil(u128::from(self.timed_out), sessions),
            consensus_success_rate: Ppm::ratio(u128::from(self.decided), sessions),
            average_agreement_rate,
            byzantine_detection_rate: ratio_ceil(u128::from(self.votes_flagged), votes_seen),
            sessions: self.sessions,
            sla_misses: self.sla_misses(),
            ..ConsensusMetrics::default()
        };
        if let Some(registry) = registry {
            metrics.active_agents = registry.count(AgentStatus::Active);
            metrics.quarantined_agents = registry.count(AgentStatus::Quarantined);
            metrics.excluded_agents = registry.count(AgentStatus::Excluded);
            metrics.agent_performance_variance = agent_performance_variance(registry);
        }
        debug_assert!(metrics.p95_consensus_time_ms <= metrics.p99_consensus_time_ms);
        debug_assert!(metrics.p99_consensus_time_ms <= metrics.max_consensus_time_ms);
        metrics
    }
}

/// The design's `ConsensusMetrics` (design §6.1), in integer units, plus the session and SLA-miss
/// counts it was computed from. See the [module documentation](self) for the definitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConsensusMetrics {
    /// Mean session latency, rounded down.
    pub average_consensus_time_ms: TimeMs,
    /// Nearest-rank 95th percentile latency.
    pub p95_consensus_time_ms: TimeMs,
    /// Nearest-rank 99th percentile latency.
    pub p99_consensus_time_ms: TimeMs,
    /// Largest latency.
    pub max_consensus_time_ms: TimeMs,
    /// Timed-out sessions over all sessions, rounded up.
    pub timeout_rate: Ppm,
    /// Decided sessions (fallback included) over all sessions, rounded down.
    pub consensus_success_rate: Ppm,
    /// Mean agreement of decided sessions, rounded down.
    pub average_agreement_rate: Ppm,
    /// Flagged votes over counted and flagged votes, rounded up.
    pub byzantine_detection_rate: Ppm,
    /// Agents whose votes count.
    pub active_agents: usize,
    /// Agents temporarily excluded.
    pub quarantined_agents: usize,
    /// Agents permanently excluded.
    pub excluded_agents: usize,
    /// Population variance of the agents' accuracy multipliers, in ppm of `[0, 1]` units.
    pub agent_performance_variance: Ppm,
    /// Sessions recorded.
    pub sessions: u64,
    /// Sessions slower than [`SLA_MS`].
    pub sla_misses: u64,
}

/// When [`check_alerts`] fires; the defaults are the design's numbers (design §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertThresholds {
    /// Critical above this timeout rate (seed: 0.05).
    pub max_timeout_rate: Ppm,
    /// Critical when the p99 latency is above this (seed: 500 ms).
    pub sla_ms: TimeMs,
    /// Warning above this Byzantine detection rate (seed: 0.1).
    pub max_byzantine_detection_rate: Ppm,
    /// Warning below this success rate (seed: 0.95).
    pub min_success_rate: Ppm,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            max_timeout_rate: Ppm::saturating(50_000),
            sla_ms: SLA_MS,
            max_byzantine_detection_rate: Ppm::saturating(100_000),
            min_success_rate: Ppm::saturating(950_000),
        }
    }
}

/// How urgent an alert is (design §6.1 `Alert::Critical` / `Alert::Warning`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertLevel {
    /// System degradation: act now.
    Critical,
    /// Performance issue: investigate.
    Warning,
}

/// One alert, worded as in the design.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Urgency.
    pub level: AlertLevel,
    /// Short name, e.g. "Consensus SLA Violation".
    pub title: String,
    /// The measured value, e.g. "P99 consensus time: 612ms > 500ms".
    pub description: String,
    /// What an operator should do.
    pub recommended_action: String,
}

impl Alert {
    fn new(level: AlertLevel, title: &str, description: String, recommended_action: &str) -> Alert {
        Alert { level, title: title.to_owned(), description, recommended_action: recommended_action.to_owned() }
    }
}

/// Design §6.1 `check_alert_conditions`, with the design's strict comparisons: timeout rate above
/// the maximum (critical), p99 latency above the SLA (critical), Byzantine detection rate above
/// the maximum (warning), success rate below the minimum (warning). Alerts come in that order;
/// none when no session was recorded.
pub fn check_alerts(metrics: &ConsensusMetrics, thresholds: &AlertThresholds) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if metrics.sessions == 0 {
        return alerts;
    }
    if metrics.timeout_rate > thresholds.max_timeout_rate {
        alerts.push(Alert::new(
            AlertLevel::Critical,
            "High Consensus Timeout Rate",
            format!("Consensus timeout rate: {:.2}%", percent(metrics.timeout_rate)),
            "Investigate agent performance and network latency",
        ));
    }
    if metrics.p99_consensus_time_ms > thresholds.sla_ms {
        alerts.push(Alert::new(
            AlertLevel::Critical,
            "Consensus SLA Violation",
            format!("P99 consensus time: {}ms > {}ms", metrics.p99_consensus_time_ms, thresholds.sla_ms),
            "Scale up agents or optimize consensus algorithm",
        ));
    }
    if metrics.byzantine_detection_rate > thresholds.max_byzantine_detection_rate {
        alerts.push(Alert::new(
            AlertLevel::Warning,
            "High Byzantine Detection Rate",
            format!("Byzantine detection: {:.2}%", percent(metrics.byzantine_detection_rate)),
            "Investigate potential security threats or agent malfunctions",
        ));
    }
    if metrics.consensus_success_rate < thresholds.min_success_rate {
        alerts.push(Alert::new(
            AlertLevel::Warning,
            "Low Consensus Success Rate",
            format!("Success rate: {:.2}%", percent(metrics.consensus_success_rate)),
            "Review agent configurations and consensus thresholds",
        ));
    }
    debug_assert!(alerts.len() <= 4);
    alerts
}

/// Population variance of the registry agents' accuracy multipliers, in ppm of `[0, 1]` units
/// (rounded down; at most 250 000). Zero for an empty registry.
///
/// With `x` in ppm: `var = (n Σx² − (Σx)²) / n²` ppm², and one ppm of a unit² is 10⁶ ppm².
pub fn agent_performance_variance(registry: &Registry) -> Ppm {
    let (n, sum, sum_sq) = registry.agents().fold((0u128, 0u128, 0u128), |(n, sum, sum_sq), agent| {
        let x = u128::from(agent.accuracy_multiplier().raw());
        (n.saturating_add(1), sum.saturating_add(x), sum_sq.saturating_add(x * x))
    });
    if n == 0 {
        return Ppm::ZERO;
    }
    // Cauchy–Schwarz: n Σx² ≥ (Σx)², so the difference is never negative.
    let spread = n.saturating_mul(sum_sq).saturating_sub(sum.saturating_mul(sum));
    let variance = spread / n.saturating_mul(n).saturating_mul(u128::from(PPM_ONE));
    debug_assert!(variance <= u128::from(PPM_ONE / 4), "variance {variance} above 1/4");
    Ppm::saturating(u64::try_from(variance).unwrap_or(u64::MAX))
}

/// The histogram bucket of a latency.
fn bucket_index(latency_ms: TimeMs) -> usize {
    usize::try_from(latency_ms).map_or(HISTOGRAM_MS, |ms| ms.min(HISTOGRAM_MS))
}

/// The nearest rank `ceil(n × p)`, at least 1, for `p = p_ppm / 10⁶ ≤ 1`.
fn nearest_rank(n: u64, p_ppm: u32) -> u64 {
    let scaled = u128::from(n) * u128::from(p_ppm);
    let rank = scaled.div_ceil(u128::from(PPM_ONE));
    u64::try_from(rank).unwrap_or(u64::MAX).clamp(1, n.max(1))
}

/// `part / whole` as a fraction, rounded up; zero when `whole` is zero.
fn ratio_ceil(part: u128, whole: u128) -> Ppm {
    if whole == 0 {
        return Ppm::ZERO;
    }
    let ppm = part.saturating_mul(u128::from(PPM_ONE)).div_ceil(whole);
    Ppm::saturating(u64::try_from(ppm).unwrap_or(u64::MAX))
}

/// For alert texts only.
fn percent(rate: Ppm) -> f64 {
    rate.as_f64() * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::types::AgentId;

    fn decided(latency_ms: TimeMs) -> SessionOutcome {
        outcome(latency_ms, SessionResult::Decided { agreement: Ppm::ONE, fallback: false })
    }

    fn outcome(latency_ms: TimeMs, result: SessionResult) -> SessionOutcome {
        SessionOutcome { session: SessionId(0), latency_ms, result, votes_counted: 5, votes_flagged: 0 }
    }

    fn recorder_of(outcomes: impl IntoIterator<Item = SessionOutcome>) -> MetricsRecorder {
        let mut recorder = MetricsRecorder::new();
        for o in outcomes {
            recorder.record(&o);
        }
        recorder
    }

    fn titles(metrics: &ConsensusMetrics) -> Vec<String> {
        check_alerts(metrics, &AlertThresholds::default()).into_iter().map(|a| a.title).collect()
    }

    fn ppm(raw: u32) -> Ppm {
        Ppm::saturating(u64::from(raw))
    }

    /// Metrics of a healthy run, to perturb one field at a time.
    fn healthy() -> ConsensusMetrics {
        ConsensusMetrics {
            timeout_rate: ppm(10_000),
            p99_consensus_time_ms: 200,
            byzantine_detection_rate: ppm(20_000),
            consensus_success_rate: ppm(990_000),
            sessions: 1_000,
            ..ConsensusMetrics::default()
        }
    }

    #[test]
    fn percentiles_on_one_to_a_hundred_ms() {
        let r = recorder_of((1..=100).map(decided));
        assert_eq!(r.latency_percentile_ms(950_000), Some(95));
        assert_eq!(r.latency_percentile_ms(990_000), Some(99));
        assert_eq!(r.latency_percentile_ms(500_000), Some(50));
        assert_eq!(r.latency_percentile_ms(0), Some(1));
        assert_eq!(r.latency_percentile_ms(PPM_ONE), Some(100));
        assert_eq!(r.latency_percentile_ms(PPM_ONE + 1), None);
        let m = r.snapshot(None);
        assert_eq!((m.p95_consensus_time_ms, m.p99_consensus_time_ms, m.max_consensus_time_ms), (95, 99, 100));
        assert_eq!(m.average_consensus_time_ms, 50); // 50.5 rounded down
        assert_eq!(m.sessions, 100);
        assert_eq!(MetricsRecorder::new().latency_percentile_ms(500_000), None);
    }

    #[test]
    fn overflow_bucket_reports_the_exact_max() {
        let r = recorder_of([10, 20, 15_000, 12_000, 9_999].map(decided));
        assert_eq!(r.latency_max_ms(), 15_000);
        assert_eq!(r.latency_percentile_ms(600_000), Some(9_999)); // rank 3, last exact bucket
        assert_eq!(r.latency_percentile_ms(800_000), Some(15_000)); // rank 4, in the overflow
        assert_eq!(r.latency_percentile_ms(PPM_ONE), Some(15_000));
        let m = r.snapshot(None);
        assert_eq!(m.sla_misses, 3);
        assert_eq!(m.average_consensus_time_ms, (10 + 20 + 15_000 + 12_000 + 9_999) / 5);
        let huge = recorder_of([decided(TimeMs::MAX)]);
        assert_eq!(huge.latency_percentile_ms(990_000), Some(TimeMs::MAX));
        assert_eq!(huge.snapshot(None).average_consensus_time_ms, TimeMs::MAX);
    }

    #[test]
    fn rates_follow_the_definitions() {
        let mut outcomes: Vec<_> = (0..6).map(|_| decided(100)).collect();
        outcomes[0].result = SessionResult::Decided { agreement: ppm(700_000), fallback: true };
        outcomes.push(outcome(600, SessionResult::TimedOut));
        outcomes.push(outcome(100, SessionResult::Escalated));
        outcomes[1].votes_flagged = 5; // 5 of 5 × 8 + 5 = 45 votes
        let m = recorder_of(outcomes).snapshot(None);
        assert_eq!(m.consensus_success_rate, ppm(750_000));
        assert_eq!(m.timeout_rate, ppm(125_000));
        assert_eq!(m.average_agreement_rate, ppm(950_000)); // (0.7 + 5 × 1.0) / 6
        assert_eq!(m.byzantine_detection_rate, ppm(111_112)); // 1/9 rounded up
        assert_eq!(m.sla_misses, 1);
        assert_eq!((m.active_agents, m.agent_performance_variance), (0, Ppm::ZERO));
    }

    #[test]
    fn alert_rates_round_against_the_alert() {
        assert_eq!(ratio_ceil(50_001, 1_000_001), ppm(50_001));
        assert_eq!(Ppm::ratio(50_001, 1_000_001), ppm(50_000));
        assert_eq!(ratio_ceil(5, 100), ppm(50_000));
        assert_eq!(ratio_ceil(3, 0), Ppm::ZERO);
    }

    #[test]
    fn timeout_alert_fires_just_above_five_percent() {
        let mut m = healthy();
        m.timeout_rate = ppm(50_000);
        assert!(titles(&m).is_empty());
        m.timeout_rate = ppm(50_001);
        let alerts = check_alerts(&m, &AlertThresholds::default());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].level, AlertLevel::Critical);
        assert_eq!(alerts[0].title, "High Consensus Timeout Rate");
        assert_eq!(alerts[0].description, "Consensus timeout rate: 5.00%");
        assert_eq!(alerts[0].recommended_action, "Investigate agent performance and network latency");
        // End to end: 5 of 100 is not above 5%; 5 of 99 is.
        let at = recorder_of((0..100).map(|i| if i < 5 { outcome(1, SessionResult::TimedOut) } else { decided(1) }));
        assert!(!titles(&at.snapshot(None)).contains(&"High Consensus Timeout Rate".to_owned()));
        let over = recorder_of((0..99).map(|i| if i < 5 { outcome(1, SessionResult::TimedOut) } else { decided(1) }));
        assert!(titles(&over.snapshot(None)).contains(&"High Consensus Timeout Rate".to_owned()));
    }

    #[test]
    fn sla_alert_fires_just_above_500_ms() {
        let at = recorder_of((0..100).map(|_| decided(500))).snapshot(None);
        assert_eq!(at.p99_consensus_time_ms, 500);
        assert!(titles(&at).is_empty());
        let over = recorder_of((0..100).map(|_| decided(501))).snapshot(None);
        let alerts = check_alerts(&over, &AlertThresholds::default());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].level, AlertLevel::Critical);
        assert_eq!(alerts[0].title, "Consensus SLA Violation");
        assert_eq!(alerts[0].description, "P99 consensus time: 501ms > 500ms");
        assert_eq!(alerts[0].recommended_action, "Scale up agents or optimize consensus algorithm");
        assert_eq!(over.sla_misses, 100);
    }

    #[test]
    fn byzantine_alert_fires_just_above_ten_percent() {
        let flagged =
            |counted, flagged| SessionOutcome { votes_counted: counted, votes_flagged: flagged, ..decided(1) };
        let at = recorder_of([flagged(9, 1)]).snapshot(None);
        assert_eq!(at.byzantine_detection_rate, ppm(100_000));
        assert!(titles(&at).is_empty());
        let over = recorder_of([flagged(899_999, 100_001)]).snapshot(None);
        let alerts = check_alerts(&over, &AlertThresholds::default());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].level, AlertLevel::Warning);
        assert_eq!(alerts[0].title, "High Byzantine Detection Rate");
        assert_eq!(alerts[0].description, "Byzantine detection: 10.00%");
        assert_eq!(alerts[0].recommended_action, "Investigate potential security threats or agent malfunctions");
    }

    #[test]
    fn success_alert_fires_just_below_95_percent() {
        let mut m = healthy();
        m.consensus_success_rate = ppm(950_000);
        assert!(titles(&m).is_empty());
        m.consensus_success_rate = ppm(949_999);
        let alerts = check_alerts(&m, &AlertThresholds::default());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].level, AlertLevel::Warning);
        assert_eq!(alerts[0].title, "Low Consensus Success Rate");
        assert_eq!(alerts[0].description, "Success rate: 95.00%");
        assert_eq!(alerts[0].recommended_action, "Review agent configurations and consensus thresholds");
        // End to end: 19 of 20 decided is exactly 95%; escalations and no-decisions also fail.
        let at = recorder_of((0..20).map(|i| if i == 0 { outcome(1, SessionResult::Escalated) } else { decided(1) }));
        assert!(titles(&at.snapshot(None)).is_empty());
        let below =
            recorder_of((0..20).map(|i| if i < 2 { outcome(1, SessionResult::NoDecision) } else { decided(1) }));
        assert_eq!(titles(&below.snapshot(None)), vec!["Low Consensus Success Rate".to_owned()]);
    }

    #[test]
    fn no_alerts_without_sessions_or_on_a_healthy_run() {
        assert!(check_alerts(&ConsensusMetrics::default(), &AlertThresholds::default()).is_empty());
        assert!(check_alerts(&MetricsRecorder::new().snapshot(None), &AlertThresholds::default()).is_empty());
        assert!(titles(&healthy()).is_empty());
        let run = recorder_of((0..1_000).map(|i| decided(50 + i % 300)));
        assert!(titles(&run.snapshot(None)).is_empty());
    }

    #[test]
    fn all_four_alerts_in_seed_order() {
        let m = ConsensusMetrics {
            timeout_rate: ppm(500_000),
            p99_consensus_time_ms: 10_000,
            byzantine_detection_rate: ppm(300_000),
            consensus_success_rate: ppm(500_000),
            sessions: 10,
            ..ConsensusMetrics::default()
        };
        let levels: Vec<_> = check_alerts(&m, &AlertThresholds::default()).into_iter().map(|a| a.level).collect();
        assert_eq!(levels, [AlertLevel::Critical, AlertLevel::Critical, AlertLevel::Warning, AlertLevel::Warning]);
    }

    #[test]
    fn merge_equals_recording_everything_into_one() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let outcomes: Vec<_> = (0..2_000u64)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let result = match state >> 62 {
                    0 => SessionResult::TimedOut,
                    1 => SessionResult::Escalated,
                    _ => {
                        SessionResult::Decided { agreement: ppm((state >> 40) as u32 % PPM_ONE), fallback: i % 7 == 0 }
                    }
                };
                let latency_ms = (state >> 20) % 12_000;
                SessionOutcome {
                    session: SessionId(i),
                    latency_ms,
                    result,
                    votes_counted: 5,
                    votes_flagged: (i % 3) as u32,
                }
            })
            .collect();
        let whole = recorder_of(outcomes.iter().copied());
        let mut a = recorder_of(outcomes.iter().copied().step_by(2));
        let b = recorder_of(outcomes.iter().copied().skip(1).step_by(2));
        a.merge(&b);
        assert_eq!(a, whole);
        assert_eq!(a.snapshot(None), whole.snapshot(None));
        let mut empty = MetricsRecorder::default();
        empty.merge(&whole);
        assert_eq!(empty, whole);
    }

    #[test]
    fn registry_counts_and_performance_variance() {
        let mut registry = Registry::seed_committee(5, &EngineConfig::default());
        let r = recorder_of([decided(1)]);
        let m = r.snapshot(Some(&registry));
        assert_eq!((m.active_agents, m.quarantined_agents, m.excluded_agents), (5, 0, 0));
        assert_eq!(m.agent_performance_variance, Ppm::ZERO); // everyone at 1.0
        if let Some(agent) = registry.get_mut(AgentId(1)) {
            agent.status = AgentStatus::Quarantined;
        }
        if let Some(agent) = registry.get_mut(AgentId(2)) {
            agent.status = AgentStatus::Excluded;
        }
        // Agent 0 disagreed with its only decision: multiplier 0.5; the others stay at 1.0.
        if let Some(agent) = registry.get_mut(AgentId(0)) {
            agent.agreements.push(false);
        }
        let m = r.snapshot(Some(&registry));
        assert_eq!((m.active_agents, m.quarantined_agents, m.excluded_agents), (3, 1, 1));
        // Mean 0.9; variance (0.4² + 4 × 0.1²) / 5 = 0.04.
        assert_eq!(m.agent_performance_variance, ppm(40_000));
        assert_eq!(agent_performance_variance(&registry), ppm(40_000));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut r = MetricsRecorder::new();
        let size = std::mem::size_of_val(&r);
        assert_eq!(r.bucket_count(), HISTOGRAM_MS + 1);
        for i in 0..1_000_000u64 {
            r.record(&decided(i % 20_000));
        }
        assert_eq!(r.sessions(), 1_000_000);
        assert_eq!(r.bucket_count(), HISTOGRAM_MS + 1);
        assert_eq!(std::mem::size_of_val(&r), size);
        assert_eq!(r.latency_max_ms(), 19_999);
        assert_eq!(r.latency_percentile_ms(400_000), Some(7_999));
        assert_eq!(r.latency_percentile_ms(600_000), Some(19_999));
    }

    #[test]
    fn outcomes_and_metrics_round_trip_through_json() {
        let o = outcome(42, SessionResult::TimedOut);
        let json = serde_json::to_string(&o).unwrap_or_default();
        assert!(json.contains("\"timed-out\""), "{json}");
        assert_eq!(serde_json::from_str::<SessionOutcome>(&json).ok(), Some(o));
        let m = recorder_of((1..=10).map(decided)).snapshot(None);
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(serde_json::from_str::<ConsensusMetrics>(&json).ok(), Some(m));
        let t: AlertThresholds = serde_json::from_str("{\"sla_ms\": 250}").unwrap_or_default();
        assert_eq!((t.sla_ms, t.max_timeout_rate), (250, ppm(50_000)));
    }
}
