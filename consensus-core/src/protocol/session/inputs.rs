//! The inputs a session takes: the session spec (L1–L4), this agent's own vote (L5–L6), votes
//! (L7–L9), round votes into the vote keeper (L31–L33), proposals with their polka
//! certificates (L22–L30 inputs, L26–L27) and commit certificates (L52–L53). Each verifies
//! what it is given, stores it, and runs the rule loop.

use std::collections::BTreeSet;

use crate::types::{AgentId, AgentVote};
use crate::wire;

use super::super::coverage::Point;
use super::super::messages::{Commit, Message, Proposal, RoundVote, SignedSpec, SignedVote, ValueId, VoteKind};
use super::super::votekeeper::Added;
use super::super::{Evidence, Mutation, Output, Rejection, TimerKind};
use super::{Ctx, SessionMachine};

impl SessionMachine {
    /// L1–L4: the session is known (from Open or from a proposal's signed spec).
    pub fn learn_spec(&mut self, spec: SignedSpec, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.spec.is_some() || spec.spec.session != self.session {
            return;
        }
        let opened = spec.spec.opened_ms;
        self.spec = Some(spec.clone());
        ctx.cover(Point::L1);
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

    /// L5–L6: this agent's own vote, signed and broadcast.
    pub fn local_vote(&mut self, vote: AgentVote, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        if self.own_vote.is_some() || vote.session != self.session || vote.agent != ctx.me {
            return;
        }
        let signature = ctx.signer.sign(&wire::vote_signing_bytes(&vote));
        let signed = SignedVote { vote, signature };
        self.own_vote = Some(signed.clone());
        self.votes.insert(ctx.me, signed.clone());
        ctx.cover(Point::L5);
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
                ctx.cover(Point::L9);
                let evidence = Evidence::ConflictingVotes { first: Box::new(first.clone()), second: Box::new(vote) };
                out.push(Output::Evidence(Box::new(evidence)));
            }
            Some(_) => {}
            None => {
                ctx.cover(Point::L8);
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
            ctx.cover(Point::L33);
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
            ctx.cover(Point::L31FutureBound);
            return false;
        }
        let copies = ctx.protocol.mutation == Mutation::DuplicateVotesCounted;
        let (evidence, counted) = match self.keeper.add(v, certified, copies) {
            Added::New => {
                ctx.cover(Point::L31);
                return true;
            }
            // The mutation: a copy of a held vote is tallied again.
            Added::Duplicate => {
                ctx.cover(Point::L33);
                return copies;
            }
            Added::Equivocation { first, second } => {
                ctx.cover(Point::L32);
                let evidence = Evidence::ConflictingRoundVotes {
                    first: Box::new(first.clone()),
                    second: Box::new(second.clone()),
                };
                (evidence, true)
            }
            Added::OverBound { first, refused } => {
                ctx.cover(Point::L32Bound);
                (Evidence::ConflictingRoundVotes { first: Box::new(first.clone()), second: Box::new(refused) }, false)
            }
        };
        out.push(Output::Evidence(Box::new(evidence)));
        counted
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
        if let Some((first, first_id)) = self.proposals.get(&p.round) {
            if (first.valid_round, *first_id) != (p.valid_round, id) {
                ctx.cover(Point::L22Conflicting);
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
                ctx.cover(Point::L9);
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
            // The first condition the prevote fails, in checking order.
            let fault = if v.kind != VoteKind::Prevote {
                Some(Point::PolkaCertKind)
            } else if v.session != self.session {
                Some(Point::PolkaCertSession)
            } else if v.round != vr {
                Some(Point::PolkaCertRound)
            } else if v.value != Some(id) {
                Some(Point::PolkaCertValue)
            } else if !self.committee.contains(v.agent) {
                Some(Point::PolkaCertNotMember)
            } else if !(self.keeper.holds(v)
                || ctx.verify(
                    v.agent,
                    &wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value),
                    &v.signature,
                ))
            {
                Some(Point::PolkaCertBadSignature)
            } else {
                None
            };
            *ok = fault.is_none();
            match fault {
                // A signer twice counts once.
                None if !signers.insert(v.agent) => ctx.cover(Point::PolkaCertDuplicateSigner),
                None => {}
                Some(point) => {
                    ctx.cover(point);
                    out.push(Output::Reject { from, reason: Rejection::BadSignature });
                }
            }
        }
        let certified = signers.len() >= self.committee.q;
        ctx.cover(if certified { Point::PolkaCertOk } else { Point::PolkaCertTooFew });
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
        // The first condition a precommit fails, in checking order; then the count.
        let fault = c.precommits.iter().find_map(|p| {
            if p.kind != VoteKind::Precommit {
                Some(Point::CommitCertKind)
            } else if p.session != self.session {
                Some(Point::CommitCertSession)
            } else if Some(p.round) != round {
                Some(Point::CommitCertRound)
            } else if p.value != Some(id) {
                Some(Point::CommitCertValue)
            } else if !self.committee.contains(p.agent) {
                Some(Point::CommitCertNotMember)
            } else if !signers.insert(p.agent) {
                Some(Point::CommitCertDuplicateSigner)
            } else if !ctx.verify(
                p.agent,
                &wire::round_vote_signing_bytes(p.kind, p.session, p.round, p.value),
                &p.signature,
            ) {
                Some(Point::CommitCertBadSignature)
            } else {
                None
            }
        });
        let fault = fault.or((signers.len() < self.committee.q).then_some(Point::CommitCertTooFew));
        if let Some(point) = fault {
            ctx.cover(point);
            out.push(Output::Reject { from, reason: Rejection::InvalidCommit });
            return;
        }
        if self.spec.is_none() && self.spec_authentic(&c.proposal.value.spec, ctx) {
            self.learn_spec(c.proposal.value.spec.clone(), ctx, out);
            // Learning the spec replays what waited for it, which may itself decide (L48 or an
            // earlier certificate): decide once (L52 requires decision_p unset). Found by
            // explore once peers answered Sync from their archives (L78) with certificates of
            // sessions whose spec the agent had not seen.
            if self.decided.is_some() {
                return;
            }
        }
        self.values.entry(id).or_insert_with(|| c.proposal.value.clone());
        if !self.is_valid(id, ctx) {
            ctx.cover(Point::CommitCertInvalidValue);
            out.push(Output::Reject { from, reason: Rejection::InvalidCommit });
            return;
        }
        ctx.cover(Point::CommitCertOk);
        let r = round.unwrap_or(c.proposal.round);
        self.decide(r, id, Some(c), ctx, out); // L53
        ctx.cover(Point::L53);
    }
}
