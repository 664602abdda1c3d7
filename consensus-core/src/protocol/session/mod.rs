//! One vote session's agreement state at one agent: docs/protocol.md lines 1–69 (the agent
//! adds L70–L77 around it).
//!
//! Rules are evaluated by [`SessionMachine::progress`] after every input until none fires, the
//! way Tendermint's "upon" rules read; each rule cites its pseudo-code line. The machine is one
//! type split by concern:
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the state, its accessors, `StartRound` (L10–L13), signing own round votes, the rule loop |
//! | `inputs.rs` | Open / spec (L1–L4), own vote (L5–L6), votes (L7–L9), round votes into the vote keeper (L31–L33), proposals and their polka certificates (L26–L27), commit certificates (L52–L53) |
//! | `rules.rs` | the "upon" rules L22–L61: prevote, lock, precommit, decide, round skip, timeouts |
//! | `validity.rs` | V1–V8 and `recompute` (V5–V6) |
//! | `propose.rs` | TryPropose (L14–L21) |
//! | `catchup.rs` | what the paper's reliable gossip gave for free: retransmission and polka gossip (L62–L65), help for lagging peers (L66–L69), asking for an unknown session (L70–L71), recovery (L74–L75) |

mod catchup;
mod inputs;
mod propose;
mod rules;
#[cfg(test)]
mod tests;
mod validity;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::quorum::{f_max, quorum};
use crate::registry::{Registry, SessionRecord};
use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, SessionId, TimeMs};
use crate::wire;

use super::coverage::{Coverage, Point, Relative};
use super::messages::{
    AgreedOutcome, Commit, Message, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SignedSpec, SignedVote,
    ValueId, VoteKind,
};
use super::votekeeper::VoteKeeper;
use super::{Mutation, Output, ProtocolConfig, Timer, TimerKind};

pub use validity::recompute;

/// The agents of a session's committee and its quorum arithmetic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committee {
    /// Ascending.
    pub members: Vec<AgentId>,
    /// Quorum of the agreement: prevotes, precommits, decisions (one short under the
    /// `quorum-one-short` mutation, `2f + 1` under `quorum-two-f-plus-one`).
    pub q: usize,
    /// Votes a proposal's vote set needs (V2): the true quorum, whatever the mutation.
    pub vote_q: usize,
    /// `f + 1`: the round-skip threshold (L54).
    pub skip: usize,
}

impl Committee {
    /// The active agents of `registry`, with `q = ceil((n + f + 1) / 2)` (one short under the
    /// `quorum-one-short` mutation).
    pub fn of(registry: &Registry, mutation: Mutation) -> Committee {
        let members: Vec<AgentId> = registry.active().map(|r| r.id).collect();
        let n = members.len() as u64;
        let f = f_max(n);
        let true_q = usize::try_from(quorum(n, f).unwrap_or(n.max(1))).unwrap_or(usize::MAX);
        let q = match mutation {
            Mutation::QuorumOneShort => true_q.saturating_sub(1).max(1),
            Mutation::QuorumTwoFPlusOne => {
                usize::try_from(f.saturating_mul(2).saturating_add(1)).unwrap_or(true_q).min(true_q)
            }
            _ => true_q,
        };
        Committee { members, q, vote_q: true_q, skip: usize::try_from(f + 1).unwrap_or(1) }
    }

    /// `proposer(s, r)`: the `(s + r) mod n`-th member.
    pub fn proposer(&self, session: SessionId, round: Round) -> Option<AgentId> {
        let n = self.members.len() as u64;
        if n == 0 {
            return None;
        }
        let index = session.0.wrapping_add(u64::from(round)) % n;
        self.members.get(usize::try_from(index).ok()?).copied()
    }

    /// Whether `agent` is a member.
    pub fn contains(&self, agent: AgentId) -> bool {
        self.members.binary_search(&agent).is_ok()
    }
}

/// Tendermint's step within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Step {
    Propose,
    Prevote,
    Precommit,
}

/// What the machine needs from its agent for one call.
pub(crate) struct Ctx<'a> {
    pub me: AgentId,
    pub now: TimeMs,
    pub signer: &'a dyn Signer,
    pub verifier: &'a dyn Verifier,
    pub registry: &'a Registry,
    pub engine: &'a EngineConfig,
    pub protocol: &'a ProtocolConfig,
    /// The agent's protocol coverage (observed only: nothing decides on it).
    pub coverage: &'a Coverage,
}

impl Ctx<'_> {
    /// Counts a coverage point.
    #[inline]
    fn cover(&self, point: Point) {
        self.coverage.record(point);
    }

    fn verify(&self, agent: AgentId, bytes: &[u8], signature: &crate::sign::Signature) -> bool {
        self.protocol.mutation == Mutation::SkipSignatureCheck || self.verifier.verify(agent, bytes, signature)
    }
}

