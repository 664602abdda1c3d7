//! The `full-power` Byzantine agent: it may send any well-formed message its own signing key and
//! the signed messages it has received allow, to any subset of agents, at any input it handles
//! (its own timers included), and malformed frames besides. The rule of thumb of Tyr and LOKI
//! (guides/exploration.md, "A Byzantine agent with its full power"): anything its key can sign,
//! plus any signed message it has seen, in any combination, to anyone, at any time.
//!
//! It keeps the honest [`Agent`] running inside, so it takes part like a real validator that
//! deviates, and acts in **families** ([`Family`]), each switched on or off by the scenario:
//!
//! | family | what it sends |
//! |---|---|
//! | `proposals` | proposals as the round's proposer, for rounds it does not propose, in another proposer's name (its own signature), and equivocating copies to subsets; values carrying any vote set it can assemble (`build`: subsets and supersets of the votes it saw, votes of other sessions, duplicates, disorder, its own votes for any candidate, ids outside the committee signed with its own key) and a claimed outcome that agrees with the votes or not, in either mode; re-proposals with any valid round and a polka certificate of the prevotes it saw (honest-looking, too few, mixed rounds, values or sessions, duplicated) |
//! | `round-votes` | prevotes and precommits for any (round, value or nil): the values the honest agents vote for now, values of other rounds and sessions, values never proposed, far-future rounds, equivocations; relays of other agents' round votes |
//! | `votes` | its own session vote for any candidate (equivocation), for other sessions, in other agents' names or ids outside the committee (its own signature); relays of others' votes, old sessions' included |
//! | `certificates` | `Commit`s assembled from the precommits it saw (mixed rounds, values, sessions, too few, duplicated, its own precommit added) with a proposal that matches them or not; relays of real ones |
//! | `sync` | `Sync` with any `next`, and the client's `Open`s re-sent to anyone |
//! | `malformed` | frames that do not decode: truncated, extended, a wrong length field, an unknown variant tag, a foreign magic or version ([`Output::SendRaw`]) |
//! | `deviate` | the inner honest agent's own messages dropped, delayed, sent to a subset only, or replaced for some recipients by a conflicting version |
//! | `replay` | signatures it saw reused on content they do not sign: another session's client-signed spec (as it is, renamed, or with this session's spec under its signature, or this session's spec altered), honest agents' vote, prevote, precommit and proposal signatures on other votes, values, rounds or kinds, polka certificates of prevotes relabelled to another value; vote sets that reach the quorum with one voter twice (`replay.rs`) |
//! | `flood` | (off by default) once per run, more copies of one of its prevotes for a session past the pipeline than a peer buffers ([`flood`]) |
//!
//! **Randomness** comes from ChaCha8 streams derived per purpose (each family, the wake-ups) and
//! per (session, round) of the input being handled (`streams`), so that removing a session or
//! switching a family off does not re-roll the others' draws and shrinking keeps working.
//! **Bias**: choices lean toward what the honest agents are doing now: the round the inner
//! honest agent is in, the value ids the others proposed and voted for in it, the rounds in
//! which this agent proposes, the proposer of the current round (sent only to it or to all but
//! it).
//!
//! **Memory** is bounded: see `memory` (sessions, votes, proposals, round votes, commits and
//! own values per session), [`MAX_STREAMS`] random streams, [`MAX_HELD`] delayed messages,
//! [`MAX_BUDGETS`] per-(session, round) action budgets of at most [`MAX_ACTIONS_PER_ROUND`]
//! actions each. [`FullPower::memory_use`] reports the sizes against the bounds. Its traffic is
//! bounded too: at most [`MAX_ACTIONS_PER_INTERVAL`] actions per retransmit interval, each one
//! message (two for an equivocation) to at most every peer.
//!
//! It never signs with another agent's key (it has none): every valid signature of another
//! agent it sends is a copy of a message it received. It never panics.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::fixed::Ppm;
use crate::protocol::{Agent, Committee, Input, Message, Mutation, Node, Output, Round, Timer, TimerKind};
use crate::registry::Registry;
use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, SessionId, TimeMs};

mod actions;
mod build;
mod deviate;
pub mod flood;
mod malformed;
mod memory;
mod replay;
mod streams;
#[cfg(test)]
mod tests;

