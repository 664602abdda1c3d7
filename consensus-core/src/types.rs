//! Domain types of the design (sections 3.2 and 4.2): agents, queries, candidates, votes and
//! consensus results.
//!
//! Time is a simulated or wall-clock millisecond count handed in by the caller
//! ([`TimeMs`]); nothing in this crate reads a clock.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::fixed::{Ppm, Ratio};

/// Milliseconds on the caller's clock (simulated time under the simulator).
pub type TimeMs = u64;

/// An agent's identity within a committee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(pub u32);

impl AgentId {
    /// The client that opens vote sessions (not an agent; it never votes).
    pub const CLIENT: AgentId = AgentId(u32::MAX);
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == AgentId::CLIENT {
            return write!(f, "client");
        }
        write!(f, "agent-{}", self.0)
    }
}

/// One vote session: one query, its candidates, one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session-{}", self.0)
    }
}

/// A candidate response, identified within its session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CandidateId(pub u32);

impl fmt::Display for CandidateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "candidate-{}", self.0)
    }
}

/// The query the agents answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// The session this query is asked in.
    pub session: SessionId,
    /// The question, as the user asked it.
    pub text: String,
}

/// A candidate answer to a query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Identity within the session.
    pub id: CandidateId,
    /// The answer text.
    pub text: String,
}

/// What an agent is specialised in (design §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentSpecialization {
    /// Document relevance vote.
    Retriever,
    /// Semantic quality vote.
    Analyzer,
    /// Accuracy assessment vote.
    Validator,
    /// Ranking confidence vote.
    Reranker,
    /// Health status vote.
    Monitor,
}

impl AgentSpecialization {
    /// The order in which a committee of `n` agents cycles through specialisations.
    pub const CYCLE: [AgentSpecialization; 5] = [
        AgentSpecialization::Retriever,
        AgentSpecialization::Analyzer,
        AgentSpecialization::Validator,
        AgentSpecialization::Reranker,
        AgentSpecialization::Monitor,
    ];

    /// The specialisation of the `index`-th agent of a committee.
    pub const fn cycled(index: usize) -> AgentSpecialization {
        Self::CYCLE[index % Self::CYCLE.len()]
    }

    /// The design's voting weight in thousandths (design §3.2 and 4.2: 1.0 / 1.2 / 1.1 / 1.0 / 0.8).
    pub const fn default_weight_milli(self) -> u32 {
        match self {
            AgentSpecialization::Retriever => 1_000,
            AgentSpecialization::Analyzer => 1_200,
            AgentSpecialization::Validator => 1_100,
            AgentSpecialization::Reranker => 1_000,
            AgentSpecialization::Monitor => 800,
        }
    }

    /// The design's confidence threshold (0.8 / 0.85 / 0.9 / 0.75 / 0.7): an `Accept` below it
    /// counts as an abstention.
    pub const fn default_confidence_threshold(self) -> Ppm {
        match self {
            AgentSpecialization::Retriever => Ppm::saturating(800_000),
            AgentSpecialization::Analyzer => Ppm::saturating(850_000),
            AgentSpecialization::Validator => Ppm::saturating(900_000),
            AgentSpecialization::Reranker => Ppm::saturating(750_000),
            AgentSpecialization::Monitor => Ppm::saturating(700_000),
        }
    }

    /// Lower-case name, as in scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            AgentSpecialization::Retriever => "retriever",
            AgentSpecialization::Analyzer => "analyzer",
            AgentSpecialization::Validator => "validator",
            AgentSpecialization::Reranker => "reranker",
            AgentSpecialization::Monitor => "monitor",
        }
    }
}

/// How urgent an accepting agent considers its choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// Why an agent rejects a candidate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RejectionReason {
    /// The answer is factually wrong.
    Inaccurate,
    /// The answer does not address the query.
    Irrelevant,
    /// The answer is unsafe to return.
    Unsafe,
    /// Anything else, in words.
    Other(String),
}

/// What a vote says about its candidate (design §3.2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoteValue {
    /// Supports the candidate with a quality score.
    Accept {
        /// The agent's quality score for the candidate.
        score: Ppm,
        /// How urgent the agent considers it.
        priority: Priority,
    },
    /// Opposes the candidate.
    Reject {
        /// Why.
        reason: RejectionReason,
    },
    /// Takes no side.
    Abstain {
        /// Why.
        reason: String,
    },
}

