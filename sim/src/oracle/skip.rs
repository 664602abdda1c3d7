//! `round-skip`: an honest agent that holds messages of a later round from f + 1 distinct
//! agents (round votes, and the round's proposal) starts that round (docs/protocol.md L54–L55)
//! before it casts a vote in any new round below it.
//!
//! What the oracle sees, per honest receiver p and session s:
//!
//! - **the votes delivered to p** (`RunnerEvent::Deliver`, reported when p handles the frame): a
//!   prevote or precommit of round r′ signed by an honest agent a ≠ p, genuine (the very vote a
//!   sent: an honest agent signs one vote per (session, round, kind), so the oracle compares it
//!   with what a sent instead of checking a signature), and **certainly kept** by p's vote
//!   keeper (L31–L33): p keeps a vote of a round up to `round_p + 1` always, of a later round only
//!   while the signer holds votes in fewer than two other rounds beyond `round_p + 1`
//!   (`MAX_FUTURE_ROUNDS_PER_SIGNER`). The oracle does not see `round_p`, only a lower bound:
//!   the highest round of the votes p sent since its last restart (its current round's, or
//!   L68–L69 answers of earlier rounds). With `b` that bound, a vote of round r′ is certainly kept
//!   when `r′ ≤ b + 1`, or when a's rounds beyond `b + 1` other than r′ among **every** vote of a
//!   delivered to p in any message (round votes, polka certificates of proposals, commit
//!   certificates: what p may hold) are fewer than two. Votes delivered before p's first own vote
//!   since its restart are not counted (the session may not have started there, and a crash loses
//!   the vote keeper);
//! - **the proposals delivered to p**: a proposal of round r′ signed by its honest proposer
//!   a ≠ p (the very proposal a signed; a relay may have changed its unsigned polka
//!   certificate). p keeps the first proposal of each round whatever its round (L22), and L54
//!   counts its proposer as a sender of r′ once p holds a vote of r′ (`VoteKeeper::senders`,
//!   with the proposer as `extra`, counted once if it also voted). The oracle counts it only
//!   together with at least one certainly kept honest vote of r′;
//! - **the rounds p votes in**: each own round vote that leaves p. Its first vote in a round
//!   above every round it voted in before is p acting in a new round r.
//!
//! Once p keeps messages of round r′ > round_p from f + 1 distinct agents (f = f_max of the
//! session's committee), the rule loop that kept the last of them starts round r′ (L54–L55:
//! every other rule it runs first is about round_p, which the new message does not change), so p
//! never votes in a new round below r′ afterwards. A violation: p's first vote in round r,
//! while f + 1 honest members of the session's committee had messages of one round r′ > r kept by
//! p for certain (votes; the proposal, next to one of those votes), each delivered at least two fsyncs (plus 1 ms) before the vote left: a signed
//! message leaves only once p's log is durable, so the vote may have been cast up to two fsyncs
//! before the oracle sees it (the slowest fsync of the run, `[storage] sync_ms` or a
//! `slow-disk`). Byzantine votes are never counted: they can only make p skip sooner.
//!
//! What it catches: an agent left rounds behind (a partition, a pause, a slow link) that climbs
//! through its own timeouts instead of joining the others (L54–L55 disabled or its count
//! weakened), which the liveness bounds absorb: the agent's timeouts, the L68–L69 answers and
//! the commit certificates bring it there in the end.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::{Committee, Message, Mutation, Proposal, Round, RoundVote, Timer, TimerKind, VoteKind};
use consensus_core::sign::Signature;
use consensus_core::{AgentId, SessionId, TimeMs};

use super::{names, Oracle};
use crate::scenario::{FaultAction, Scenario};

/// The vote keeper's bound on a signer's rounds beyond `round_p + 1`
/// (`consensus_core::protocol::votekeeper::MAX_FUTURE_ROUNDS_PER_SIGNER`, crate-private there).
const FUTURE_ROUNDS_PER_SIGNER: usize = 2;

