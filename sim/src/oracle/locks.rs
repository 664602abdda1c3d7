//! `lock-respected` and `valid-value`: an honest agent's prevotes and re-proposals conform to
//! its lock and its valid value (docs/protocol.md L15, L22–L30, L36–L43).
//!
//! What the oracle knows of an honest agent p in session s:
//!
//! - **its lock**, from its own precommits: a precommit for w in round lr leaves p only at L40,
//!   right after L39 locked p on (lr, w), and lock rounds only grow, so p's lock is at least the
//!   newest value it precommitted. The oracle sees a precommit when p's runner performs it,
//!   before the log makes it leave, so a crash in between can lose the lock (`disk-slow`, seed
//!   85: a proposer locked before a crash that lost its precommit proposed a fresh value after
//!   its restart, rightly). A restart therefore forgets the lock the oracle knew; p re-sends the
//!   precommits its log kept (L62–L63), and the oracle learns the lock again from them. It
//!   judges less meanwhile, never wrongly;
//! - **what p may hold**: every proposal delivered to p (directly or in a commit certificate)
//!   and p's own, each with its valid round and value id (the oracle's own `id(v)`), and every
//!   prevote for a value delivered to p in any message (round votes, polka certificates, commit
//!   certificates) or sent by p, counted by distinct signer. Nothing is verified here and
//!   nothing forgotten at a restart: a superset of what p holds, so again the oracle can only
//!   judge less.
//!
//! `lock-respected` (L22–L28), judged at the first prevote for a value v that leaves p in a round
//! r: if p is locked on (lr, w) with w ≠ v, then L23 cannot have prevoted v (it needs no lock or
//! the locked value) and L28 needs a proposal of round r for v with a valid round vr,
//! lr ≤ vr < r, and q prevotes for (vr, id(v)) held; p must hold such a proposal and q distinct
//! members of the session's committee must have prevoted (vr, id(v)) to it (q the true quorum).
//! What it catches: a lock ignored or weakened at L23 or L28 (an agent locked in a round above
//! vr that prevotes an older polka's value), which breaks agreement only when the rest of the
//! run lines up, and otherwise goes unseen: an honest agent's prevote is judged against nothing
//! else.
//!
//! `valid-value` (L15, L39–L41), judged at the first proposal an honest proposer sends for a
//! (session, round): a re-proposal (valid round vr) has vr below the round and carries its polka
//! certificate, q prevotes for (vr, id(v)) of distinct members of the committee, each signed by
//! its signer (verified over the oracle's own [`super::signing`] bytes): the proposer's vote
//! keeper held them when the value became valid (L41, L43), and keeps them. And a locked
//! proposer re-proposes: L41 makes a locked agent's valid value the locked one at least (and
//! `validRound ≥ lockedRound` from then on), so L15 proposes it, with vr ≥ lr. What it
//! catches: a re-proposal without its certificate or with a short one (receivers that missed
//! the polka cannot check L28 and prevote nil, a round lost), and a locked proposer that
//! proposes a fresh value the locked agents refuse; both cost only rounds, which the liveness
//! bounds absorb.
//!
//! Both are judged only while agreement is promised (beyond `2q − n` Byzantine agents, q
//! prevotes need not include an honest agent, and nothing here is owed).

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::messages::Proposal;
use consensus_core::protocol::{Committee, Message, Mutation, Round, RoundVote, ValueId, VoteKind};
use consensus_core::sign::{Signature, Verifier};
use consensus_core::{AgentId, SessionId, TimeMs};

use super::{names, signing, Oracle};

/// What the oracle keeps for `lock-respected` and `valid-value`.
#[derive(Default)]
pub(super) struct Locks {
    /// Per (honest agent, session).
    views: BTreeMap<(AgentId, SessionId), LockView>,
    /// The oracle's `id(v)` of each re-proposal seen, by its proposer's signature (a relayed
    /// copy is hashed once).
    ids: BTreeMap<(AgentId, Signature), ValueId>,
    /// Every prevote for a value seen in the run (sent by an honest agent or carried by any
    /// delivered message), by (session, round, value): the signers. For the split-polka count.
    prevoters: BTreeMap<(SessionId, Round, ValueId), BTreeSet<AgentId>>,
}

/// One honest agent's view of one session.
#[derive(Default)]
struct LockView {
    /// Its lock, from its own precommits: (lockedRound, lockedValue).
    lock: Option<(Round, ValueId)>,
    /// The rounds of its own round votes already judged, by kind.
    judged: BTreeSet<(Round, VoteKind)>,
    /// Its own proposals already judged (by round).
    proposed: BTreeSet<Round>,
    /// The re-proposals it may hold, per round: (valid round, value id).
    proposals: BTreeMap<Round, BTreeSet<(Round, ValueId)>>,
    /// Fresh proposals it may hold, per round (their value id is not needed: L23).
    fresh: BTreeSet<Round>,
    /// The prevotes for a value it may hold: the signers per (round, value).
    prevotes: BTreeMap<(Round, ValueId), BTreeSet<AgentId>>,
}