/// A decided session: when, the certificate that proves it, and what the registry learns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Decided {
    /// When the decision was taken (the reported record's `at_ms`).
    pub at_ms: TimeMs,
    pub commit: Option<Commit>,
    pub registry_record: SessionRecord,
}

/// One session's state at one agent. Serialisable whole, so an agent's snapshot
/// ([`super::Agent::snapshot`]) restores it exactly.
#[derive(Serialize, Deserialize)]
pub(crate) struct SessionMachine {
    session: SessionId,
    committee: Committee,
    spec: Option<SignedSpec>,
    evaluation_requested: bool,
    round: Round,
    step: Step,
    locked: Option<(Round, ValueId)>,
    valid: Option<(Round, ValueId)>,
    values: BTreeMap<ValueId, ProposalValue>,
    validity: BTreeMap<ValueId, bool>,
    /// `outcome(mode, votes)` of each value held, with its registry record, computed once: it is
    /// a function of the value alone while the session is undecided (its registry epoch is
    /// fixed), and validation, the proposer and the decision all need it.
    outcomes: BTreeMap<(ValueId, ProposalMode), (AgreedOutcome, SessionRecord)>,
    /// The proposal of each round from its proposer, with its value id (hashed once).
    proposals: BTreeMap<Round, (Proposal, ValueId)>,
    /// Every validly signed prevote and precommit, counted by distinct signer (L31–L33).
    keeper: VoteKeeper,
    votes: BTreeMap<AgentId, SignedVote>,
    own_vote: Option<SignedVote>,
    vote_collection_done: bool,
    prevote_timer_set: BTreeSet<Round>,
    precommit_timer_set: BTreeSet<Round>,
    locked_in: BTreeSet<Round>,
    started: bool,
    decided: Option<Decided>,
    commit_sent_at: BTreeMap<AgentId, TimeMs>,
    round_help_sent_at: BTreeMap<AgentId, TimeMs>,
}

impl SessionMachine {
    pub fn new(session: SessionId, committee: Committee) -> SessionMachine {
        SessionMachine {
            session,
            committee,
            spec: None,
            evaluation_requested: false,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            values: BTreeMap::new(),
            validity: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            proposals: BTreeMap::new(),
            keeper: VoteKeeper::default(),
            votes: BTreeMap::new(),
            own_vote: None,
            vote_collection_done: false,
            prevote_timer_set: BTreeSet::new(),
            precommit_timer_set: BTreeSet::new(),
            locked_in: BTreeSet::new(),
            started: false,
            decided: None,
            commit_sent_at: BTreeMap::new(),
            round_help_sent_at: BTreeMap::new(),
        }
    }

    pub fn decided(&self) -> Option<&Decided> {
        self.decided.as_ref()
    }

    pub fn round(&self) -> Round {
        self.round
    }

    /// The certificate of a decided session, if held.
    pub fn commit(&self) -> Option<&Commit> {
        self.decided.as_ref().and_then(|d| d.commit.as_ref())
    }

    fn schedule(&self, kind: TimerKind, at: TimeMs, out: &mut Vec<Output>) {
        out.push(Output::Schedule { timer: Timer { session: self.session, round: self.round, kind }, at_ms: at });
    }

    /// L10–L13.
    fn start_round(&mut self, round: Round, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        // The round only grows: L4 starts round 0 once, L55 moves to a higher round, L61 to the
        // next (none after the last round, which is never started twice).
        debug_assert!(round >= self.round, "session {}: round {} -> {round}", self.session.0, self.round);
        debug_assert!(
            round > self.round || (!self.started && round == 0),
            "session {}: round {round} started twice",
            self.session.0
        );
        self.started = true;
        self.round = round;
        self.step = Step::Propose;
        ctx.cover(Point::L10);
        if self.committee.proposer(self.session, round) == Some(ctx.me) {
            ctx.cover(Point::L12);
        }
        let at = ctx.now.saturating_add(ctx.protocol.timeout(TimerKind::Propose, round));
        self.schedule(TimerKind::Propose, at, out); // L13
        self.try_propose(ctx, out); // L12
    }

    /// Moves the step forward within the round (L25, L30, L40, L45, L57, L59); only
    /// [`SessionMachine::start_round`] resets it, with a higher round.
    fn advance_step(&mut self, step: Step) {
        debug_assert!(step > self.step, "round {}: step {:?} -> {step:?}", self.round, self.step);
        self.step = step;
    }

