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
    /// `f + 1`: the round-skip threshold (L49).
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

/// A decided session: what was reported and the certificate that proves it.
#[derive(Clone, Debug)]
pub(crate) struct Decided {
    pub record: DecisionRecord,
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
    /// The proposal of each round from its proposer, with its value id (hashed once).
    proposals: BTreeMap<Round, (Proposal, ValueId)>,
    prevotes: BTreeMap<Round, BTreeMap<AgentId, RoundVote>>,
    precommits: BTreeMap<Round, BTreeMap<AgentId, RoundVote>>,
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
    /// `duplicate-votes-counted` only: copies of round votes already held, counted again.
    duplicates: BTreeMap<(VoteKind, Round), Vec<RoundVote>>,
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
            proposals: BTreeMap::new(),
            prevotes: BTreeMap::new(),
            precommits: BTreeMap::new(),
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
            duplicates: BTreeMap::new(),
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

    /// Verifies and stores a prevote or precommit (L31–L44 inputs).
    pub fn on_round_vote(&mut self, from: AgentId, v: RoundVote, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if v.session != self.session {
            out.push(Output::Reject { from, reason: Rejection::WrongSession });
            return;
        }
        if !self.committee.contains(v.agent) {
            out.push(Output::Reject { from, reason: Rejection::NotInCommittee });
            return;
        }
        let bytes = wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value);
        if !ctx.verify(v.agent, &bytes, &v.signature) {
            out.push(Output::Reject { from, reason: Rejection::BadSignature });
            return;
        }
        if v.round < self.round {
            self.answer_lagging_round(from, v.round, ctx, out);
        }
        let book = match v.kind {
            VoteKind::Prevote => &mut self.prevotes,
            VoteKind::Precommit => &mut self.precommits,
        };
        let round = book.entry(v.round).or_default();
        match round.get(&v.agent) {
            Some(first) if *first != v => {
                let evidence = Evidence::ConflictingRoundVotes { first: Box::new(first.clone()), second: Box::new(v) };
                out.push(Output::Evidence(Box::new(evidence)));
            }
            Some(_) if ctx.protocol.mutation == Mutation::DuplicateVotesCounted => {
                // The mutation: a copy of a held vote is tallied again.
                self.duplicates.entry((v.kind, v.round)).or_default().push(v);
                self.progress(ctx, out);
            }
            Some(_) => {}
            None => {
                round.insert(v.agent, v);
                self.progress(ctx, out);
            }
        }
    }

    /// L61–L62. A peer is still in an earlier round (its retransmissions say so) and this agent has moved
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
        for book in [&self.prevotes, &self.precommits] {
            if let Some(v) = book.get(&round).and_then(|r| r.get(&ctx.me)) {
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
        let bytes = wire::proposal_signing_bytes(&p.value, p.round, p.valid_round);
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
        let spec = p.value.spec.clone();
        let id = ValueId::of(&p.value);
        self.values.entry(id).or_insert_with(|| p.value.clone());
        self.absorb_polka(from, &p, id, ctx, out);
        self.cross_check_votes(&p.value.votes, ctx, out);
        self.proposals.insert(p.round, (p, id));
        if self.spec.is_none() && self.spec_authentic(&spec, ctx) {
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

    /// L26–L27: stores the verified prevotes of a proposal's polka certificate as if received.
    fn absorb_polka(&mut self, from: AgentId, p: &Proposal, id: ValueId, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let Some(vr) = p.valid_round else { return };
        for v in &p.polka {
            let bytes = wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value);
            let genuine = v.kind == VoteKind::Prevote
                && v.session == self.session
                && v.round == vr
                && v.value == Some(id)
                && self.committee.contains(v.agent)
                && ctx.verify(v.agent, &bytes, &v.signature);
            if !genuine {
                out.push(Output::Reject { from, reason: Rejection::BadSignature });
                continue;
            }
            let held = self.prevotes.entry(vr).or_default();
            if ctx.protocol.mutation == Mutation::DuplicateVotesCounted && held.get(&v.agent) == Some(v) {
                // The mutation: a certificate's copy of a prevote already received is tallied again.
                self.duplicates.entry((VoteKind::Prevote, vr)).or_default().push(v.clone());
                continue;
            }
            held.entry(v.agent).or_insert_with(|| v.clone());
        }
    }

    fn spec_authentic(&self, spec: &SignedSpec, ctx: &Ctx<'_>) -> bool {
        spec.spec.session == self.session
            && ctx.verifier.verify(ctx.protocol.client, &wire::spec_signing_bytes(&spec.spec), &spec.signature)
    }

    /// L47–L48: a decision certificate.
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
        let spec = c.proposal.value.spec.clone();
        if self.spec.is_none() && self.spec_authentic(&spec, ctx) {
            self.learn_spec(spec, ctx, out);
        }
        self.values.entry(id).or_insert_with(|| c.proposal.value.clone());
        if !self.is_valid(id, ctx) {
            out.push(Output::Reject { from, reason: Rejection::InvalidCommit });
            return;
        }
        let r = round.unwrap_or(c.proposal.round);
        self.decide(r, id, Some(c), ctx, out); // L48
    }

    /// The certificate of a decided session, if held.
    pub fn commit(&self) -> Option<&Commit> {
        self.decided.as_ref().and_then(|d| d.commit.as_ref())
    }

    /// L67–L68. After a restart: timers are gone, so re-arm retransmission and the round's timeout.
    pub fn recover(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.decided.is_some() || !self.started {
            return;
        }
        if self.own_vote.is_none() && self.evaluation_requested {
            // The evaluation in flight was lost with the crash: ask again.
            if let Some(spec) = &self.spec {
                out.push(Output::Evaluate(spec.spec.clone()));
            }
        }
        self.schedule(TimerKind::Retransmit, ctx.now, out);
        let at = ctx.now.saturating_add(ctx.protocol.timeout(TimerKind::Propose, self.round));
        self.schedule(TimerKind::Propose, at, out);
        self.schedule(TimerKind::Precommit, at, out);
    }

    /// L59–L60: after deciding, answer a lagging agent with the certificate.
    pub fn help_lagging(&mut self, from: AgentId, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let Some(decided) = &self.decided else { return };
        let Some(commit) = decided.commit.clone() else { return };
        // Messages right after the decision come from peers deciding at the same moment.
        let settled = ctx.now >= decided.record.at_ms.saturating_add(ctx.protocol.retransmit_ms);
        // The client re-sends `Open` until it has heard of the decision: answer it too.
        let known = self.committee.contains(from) || from == ctx.protocol.client;
        if from == ctx.me || !known || !settled {
            return;
        }
        let last = self.commit_sent_at.get(&from).copied();
        if last.is_some_and(|t| ctx.now < t.saturating_add(ctx.protocol.retransmit_ms)) {
            return;
        }
        self.commit_sent_at.insert(from, ctx.now);
        out.push(Output::Send { to: from, message: Message::Commit(Box::new(commit)) });
    }

    /// L51–L58 and the deadline.
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
                self.broadcast_round_vote(VoteKind::Prevote, None, ctx, out); // L52
                self.step = Step::Prevote;
            }
            TimerKind::Prevote if timer.round == self.round && self.step == Step::Prevote => {
                self.broadcast_round_vote(VoteKind::Precommit, None, ctx, out); // L54
                self.step = Step::Precommit;
            }
            TimerKind::Precommit if timer.round == self.round => {
                self.start_round(self.round.saturating_add(1), ctx, out); // L56
            }
            TimerKind::Retransmit => {
                if self.started {
                    self.retransmit(ctx, out); // L57–L58
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

    /// L63–L64. Peers talk about a session whose `Open` (and every proposal) this agent lost: ask one
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

    /// L57–L58: re-send this agent's own messages of the current round.
    fn retransmit(&self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if let Some(v) = &self.own_vote {
            out.push(Output::Broadcast(Message::Vote(v.clone())));
        }
        if let Some((p, _)) = self.proposals.get(&self.round).filter(|(p, _)| p.proposer == ctx.me) {
            out.push(Output::Broadcast(Message::Proposal(Box::new(p.clone()))));
        }
        for book in [&self.prevotes, &self.precommits] {
            if let Some(v) = book.get(&self.round).and_then(|r| r.get(&ctx.me)) {
                out.push(Output::Broadcast(Message::RoundVote(v.clone())));
            }
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
        let (normal, _) = outcome_of(ProposalMode::Normal, &spec, &votes, ctx);
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
        let outcome = if mode == ProposalMode::Normal { normal } else { outcome_of(mode, &spec, &votes, ctx).0 };
        let value = ProposalValue { session: self.session, spec, mode, votes, outcome };
        self.propose(value, None, ctx, out); // L20
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

    fn propose(&mut self, value: ProposalValue, valid_round: Option<Round>, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let signature = ctx.signer.sign(&wire::proposal_signing_bytes(&value, self.round, valid_round));
        let id = ValueId::of(&value);
        self.values.entry(id).or_insert_with(|| value.clone());
        // L15: a re-proposal carries the q prevotes that made the value valid.
        let polka: Vec<RoundVote> = valid_round
            .filter(|_| ctx.protocol.mutation != Mutation::PolkaNotRelayed)
            .and_then(|vr| self.prevotes.get(&vr))
            .map(|r| r.values().filter(|v| v.value == Some(id)).cloned().collect())
            .unwrap_or_default();
        let proposal = Proposal { round: self.round, valid_round, value, proposer: ctx.me, signature, polka };
        self.proposals.insert(self.round, (proposal.clone(), id));
        out.push(Output::Broadcast(Message::Proposal(Box::new(proposal))));
    }

    fn broadcast_round_vote(&mut self, kind: VoteKind, value: Option<ValueId>, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let signature = ctx.signer.sign(&wire::round_vote_signing_bytes(kind, self.session, self.round, value));
        let v = RoundVote { kind, session: self.session, round: self.round, value, agent: ctx.me, signature };
        let book = match kind {
            VoteKind::Prevote => &mut self.prevotes,
            VoteKind::Precommit => &mut self.precommits,
        };
        book.entry(self.round).or_default().insert(ctx.me, v.clone());
        out.push(Output::Broadcast(Message::RoundVote(v)));
    }

    fn count(
        book: &BTreeMap<Round, BTreeMap<AgentId, RoundVote>>,
        round: Round,
        value: Option<Option<ValueId>>,
    ) -> usize {
        book.get(&round).map_or(0, |r| r.values().filter(|v| value.is_none_or(|x| v.value == x)).count())
    }

    /// The prevotes or precommits of `round` for `value` (`None`: any value), by distinct
    /// signer; under `duplicate-votes-counted`, plus every copy counted again.
    fn tally(&self, kind: VoteKind, round: Round, value: Option<Option<ValueId>>) -> usize {
        let book = match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        };
        let copies = self
            .duplicates
            .get(&(kind, round))
            .map_or(0, |c| c.iter().filter(|v| value.is_none_or(|x| v.value == x)).count());
        Self::count(book, round, value).saturating_add(copies)
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

    /// L31–L32.
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

    /// L33–L38.
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
            self.locked = Some((self.round, id)); // L36
            self.broadcast_round_vote(VoteKind::Precommit, Some(id), ctx, out); // L37
            self.step = Step::Precommit;
        }
        self.valid = Some((self.round, id)); // L38
        true
    }

    /// L39–L40.
    fn rule_precommit_nil(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote || self.tally(VoteKind::Prevote, self.round, Some(None)) < self.committee.q {
            return false;
        }
        self.broadcast_round_vote(VoteKind::Precommit, None, ctx, out);
        self.step = Step::Precommit;
        true
    }

    /// L41–L42.
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

    /// L43–L45, in any round.
    fn rule_decide(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        let candidates: Vec<(Round, ValueId)> = self.proposals.iter().map(|(r, (_, id))| (*r, *id)).collect();
        for (round, id) in candidates {
            if self.tally(VoteKind::Precommit, round, Some(Some(id))) >= self.committee.q && self.is_valid(id, ctx) {
                let precommits: Vec<RoundVote> = self
                    .precommits
                    .get(&round)
                    .map(|r| r.values().filter(|v| v.value == Some(id)).cloned().collect())
                    .unwrap_or_default();
                let commit = self.proposals.get(&round).map(|(p, _)| Commit { proposal: p.clone(), precommits });
                self.decide(round, id, commit, ctx, out);
                return true;
            }
        }
        false
    }

    /// L49–L50.
    fn rule_skip_round(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        let mut senders: BTreeMap<Round, BTreeSet<AgentId>> = BTreeMap::new();
        for book in [&self.prevotes, &self.precommits] {
            for (r, votes) in book.range(self.round.saturating_add(1)..) {
                senders.entry(*r).or_default().extend(votes.keys().copied());
            }
        }
        for (r, p) in self.proposals.range(self.round.saturating_add(1)..) {
            senders.entry(*r).or_default().insert(p.0.proposer);
        }
        let target = senders.iter().rev().find(|(_, s)| s.len() >= self.committee.skip).map(|(r, _)| *r);
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
        let (valid, cacheable) = validate(value, &self.committee, self.session, &self.votes, ctx);
        if cacheable {
            self.validity.insert(id, valid);
        }
        valid
    }

    fn decide(&mut self, round: Round, id: ValueId, commit: Option<Commit>, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let Some(value) = self.values.get(&id).cloned() else { return };
        let (_, registry_record) = outcome_of(value.mode, &value.spec, &value.votes, ctx);
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
        out.push(Output::Decide(Box::new(record.clone()))); // L45
        if let Some(c) = &commit {
            // The client learns the decision from the certificate.
            out.push(Output::Send { to: ctx.protocol.client, message: Message::Commit(Box::new(c.clone())) });
        }
        self.decided = Some(Decided { record, commit, registry_record });
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
        out.push(Output::Decide(Box::new(record.clone())));
        self.decided = Some(Decided { record, commit: None, registry_record });
    }
}

/// V1–V8. Returns (valid, whether the answer may be cached).
fn validate(
    value: &ProposalValue,
    committee: &Committee,
    session: SessionId,
    verified: &BTreeMap<AgentId, SignedVote>,
    ctx: &Ctx<'_>,
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
    let (normal, _) = outcome_of(ProposalMode::Normal, &value.spec, &value.votes, ctx);
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
            let (fallback, _) = outcome_of(ProposalMode::Fallback, &value.spec, &value.votes, ctx);
            (fallback == value.outcome, true)
        }
    }
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
