//! The design's performance policies (design §5.1–5.2 `ConsensusPerformanceOptimizer`) as pure
//! building blocks: the early unanimous decision, the vote-pattern cache, and the timeout
//! fallback to a simple majority.
//!
//! Each is decided from one view of the votes. That is safe for a trusted collector and
//! unsafe when every agent applies it to its own view while a Byzantine agent equivocates;
//! the agreement protocol runs them through agreement, and the simulator's
//! `local-timeout-fallback` mutation shows what happens otherwise.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::aggregate::{aggregate, Aggregation, SessionInput};
use crate::config::{CacheConfig, EngineConfig, FallbackPolicy};
use crate::fixed::{Ppm, Ratio};
use crate::registry::Registry;
use crate::types::{
    AgentId, AgentStatus, AgentVote, CandidateId, ConsensusError, ConsensusMethod, ConsensusResult, Decision,
    SessionId, TimeMs, VoteValue,
};

/// Design §5.2 `EarlyDecisionDetector::check_unanimous`: every active agent has voted, and every
/// vote accepts the same candidate at or above the voter's confidence threshold.
pub fn check_unanimous(votes: &[AgentVote], registry: &Registry) -> Option<CandidateId> {
    let first = votes.first()?;
    let voters: BTreeSet<AgentId> = votes.iter().map(|v| v.agent).collect();
    let complete = voters.len() == votes.len()
        && voters.len() == registry.count(AgentStatus::Active)
        && voters.iter().all(|a| registry.get(*a).is_some_and(|r| r.is_active()));
    let agree = votes.iter().all(|v| {
        v.candidate == first.candidate
            && matches!(v.value, VoteValue::Accept { .. })
            && registry.get(v.agent).is_some_and(|r| v.confidence >= r.confidence_threshold)
    });
    (complete && agree).then_some(first.candidate)
}

/// Design §5.2 `fallback_consensus`: past the deadline, the candidate accepted by a strict
/// majority (> 50%) of the agents that voted wins, marked [`ConsensusMethod::TimeoutFallback`].
/// One vote per agent counts (its smallest, so duplicates and equivocations cannot stuff the
/// count). No weighting, no detection: the design's fallback is deliberately blunt.
pub fn fallback_consensus(session: SessionId, votes: &[AgentVote]) -> Result<ConsensusResult, ConsensusError> {
    let mut per_agent: BTreeMap<AgentId, &AgentVote> = BTreeMap::new();
    for v in votes.iter().filter(|v| v.session == session) {
        per_agent.entry(v.agent).and_modify(|cur| *cur = (*cur).min(v)).or_insert(v);
    }
    let total = per_agent.len();
    if total == 0 {
        return Err(ConsensusError::NoVotes(session));
    }
    let mut counts: BTreeMap<CandidateId, usize> = BTreeMap::new();
    for v in per_agent.values().filter(|v| matches!(v.value, VoteValue::Accept { .. })) {
        *counts.entry(v.candidate).or_default() += 1;
    }
    // Largest count; ties resolve to the smaller candidate id.
    let best = counts.iter().max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)));
    let (chosen, count) = best.map_or((None, 0), |(c, n)| (Some(*c), *n));
    let share = Ppm::ratio(count as u128, total as u128);
    match chosen {
        Some(chosen) if Ratio::HALF.exceeded(count as u128, total as u128) => Ok(ConsensusResult {
            session,
            chosen,
            agreement_rate: share,
            weighted_score_micro: 0,
            // The design's "conservative estimate".
            average_confidence: Ppm::saturating(700_000),
            participating: per_agent.keys().copied().collect(),
            byzantine: Vec::new(),
            method: ConsensusMethod::TimeoutFallback,
        }),
        _ => Err(ConsensusError::NoMajority { largest_group: share, total }),
    }
}

/// What one agent did in a vote pattern; candidates are named by their position in the
/// session's candidate list so that patterns carry over between queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatternChoice {
    /// Accepted the candidate at this position.
    Accept(u32),
    /// Rejected the candidate at this position.
    Reject(u32),
    /// Abstained.
    Abstain,
}

/// Design §5.2 `extract_vote_pattern`: per agent (ascending), its choice and its confidence in
/// tenths.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VotePattern(pub Vec<(AgentId, PatternChoice, u8)>);