impl Oracle {
    /// `message` was delivered to the honest `agent`: what it may hold from now on.
    pub(super) fn locks_on_delivered(&mut self, agent: AgentId, message: &Message) {
        if !self.promises.agreement {
            return;
        }
        match message {
            Message::RoundVote(v) => self.locks_hold_prevote(agent, v),
            Message::Proposal(p) => self.locks_hold_proposal(agent, p),
            Message::Commit(c) => {
                self.locks_hold_proposal(agent, &c.proposal);
            }
            _ => {}
        }
    }

    fn locks_hold_prevote(&mut self, agent: AgentId, v: &RoundVote) {
        let (VoteKind::Prevote, Some(value)) = (v.kind, v.value) else { return };
        if self.decisions.get(&v.session).is_some_and(|d| d.contains_key(&agent)) {
            return;
        }
        let view = self.locks.views.entry((agent, v.session)).or_default();
        view.prevotes.entry((v.round, value)).or_default().insert(v.agent);
        self.locks.prevoters.entry((v.session, v.round, value)).or_default().insert(v.agent);
    }

    fn locks_hold_proposal(&mut self, agent: AgentId, p: &Proposal) {
        for v in &p.polka {
            self.locks_hold_prevote(agent, v);
        }
        let session = p.value.session;
        if self.decisions.get(&session).is_some_and(|d| d.contains_key(&agent)) {
            return;
        }
        let Some(vr) = p.valid_round else {
            self.locks.views.entry((agent, session)).or_default().fresh.insert(p.round);
            return;
        };
        let id = *self.locks.ids.entry((p.proposer, p.signature)).or_insert_with(|| signing::value_id(&p.value));
        self.locks.views.entry((agent, session)).or_default().proposals.entry(p.round).or_default().insert((vr, id));
    }

    /// The honest `agent` sent its own round vote `v`: a precommit for a value locks it, a
    /// prevote for a value is judged (`lock-respected`), once per (session, round, kind).
    pub(super) fn locks_on_own_vote(&mut self, agent: AgentId, v: &RoundVote, step: u64, now: TimeMs) {
        if !self.promises.agreement || self.decisions.get(&v.session).is_some_and(|d| d.contains_key(&agent)) {
            return;
        }
        let view = self.locks.views.entry((agent, v.session)).or_default();
        if !view.judged.insert((v.round, v.kind)) {
            return;
        }
        let Some(value) = v.value else { return };
        if v.kind == VoteKind::Precommit {
            if view.lock.is_none_or(|(lr, _)| lr < v.round) {
                view.lock = Some((v.round, value));
            }
            return;
        }
        view.prevotes.entry((v.round, value)).or_default().insert(agent);
        self.locks.prevoters.entry((v.session, v.round, value)).or_default().insert(agent);
        let view = &self.locks.views[&(agent, v.session)];
        let Some((lr, locked)) = view.lock.filter(|(lr, w)| *w != value && *lr < v.round) else { return };
        let Some(registry) = self.epochs.get(&self.epoch_of(v.session)) else { return };
        let committee = Committee::of(registry, Mutation::None);
        let round = v.round;
        let polka = |vr: Round| {
            view.prevotes
                .get(&(vr, value))
                .map_or(0, |signers| signers.iter().filter(|a| committee.contains(**a)).count())
        };
        let held = view.proposals.get(&round).into_iter().flatten().filter(|(_, id)| *id == value);
        let justified = held.clone().any(|(vr, _)| lr <= *vr && *vr < round && polka(*vr) >= committee.q);
        if justified {
            return;
        }
        let why = match held.map(|(vr, _)| *vr).max() {
            None if view.fresh.contains(&round) => format!(
                "the only proposals of round {round} it held for that value had no valid round (L23 prevotes \
                 it only unlocked or locked on it)"
            ),
            None => format!("it held no proposal of round {round} for that value"),
            Some(vr) if vr < lr => format!(
                "the proposal of round {round} it held for that value has valid round {vr}, below its lock \
                 round {lr} (L28: lockedRound ≤ vr)"
            ),
            Some(vr) => format!(
                "the proposal of round {round} it held for that value has valid round {vr}, for which it \
                 held prevotes of {} committee members, not q = {} (L26–L28)",
                polka(vr),
                committee.q
            ),
        };
        let detail = format!(
            "{agent} prevoted value {:016x} in round {round} of {} while locked on value {:016x} of round {lr} \
             (its precommit): {why}",
            value.short(),
            v.session,
            locked.short()
        );
        self.violate(names::LOCK_RESPECTED, step, now, detail);
    }