/// What the oracle keeps for `round-skip`.
#[derive(Default)]
pub(super) struct RoundSkip {
    /// The slowest fsync of the run: a vote leaves at most two of them after it was cast.
    sync_ms: TimeMs,
    /// The signature of every round vote an honest agent sent of its own.
    sent: BTreeMap<(AgentId, SessionId, Round, VoteKind), Signature>,
    /// The signature of every proposal an honest proposer sent of its own.
    proposed: BTreeMap<(AgentId, SessionId, Round), Signature>,
    /// Per (receiver, session).
    views: BTreeMap<(AgentId, SessionId), View>,
    /// Per (honest agent, session): the other direction, how it may have entered rounds.
    entries: BTreeMap<(AgentId, SessionId), Entry>,
}

/// One honest receiver's view of one session.
#[derive(Default)]
struct View {
    /// The highest round it voted in (across restarts: its votes are durable).
    max_voted: Option<Round>,
    /// The highest round it voted in since its last restart: a lower bound on `round_p`.
    since_restart: Option<Round>,
    /// Every round of each signer's votes delivered to it, in any message: what it may hold.
    seen: BTreeMap<AgentId, BTreeSet<Round>>,
    /// Per round beyond `since_restart`: the honest signers whose votes of that round it
    /// certainly kept, and when the first arrived.
    kept: BTreeMap<Round, BTreeMap<AgentId, TimeMs>>,
    /// Per round beyond `since_restart`: the honest proposer whose own proposal of that round
    /// it was delivered, and when (it keeps the first proposal of a round whatever else: L22).
    proposals: BTreeMap<Round, (AgentId, TimeMs)>,
}

/// What one honest agent may have started rounds of one session by, since the run began
/// (kept across restarts and decisions: a crash can lose a decision, and the agent then goes
/// on in the session).
#[derive(Default)]
struct Entry {
    /// The highest round it voted in.
    max_voted: Option<Round>,
    /// Per round: every agent whose message of that round was delivered to it (a vote signed
    /// by it in any message, or a proposal of it), honest or not: an upper bound on the senders
    /// its vote keeper and proposals may hold, whatever a crash lost.
    heard: BTreeMap<Round, BTreeSet<AgentId>>,
    /// The rounds whose precommit timeout fired at it (L60–L61 start the next round).
    precommit_fired: BTreeSet<Round>,
}

impl View {
    /// Whether the vote keeper certainly keeps `signer`'s vote of `round` ([`View`]'s bound).
    fn certainly_kept(&self, signer: AgentId, round: Round) -> bool {
        let Some(b) = self.since_restart else { return false };
        let horizon = b.saturating_add(1);
        if round <= horizon {
            return true;
        }
        let beyond = self
            .seen
            .get(&signer)
            .map_or(0, |rounds| rounds.range(horizon.saturating_add(1)..).filter(|r| **r != round).count());
        beyond < FUTURE_ROUNDS_PER_SIGNER
    }
}

impl RoundSkip {
    /// The signature of `agent`'s own round vote of (session, round, kind), if it sent one.
    pub(super) fn sent_signature(
        &self,
        agent: AgentId,
        session: SessionId,
        round: Round,
        kind: VoteKind,
    ) -> Option<&Signature> {
        self.sent.get(&(agent, session, round, kind))
    }

    /// The slowest fsync `scenario` can have: `[storage] sync_ms` or any `slow-disk` fault.
    pub(super) fn sync_of(scenario: &Scenario) -> TimeMs {
        let slow = scenario.faults.iter().filter_map(|f| match f.action {
            FaultAction::SlowDisk { sync_ms, .. } => Some(sync_ms),
            _ => None,
        });
        slow.fold(scenario.storage.sync_ms, u64::max)
    }
}

impl Oracle {
    /// Judges `round-skip` with the slowest fsync of `scenario` (for unit tests: `sync_ms`).
    pub fn with_round_skip(mut self, sync_ms: TimeMs) -> Oracle {
        self.skip.sync_ms = sync_ms;
        self
    }

    /// The slowest fsync of `scenario`, for [`Oracle::with_round_skip`].
    pub fn round_skip_sync(scenario: &Scenario) -> TimeMs {
        RoundSkip::sync_of(scenario)
    }

