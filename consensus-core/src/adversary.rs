//! Byzantine behaviours for the simulator: a [`Byzantine`] node wraps an honest
//! [`Agent`] and corrupts what goes in or comes out, implementing the same [`Node`] trait, so
//! the runner drives honest and Byzantine agents alike (as Malachite's Byzantine middleware and
//! Twins do). Every behaviour is deterministic: random choices come from one ChaCha8 stream
//! seeded by the caller, and no behaviour panics.
//!
//! | strategy | what the agent does | what the honest protocol does about it |
//! |---|---|---|
//! | `silent` | consumes every input, outputs nothing (crash / omission) | counted among the `f` faults: `q = n − f` agents still decide; its proposer rounds time out (L56–L61) |
//! | `vote-worst` | votes for the candidate it rates lowest, score 0.95, confidence 0.99, scores rewritten to stay consistent | the vote is valid and counted; the engine's detector (design §3.2) flags the deviation, the 66% threshold bounds its weight; the simulator measures unanimity validity |
//! | `random` | a uniformly random candidate, score and confidence uniform in [0.5, 1] | as `vote-worst` |
//! | `equivocate` | its signed vote, prevotes, precommits and proposals go honest to the first half of its peers and conflicting (validly signed) to the second half | a first vote is kept per agent and a second one is evidence (L9), proposals likewise; both sides of a round-vote equivocation are kept as evidence and each counted once for its own value (L31–L33); quorum intersection keeps agreement |
//! | `inflate-confidence` | keeps its honest choice with confidence and score 1.0 | the engine weighs confidence as `0.5 + 0.5 c`, so its weight grows by at most a third |
//! | `delay-to-deadline` | holds its own vote until `deadline − 50 ms` | the proposer waits for all `n` votes only until VoteCollection (L16), then proposes with `q` |
//! | `collude` | every agent with the same collusion key votes for one target per session (never its own best when it can), score 0.95, confidence 0.99 | `f < n / 3` colluders cannot reach the threshold alone; the detector sees them, but the mean detector is dragged towards them |
//! | `adaptive` | adds `threshold − 0.05` to the collusion target's score and votes for the argmax | stays under the detector's threshold by design; it wins only when the target was already close to the best |
//! | `bad-proposer` | by session mod 3: withholds its proposals, proposes an invalid aggregate, or cherry-picks the votes | withheld: propose timeout and the next round (L56); invalid: V4 fails, honest agents prevote nil (L24); cherry-picked: valid, accepted — the influence docs/protocol.md admits |
//! | `replay` | re-broadcasts honest agents' votes of earlier sessions, and one copy re-labelled with the current session | signatures bind the session: old votes are stale (dropped, or answered with a Commit), the re-labelled copy is `BadSignature` |
//! | `forge` | broadcasts, for every peer, a vote claiming to be from that peer for its worst candidate, signed with its own key | `BadSignature`; accepted only under the `skip-signature-check` mutation, which the simulator must catch |
//!
//! The Byzantine agent keeps its own copies of what it needs from the honest agent's
//! configuration (its signer, its peers, the engine configuration).

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::aggregate::{aggregate, SessionInput};
use crate::config::EngineConfig;
use crate::fixed::Ppm;
use crate::policies::fallback_consensus;
use crate::protocol::messages::SignedSpec;
use crate::protocol::{
    Agent, AgreedOutcome, Input, Message, Node, Output, Proposal, ProposalMode, Round, RoundVote, SignedVote, ValueId,
};
use crate::quorum::quorum_for;
use crate::registry::Registry;
use crate::sign::{Signer, Verifier};
use crate::types::{
    AgentId, AgentSpecialization, AgentVote, CandidateId, ConsensusError, ConsensusMethod, ConsensusResult, Decision,
    EscalationAction, Priority, SessionId, TimeMs, VoteValue,
};
use crate::wire;

/// Honest votes of other agents a `replay` agent remembers.
const REPLAY_MEMORY: usize = 256;
/// Sessions whose opening time or held vote a `delay-to-deadline` agent remembers.
const SESSION_MEMORY: usize = 1_024;
/// Proposal ids an `equivocate` agent remembers, to flip a nil round vote to a real value.
const PROPOSAL_MEMORY: usize = 256;
/// The accept score of an attacking vote.
const ATTACK_SCORE: Ppm = Ppm::saturating(950_000);
/// The confidence of an attacking vote.
const ATTACK_CONFIDENCE: Ppm = Ppm::saturating(990_000);
/// How long before the deadline a `delay-to-deadline` agent releases its vote.
const RELEASE_BEFORE_DEADLINE_MS: TimeMs = 50;
/// How far under the detector's threshold an `adaptive` agent stays.
const ADAPTIVE_MARGIN: Ppm = Ppm::saturating(50_000);
/// Lower end of the `random` strategy's scores and confidences, in parts per million.
const RANDOM_MIN_PPM: u64 = 500_000;

