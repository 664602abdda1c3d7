//! Byzantine behaviours for the simulator: a [`Byzantine`] node wraps an honest
//! [`Agent`] and corrupts what goes in or comes out, implementing the same [`Node`] trait, so
//! the runner drives honest and Byzantine agents alike (as Malachite's Byzantine middleware and
//! Twins do). Every behaviour is deterministic: random choices come from ChaCha8 streams
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
//! | `full-power` | anything its own key and the signed messages it received allow, to any subset of agents, at any input or timer of its own: proposals, round votes, session votes, commit certificates and polka certificates assembled from parts, `Sync`, relayed `Open`s, malformed frames; it runs the honest agent inside and may drop, delay, redirect or replace its messages ([`full_power`]) | every check of V1–V8, L22–L53 and the wire decoder: invalid parts are rejected or kept as evidence; valid ones are what a Byzantine validator may send, and quorum intersection keeps agreement |
//!
//! The scripted strategies (`silent` to `forge`) live in `scripted`, the full-power agent in
//! [`full_power`]. The Byzantine agent keeps its own copies of what it needs from the honest
//! agent's configuration (its signer, its peers, the engine configuration).

use std::collections::{BTreeMap, VecDeque};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::EngineConfig;
use crate::fixed::Ppm;
use crate::protocol::messages::SignedSpec;
use crate::protocol::{
    recompute, Agent, AgreedOutcome, Input, Node, Output, Proposal, ProposalMode, Round, SignedVote, ValueId,
};
use crate::registry::Registry;
use crate::sign::{Signer, Verifier};
use crate::types::{
    AgentId, AgentVote, CandidateId, ConsensusMethod, EscalationAction, Priority, SessionId, TimeMs, VoteValue,
};
use crate::wire;

pub mod full_power;
mod scripted;
#[cfg(test)]
mod tests;

pub use full_power::{Family, FullPowerConfig};

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
    /// Sends anything its own key and the signed messages it received allow ([`full_power`]).
    FullPower,
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Strategy {
    /// Every strategy, in declaration order.
    pub const ALL: [Strategy; 12] = [
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
        Strategy::FullPower,
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
            Strategy::FullPower => "full-power",
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
    /// The seed every random choice derives from.
    seed: u64,
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
    /// `full-power`: what it saw, its random streams and its held messages.
    full_power: Option<Box<full_power::FullPower>>,
}

impl<S: Signer + Clone, V: Verifier> Byzantine<S, V> {
    /// Wraps `inner`. `signer` must be a clone of the agent's signer; `peers` is the committee
    /// (this agent is removed if present); `engine` is the agent's engine configuration;
    /// `seed` seeds every random choice; agents with the same `collusion_key` collude. A
    /// `full-power` agent starts with [`FullPowerConfig::default`] ([`Byzantine::with_full_power`]).
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
        let full_power = (strategy == Strategy::FullPower)
            .then(|| Box::new(full_power::FullPower::new(seed, FullPowerConfig::default())));
        Byzantine {
            inner,
            strategy,
            signer,
            peers,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            collusion_key,
            engine,
            opened: BTreeMap::new(),
            held: BTreeMap::new(),
            remembered: VecDeque::new(),
            proposals_seen: BTreeMap::new(),
            full_power,
        }
    }

    /// A `full-power` agent with the knobs of `config` (no effect on other strategies).
    pub fn with_full_power(mut self, config: FullPowerConfig) -> Self {
        if self.strategy == Strategy::FullPower {
            self.full_power = Some(Box::new(full_power::FullPower::new(self.seed, config)));
        }
        self
    }

    /// The honest agent inside.
    pub fn inner(&self) -> &Agent<S, V> {
        &self.inner
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// How much a `full-power` agent holds in memory, against its bounds.
    pub fn full_power_memory(&self) -> Option<full_power::MemoryUse> {
        self.full_power.as_ref().map(|f| f.memory_use())
    }

    fn sign_vote(&self, vote: AgentVote) -> SignedVote {
        let signature = self.signer.sign(&wire::vote_signing_bytes(&vote));
        SignedVote { vote, signature }
    }

    fn sign_proposal(&self, mut p: Proposal) -> Proposal {
        p.signature = self.signer.sign(&wire::proposal_signing_bytes(&p.value, p.round, p.valid_round));
        p
    }
}

impl<S: Signer + Clone, V: Verifier> Node for Byzantine<S, V> {
    fn id(&self) -> AgentId {
        self.inner.id()
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        match self.full_power.as_mut() {
            Some(full) => {
                let ctx = full_power::Keys { signer: &self.signer, peers: &self.peers, engine: &self.engine };
                full.handle(&mut self.inner, &ctx, now_ms, input, out);
            }
            None => self.handle_scripted(now_ms, input, out),
        }
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

/// `outcome(mode, votes)` of docs/protocol.md V5–V6, as every validator computes it.
fn outcome_of(
    mode: ProposalMode,
    spec: &SignedSpec,
    votes: &[SignedVote],
    registry: &Registry,
    engine: &EngineConfig,
) -> AgreedOutcome {
    recompute(mode, spec, votes, registry, engine).0
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
