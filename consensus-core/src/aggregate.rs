//! The voting engine: one pure, deterministic function from (votes, registry, configuration)
//! to a decision (design §3.2 `conduct_vote` and `achieve_consensus`, 4.2 weighting and conflict
//! resolution).
//!
//! Pipeline, in order:
//! 1. **Validate** each vote: right session, registered agent, claimed specialisation matches
//!    the registry, known candidate, agent active. Failures are rejected and reported, never
//!    a panic. Two different votes from one agent are an equivocation: both are dropped and the
//!    agent is flagged.
//! 2. **Weigh** each vote (design §4.2 `calculate_agent_weight`):
//!    `base × accuracy multiplier × (0.5 + 0.5 × confidence)`. An `Accept` below the agent's
//!    confidence threshold (design §3.2) supports nothing: it counts as an abstention.
//! 3. **Detect** Byzantine voters ([`crate::detection`]) and flag them.
//! 4. **Resolve** ([`crate::conflict`]): flagged voters are filtered out and the distribution
//!    is classified and resolved.
//! 5. **Gate**: a candidate reaching the threshold is decided; a conflict resolution below the
//!    threshold is decided only under [`ConflictPolicy::Resolve`] (the design's behaviour) and is
//!    marked with its method; otherwise it is escalated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ConflictPolicy, EngineConfig};
use crate::conflict::{
    resolve_conflict_guarded, ConflictResolution, ConflictType, Context, Guards, TalliedVote, Tally,
};
use crate::detection::{detect, Detection};
use crate::fixed::{Ppm, PPM_ONE};
use crate::registry::{AgentRecord, Registry, SessionRecord};
use crate::types::{
    AgentId, AgentSpecialization, AgentStatus, AgentVote, CandidateId, ConsensusError, ConsensusMethod,
    ConsensusResult, Decision, Escalation, EscalationAction, SessionId, VoteValue,
};

/// One session's input.
#[derive(Clone, Copy, Debug)]
pub struct SessionInput<'a> {
    /// The session.
    pub session: SessionId,
    /// Its candidates.
    pub candidates: &'a [CandidateId],
    /// The votes received, in any order.
    pub votes: &'a [AgentVote],
}

/// Why a vote was not counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoteRejection {
    /// Cast for another session (e.g. a replay).
    WrongSession {
        /// This session.
        expected: SessionId,
        /// The vote's.
        got: SessionId,
    },
    /// The agent is not registered.
    UnknownAgent,
    /// The vote claims another specialisation than the registry holds.
    SpecializationMismatch {
        /// Registered.
        registered: AgentSpecialization,
        /// Claimed.
        claimed: AgentSpecialization,
    },
    /// The candidate is not one of the session's.
    UnknownCandidate(CandidateId),
    /// The agent is quarantined or excluded.
    Inactive(AgentStatus),
    /// An identical copy of a vote already counted.
    Duplicate,
    /// One of two different votes from the same agent.
    Equivocation,
    /// The per-candidate scores name an unknown candidate, or contradict the vote (an
    /// `Accept` must be for a highest-scored candidate, with that score).
    InconsistentScores,
}

/// A vote that was not counted, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedVote {
    /// The voter the vote names.
    pub agent: AgentId,
    /// Why.
    pub reason: VoteRejection,
}

/// Proof that an agent sent two different votes in one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    /// The equivocator.
    pub agent: AgentId,
    /// The smaller of the two votes.
    pub first: AgentVote,
    /// The larger.
    pub second: AgentVote,
}

/// Everything the engine concluded about one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregation {
    /// The decision, or why there is none.
    pub outcome: Result<Decision, ConsensusError>,
    /// The class of the vote distribution (design §4.2).
    pub conflict: ConflictType,
    /// The conflict resolution applied.
    pub resolution: ConflictResolution,
    /// What the validity guards V10–V13 did (docs/protocol.md).
    #[serde(default)]
    pub guards: Guards,
    /// What the registry learns if this session is agreed on.
    pub record: SessionRecord,
    /// Votes not counted.
    pub rejected: Vec<RejectedVote>,
    /// Equivocation evidence.
    pub equivocations: Vec<Equivocation>,
}

