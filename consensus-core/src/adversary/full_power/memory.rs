//! What a full-power agent has seen: the signed material it may reuse, per session, and where
//! the honest agents are. Every collection is bounded (the constants below); the oldest entry
//! goes first, and sessions beyond [`MAX_SESSIONS`] are forgotten lowest id first.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::protocol::messages::SignedSpec;
use crate::protocol::{Commit, Message, Proposal, ProposalValue, Round, RoundVote, SignedVote, ValueId, VoteKind};
use crate::types::{AgentId, SessionId};

/// Sessions remembered.
pub const MAX_SESSIONS: usize = 16;
/// Distinct signed session votes per session (received, carried in proposals, or its own).
pub const MAX_VOTES: usize = 64;
/// Distinct proposals per session.
pub const MAX_PROPOSALS: usize = 16;
/// Distinct prevotes and precommits per session.
pub const MAX_ROUND_VOTES: usize = 256;
/// Commit certificates per session.
pub const MAX_COMMITS: usize = 2;
/// Values it assembled itself, per session.
pub const MAX_OWN_VALUES: usize = 8;

/// How much is held, against the bounds (for tests and reports).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryUse {
    /// Sessions remembered (≤ [`MAX_SESSIONS`]).
    pub sessions: usize,
    /// The most votes of one session (≤ [`MAX_VOTES`]).
    pub votes: usize,
    /// The most proposals of one session (≤ [`MAX_PROPOSALS`]).
    pub proposals: usize,
    /// The most round votes of one session (≤ [`MAX_ROUND_VOTES`]).
    pub round_votes: usize,
    /// The most commits of one session (≤ [`MAX_COMMITS`]).
    pub commits: usize,
    /// The most own values of one session (≤ [`MAX_OWN_VALUES`]).
    pub own_values: usize,
    /// Random streams (≤ [`super::MAX_STREAMS`]).
    pub streams: usize,
    /// Held messages (≤ [`super::MAX_HELD`]).
    pub held: usize,
    /// Action budgets (≤ [`super::MAX_BUDGETS`]).
    pub budgets: usize,
}

/// One session as the agent saw it.
#[derive(Default)]
pub(super) struct SessionView {
    /// The client-signed specification (from `Open`, a proposal or a commit).
    pub spec: Option<SignedSpec>,
    pub votes: VecDeque<SignedVote>,
    /// Proposals with their value ids.
    pub proposals: VecDeque<(Proposal, ValueId)>,
    pub round_votes: VecDeque<RoundVote>,
    pub commits: VecDeque<Commit>,
    /// Values it assembled, with their ids.
    pub own_values: VecDeque<(ProposalValue, ValueId)>,
    /// The round its inner honest agent is in: what the honest agents are doing now.
    pub round: Round,
    /// The highest round of a message it received in the session.
    pub highest_seen: Round,
}

impl SessionView {
    /// The value of `id`, if it saw or made it.
    pub fn value(&self, id: ValueId) -> Option<&ProposalValue> {
        let proposed = self.proposals.iter().find(|(_, v)| *v == id).map(|(p, _)| &p.value);
        proposed.or_else(|| self.own_values.iter().find(|(_, v)| *v == id).map(|(v, _)| v))
    }