impl VotePattern {
    /// The pattern of `votes` over `candidates` (one entry per agent: its smallest vote).
    pub fn extract(votes: &[AgentVote], candidates: &[CandidateId]) -> VotePattern {
        let mut per_agent: BTreeMap<AgentId, &AgentVote> = BTreeMap::new();
        for v in votes {
            per_agent.entry(v.agent).and_modify(|cur| *cur = (*cur).min(v)).or_insert(v);
        }
        let position = |c: CandidateId| {
            candidates.iter().position(|x| *x == c).map_or(u32::MAX, |p| u32::try_from(p).unwrap_or(u32::MAX))
        };
        let entries = per_agent
            .values()
            .map(|v| {
                let choice = match v.value {
                    VoteValue::Accept { .. } => PatternChoice::Accept(position(v.candidate)),
                    VoteValue::Reject { .. } => PatternChoice::Reject(position(v.candidate)),
                    VoteValue::Abstain { .. } => PatternChoice::Abstain,
                };
                let tenths = u8::try_from(v.confidence.raw() / 100_000).unwrap_or(10);
                (v.agent, choice, tenths)
            })
            .collect();
        VotePattern(entries)
    }

    /// Design §5.2 `calculate_pattern_similarity`: agents with the same choice and confidence
    /// tenth in both patterns, over the larger pattern's size.
    pub fn similarity(&self, other: &VotePattern) -> Ppm {
        let theirs: BTreeMap<AgentId, (PatternChoice, u8)> = other.0.iter().map(|(a, c, t)| (*a, (*c, *t))).collect();
        let same = self.0.iter().filter(|(a, c, t)| theirs.get(a) == Some(&(*c, *t))).count();
        Ppm::ratio(same as u128, self.0.len().max(other.0.len()) as u128)
    }
}

/// A cached decision, stored by candidate position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedResult {
    /// The pattern it was decided on.
    pub pattern: VotePattern,
    /// The decision, with `chosen` meaningful only through `chosen_position`.
    pub result: ConsensusResult,
    /// Position of the chosen candidate in its session's list.
    pub chosen_position: u32,
    /// Insertion sequence: the oldest is evicted first.
    pub inserted: u64,
    /// Times it was reused.
    pub hit_count: u64,
}

/// Design §5.2 `VoteCache`: bounded, evicts the oldest, counts hits. Ordered maps only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteCache {
    entries: BTreeMap<VotePattern, CachedResult>,
    by_age: BTreeMap<u64, VotePattern>,
    next_seq: u64,
    capacity: usize,
    similarity: Ppm,
}

impl VoteCache {
    /// An empty cache with the configured capacity and similarity threshold.
    pub fn new(config: &CacheConfig) -> VoteCache {
        VoteCache { capacity: config.capacity.max(1), similarity: config.similarity, ..VoteCache::default() }
    }

    /// Patterns held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Design §5.2 `lookup_similar_pattern`: the most similar stored pattern whose similarity
    /// exceeds the threshold (ties: the newest), adapted to this session's candidates.
    pub fn lookup(
        &mut self,
        votes: &[AgentVote],
        candidates: &[CandidateId],
        session: SessionId,
    ) -> Option<ConsensusResult> {
        let pattern = VotePattern::extract(votes, candidates);
        let best = self
            .entries
            .values()
            .map(|e| (e.pattern.similarity(&pattern), e.inserted))
            .filter(|(s, _)| *s > self.similarity)
            .max()?;
        let key = self.by_age.get(&best.1)?.clone();
        let entry = self.entries.get_mut(&key)?;
        let chosen = *candidates.get(usize::try_from(entry.chosen_position).ok()?)?;
        entry.hit_count += 1;
        Some(ConsensusResult { session, chosen, method: ConsensusMethod::CachedPattern, ..entry.result.clone() })
    }