    /// `message` was delivered to `agent` (which handles it now).
    pub fn on_delivered(&mut self, agent: AgentId, message: &Message, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        self.locks_on_delivered(agent, message);
        self.steps_on_delivered(agent, message, now);
        match message {
            Message::RoundVote(v) => self.delivered_vote(agent, v, true, now),
            Message::Proposal(p) => {
                self.delivered_proposal(agent, p, now);
                for v in &p.polka {
                    self.delivered_vote(agent, v, false, now);
                }
            }
            Message::Commit(c) => {
                for v in c.precommits.iter().chain(&c.proposal.polka) {
                    self.delivered_vote(agent, v, false, now);
                }
            }
            _ => {}
        }
    }

    fn delivered_vote(&mut self, agent: AgentId, v: &RoundVote, direct: bool, now: TimeMs) {
        if v.agent != agent {
            self.skip.entries.entry((agent, v.session)).or_default().heard.entry(v.round).or_default().insert(v.agent);
        }
        if v.agent == agent || self.decisions.get(&v.session).is_some_and(|d| d.contains_key(&agent)) {
            return;
        }
        let genuine = direct
            && self.honest.contains(&v.agent)
            && self.skip.sent.get(&(v.agent, v.session, v.round, v.kind)) == Some(&v.signature);
        let view = self.skip.views.entry((agent, v.session)).or_default();
        if genuine && view.since_restart.is_some_and(|b| v.round > b) && view.certainly_kept(v.agent, v.round) {
            view.kept.entry(v.round).or_default().entry(v.agent).or_insert(now);
        }
        view.seen.entry(v.agent).or_default().insert(v.round);
    }

    /// A proposal delivered to `agent`: counted as its proposer's message of that round when
    /// the proposer is honest and signed exactly this (a relay may change only the unsigned
    /// polka certificate, which does not stop the agent keeping the proposal).
    fn delivered_proposal(&mut self, agent: AgentId, p: &Proposal, now: TimeMs) {
        let session = p.value.session;
        if p.proposer != agent {
            self.skip.entries.entry((agent, session)).or_default().heard.entry(p.round).or_default().insert(p.proposer);
        }
        if p.proposer == agent || self.decisions.get(&session).is_some_and(|d| d.contains_key(&agent)) {
            return;
        }
        let genuine = self.honest.contains(&p.proposer)
            && self.skip.proposed.get(&(p.proposer, session, p.round)) == Some(&p.signature);
        let view = self.skip.views.entry((agent, session)).or_default();
        if genuine && view.since_restart.is_some_and(|b| p.round > b) {
            view.proposals.entry(p.round).or_insert((p.proposer, now));
        }
    }

    /// An honest proposer's own proposal left it: remembered as genuine.
    pub(super) fn round_skip_on_own_proposal(&mut self, agent: AgentId, p: &Proposal) {
        self.skip.proposed.entry((agent, p.value.session, p.round)).or_insert(p.signature);
    }

    /// An honest agent's own round vote left it: remembered as genuine, and judged when it is
    /// the agent's first in a new round.
    pub(super) fn round_skip_on_own_vote(&mut self, agent: AgentId, v: &RoundVote, step: u64, now: TimeMs) {
        self.skip.sent.entry((agent, v.session, v.round, v.kind)).or_insert(v.signature);
        self.round_entry_justified(agent, v, step, now);
        if self.violation().is_some() {
            return;
        }
        let view = self.skip.views.entry((agent, v.session)).or_default();
        let round = v.round;
        view.since_restart = Some(view.since_restart.map_or(round, |b| b.max(round)));
        if view.max_voted.is_some_and(|m| round <= m) {
            return;
        }
        view.max_voted = Some(round);
        // No round is above the last one (`scenarios/regressions/last-round-restarted.toml`).
        let Some(above) = round.checked_add(1) else { return };
        // Kept long enough before this vote left that it was cast after them.
        let before = now.saturating_sub(2 * self.skip.sync_ms + 1);
        let Some((members, skip)) = self.skip_senders(v.session) else { return };
        let view = &self.skip.views[&(agent, v.session)];
        let found = view.kept.range(above..).rev().find_map(|(later, signers)| {
            let mut counted: Vec<AgentId> =
                signers.iter().filter(|(a, at)| **at <= before && members.contains(a)).map(|(a, _)| *a).collect();
            // L54 counts messages, not votes: the round's proposer is a sender too, once the
            // agent holds a vote of that round (`VoteKeeper::senders`' `extra`).
            if let Some((proposer, at)) = view.proposals.get(later) {
                if !counted.is_empty() && *at <= before && members.contains(proposer) && !counted.contains(proposer) {
                    counted.push(*proposer);
                }
            }
            (counted.len() >= skip).then_some((*later, counted))
        });
        if let Some((later, signers)) = found {
            let signers: Vec<String> = signers.iter().map(ToString::to_string).collect();
            let detail = format!(
                "{agent} voted in round {round} of {} while it held messages of round {later} from f + 1 = {skip} \
                 honest agents ({}): L54–L55 start round {later} first",
                v.session,
                signers.join(", ")
            );
            self.violate(names::ROUND_SKIP, step, now, detail);
        }
    }

