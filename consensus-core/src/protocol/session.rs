//! One vote session's agreement state at one agent: docs/protocol.md lines 1–60.
//!
//! Rules are evaluated by [`SessionMachine::progress`] after every input until none fires, the
//! way Tendermint's "upon" rules read; each rule cites its pseudo-code line.

use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::aggregate_borrowed;
use crate::config::{EngineConfig, FallbackPolicy};
use crate::policies::fallback_consensus;
use crate::quorum::{f_max, quorum};
use crate::registry::{Registry, SessionRecord};
use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, ConsensusError, ConsensusMethod, Decision, SessionId, TimeMs, VoteValue};
use crate::wire;

use super::messages::{
    AgreedOutcome, Commit, Message, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SignedSpec, SignedVote,
    ValueId, VoteKind,
};
use super::votekeeper::{Added, VoteKeeper};
use super::{DecisionRecord, Evidence, Mutation, Output, ProtocolConfig, Rejection, Timer, TimerKind};

/// The agents of a session's committee and its quorum arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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
}

impl Ctx<'_> {
    fn verify(&self, agent: AgentId, bytes: &[u8], signature: &crate::sign::Signature) -> bool {
        self.protocol.mutation == Mutation::SkipSignatureCheck || self.verifier.verify(agent, bytes, signature)
    }
}

/// A decided session: when, the certificate that proves it, and what the registry learns.
#[derive(Clone, Debug)]
pub(crate) struct Decided {
    /// When the decision was taken (the reported record's `at_ms`).
    pub at_ms: TimeMs,
    pub commit: Option<Commit>,
    pub registry_record: SessionRecord,
}

