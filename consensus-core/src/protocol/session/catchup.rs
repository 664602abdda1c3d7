//! Catch-up, docs/protocol.md L62–L75: what the paper's reliable gossip gave for free and lossy
//! links do not. Retransmission and polka gossip (L62–L65), help for peers that lag behind
//! (L66–L69), asking for a session whose spec never arrived (L70–L71), and recovery after a
//! crash (L74–L75). None of it can make an agent decide.

use crate::types::AgentId;

use super::super::coverage::Point;
use super::super::messages::{Message, Round, VoteKind};
use super::super::{Mutation, Output, TimerKind};
use super::{Ctx, SessionMachine, Step};

impl SessionMachine {
    /// L68–L69. A peer is still in an earlier round (its retransmissions say so) and this agent has moved
    /// on, so it no longer re-sends that round's messages: send it ours, at most once per
    /// retransmit interval. Without this, a peer that lost our precommit of round r can wait
    /// for it forever (Tendermint assumes every message is eventually delivered).
    pub(super) fn answer_lagging_round(&mut self, from: AgentId, round: Round, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
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
                ctx.cover(Point::L69);
            }
        }
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
        ctx.cover(Point::L75);
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
        ctx.cover(Point::L67);
    }

    /// L70–L71. Peers talk about a session whose `Open` (and every proposal) this agent lost: ask one
    /// peer per interval, in turn, for its certificate (answered if it decided).
    pub(super) fn ask_for_session(&self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        let others: Vec<AgentId> = self.committee.members.iter().copied().filter(|a| *a != ctx.me).collect();
        if others.is_empty() {
            return;
        }
        let turn = ctx.now / ctx.protocol.retransmit_ms.max(1);
        let peer = others[usize::try_from(turn % others.len() as u64).unwrap_or(0)];
        out.push(Output::Send { to: peer, message: Message::Sync { next: self.session } });
        ctx.cover(Point::L71);
    }

    /// L62–L65: re-send this agent's own messages of the current round and, once the round
    /// has moved past its valid round, the polka of that round with its proposal.
    pub(super) fn retransmit(&self, ctx: &Ctx<'_>, out: &mut Vec<Output>) {
        ctx.cover(Point::L63);
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
        ctx.cover(Point::L65);
        for v in self.keeper.votes_for(vr, VoteKind::Prevote, Some(id)).take(self.committee.q) {
            out.push(Output::Broadcast(Message::RoundVote(v.clone())));
        }
    }
}
