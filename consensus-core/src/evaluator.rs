//! How an agent scores the candidates of a session (design §3.2, the `cast_*_vote` functions).
//!
//! The design's agents each score every candidate in their own way (retrieval relevance,
//! semantic quality, accuracy, ranking, health) and accept the best one. Here that step is the
//! [`Evaluator`] trait: a real scorer (an LLM judge, a reranker) implements it, and the runner
//! calls it when a session opens and delivers the vote after the reported latency.
//!
//! For the simulator, [`SyntheticEvaluator`] models an honest agent: it sees a hidden
//! [`GroundTruth`] quality per candidate through uniform noise, with latency and confidence
//! drawn from an [`EvaluatorProfile`]. Every draw comes from one seeded ChaCha8 stream and all
//! score arithmetic is in integer parts per million, so a seed replays exactly.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::fixed::{Ppm, PPM_ONE};
use crate::protocol::messages::SessionSpec;
use crate::types::{AgentId, AgentSpecialization, AgentVote, CandidateId, Priority, SessionId, TimeMs, VoteValue};

/// What an evaluator is asked.
#[derive(Clone, Copy, Debug)]
pub struct EvaluationRequest<'a> {
    /// The session: its query and candidates.
    pub spec: &'a SessionSpec,
    /// The agent that votes.
    pub agent: AgentId,
    /// What the agent is specialised in; it chooses the design's vote flavour.
    pub specialization: AgentSpecialization,
    /// When the evaluation starts, on the caller's clock.
    pub now_ms: TimeMs,
}

/// Its answer: the vote (unsigned) and how long producing it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The vote, with `timestamp_ms = now_ms + latency_ms`.
    pub vote: AgentVote,
    /// How long producing the vote took; the runner delivers the vote this much later.
    pub latency_ms: TimeMs,
}

/// How an agent scores candidates: the design's retrieval / analysis / validation / ranking /
/// monitoring votes.
///
/// Real scorers (an LLM judge, a reranker) implement this; the runner calls it when a session
/// opens and delivers the vote after `latency_ms`. Implementations must not read a clock or
/// ambient randomness: `now_ms` is in the request and any randomness is seeded.
pub trait Evaluator: Send {
    /// Scores the request's candidates and returns the agent's vote.
    fn evaluate(&mut self, request: &EvaluationRequest<'_>) -> Evaluation;
}

/// Ground truth for the simulator: the hidden quality of each candidate.
pub trait GroundTruth: Send + Sync {
    /// The true quality of `candidate` in `session`.
    fn quality(&self, session: SessionId, candidate: CandidateId) -> Ppm;
}

/// Ground truth from a table; a missing entry has quality [`Ppm::ZERO`]. Handy for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableTruth(pub BTreeMap<(SessionId, CandidateId), Ppm>);

impl GroundTruth for TableTruth {
    fn quality(&self, session: SessionId, candidate: CandidateId) -> Ppm {
        self.0.get(&(session, candidate)).copied().unwrap_or(Ppm::ZERO)
    }
}

/// Noise and latency model for one specialisation.
///
/// Ranges are inclusive; a reversed range is read in ascending order. Missing fields in a
/// scenario file take the [`Default`] (the retriever's profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluatorProfile {
    /// Maximum absolute score error: each score is the true quality plus a uniform error in
    /// `[-noise, +noise]`, clamped to `[0, 1]`.
    pub noise: Ppm,
    /// How long an evaluation takes, uniform in `[min, max]` milliseconds.
    pub latency_ms: (TimeMs, TimeMs),
    /// The confidence the agent reports, uniform in `[min, max]`.
    pub confidence: (Ppm, Ppm),
}