/// Design §4.2 `calculate_agent_weight`: `base × accuracy × (0.5 + 0.5 × confidence)` in
/// millionths of a weight unit.
pub fn effective_weight_micro(record: &AgentRecord, confidence: Ppm) -> u64 {
    let base = u128::from(record.weight_milli) * 1_000; // thousandths → millionths
    let accuracy = u128::from(record.accuracy_multiplier().raw());
    let confidence_factor = u128::from(PPM_ONE / 2) + u128::from(confidence.raw()) / 2;
    let one = u128::from(PPM_ONE);
    u64::try_from(base * accuracy * confidence_factor / (one * one)).unwrap_or(u64::MAX)
}

/// Runs the whole pipeline on one session.
pub fn aggregate(input: &SessionInput<'_>, registry: &Registry, config: &EngineConfig) -> Aggregation {
    aggregate_borrowed(input.session, input.candidates, input.votes.iter(), registry, config)
}

/// [`aggregate`] over votes borrowed from wherever they live (e.g. inside signed votes), so a
/// caller need not clone them into a slice first. The same pipeline and result.
pub fn aggregate_borrowed<'v>(
    session: SessionId,
    candidates: &[CandidateId],
    votes: impl IntoIterator<Item = &'v AgentVote>,
    registry: &'v Registry,
    config: &EngineConfig,
) -> Aggregation {
    let validated = validate(session, candidates, votes, registry);
    let valid: Vec<&AgentVote> = validated.valid.iter().map(|(v, _)| *v).collect();
    let mut detection: Detection = detect(&config.detector, &valid, candidates, registry);
    let active = u64::try_from(registry.count(AgentStatus::Active)).unwrap_or(u64::MAX);
    let ctx = Context::for_committee(active);
    let equivocators: Vec<AgentId> = validated.equivocations.iter().map(|e| e.agent).collect();
    cap_flags(&mut detection, &equivocators, ctx.max_faulty as usize);
    for agent in equivocators {
        if let Err(pos) = detection.flagged.binary_search(&agent) {
            detection.flagged.insert(pos, agent);
        }
    }
    let votes = validated
        .valid
        .iter()
        .map(|(vote, record)| tallied(vote, record, detection.flagged.binary_search(&vote.agent).is_ok()))
        .collect();
    let tally = Tally::new(votes, config.agreement_basis);
    let mut guards = Guards::default();
    let (conflict, resolution) = resolve_conflict_guarded(&tally, ctx, config, &mut guards);
    let honest = tally.honest();
    let outcome = if tally.counted() == 0 {
        Err(ConsensusError::NoVotes(session))
    } else {
        gate(session, &honest, &detection.flagged, &resolution, registry, config)
    };
    let record = SessionRecord {
        deviations: detection.deviations.clone(),
        flagged: detection.flagged.clone(),
        accepted: honest.votes().iter().map(|v| (v.agent, v.support)).collect(),
        chosen: outcome.as_ref().ok().and_then(Decision::chosen),
    };
    Aggregation {
        outcome,
        conflict,
        resolution,
        guards,
        record,
        rejected: validated.rejected,
        equivocations: validated.equivocations,
    }
}

/// The Byzantine filter removes at most `f` voters (f = f_max of the active committee): with at
/// most `f` Byzantine agents, more flags than that must include honest agents, and removing
/// them can leave fewer counted votes than the participation quorum (an escalation the honest
/// votes alone would not cause). Equivocators are proven Byzantine and always flagged; of the
/// detector's other flags, those farthest from the reference this session are kept (ties: the
/// smaller id), up to `f` in all.
fn cap_flags(detection: &mut Detection, equivocators: &[AgentId], f: usize) {
    let suspects: Vec<AgentId> = detection.flagged.iter().copied().filter(|a| !equivocators.contains(a)).collect();
    let room = f.saturating_sub(equivocators.len());
    if suspects.len() <= room {
        return;
    }
    let mut ranked = suspects;
    ranked.sort_by_key(|a| (std::cmp::Reverse(detection.deviations.get(a).copied().unwrap_or(Ppm::ZERO)), *a));
    ranked.truncate(room);
    ranked.sort();
    detection.flagged = ranked;
}