/// One session's state at one agent.
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

    fn schedule(&self, kind: TimerKind, at: TimeMs, out: &mut Vec<Output>) {
        out.push(Output::Schedule { timer: Timer { session: self.session, round: self.round, kind }, at_ms: at });
    }

    /// L1–L4: the session is known (from Open or from a proposal's signed spec).
    pub fn learn_spec(&mut self, spec: SignedSpec, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.spec.is_some() || spec.spec.session != self.session {
            return;
        }
        let opened = spec.spec.opened_ms;
        self.spec = Some(spec.clone());
        if self.committee.contains(ctx.me) && !self.evaluation_requested {
            self.evaluation_requested = true;
            out.push(Output::Evaluate(spec.spec)); // L2
        }
        let deadline = opened.saturating_add(ctx.engine.deadline_ms);
        self.schedule(TimerKind::Deadline, deadline, out);
        if !self.started {
            self.schedule(TimerKind::VoteCollection, opened.saturating_add(ctx.protocol.vote_collect_ms), out); // L3
            self.start_round(0, ctx, out); // L4
                                           // The retransmit timer runs from the session's creation (Agent::route).
        }
        self.progress(ctx, out);
    }

    /// L10–L13.
    fn start_round(&mut self, round: Round, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        self.started = true;
        self.round = round;
        self.step = Step::Propose;
        let at = ctx.now.saturating_add(ctx.protocol.timeout(TimerKind::Propose, round));
        self.schedule(TimerKind::Propose, at, out); // L13
        self.try_propose(ctx, out); // L12
    }

    /// L5–L6: this agent's own vote, signed and broadcast.
    pub fn local_vote(&mut self, vote: crate::types::AgentVote, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.own_vote.is_some() || vote.session != self.session || vote.agent != ctx.me {
            return;
        }
        let signature = ctx.signer.sign(&wire::vote_signing_bytes(&vote));
        let signed = SignedVote { vote, signature };
        self.own_vote = Some(signed.clone());
        self.votes.insert(ctx.me, signed.clone());
        out.push(Output::Broadcast(Message::Vote(signed)));
        self.try_propose(ctx, out);
        self.progress(ctx, out);
    }

    /// L7–L9.
    pub fn on_vote(&mut self, from: AgentId, vote: SignedVote, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if vote.vote.session != self.session {
            out.push(Output::Reject { from, reason: Rejection::WrongSession });
            return;
        }
        if !self.committee.contains(vote.vote.agent) {
            out.push(Output::Reject { from, reason: Rejection::NotInCommittee });
            return;
        }
        if !ctx.verify(vote.vote.agent, &wire::vote_signing_bytes(&vote.vote), &vote.signature) {
            out.push(Output::Reject { from, reason: Rejection::BadSignature });
            return;
        }
        match self.votes.get(&vote.vote.agent) {
            Some(first) if *first != vote => {
                // L9: keep the first, report both.
                let evidence = Evidence::ConflictingVotes { first: Box::new(first.clone()), second: Box::new(vote) };
                out.push(Output::Evidence(Box::new(evidence)));
            }
            Some(_) => {}
            None => {
                self.votes.insert(vote.vote.agent, vote);
                self.try_propose(ctx, out);
                self.progress(ctx, out);
            }
        }
    }

    /// Verifies a prevote or precommit and hands it to the vote keeper (L31–L33).
    pub fn on_round_vote(&mut self, from: AgentId, v: RoundVote, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if v.session != self.session {
            out.push(Output::Reject { from, reason: Rejection::WrongSession });
            return;
        }
        if !self.committee.contains(v.agent) {
            out.push(Output::Reject { from, reason: Rejection::NotInCommittee });
            return;
        }
        // A copy of a held vote (retransmissions, L63) was verified when it first came.
        let held = self.keeper.holds(&v);
        if !held {
            let bytes = wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value);
            if !ctx.verify(v.agent, &bytes, &v.signature) {
                out.push(Output::Reject { from, reason: Rejection::BadSignature });
                return;
            }
        }
        if v.round < self.round && v.agent == from {
            // The sender's own vote of an earlier round: it is still there (L66).
            self.answer_lagging_round(from, v.round, ctx, out);
        }
        if held && ctx.protocol.mutation != Mutation::DuplicateVotesCounted {
            return;
        }
        if self.keep(v, false, ctx, out) {
            self.progress(ctx, out);
        }
    }

    /// L31–L33: keeps a verified round vote; reports an equivocation. Returns whether a tally
    /// changed.
    fn keep(&mut self, v: RoundVote, certified: bool, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if !self.keeper.admits(v.agent, v.round, self.round) {
            return false;
        }
        let copies = ctx.protocol.mutation == Mutation::DuplicateVotesCounted;
        let (evidence, counted) = match self.keeper.add(v, certified, copies) {
            Added::New => return true,
            // The mutation: a copy of a held vote is tallied again.
            Added::Duplicate => return copies,
            Added::Equivocation { first, second } => (
                Evidence::ConflictingRoundVotes { first: Box::new(first.clone()), second: Box::new(second.clone()) },
                true,
            ),
            Added::OverBound { first, refused } => {
                (Evidence::ConflictingRoundVotes { first: Box::new(first.clone()), second: Box::new(refused) }, false)
            }
        };
        out.push(Output::Evidence(Box::new(evidence)));
        counted
    }

    /// L68–L69. A peer is still in an earlier round (its retransmissions say so) and this agent has moved
    /// on, so it no longer re-sends that round's messages: send it ours, at most once per
    /// retransmit interval. Without this, a peer that lost our precommit of round r can wait
    /// for it forever (Tendermint assumes every message is eventually delivered).
    fn answer_lagging_round(&mut self, from: AgentId, round: Round, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if from == ctx.me || !self.committee.contains(from) {
            return;
        }
        let last = self.round_help_sent_at.get(&from).copied();
        if last.is_some_and(|t| ctx.now < t.saturating_add(ctx.protocol.retransmit_ms)) {
            return;
        }
        self.round_help_sent_at.insert(from, ctx.now);
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            if let Some(v) = self.keeper.first_of(round, kind, ctx.me) {
                out.push(Output::Send { to: from, message: Message::RoundVote(v.clone()) });
            }
        }
    }

    /// Verifies and stores a proposal (L22–L30 inputs).
    pub fn on_proposal(&mut self, from: AgentId, p: Proposal, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if p.value.session != self.session {
            out.push(Output::Reject { from, reason: Rejection::WrongSession });
            return;
        }
        if self.committee.proposer(self.session, p.round) != Some(p.proposer) {
            out.push(Output::Reject { from, reason: Rejection::WrongProposer });
            return;
        }
        // The value id is hashed once, for the signature check and the value's key.
        let id = ValueId::of(&p.value);
        let bytes = wire::proposal_id_signing_bytes(p.value.session, p.round, p.valid_round, id);
        if !ctx.verify(p.proposer, &bytes, &p.signature) {
            out.push(Output::Reject { from, reason: Rejection::BadSignature });
            return;
        }
        if ctx.protocol.mutation == Mutation::PolRoundZeroRejected && p.valid_round == Some(0) {
            // The mutation: valid round 0 taken for "no valid round" gone wrong (tendermint#2702).
            out.push(Output::Reject { from, reason: Rejection::InvalidProposal });
            return;
        }
        if let Some((first, _)) = self.proposals.get(&p.round) {
            if *first != p {
                let evidence =
                    Evidence::ConflictingProposals { proposer: p.proposer, session: self.session, round: p.round };
                out.push(Output::Evidence(Box::new(evidence)));
            }
            return;
        }
        let spec = self.spec.is_none().then(|| p.value.spec.clone());
        self.values.entry(id).or_insert_with(|| p.value.clone());
        self.absorb_polka(from, &p, id, ctx, out);
        self.cross_check_votes(&p.value.votes, ctx, out);
        self.proposals.insert(p.round, (p, id));
        if let Some(spec) = spec.filter(|s| self.spec.is_none() && self.spec_authentic(s, ctx)) {
            self.learn_spec(spec, ctx, out);
        }
        self.progress(ctx, out);
    }

    /// A vote carried by a proposal that differs from the one this agent received directly
    /// from the same voter proves that the voter equivocated (L9).
    fn cross_check_votes(&self, votes: &[SignedVote], ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        for carried in votes {
            let Some(direct) = self.votes.get(&carried.vote.agent) else { continue };
            if direct != carried
                && carried.vote.session == self.session
                && ctx.verify(carried.vote.agent, &wire::vote_signing_bytes(&carried.vote), &carried.signature)
            {
                let evidence =
                    Evidence::ConflictingVotes { first: Box::new(direct.clone()), second: Box::new(carried.clone()) };
                out.push(Output::Evidence(Box::new(evidence)));
            }
        }
    }

    /// L26–L27: checks a proposal's polka certificate on its own (q distinct committee members'
    /// valid prevotes for (vr, id(v))) and hands its prevotes to the vote keeper as received.
    /// A certified prevote is counted even when its signer sent this agent something else first
    /// (the hidden lock of issue 9); prevotes of a short certificate count as ordinary ones.
    fn absorb_polka(&mut self, from: AgentId, p: &Proposal, id: ValueId, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let Some(vr) = p.valid_round else { return };
        let mut genuine = vec![false; p.polka.len()];
        let mut signers = BTreeSet::new();
        for (ok, v) in genuine.iter_mut().zip(&p.polka) {
            *ok = v.kind == VoteKind::Prevote
                && v.session == self.session
                && v.round == vr
                && v.value == Some(id)
                && self.committee.contains(v.agent)
                && (self.keeper.holds(v)
                    || ctx.verify(
                        v.agent,
                        &wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value),
                        &v.signature,
                    ));
            if *ok {
                signers.insert(v.agent);
            } else {
                out.push(Output::Reject { from, reason: Rejection::BadSignature });
            }
        }
        let certified = signers.len() >= self.committee.q;
        let copies = ctx.protocol.mutation == Mutation::DuplicateVotesCounted;
        for (v, ok) in p.polka.iter().zip(genuine) {
            // A certificate's copy of a held prevote changes nothing (except under the mutation).
            if ok && (copies || !self.keeper.holds(v)) {
                self.keep(v.clone(), certified, ctx, out);
            }
        }
    }

    fn spec_authentic(&self, spec: &SignedSpec, ctx: &Ctx<'_>) -> bool {
        spec.spec.session == self.session
            && ctx.verifier.verify(ctx.protocol.client, &wire::spec_signing_bytes(&spec.spec), &spec.signature)
    }

    /// L52–L53: a decision certificate.
    pub fn on_commit(&mut self, from: AgentId, c: Commit, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.decided.is_some() {
            return;
        }
        let id = ValueId::of(&c.proposal.value);
        let round = c.precommits.first().map(|p| p.round);
        let mut signers = BTreeSet::new();
        let certified = c.precommits.iter().all(|p| {
            let bytes = wire::round_vote_signing_bytes(p.kind, p.session, p.round, p.value);
            p.kind == VoteKind::Precommit
                && p.session == self.session
                && Some(p.round) == round
                && p.value == Some(id)
                && self.committee.contains(p.agent)
                && signers.insert(p.agent)
                && ctx.verify(p.agent, &bytes, &p.signature)
        });
        if !certified || signers.len() < self.committee.q {
            out.push(Output::Reject { from, reason: Rejection::InvalidCommit });
            return;
        }
        if self.spec.is_none() && self.spec_authentic(&c.proposal.value.spec, ctx) {
            self.learn_spec(c.proposal.value.spec.clone(), ctx, out);
        }
        self.values.entry(id).or_insert_with(|| c.proposal.value.clone());
        if !self.is_valid(id, ctx) {
            out.push(Output::Reject { from, reason: Rejection::InvalidCommit });
            return;
        }
        let r = round.unwrap_or(c.proposal.round);
        self.decide(r, id, Some(c), ctx, out); // L53
    }

    /// The certificate of a decided session, if held.
    pub fn commit(&self) -> Option<&Commit> {
        self.decided.as_ref().and_then(|d| d.commit.as_ref())
    }

    /// L74–L75. After a restart the timers are gone: re-arm retransmission and exactly the
    /// round timeouts the durable state justifies, each for its full length from now. The
    /// precommit timeout only once q precommits of the round were seen (L46–L47): re-arming it
    /// without them made a restarted agent skip the round alone (explore finding
    /// liveness-swarm-92, `regressions/recover-precommit-timer.toml`).
    pub fn recover(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.decided.is_some() {
            return;
        }
        // L70–L71 / L62–L63: the retransmit timer runs from the session's creation, started or
        // not; a session whose spec was still unknown at the crash keeps asking for it.
        self.schedule(TimerKind::Retransmit, ctx.now, out);
        if !self.started {
            return;
        }
        if let Some(spec) = &self.spec {
            let opened = spec.spec.opened_ms;
            self.schedule(TimerKind::Deadline, opened.saturating_add(ctx.engine.deadline_ms), out);
            if !self.vote_collection_done {
                self.schedule(TimerKind::VoteCollection, opened.saturating_add(ctx.protocol.vote_collect_ms), out);
                // L3
            }
        }
        if self.own_vote.is_none() && self.evaluation_requested {
            // The evaluation in flight was lost with the crash: ask again.
            if let Some(spec) = &self.spec {
                out.push(Output::Evaluate(spec.spec.clone()));
            }
        }
        let timeout = |kind| ctx.now.saturating_add(ctx.protocol.timeout(kind, self.round));
        if self.step == Step::Propose {
            self.schedule(TimerKind::Propose, timeout(TimerKind::Propose), out);
            // L13
        }
        if self.step == Step::Prevote && self.prevote_timer_set.contains(&self.round) {
            self.schedule(TimerKind::Prevote, timeout(TimerKind::Prevote), out);
            // L35
        }
        if self.precommit_timer_set.contains(&self.round) {
            self.schedule(TimerKind::Precommit, timeout(TimerKind::Precommit), out);
            // L47
        }
    }

    /// L66–L67: after deciding, answer a lagging agent with the certificate.
    pub fn help_lagging(&mut self, from: AgentId, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let Some(decided) = &self.decided else { return };
        let Some(commit) = &decided.commit else { return };
        // Messages right after the decision come from peers deciding at the same moment.
        let settled = ctx.now >= decided.at_ms.saturating_add(ctx.protocol.retransmit_ms);
        // The client re-sends `Open` until it has heard of the decision: answer it too.
        let known = self.committee.contains(from) || from == ctx.protocol.client;
        if from == ctx.me || !known || !settled {
            return;
        }
        let last = self.commit_sent_at.get(&from).copied();
        if last.is_some_and(|t| ctx.now < t.saturating_add(ctx.protocol.retransmit_ms)) {
            return;
        }
        let message = Message::Commit(Box::new(commit.clone()));
        self.commit_sent_at.insert(from, ctx.now);
        out.push(Output::Send { to: from, message });
    }

    /// L56–L63 and the deadline.
    pub fn on_timeout(&mut self, timer: Timer, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.decided.is_some() {
            return;
        }
        match timer.kind {
            TimerKind::VoteCollection => {
                self.vote_collection_done = true;
                self.try_propose(ctx, out);
            }
            TimerKind::Propose if timer.round == self.round && self.step == Step::Propose => {
                self.broadcast_round_vote(VoteKind::Prevote, None, ctx, out); // L57
                self.step = Step::Prevote;
            }
            TimerKind::Prevote if timer.round == self.round && self.step == Step::Prevote => {
                self.broadcast_round_vote(VoteKind::Precommit, None, ctx, out); // L59
                self.step = Step::Precommit;
            }
            TimerKind::Precommit if timer.round == self.round => {
                self.start_round(self.round.saturating_add(1), ctx, out); // L61
            }
            TimerKind::Retransmit => {
                if self.started {
                    self.retransmit(ctx, out); // L62–L63
                } else {
                    self.ask_for_session(ctx, out);
                }
                self.schedule(TimerKind::Retransmit, ctx.now.saturating_add(ctx.protocol.retransmit_ms), out);
            }
            TimerKind::Deadline => {
                if ctx.protocol.mutation == Mutation::LocalTimeoutFallback {
                    self.decide_locally(ctx, out);
                    return;
                }
                self.try_propose(ctx, out);
            }
            _ => {}
        }
        self.progress(ctx, out);
    }

    /// L70–L71. Peers talk about a session whose `Open` (and every proposal) this agent lost: ask one
    /// peer per interval, in turn, for its certificate (answered if it decided).
    fn ask_for_session(&self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let others: Vec<AgentId> = self.committee.members.iter().copied().filter(|a| *a != ctx.me).collect();
        if others.is_empty() {
            return;
        }
        let turn = ctx.now / ctx.protocol.retransmit_ms.max(1);
        let peer = others[usize::try_from(turn % others.len() as u64).unwrap_or(0)];
        out.push(Output::Send { to: peer, message: Message::Sync { next: self.session } });
    }

    /// L62–L65: re-send this agent's own messages of the current round and, once the round
    /// has moved past its valid round, the polka of that round with its proposal.
    fn retransmit(&self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if let Some(v) = &self.own_vote {
            out.push(Output::Broadcast(Message::Vote(v.clone())));
        }
        if let Some((p, _)) = self.proposals.get(&self.round).filter(|(p, _)| p.proposer == ctx.me) {
            out.push(Output::Broadcast(Message::Proposal(Box::new(p.clone()))));
        }
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            if let Some(v) = self.keeper.first_of(self.round, kind, ctx.me) {
                out.push(Output::Broadcast(Message::RoundVote(v.clone())));
            }
        }
        self.gossip_polka(ctx, out);
    }

    /// L64–L65: the gossip a locked or lagging peer needs. While this agent holds a valid value
    /// of an earlier round, it re-broadcasts that round's proposal exactly as received (a
    /// changed copy would look like proposer equivocation) and the q prevotes for its value:
    /// at most one proposal and q prevotes per session and retransmit interval, each bounded
    /// by the wire's frame limits. Not under `polka-not-relayed`, whose point is a polka
    /// that never travels.
    fn gossip_polka(&self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let Some((vr, id)) = self.valid.filter(|(vr, _)| *vr < self.round) else { return };
        if ctx.protocol.mutation == Mutation::PolkaNotRelayed {
            return;
        }
        let Some((p, _)) = self.proposals.get(&vr).filter(|(_, pid)| *pid == id) else { return };
        out.push(Output::Broadcast(Message::Proposal(Box::new(p.clone()))));
        for v in self.keeper.votes_for(vr, VoteKind::Prevote, Some(id)).take(self.committee.q) {
            out.push(Output::Broadcast(Message::RoundVote(v.clone())));
        }
    }

    /// L14–L21.
    fn try_propose(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let has_proposal = if ctx.protocol.mutation == Mutation::ProposalNotReset {
            // The mutation: a proposal of any earlier round still counts as this round's.
            self.proposals.range(..=self.round).next().is_some()
        } else {
            self.proposals.contains_key(&self.round)
        };
        if self.decided.is_some()
            || self.step != Step::Propose
            || self.committee.proposer(self.session, self.round) != Some(ctx.me)
            || has_proposal
        {
            return;
        }
        let valid = self.valid.filter(|_| ctx.protocol.mutation != Mutation::ReproposeFreshValue);
        if let Some((valid_round, id)) = valid {
            if let Some(value) = self.values.get(&id).cloned() {
                self.propose(value, Some(valid_round), ctx, out); // L15
            }
            return;
        }
        let Some(spec) = self.spec.clone() else { return };
        let have = self.votes.len();
        let all_in = have >= self.committee.members.len();
        // L16–L17: every vote, or a quorum once vote collection is over or when it is unanimous.
        if !all_in && (have < self.committee.vote_q || !(self.vote_collection_done || self.votes_unanimous())) {
            return; // L21
        }
        // L16a: every valid vote held goes into the proposal, not only the first q.
        let votes: Vec<SignedVote> = self.votes.values().cloned().collect();
        let (normal, normal_record) = outcome_of(ProposalMode::Normal, &spec, &votes, ctx);
        let past_deadline = ctx.now >= spec.spec.opened_ms.saturating_add(ctx.engine.deadline_ms);
        // L16b–L16c: with votes missing, propose early only an outcome that reaches the threshold.
        // Otherwise wait for the missing votes (lost ones are re-sent on every timeout, L58), in
        // any round, until the session deadline: the Deadline timer runs TryPropose again, and
        // from then on every proposer proposes what it holds at once, so the wait is bounded.
        let by_threshold = matches!(
            normal,
            AgreedOutcome::Decided { method: ConsensusMethod::Threshold | ConsensusMethod::EarlyUnanimous, .. }
        );
        if !all_in && !by_threshold && !past_deadline {
            return; // L21
        }
        let fallback_on = ctx.engine.fallback == FallbackPolicy::SimpleMajority;
        let mode = match (&normal, fallback_on, past_deadline) {
            (AgreedOutcome::Decided { .. }, _, _) | (_, false, _) => ProposalMode::Normal,
            (_, true, true) => ProposalMode::Fallback, // L18–L19
            // With a fallback configured, wait for the deadline rather than agree on no decision.
            (AgreedOutcome::NoDecision { .. }, true, false) => return,
            (_, true, false) => ProposalMode::Normal,
        };
        let fallback = (mode == ProposalMode::Fallback).then(|| outcome_of(mode, &spec, &votes, ctx));
        let outcome = fallback.as_ref().map_or_else(|| normal.clone(), |(o, _)| o.clone());
        let value = ProposalValue { session: self.session, spec, mode, votes, outcome };
        // L20; keep the outcomes every agent's validation and decision compute for this value.
        let id = self.propose(value, None, ctx, out);
        self.outcomes.entry((id, ProposalMode::Normal)).or_insert((normal, normal_record));
        if let Some(fallback) = fallback {
            self.outcomes.entry((id, ProposalMode::Fallback)).or_insert(fallback);
        }
    }

    /// L17: every vote held accepts one candidate (the early path; the outcome must still reach
    /// the threshold, L16b).
    fn votes_unanimous(&self) -> bool {
        let mut choices = self.votes.values().map(|v| match v.vote.value {
            VoteValue::Accept { .. } => Some(v.vote.candidate),
            _ => None,
        });
        let first = choices.next().flatten();
        first.is_some() && choices.all(|c| c == first)
    }

    /// Returns the value's id.
    fn propose(
        &mut self,
        value: ProposalValue,
        valid_round: Option<Round>,
        ctx: &Ctx<'_>,
        out: &mut Vec<Output>,
    ) -> ValueId {
        let id = ValueId::of(&value);
        let bytes = wire::proposal_id_signing_bytes(value.session, self.round, valid_round, id);
        let signature = ctx.signer.sign(&bytes);
        self.values.entry(id).or_insert_with(|| value.clone());
        // L15: a re-proposal carries the q prevotes that made the value valid.
        let polka: Vec<RoundVote> = valid_round
            .filter(|_| ctx.protocol.mutation != Mutation::PolkaNotRelayed)
            .map(|vr| self.keeper.votes_for(vr, VoteKind::Prevote, Some(id)).cloned().collect())
            .unwrap_or_default();
        let proposal = Proposal { round: self.round, valid_round, value, proposer: ctx.me, signature, polka };
        self.proposals.insert(self.round, (proposal.clone(), id));
        out.push(Output::Broadcast(Message::Proposal(Box::new(proposal))));
        id
    }

    fn broadcast_round_vote(&mut self, kind: VoteKind, value: Option<ValueId>, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
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

    /// L22–L30.
    fn rule_prevote_on_proposal(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((p, id)) = self.proposals.get(&self.round) else { return false };
        let (valid_round, id) = (p.valid_round, *id);
        let no_locking = ctx.protocol.mutation == Mutation::NoLocking;
        let lock = if no_locking { None } else { self.locked };
        let prevote = match valid_round {
            None => {
                // L23
                self.is_valid(id, ctx) && lock.is_none_or(|(_, locked)| locked == id)
            }
            Some(vr) if vr < self.round => {
                // L26–L28: needs q prevotes for id(v) in round vr.
                if self.tally(VoteKind::Prevote, vr, Some(Some(id))) < self.committee.q {
                    return false;
                }
                self.is_valid(id, ctx) && lock.is_none_or(|(locked_round, locked)| locked_round <= vr || locked == id)
            }
            Some(_) => false,
        };
        self.broadcast_round_vote(VoteKind::Prevote, prevote.then_some(id), ctx, out); // L23–L24, L28–L29
        self.step = Step::Prevote; // L25, L30
        true
    }

    /// L34–L35.
    fn rule_prevote_timer(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote
            || self.prevote_timer_set.contains(&self.round)
            || self.tally(VoteKind::Prevote, self.round, None) < self.committee.q
        {
            return false;
        }
        self.prevote_timer_set.insert(self.round);
        let at = ctx.now.saturating_add(ctx.protocol.timeout(TimerKind::Prevote, self.round));
        self.schedule(TimerKind::Prevote, at, out);
        true
    }

    /// L36–L41.
    fn rule_lock_and_precommit(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote || self.locked_in.contains(&self.round) {
            return false;
        }
        let Some((_, id)) = self.proposals.get(&self.round) else { return false };
        let id = *id;
        if self.tally(VoteKind::Prevote, self.round, Some(Some(id))) < self.committee.q || !self.is_valid(id, ctx) {
            return false;
        }
        self.locked_in.insert(self.round);
        if self.step == Step::Prevote {
            self.locked = Some((self.round, id)); // L39
            self.broadcast_round_vote(VoteKind::Precommit, Some(id), ctx, out); // L40
            self.step = Step::Precommit;
        }
        self.valid = Some((self.round, id)); // L41
        true
    }

    /// L42–L43 (not in the paper): a polka of an earlier round than this one, learned late
    /// (a retransmission, a polka gossiped by a peer, L64–L65), becomes the valid value when it
    /// is newer than the one held. Locks do not change. Safe because `validValue` only decides
    /// what this agent proposes (L15), and every receiver checks that re-proposal against its
    /// own lock with the certificate (L26–L28); it lets an honest proposer re-propose the
    /// newest polka any honest agent holds, which every locked honest agent accepts.
    fn rule_late_polka(&mut self, ctx: &Ctx<'_>) -> bool {
        let from = self.valid.map_or(0, |(vr, _)| vr.saturating_add(1));
        let mut below = self.round;
        while from < below {
            let Some((round, id)) = self.proposals.range(from..below).next_back().map(|(r, (_, id))| (*r, *id)) else {
                return false;
            };
            below = round;
            if self.tally(VoteKind::Prevote, round, Some(Some(id))) >= self.committee.q && self.is_valid(id, ctx) {
                self.valid = Some((round, id)); // L43
                return true;
            }
        }
        false
    }

    /// L44–L45.
    fn rule_precommit_nil(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote || self.tally(VoteKind::Prevote, self.round, Some(None)) < self.committee.q {
            return false;
        }
        self.broadcast_round_vote(VoteKind::Precommit, None, ctx, out);
        self.step = Step::Precommit;
        true
    }

    /// L46–L47.
    fn rule_precommit_timer(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.precommit_timer_set.contains(&self.round)
            || self.tally(VoteKind::Precommit, self.round, None) < self.committee.q
        {
            return false;
        }
        self.precommit_timer_set.insert(self.round);
        let at = ctx.now.saturating_add(ctx.protocol.timeout(TimerKind::Precommit, self.round));
        self.schedule(TimerKind::Precommit, at, out);
        true
    }

    /// L48–L50, in any round.
    fn rule_decide(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        let mut next = Some(0);
        while let Some(from) = next {
            let Some((round, id)) = self.proposals.range(from..).next().map(|(r, (_, id))| (*r, *id)) else {
                return false;
            };
            next = round.checked_add(1);
            if self.tally(VoteKind::Precommit, round, Some(Some(id))) >= self.committee.q && self.is_valid(id, ctx) {
                let precommits: Vec<RoundVote> =
                    self.keeper.votes_for(round, VoteKind::Precommit, Some(id)).cloned().collect();
                let commit = self.proposals.get(&round).map(|(p, _)| Commit { proposal: p.clone(), precommits });
                self.decide(round, id, commit, ctx, out);
                return true;
            }
        }
        false
    }

    /// L54–L55.
    fn rule_skip_round(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        let above = self.round.saturating_add(1);
        let proposer = |r: Round| self.proposals.get(&r).map(|(p, _)| p.proposer);
        let from_votes =
            self.keeper.rounds_above(self.round).find(|r| self.keeper.senders(*r, proposer(*r)) >= self.committee.skip);
        // A round holding only a proposal has one sender: enough only when f + 1 = 1.
        let from_proposal =
            self.proposals.range(above..).next_back().map(|(r, _)| *r).filter(|_| self.committee.skip <= 1);
        let target = from_votes.max(from_proposal);
        match target {
            Some(r) => {
                self.start_round(r, ctx, out);
                true
            }
            None => false,
        }
    }

    /// V1–V8, cached per value (except a fallback refused only for being early).
    fn is_valid(&mut self, id: ValueId, ctx: &Ctx<'_>) -> bool {
        if let Some(v) = self.validity.get(&id) {
            return *v;
        }
        let Some(value) = self.values.get(&id) else { return false };
        let mut outcome = |mode| known_outcome(&mut self.outcomes, id, mode, value, ctx).0.clone();
        let (valid, cacheable) = validate(value, &self.committee, self.session, &self.votes, ctx, &mut outcome);
        if cacheable {
            self.validity.insert(id, valid);
        }
        valid
    }

    fn decide(&mut self, round: Round, id: ValueId, commit: Option<Commit>, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let Some(value) = self.values.get(&id) else { return };
        let registry_record = known_outcome(&mut self.outcomes, id, value.mode, value, ctx).1.clone();
        let record = DecisionRecord {
            session: self.session,
            round: Some(round),
            value: Some(id),
            outcome: value.outcome.clone(),
            mode: value.mode,
            votes: value.votes.clone(),
            spec: value.spec.clone(),
            at_ms: ctx.now,
        };
        out.push(Output::Decide(Box::new(record))); // L50
        if let Some(c) = &commit {
            // The client learns the decision from the certificate.
            out.push(Output::Send { to: ctx.protocol.client, message: Message::Commit(Box::new(c.clone())) });
        }
        self.decided = Some(Decided { at_ms: ctx.now, commit, registry_record });
    }

    /// The `local-timeout-fallback` mutation: decide alone, on this agent's own view.
    fn decide_locally(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let votes: Vec<_> = self.votes.values().map(|v| v.vote.clone()).collect();
        let outcome = match fallback_consensus(self.session, &votes) {
            Ok(r) => AgreedOutcome::Decided {
                chosen: r.chosen,
                method: r.method,
                agreement: r.agreement_rate,
                byzantine: r.byzantine,
            },
            Err(_) => return,
        };
        let Some(spec) = self.spec.clone() else { return };
        let record = DecisionRecord {
            session: self.session,
            round: None,
            value: None,
            outcome: outcome.clone(),
            mode: ProposalMode::Fallback,
            votes: Vec::new(),
            spec,
            at_ms: ctx.now,
        };
        let registry_record = SessionRecord { chosen: outcome.chosen(), ..SessionRecord::default() };
        out.push(Output::Decide(Box::new(record)));
        self.decided = Some(Decided { at_ms: ctx.now, commit: None, registry_record });
    }
}