impl EvaluatorProfile {
    /// The simulator's default profile for a specialisation.
    ///
    /// | specialisation | noise | latency ms | confidence |
    /// |---|---|---|---|
    /// | retriever | 0.10 | 10..=60 | 0.80..=0.95 |
    /// | analyzer | 0.06 | 30..=120 | 0.85..=1.00 |
    /// | validator | 0.05 | 40..=150 | 0.90..=1.00 |
    /// | reranker | 0.08 | 15..=80 | 0.75..=0.90 |
    /// | monitor | 0.15 | 5..=30 | 0.70..=0.85 |
    ///
    /// Why: fast, shallow agents (monitor, retriever) are the noisiest; the slow, careful ones
    /// (validator, analyzer) the most precise. The confidence range starts at the
    /// specialisation's [`AgentSpecialization::default_confidence_threshold`] and spans 0.15
    /// above it (capped at 1.0), so an honest agent's `Accept` always counts; low-confidence
    /// abstentions are a fault the simulator injects on purpose, not background noise.
    pub fn seed_default(spec: AgentSpecialization) -> Self {
        let (noise_ppm, latency_ms) = match spec {
            AgentSpecialization::Retriever => (100_000, (10, 60)),
            AgentSpecialization::Analyzer => (60_000, (30, 120)),
            AgentSpecialization::Validator => (50_000, (40, 150)),
            AgentSpecialization::Reranker => (80_000, (15, 80)),
            AgentSpecialization::Monitor => (150_000, (5, 30)),
        };
        let threshold = spec.default_confidence_threshold();
        let confidence_max = Ppm::saturating(u64::from(threshold.raw()) + 150_000);
        let profile =
            EvaluatorProfile { noise: Ppm::saturating(noise_ppm), latency_ms, confidence: (threshold, confidence_max) };
        debug_assert!(profile.validate().is_ok(), "seed defaults are valid");
        debug_assert!(profile.confidence.0 >= threshold, "honest accepts are counted");
        profile
    }

    /// Checks the profile: fractions at most 1.0 and ranges in ascending order.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.noise.raw() > PPM_ONE {
            return Err(ProfileError::NoiseAboveOne(self.noise.raw()));
        }
        if self.confidence.0.raw() > PPM_ONE || self.confidence.1.raw() > PPM_ONE {
            return Err(ProfileError::ConfidenceAboveOne(self.confidence.0.raw().max(self.confidence.1.raw())));
        }
        if self.latency_ms.0 > self.latency_ms.1 {
            return Err(ProfileError::ReversedLatency { min_ms: self.latency_ms.0, max_ms: self.latency_ms.1 });
        }
        if self.confidence.0 > self.confidence.1 {
            return Err(ProfileError::ReversedConfidence { min: self.confidence.0, max: self.confidence.1 });
        }
        Ok(())
    }
}

/// The retriever's profile, the most common specialisation of a cycled committee.
impl Default for EvaluatorProfile {
    fn default() -> Self {
        EvaluatorProfile::seed_default(AgentSpecialization::Retriever)
    }
}

/// Why an [`EvaluatorProfile`] is not usable as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The noise exceeds 1.0 (in parts per million).
    #[error("noise {0} ppm exceeds 1.0")]
    NoiseAboveOne(u32),
    /// A confidence bound exceeds 1.0 (in parts per million).
    #[error("confidence {0} ppm exceeds 1.0")]
    ConfidenceAboveOne(u32),
    /// The latency range is reversed.
    #[error("latency range {min_ms}..={max_ms} ms is reversed")]
    ReversedLatency {
        /// The lower bound as written.
        min_ms: TimeMs,
        /// The upper bound as written.
        max_ms: TimeMs,
    },
    /// The confidence range is reversed.
    #[error("confidence range {min}..={max} is reversed")]
    ReversedConfidence {
        /// The lower bound as written.
        min: Ppm,
        /// The upper bound as written.
        max: Ppm,
    },
}

/// The simulator's model of an honest agent.
///
/// Scores are the true quality plus uniform noise, clamped to `[0, 1]`; the agent accepts its
/// best-scored candidate (ties: the smaller id) with a confidence and latency drawn from the
/// profile. Per request it draws, in order: one error per candidate of the spec (in the
/// spec's order), the latency, then the confidence, all from one ChaCha8 stream seeded by the
/// caller. Same seed and same requests in the same order give identical evaluations.
pub struct SyntheticEvaluator {
    rng: ChaCha8Rng,
    profile: EvaluatorProfile,
    truth: Arc<dyn GroundTruth>,
}