fn tallied(vote: &AgentVote, record: &AgentRecord, flagged: bool) -> TalliedVote {
    let accepted = match &vote.value {
        VoteValue::Accept { score, .. } if vote.confidence >= record.confidence_threshold => Some(*score),
        _ => None,
    };
    TalliedVote {
        agent: vote.agent,
        support: accepted.map(|_| vote.candidate),
        score: accepted.unwrap_or(Ppm::ZERO),
        confidence: vote.confidence,
        weight_micro: effective_weight_micro(record, vote.confidence),
        flagged,
    }
}

/// Turns a conflict resolution into the session's decision (pipeline step 5).
fn gate(
    session: SessionId,
    honest: &Tally,
    flagged: &[AgentId],
    resolution: &ConflictResolution,
    registry: &Registry,
    config: &EngineConfig,
) -> Result<Decision, ConsensusError> {
    let escalate = |reason: String, action| {
        Ok(Decision::Escalated(Escalation { session, reason, action, byzantine: flagged.to_vec() }))
    };
    let (chosen, method) = match resolution {
        ConflictResolution::Consensus { chosen } => {
            let method = if is_unanimous_and_complete(honest, flagged, registry) && config.early_unanimous {
                ConsensusMethod::EarlyUnanimous
            } else {
                ConsensusMethod::Threshold
            };
            (*chosen, method)
        }
        ConflictResolution::WeightedConsensus { chosen, .. } => (*chosen, ConsensusMethod::WeightedTieBreak),
        ConflictResolution::EvidenceBasedConsensus { chosen, .. } => (*chosen, ConsensusMethod::EvidenceMajority),
        ConflictResolution::MinorityOverrule { chosen, .. } => (*chosen, ConsensusMethod::MinorityOverrule),
        ConflictResolution::MajorityRuleWithDissent { chosen, .. } => (*chosen, ConsensusMethod::MajorityWithDissent),
        ConflictResolution::Escalation { reason, action } => return escalate(reason.clone(), *action),
        ConflictResolution::NoAgreement { achieved, .. } => {
            return Err(ConsensusError::InsufficientAgreement {
                achieved: *achieved,
                required: config.threshold,
                participating: honest.votes().len(),
                byzantine_detected: flagged.len(),
            })
        }
    };
    let ranking = honest.ranking();
    let Some(support) = ranking.iter().find(|t| t.candidate == chosen) else {
        // A resolution always picks a supported candidate; guard rather than trust.
        return escalate(format!("resolution chose unsupported {chosen}"), EscalationAction::HumanReview);
    };
    let (part, whole) = honest.support_of(support);
    let reached = config.threshold.reached(part, whole);
    debug_assert!(method.below_threshold_by_design() || reached, "threshold decisions reach the threshold");
    if !reached && config.conflict_policy == ConflictPolicy::Escalate {
        return escalate(
            format!("{method:?} would choose {chosen} below the threshold {}", config.threshold),
            EscalationAction::HumanReview,
        );
    }
    Ok(Decision::Decided(ConsensusResult {
        session,
        chosen,
        agreement_rate: honest.agreement(support),
        weighted_score_micro: support.weighted_score_micro(),
        average_confidence: support.average_confidence(),
        participating: honest.votes().iter().map(|v| v.agent).collect(),
        byzantine: flagged.to_vec(),
        method,
    }))
}

/// Every active agent voted, none flagged, all supporting one candidate.
fn is_unanimous_and_complete(honest: &Tally, flagged: &[AgentId], registry: &Registry) -> bool {
    let votes = honest.votes();
    flagged.is_empty()
        && votes.len() == registry.count(AgentStatus::Active)
        && votes.first().and_then(|v| v.support).is_some_and(|c| votes.iter().all(|v| v.support == Some(c)))
}

struct Validated<'a> {
    valid: Vec<(&'a AgentVote, &'a AgentRecord)>,
    rejected: Vec<RejectedVote>,
    equivocations: Vec<Equivocation>,
}