impl VoteValue {
    /// The score of an `Accept`, `None` otherwise.
    pub fn accept_score(&self) -> Option<Ppm> {
        match self {
            VoteValue::Accept { score, .. } => Some(*score),
            _ => None,
        }
    }
}

/// One agent's vote in one session (design §3.2 `AgentVote`).
///
/// `metadata` is an ordered map so that encoding and iteration are deterministic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentVote {
    /// Who votes.
    pub agent: AgentId,
    /// What the voter claims to be specialised in; checked against the registry.
    pub specialization: AgentSpecialization,
    /// The session the vote belongs to.
    pub session: SessionId,
    /// The candidate the vote is about.
    pub candidate: CandidateId,
    /// The voter's confidence in its vote.
    pub confidence: Ppm,
    /// Accept, reject or abstain.
    pub value: VoteValue,
    /// The voter's score for every candidate it evaluated (design §3.2: the relevance and
    /// quality scores an agent picks its best candidate from). Empty when the voter reports
    /// only its choice. When present, an `Accept` must name a highest-scored candidate with
    /// exactly that score, so the scores cannot contradict the vote.
    #[serde(default)]
    pub scores: BTreeMap<CandidateId, Ppm>,
    /// Free-text justification.
    pub reasoning: String,
    /// When the vote was cast, on the caller's clock.
    pub timestamp_ms: TimeMs,
    /// Extra key-value data from the evaluator.
    pub metadata: BTreeMap<String, String>,
}

impl AgentVote {
    /// An `Accept` vote with empty reasoning and metadata: a convenience for tests and
    /// evaluators.
    pub fn accept(
        agent: AgentId,
        specialization: AgentSpecialization,
        session: SessionId,
        candidate: CandidateId,
        score: Ppm,
        confidence: Ppm,
    ) -> AgentVote {
        AgentVote {
            agent,
            specialization,
            session,
            candidate,
            confidence,
            value: VoteValue::Accept { score, priority: Priority::High },
            scores: BTreeMap::new(),
            reasoning: String::new(),
            timestamp_ms: 0,
            metadata: BTreeMap::new(),
        }
    }
}

/// An agent's standing in the registry (design §3.2 `AgentStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentStatus {
    /// Votes count.
    Active,
    /// Temporarily excluded after a detection; votes are ignored until released.
    Quarantined,
    /// Permanently excluded after repeated detections.
    Excluded,
}

/// How a decision was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsensusMethod {
    /// The chosen candidate reached the agreement threshold.
    Threshold,
    /// Every expected vote agreed; decided without waiting (design §5.2 early decision).
    EarlyUnanimous,
    /// Counts tied; the weighted score broke the tie (design §4.2 `resolve_tie`).
    WeightedTieBreak,
    /// A strong minority dissented; the evidence supported the majority.
    EvidenceMajority,
    /// A strong minority dissented; the evidence supported the minority.
    MinorityOverrule,
    /// A single high-confidence dissenter; majority rule kept.
    MajorityWithDissent,
    /// A cached result of a similar vote pattern was reused (design §5.2 vote cache).
    CachedPattern,
    /// The deadline passed; decided by a > 50% simple majority (design §5.2 fallback).
    TimeoutFallback,
}

impl ConsensusMethod {
    /// Whether this method decides below the configured threshold by design; such decisions
    /// are only made when the configuration enables them.
    pub const fn below_threshold_by_design(self) -> bool {
        matches!(
            self,
            ConsensusMethod::WeightedTieBreak
                | ConsensusMethod::EvidenceMajority
                | ConsensusMethod::MinorityOverrule
                | ConsensusMethod::MajorityWithDissent
                | ConsensusMethod::TimeoutFallback
        )
    }
}

/// The outcome of a successful vote (design §3.2 `ConsensusResult`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusResult {
    /// The session decided.
    pub session: SessionId,
    /// The chosen candidate.
    pub chosen: CandidateId,
    /// Support for the chosen candidate among counted votes.
    pub agreement_rate: Ppm,
    /// Sum over supporting votes of score × confidence × effective weight, in millionths of a
    /// weight unit (design §4.2 weighted score).
    pub weighted_score_micro: u64,
    /// Mean confidence of the supporting votes.
    pub average_confidence: Ppm,
    /// Agents whose votes were counted, ascending.
    pub participating: Vec<AgentId>,
    /// Agents flagged as Byzantine in this session, ascending.
    pub byzantine: Vec<AgentId>,
    /// How the decision was reached.
    pub method: ConsensusMethod,
}

