//! Byzantine agreement among the agents on the engine's aggregate: single-shot Tendermint per
//! vote session with external validity. The pseudo-code, its assumptions and a proof sketch are
//! in `docs/protocol.md`; the code cites its lines as `L<n>`.
//!
//! The [`Agent`] is a pure state machine: [`Input`]s in (a session opens, the local evaluator's
//! vote, a message, a timer), [`Output`]s out (send, broadcast, schedule a timer, evaluate,
//! decide, evidence, rejection). No async, no clock, no randomness inside: `now` is an
//! argument. The runner ([`crate::runner`]) performs the outputs over a transport and a clock.

pub mod agent;
pub mod coverage;
pub mod messages;
mod session;
mod votekeeper;

pub use session::{recompute, Committee};

use serde::{Deserialize, Serialize};

pub use agent::{Agent, AgentStats, SnapshotError, MAX_BUFFERED_PER_SESSION};
pub use messages::{
    AgreedOutcome, Commit, Message, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SessionSpec, SignedVote,
    ValueId, VoteKind,
};

use crate::types::{AgentId, SessionId, TimeMs};

/// Deliberately broken protocol variants, kept so that the simulator can prove it catches them.
/// Never use anything but `None` outside the simulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mutation {
    /// The correct protocol.
    #[default]
    None,
    /// Quorums of q − 1 for prevotes, precommits and decisions: intersection is lost.
    QuorumOneShort,
    /// Locks are ignored (L23 and L28 prevote any valid proposal).
    NoLocking,
    /// Signatures of votes and round messages are not checked.
    SkipSignatureCheck,
    /// At the deadline each agent decides on its own view by > 50% (the design's code read
    /// literally), without agreement.
    LocalTimeoutFallback,
    /// L15: the proposer proposes a fresh value even when it holds a `validValue`, so agents
    /// locked on different values are never brought together. The livelock of tendermint#1047
    /// (with a Byzantine validator), fixed by the validBlock mechanism of tendermint PR #1142.
    ReproposeFreshValue,
    /// L26–L27: a proposal with valid round 0 is rejected as malformed ("invalid proposal POL
    /// round"), so a value locked in round 0 can never be re-proposed (tendermint#2702, fixed by
    /// PR #2704).
    PolRoundZeroRejected,
    /// L34–L48: the prevote and precommit tallies count signed messages, not distinct signers,
    /// so a re-sent (L63), duplicated or certificate-carried copy of one agent's vote counts
    /// again (monad-bft#2086: QCs with duplicate signatures; flow-go PR #1830: a vote fed twice).
    DuplicateVotesCounted,
    /// Timeouts do not grow with the round (`timeout_delta` ignored), so rounds never outlast a
    /// message delay above them (cometbft#2547, CodeChain#948).
    ConstantTimeouts,
    /// L12/L14: the proposer does not propose when it holds a proposal of an earlier round, as if
    /// the "current proposal" were not reset on round change (CodeChain#983, fixed by CodeChain
    /// PR #998: a node that received a proposal never proposes again).
    ProposalNotReset,
    /// L15: a re-proposal does not carry the q prevotes of its valid round (its polka
    /// certificate), so agents that missed them cannot check it at L28 (the hidden lock of
    /// malachite#956 / #850, fixed by #859; our `regressions/polka-livelock.toml`).
    PolkaNotRelayed,
    /// Agreement quorums of `2f + 1` instead of `ceil((n + f + 1) / 2)`: two quorums need not
    /// intersect in an honest agent when `n ≠ 3f + 1` (celo-blockchain#253, autonity#854).
    QuorumTwoFPlusOne,
    /// Durability, not the protocol (the simulator applies it; the agent is unchanged): a
    /// restarted agent replays its log without the proposals, round votes, certificates and
    /// timeouts it had received, so it forgets its lock, valid value and own round votes (the
    /// amnesia bug of the Twins paper and Tendermint's accountability spec).
    ForgetLockOnRestart,
    /// Durability (simulator only): log replay does not verify record checksums, so a damaged
    /// record is replayed as if it were whole.
    SkipChecksum,
    /// Durability (simulator only): the session opener acknowledges a session at once and makes
    /// it durable only when it next opens a session, so a crash can lose an acknowledged id.
    AckBeforeDurable,
}

impl Mutation {
    /// Whether this mutation breaks the durability layer the simulator runs around the agent
    /// (log replay, the opener) rather than the agreement protocol.
    pub fn is_durability(self) -> bool {
        matches!(self, Mutation::ForgetLockOnRestart | Mutation::SkipChecksum | Mutation::AckBeforeDurable)
    }
}

