//! `step-justified` and `step-timely`: the steps of a round, judged against docs/protocol.md
//! from what an honest agent p was delivered and what it signed, with the timeouts of the run's
//! protocol configuration. Neither sees p's round or step; both judge only what is certain.
//!
//! Times: the oracle sees p's own messages when p's runner performs them (`RunnerEvent::Send`,
//! in the step that decided them, before the log makes them leave) and the messages delivered
//! to p when p handles them, on p's clock both. So the time of p's first send of a message is
//! the moment p decided it, and a message delivered at t is in p's state from t on. A timer
//! fires no sooner than it is due.
//!
//! **`step-justified`** (p's own messages, when it first signs them):
//!
//! - a **nil precommit** of round r is allowed only by L44–L45 (q nil prevotes of r held) or by
//!   L58–L59 (TimeoutPrevote of r, armed by L34–L35 when q prevotes of r were held, for
//!   `timeout_prevote(r)`; after a restart, L74–L75 re-arm it for its full length, from the
//!   restart, only when the replayed state holds q prevotes of r). Either way, p's first nil
//!   precommit of r at t needs q distinct committee members' nil prevotes of r delivered to p
//!   by t, or q distinct members' prevotes of r (any value) delivered by t − timeout_prevote(r).
//!   The oracle counts, per signer, the earliest delivery of a prevote of r to p in any message
//!   (round votes, polka certificates of proposals and commit certificates), in any of p's
//!   incarnations, whoever signed it and however (p may hold it), and p's own prevote from
//!   when p cast it: an over-approximation of what p holds, so a violation is certain.
//! - a **fresh proposal** (no valid round, L16–L20) with fewer than n votes is allowed only
//!   with ≥ q votes, before `VoteCollection` (`opened_ms + vote_collect_ms`, L3; re-armed at the
//!   same time after a restart) only when every vote accepts one candidate (L17), and before
//!   the session deadline (`opened_ms + deadline_ms`) only in normal mode with an outcome that
//!   is a decision by the threshold (L16b–L16c: otherwise the proposer waits for the missing
//!   votes or the deadline). An honest proposer puts every vote it holds into the value (L16a),
//!   so the value's votes are what it held.
//!
//! **`step-timely`** (an obligation, judged at p's first precommit of round r): once p is in
//! the prevote step of round r and holds q prevotes of r for nil (L44–L45) or q prevotes for
//! the value it prevoted itself (L36–L40: it prevoted the value of round r's proposal, which it
//! found valid), the rule loop precommits in that very step. What is certain, per incarnation
//! (a restart may lose the vote keeper and the step): p's own prevote of r sent since its
//! restart (cast then, or re-sent from a replayed state: either way p held it, so its round was
//! at least r), and the prevotes of r that honest members signed and sent (genuine: the
//! signature they sent), delivered to p since the restart as round votes while p had voted in
//! round r − 1 or later since the restart (the vote keeper keeps every vote of a round up to
//! `round_p + 1`, L31–L33). With T the later of p's prevote and the q-th such prevote for X (p's
//! own prevote counting for its value), p was in the prevote step of round r at T if it
//! precommits in r later in the same incarnation (rounds and steps only grow, and the
//! precommit is the only way out of the step within the round), so a first precommit of r
//! decided after T is late. (The L44 obligation is what the protocol states; a timer-only
//! variant precommits nil `timeout_prevote(r)` late, inside every liveness bound.)
//!
//! Not judged: agents that decided the session (a decided agent ignores round votes, L66),
//! agents outside the session's committee (they follow it and count their own votes, which no
//! member counts; the regressions `timely-slow-disk` and `timely-link-clogged` have them),
//! beyond the Byzantine count agreement is promised for (the oracle's registry epoch is then
//! not necessarily the agent's), sessions whose epoch the oracle does not keep, and the
//! `duplicate-votes-counted` mutation (its agents count copies of a vote again: it is judged by
//! `agreement`, what it breaks).

use std::collections::BTreeMap;