    /// Design §5.2 `store_pattern`: remembers a decision, evicting the oldest beyond capacity.
    pub fn store(&mut self, votes: &[AgentVote], candidates: &[CandidateId], result: &ConsensusResult) {
        let Some(position) = candidates.iter().position(|c| *c == result.chosen) else { return };
        let pattern = VotePattern::extract(votes, candidates);
        if let Some(old) = self.entries.remove(&pattern) {
            self.by_age.remove(&old.inserted);
        }
        let inserted = self.next_seq;
        self.next_seq += 1;
        self.by_age.insert(inserted, pattern.clone());
        let chosen_position = u32::try_from(position).unwrap_or(u32::MAX);
        self.entries.insert(
            pattern.clone(),
            CachedResult { pattern, result: result.clone(), chosen_position, inserted, hit_count: 0 },
        );
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        debug_assert_eq!(self.entries.len(), self.by_age.len());
    }

    /// Hit counts of the stored patterns, oldest first.
    pub fn hit_counts(&self) -> Vec<u64> {
        self.by_age.values().filter_map(|p| self.entries.get(p)).map(|e| e.hit_count).collect()
    }
}

/// Design §5.2 `OptimizationType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizationType {
    /// Every agent agreed.
    EarlyUnanimous,
    /// A similar pattern was cached.
    CachedPattern,
    /// The full pipeline ran.
    ParallelProcessing,
    /// The deadline had passed.
    TimeoutFallback,
}

/// Design §5.2 `OptimizedConsensusResult`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizedOutcome {
    /// Decided without the full pipeline.
    EarlyDecision {
        /// The decision.
        result: ConsensusResult,
        /// Time since the session started.
        duration_ms: TimeMs,
        /// Which shortcut.
        optimization: OptimizationType,
    },
    /// The full pipeline ran before the deadline.
    Success {
        /// Everything the engine concluded.
        aggregation: Box<Aggregation>,
        /// Time since the session started.
        duration_ms: TimeMs,
    },
    /// The deadline had passed.
    Timeout {
        /// The fallback's decision, or why there is none.
        result: Result<ConsensusResult, ConsensusError>,
        /// Time since the session started.
        duration_ms: TimeMs,
    },
}

/// Design §5.2 `ConsensusPerformanceOptimizer`, pure: time comes in as arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusOptimizer {
    /// The vote-pattern cache.
    pub cache: VoteCache,
}

impl ConsensusOptimizer {
    /// An optimizer with an empty cache.
    pub fn new(config: &EngineConfig) -> ConsensusOptimizer {
        ConsensusOptimizer { cache: VoteCache::new(&config.cache) }
    }