    /// The committee of `session`'s registry epoch and L54's f + 1 (f = its f_max), if the
    /// oracle keeps that epoch.
    fn skip_senders(&self, session: SessionId) -> Option<(Vec<AgentId>, usize)> {
        let members = Committee::of(self.epochs.get(&self.epoch_of(session))?, Mutation::None).members;
        let skip = consensus_core::quorum::f_max(members.len() as u64) as usize + 1;
        Some((members, skip))
    }

    /// The other direction of L54–L55 ("only upon"): `agent`'s first vote in round r > 0 left
    /// it, so it started round r, which only L61 (its precommit timeout of round r − 1 fired)
    /// or L55 (messages of round r from f + 1 distinct agents) do. Judged against an upper bound
    /// of what it had: every message of round r ever delivered to it, from any agent, and every
    /// precommit timeout that fired (a restart replays its log into the same state or an
    /// earlier one, never into a round nothing justified).
    fn round_entry_justified(&mut self, agent: AgentId, v: &RoundVote, step: u64, now: TimeMs) {
        let round = v.round;
        let entry = self.skip.entries.entry((agent, v.session)).or_default();
        if entry.max_voted.is_some_and(|m| round <= m) {
            return;
        }
        entry.max_voted = Some(round);
        let Some(before) = round.checked_sub(1) else { return };
        let Some((_, skip)) = self.skip_senders(v.session) else { return };
        let entry = &self.skip.entries[&(agent, v.session)];
        let heard = entry.heard.get(&round).map_or(0, BTreeSet::len);
        if entry.precommit_fired.contains(&before) || heard >= skip {
            return;
        }
        let detail = format!(
            "{agent} voted in round {round} of {} without having started it by a rule: its precommit timeout \
             of round {before} never fired and it was delivered messages of round {round} from {heard} agents, \
             fewer than f + 1 = {skip} (L54–L55, L60–L61)",
            v.session
        );
        self.violate(names::ROUND_SKIP, step, now, detail);
    }

    /// A timer fired at `agent`: a precommit timeout may start the next round (L60–L61).
    pub fn on_timer_fired(&mut self, agent: AgentId, timer: &Timer) {
        if timer.kind == TimerKind::Precommit && self.honest.contains(&agent) {
            self.skip.entries.entry((agent, timer.session)).or_default().precommit_fired.insert(timer.round);
        }
    }

    /// `agent` restarted: its vote keeper is gone, and its round is known again only from its
    /// next vote.
    pub(super) fn round_skip_on_restart(&mut self, agent: AgentId) {
        for (_, view) in self.skip.views.range_mut((agent, SessionId(0))..=(agent, SessionId(u64::MAX))) {
            view.since_restart = None;
            view.kept.clear();
            view.proposals.clear();
        }
    }

    /// `agent` decided `session`: nothing more to judge there.
    pub(super) fn round_skip_on_decide(&mut self, agent: AgentId, session: SessionId) {
        self.skip.views.remove(&(agent, session));
    }
}