/// Protocol timing and committee settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Certificates sent in answer to one [`Message::Sync`] (0: none, catch-up is off).
    pub sync_batch: u64,
    /// How long a proposer waits for all n votes before proposing with ≥ q (L16).
    pub vote_collect_ms: TimeMs,
    /// Propose timeout of round 0 (L13).
    pub timeout_propose_ms: TimeMs,
    /// Prevote timeout of round 0 (L35).
    pub timeout_prevote_ms: TimeMs,
    /// Precommit timeout of round 0 (L47).
    pub timeout_precommit_ms: TimeMs,
    /// Added to every timeout per round, so rounds eventually outlast any message delay.
    pub timeout_delta_ms: TimeMs,
    /// Interval at which an undecided agent re-sends its own messages (L62–L63).
    pub retransmit_ms: TimeMs,
    /// Sessions that may overlap: session s is validated against the registry after sessions
    /// `0 ..= s − pipeline` (docs/protocol.md, "Replicated reputation").
    pub pipeline: u64,
    /// The client allowed to open sessions.
    pub client: AgentId,
    /// Decided sessions kept in memory before their state is pruned; older certificates are
    /// served from the host's archive (L78).
    pub keep_decided: usize,
    /// A deliberately broken variant (simulator only).
    pub mutation: Mutation,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            vote_collect_ms: 150,
            timeout_propose_ms: 200,
            timeout_prevote_ms: 50,
            timeout_precommit_ms: 50,
            timeout_delta_ms: 50,
            retransmit_ms: 100,
            pipeline: 1,
            client: AgentId::CLIENT,
            keep_decided: 64,
            sync_batch: 16,
            mutation: Mutation::None,
        }
    }
}

impl ProtocolConfig {
    /// The timeout of `kind` in `round` (docs/protocol.md: grows linearly with the round).
    pub fn timeout(&self, kind: TimerKind, round: Round) -> TimeMs {
        let base = match kind {
            TimerKind::VoteCollection => return self.vote_collect_ms,
            TimerKind::Retransmit => return self.retransmit_ms,
            TimerKind::Propose => self.timeout_propose_ms,
            TimerKind::Prevote => self.timeout_prevote_ms,
            TimerKind::Precommit => self.timeout_precommit_ms,
            TimerKind::Deadline => return 0,
            TimerKind::Status => return self.retransmit_ms.saturating_mul(STATUS_EVERY_RETRANSMITS),
            TimerKind::Adversary => return 0,
        };
        let grows = if self.mutation == Mutation::ConstantTimeouts { 0 } else { round };
        base.saturating_add(self.timeout_delta_ms.saturating_mul(TimeMs::from(grows)))
    }
}

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerKind {
    /// The proposer stops waiting for all n votes (L3, L16).
    VoteCollection,
    /// L13 / L56.
    Propose,
    /// L35 / L58.
    Prevote,
    /// L47 / L60.
    Precommit,
    /// L62: re-send own messages.
    Retransmit,
    /// The session deadline (fallback, L18, and the local-fallback mutation).
    Deadline,
    /// L76: the agent's status tick, every [`STATUS_EVERY_RETRANSMITS`] retransmit intervals
    /// (not a session's: its `session` and `round` are 0 and mean nothing).
    Status,
    /// A Byzantine wrapper's own wake-up (`crate::adversary`'s `full-power` agent acts at its
    /// own times too). Honest agents never set it; the wrapper keeps it from its inner agent.
    Adversary,
}

/// The status tick (L76) comes every this many retransmit intervals.
pub const STATUS_EVERY_RETRANSMITS: TimeMs = 5;

/// A timer: it comes back as [`Input::Timeout`] at or after its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timer {
    /// The session.
    pub session: SessionId,
    /// The round it was set in.
    pub round: Round,
    /// What for.
    pub kind: TimerKind,
}

/// What an agent is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A message arrived from `from` (the transport's claim; signatures are what count).
    Receive {
        /// Sender address.
        from: AgentId,
        /// The decoded message.
        message: Message,
    },
    /// The local evaluator produced this agent's vote (L5).
    LocalVote(crate::types::AgentVote),
    /// A timer fired.
    Timeout(Timer),
    /// A frame from `from` that did not decode (counted as [`Rejection::Malformed`]).
    Malformed {
        /// Sender address.
        from: AgentId,
    },
    /// The agent restarts after a crash with its durable state but no timers: re-arm them.
    Recover,
}