    /// Signs and broadcasts this agent's prevote or precommit of the current round.
    fn broadcast_round_vote(&mut self, kind: VoteKind, value: Option<ValueId>, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        // One of each per round, so never two values: a prevote only when leaving the propose
        // step (L24, L29, L57), a precommit only when leaving the prevote step (L40, L45, L59).
        let step = match kind {
            VoteKind::Prevote => Step::Propose,
            VoteKind::Precommit => Step::Prevote,
        };
        debug_assert_eq!(self.step, step, "round {}: a {kind:?} signed in step {:?}", self.round, self.step);
        let signature = ctx.signer.sign(&wire::round_vote_signing_bytes(kind, self.session, self.round, value));
        let v = RoundVote { kind, session: self.session, round: self.round, value, agent: ctx.me, signature };
        self.keeper.add(v.clone(), false, false);
        out.push(Output::Broadcast(Message::RoundVote(v)));
    }

    /// The prevotes or precommits of `round` for `value` (`None`: any value), by distinct
    /// signer (the vote keeper); under `duplicate-votes-counted`, plus every copy counted again.
    fn tally(&self, kind: VoteKind, round: Round, value: Option<Option<ValueId>>) -> usize {
        match value {
            Some(value) => self.keeper.count(round, kind, value),
            None => self.keeper.count_any(round, kind),
        }
    }

    /// Runs every "upon" rule until none fires.
    fn progress(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        // Bounded: each rule changes step, round or a first-time set, all monotone.
        for _ in 0..64 {
            self.debug_check(ctx.me);
            if self.decided.is_some() || !self.started {
                return;
            }
            let fired = self.rule_prevote_on_proposal(ctx, out)
                || self.rule_prevote_timer(ctx, out)
                || self.rule_lock_and_precommit(ctx, out)
                || self.rule_late_polka(ctx)
                || self.rule_precommit_nil(ctx, out)
                || self.rule_precommit_timer(ctx, out)
                || self.rule_decide(ctx, out)
                || self.rule_skip_round(ctx, out);
            if !fired {
                return;
            }
        }
    }

    /// Coverage: the abstract state in which this agent has just sent its own round vote of
    /// `kind` (its step moved on), with its lock and valid value relative to the round and
    /// whether it holds the round's proposal.
    fn cover_state(&self, kind: VoteKind, ctx: &Ctx<'_>) {
        let relative = |held: Option<(Round, ValueId)>| Relative::of(held.map(|(r, _)| r), self.round);
        let proposal = self.proposals.contains_key(&self.round);
        let point = Point::state(kind, relative(self.locked), relative(self.valid), proposal);
        debug_assert!(
            point.is_some(),
            "round {}: a {kind:?} in a state the protocol cannot reach (locked {:?}, valid {:?}, proposal {proposal})",
            self.round,
            self.locked.map(|(r, _)| r),
            self.valid.map(|(r, _)| r)
        );
        if let Some(point) = point {
            ctx.cover(point);
        }
    }

    /// The state's invariants, checked in debug builds before every rule (TIGER_STYLE: the
    /// positive and the negative space). Release builds compile this away.
    fn debug_check(&self, me: AgentId) {
        let valid_round = self.valid.map(|(r, _)| r);
        let locked_round = self.locked.map(|(r, _)| r);
        // validRound ≤ round: L41 sets the current round, L43 an earlier one.
        debug_assert!(valid_round.is_none_or(|vr| vr <= self.round), "valid round {valid_round:?} > {}", self.round);
        // A lock comes with a valid value at least as recent (L39 and L41 together; L43 only
        // raises the valid round), and with its round marked as locked in.
        debug_assert!(
            locked_round.is_none_or(|lr| valid_round.is_some_and(|vr| lr <= vr) && self.locked_in.contains(&lr)),
            "lock {locked_round:?} without a valid value as recent (valid {valid_round:?})"
        );
        // Nothing moves before the session starts (L4).
        debug_assert!(
            self.started || (self.round == 0 && self.step == Step::Propose && self.valid.is_none()),
            "session {} moved before it started",
            self.session.0
        );
        // Past the propose step this agent has prevoted in the round, past prevote precommitted.
        for (kind, step) in [(VoteKind::Prevote, Step::Prevote), (VoteKind::Precommit, Step::Precommit)] {
            debug_assert!(
                self.step < step || self.keeper.first_of(self.round, kind, me).is_some(),
                "round {}: step {:?} without an own {kind:?}",
                self.round,
                self.step
            );
        }
        // This agent's own vote is the one it counts for itself (L6).
        debug_assert!(self.own_vote.as_ref().is_none_or(|v| self.votes.get(&v.vote.agent) == Some(v)));
    }
}
