//! TryPropose, docs/protocol.md L14–L21: the proposer's re-proposal of its valid value with its
//! polka certificate (L15) or a fresh value from the votes it holds (L16–L20).

use crate::config::FallbackPolicy;
use crate::types::{ConsensusMethod, VoteValue};
use crate::wire;

use super::super::coverage::Point;
use super::super::messages::{
    AgreedOutcome, Message, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SignedVote, ValueId, VoteKind,
};
use super::super::{Mutation, Output};
use super::validity::outcome_of;
use super::{Ctx, SessionMachine, Step};

impl SessionMachine {
    /// L14–L21.
    pub(super) fn try_propose(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
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
                ctx.cover(Point::L15);
            }
            return;
        }
        let Some(spec) = self.spec.clone() else { return };
        let have = self.votes.len();
        let all_in = have >= self.committee.members.len();
        // L16–L17: every vote, or a quorum once vote collection is over or when it is unanimous.
        if !all_in && (have < self.committee.vote_q || !(self.vote_collection_done || self.votes_unanimous())) {
            ctx.cover(Point::L21);
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
            ctx.cover(Point::L16b);
            return; // L21
        }
        let fallback_on = ctx.engine.fallback == FallbackPolicy::SimpleMajority;
        let mode = match (&normal, fallback_on, past_deadline) {
            (AgreedOutcome::Decided { .. }, _, _) | (_, false, _) => ProposalMode::Normal,
            (_, true, true) => ProposalMode::Fallback, // L18–L19
            // With a fallback configured, wait for the deadline rather than agree on no decision.
            (AgreedOutcome::NoDecision { .. }, true, false) => {
                ctx.cover(Point::L18Wait);
                return;
            }
            (_, true, false) => ProposalMode::Normal,
        };
        let fallback = (mode == ProposalMode::Fallback).then(|| outcome_of(mode, &spec, &votes, ctx));
        let outcome = fallback.as_ref().map_or_else(|| normal.clone(), |(o, _)| o.clone());
        let value = ProposalValue { session: self.session, spec, mode, votes, outcome };
        // L20; keep the outcomes every agent's validation and decision compute for this value.
        let id = self.propose(value, None, ctx, out);
        self.cover_fresh_proposal(all_in, by_threshold, mode, ctx);
        self.outcomes.entry((id, ProposalMode::Normal)).or_insert((normal, normal_record));
        if let Some(fallback) = fallback {
            self.outcomes.entry((id, ProposalMode::Fallback)).or_insert(fallback);
        }
    }

    /// Coverage of a fresh proposal: which of L16–L18 made it.
    fn cover_fresh_proposal(&self, all_in: bool, by_threshold: bool, mode: ProposalMode, ctx: &Ctx<'_>) {
        ctx.cover(match (all_in, self.vote_collection_done) {
            (true, _) => Point::L16,
            (false, true) => Point::L16Quorum,
            (false, false) => Point::L17,
        });
        if !all_in && !by_threshold {
            ctx.cover(Point::L16c); // votes missing, no threshold decision: only at the deadline
        }
        if mode == ProposalMode::Fallback {
            ctx.cover(Point::L18);
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
}