/// Why an input was not used. Counted, never a panic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rejection {
    /// A frame that did not decode.
    Malformed,
    /// A signature that does not verify.
    BadSignature,
    /// The signer is not in the session's committee.
    NotInCommittee,
    /// Open from someone other than the client.
    NotTheClient,
    /// A proposal from an agent that is not the round's proposer.
    WrongProposer,
    /// A proposal whose value is not valid (V1–V8).
    InvalidProposal,
    /// A vote or message naming another session than it was sent for, or a stale session.
    WrongSession,
    /// A commit certificate that does not hold q valid precommits for its value.
    InvalidCommit,
    /// Too many buffered messages for a session not yet ready.
    BufferFull,
}

/// Proof of Byzantine behaviour: two conflicting signed messages from one agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// Two different votes in one session.
    ConflictingVotes {
        /// The first seen.
        first: Box<SignedVote>,
        /// The second.
        second: Box<SignedVote>,
    },
    /// Two different prevotes or precommits in one round.
    ConflictingRoundVotes {
        /// The first seen.
        first: Box<RoundVote>,
        /// The second.
        second: Box<RoundVote>,
    },
    /// Two different proposals from the proposer of one round.
    ConflictingProposals {
        /// The proposer.
        proposer: AgentId,
        /// The session.
        session: SessionId,
        /// The round.
        round: Round,
    },
}

impl Evidence {
    /// The agent the evidence convicts.
    pub fn culprit(&self) -> AgentId {
        match self {
            Evidence::ConflictingVotes { first, .. } => first.vote.agent,
            Evidence::ConflictingRoundVotes { first, .. } => first.agent,
            Evidence::ConflictingProposals { proposer, .. } => *proposer,
        }
    }
}

/// A decision, as the agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The session.
    pub session: SessionId,
    /// The round decided in (`None` for the local-fallback mutation).
    pub round: Option<Round>,
    /// The decided value's id (`None` for the local-fallback mutation).
    pub value: Option<ValueId>,
    /// The decided outcome.
    pub outcome: AgreedOutcome,
    /// Normal or fallback.
    pub mode: ProposalMode,
    /// The certified votes the value carries (empty for the local-fallback mutation).
    pub votes: Vec<SignedVote>,
    /// The client-signed session specification.
    pub spec: messages::SignedSpec,
    /// When the agent decided.
    pub at_ms: TimeMs,
}

/// What an agent asks its runner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send to every other committee member and the client.
    Broadcast(Message),
    /// Send to one agent.
    Send {
        /// Recipient.
        to: AgentId,
        /// What.
        message: Message,
    },
    /// Send these bytes to one agent as a frame, exactly as they are: a Byzantine agent's
    /// malformed frame (truncated, extended, a wrong length field, an unknown variant). The
    /// receiver's decoder turns it into [`Input::Malformed`]. Honest agents never produce it.
    SendRaw {
        /// Recipient.
        to: AgentId,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// Deliver [`Input::Timeout`] at `at_ms`.
    Schedule {
        /// The timer.
        timer: Timer,
        /// When.
        at_ms: TimeMs,
    },
    /// Ask the evaluator for this agent's vote on the session (L2).
    Evaluate(SessionSpec),
    /// L78: send `to` the commit certificates of sessions `from .. until` from the host's
    /// archive: this agent pruned them (it keeps `keep_decided` decided sessions), and
    /// certificates prove themselves, so the durable layer may answer for it. A host with no
    /// archive drops it; one whose archive no longer holds `from` sends
    /// [`Message::Pruned`](messages::Message::Pruned) (L81).
    ServeArchived {
        /// The peer that asked (`Sync`).
        to: AgentId,
        /// The first session to send.
        from: SessionId,
        /// The end (exclusive); at most `sync_batch` sessions after `from`.
        until: SessionId,
    },
    /// The agent decided (L50).
    Decide(Box<DecisionRecord>),
    /// Byzantine behaviour observed.
    Evidence(Box<Evidence>),
    /// An input was not used.
    Reject {
        /// From whom it came (the transport's claim).
        from: AgentId,
        /// Why.
        reason: Rejection,
    },
}

/// Anything the runner can drive: the honest [`Agent`] or a Byzantine wrapper around it.
pub trait Node {
    /// The node's identity.
    fn id(&self) -> AgentId;
    /// Handles one input at `now_ms`, appending outputs.
    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>);
    /// The protocol coverage of an honest agent (docs/coverage.md); `None` for anything else
    /// (a Byzantine wrapper: coverage is about what honest agents did).
    fn coverage(&self) -> Option<&coverage::Coverage> {
        None
    }
}

impl<N: Node + ?Sized> Node for Box<N> {
    fn id(&self) -> AgentId {
        (**self).id()
    }
    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        (**self).handle(now_ms, input, out);
    }
    fn coverage(&self) -> Option<&coverage::Coverage> {
        (**self).coverage()
    }
}