impl SyntheticEvaluator {
    /// An evaluator drawing from a ChaCha8 stream seeded with `seed`.
    pub fn new(seed: u64, profile: EvaluatorProfile, truth: Arc<dyn GroundTruth>) -> Self {
        SyntheticEvaluator { rng: ChaCha8Rng::seed_from_u64(seed), profile, truth }
    }

    /// The noise and latency model in use.
    pub fn profile(&self) -> &EvaluatorProfile {
        &self.profile
    }

    /// The noisy score of every candidate of the spec. A candidate listed twice keeps its
    /// last draw, so the map is the single source the vote's choice is taken from.
    fn noisy_scores(&mut self, spec: &SessionSpec) -> BTreeMap<CandidateId, Ppm> {
        let noise = i64::from(self.profile.noise.raw().min(PPM_ONE));
        let mut scores = BTreeMap::new();
        for &candidate in &spec.candidates {
            let truth = i64::from(self.truth.quality(spec.session, candidate).raw().min(PPM_ONE));
            let error = self.rng.gen_range(-noise..=noise);
            let score = (truth + error).clamp(0, i64::from(PPM_ONE));
            scores.insert(candidate, Ppm::saturating(u64::try_from(score).unwrap_or(0)));
        }
        debug_assert!(scores.len() <= spec.candidates.len(), "one score per listed candidate");
        scores
    }

    /// Latency in milliseconds, uniform in the profile's range.
    fn draw_latency_ms(&mut self) -> TimeMs {
        let (a, b) = self.profile.latency_ms;
        self.rng.gen_range(a.min(b)..=a.max(b))
    }

    /// Reported confidence, uniform in the profile's range.
    fn draw_confidence(&mut self) -> Ppm {
        let (a, b) = self.profile.confidence;
        let (lo, hi) = (a.raw().min(b.raw()), a.raw().max(b.raw()));
        Ppm::saturating(u64::from(self.rng.gen_range(lo..=hi)))
    }
}

impl fmt::Debug for SyntheticEvaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyntheticEvaluator").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Evaluator for SyntheticEvaluator {
    fn evaluate(&mut self, request: &EvaluationRequest<'_>) -> Evaluation {
        let scores = self.noisy_scores(request.spec);
        let latency_ms = self.draw_latency_ms();
        let confidence = self.draw_confidence();
        let timestamp_ms = request.now_ms.saturating_add(latency_ms);
        let (candidate, value, reasoning) = match best_scored(&scores) {
            Some((candidate, score)) => {
                let priority = accept_priority(request.specialization);
                let reasoning = format!("{}: {score}", reasoning_prefix(request.specialization));
                (candidate, VoteValue::Accept { score, priority }, reasoning)
            }
            None => {
                let reason = "no candidates".to_owned();
                (CandidateId(0), VoteValue::Abstain { reason: reason.clone() }, reason)
            }
        };
        debug_assert!(
            value.accept_score().is_none_or(|s| scores.get(&candidate) == Some(&s)),
            "an accept carries its candidate's score"
        );
        let vote = AgentVote {
            agent: request.agent,
            specialization: request.specialization,
            session: request.spec.session,
            candidate,
            confidence,
            value,
            scores,
            reasoning,
            timestamp_ms,
            metadata: BTreeMap::new(),
        };
        Evaluation { vote, latency_ms }
    }
}

/// The highest-scored candidate and its score; ties go to the smaller id. `None` when empty.
fn best_scored(scores: &BTreeMap<CandidateId, Ppm>) -> Option<(CandidateId, Ppm)> {
    let mut best: Option<(CandidateId, Ppm)> = None;
    // Ascending ids and a strict `>`: the first of equal maxima wins.
    for (&candidate, &score) in scores {
        if best.is_none_or(|(_, best_score)| score > best_score) {
            best = Some((candidate, score));
        }
    }
    debug_assert!(best.is_none() == scores.is_empty(), "a best exactly when there are scores");
    best
}

