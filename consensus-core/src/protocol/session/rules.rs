//! The "upon" rules of docs/protocol.md L22–L61: each returns whether it fired, and
//! [`SessionMachine::progress`] runs them until none does; the timeouts (L56–L61) and the
//! decision itself (L48–L50).

use crate::policies::fallback_consensus;
use crate::registry::SessionRecord;

use super::super::coverage::Point;
use super::super::messages::{AgreedOutcome, Commit, Message, ProposalMode, Round, RoundVote, ValueId, VoteKind};
use super::super::{DecisionRecord, Mutation, Output, Timer, TimerKind};
use super::validity::known_outcome;
use super::{Ctx, Decided, SessionMachine, Step};

impl SessionMachine {
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
                self.advance_step(Step::Prevote);
                ctx.cover(Point::L57);
                self.cover_state(VoteKind::Prevote, ctx);
            }
            TimerKind::Prevote if timer.round == self.round && self.step == Step::Prevote => {
                self.broadcast_round_vote(VoteKind::Precommit, None, ctx, out); // L59
                self.advance_step(Step::Precommit);
                ctx.cover(Point::L59);
                self.cover_state(VoteKind::Precommit, ctx);
            }
            TimerKind::Precommit if timer.round == self.round => {
                ctx.cover(Point::L61);
                // The last round has no next one: starting it again would reset the step and let
                // this agent sign a second prevote and precommit in the same round (found by
                // explore: Byzantine round votes pushed agents to round u32::MAX; regression
                // scenarios/regressions/last-round-restarted.toml). The agent stays there; it
                // can still decide from precommits (L49) and catch up (L76).
                if let Some(next) = self.round.checked_add(1) {
                    self.start_round(next, ctx, out); // L61
                }
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

    /// L22–L30.
    pub(super) fn rule_prevote_on_proposal(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((p, id)) = self.proposals.get(&self.round) else { return false };
        let (valid_round, id) = (p.valid_round, *id);
        let no_locking = ctx.protocol.mutation == Mutation::NoLocking;
        let lock = if no_locking { None } else { self.locked };
        let (prevote, point) = match valid_round {
            None => {
                // L23
                let prevote = self.is_valid(id, ctx) && lock.is_none_or(|(_, locked)| locked == id);
                (prevote, Point::check(prevote, Point::L23, Point::L24))
            }
            Some(vr) if vr < self.round => {
                // L26–L28: needs q prevotes for id(v) in round vr.
                if self.tally(VoteKind::Prevote, vr, Some(Some(id))) < self.committee.q {
                    ctx.cover(Point::L26Wait);
                    return false;
                }
                let prevote = self.is_valid(id, ctx)
                    && lock.is_none_or(|(locked_round, locked)| locked_round <= vr || locked == id);
                (prevote, Point::check(prevote, Point::L28, Point::L29))
            }
            Some(_) => (false, Point::L27NotBelow),
        };
        self.broadcast_round_vote(VoteKind::Prevote, prevote.then_some(id), ctx, out); // L23–L24, L28–L29
        self.advance_step(Step::Prevote); // L25, L30
        ctx.cover(point);
        self.cover_state(VoteKind::Prevote, ctx);
        true
    }

    /// L34–L35.
    pub(super) fn rule_prevote_timer(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote
            || self.prevote_timer_set.contains(&self.round)
            || self.tally(VoteKind::Prevote, self.round, None) < self.committee.q
        {
            return false;
        }
        self.prevote_timer_set.insert(self.round);
        let at = ctx.now.saturating_add(ctx.protocol.timeout(TimerKind::Prevote, self.round));
        self.schedule(TimerKind::Prevote, at, out);
        ctx.cover(Point::L35);
        true
    }

    /// L36–L41.
    pub(super) fn rule_lock_and_precommit(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote || self.locked_in.contains(&self.round) {
            return false;
        }
        let Some((_, id)) = self.proposals.get(&self.round) else { return false };
        let id = *id;
        if self.tally(VoteKind::Prevote, self.round, Some(Some(id))) < self.committee.q || !self.is_valid(id, ctx) {
            return false;
        }
        self.locked_in.insert(self.round);
        let precommit = self.step == Step::Prevote;
        if precommit {
            // The lock round only grows: one lock per round (`locked_in`), rounds only grow.
            debug_assert!(
                self.locked.is_none_or(|(r, _)| r < self.round),
                "lock round {:?} -> {}",
                self.locked,
                self.round
            );
            self.locked = Some((self.round, id)); // L39
            self.broadcast_round_vote(VoteKind::Precommit, Some(id), ctx, out); // L40
            self.advance_step(Step::Precommit);
        }
        debug_assert!(self.valid.is_none_or(|(r, _)| r < self.round), "valid round {:?} -> {}", self.valid, self.round);
        self.valid = Some((self.round, id)); // L41
        if precommit {
            ctx.cover(Point::L39);
            self.cover_state(VoteKind::Precommit, ctx);
        } else {
            ctx.cover(Point::L41);
        }
        true
    }

    /// L42–L43 (not in the paper): a polka of an earlier round than this one, learned late
    /// (a retransmission, a polka gossiped by a peer, L64–L65), becomes the valid value when it
    /// is newer than the one held. Locks do not change. Safe because `validValue` only decides
    /// what this agent proposes (L15), and every receiver checks that re-proposal against its
    /// own lock with the certificate (L26–L28); it lets an honest proposer re-propose the
    /// newest polka any honest agent holds, which every locked honest agent accepts.
    pub(super) fn rule_late_polka(&mut self, ctx: &Ctx<'_>) -> bool {
        let from = self.valid.map_or(0, |(vr, _)| vr.saturating_add(1));
        let mut below = self.round;
        while from < below {
            let Some((round, id)) = self.proposals.range(from..below).next_back().map(|(r, (_, id))| (*r, *id)) else {
                return false;
            };
            below = round;
            if self.tally(VoteKind::Prevote, round, Some(Some(id))) >= self.committee.q && self.is_valid(id, ctx) {
                // Only a newer polka of an earlier round (`from` ≤ round < `self.round`).
                debug_assert!(self.valid.is_none_or(|(r, _)| r < round) && round < self.round);
                self.valid = Some((round, id)); // L43
                ctx.cover(Point::L43);
                return true;
            }
        }
        false
    }

    /// L44–L45.
    pub(super) fn rule_precommit_nil(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote || self.tally(VoteKind::Prevote, self.round, Some(None)) < self.committee.q {
            return false;
        }
        self.broadcast_round_vote(VoteKind::Precommit, None, ctx, out); // L45
        self.advance_step(Step::Precommit);
        ctx.cover(Point::L45);
        self.cover_state(VoteKind::Precommit, ctx);
        true
    }

    /// L46–L47.
    pub(super) fn rule_precommit_timer(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        if self.precommit_timer_set.contains(&self.round)
            || self.tally(VoteKind::Precommit, self.round, None) < self.committee.q
        {
            return false;
        }
        self.precommit_timer_set.insert(self.round);
        let at = ctx.now.saturating_add(ctx.protocol.timeout(TimerKind::Precommit, self.round));
        self.schedule(TimerKind::Precommit, at, out);
        ctx.cover(Point::L47);
        true
    }

    /// L48–L50, in any round.
    pub(super) fn rule_decide(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
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
                ctx.cover(Point::L50);
                return true;
            }
        }
        false
    }

    /// L54–L55.
    pub(super) fn rule_skip_round(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Output>) -> bool {
        // No round is above the last one (a saturated `round + 1` would start it again).
        let Some(above) = self.round.checked_add(1) else {
            return false;
        };
        let proposer = |r: Round| self.proposals.get(&r).map(|(p, _)| p.proposer);
        let from_votes =
            self.keeper.rounds_above(self.round).find(|r| self.keeper.senders(*r, proposer(*r)) >= self.committee.skip);
        // A round holding only a proposal has one sender: enough only when f + 1 = 1.
        let from_proposal =
            self.proposals.range(above..).next_back().map(|(r, _)| *r).filter(|_| self.committee.skip <= 1);
        let target = from_votes.max(from_proposal);
        match target {
            Some(r) => {
                ctx.cover(Point::L55);
                self.start_round(r, ctx, out);
                true
            }
            None => false,
        }
    }

    pub(super) fn decide(
        &mut self,
        round: Round,
        id: ValueId,
        commit: Option<Commit>,
        ctx: &Ctx<'_>,
        out: &mut Vec<Output>,
    ) {
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
        // Integrity: `decision_p` is set once (L48 and L52 require it unset).
        debug_assert!(self.decided.is_none(), "session {} decided twice", self.session.0);
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
        debug_assert!(self.decided.is_none(), "session {} decided twice", self.session.0);
        self.decided = Some(Decided { at_ms: ctx.now, commit: None, registry_record });
    }
}