/// Pipeline step 1. Deterministic whatever the order of `votes`.
fn validate<'a>(
    session: SessionId,
    candidates: &[CandidateId],
    votes: impl IntoIterator<Item = &'a AgentVote>,
    registry: &'a Registry,
) -> Validated<'a> {
    let mut rejected = Vec::new();
    let mut by_agent: BTreeMap<AgentId, Vec<&'a AgentVote>> = BTreeMap::new();
    for vote in votes {
        match check(vote, session, candidates, registry) {
            Ok(()) => by_agent.entry(vote.agent).or_default().push(vote),
            Err(reason) => rejected.push(RejectedVote { agent: vote.agent, reason }),
        }
    }
    let mut valid = Vec::new();
    let mut equivocations = Vec::new();
    for (agent, mut votes) in by_agent {
        votes.sort();
        votes.dedup_by(|a, b| {
            let same = a == b;
            if same {
                rejected.push(RejectedVote { agent, reason: VoteRejection::Duplicate });
            }
            same
        });
        match votes.as_slice() {
            [only] => {
                if let Some(record) = registry.get(agent) {
                    valid.push((*only, record));
                }
            }
            [first, .., last] => {
                for _ in 0..votes.len() {
                    rejected.push(RejectedVote { agent, reason: VoteRejection::Equivocation });
                }
                equivocations.push(Equivocation { agent, first: (*first).clone(), second: (*last).clone() });
            }
            [] => {}
        }
    }
    rejected.sort_by_key(|r| r.agent);
    Validated { valid, rejected, equivocations }
}

fn check(
    vote: &AgentVote,
    session: SessionId,
    candidates: &[CandidateId],
    registry: &Registry,
) -> Result<(), VoteRejection> {
    if vote.session != session {
        return Err(VoteRejection::WrongSession { expected: session, got: vote.session });
    }
    let record = registry.get(vote.agent).ok_or(VoteRejection::UnknownAgent)?;
    if record.specialization != vote.specialization {
        return Err(VoteRejection::SpecializationMismatch {
            registered: record.specialization,
            claimed: vote.specialization,
        });
    }
    if !candidates.contains(&vote.candidate) {
        return Err(VoteRejection::UnknownCandidate(vote.candidate));
    }
    if !scores_consistent(vote, candidates) {
        return Err(VoteRejection::InconsistentScores);
    }
    if record.status != AgentStatus::Active {
        return Err(VoteRejection::Inactive(record.status));
    }
    Ok(())
}