/// A Byzantine behaviour (module documentation: what each does and what the protocol does
/// about it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Crash / omission: outputs nothing.
    #[default]
    Silent,
    /// Votes for its worst-rated candidate with high confidence.
    VoteWorst,
    /// Votes for a random candidate with random score and confidence.
    Random,
    /// Sends conflicting signed messages to the two halves of its peers.
    Equivocate,
    /// Keeps its honest choice with confidence and score 1.0.
    InflateConfidence,
    /// Holds its vote until just before the session deadline.
    DelayToDeadline,
    /// Votes with the agents of its collusion key for one target.
    Collude,
    /// Pushes the collusion target while staying under the detector's threshold.
    Adaptive,
    /// As proposer, withholds, proposes invalid aggregates, or cherry-picks votes.
    BadProposer,
    /// Replays honest agents' votes of earlier sessions.
    Replay,
    /// Sends votes in other agents' names, signed with its own key.
    Forge,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Strategy {
    /// Every strategy, in declaration order.
    pub const ALL: [Strategy; 11] = [
        Strategy::Silent,
        Strategy::VoteWorst,
        Strategy::Random,
        Strategy::Equivocate,
        Strategy::InflateConfidence,
        Strategy::DelayToDeadline,
        Strategy::Collude,
        Strategy::Adaptive,
        Strategy::BadProposer,
        Strategy::Replay,
        Strategy::Forge,
    ];

    /// The kebab-case name, as in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Silent => "silent",
            Strategy::VoteWorst => "vote-worst",
            Strategy::Random => "random",
            Strategy::Equivocate => "equivocate",
            Strategy::InflateConfidence => "inflate-confidence",
            Strategy::DelayToDeadline => "delay-to-deadline",
            Strategy::Collude => "collude",
            Strategy::Adaptive => "adaptive",
            Strategy::BadProposer => "bad-proposer",
            Strategy::Replay => "replay",
            Strategy::Forge => "forge",
        }
    }

    /// The strategy of a kebab-case name.
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What a `bad-proposer` does with its own proposals in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadProposerMode {
    /// Drops them: the round times out.
    Withhold,
    /// Claims an outcome that is not the aggregate of the votes carried: invalid (V4).
    InvalidAggregate,
    /// Leaves out votes for the winner while `q` votes remain: valid.
    CherryPick,
}

impl BadProposerMode {
    /// The mode of `session`: session id mod 3 picks withhold, invalid aggregate, cherry-pick.
    pub fn for_session(session: SessionId) -> BadProposerMode {
        match session.0 % 3 {
            0 => BadProposerMode::Withhold,
            1 => BadProposerMode::InvalidAggregate,
            _ => BadProposerMode::CherryPick,
        }
    }
}

/// An honest [`Agent`] with a Byzantine [`Strategy`] around it.
pub struct Byzantine<S, V> {
    inner: Agent<S, V>,
    strategy: Strategy,
    /// A clone of the agent's signer: Byzantine messages are signed with its own key.
    signer: S,
    /// The committee without this agent, ascending.
    peers: Vec<AgentId>,
    rng: ChaCha8Rng,
    collusion_key: u64,
    engine: EngineConfig,
    /// `delay-to-deadline`: when each session opened, from its `Open`.
    opened: BTreeMap<SessionId, TimeMs>,
    /// `delay-to-deadline`: held votes and when they arrived.
    held: BTreeMap<SessionId, (TimeMs, AgentVote)>,
    /// `replay`: other agents' votes, oldest first, distinct.
    remembered: VecDeque<SignedVote>,
    /// `equivocate`: the first proposal id seen per session and round.
    proposals_seen: BTreeMap<(SessionId, Round), ValueId>,
}