    /// Design §5.2 `optimize_consensus`: early unanimous decision, then the cache, then the full
    /// pipeline if `now_ms` is before the deadline, else the configured fallback.
    pub fn optimize(
        &mut self,
        input: &SessionInput<'_>,
        registry: &Registry,
        config: &EngineConfig,
        started_ms: TimeMs,
        now_ms: TimeMs,
    ) -> OptimizedOutcome {
        let duration_ms = now_ms.saturating_sub(started_ms);
        if config.early_unanimous {
            if let Some(chosen) = check_unanimous(input.votes, registry) {
                let aggregation = aggregate(input, registry, config);
                if let Ok(Decision::Decided(result)) = aggregation.outcome {
                    debug_assert_eq!(result.chosen, chosen);
                    let result = ConsensusResult { method: ConsensusMethod::EarlyUnanimous, ..result };
                    return OptimizedOutcome::EarlyDecision {
                        result,
                        duration_ms,
                        optimization: OptimizationType::EarlyUnanimous,
                    };
                }
            }
        }
        if config.cache.enabled {
            if let Some(result) = self.cache.lookup(input.votes, input.candidates, input.session) {
                return OptimizedOutcome::EarlyDecision {
                    result,
                    duration_ms,
                    optimization: OptimizationType::CachedPattern,
                };
            }
        }
        if duration_ms >= config.deadline_ms {
            let result = match config.fallback {
                FallbackPolicy::SimpleMajority => fallback_consensus(input.session, input.votes),
                FallbackPolicy::None => Err(ConsensusError::DeadlineExceeded { deadline_ms: config.deadline_ms }),
            };
            return OptimizedOutcome::Timeout { result, duration_ms };
        }
        let aggregation = aggregate(input, registry, config);
        if let (true, Ok(Decision::Decided(result))) = (config.cache.enabled, &aggregation.outcome) {
            self.cache.store(input.votes, input.candidates, result);
        }
        OptimizedOutcome::Success { aggregation: Box::new(aggregation), duration_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::AgentRecord;
    use crate::types::AgentSpecialization;

    fn ppm(x: f64) -> Ppm {
        Ppm::from_f64(x).unwrap_or_else(|| panic!("{x}"))
    }

    const S: SessionId = SessionId(3);

    fn vote(agent: u32, candidate: u32, confidence: f64) -> AgentVote {
        AgentVote::accept(
            AgentId(agent),
            AgentSpecialization::cycled(agent as usize),
            S,
            CandidateId(candidate),
            ppm(0.9),
            ppm(confidence),
        )
    }

    fn candidates() -> Vec<CandidateId> {
        vec![CandidateId(10), CandidateId(11), CandidateId(12)]
    }

    #[test]
    fn seed_early_unanimous_decision() {
        // Design §7.1 test_early_unanimous_decision: five validators, confidence 0.95.
        let config = EngineConfig::default();
        let records = (0..5).map(|i| AgentRecord::new(AgentId(i), AgentSpecialization::Validator, &config)).collect();
        let registry = Registry::from_records(records).unwrap_or_else(|e| panic!("{e}"));
        let votes: Vec<_> = (0..5)
            .map(|i| AgentVote {
                specialization: AgentSpecialization::Validator,
                ..AgentVote::accept(AgentId(i), AgentSpecialization::Validator, S, CandidateId(10), ppm(0.9), ppm(0.95))
            })
            .collect();
        assert_eq!(check_unanimous(&votes, &registry), Some(CandidateId(10)));
        let mut optimizer = ConsensusOptimizer::new(&config);
        let c = candidates();
        let input = SessionInput { session: S, candidates: &c, votes: &votes };
        match optimizer.optimize(&input, &registry, &config, 0, 12) {
            OptimizedOutcome::EarlyDecision { optimization, result, duration_ms } => {
                assert_eq!(optimization, OptimizationType::EarlyUnanimous);
                assert_eq!(result.chosen, CandidateId(10));
                assert_eq!(duration_ms, 12);
            }
            other => panic!("expected early unanimous decision, got {other:?}"),
        }
        // One vote short, or one vote below its threshold: not unanimous.
        assert_eq!(check_unanimous(&votes[..4], &registry), None);
        let mut low = votes.clone();
        low[2].confidence = ppm(0.85);
        assert_eq!(check_unanimous(&low, &registry), None);
    }

    #[test]
    fn fallback_needs_a_strict_majority() {
        let votes = [vote(0, 10, 0.9), vote(1, 10, 0.9), vote(2, 10, 0.9), vote(3, 11, 0.9), vote(4, 12, 0.9)];
        let r = fallback_consensus(S, &votes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.chosen, r.method, r.agreement_rate),
            (CandidateId(10), ConsensusMethod::TimeoutFallback, ppm(0.6))
        );
        // 2 of 4 is not > 50%.
        let votes = [vote(0, 10, 0.9), vote(1, 10, 0.9), vote(3, 11, 0.9), vote(4, 12, 0.9)];
        assert_eq!(
            fallback_consensus(S, &votes),
            Err(ConsensusError::NoMajority { largest_group: Ppm::HALF, total: 4 })
        );
        // An agent voting twice counts once.
        let votes = [vote(0, 10, 0.9), vote(0, 10, 0.8), vote(1, 11, 0.9)];
        assert!(fallback_consensus(S, &votes).is_err());
        assert_eq!(fallback_consensus(S, &[]), Err(ConsensusError::NoVotes(S)));
    }

    #[test]
    fn cache_reuses_similar_patterns_evicts_oldest_and_counts_hits() {
        let config = CacheConfig { enabled: true, capacity: 2, similarity: ppm(0.7) };
        let mut cache = VoteCache::new(&config);
        let c = candidates();
        let votes: Vec<_> = (0..5).map(|i| vote(i, 11, 0.9)).collect();
        let result = ConsensusResult {
            session: S,
            chosen: CandidateId(11),
            agreement_rate: Ppm::ONE,
            weighted_score_micro: 1,
            average_confidence: ppm(0.9),
            participating: vec![],
            byzantine: vec![],
            method: ConsensusMethod::Threshold,
        };
        cache.store(&votes, &c, &result);
        // Another query, other candidate ids, 4 of 5 agents alike: 80% > 70%.
        let other = [CandidateId(20), CandidateId(21), CandidateId(22)];
        let mut similar: Vec<_> = (0..5).map(|i| vote(i, 21, 0.9)).collect();
        similar[4].candidate = CandidateId(22);
        let hit = cache.lookup(&similar, &other, SessionId(9)).unwrap_or_else(|| panic!("expected a hit"));
        assert_eq!(
            (hit.chosen, hit.session, hit.method),
            (CandidateId(21), SessionId(9), ConsensusMethod::CachedPattern)
        );
        assert_eq!(cache.hit_counts(), vec![1]);
        // 3 of 5 alike: 60% is not similar.
        similar[3].candidate = CandidateId(22);
        assert_eq!(cache.lookup(&similar, &other, SessionId(9)), None);
        // Capacity 2: a third pattern evicts the first.
        let p2: Vec<_> = (0..5).map(|i| vote(i, 10, 0.5)).collect();
        let p3: Vec<_> = (0..5).map(|i| vote(i, 12, 0.3)).collect();
        let r10 = ConsensusResult { chosen: CandidateId(10), ..result.clone() };
        let r12 = ConsensusResult { chosen: CandidateId(12), ..result.clone() };
        cache.store(&p2, &c, &r10);
        cache.store(&p3, &c, &r12);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.lookup(&votes, &c, S), None, "the first pattern was evicted");
        assert_eq!(cache.hit_counts(), vec![0, 0]);
    }