/// A vote's per-candidate scores name only session candidates, and an `Accept` is for a
/// highest-scored candidate with exactly its score.
fn scores_consistent(vote: &AgentVote, candidates: &[CandidateId]) -> bool {
    if vote.scores.is_empty() {
        return true;
    }
    if !vote.scores.keys().all(|c| candidates.contains(c)) {
        return false;
    }
    match &vote.value {
        VoteValue::Accept { score, .. } => {
            let best = vote.scores.values().max().copied().unwrap_or(Ppm::ZERO);
            vote.scores.get(&vote.candidate) == Some(score) && *score == best
        }
        VoteValue::Reject { .. } | VoteValue::Abstain { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppm(x: f64) -> Ppm {
        Ppm::from_f64(x).unwrap_or_else(|| panic!("{x}"))
    }

    const S: SessionId = SessionId(1);
    const CANDIDATES: [CandidateId; 2] = [CandidateId(0), CandidateId(1)];

    fn vote(agent: u32, candidate: u32, score: f64, confidence: f64) -> AgentVote {
        AgentVote::accept(
            AgentId(agent),
            AgentSpecialization::cycled(agent as usize),
            S,
            CandidateId(candidate),
            ppm(score),
            ppm(confidence),
        )
    }

    fn run(votes: &[AgentVote], registry: &Registry, config: &EngineConfig) -> Aggregation {
        aggregate(&SessionInput { session: S, candidates: &CANDIDATES, votes }, registry, config)
    }

    #[test]
    fn effective_weight_follows_the_seed_formula() {
        let config = EngineConfig::default();
        let r = Registry::seed_committee(5, &config);
        let analyzer = r.get(AgentId(1)).unwrap_or_else(|| panic!("agent 1"));
        // 1.2 × 1.0 × (0.5 + 0.5 × 0.9) = 1.14
        assert_eq!(effective_weight_micro(analyzer, ppm(0.9)), 1_140_000);
        let monitor = r.get(AgentId(4)).unwrap_or_else(|| panic!("agent 4"));
        assert_eq!(effective_weight_micro(monitor, ppm(0.0)), 400_000);
    }

    #[test]
    fn invalid_votes_are_rejected_and_counted() {
        let config = EngineConfig::default();
        let mut r = Registry::seed_committee(5, &config);
        if let Some(a) = r.get_mut(AgentId(3)) {
            a.status = AgentStatus::Quarantined;
        }
        let mut wrong_session = vote(0, 0, 0.9, 0.9);
        wrong_session.session = SessionId(0);
        let mut wrong_spec = vote(1, 0, 0.9, 0.9);
        wrong_spec.specialization = AgentSpecialization::Monitor;
        let votes = [wrong_session, wrong_spec, vote(2, 7, 0.9, 0.95), vote(3, 0, 0.9, 0.9), vote(9, 0, 0.9, 0.9)];
        let a = run(&votes, &r, &config);
        let reasons: Vec<_> = a.rejected.iter().map(|r| r.reason.clone()).collect();
        assert_eq!(
            reasons,
            vec![
                VoteRejection::WrongSession { expected: S, got: SessionId(0) },
                VoteRejection::SpecializationMismatch {
                    registered: AgentSpecialization::Analyzer,
                    claimed: AgentSpecialization::Monitor
                },
                VoteRejection::UnknownCandidate(CandidateId(7)),
                VoteRejection::Inactive(AgentStatus::Quarantined),
                VoteRejection::UnknownAgent,
            ]
        );
        assert_eq!(a.outcome, Err(ConsensusError::NoVotes(S)));
    }

    #[test]
    fn scores_that_contradict_the_vote_are_rejected() {
        let config = EngineConfig::default();
        let r = Registry::seed_committee(5, &config);
        // Claims candidate 0 is best yet accepts candidate 1.
        let mut liar = vote(0, 1, 0.6, 0.9);
        liar.scores = BTreeMap::from([(CandidateId(0), ppm(0.9)), (CandidateId(1), ppm(0.6))]);
        // Scores a candidate that is not in the session.
        let mut stray = vote(1, 0, 0.9, 0.9);
        stray.scores = BTreeMap::from([(CandidateId(0), ppm(0.9)), (CandidateId(5), ppm(0.1))]);
        // Consistent: accepted candidate is the best-scored, with that score.
        let mut fine = vote(2, 0, 0.9, 0.95);
        fine.scores = BTreeMap::from([(CandidateId(0), ppm(0.9)), (CandidateId(1), ppm(0.2))]);
        let a = run(&[liar, stray, fine], &r, &config);
        let reasons: Vec<_> = a.rejected.iter().map(|r| (r.agent, r.reason.clone())).collect();
        assert_eq!(
            reasons,
            vec![(AgentId(0), VoteRejection::InconsistentScores), (AgentId(1), VoteRejection::InconsistentScores)]
        );
    }

    #[test]
    fn equivocation_is_evidence_and_flags_the_agent() {
        let config = EngineConfig::default();
        let r = Registry::seed_committee(5, &config);
        let votes = [
            vote(0, 0, 0.9, 0.9),
            vote(1, 0, 0.9, 0.9),
            vote(2, 0, 0.9, 0.95),
            vote(3, 0, 0.9, 0.9),
            vote(4, 0, 0.9, 0.9),
            vote(4, 1, 0.9, 0.9),
            vote(0, 0, 0.9, 0.9), // an identical duplicate is not an equivocation
        ];
        let a = run(&votes, &r, &config);
        assert_eq!(a.equivocations.len(), 1);
        assert_eq!(a.equivocations[0].agent, AgentId(4));
        assert_eq!(a.record.flagged, vec![AgentId(4)]);
        assert!(a.rejected.contains(&RejectedVote { agent: AgentId(0), reason: VoteRejection::Duplicate }));
        let Ok(Decision::Decided(result)) = &a.outcome else { panic!("{:?}", a.outcome) };
        assert_eq!(result.chosen, CandidateId(0));
        assert_eq!(result.byzantine, vec![AgentId(4)]);
        assert_eq!(result.participating.len(), 4);
    }

    #[test]
    fn low_confidence_accept_counts_as_abstention() {
        let config = EngineConfig::default();
        let r = Registry::seed_committee(5, &config);
        // The validator's threshold is 0.9: at 0.85 its accept supports nothing.
        let votes = [vote(0, 0, 0.9, 0.9), vote(1, 0, 0.9, 0.9), vote(2, 0, 0.9, 0.85), vote(3, 0, 0.9, 0.9)];
        let a = run(&votes, &r, &config);
        assert_eq!(a.conflict, ConflictType::SimpleMajority);
        let Ok(Decision::Decided(result)) = &a.outcome else { panic!("{:?}", a.outcome) };
        assert_eq!(result.agreement_rate, ppm(0.75));
        assert_eq!(a.record.accepted.get(&AgentId(2)), Some(&None));
    }

    #[test]
    fn unanimous_complete_votes_are_marked_early() {
        let config = EngineConfig::default();
        let r = Registry::seed_committee(5, &config);
        let votes: Vec<_> = (0..5).map(|i| vote(i, 1, 0.9, 0.95)).collect();
        let a = run(&votes, &r, &config);
        let Ok(Decision::Decided(result)) = &a.outcome else { panic!("{:?}", a.outcome) };
        assert_eq!(result.method, ConsensusMethod::EarlyUnanimous);
        assert_eq!(result.agreement_rate, Ppm::ONE);
        // Four of five: decided by threshold, not early.
        let a = run(&votes[..4], &r, &config);
        let Ok(Decision::Decided(result)) = &a.outcome else { panic!("{:?}", a.outcome) };
        assert_eq!(result.method, ConsensusMethod::Threshold);
    }

    #[test]
    fn the_byzantine_filter_removes_at_most_f_voters() {
        let mut detection = Detection {
            deviations: BTreeMap::from([
                (AgentId(0), ppm(0.1)),
                (AgentId(1), ppm(0.9)),
                (AgentId(2), ppm(0.35)),
                (AgentId(3), ppm(0.8)),
                (AgentId(4), ppm(0.35)),
            ]),
            flagged: vec![AgentId(1), AgentId(2), AgentId(3), AgentId(4)],
        };
        // f = 2: the two farthest stay flagged.
        cap_flags(&mut detection, &[], 2);
        assert_eq!(detection.flagged, vec![AgentId(1), AgentId(3)]);
        // An equivocator takes one of the f places (it is added back by the caller).
        let mut detection = Detection { flagged: vec![AgentId(1), AgentId(2), AgentId(4)], ..detection };
        cap_flags(&mut detection, &[AgentId(3)], 2);
        assert_eq!(detection.flagged, vec![AgentId(1)]);
        // Ties in deviation: the smaller id.
        let mut d2 = Detection { flagged: vec![AgentId(2), AgentId(4)], ..detection.clone() };
        cap_flags(&mut d2, &[], 1);
        assert_eq!(d2.flagged, vec![AgentId(2)]);
        // Within f, nothing changes.
        let mut d3 = Detection { flagged: vec![AgentId(0)], ..detection };
        cap_flags(&mut d3, &[], 1);
        assert_eq!(d3.flagged, vec![AgentId(0)]);
    }

    #[test]
    fn conflict_policy_escalate_turns_resolutions_into_escalations() {
        let mut config = EngineConfig::default();
        // Without candidate scores every split looks like an outlier to the detector; this test
        // is about the tie-break alone.
        config.detector.kind = crate::config::DetectorKind::None;
        let r = Registry::seed_committee(5, &config);
        // 2-2: a tie, broken by weight (analyzer + validator are heavier than retriever + reranker).
        let votes = [vote(0, 0, 0.8, 0.9), vote(3, 0, 0.8, 0.9), vote(1, 1, 0.8, 0.9), vote(2, 1, 0.8, 0.95)];
        let a = run(&votes, &r, &config);
        assert_eq!(a.conflict, ConflictType::Tie);
        let Ok(Decision::Decided(result)) = &a.outcome else { panic!("{:?}", a.outcome) };
        assert_eq!((result.chosen, result.method), (CandidateId(1), ConsensusMethod::WeightedTieBreak));
        config.conflict_policy = ConflictPolicy::Escalate;
        let a = run(&votes, &r, &config);
        assert!(matches!(a.outcome, Ok(Decision::Escalated(_))), "{:?}", a.outcome);
    }
}