use memory::Memory;
pub use memory::MemoryUse;
use streams::Streams;

/// Messages of the inner agent held back (the `deviate` family's delays).
pub const MAX_HELD: usize = 64;
/// Random streams kept (purpose × session × round); the oldest sessions' go first and are
/// re-derived from their start if needed again.
pub const MAX_STREAMS: usize = 256;
/// Actions (of every family but `deviate`) per (session, round) of the inputs that trigger them.
pub const MAX_ACTIONS_PER_ROUND: u32 = 48;
/// Actions (of every family but `deviate`) per retransmit interval, whatever triggers them. Two
/// full-power agents answer each other's messages: without a cap in time, each message would
/// beget more than one on average and their traffic would grow without bound.
pub const MAX_ACTIONS_PER_INTERVAL: u32 = 16;
/// (session, round) action budgets kept; the oldest sessions' go first.
pub const MAX_BUDGETS: usize = 64;

/// What a `full-power` agent does (module documentation: one row each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Proposals and their values, vote sets and polka certificates.
    Proposals,
    /// Prevotes and precommits.
    RoundVotes,
    /// Session votes.
    Votes,
    /// Commit certificates.
    Certificates,
    /// `Sync` and relayed `Open`s.
    Sync,
    /// Frames that do not decode.
    Malformed,
    /// The inner honest agent's messages dropped, delayed, redirected or replaced.
    Deviate,
    /// Once per run, a burst past a peer's buffer bound ([`flood`]). Not in [`Family::ALL`].
    Flood,
    /// Seen signatures on other content, specs of other sessions, a voter counted twice.
    Replay,
}

impl Family {
    /// The default families, in declaration order (all but [`Family::Flood`], which a scenario
    /// names when it wants it).
    pub const ALL: [Family; 8] = [
        Family::Proposals,
        Family::RoundVotes,
        Family::Votes,
        Family::Certificates,
        Family::Sync,
        Family::Malformed,
        Family::Deviate,
        Family::Replay,
    ];

    /// The kebab-case name, as in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Family::Proposals => "proposals",
            Family::RoundVotes => "round-votes",
            Family::Votes => "votes",
            Family::Certificates => "certificates",
            Family::Sync => "sync",
            Family::Malformed => "malformed",
            Family::Deviate => "deviate",
            Family::Flood => "flood",
            Family::Replay => "replay",
        }
    }

    /// The stream purpose of the family's draws.
    fn purpose(self) -> u8 {
        self as u8
    }
}

/// The knobs of a `full-power` agent (scenario files: `[byzantine.full_power]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullPowerConfig {
    /// Per input handled and per family that is on: the probability that the family acts;
    /// for `deviate`, the probability that each of the inner agent's messages is deviated.
    pub rate: Ppm,
    /// Most actions of one family at one input (1 or more).
    pub actions_per_input: u32,
    /// The families that are on.
    pub families: Vec<Family>,
}

impl Default for FullPowerConfig {
    fn default() -> Self {
        FullPowerConfig { rate: Ppm::saturating(100_000), actions_per_input: 2, families: Family::ALL.to_vec() }
    }
}

impl FullPowerConfig {
    fn on(&self, family: Family) -> bool {
        self.families.contains(&family)
    }
}

/// What the agent borrows from its [`super::Byzantine`] wrapper.
pub(crate) struct Keys<'a, S> {
    /// Its own signer (the only key it has).
    pub signer: &'a S,
    /// The committee without itself.
    pub peers: &'a [AgentId],
    /// The engine configuration, to recompute outcomes.
    pub engine: &'a EngineConfig,
}

/// What every action needs to know about the world, for one input.
pub(super) struct Env<'a> {
    pub me: AgentId,
    pub now: TimeMs,
    pub signer: &'a dyn Signer,
    pub peers: &'a [AgentId],
    pub committee: Committee,
    pub registry: &'a Registry,
    pub engine: &'a EngineConfig,
    pub client: AgentId,
    /// The protocol's pipeline depth (sessions that may run ahead of the applied ones).
    pub pipeline: u64,
    /// Sessions the inner agent applied.
    pub applied: u64,
    pub retransmit_ms: TimeMs,
    /// The session and round of the input being handled.
    pub session: SessionId,
    pub round: Round,
}

