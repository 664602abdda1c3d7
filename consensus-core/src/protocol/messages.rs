//! The agreement protocol's messages (docs/protocol.md, "Messages").
//!
//! Everything an agent signs includes the session and, for round messages, the round, so a
//! signature cannot be replayed into another session or round.

use serde::{Deserialize, Serialize};

use crate::sign::Signature;
use crate::types::{AgentId, AgentVote, CandidateId, ConsensusMethod, EscalationAction, SessionId, TimeMs};
use crate::Ppm;

/// A protocol round within a session.
pub type Round = u32;

/// What the client asks the committee (docs/protocol.md L1). Sent by the client, unsigned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionSpec {
    /// The session.
    pub session: SessionId,
    /// The question.
    pub query: String,
    /// The candidates, ascending and distinct.
    pub candidates: Vec<CandidateId>,
    /// When the client opened it, on the shared clock; the deadline counts from here.
    pub opened_ms: TimeMs,
}

/// A session specification signed by the client, so that any agent can relay it (proposals
/// carry it, and an agent that missed `Open` learns the session from them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SignedSpec {
    /// The specification.
    pub spec: SessionSpec,
    /// The client's signature over [`crate::wire::spec_signing_bytes`].
    pub signature: Signature,
}

/// A vote with its agent's signature.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SignedVote {
    /// The vote.
    pub vote: AgentVote,
    /// The voter's signature over [`crate::wire::vote_signing_bytes`].
    pub signature: Signature,
}

/// How the proposed outcome is computed (docs/protocol.md V5–V6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalMode {
    /// The engine's aggregate.
    Normal,
    /// The timeout fallback (> 50%), allowed past the deadline only.
    Fallback,
}

/// The outcome a proposal claims, which every agent recomputes (docs/protocol.md V4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgreedOutcome {
    /// A candidate is chosen.
    Decided {
        /// Chosen.
        chosen: CandidateId,
        /// How.
        method: ConsensusMethod,
        /// Agreement rate among counted votes.
        agreement: Ppm,
        /// Agents the engine flagged as Byzantine, ascending.
        byzantine: Vec<AgentId>,
    },
    /// The engine escalates the session.
    Escalated {
        /// To whom.
        action: EscalationAction,
        /// Agents the engine flagged as Byzantine, ascending.
        byzantine: Vec<AgentId>,
    },
    /// The engine reached no decision (insufficient agreement, no majority).
    NoDecision {
        /// The best candidate's agreement.
        achieved: Ppm,
    },
}

impl AgreedOutcome {
    /// The chosen candidate, if any.
    pub fn chosen(&self) -> Option<CandidateId> {
        match self {
            AgreedOutcome::Decided { chosen, .. } => Some(*chosen),
            _ => None,
        }
    }
}

/// The value agents agree on: the vote set, how it is aggregated, and the claimed result.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProposalValue {
    /// The session.
    pub session: SessionId,
    /// The client-signed session specification.
    pub spec: SignedSpec,
    /// Normal aggregate or fallback.
    pub mode: ProposalMode,
    /// At least q signed votes from distinct agents, ascending by agent.
    pub votes: Vec<SignedVote>,
    /// What aggregating `votes` gives.
    pub outcome: AgreedOutcome,
}

/// A value's identity: SHA-256 of its canonical encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ValueId(pub [u8; 32]);

impl ValueId {
    /// `id(v)` of docs/protocol.md: the hash of the value's canonical bytes.
    pub fn of(value: &ProposalValue) -> ValueId {
        ValueId(crate::canonical::canonical_digest(b"bftsim/value/v1", value))
    }

    /// The first eight bytes, for logs and traces.
    pub fn short(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

/// A proposal for one round (docs/protocol.md L15, L20).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The round.
    pub round: Round,
    /// The round in which this value gathered q prevotes, if it did (−1 in the paper).
    pub valid_round: Option<Round>,
    /// The value.
    pub value: ProposalValue,
    /// The proposer.
    pub proposer: AgentId,
    /// The proposer's signature over [`crate::wire::proposal_signing_bytes`].
    pub signature: Signature,
    /// With a valid round: the q prevotes for this value in that round (a "polka
    /// certificate"), so that every agent can check L28 even if it missed those prevotes.
    #[serde(default)]
    pub polka: Vec<RoundVote>,
}

/// Prevote or precommit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoteKind {
    /// First voting step.
    Prevote,
    /// Second voting step.
    Precommit,
}

/// A prevote or precommit (docs/protocol.md L23–L45).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoundVote {
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// The session.
    pub session: SessionId,
    /// The round.
    pub round: Round,
    /// The value voted for; `None` is nil.
    pub value: Option<ValueId>,
    /// The voter.
    pub agent: AgentId,
    /// The voter's signature over [`crate::wire::round_vote_signing_bytes`].
    pub signature: Signature,
}

/// A decision certificate: a proposal and q precommits for its value (docs/protocol.md L51).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The decided proposal.
    pub proposal: Proposal,
    /// q precommits for `ValueId::of(&proposal.value)` from distinct agents, all of one round.
    pub precommits: Vec<RoundVote>,
}

/// Everything that crosses the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Message {
    /// The client opens a session.
    Open(SignedSpec),
    /// An agent's vote.
    Vote(SignedVote),
    /// A round's proposal.
    Proposal(Box<Proposal>),
    /// A prevote or precommit.
    RoundVote(RoundVote),
    /// A decision certificate.
    Commit(Box<Commit>),
    /// "I have applied every session below `next`; send me the certificates you hold from
    /// there." Sent by an agent that fell behind (after a crash or a partition). Unsigned: the
    /// answer is certificates, which prove themselves.
    Sync {
        /// The first session the sender has not applied.
        next: SessionId,
    },
}

impl Message {
    /// The session the message belongs to.
    pub fn session(&self) -> SessionId {
        match self {
            Message::Open(open) => open.spec.session,
            Message::Vote(v) => v.vote.session,
            Message::Proposal(p) => p.value.session,
            Message::RoundVote(v) => v.session,
            Message::Commit(c) => c.proposal.value.session,
            Message::Sync { next } => *next,
        }
    }

    /// A short name for traces and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "open",
            Message::Vote(_) => "vote",
            Message::Proposal(_) => "proposal",
            Message::RoundVote(v) if v.kind == VoteKind::Prevote => "prevote",
            Message::RoundVote(_) => "precommit",
            Message::Commit(_) => "commit",
            Message::Sync { .. } => "sync",
        }
    }
}