    /// The honest `agent` sent `proposal` of its own: it holds it, and its first proposal of a
    /// (session, round) is judged (`valid-value`).
    pub fn locks_on_proposal_sent(&mut self, agent: AgentId, proposal: &Proposal, step: u64, now: TimeMs) {
        let session = proposal.value.session;
        if !self.promises.agreement || self.decisions.get(&session).is_some_and(|d| d.contains_key(&agent)) {
            return;
        }
        self.locks_hold_proposal(agent, proposal);
        let view = self.locks.views.entry((agent, session)).or_default();
        if !view.proposed.insert(proposal.round) {
            return;
        }
        // A lock of this round or later came after the proposal (a gossiped copy of its own
        // proposal of an earlier round, L64–L65, first seen after a crash held it back).
        let lock = view.lock.filter(|(lr, _)| *lr < proposal.round);
        let Some(registry) = self.epochs.get(&self.epoch_of(session)) else { return };
        let committee = Committee::of(registry, Mutation::None);
        let round = proposal.round;
        let problem = match (proposal.valid_round, lock) {
            (None, Some((lr, _))) => Some(format!(
                "a fresh value while locked in round {lr} (L41 made its locked value valid, so L15 re-proposes)"
            )),
            (Some(vr), Some((lr, _))) if vr < lr => {
                Some(format!("valid round {vr}, below its lock round {lr} (L41: validRound ≥ lockedRound)"))
            }
            (Some(vr), _) if vr >= round => Some(format!("valid round {vr}, not below the round (L15)")),
            (Some(vr), _) => {
                let id = self.locks.ids.get(&(agent, proposal.signature)).copied();
                let id = id.unwrap_or_else(|| signing::value_id(&proposal.value));
                let mut signers = BTreeSet::new();
                for v in &proposal.polka {
                    let fits = v.kind == VoteKind::Prevote
                        && v.session == session
                        && v.round == vr
                        && v.value == Some(id)
                        && committee.contains(v.agent)
                        && !signers.contains(&v.agent)
                        && self.keyring.verify(
                            v.agent,
                            &signing::round_vote(v.kind, v.session, v.round, v.value),
                            &v.signature,
                        );
                    if fits {
                        signers.insert(v.agent);
                    }
                }
                (signers.len() < committee.q).then(|| {
                    format!(
                        "valid round {vr} with a polka certificate of {} signed prevotes for its value from distinct \
                         committee members ({} carried), not q = {} (L15)",
                        signers.len(),
                        proposal.polka.len(),
                        committee.q
                    )
                })
            }
            (None, None) => None,
        };
        if let Some(problem) = problem {
            let detail = format!("{agent}, honest, proposed in round {round} of {session}: {problem}");
            self.violate(names::VALID_VALUE, step, now, detail);
        }
    }

    /// `agent` restarted: the locks of precommits that had not left may be lost (module doc).
    pub(super) fn locks_on_restart(&mut self, agent: AgentId) {
        for (_, view) in self.locks.views.range_mut((agent, SessionId(0))..=(agent, SessionId(u64::MAX))) {
            view.lock = None;
        }
    }

    /// `agent` decided `session`: nothing more to judge there.
    pub(super) fn locks_on_decide(&mut self, agent: AgentId, session: SessionId) {
        self.locks.views.remove(&(agent, session));
    }

    /// The sessions in which q distinct members prevoted two different values in two different
    /// rounds, as far as the oracle saw the prevotes (honest agents' own, and every prevote a
    /// delivered message carried): the runs where locks and polkas are split, the only ones in
    /// which L28's `lockedRound ≤ vr` is put to the test.
    pub fn split_polkas(&self) -> usize {
        let mut polkas: BTreeMap<SessionId, BTreeSet<(Round, ValueId)>> = BTreeMap::new();
        for ((session, round, value), signers) in &self.locks.prevoters {
            // An epoch no longer kept: the committee of the newest (committees change rarely).
            let registry = self.epochs.get(&self.epoch_of(*session)).unwrap_or(&self.registry);
            let committee = Committee::of(registry, Mutation::None);
            if signers.iter().filter(|a| committee.contains(**a)).count() >= committee.q {
                polkas.entry(*session).or_default().insert((*round, *value));
            }
        }
        polkas.values().filter(|p| p.iter().any(|(r, v)| p.iter().any(|(r2, v2)| r2 != r && v2 != v))).count()
    }
}