use consensus_core::protocol::messages::Proposal;
use consensus_core::protocol::{
    AgreedOutcome, Committee, Message, Mutation, ProposalMode, Round, RoundVote, TimerKind, ValueId, VoteKind,
};
use consensus_core::types::{ConsensusMethod, VoteValue};
use consensus_core::{AgentId, SessionId, TimeMs};

use super::{names, Oracle};

/// One signer's prevote of a round, as far as p may hold it.
#[derive(Clone, Copy, Debug)]
struct MayHold {
    /// The earliest delivery (or, for p's own, when p cast it).
    first_ms: TimeMs,
    /// A nil prevote of it was delivered.
    nil: bool,
}

/// One honest agent's view of one session.
#[derive(Default)]
struct View {
    /// Per round: every signer's prevote p may hold (any message, any incarnation).
    may_hold: BTreeMap<Round, BTreeMap<AgentId, MayHold>>,
    /// The highest round p voted in since its last restart.
    since_restart: Option<Round>,
    /// Per round, since the last restart: p's own prevote (first sent, its value).
    prevoted: BTreeMap<Round, (TimeMs, Option<ValueId>)>,
    /// Per round, since the last restart: genuine honest prevotes p certainly keeps, per value:
    /// signer → delivered at.
    kept: BTreeMap<Round, BTreeMap<Option<ValueId>, BTreeMap<AgentId, TimeMs>>>,
}

/// What the oracle keeps for `step-justified` and `step-timely`.
#[derive(Default)]
pub(super) struct Steps {
    views: BTreeMap<(AgentId, SessionId), View>,
    /// The last own round vote seen sent, and when: a broadcast is one send per peer, judged once.
    last_own: Option<(AgentId, SessionId, Round, VoteKind, TimeMs)>,
}

impl Oracle {
    /// Whether `agent`'s steps in `session` are judged (module doc).
    fn steps_judged(&self, agent: AgentId, session: SessionId) -> bool {
        self.promises.agreement
            && self.protocol.mutation != Mutation::DuplicateVotesCounted
            && self.honest.contains(&agent)
            && !self.decisions.get(&session).is_some_and(|d| d.contains_key(&agent))
    }

    /// `message` was delivered to the honest `agent`.
    pub(super) fn steps_on_delivered(&mut self, agent: AgentId, message: &Message, now: TimeMs) {
        let carries_prevotes = match message {
            Message::RoundVote(v) => v.kind == VoteKind::Prevote,
            Message::Proposal(p) => !p.polka.is_empty(),
            Message::Commit(c) => !c.proposal.polka.is_empty(),
            _ => false,
        };
        let session = message.session();
        if !carries_prevotes || !self.steps_judged(agent, session) {
            return;
        }
        match message {
            Message::RoundVote(v) => {
                let view = self.steps.views.entry((agent, session)).or_default();
                view.may_hold_prevote(v, now);
                let kept = view.since_restart.is_some_and(|b| v.round <= b.saturating_add(1));
                let genuine = kept
                    && v.agent != agent
                    && self.honest.contains(&v.agent)
                    && self.skip.sent_signature(v.agent, v.session, v.round, v.kind) == Some(&v.signature);
                if genuine {
                    let view = self.steps.views.entry((agent, session)).or_default();
                    let by_value = view.kept.entry(v.round).or_default().entry(v.value).or_default();
                    by_value.entry(v.agent).or_insert(now);
                }
            }
            Message::Proposal(p) => {
                let view = self.steps.views.entry((agent, session)).or_default();
                for v in &p.polka {
                    view.may_hold_prevote(v, now);
                }
            }
            Message::Commit(c) => {
                let view = self.steps.views.entry((agent, session)).or_default();
                for v in &c.proposal.polka {
                    view.may_hold_prevote(v, now);
                }
            }
            _ => {}
        }
    }

