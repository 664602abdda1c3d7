//! The scripted strategies: each corrupts one thing its author imagined (module documentation
//! of [`super`] has the table). They keep the honest agent inside and rewrite its inputs or
//! outputs.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use rand::Rng;

use super::{
    accept_for, bound_map, digest, fake_outcome, first_eight, outcome_of, BadProposerMode, Byzantine, Strategy,
};
use crate::fixed::Ppm;
use crate::protocol::{Input, Message, Node, Output, Proposal, ProposalMode, RoundVote, SignedVote, ValueId};
use crate::quorum::quorum_for;
use crate::sign::{Signer, Verifier};
use crate::types::{AgentSpecialization, AgentVote, CandidateId, SessionId, TimeMs};
use crate::wire;

/// Honest votes of other agents a `replay` agent remembers.
pub(super) const REPLAY_MEMORY: usize = 256;
/// Sessions whose opening time or held vote a `delay-to-deadline` agent remembers.
pub(super) const SESSION_MEMORY: usize = 1_024;
/// Proposal ids an `equivocate` agent remembers, to flip a nil round vote to a real value.
pub(super) const PROPOSAL_MEMORY: usize = 256;
/// The accept score of an attacking vote.
pub(super) const ATTACK_SCORE: Ppm = Ppm::saturating(950_000);
/// The confidence of an attacking vote.
pub(super) const ATTACK_CONFIDENCE: Ppm = Ppm::saturating(990_000);
/// How long before the deadline a `delay-to-deadline` agent releases its vote.
pub(super) const RELEASE_BEFORE_DEADLINE_MS: TimeMs = 50;
/// How far under the detector's threshold an `adaptive` agent stays.
pub(super) const ADAPTIVE_MARGIN: Ppm = Ppm::saturating(50_000);
/// Lower end of the `random` strategy's scores and confidences, in parts per million.
pub(super) const RANDOM_MIN_PPM: u64 = 500_000;

impl<S: Signer + Clone, V: Verifier> Byzantine<S, V> {
    /// The scripted strategies' [`Node::handle`].
    pub(super) fn handle_scripted(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        let start = out.len();
        match self.strategy {
            Strategy::Silent | Strategy::FullPower => {}
            Strategy::VoteWorst
            | Strategy::Random
            | Strategy::InflateConfidence
            | Strategy::Collude
            | Strategy::Adaptive => {
                let input = match input {
                    Input::LocalVote(vote) => Input::LocalVote(self.corrupt_vote(vote)),
                    other => other,
                };
                self.inner.handle(now_ms, input, out);
            }
            Strategy::DelayToDeadline => self.handle_delayed(now_ms, input, out),
            Strategy::Equivocate => {
                if let Input::Receive { message: Message::Proposal(p), .. } = &input {
                    self.note_proposal(p);
                }
                self.inner.handle(now_ms, input, out);
                self.equivocate(start, out);
            }
            Strategy::BadProposer => {
                self.inner.handle(now_ms, input, out);
                self.corrupt_proposals(start, out);
            }
            Strategy::Replay => self.handle_replay(now_ms, input, out),
            Strategy::Forge => {
                let own = if let Input::LocalVote(v) = &input { Some(v.clone()) } else { None };
                self.inner.handle(now_ms, input, out);
                if let Some(own) = own {
                    self.forge(&own, out);
                }
            }
        }
        debug_assert!(self.strategy != Strategy::Silent || out.len() == start, "a silent agent outputs nothing");
    }