/// V1–V8. Returns (valid, whether the answer may be cached).
fn validate(
    value: &ProposalValue,
    committee: &Committee,
    session: SessionId,
    verified: &BTreeMap<AgentId, SignedVote>,
    ctx: &Ctx<'_>,
    outcome: &mut dyn FnMut(ProposalMode) -> AgreedOutcome,
) -> (bool, bool) {
    let spec_ok = value.spec.spec.session == session
        && ctx.verifier.verify(ctx.protocol.client, &wire::spec_signing_bytes(&value.spec.spec), &value.spec.signature);
    // V2–V3: ≥ q votes from distinct committee members, ascending, session-bound, signed.
    let votes_ok = value.votes.len() >= committee.vote_q
        && value.votes.windows(2).all(|w| w[0].vote.agent < w[1].vote.agent)
        && value.votes.iter().all(|v| {
            // A vote identical to one received (and verified) directly needs no second check.
            v.vote.session == session
                && committee.contains(v.vote.agent)
                && (verified.get(&v.vote.agent) == Some(v)
                    || ctx.verify(v.vote.agent, &wire::vote_signing_bytes(&v.vote), &v.signature))
        });
    if value.session != session || !spec_ok || !votes_ok {
        return (false, true);
    }
    let normal = outcome(ProposalMode::Normal);
    match value.mode {
        ProposalMode::Normal => (normal == value.outcome, true), // V4–V5
        ProposalMode::Fallback => {
            // V6–V8: only with the policy on, past the deadline, and when the engine does not decide.
            if ctx.engine.fallback != FallbackPolicy::SimpleMajority || matches!(normal, AgreedOutcome::Decided { .. })
            {
                return (false, true);
            }
            if ctx.now < value.spec.spec.opened_ms.saturating_add(ctx.engine.deadline_ms) {
                return (false, false);
            }
            (outcome(ProposalMode::Fallback) == value.outcome, true)
        }
    }
}