    #[test]
    fn optimizer_times_out_into_the_configured_fallback() {
        let mut config = EngineConfig::default();
        let registry = Registry::seed_committee(5, &config);
        let c = candidates();
        let votes = [vote(0, 10, 0.9), vote(1, 10, 0.9), vote(2, 10, 0.95), vote(3, 10, 0.9), vote(4, 11, 0.9)];
        let input = SessionInput { session: S, candidates: &c, votes: &votes };
        let mut optimizer = ConsensusOptimizer::new(&config);
        match optimizer.optimize(&input, &registry, &config, 100, 600) {
            OptimizedOutcome::Timeout {
                result: Err(ConsensusError::DeadlineExceeded { deadline_ms: 500 }),
                duration_ms: 500,
            } => {}
            other => panic!("{other:?}"),
        }
        config.fallback = FallbackPolicy::SimpleMajority;
        match optimizer.optimize(&input, &registry, &config, 100, 600) {
            OptimizedOutcome::Timeout { result: Ok(r), .. } => assert_eq!(r.method, ConsensusMethod::TimeoutFallback),
            other => panic!("{other:?}"),
        }
        // Before the deadline the full pipeline runs: the dissenter is flagged, 4 of 4 agree.
        match optimizer.optimize(&input, &registry, &config, 100, 120) {
            OptimizedOutcome::Success { aggregation, duration_ms: 20 } => {
                assert_eq!(aggregation.outcome.ok().and_then(|d| d.chosen()), Some(CandidateId(10)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn optimizer_stores_and_reuses_when_the_cache_is_enabled() {
        let mut config = EngineConfig::default();
        config.cache.enabled = true;
        config.early_unanimous = false;
        let registry = Registry::seed_committee(5, &config);
        let c = candidates();
        let votes = [vote(0, 10, 0.9), vote(1, 10, 0.9), vote(2, 10, 0.95), vote(3, 10, 0.9), vote(4, 11, 0.9)];
        let input = SessionInput { session: S, candidates: &c, votes: &votes };
        let mut optimizer = ConsensusOptimizer::new(&config);
        assert!(matches!(optimizer.optimize(&input, &registry, &config, 0, 10), OptimizedOutcome::Success { .. }));
        match optimizer.optimize(&input, &registry, &config, 0, 10) {
            OptimizedOutcome::EarlyDecision { optimization: OptimizationType::CachedPattern, result, .. } => {
                assert_eq!(result.chosen, CandidateId(10));
            }
            other => panic!("{other:?}"),
        }
    }
}