    /// The honest `agent` sends its own round vote `v`, before `round-skip` remembers it.
    pub(super) fn steps_on_own_vote(&mut self, agent: AgentId, v: &RoundVote, step: u64, now: TimeMs) {
        let key = Some((agent, v.session, v.round, v.kind, now));
        if self.steps.last_own == key || !self.steps_judged(agent, v.session) {
            return;
        }
        self.steps.last_own = key;
        let first = self.skip.sent_signature(agent, v.session, v.round, v.kind).is_none();
        let view = self.steps.views.entry((agent, v.session)).or_default();
        view.since_restart = Some(view.since_restart.map_or(v.round, |b| b.max(v.round)));
        match v.kind {
            VoteKind::Prevote => {
                view.may_hold_prevote(v, now);
                view.prevoted.entry(v.round).or_insert((now, v.value));
            }
            VoteKind::Precommit if first => {
                let Some(committee) = self.committee_of(v.session) else { return };
                // An agent outside the committee (quarantined, excluded) follows the session and
                // counts its own votes, which no member counts: its steps are not judged.
                if !committee.contains(agent) {
                    return;
                }
                let view = &self.steps.views[&(agent, v.session)];
                let detail = match v.value {
                    None => view.unjustified_nil_precommit(agent, v, &committee, &self.protocol, now),
                    Some(_) => None,
                }
                .or_else(|| view.late_precommit(agent, v, &committee, now));
                if let Some((invariant, detail)) = detail {
                    self.violate(invariant, step, now, detail);
                }
            }
            VoteKind::Precommit => {}
        }
    }

    /// `agent` restarted: its vote keeper and its step are known again only from what follows.
    pub(super) fn steps_on_restart(&mut self, agent: AgentId) {
        self.steps.last_own = None;
        for (_, view) in self.steps.views.range_mut((agent, SessionId(0))..=(agent, SessionId(u64::MAX))) {
            view.since_restart = None;
            view.prevoted.clear();
            view.kept.clear();
        }
    }

    /// `agent` decided `session`: nothing more to judge there.
    pub(super) fn steps_on_decide(&mut self, agent: AgentId, session: SessionId) {
        self.steps.views.remove(&(agent, session));
    }

    /// The honest proposer `agent` first sent its own `proposal` (`step-justified`, L16–L20).
    pub(super) fn steps_on_proposal(&mut self, agent: AgentId, proposal: &Proposal, step: u64, now: TimeMs) {
        let session = proposal.value.session;
        if proposal.valid_round.is_some() || !self.steps_judged(agent, session) {
            return;
        }
        let Some(committee) = self.committee_of(session) else { return };
        if !committee.contains(agent) {
            return;
        }
        let value = &proposal.value;
        let (have, n) = (value.votes.len(), committee.members.len());
        if have >= n {
            return;
        }
        let opened = value.spec.spec.opened_ms;
        let collection = opened.saturating_add(self.protocol.vote_collect_ms);
        let deadline = opened.saturating_add(self.engine.deadline_ms);
        let mut choices = value.votes.iter().map(|v| match v.vote.value {
            VoteValue::Accept { .. } => Some(v.vote.candidate),
            _ => None,
        });
        let first = choices.next().flatten();
        let unanimous = first.is_some() && choices.all(|c| c == first);
        let by_threshold = value.mode == ProposalMode::Normal
            && matches!(
                value.outcome,
                AgreedOutcome::Decided { method: ConsensusMethod::Threshold | ConsensusMethod::EarlyUnanimous, .. }
            );
        let why = if have < committee.vote_q {
            format!("it held {have} votes, fewer than q = {} (L16)", committee.vote_q)
        } else if now < collection && !unanimous {
            format!(
                "it held {have} of {n} votes, not all accepting one candidate, before vote collection ended at \
                 {collection} ms (L16–L17: with votes missing it proposes early only a unanimous set)"
            )
        } else if now < deadline && !by_threshold {
            format!(
                "it held {have} of {n} votes and the value ({} mode, {}) is not a decision by the threshold, before \
                 the session deadline at {deadline} ms (L16b–L16c: it waits for the missing votes or the deadline)",
                crate::words::mode(value.mode),
                crate::words::outcome(&value.outcome)
            )
        } else {
            return;
        };
        let detail = format!(
            "{agent}, honest, proposed a fresh value in round {} of {session} at {now} ms although {why}",
            proposal.round
        );
        self.violate(names::STEP_JUSTIFIED, step, now, detail);
    }