/// The `full-power` agent's state around its inner honest agent.
pub(crate) struct FullPower {
    config: FullPowerConfig,
    streams: Streams,
    memory: Memory,
    /// Messages held back (release time, the output), oldest first.
    held: VecDeque<(TimeMs, Output)>,
    /// Actions taken per (session, round) of their triggering inputs.
    spent: BTreeMap<(SessionId, Round), u32>,
    /// The current retransmit interval's start and the actions taken in it.
    interval: (TimeMs, u32),
    /// An [`TimerKind::Adversary`] wake-up is scheduled.
    wake_pending: bool,
    /// The `flood` family acted (it acts once per run).
    flooded: bool,
}

impl FullPower {
    pub(crate) fn new(seed: u64, config: FullPowerConfig) -> FullPower {
        FullPower {
            config,
            streams: Streams::new(seed),
            memory: Memory::default(),
            held: VecDeque::new(),
            spent: BTreeMap::new(),
            interval: (0, 0),
            wake_pending: false,
            flooded: false,
        }
    }

    /// Sizes of everything it keeps, with their bounds.
    pub(crate) fn memory_use(&self) -> MemoryUse {
        let mut used = self.memory.usage();
        used.streams = self.streams.len();
        used.held = self.held.len();
        used.budgets = self.spent.len();
        used
    }

    /// One input: observe it, let the inner agent handle it (not the own wake-ups), pass or
    /// deviate what the inner agent sends, release held messages that are due, act in each
    /// family, and schedule the next wake-up.
    pub(crate) fn handle<S: Signer + Clone, V: Verifier>(
        &mut self,
        inner: &mut Agent<S, V>,
        keys: &Keys<'_, S>,
        now: TimeMs,
        input: Input,
        out: &mut Vec<Output>,
    ) {
        let me = inner.id();
        let (session, round) = self.context(inner, &input);
        let own_wake = matches!(&input, Input::Timeout(t) if t.kind == TimerKind::Adversary);
        if own_wake || matches!(input, Input::Recover) {
            // Woken, or the crash lost the pending wake-up with every other timer.
            self.wake_pending = false;
        }
        if let Input::Receive { message, .. } = &input {
            self.memory.observe(message, me);
        }
        let start = out.len();
        if !own_wake {
            inner.handle(now, input, out);
        }
        let produced = out.split_off(start);
        for o in &produced {
            if let Output::Broadcast(m) | Output::Send { message: m, .. } = o {
                self.memory.observe(m, me);
            }
        }
        self.memory.follow_rounds(|s| inner.round_of(s));
        let committee = Committee::of(inner.registry(), Mutation::None);
        let env = Env {
            me,
            now,
            signer: keys.signer,
            peers: keys.peers,
            committee,
            registry: inner.registry(),
            engine: keys.engine,
            client: inner.protocol().client,
            pipeline: inner.protocol().pipeline,
            applied: inner.applied_sessions(),
            retransmit_ms: inner.protocol().retransmit_ms.max(1),
            session,
            round,
        };
        self.deviate(&env, produced, out);
        self.release_due(now, out);
        if now >= self.interval.0.saturating_add(env.retransmit_ms) {
            self.interval = (now, 0);
        }
        for family in Family::ALL {
            if family != Family::Deviate && self.config.on(family) {
                self.act(family, &env, out);
            }
        }
        if self.config.on(Family::Flood) && !self.flooded {
            let mut rng = self.streams.take(env.session, env.round, Family::Flood.purpose());
            if chance(&mut rng, self.config.rate) {
                self.flooded = true;
                flood::send(&mut rng, &env, out);
            }
            self.streams.put(env.session, env.round, Family::Flood.purpose(), rng);
        }
        self.arm_wake(&env, out);
    }