    /// `vote-worst`, `random`, `inflate-confidence`, `collude`, `adaptive`: the own vote.
    pub(super) fn corrupt_vote(&mut self, vote: AgentVote) -> AgentVote {
        if vote.scores.is_empty() {
            return vote; // Nothing to rate candidates by: vote honestly.
        }
        match self.strategy {
            Strategy::VoteWorst => match worst_rated(&vote.scores) {
                Some(worst) => accept_for(vote, worst, ATTACK_SCORE, ATTACK_CONFIDENCE),
                None => vote,
            },
            Strategy::Random => {
                let candidates: Vec<CandidateId> = vote.scores.keys().copied().collect();
                let index = self.rng.gen_range(0..candidates.len());
                let score = Ppm::saturating(self.rng.gen_range(RANDOM_MIN_PPM..=u64::from(Ppm::ONE.raw())));
                let confidence = Ppm::saturating(self.rng.gen_range(RANDOM_MIN_PPM..=u64::from(Ppm::ONE.raw())));
                match candidates.get(index) {
                    Some(c) => accept_for(vote, *c, score, confidence),
                    None => vote,
                }
            }
            Strategy::InflateConfidence if vote.value.accept_score().is_some() => {
                let chosen = vote.candidate;
                accept_for(vote, chosen, Ppm::ONE, Ppm::ONE)
            }
            Strategy::Collude => match collusion_target(self.collusion_key, vote.session, &vote.scores) {
                Some(target) => accept_for(vote, target, ATTACK_SCORE, ATTACK_CONFIDENCE),
                None => vote,
            },
            Strategy::Adaptive => self.adaptive_vote(vote),
            _ => vote,
        }
    }

    /// `adaptive`: boosts the collusion target by `threshold − 0.05` and votes for the argmax
    /// (the target on a tie).
    fn adaptive_vote(&self, mut vote: AgentVote) -> AgentVote {
        let Some(target) = collusion_target(self.collusion_key, vote.session, &vote.scores) else { return vote };
        let boost = self.engine.detector.threshold.raw().saturating_sub(ADAPTIVE_MARGIN.raw());
        let boosted = vote.scores.get(&target).map_or(0, |s| s.raw()).saturating_add(boost);
        vote.scores.insert(target, Ppm::saturating(u64::from(boosted)));
        let best = vote.scores.iter().max_by_key(|(c, s)| (**s, **c == target, Reverse(**c)));
        let Some((chosen, score)) = best.map(|(c, s)| (*c, *s)) else { return vote };
        let confidence = vote.confidence;
        accept_for(vote, chosen, score, confidence)
    }

    /// `delay-to-deadline`: releases due votes, then holds the own vote or forwards the input.
    pub(super) fn handle_delayed(&mut self, now: TimeMs, input: Input, out: &mut Vec<Output>) {
        self.release_due(now, out);
        match input {
            Input::LocalVote(vote) if now < self.release_at(vote.session, now) => {
                self.held.entry(vote.session).or_insert((now, vote));
                bound_map(&mut self.held, SESSION_MEMORY);
            }
            input => {
                if let Input::Receive { message: Message::Open(open), .. } = &input {
                    // The first Open counts: a later, spoofed one cannot move the release.
                    self.opened.entry(open.spec.session).or_insert(open.spec.opened_ms);
                    bound_map(&mut self.opened, SESSION_MEMORY);
                }
                self.inner.handle(now, input, out);
            }
        }
    }

    /// When a vote of `session` held since `held_at` is released: `deadline − 50 ms` after the
    /// session opened (after `held_at` if its `Open` was never seen).
    fn release_at(&self, session: SessionId, held_at: TimeMs) -> TimeMs {
        let opened = self.opened.get(&session).copied().unwrap_or(held_at);
        opened.saturating_add(self.engine.deadline_ms).saturating_sub(RELEASE_BEFORE_DEADLINE_MS)
    }

    fn release_due(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        let due: Vec<SessionId> =
            self.held.iter().filter(|(s, (at, _))| self.release_at(**s, *at) <= now).map(|(s, _)| *s).collect();
        for session in due {
            if let Some((_, vote)) = self.held.remove(&session) {
                self.inner.handle(now, Input::LocalVote(vote), out);
            }
        }
    }

    pub(super) fn note_proposal(&mut self, p: &Proposal) {
        self.proposals_seen.entry((p.value.session, p.round)).or_insert_with(|| ValueId::of(&p.value));
        bound_map(&mut self.proposals_seen, PROPOSAL_MEMORY);
    }

    /// `equivocate`: own broadcasts of votes, round votes and proposals become per-peer sends,
    /// honest to the first `⌊len / 2⌋` peers (ascending) and conflicting to the rest. The client
    /// gets neither (it only reads commit certificates, which pass through unchanged).
    pub(super) fn equivocate(&mut self, start: usize, out: &mut Vec<Output>) {
        let produced = out.split_off(start);
        for output in produced {
            let Output::Broadcast(message) = output else {
                out.push(output);
                continue;
            };
            match self.conflicting(&message) {
                Some(conflict) => {
                    let half = self.peers.len() / 2;
                    for (i, to) in self.peers.iter().enumerate() {
                        let message = if i < half { message.clone() } else { conflict.clone() };
                        out.push(Output::Send { to: *to, message });
                    }
                }
                None => out.push(Output::Broadcast(message)),
            }
        }
    }