impl<S: Signer + Clone, V: Verifier> Byzantine<S, V> {
    /// Wraps `inner`. `signer` must be a clone of the agent's signer; `peers` is the committee
    /// (this agent is removed if present); `engine` is the agent's engine configuration;
    /// `seed` seeds every random choice; agents with the same `collusion_key` collude.
    pub fn new(
        inner: Agent<S, V>,
        signer: S,
        strategy: Strategy,
        peers: Vec<AgentId>,
        engine: EngineConfig,
        seed: u64,
        collusion_key: u64,
    ) -> Self {
        let me = inner.id();
        debug_assert_eq!(signer.agent(), me, "the Byzantine signer must be the agent's own");
        let mut peers: Vec<AgentId> = peers.into_iter().filter(|p| *p != me).collect();
        peers.sort_unstable();
        peers.dedup();
        Byzantine {
            inner,
            strategy,
            signer,
            peers,
            rng: ChaCha8Rng::seed_from_u64(seed),
            collusion_key,
            engine,
            opened: BTreeMap::new(),
            held: BTreeMap::new(),
            remembered: VecDeque::new(),
            proposals_seen: BTreeMap::new(),
        }
    }

    /// The honest agent inside.
    pub fn inner(&self) -> &Agent<S, V> {
        &self.inner
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    fn sign_vote(&self, vote: AgentVote) -> SignedVote {
        let signature = self.signer.sign(&wire::vote_signing_bytes(&vote));
        SignedVote { vote, signature }
    }

    fn sign_proposal(&self, mut p: Proposal) -> Proposal {
        p.signature = self.signer.sign(&wire::proposal_signing_bytes(&p.value, p.round, p.valid_round));
        p
    }

    /// `vote-worst`, `random`, `inflate-confidence`, `collude`, `adaptive`: the own vote.
    fn corrupt_vote(&mut self, vote: AgentVote) -> AgentVote {
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
    fn handle_delayed(&mut self, now: TimeMs, input: Input, out: &mut Vec<Output>) {
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

    fn note_proposal(&mut self, p: &Proposal) {
        self.proposals_seen.entry((p.value.session, p.round)).or_insert_with(|| ValueId::of(&p.value));
        bound_map(&mut self.proposals_seen, PROPOSAL_MEMORY);
    }

    /// `equivocate`: own broadcasts of votes, round votes and proposals become per-peer sends,
    /// honest to the first `⌊len / 2⌋` peers (ascending) and conflicting to the rest. The client
    /// gets neither (it only reads commit certificates, which pass through unchanged).
    fn equivocate(&mut self, start: usize, out: &mut Vec<Output>) {
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
    fn corrupt_proposals(&self, start: usize, out: &mut Vec<Output>) {
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
    fn handle_replay(&mut self, now: TimeMs, input: Input, out: &mut Vec<Output>) {
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
    fn forge(&self, own: &AgentVote, out: &mut Vec<Output>) {
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

impl<S: Signer + Clone, V: Verifier> Node for Byzantine<S, V> {
    fn id(&self) -> AgentId {
        self.inner.id()
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        let start = out.len();
        match self.strategy {
            Strategy::Silent => {}
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
}

/// `vote` turned into an `Accept` of `candidate` with `score` and `confidence`, its scores
/// rewritten so that `candidate` is their maximum with exactly `score` (strictly, unless
/// `score` is zero): the engine's `scores_consistent` check then passes.
fn accept_for(mut vote: AgentVote, candidate: CandidateId, score: Ppm, confidence: Ppm) -> AgentVote {
    let priority = match &vote.value {
        VoteValue::Accept { priority, .. } => *priority,
        _ => Priority::High,
    };
    let below = Ppm::saturating(u64::from(score.raw().saturating_sub(1)));
    for (c, s) in vote.scores.iter_mut() {
        if *c != candidate && *s >= score {
            *s = below;
        }
    }
    vote.scores.insert(candidate, score);
    vote.candidate = candidate;
    vote.confidence = confidence;
    vote.value = VoteValue::Accept { score, priority };
    debug_assert_eq!(vote.scores.values().max(), Some(&score), "the accepted candidate has the highest score");
    vote
}

/// The lowest-scored candidate (the smallest id on a tie).
fn worst_rated(scores: &BTreeMap<CandidateId, Ppm>) -> Option<CandidateId> {
    scores.iter().min_by_key(|(c, s)| (**s, **c)).map(|(c, _)| *c)
}

/// The highest-scored candidate (the smallest id on a tie).
fn best_rated(scores: &BTreeMap<CandidateId, Ppm>) -> Option<CandidateId> {
    scores.iter().max_by_key(|(c, s)| (**s, Reverse(**c))).map(|(c, _)| *c)
}

/// The candidate the agents of `key` push in `session`: the scored candidates (ascending) at
/// index `hash(key, session) mod len`, moved to the next one when that is this agent's own best
/// and there are at least two. Colluders that agree on the best candidate agree on the target.
fn collusion_target(key: u64, session: SessionId, scores: &BTreeMap<CandidateId, Ppm>) -> Option<CandidateId> {
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
fn conflicting_vote(vote: &AgentVote) -> AgentVote {
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

/// An outcome that differs from `actual`: another candidate decided when there is one.
fn fake_outcome(actual: &AgreedOutcome, candidates: &[CandidateId]) -> AgreedOutcome {
    let other = candidates.iter().copied().find(|c| Some(*c) != actual.chosen());
    match (actual, other) {
        (AgreedOutcome::Decided { method, agreement, byzantine, .. }, Some(chosen)) => {
            AgreedOutcome::Decided { chosen, method: *method, agreement: *agreement, byzantine: byzantine.clone() }
        }
        (_, Some(chosen)) => AgreedOutcome::Decided {
            chosen,
            method: ConsensusMethod::Threshold,
            agreement: Ppm::ONE,
            byzantine: Vec::new(),
        },
        (AgreedOutcome::Escalated { .. }, None) => AgreedOutcome::NoDecision { achieved: Ppm::ZERO },
        (_, None) => AgreedOutcome::Escalated { action: EscalationAction::HumanReview, byzantine: Vec::new() },
    }
}

/// `outcome(mode, votes)` of docs/protocol.md V5–V6, as every validator computes it
/// (a copy of the session machine's mapping).
fn outcome_of(
    mode: ProposalMode,
    spec: &SignedSpec,
    votes: &[SignedVote],
    registry: &Registry,
    engine: &EngineConfig,
) -> AgreedOutcome {
    let plain: Vec<AgentVote> = votes.iter().map(|v| v.vote.clone()).collect();
    let decided = |r: ConsensusResult| AgreedOutcome::Decided {
        chosen: r.chosen,
        method: r.method,
        agreement: r.agreement_rate,
        byzantine: r.byzantine,
    };
    match mode {
        ProposalMode::Normal => {
            let input = SessionInput { session: spec.spec.session, candidates: &spec.spec.candidates, votes: &plain };
            match aggregate(&input, registry, engine).outcome {
                Ok(Decision::Decided(r)) => decided(r),
                Ok(Decision::Escalated(e)) => AgreedOutcome::Escalated { action: e.action, byzantine: e.byzantine },
                Err(ConsensusError::InsufficientAgreement { achieved, .. }) => AgreedOutcome::NoDecision { achieved },
                Err(_) => AgreedOutcome::NoDecision { achieved: Ppm::ZERO },
            }
        }
        ProposalMode::Fallback => match fallback_consensus(spec.spec.session, &plain) {
            Ok(r) => decided(r),
            Err(ConsensusError::NoMajority { largest_group, .. }) => {
                AgreedOutcome::NoDecision { achieved: largest_group }
            }
            Err(_) => AgreedOutcome::NoDecision { achieved: Ppm::ZERO },
        },
    }
}

/// SHA-256 of a domain tag and some numbers.
fn digest(domain: &[u8], numbers: &[u64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain);
    for n in numbers {
        h.update(n.to_be_bytes());
    }
    h.finalize().into()
}

fn first_eight(bytes: &[u8; 32]) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    b
}

/// Keeps the `max` largest keys of `map`.
fn bound_map<K: Ord, T>(map: &mut BTreeMap<K, T>, max: usize) {
    while map.len() > max {
        map.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::SessionSpec;
    use crate::protocol::{ProtocolConfig, Timer, TimerKind, VoteKind};
    use crate::sign::{sim_committee, Keys, SimKeyring, SimSigner};

    const N: u32 = 5;
    type Keyset = Keys<SimSigner, SimKeyring>;
    type Byz = Byzantine<SimSigner, SimKeyring>;

    fn ppm(raw: u64) -> Ppm {
        Ppm::saturating(raw)
    }

    /// Every session up to 63 is validated against the initial registry, so tests can open
    /// sessions out of order without deciding the earlier ones.
    fn protocol() -> ProtocolConfig {
        ProtocolConfig { pipeline: 64, ..ProtocolConfig::default() }
    }

    fn honest(keys: &Keyset, i: u32) -> Agent<SimSigner, SimKeyring> {
        let engine = EngineConfig::default();
        let registry = Registry::seed_committee(N, &engine);
        Agent::new(keys.agents[i as usize].clone(), keys.keyring.clone(), registry, engine, protocol())
    }

    fn byzantine(keys: &Keyset, i: u32, strategy: Strategy, collusion_key: u64) -> Byz {
        let peers = (0..N).map(AgentId).collect();
        let signer = keys.agents[i as usize].clone();
        Byzantine::new(honest(keys, i), signer, strategy, peers, EngineConfig::default(), 99, collusion_key)
    }

    fn open(keys: &Keyset, session: u64, opened_ms: TimeMs) -> Input {
        let spec = SessionSpec {
            session: SessionId(session),
            query: format!("query {session}"),
            candidates: vec![CandidateId(0), CandidateId(1), CandidateId(2)],
            opened_ms,
        };
        let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
        Input::Receive { from: AgentId::CLIENT, message: Message::Open(SignedSpec { spec, signature }) }
    }

    /// An honest, consistent vote: accepts the best of `scores` (candidates 0, 1, 2).
    fn vote(agent: u32, session: u64, scores: [u64; 3]) -> AgentVote {
        let scores: BTreeMap<CandidateId, Ppm> = (0..3).map(|c| (CandidateId(c), ppm(scores[c as usize]))).collect();
        let best = best_rated(&scores).unwrap_or_default();
        let score = scores.get(&best).copied().unwrap_or(Ppm::ZERO);
        let spec = AgentSpecialization::cycled(agent as usize);
        let mut v = AgentVote::accept(AgentId(agent), spec, SessionId(session), best, score, ppm(950_000));
        v.scores = scores;
        v
    }

    const HONEST: [u64; 3] = [900_000, 500_000, 200_000];

    fn signed(keys: &Keyset, v: AgentVote) -> Input {
        let signature = keys.agents[v.agent.0 as usize].sign(&wire::vote_signing_bytes(&v));
        Input::Receive { from: v.agent, message: Message::Vote(SignedVote { vote: v, signature }) }
    }

    fn feed(node: &mut impl Node, now: TimeMs, inputs: Vec<Input>) -> Vec<Output> {
        let mut out = Vec::new();
        for input in inputs {
            node.handle(now, input, &mut out);
        }
        out
    }

    fn broadcast_votes(out: &[Output]) -> Vec<SignedVote> {
        out.iter()
            .filter_map(|o| match o {
                Output::Broadcast(Message::Vote(v)) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    fn proposals(out: &[Output]) -> Vec<Proposal> {
        out.iter()
            .filter_map(|o| match o {
                Output::Broadcast(Message::Proposal(p)) => Some((**p).clone()),
                _ => None,
            })
            .collect()
    }

    fn verifies(keys: &Keyset, v: &SignedVote) -> bool {
        keys.keyring.verify(v.vote.agent, &wire::vote_signing_bytes(&v.vote), &v.signature)
    }

    /// The engine counts the vote: no `InconsistentScores` or other rejection.
    fn counted(v: &AgentVote) -> bool {
        let engine = EngineConfig::default();
        let candidates = [CandidateId(0), CandidateId(1), CandidateId(2)];
        let votes = [v.clone()];
        let input = SessionInput { session: v.session, candidates: &candidates, votes: &votes };
        aggregate(&input, &Registry::seed_committee(N, &engine), &engine).rejected.is_empty()
    }

    /// The one vote the node broadcast after its own vote of `session` arrived.
    fn own_vote(node: &mut Byz, keys: &Keyset, session: u64, scores: [u64; 3]) -> SignedVote {
        let agent = node.id().0;
        let out = feed(node, 10, vec![open(keys, session, 0), Input::LocalVote(vote(agent, session, scores))]);
        let votes = broadcast_votes(&out);
        assert_eq!(votes.len(), 1, "{out:?}");
        votes[0].clone()
    }

    #[test]
    fn names_match_serde_and_round_trip() {
        for s in Strategy::ALL {
            let json = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.name()));
            assert_eq!(Strategy::from_name(s.name()), Some(s));
        }
        assert_eq!(Strategy::from_name("honest"), None);
    }

    #[test]
    fn silent_outputs_nothing() {
        let keys = sim_committee(1, N);
        let mut node = byzantine(&keys, 0, Strategy::Silent, 0);
        let timer = Timer { session: SessionId(0), round: 0, kind: TimerKind::Propose };
        let inputs = vec![
            open(&keys, 0, 0),
            Input::LocalVote(vote(0, 0, HONEST)),
            signed(&keys, vote(1, 0, HONEST)),
            Input::Timeout(timer),
        ];
        assert!(feed(&mut node, 300, inputs).is_empty());
    }

    #[test]
    fn vote_worst_votes_for_the_worst_candidate_consistently() {
        let keys = sim_committee(2, N);
        let mut node = byzantine(&keys, 0, Strategy::VoteWorst, 0);
        let v = own_vote(&mut node, &keys, 0, HONEST);
        assert!(verifies(&keys, &v));
        assert_eq!(v.vote.candidate, CandidateId(2));
        assert_eq!(v.vote.value.accept_score(), Some(ATTACK_SCORE));
        assert_eq!(v.vote.confidence, ATTACK_CONFIDENCE);
        assert!(v.vote.scores.iter().all(|(c, s)| *c == CandidateId(2) || *s < ATTACK_SCORE));
        assert!(counted(&v.vote));
    }

    #[test]
    fn random_is_consistent_and_deterministic() {
        let keys = sim_committee(3, N);
        let mut a = byzantine(&keys, 1, Strategy::Random, 0);
        let mut b = byzantine(&keys, 1, Strategy::Random, 0);
        for session in 0..8 {
            let va = own_vote(&mut a, &keys, session, HONEST);
            assert_eq!(va, own_vote(&mut b, &keys, session, HONEST));
            let score = va.vote.value.accept_score().unwrap_or(Ppm::ZERO);
            assert!(score.raw() >= 500_000 && va.vote.confidence.raw() >= 500_000);
            assert!(counted(&va.vote) && verifies(&keys, &va));
        }
    }

    #[test]
    fn inflate_confidence_keeps_the_choice() {
        let keys = sim_committee(4, N);
        let mut node = byzantine(&keys, 2, Strategy::InflateConfidence, 0);
        let v = own_vote(&mut node, &keys, 0, HONEST);
        assert_eq!((v.vote.candidate, v.vote.confidence), (CandidateId(0), Ppm::ONE));
        assert_eq!(v.vote.value.accept_score(), Some(Ppm::ONE));
        assert!(counted(&v.vote));
    }

    #[test]
    fn colluders_pick_the_same_target_and_never_their_best() {
        let keys = sim_committee(5, N);
        let mut a = byzantine(&keys, 1, Strategy::Collude, 7);
        let mut b = byzantine(&keys, 3, Strategy::Collude, 7);
        let mut targets = Vec::new();
        for session in 0..12 {
            let va = own_vote(&mut a, &keys, session, HONEST);
            let vb = own_vote(&mut b, &keys, session, [850_000, 450_000, 300_000]);
            assert_eq!(va.vote.candidate, vb.vote.candidate, "session {session}");
            assert_ne!(va.vote.candidate, CandidateId(0), "the target is never the own best");
            assert!(counted(&va.vote) && counted(&vb.vote));
            targets.push(va.vote.candidate);
        }
        assert!(targets.contains(&CandidateId(1)) && targets.contains(&CandidateId(2)), "{targets:?}");
    }

    #[test]
    fn adaptive_stays_under_the_threshold_and_attacks_close_targets() {
        let keys = sim_committee(6, N);
        let mut node = byzantine(&keys, 4, Strategy::Adaptive, 11);
        let scores = [900_000, 700_000, 200_000];
        let honest_scores = vote(4, 0, scores).scores;
        let (mut attacked, mut held_back) = (false, false);
        for session in 0..16 {
            let v = own_vote(&mut node, &keys, session, scores);
            let deviation = v.vote.scores.iter().map(|(c, s)| s.abs_diff(honest_scores[c]).raw()).max();
            assert!(deviation.unwrap_or(0) < 300_000, "{:?}", v.vote.scores);
            assert!(counted(&v.vote));
            match collusion_target(11, SessionId(session), &honest_scores) {
                // 0.7 + 0.25 beats 0.9: the target wins.
                Some(CandidateId(1)) => attacked |= v.vote.candidate == CandidateId(1),
                // 0.2 + 0.25 does not: the honest best stays.
                _ => held_back |= v.vote.candidate == CandidateId(0),
            }
        }
        assert!(attacked && held_back);
    }

    #[test]
    fn delay_to_deadline_releases_the_vote_50ms_before_the_deadline() {
        let keys = sim_committee(7, N);
        let mut node = byzantine(&keys, 1, Strategy::DelayToDeadline, 0);
        let retransmit = Input::Timeout(Timer { session: SessionId(0), round: 0, kind: TimerKind::Retransmit });
        let out = feed(&mut node, 20, vec![open(&keys, 0, 0), Input::LocalVote(vote(1, 0, HONEST))]);
        assert!(broadcast_votes(&out).is_empty());
        for now in [100, 300, 449] {
            assert!(broadcast_votes(&feed(&mut node, now, vec![retransmit.clone()])).is_empty(), "at {now}");
        }
        let released = broadcast_votes(&feed(&mut node, 450, vec![retransmit]));
        assert!(!released.is_empty());
        assert!(released.iter().all(|v| v.vote.candidate == CandidateId(0) && verifies(&keys, v)));
    }

    #[test]
    fn equivocate_sends_conflicting_signed_votes_and_round_votes() {
        let keys = sim_committee(8, N);
        let mut node = byzantine(&keys, 0, Strategy::Equivocate, 0);
        let out = feed(&mut node, 10, vec![open(&keys, 0, 0), Input::LocalVote(vote(0, 0, HONEST))]);
        assert!(broadcast_votes(&out).is_empty());
        let sent: BTreeMap<AgentId, SignedVote> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send { to, message: Message::Vote(v) } => Some((*to, v.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(sent.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4].map(AgentId));
        assert_eq!(
            (sent[&AgentId(1)].vote.candidate, sent[&AgentId(2)].vote.candidate),
            (CandidateId(0), CandidateId(0))
        );
        assert_eq!(sent[&AgentId(3)], sent[&AgentId(4)]);
        assert_ne!(sent[&AgentId(3)].vote.candidate, CandidateId(0));
        assert!(sent.values().all(|v| verifies(&keys, v) && counted(&v.vote)));
        // The propose timeout's nil prevote: nil to the first half, a value to the second.
        let timer = Timer { session: SessionId(0), round: 0, kind: TimerKind::Propose };
        let out = feed(&mut node, 200, vec![Input::Timeout(timer)]);
        let prevotes: Vec<(AgentId, RoundVote)> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send { to, message: Message::RoundVote(v) } if v.kind == VoteKind::Prevote => {
                    Some((*to, v.clone()))
                }
                _ => None,
            })
            .collect();
        let values: Vec<bool> = prevotes.iter().map(|(_, v)| v.value.is_some()).collect();
        assert_eq!(values, [false, false, true, true]);
        for (_, v) in &prevotes {
            let bytes = wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value);
            assert!(keys.keyring.verify(AgentId(0), &bytes, &v.signature));
        }
    }

    #[test]
    fn forged_votes_claim_other_agents_and_fail_verification() {
        let keys = sim_committee(9, N);
        let mut node = byzantine(&keys, 2, Strategy::Forge, 0);
        let out = feed(&mut node, 10, vec![open(&keys, 0, 0), Input::LocalVote(vote(2, 0, HONEST))]);
        let votes = broadcast_votes(&out);
        let (own, forged): (Vec<_>, Vec<_>) = votes.into_iter().partition(|v| v.vote.agent == AgentId(2));
        assert_eq!(own.len(), 1);
        assert!(verifies(&keys, &own[0]) && own[0].vote.candidate == CandidateId(0));
        let claimed: Vec<AgentId> = forged.iter().map(|v| v.vote.agent).collect();
        assert_eq!(claimed, [0, 1, 3, 4].map(AgentId));
        for v in &forged {
            assert!(!verifies(&keys, v), "a forgery for {} verified", v.vote.agent);
            assert_eq!(v.vote.candidate, CandidateId(2));
            assert_eq!(v.vote.specialization, AgentSpecialization::cycled(v.vote.agent.0 as usize));
        }
    }

    #[test]
    fn replay_resends_old_session_votes_and_a_relabelled_copy() {
        let keys = sim_committee(10, N);
        let mut node = byzantine(&keys, 0, Strategy::Replay, 0);
        let old = [vote(1, 0, HONEST), vote(2, 0, HONEST)];
        let mut inputs = vec![open(&keys, 0, 0)];
        inputs.extend(old.iter().map(|v| signed(&keys, v.clone())));
        inputs.push(signed(&keys, old[0].clone())); // a retransmission is remembered once
        feed(&mut node, 10, inputs);
        let out = feed(&mut node, 600, vec![open(&keys, 1, 600), Input::LocalVote(vote(0, 1, HONEST))]);
        let votes = broadcast_votes(&out);
        assert_eq!(votes.len(), 4, "own vote, two replays, one relabelled copy: {votes:?}");
        assert_eq!(votes[0].vote.agent, AgentId(0));
        assert_eq!([votes[1].vote.clone(), votes[2].vote.clone()], old);
        assert!(votes[1..3].iter().all(|v| verifies(&keys, v)));
        assert_eq!((votes[3].vote.agent, votes[3].vote.session), (AgentId(2), SessionId(1)));
        assert!(!verifies(&keys, &votes[3]));
    }

    /// Runs session `s` on `node` (agent 0, the proposer of round 0 when `s` is a multiple of
    /// 5): four other votes (not unanimous, so it waits for all five) and its own.
    fn propose(node: &mut impl Node, keys: &Keyset, s: u64) -> Vec<Output> {
        let mut inputs = vec![open(keys, s, 0)];
        inputs.extend((1..4).map(|a| signed(keys, vote(a, s, HONEST))));
        inputs.push(signed(keys, vote(4, s, [400_000, 800_000, 200_000])));
        inputs.push(Input::LocalVote(vote(0, s, HONEST)));
        feed(node, 10, inputs)
    }

    /// What honest agent 1 prevotes on `p`.
    fn honest_prevote(keys: &Keyset, p: &Proposal) -> Option<Option<ValueId>> {
        let mut agent = honest(keys, 1);
        let message = Message::Proposal(Box::new(p.clone()));
        let out =
            feed(&mut agent, 20, vec![open(keys, p.value.session.0, 0), Input::Receive { from: AgentId(0), message }]);
        out.iter().find_map(|o| match o {
            Output::Broadcast(Message::RoundVote(v)) if v.kind == VoteKind::Prevote => Some(v.value),
            _ => None,
        })
    }

    fn recomputed(p: &Proposal) -> AgreedOutcome {
        let registry = Registry::seed_committee(N, &EngineConfig::default());
        outcome_of(p.value.mode, &p.value.spec, &p.value.votes, &registry, &EngineConfig::default())
    }

    #[test]
    fn bad_proposer_withholds_its_proposal() {
        let keys = sim_committee(11, N);
        assert_eq!(BadProposerMode::for_session(SessionId(0)), BadProposerMode::Withhold);
        let mut control = honest(&keys, 0);
        assert_eq!(proposals(&propose(&mut control, &keys, 0)).len(), 1, "an honest agent 0 proposes");
        let mut node = byzantine(&keys, 0, Strategy::BadProposer, 0);
        assert!(proposals(&propose(&mut node, &keys, 0)).is_empty());
    }

    #[test]
    fn bad_proposer_invalid_aggregate_is_rejected() {
        let keys = sim_committee(12, N);
        assert_eq!(BadProposerMode::for_session(SessionId(10)), BadProposerMode::InvalidAggregate);
        let mut node = byzantine(&keys, 0, Strategy::BadProposer, 0);
        let p = proposals(&propose(&mut node, &keys, 10));
        assert_eq!(p.len(), 1);
        assert_ne!(p[0].value.outcome, recomputed(&p[0]));
        assert_eq!(honest_prevote(&keys, &p[0]), Some(None), "honest agents prevote nil");
    }

    #[test]
    fn bad_proposer_cherry_picks_a_valid_proposal() {
        let keys = sim_committee(13, N);
        assert_eq!(BadProposerMode::for_session(SessionId(5)), BadProposerMode::CherryPick);
        let mut control = honest(&keys, 0);
        let honest_p = proposals(&propose(&mut control, &keys, 5));
        let chosen = honest_p.first().and_then(|p| p.value.outcome.chosen());
        assert_eq!(chosen, Some(CandidateId(0)));
        let mut node = byzantine(&keys, 0, Strategy::BadProposer, 0);
        let p = proposals(&propose(&mut node, &keys, 5));
        assert_eq!(p.len(), 1);
        let voters: Vec<u32> = p[0].value.votes.iter().map(|v| v.vote.agent.0).collect();
        assert_eq!(voters, [0, 1, 2, 4], "agent 3, the highest supporter of candidate 0, is left out");
        assert_eq!(p[0].value.outcome, recomputed(&p[0]));
        assert_eq!(honest_prevote(&keys, &p[0]), Some(Some(ValueId::of(&p[0].value))), "the proposal is valid");
    }

    #[test]
    fn helpers_keep_votes_consistent_and_outcomes_different() {
        let v = vote(0, 0, HONEST);
        let c = conflicting_vote(&v);
        assert_ne!(c, v);
        assert!(counted(&c));
        let mut lone = AgentVote::accept(
            AgentId(0),
            AgentSpecialization::Retriever,
            SessionId(0),
            CandidateId(0),
            ppm(1),
            Ppm::ONE,
        );
        lone.scores.insert(CandidateId(0), ppm(1));
        assert_ne!(conflicting_vote(&lone), lone);
        let candidates = [CandidateId(0), CandidateId(1)];
        let decided = AgreedOutcome::Decided {
            chosen: CandidateId(0),
            method: ConsensusMethod::Threshold,
            agreement: Ppm::ONE,
            byzantine: Vec::new(),
        };
        for actual in [decided, AgreedOutcome::NoDecision { achieved: Ppm::HALF }] {
            for cands in [&candidates[..], &candidates[..1], &[]] {
                assert_ne!(fake_outcome(&actual, cands), actual);
            }
        }
    }
}