    /// The (session, round) an input is about: its message's, its timer's, or the session the
    /// agent heard of last (in the round the inner agent is in there). Rounds more than two
    /// ahead of the inner agent's count as two ahead: far-future rounds (another Byzantine
    /// agent's) share one stream and one budget.
    fn context<S: Signer, V: Verifier>(&self, inner: &Agent<S, V>, input: &Input) -> (SessionId, Round) {
        let latest = self.memory.latest_session().unwrap_or(SessionId(inner.applied_sessions()));
        let current = |s: SessionId| inner.round_of(s).unwrap_or(0);
        let near = |s: SessionId, r: Round| r.min(current(s).saturating_add(2));
        match input {
            Input::Receive { message: Message::Proposal(p), .. } => (p.value.session, near(p.value.session, p.round)),
            Input::Receive { message: Message::RoundVote(v), .. } => (v.session, near(v.session, v.round)),
            Input::Receive { message: Message::Sync { .. }, .. } => (latest, current(latest)),
            Input::Receive { message, .. } => (message.session(), current(message.session())),
            Input::LocalVote(v) => (v.session, current(v.session)),
            Input::Timeout(t) if t.kind == TimerKind::Status => (latest, current(latest)),
            Input::Timeout(t) => (t.session, near(t.session, t.round)),
            Input::Malformed { .. } | Input::Recover => (latest, current(latest)),
        }
    }

    /// Whether `family` acts at this input, and how often: its own stream of (session, round).
    fn act(&mut self, family: Family, env: &Env<'_>, out: &mut Vec<Output>) {
        let mut rng = self.streams.take(env.session, env.round, family.purpose());
        if chance(&mut rng, self.config.rate) {
            let times = rng.gen_range(1..=self.config.actions_per_input.max(1));
            for _ in 0..times {
                let spent = self.spent.entry((env.session, env.round)).or_insert(0);
                if *spent >= MAX_ACTIONS_PER_ROUND || self.interval.1 >= MAX_ACTIONS_PER_INTERVAL {
                    break;
                }
                *spent += 1;
                self.interval.1 += 1;
                match family {
                    Family::Proposals => actions::proposals(&mut rng, env, &mut self.memory, out),
                    Family::RoundVotes => actions::round_votes(&mut rng, env, &self.memory, out),
                    Family::Votes => actions::votes(&mut rng, env, &self.memory, out),
                    Family::Certificates => actions::certificates(&mut rng, env, &mut self.memory, out),
                    Family::Sync => actions::sync(&mut rng, env, &self.memory, out),
                    Family::Malformed => malformed::send(&mut rng, env, &self.memory, out),
                    Family::Replay => replay::replay(&mut rng, env, &mut self.memory, out),
                    Family::Deviate | Family::Flood => {}
                }
            }
            while self.spent.len() > MAX_BUDGETS {
                self.spent.pop_first();
            }
        }
        self.streams.put(env.session, env.round, family.purpose(), rng);
    }

    /// Schedules the next own wake-up unless one is pending: at the first held message's
    /// release time, or, with probability `rate` when a family other than `deviate` is on, at a
    /// random time within two retransmit intervals (acting "at any time", not only when
    /// something arrives).
    fn arm_wake(&mut self, env: &Env<'_>, out: &mut Vec<Output>) {
        if self.wake_pending {
            return;
        }
        let acts = self.config.families.iter().any(|f| *f != Family::Deviate);
        let mut rng = self.streams.take(env.session, env.round, streams::WAKE);
        let at = match self.held.iter().map(|(at, _)| *at).min() {
            Some(at) => Some(at.max(env.now.saturating_add(1))),
            None if acts && chance(&mut rng, self.config.rate) => {
                Some(env.now.saturating_add(rng.gen_range(1..=2 * env.retransmit_ms)))
            }
            None => None,
        };
        self.streams.put(env.session, env.round, streams::WAKE, rng);
        if let Some(at_ms) = at {
            self.wake_pending = true;
            let timer = Timer { session: env.session, round: env.round, kind: TimerKind::Adversary };
            out.push(Output::Schedule { timer, at_ms });
        }
    }
}

/// True with probability `p`.
fn chance(rng: &mut ChaCha8Rng, p: Ppm) -> bool {
    rng.gen_range(0..1_000_000u32) < p.raw()
}

/// A uniform index below `len` (0 when `len` is 0, so callers need no check).
fn index(rng: &mut ChaCha8Rng, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        rng.gen_range(0..len)
    }
}

/// A uniform element of `items`.
fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> Option<&'a T> {
    items.get(index(rng, items.len()))
}