/// [`outcome_of`] of value `id` (`value`) under `mode`, from `memo` or computed once into it.
fn known_outcome<'m>(
    memo: &'m mut BTreeMap<(ValueId, ProposalMode), (AgreedOutcome, SessionRecord)>,
    id: ValueId,
    mode: ProposalMode,
    value: &ProposalValue,
    ctx: &Ctx<'_>,
) -> &'m (AgreedOutcome, SessionRecord) {
    memo.entry((id, mode)).or_insert_with(|| outcome_of(mode, &value.spec, &value.votes, ctx))
}

/// `outcome(mode, votes)` of docs/protocol.md V5–V6, with what the registry learns from it.
fn outcome_of(
    mode: ProposalMode,
    spec: &SignedSpec,
    votes: &[SignedVote],
    ctx: &Ctx<'_>,
) -> (AgreedOutcome, SessionRecord) {
    recompute(mode, spec, votes, ctx.registry, ctx.engine)
}

/// `outcome(mode, votes)` of docs/protocol.md V5–V6 against an explicit registry epoch, with
/// what the registry learns from it. The simulator's oracle calls it to re-check decisions.
pub fn recompute(
    mode: ProposalMode,
    spec: &SignedSpec,
    votes: &[SignedVote],
    registry: &Registry,
    engine: &EngineConfig,
) -> (AgreedOutcome, SessionRecord) {
    let plain = votes.iter().map(|v| &v.vote);
    let aggregation = aggregate_borrowed(spec.spec.session, &spec.spec.candidates, plain, registry, engine);
    let mut record = aggregation.record;
    let outcome = match mode {
        ProposalMode::Normal => match aggregation.outcome {
            Ok(Decision::Decided(r)) => AgreedOutcome::Decided {
                chosen: r.chosen,
                method: r.method,
                agreement: r.agreement_rate,
                byzantine: r.byzantine,
            },
            Ok(Decision::Escalated(e)) => AgreedOutcome::Escalated { action: e.action, byzantine: e.byzantine },
            Err(ConsensusError::InsufficientAgreement { achieved, .. }) => AgreedOutcome::NoDecision { achieved },
            Err(_) => AgreedOutcome::NoDecision { achieved: crate::Ppm::ZERO },
        },
        ProposalMode::Fallback => {
            match fallback_consensus(spec.spec.session, &votes.iter().map(|v| v.vote.clone()).collect::<Vec<_>>()) {
                Ok(r) => AgreedOutcome::Decided {
                    chosen: r.chosen,
                    method: r.method,
                    agreement: r.agreement_rate,
                    byzantine: r.byzantine,
                },
                Err(ConsensusError::NoMajority { largest_group, .. }) => {
                    AgreedOutcome::NoDecision { achieved: largest_group }
                }
                Err(_) => AgreedOutcome::NoDecision { achieved: crate::Ppm::ZERO },
            }
        }
    };
    record.chosen = outcome.chosen();
    (outcome, record)
}
