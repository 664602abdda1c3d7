//! What one run produces (one line of `runs.jsonl`), and the per-scenario summary.

use std::collections::BTreeMap;

use consensus_core::metrics::ConsensusMetrics;
use serde::{Deserialize, Serialize};

use crate::oracle::Violation;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// No invariant was violated.
    Ok,
    /// An invariant was violated.
    Violation,
    /// A violation of another invariant than the one the scenario expects (safety = false).
    ExpectationFailed,
}

/// Latency percentiles over every honest decision of the run (decide time − open time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// One run: the record written to `runs.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Scenario name.
    pub scenario: String,
    /// Sweep parameter values (empty outside sweeps).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The seed.
    pub seed: u64,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The violation found, if any (at most one: the first stops the run).
    pub violations: Vec<Violation>,
    /// Sessions in the workload.
    pub sessions: u64,
    /// Sessions decided for a candidate.
    pub decided: u64,
    /// Sessions decided for the ground-truth best candidate.
    pub correct: u64,
    /// Sessions escalated to people.
    pub escalated: u64,
    /// Sessions agreed as "no decision" by the engine.
    pub no_decision: u64,
    /// Sessions no honest agent decided by the end of the run.
    pub undecided: u64,
    /// Sessions decided by the timeout fallback.
    pub fallback: u64,
    /// Latency of honest decisions.
    pub latency_ms: LatencySummary,
    /// Honest decisions later than the deadline (the seed's 500 ms SLA).
    pub sla_misses: u64,
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
    /// The seed's monitoring metrics over this run.
    pub metrics: ConsensusMetrics,
    /// Titles of the seed's alerts that fired.
    pub alerts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