    /// The committee of `session`'s registry epoch, as agents count it.
    fn committee_of(&self, session: SessionId) -> Option<Committee> {
        let registry = self.epochs.get(&self.epoch_of(session))?;
        Some(Committee::of(registry, self.protocol.mutation))
    }
}

impl View {
    fn may_hold_prevote(&mut self, v: &RoundVote, now: TimeMs) {
        let held =
            self.may_hold.entry(v.round).or_default().entry(v.agent).or_insert(MayHold { first_ms: now, nil: false });
        held.first_ms = held.first_ms.min(now);
        held.nil |= v.value.is_none();
    }

    /// `step-justified` for p's first nil precommit `v` of its round, at `now`.
    fn unjustified_nil_precommit(
        &self,
        me: AgentId,
        v: &RoundVote,
        committee: &Committee,
        protocol: &consensus_core::protocol::ProtocolConfig,
        now: TimeMs,
    ) -> Option<(&'static str, String)> {
        let q = committee.q;
        let held = self.may_hold.get(&v.round);
        let members = held.into_iter().flatten().filter(|(a, _)| committee.members.contains(a));
        let nil = members.clone().filter(|(_, h)| h.nil).count();
        if nil >= q {
            return None; // L44–L45
        }
        let mut times: Vec<TimeMs> = members.map(|(_, h)| h.first_ms).collect();
        times.sort_unstable();
        let timeout = protocol.timeout(TimerKind::Prevote, v.round);
        let quorum_at = times.get(q.saturating_sub(1)).copied();
        if quorum_at.is_some_and(|t| t.saturating_add(timeout) <= now) {
            return None; // L34–L35, L58–L59 (and L75)
        }
        let since = quorum_at.map_or_else(
            || format!("it may hold prevotes of round {} from only {} members", v.round, times.len()),
            |t| format!("the q-th of the prevotes it may hold reached it at {t} ms"),
        );
        let detail = format!(
            "{me}, honest, precommitted nil in round {} of {} at {now} ms, neither with q = {q} nil prevotes of the \
             round (it may hold {nil}: L44–L45) nor timeout_prevote({}) = {timeout} ms after holding q prevotes of \
             it ({since}: L34–L35, L58–L59, L75)",
            v.round, v.session, v.round
        );
        Some((names::STEP_JUSTIFIED, detail))
    }

    /// `step-timely` for p's first precommit `v` of its round, at `now`.
    fn late_precommit(
        &self,
        me: AgentId,
        v: &RoundVote,
        committee: &Committee,
        now: TimeMs,
    ) -> Option<(&'static str, String)> {
        let (prevoted_at, own) = *self.prevoted.get(&v.round)?;
        let kept = self.kept.get(&v.round);
        let mut due: Option<(TimeMs, Option<ValueId>)> = None;
        // X = nil (L44), and the value of its own prevote (L36).
        for value in std::iter::once(None).chain(own.map(Some)) {
            let mut times: Vec<TimeMs> = kept
                .and_then(|k| k.get(&value))
                .into_iter()
                .flatten()
                .filter(|(a, _)| committee.members.contains(a))
                .map(|(_, t)| *t)
                .collect();
            if own == value && committee.members.contains(&me) {
                times.push(prevoted_at);
            }
            times.sort_unstable();
            let Some(quorum_at) = times.get(committee.q.saturating_sub(1)) else { continue };
            let at = (*quorum_at).max(prevoted_at);
            if due.is_none_or(|(d, _)| at < d) {
                due = Some((at, value));
            }
        }
        let (due, value) = due?;
        if now <= due {
            return None;
        }
        let (rule, what) = match value {
            None => ("L44–L45", "nil".to_owned()),
            Some(id) => ("L36–L40", format!("its own prevote's value {}", crate::words::value(Some(id)))),
        };
        let detail = format!(
            "{me}, honest, precommitted in round {} of {} only at {now} ms although from {due} ms on it was in the \
             prevote step of the round (its prevote sent at {prevoted_at} ms) holding q = {} honest prevotes for {what} \
             ({rule}: it precommits in that step)",
            v.round, v.session, committee.q
        );
        Some((names::STEP_TIMELY, detail))
    }
}