    /// A message that conflicts with `message`, signed with the own key; a pure function of
    /// `message` (and the proposals seen), so retransmissions repeat the same conflict.
    fn conflicting(&mut self, message: &Message) -> Option<Message> {
        let me = self.inner.id();
        match message {
            Message::Vote(v) if v.vote.agent == me => Some(Message::Vote(self.sign_vote(conflicting_vote(&v.vote)))),
            Message::RoundVote(v) if v.agent == me => Some(Message::RoundVote(self.flipped(v))),
            Message::Proposal(p) if p.proposer == me => {
                self.note_proposal(p);
                let mut value = p.value.clone();
                if value.votes.len() < 2 {
                    return None;
                }
                value.votes.pop(); // Votes are ascending by agent: the highest agent's goes.
                value.outcome = outcome_of(value.mode, &value.spec, &value.votes, self.inner.registry(), &self.engine);
                let trimmed = Proposal { value, ..(**p).clone() };
                Some(Message::Proposal(Box::new(self.sign_proposal(trimmed))))
            }
            _ => None,
        }
    }

    /// A prevote or precommit with its value flipped: a value becomes nil, nil becomes the
    /// round's proposal (or a value nobody proposed).
    fn flipped(&self, v: &RoundVote) -> RoundVote {
        let value = match v.value {
            Some(_) => None,
            None => Some(
                self.proposals_seen
                    .get(&(v.session, v.round))
                    .copied()
                    .unwrap_or_else(|| ValueId(digest(b"bftsim/equivocate/v1", &[v.session.0, u64::from(v.round)]))),
            ),
        };
        let signature = self.signer.sign(&wire::round_vote_signing_bytes(v.kind, v.session, v.round, value));
        RoundVote { value, signature, ..v.clone() }
    }

    /// `bad-proposer`: rewrites or drops the own proposals among the new outputs.
    pub(super) fn corrupt_proposals(&self, start: usize, out: &mut Vec<Output>) {
        let me = self.inner.id();
        let produced = out.split_off(start);
        for output in produced {
            match output {
                Output::Broadcast(Message::Proposal(p)) if p.proposer == me => {
                    let proposal = match BadProposerMode::for_session(p.value.session) {
                        BadProposerMode::Withhold => continue,
                        BadProposerMode::InvalidAggregate => self.invalid_aggregate(*p),
                        BadProposerMode::CherryPick => self.cherry_pick(*p),
                    };
                    out.push(Output::Broadcast(Message::Proposal(Box::new(proposal))));
                }
                other => out.push(other),
            }
        }
    }

    fn invalid_aggregate(&self, mut p: Proposal) -> Proposal {
        p.value.outcome = fake_outcome(&p.value.outcome, &p.value.spec.spec.candidates);
        self.sign_proposal(p)
    }

    /// Removes the votes supporting the claimed winner, highest agent first, while more than
    /// the committee quorum remains, and recomputes the outcome: a valid proposal. Only fresh
    /// normal-mode proposals are touched (a re-proposal must keep its value, L15; a fallback
    /// must stay a non-decision of the engine, V6).
    fn cherry_pick(&self, p: Proposal) -> Proposal {
        let Some(chosen) = p.value.outcome.chosen() else { return p };
        if p.valid_round.is_some() || p.value.mode != ProposalMode::Normal {
            return p;
        }
        let n = self.peers.len() as u64 + 1;
        let q = quorum_for(n).ok().and_then(|q| usize::try_from(q).ok()).unwrap_or(usize::MAX);
        let mut value = p.value.clone();
        while value.votes.len() > q {
            let supporter =
                value.votes.iter().rposition(|v| v.vote.candidate == chosen && v.vote.value.accept_score().is_some());
            let Some(index) = supporter else { break };
            value.votes.remove(index);
        }
        if value.votes.len() == p.value.votes.len() {
            return p;
        }
        debug_assert!(value.votes.len() >= q, "a cherry-picked proposal keeps a quorum of votes");
        value.outcome = outcome_of(value.mode, &value.spec, &value.votes, self.inner.registry(), &self.engine);
        self.sign_proposal(Proposal { value, ..p })
    }