/// The design's priority for an `Accept`: the analyzer's is critical, everyone else's high.
fn accept_priority(spec: AgentSpecialization) -> Priority {
    match spec {
        AgentSpecialization::Analyzer => Priority::Critical,
        AgentSpecialization::Retriever
        | AgentSpecialization::Validator
        | AgentSpecialization::Reranker
        | AgentSpecialization::Monitor => Priority::High,
    }
}

/// The design's reasoning text before the score, one per vote flavour.
fn reasoning_prefix(spec: AgentSpecialization) -> &'static str {
    match spec {
        AgentSpecialization::Retriever => "Highest relevance score",
        AgentSpecialization::Analyzer => "Best semantic quality",
        AgentSpecialization::Validator => "Most accurate",
        AgentSpecialization::Reranker => "Top ranked",
        AgentSpecialization::Monitor => "Healthiest",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppm(raw: u32) -> Ppm {
        Ppm::new(raw).unwrap_or_else(|| panic!("{raw} ppm is above one"))
    }

    fn spec(session: u64, candidates: u32) -> SessionSpec {
        SessionSpec {
            session: SessionId(session),
            query: format!("query {session}"),
            candidates: (0..candidates).map(CandidateId).collect(),
            opened_ms: 0,
        }
    }

    /// A truth table giving `qualities[i]` to candidate `i` of `session`.
    fn truth(session: u64, qualities: &[u32]) -> TableTruth {
        let mut table = BTreeMap::new();
        for (i, &q) in qualities.iter().enumerate() {
            table.insert((SessionId(session), CandidateId(i as u32)), ppm(q));
        }
        TableTruth(table)
    }

    fn request(spec: &SessionSpec, agent: u32, now_ms: TimeMs) -> EvaluationRequest<'_> {
        EvaluationRequest {
            spec,
            agent: AgentId(agent),
            specialization: AgentSpecialization::cycled(agent as usize),
            now_ms,
        }
    }

    fn profile(noise: u32) -> EvaluatorProfile {
        EvaluatorProfile { noise: ppm(noise), ..EvaluatorProfile::default() }
    }

    /// aggregate's `scores_consistent` rule: an `Accept` names a highest-scored candidate with
    /// exactly that score, and every scored candidate belongs to the session.
    fn assert_consistent(vote: &AgentVote, spec: &SessionSpec) {
        assert!(vote.scores.keys().all(|c| spec.candidates.contains(c)), "{vote:?}");
        let best = vote.scores.values().max().copied();
        match &vote.value {
            VoteValue::Accept { score, .. } => {
                assert_eq!(vote.scores.get(&vote.candidate), Some(score), "{vote:?}");
                assert_eq!(best, Some(*score), "{vote:?}");
            }
            other => panic!("an honest evaluator with candidates accepts, got {other:?}"),
        }
    }

    #[test]
    fn same_seed_same_evaluations_other_seed_differs() {
        let truth: Arc<dyn GroundTruth> = Arc::new(truth(3, &[400_000, 500_000, 550_000, 600_000]));
        let specs: Vec<SessionSpec> = (0..10).map(|s| spec(s, 4)).collect();
        let mut a = SyntheticEvaluator::new(7, profile(100_000), Arc::clone(&truth));
        let mut b = SyntheticEvaluator::new(7, profile(100_000), Arc::clone(&truth));
        let mut c = SyntheticEvaluator::new(8, profile(100_000), truth);
        let mut differs = false;
        for i in 0..100u32 {
            let req = request(&specs[(i % 10) as usize], i % 7, u64::from(i) * 13);
            let (ea, eb, ec) = (a.evaluate(&req), b.evaluate(&req), c.evaluate(&req));
            assert_eq!(ea, eb, "request {i}");
            differs |= ea != ec;
        }
        assert!(differs, "seed 8 must not replay seed 7");
    }

    #[test]
    fn zero_noise_reports_the_truth_and_picks_the_best() {
        let qualities = [300_000, 900_000, 100_000, 900_000, 899_999];
        let truth = truth(1, &qualities);
        let spec = spec(1, 5);
        let mut eval = SyntheticEvaluator::new(1, profile(0), Arc::new(truth.clone()));
        for agent in 0..50 {
            let vote = eval.evaluate(&request(&spec, agent, 0)).vote;
            // Candidates 1 and 3 tie at 0.9: the smaller id wins.
            assert_eq!(vote.candidate, CandidateId(1));
            assert_eq!(vote.value.accept_score(), Some(ppm(900_000)));
            let expected: BTreeMap<_, _> = truth.0.iter().map(|(&(_, c), &q)| (c, q)).collect();
            assert_eq!(vote.scores, expected);
        }
    }

    #[test]
    fn small_noise_never_overturns_a_large_gap() {
        // Best 0.8 at candidate 3, second 0.5: noise 0.05 can close at most 0.1 of the 0.3.
        let truth = truth(2, &[500_000, 200_000, 450_000, 800_000, 100_000]);
        let spec = spec(2, 5);
        let mut eval = SyntheticEvaluator::new(42, profile(50_000), Arc::new(truth));
        for i in 0..1000 {
            let vote = eval.evaluate(&request(&spec, i % 5, 0)).vote;
            assert_eq!(vote.candidate, CandidateId(3), "draw {i}: {vote:?}");
        }
    }

    #[test]
    fn latency_confidence_and_scores_stay_within_the_profile() {
        let qualities = [0, 20_000, 500_000, 990_000, 1_000_000];
        let table = truth(5, &qualities);
        let spec = spec(5, 5);
        for spec_kind in AgentSpecialization::CYCLE {
            let p = EvaluatorProfile::seed_default(spec_kind);
            let mut eval = SyntheticEvaluator::new(9, p, Arc::new(table.clone()));
            for i in 0..500u64 {
                let req = EvaluationRequest { spec: &spec, agent: AgentId(0), specialization: spec_kind, now_ms: i };
                let e = eval.evaluate(&req);
                assert!((p.latency_ms.0..=p.latency_ms.1).contains(&e.latency_ms), "{spec_kind:?} {e:?}");
                assert!((p.confidence.0..=p.confidence.1).contains(&e.vote.confidence), "{spec_kind:?} {e:?}");
                assert_eq!(e.vote.timestamp_ms, i + e.latency_ms);
                for (c, s) in &e.vote.scores {
                    assert!(s.abs_diff(table.quality(spec.session, *c)) <= p.noise, "{c}: {s}");
                    assert!(s.raw() <= PPM_ONE);
                }
            }
        }
    }

    #[test]
    fn votes_satisfy_the_aggregation_score_rule() {
        // Close qualities and the largest noise make ties and near-ties frequent.
        let truth: Arc<dyn GroundTruth> = Arc::new(truth(4, &[600_000, 610_000, 605_000, 0, 1_000_000]));
        let spec = spec(4, 5);
        let mut eval = SyntheticEvaluator::new(3, profile(1_000_000), truth);
        for i in 0..1000 {
            let e = eval.evaluate(&request(&spec, i, 0));
            assert_consistent(&e.vote, &spec);
            assert_eq!(e.vote.scores.len(), spec.candidates.len());
            assert!(e.vote.metadata.is_empty());
        }
    }

    #[test]
    fn a_seed_committee_of_honest_evaluators_is_counted_and_decides_the_best() {
        use crate::aggregate::{aggregate, SessionInput};
        use crate::registry::Registry;
        use crate::EngineConfig;

        let config = EngineConfig::default();
        let registry = Registry::seed_committee(5, &config);
        let truth: Arc<dyn GroundTruth> = Arc::new(truth(9, &[300_000, 850_000, 500_000]));
        let spec = spec(9, 3);
        let mut evaluators: Vec<SyntheticEvaluator> = AgentSpecialization::CYCLE
            .iter()
            .enumerate()
            .map(|(i, &kind)| {
                SyntheticEvaluator::new(i as u64, EvaluatorProfile::seed_default(kind), Arc::clone(&truth))
            })
            .collect();
        for round in 0..50 {
            let votes: Vec<AgentVote> = evaluators
                .iter_mut()
                .zip(0u32..)
                .map(|(e, agent)| e.evaluate(&request(&spec, agent, round)).vote)
                .collect();
            let input = SessionInput { session: spec.session, candidates: &spec.candidates, votes: &votes };
            let result = aggregate(&input, &registry, &config);
            assert!(result.rejected.is_empty(), "round {round}: {:?}", result.rejected);
            let chosen = result.outcome.as_ref().ok().and_then(|d| d.chosen());
            assert_eq!(chosen, Some(CandidateId(1)), "round {round}: {:?}", result.outcome);
        }
    }

    #[test]
    fn the_vote_carries_the_seed_flavour() {
        let truth: Arc<dyn GroundTruth> = Arc::new(truth(6, &[873_000, 100_000]));
        let spec = spec(6, 2);
        let mut eval = SyntheticEvaluator::new(0, profile(0), truth);
        let expected = [
            (AgentSpecialization::Retriever, "Highest relevance score: 0.873", Priority::High),
            (AgentSpecialization::Analyzer, "Best semantic quality: 0.873", Priority::Critical),
            (AgentSpecialization::Validator, "Most accurate: 0.873", Priority::High),
            (AgentSpecialization::Reranker, "Top ranked: 0.873", Priority::High),
            (AgentSpecialization::Monitor, "Healthiest: 0.873", Priority::High),
        ];
        for (kind, reasoning, priority) in expected {
            let req = EvaluationRequest { spec: &spec, agent: AgentId(11), specialization: kind, now_ms: 100 };
            let vote = eval.evaluate(&req).vote;
            assert_eq!(vote.reasoning, reasoning);
            assert_eq!(vote.value, VoteValue::Accept { score: ppm(873_000), priority });
            assert_eq!((vote.agent, vote.specialization, vote.session), (AgentId(11), kind, SessionId(6)));
        }
    }

    #[test]
    fn no_candidates_abstains() {
        let spec = spec(8, 0);
        let mut eval = SyntheticEvaluator::new(5, EvaluatorProfile::default(), Arc::new(TableTruth::default()));
        let e = eval.evaluate(&request(&spec, 2, 50));
        assert_eq!(e.vote.value, VoteValue::Abstain { reason: "no candidates".to_owned() });
        assert_eq!(e.vote.candidate, CandidateId(0));
        assert!(e.vote.scores.is_empty());
        assert_eq!(e.vote.timestamp_ms, 50 + e.latency_ms);
    }

    #[test]
    fn seed_defaults_are_valid_and_confident_enough() {
        for kind in AgentSpecialization::CYCLE {
            let p = EvaluatorProfile::seed_default(kind);
            assert_eq!(p.validate(), Ok(()), "{kind:?}");
            assert_eq!(p.confidence.0, kind.default_confidence_threshold(), "{kind:?}");
            assert!(p.confidence.1 <= Ppm::ONE && p.confidence.1 > p.confidence.0, "{kind:?}");
        }
        let reversed = EvaluatorProfile { latency_ms: (9, 3), ..EvaluatorProfile::default() };
        assert_eq!(reversed.validate(), Err(ProfileError::ReversedLatency { min_ms: 9, max_ms: 3 }));
    }

    #[test]
    fn profiles_parse_with_defaults_and_reject_unknown_fields() {
        let p: EvaluatorProfile = serde_json::from_str(r#"{"noise": 20000}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, EvaluatorProfile { noise: ppm(20_000), ..EvaluatorProfile::default() });
        assert!(serde_json::from_str::<EvaluatorProfile>(r#"{"nosie": 1}"#).is_err());
    }
}
