//! Engine configuration, with the design's numbers as defaults.

use serde::{Deserialize, Serialize};

use crate::fixed::{Ppm, Ratio};
use crate::types::TimeMs;

/// What "agreement rate" counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgreementBasis {
    /// Supporting votes over counted votes, as the design's `process_votes_parallel` computes it.
    #[default]
    Count,
    /// Supporting effective weight over counted effective weight.
    Weight,
}

/// What happens when no candidate reaches the threshold but conflict resolution (design §4.2)
/// picks one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// The design's behaviour: the resolved candidate is decided, marked with its method.
    #[default]
    Resolve,
    /// Below-threshold resolutions are escalated to human review instead.
    Escalate,
}

/// What happens at the session deadline (design §5.2 `fallback_consensus`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackPolicy {
    /// No fallback: past the deadline the session is a timeout.
    #[default]
    None,
    /// Past the deadline, a strict (> 50%) majority of the votes received decides.
    SimpleMajority,
}

/// Which Byzantine detector runs (design §3.2 `ByzantineDetector`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// The design's: deviation from the mean vote above the threshold, averaged over the window.
    #[default]
    MeanDeviation,
    /// Robust: deviation from the coordinate-wise median, judged against the median absolute
    /// deviation; breakdown point 1/2.
    MedianMad,
    /// No detection.
    None,
}

/// Byzantine detector settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Which detector.
    pub kind: DetectorKind,
    /// Deviation above which an agent is flagged (seed: 0.3).
    pub threshold: Ppm,
    /// Votes of history per agent (seed: 100).
    pub window: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig { kind: DetectorKind::MeanDeviation, threshold: Ppm::saturating(300_000), window: 100 }
    }
}

/// Quarantine, exclusion and replacement of flagged agents (design §3.2 `handle_byzantine_agents`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuarantineConfig {
    /// Decided sessions a quarantined agent sits out before it is active again.
    pub sessions: u64,
    /// Offences after which an agent is excluded for good (seed: 3).
    pub exclude_after: u32,
    /// Active agents to keep; replacements are spawned below it (seed: 5).
    pub min_active: usize,
    /// Whether replacements are spawned at all.
    pub replace: bool,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig { sessions: 10, exclude_after: 3, min_active: 5, replace: true }
    }
}

/// The vote-pattern cache (design §5.2 `VoteCache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether the cache is consulted.
    pub enabled: bool,
    /// Patterns kept; the oldest is evicted beyond it (seed: 1000).
    pub capacity: usize,
    /// Share of matching votes above which a pattern is "similar".
    pub similarity: Ppm,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { enabled: false, capacity: 1_000, similarity: Ppm::saturating(900_000) }
    }
}

/// Everything the voting engine needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Agreement threshold (seed: 66%).
    pub threshold: Ratio,
    /// What agreement counts.
    pub agreement_basis: AgreementBasis,
    /// What to do with below-threshold conflict resolutions.
    pub conflict_policy: ConflictPolicy,
    /// Confidence above which a dissenting vote is "strong" (design §4.2: 0.9).
    pub strong_minority_confidence: Ppm,
    /// Relative margin by which one side's weighted evidence must exceed the other's for the
    /// evidence analysis to take a side.
    pub evidence_margin: Ppm,
    /// Decided sessions of history for the accuracy multiplier.
    pub accuracy_window: usize,
    /// Byzantine detection.
    pub detector: DetectorConfig,
    /// Quarantine and exclusion.
    pub quarantine: QuarantineConfig,
    /// Past the deadline.
    pub fallback: FallbackPolicy,
    /// Decide at once when every expected vote agrees (design §5.2).
    pub early_unanimous: bool,
    /// Vote-pattern cache.
    pub cache: CacheConfig,
    /// Session deadline (seed: 500 ms).
    pub deadline_ms: TimeMs,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threshold: Ratio::SEED_THRESHOLD,
            agreement_basis: AgreementBasis::Count,
            conflict_policy: ConflictPolicy::Resolve,
            strong_minority_confidence: Ppm::saturating(900_000),
            evidence_margin: Ppm::saturating(100_000),
            accuracy_window: 100,
            detector: DetectorConfig::default(),
            quarantine: QuarantineConfig::default(),
            fallback: FallbackPolicy::None,
            early_unanimous: true,
            cache: CacheConfig::default(),
            deadline_ms: 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_numbers() {
        let c = EngineConfig::default();
        assert_eq!(c.threshold, Ratio::SEED_THRESHOLD);
        assert_eq!(c.deadline_ms, 500);
        assert_eq!(c.detector.threshold.raw(), 300_000);
        assert_eq!(c.detector.window, 100);
        assert_eq!(c.quarantine.exclude_after, 3);
        assert_eq!(c.quarantine.min_active, 5);
        assert_eq!(c.cache.capacity, 1_000);
        assert_eq!(c.strong_minority_confidence.raw(), 900_000);
    }

    #[test]
    fn config_round_trips_and_rejects_unknown_fields() {
        let c = EngineConfig::default();
        let json = serde_json::to_string(&c).unwrap_or_default();
        let back: EngineConfig = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, c);
        let bad = serde_json::from_str::<EngineConfig>(r#"{"treshold": {"num": 1, "den": 2}}"#);
        assert!(bad.is_err());
        let bad_ratio = serde_json::from_str::<EngineConfig>(r#"{"threshold": {"num": 3, "den": 2}}"#);
        assert!(bad_ratio.is_err());
    }
}