/// What a human or expert should do with an escalated session (design §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EscalationAction {
    /// A person decides.
    HumanReview,
    /// A domain expert weighs the conflicting evidence.
    ExpertReview,
    /// Too few agents took a side: gather more information and vote again.
    RequestMoreInformation,
}

/// A session the engine refuses to decide on its own (design §4.2 `ConflictResolution::Escalation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// The session escalated.
    pub session: SessionId,
    /// Why, in words.
    pub reason: String,
    /// What to do.
    pub action: EscalationAction,
    /// Agents flagged as Byzantine in this session, ascending.
    pub byzantine: Vec<AgentId>,
}

/// What a vote session ends in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// A candidate was chosen.
    Decided(ConsensusResult),
    /// The engine hands the session to people.
    Escalated(Escalation),
}

impl Decision {
    /// The chosen candidate, if any.
    pub fn chosen(&self) -> Option<CandidateId> {
        match self {
            Decision::Decided(r) => Some(r.chosen),
            Decision::Escalated(_) => None,
        }
    }
}

/// Why a session produced no decision (design §3.2 and 5.2 `ConsensusError`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ConsensusError {
    /// The best candidate's support is below the threshold.
    #[error("insufficient agreement: {achieved} < required {required} ({participating} agents counted, {byzantine_detected} Byzantine detected)")]
    InsufficientAgreement {
        /// Support reached.
        achieved: Ppm,
        /// The threshold.
        required: Ratio,
        /// Agents whose votes were counted.
        participating: usize,
        /// Agents flagged in this session.
        byzantine_detected: usize,
    },
    /// The timeout fallback found no strict majority.
    #[error("no majority: largest group {largest_group} of {total} votes")]
    NoMajority {
        /// Share of the largest group.
        largest_group: Ppm,
        /// Votes counted.
        total: usize,
    },
    /// No countable vote at all.
    #[error("no valid votes for {0}")]
    NoVotes(SessionId),
    /// The session deadline passed with no fallback configured.
    #[error("deadline of {deadline_ms} ms exceeded")]
    DeadlineExceeded {
        /// The deadline.
        deadline_ms: TimeMs,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_weights_and_thresholds() {
        let expected = [
            (AgentSpecialization::Retriever, 1_000, 800_000),
            (AgentSpecialization::Analyzer, 1_200, 850_000),
            (AgentSpecialization::Validator, 1_100, 900_000),
            (AgentSpecialization::Reranker, 1_000, 750_000),
            (AgentSpecialization::Monitor, 800, 700_000),
        ];
        for (spec, weight, threshold) in expected {
            assert_eq!(spec.default_weight_milli(), weight, "{spec:?}");
            assert_eq!(spec.default_confidence_threshold().raw(), threshold, "{spec:?}");
        }
    }

    #[test]
    fn specialisations_cycle() {
        assert_eq!(AgentSpecialization::cycled(0), AgentSpecialization::Retriever);
        assert_eq!(AgentSpecialization::cycled(4), AgentSpecialization::Monitor);
        assert_eq!(AgentSpecialization::cycled(5), AgentSpecialization::Retriever);
    }

    #[test]
    fn votes_round_trip_through_json() {
        let vote = AgentVote::accept(
            AgentId(1),
            AgentSpecialization::Analyzer,
            SessionId(7),
            CandidateId(2),
            Ppm::from_f64(0.8).unwrap_or_default(),
            Ppm::from_f64(0.9).unwrap_or_default(),
        );
        let mut vote = vote;
        vote.scores.insert(CandidateId(2), Ppm::from_f64(0.8).unwrap_or_default());
        vote.scores.insert(CandidateId(0), Ppm::from_f64(0.3).unwrap_or_default());
        let json = serde_json::to_string(&vote).unwrap_or_default();
        let back: AgentVote = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, vote);
    }

    #[test]
    fn below_threshold_methods_are_the_conflict_and_fallback_ones() {
        assert!(!ConsensusMethod::Threshold.below_threshold_by_design());
        assert!(!ConsensusMethod::EarlyUnanimous.below_threshold_by_design());
        assert!(ConsensusMethod::TimeoutFallback.below_threshold_by_design());
        assert!(ConsensusMethod::WeightedTieBreak.below_threshold_by_design());
    }
}