    /// Every value id it knows a value of.
    pub fn value_ids(&self) -> Vec<ValueId> {
        let mut ids: Vec<ValueId> =
            self.proposals.iter().map(|(_, id)| *id).chain(self.own_values.iter().map(|(_, id)| *id)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The round votes of (round, kind), optionally for one value only.
    pub fn round_votes_of(&self, round: Round, kind: VoteKind) -> impl Iterator<Item = &RoundVote> {
        self.round_votes.iter().filter(move |v| v.round == round && v.kind == kind)
    }

    /// One vote per signer for `value` in (round, kind), ascending by signer.
    pub fn one_per_signer(&self, round: Round, kind: VoteKind, value: Option<ValueId>) -> Vec<RoundVote> {
        let mut by_signer: BTreeMap<AgentId, RoundVote> = BTreeMap::new();
        for v in self.round_votes_of(round, kind).filter(|v| v.value == value) {
            by_signer.entry(v.agent).or_insert_with(|| v.clone());
        }
        by_signer.into_values().collect()
    }

    /// The values voted for (nil excluded) in `round`, by other agents or itself.
    pub fn values_voted(&self, round: Round) -> Vec<ValueId> {
        let mut ids: Vec<ValueId> =
            self.round_votes.iter().filter(|v| v.round == round).filter_map(|v| v.value).collect();
        ids.extend(self.proposals.iter().filter(|(p, _)| p.round == round).map(|(_, id)| *id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The agents other than `me` it saw precommit a value other than `id` in a round above
    /// `round`: locked (L36) later than a polka of `round` for `id`, on another value, so an
    /// honest one among them must refuse a re-proposal of `id` with valid round `round` (L28).
    pub fn locked_above(&self, round: Round, id: ValueId, me: AgentId) -> Vec<AgentId> {
        let mut agents: Vec<AgentId> = self
            .round_votes
            .iter()
            .filter(|v| v.kind == VoteKind::Precommit && v.round > round && v.agent != me)
            .filter(|v| v.value.is_some_and(|x| x != id))
            .map(|v| v.agent)
            .collect();
        agents.sort_unstable();
        agents.dedup();
        agents
    }

    /// (round, value, distinct prevoters) for every value of which it knows the value and holds
    /// prevotes: the polkas it could certify (with its own prevote added), fewest rounds first.
    pub fn polkas(&self) -> Vec<(Round, ValueId, usize)> {
        let mut signers: BTreeMap<(Round, ValueId), Vec<AgentId>> = BTreeMap::new();
        for v in self.round_votes.iter().filter(|v| v.kind == VoteKind::Prevote) {
            if let Some(id) = v.value {
                let s = signers.entry((v.round, id)).or_default();
                if !s.contains(&v.agent) {
                    s.push(v.agent);
                }
            }
        }
        signers
            .into_iter()
            .filter(|((_, id), _)| self.value(*id).is_some())
            .map(|((round, id), s)| (round, id, s.len()))
            .collect()
    }
}

/// Everything it saw, by session.
#[derive(Default)]
pub(super) struct Memory {
    sessions: BTreeMap<SessionId, SessionView>,
}

/// Appends `item` unless held; drops the oldest beyond `max`.
fn remember<T: PartialEq>(list: &mut VecDeque<T>, item: T, max: usize) {
    if !list.contains(&item) {
        list.push_back(item);
        while list.len() > max {
            list.pop_front();
        }
    }
}

impl Memory {
    pub fn view(&self, session: SessionId) -> Option<&SessionView> {
        self.sessions.get(&session)
    }

    fn view_mut(&mut self, session: SessionId) -> &mut SessionView {
        if !self.sessions.contains_key(&session) && self.sessions.len() >= MAX_SESSIONS {
            self.sessions.pop_first();
        }
        self.sessions.entry(session).or_default()
    }

    /// Every session remembered, ascending.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.sessions.keys().copied().collect()
    }

    /// The highest session remembered.
    pub fn latest_session(&self) -> Option<SessionId> {
        self.sessions.keys().next_back().copied()
    }

    /// Records the signed parts of a message received or sent by its inner agent (`me`).
    pub fn observe(&mut self, message: &Message, me: AgentId) {
        match message {
            Message::Open(open) => self.learn_spec(open),
            Message::Vote(v) => remember(&mut self.view_mut(v.vote.session).votes, v.clone(), MAX_VOTES),
            Message::Proposal(p) => self.observe_proposal(p, me),
            Message::RoundVote(v) => self.observe_round_vote(v, me),
            Message::Commit(c) => {
                self.observe_proposal(&c.proposal, me);
                for v in &c.precommits {
                    self.observe_round_vote(v, me);
                }
                let view = self.view_mut(c.proposal.value.session);
                let seen = view.commits.iter().any(|held| held.proposal.signature == c.proposal.signature);
                if !seen {
                    remember(&mut view.commits, (**c).clone(), MAX_COMMITS);
                }
            }
            Message::Sync { .. } | Message::Pruned { .. } => {}
        }
    }

    fn learn_spec(&mut self, spec: &SignedSpec) {
        let view = self.view_mut(spec.spec.session);
        if view.spec.is_none() {
            view.spec = Some(spec.clone());
        }
    }

    fn observe_proposal(&mut self, p: &Proposal, me: AgentId) {
        let session = p.value.session;
        if p.value.spec.spec.session == session {
            self.learn_spec(&p.value.spec);
        }
        for v in &p.polka {
            self.observe_round_vote(v, me);
        }
        let view = self.view_mut(session);
        for v in p.value.votes.iter().filter(|v| v.vote.session == session) {
            remember(&mut view.votes, v.clone(), MAX_VOTES);
        }
        if p.proposer != me {
            view.highest_seen = view.highest_seen.max(p.round);
        }
        let held = view.proposals.iter().any(|(h, _)| h.round == p.round && h.signature == p.signature);
        if !held {
            let id = ValueId::of(&p.value);
            view.proposals.push_back((p.clone(), id));
            while view.proposals.len() > MAX_PROPOSALS {
                view.proposals.pop_front();
            }
        }
    }

    fn observe_round_vote(&mut self, v: &RoundVote, me: AgentId) {
        let view = self.view_mut(v.session);
        if v.agent != me {
            view.highest_seen = view.highest_seen.max(v.round);
        }
        remember(&mut view.round_votes, v.clone(), MAX_ROUND_VOTES);
    }

    /// Keeps a value it assembled.
    pub fn keep_own_value(&mut self, value: &ProposalValue, id: ValueId) {
        let view = self.view_mut(value.session);
        if !view.own_values.iter().any(|(_, held)| *held == id) {
            view.own_values.push_back((value.clone(), id));
            while view.own_values.len() > MAX_OWN_VALUES {
                view.own_values.pop_front();
            }
        }
    }

    /// Updates each session's current round from the inner agent.
    pub fn follow_rounds(&mut self, round_of: impl Fn(SessionId) -> Option<Round>) {
        for (session, view) in self.sessions.iter_mut() {
            if let Some(r) = round_of(*session) {
                view.round = r;
            }
        }
    }

    pub fn usage(&self) -> MemoryUse {
        let most = |f: fn(&SessionView) -> usize| self.sessions.values().map(f).max().unwrap_or(0);
        MemoryUse {
            sessions: self.sessions.len(),
            votes: most(|v| v.votes.len()),
            proposals: most(|v| v.proposals.len()),
            round_votes: most(|v| v.round_votes.len()),
            commits: most(|v| v.commits.len()),
            own_values: most(|v| v.own_values.len()),
            ..MemoryUse::default()
        }
    }
}