    /// `replay`: remembers other agents' votes; on the own vote of session s > 0 re-broadcasts
    /// those of earlier sessions and one re-labelled with s.
    pub(super) fn handle_replay(&mut self, now: TimeMs, input: Input, out: &mut Vec<Output>) {
        let own_session = match &input {
            Input::LocalVote(v) => Some(v.session),
            Input::Receive { message: Message::Vote(v), .. } if v.vote.agent != self.inner.id() => {
                if !self.remembered.contains(v) {
                    self.remembered.push_back(v.clone());
                    while self.remembered.len() > REPLAY_MEMORY {
                        self.remembered.pop_front();
                    }
                }
                None
            }
            _ => None,
        };
        self.inner.handle(now, input, out);
        let Some(session) = own_session.filter(|s| s.0 > 0) else { return };
        let old: Vec<&SignedVote> = self.remembered.iter().filter(|v| v.vote.session < session).collect();
        for v in &old {
            out.push(Output::Broadcast(Message::Vote((*v).clone())));
        }
        if let Some(last) = old.last() {
            let mut relabelled = (*last).clone();
            relabelled.vote.session = session;
            out.push(Output::Broadcast(Message::Vote(relabelled)));
        }
    }

    /// `forge`: a vote in every peer's name for the own worst candidate, signed with the own key.
    pub(super) fn forge(&self, own: &AgentVote, out: &mut Vec<Output>) {
        let target = worst_rated(&own.scores).unwrap_or(own.candidate);
        for p in &self.peers {
            let mut vote = own.clone();
            vote.agent = *p;
            vote.specialization = AgentSpecialization::cycled(p.0 as usize);
            let vote = accept_for(vote, target, ATTACK_SCORE, ATTACK_CONFIDENCE);
            out.push(Output::Broadcast(Message::Vote(self.sign_vote(vote))));
        }
    }
}

/// The lowest-scored candidate (the smallest id on a tie).
pub(super) fn worst_rated(scores: &BTreeMap<CandidateId, Ppm>) -> Option<CandidateId> {
    scores.iter().min_by_key(|(c, s)| (**s, **c)).map(|(c, _)| *c)
}

/// The highest-scored candidate (the smallest id on a tie).
pub(super) fn best_rated(scores: &BTreeMap<CandidateId, Ppm>) -> Option<CandidateId> {
    scores.iter().max_by_key(|(c, s)| (**s, Reverse(**c))).map(|(c, _)| *c)
}

/// The candidate the agents of `key` push in `session`: the scored candidates (ascending) at
/// index `hash(key, session) mod len`, moved to the next one when that is this agent's own best
/// and there are at least two. Colluders that agree on the best candidate agree on the target.
pub(super) fn collusion_target(
    key: u64,
    session: SessionId,
    scores: &BTreeMap<CandidateId, Ppm>,
) -> Option<CandidateId> {
    let candidates: Vec<CandidateId> = scores.keys().copied().collect();
    let len = candidates.len();
    if len == 0 {
        return None;
    }
    let hash = digest(b"bftsim/collude/v1", &[key, session.0]);
    let mut index = usize::try_from(u64::from_be_bytes(first_eight(&hash)) % len as u64).unwrap_or(0);
    if len >= 2 && candidates.get(index).copied() == best_rated(scores) {
        index = (index + 1) % len;
    }
    candidates.get(index).copied()
}

/// A vote that differs from `vote`: for its worst-rated other candidate with the same score and
/// confidence (scores made consistent), or, with no other candidate, another confidence.
pub(super) fn conflicting_vote(vote: &AgentVote) -> AgentVote {
    let other = vote.scores.iter().filter(|(c, _)| **c != vote.candidate).min_by_key(|(c, s)| (**s, **c));
    match other {
        Some((c, _)) => {
            let score = vote.value.accept_score().filter(|s| *s > Ppm::ZERO).unwrap_or(ATTACK_SCORE);
            accept_for(vote.clone(), *c, score, vote.confidence)
        }
        None => {
            let mut w = vote.clone();
            w.confidence = if w.confidence == Ppm::ONE { Ppm::saturating(999_999) } else { Ppm::ONE };
            w
        }
    }
}
