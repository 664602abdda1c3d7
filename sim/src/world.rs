//! The simulated world shared by every node of one run: the network model (loss, latency,
//! long tails, duplicates, partitions, clogs, crashed nodes), the oracle and the trace.
//!
//! Every random choice of the network is a hash of the run's network seed, the link, the frame's
//! session, the frame's position among that link's frames of that session, and the purpose of
//! the draw (see [`Streams`]), and everything happens on madsim's single-threaded, seeded
//! executor, so one seed gives one run. Removing a session or a fault from a scenario leaves
//! the fates of the other sessions' frames as they were, which is what lets `bftsim shrink`
//! shrink.
//!
//! Frames in flight wait in one queue, ordered by delivery time, that a single task on the
//! network node delivers from ([`carry`]): no task per frame.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use consensus_core::protocol::{Message, Timer};
use consensus_core::runner::{Clock, Frame, Observer, RunnerEvent};
use consensus_core::{wire, AgentId, TimeMs};
use futures_channel::mpsc::UnboundedSender;

use crate::oracle::Oracle;
use crate::scenario::ClogTarget;
use crate::trace::{Key, Trace, TraceEvent};

/// Long-tail latency: a Pareto draw added to the uniform base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tail {
    /// Pareto scale, ms.
    pub scale_ms: f64,
    /// Pareto shape (smaller is heavier).
    pub shape: f64,
    /// Cap, ms.
    pub max_ms: f64,
}

/// The network model.
#[derive(Clone, Debug, PartialEq)]
pub struct NetModel {
    /// Loss probability per frame.
    pub drop: f64,
    /// Uniform latency range, inclusive.
    pub latency_ms: (u64, u64),
    /// Optional long tail.
    pub tail: Option<Tail>,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
}

/// A partition: frames between different groups are lost (only from the first group to the
/// others when one-way). Agents in no group, and the client, are unaffected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The groups.
    pub groups: Vec<BTreeSet<AgentId>>,
    /// Only traffic leaving the first group is cut.
    pub one_way: bool,
}

impl Partition {
    fn group_of(&self, agent: AgentId) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&agent))
    }

    /// Whether a frame from → to is cut.
    pub fn cuts(&self, from: AgentId, to: AgentId) -> bool {
        match (self.group_of(from), self.group_of(to)) {
            (Some(a), Some(b)) if a != b => !self.one_way || a == 0,
            _ => false,
        }
    }
}

/// What happens to one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Lost, and why.
    Dropped(&'static str),
    /// Delivered after this latency, and once more after the second one if duplicated.
    Deliver(u64, Option<u64>),
    /// Held by a clog until it is lifted.
    Held,
}

/// Why a random number is drawn for a frame: each purpose has its own draw, so a draw that a
/// scenario does not need (no loss, no tail) does not shift the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
enum Purpose {
    Loss = 1,
    Duplicate,
    Latency,
    Tail,
    DuplicateLatency,
    DuplicateTail,
    Order,
    DuplicateOrder,
    ReleaseLatency,
    ReleaseTail,
    ReleaseOrder,
}

/// Where a frame sits in the network's random streams: the stream of its (sender, recipient,
/// session) and its position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameDraws {
    stream: u64,
    index: u64,
}

impl FrameDraws {
    /// A uniform 64-bit number for `purpose`.
    fn u64(self, purpose: Purpose) -> u64 {
        mix(mix(self.stream ^ self.index) ^ (purpose as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// True with probability `p`.
    fn chance(self, purpose: Purpose, p: f64) -> bool {
        p > 0.0 && unit(self.u64(purpose)) < p
    }
}

/// splitmix64's finaliser: a bijection of u64 that mixes every input bit into every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The top 53 bits as a number in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A number in `lo..=hi` (Lemire's multiply-shift; the bias is below 2^-50 for our ranges).
fn in_range(x: u64, lo: u64, hi: u64) -> u64 {
    let span = u128::from(hi - lo) + 1;
    lo + ((u128::from(x) * span) >> 64) as u64
}

/// The network's random streams: one per (sender, recipient, session), and one per link for
/// frames of no session (`Sync`). The n-th frame on a stream draws `mix(stream, n, purpose)`,
/// a counter-based hash rather than a sequential generator, so each draw depends on nothing but
/// its frame's place in its own stream.
#[derive(Debug)]
pub struct Streams {
    seed: u64,
    /// ((from, to) as one word, session) → (stream key, frames so far). Only looked up, never
    /// iterated.
    next: BTreeMap<(u64, Option<u64>), (u64, u64)>,
}

impl Streams {
    /// The streams of a run's network seed.
    pub fn new(seed: u64) -> Streams {
        Streams { seed, next: BTreeMap::new() }
    }

    /// The draws of the next frame from → to of `session`.
    pub fn next_frame(&mut self, from: AgentId, to: AgentId, session: Option<u64>) -> FrameDraws {
        let seed = self.seed;
        let link_key = (u64::from(from.0) << 32) | u64::from(to.0);
        let (stream, count) = self.next.entry((link_key, session)).or_insert_with(|| {
            let link = mix(mix(mix(seed) ^ u64::from(from.0)) ^ u64::from(to.0));
            let key = match session {
                Some(s) => mix(mix(link ^ 1) ^ s),
                None => mix(link ^ 2),
            };
            (key, 0)
        });
        let draws = FrameDraws { stream: *stream, index: *count };
        *count += 1;
        draws
    }
}

/// A frame held by a clog.
#[derive(Clone, Debug)]
pub struct Held {
    /// Sender.
    pub from: AgentId,
    /// Recipient.
    pub to: AgentId,
    /// The frame.
    pub frame: Frame,
    /// When it was sent.
    pub sent_ms: TimeMs,
    /// Its random draws (its release latency comes from them).
    draws: FrameDraws,
}

/// What a node's inbox receives: the sender's identity, the frame and when it was sent.
pub type Delivery = (AgentId, Frame, TimeMs);

/// A frame in flight.
struct InFlight {
    from: AgentId,
    to: AgentId,
    frame: Frame,
    sent_ms: TimeMs,
}

/// A frame in the delivery queue, ordered by its key alone: (delivery time, random order within
/// the millisecond, sequence). Keys are unique (the sequence), so the queue pops in exactly the
/// order of the keys.
struct Queued {
    key: (TimeMs, u64, u64),
    frame: InFlight,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Network, oracle and trace of one run.
pub struct World {
    streams: Streams,
    net: NetModel,
    /// The active partition.
    pub partition: Option<Partition>,
    /// Active clogs: frames they match are held until the clog is lifted.
    pub clogs: BTreeSet<ClogTarget>,
    /// Frames held by clogs.
    pub held: Vec<Held>,
    /// Frames in flight, earliest key first (a binary heap: cheaper than an ordered map for a
    /// queue that is only pushed to and popped from its front).
    in_flight: BinaryHeap<Reverse<Queued>>,
    in_flight_seq: u64,
    /// The delivery task's waker, and the time it sleeps until (`None`: until woken).
    carrier: Option<(Waker, Option<TimeMs>)>,
    /// Nodes that are up.
    pub up: BTreeSet<AgentId>,
    /// Inboxes of nodes that are up.
    pub inboxes: BTreeMap<AgentId, UnboundedSender<Delivery>>,
    /// The invariants.
    pub oracle: Oracle,
    /// The trace.
    pub trace: Trace,
    /// Counters.
    pub counts: crate::results::MessageCounts,
    /// Byzantine agents.
    pub byzantine: BTreeSet<AgentId>,
    /// When each session was opened.
    pub opened: BTreeMap<u64, TimeMs>,
    /// Stop as soon as possible (a violation was found).
    pub stop: bool,
    last_send: (&'static str, u64),
    /// Protocol coverage the simulator sees itself (rounds ahead, docs/coverage.md).
    pub coverage: crate::coverage::RunCoverage,
}

fn client_or(id: AgentId) -> Option<u32> {
    (id != AgentId::CLIENT).then_some(id.0)
}

impl World {
    /// A world with the network model and oracle of a run; `net_seed` seeds the network's
    /// random streams.
    pub fn new(net_seed: u64, net: NetModel, oracle: Oracle, byzantine: BTreeSet<AgentId>, keep_trace: bool) -> World {
        World {
            streams: Streams::new(net_seed),
            net,
            partition: None,
            clogs: BTreeSet::new(),
            held: Vec::new(),
            in_flight: BinaryHeap::new(),
            in_flight_seq: 0,
            carrier: None,
            up: BTreeSet::new(),
            inboxes: BTreeMap::new(),
            oracle,
            trace: Trace::new(keep_trace),
            counts: crate::results::MessageCounts::default(),
            byzantine,
            opened: BTreeMap::new(),
            stop: false,
            last_send: ("", 0),
            coverage: crate::coverage::RunCoverage::default(),
        }
    }

    /// Hands a frame from → to to the network at `now`: decides its fate, records a loss or a
    /// hold, and queues its deliveries.
    pub fn send(&mut self, now: TimeMs, from: AgentId, to: AgentId, frame: Frame) {
        self.send_as(now, from, from, to, frame);
    }

    /// Sends `frame` from network address `address` to network address `to`, arriving from
    /// identity `from` (they differ for a twin's second copy, see `run::net`).
    pub fn send_as(&mut self, now: TimeMs, from: AgentId, address: AgentId, to: AgentId, frame: Frame) {
        let session = wire::peek_session(&frame).map(|s| s.0);
        let draws = self.streams.next_frame(address, to, session);
        match self.fate(address, to, draws) {
            Fate::Dropped(reason) => self.record_drop(now, from, to, reason),
            Fate::Held => {
                self.record_hold(now, from, to);
                self.held.push(Held { from, to, frame, sent_ms: now, draws });
            }
            Fate::Deliver(latency, duplicate) => {
                if let Some(again) = duplicate {
                    let order = draws.u64(Purpose::DuplicateOrder);
                    self.enqueue(now + again, order, InFlight { from, to, frame: frame.clone(), sent_ms: now });
                }
                self.enqueue(now + latency, draws.u64(Purpose::Order), InFlight { from, to, frame, sent_ms: now });
            }
        }
    }

    /// Decides the fate of a frame from → to from its draws.
    pub fn fate(&self, from: AgentId, to: AgentId, draws: FrameDraws) -> Fate {
        if !self.up.contains(&to) {
            return Fate::Dropped("recipient down");
        }
        if self.partition.as_ref().is_some_and(|p| p.cuts(from, to)) {
            return Fate::Dropped("partition");
        }
        if self.clogged(from, to) {
            return Fate::Held;
        }
        if draws.chance(Purpose::Loss, self.net.drop) {
            return Fate::Dropped("loss");
        }
        let latency = self.latency(draws, Purpose::Latency, Purpose::Tail);
        let duplicate = draws
            .chance(Purpose::Duplicate, self.net.duplicate)
            .then(|| self.latency(draws, Purpose::DuplicateLatency, Purpose::DuplicateTail));
        Fate::Deliver(latency, duplicate)
    }

    /// Whether a clog holds frames from → to.
    pub fn clogged(&self, from: AgentId, to: AgentId) -> bool {
        self.clogs.iter().any(|c| match c {
            ClogTarget::Agent(a) => from.0 == *a || to.0 == *a,
            ClogTarget::Link([a, b]) => (from.0 == *a && to.0 == *b) || (from.0 == *b && to.0 == *a),
        })
    }

    /// At least 1 ms, as a madsim sleep would be.
    fn latency(&self, draws: FrameDraws, base: Purpose, tail: Purpose) -> u64 {
        let (lo, hi) = self.net.latency_ms;
        let mut ms = in_range(draws.u64(base), lo.min(hi), hi.max(lo));
        if let Some(t) = self.net.tail {
            // Pareto(scale, shape) − scale: 0 most of the time, occasionally very long.
            let u = f64::EPSILON + (1.0 - f64::EPSILON) * unit(draws.u64(tail));
            let extra = (t.scale_ms / u.powf(1.0 / t.shape) - t.scale_ms).clamp(0.0, t.max_ms);
            ms = ms.saturating_add(extra as u64);
        }
        ms.max(1)
    }

    fn enqueue(&mut self, at: TimeMs, order: u64, frame: InFlight) {
        self.in_flight.push(Reverse(Queued { key: (at, order, self.in_flight_seq), frame }));
        self.in_flight_seq += 1;
        // Wake the delivery task if it sleeps past this frame's time (or until woken).
        if self.carrier.as_ref().is_some_and(|(_, until)| until.is_none_or(|t| at < t)) {
            if let Some((waker, _)) = self.carrier.take() {
                waker.wake();
            }
        }
    }

    /// Delivers every frame due at `now`; returns when the next one is due.
    fn deliver_due(&mut self, now: TimeMs) -> Option<TimeMs> {
        while let Some(Reverse(first)) = self.in_flight.peek() {
            if first.key.0 > now {
                return Some(first.key.0);
            }
            let Some(Reverse(Queued { frame: InFlight { from, to, frame, sent_ms }, .. })) = self.in_flight.pop()
            else {
                break;
            };
            let sent = self.up.contains(&to)
                && self.inboxes.get(&to).is_some_and(|inbox| inbox.unbounded_send((from, frame, sent_ms)).is_ok());
            if sent {
                self.counts.delivered += 1;
            } else {
                self.record_drop(now, from, to, "recipient down");
            }
        }
        None
    }

    /// Releases the held frames that no clog holds any more, each after a fresh latency.
    pub fn release_unclogged(&mut self, now: TimeMs) {
        let held = std::mem::take(&mut self.held);
        let (keep, release): (Vec<_>, Vec<_>) = held.into_iter().partition(|h| self.clogged(h.from, h.to));
        self.held = keep;
        for Held { from, to, frame, sent_ms, draws } in release {
            let latency = self.latency(draws, Purpose::ReleaseLatency, Purpose::ReleaseTail);
            self.enqueue(now + latency, draws.u64(Purpose::ReleaseOrder), InFlight { from, to, frame, sent_ms });
        }
    }

    /// Records a lost frame.
    pub fn record_drop(&mut self, now: TimeMs, from: AgentId, to: AgentId, reason: &'static str) {
        self.counts.dropped += 1;
        let (kind, session) = self.last_send;
        let key = Key { agent: from.0, peer: to.0, session, extra: reason.len() as u64 };
        self.trace.record(now, "drop", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "drop".into(),
            agent: client_or(from),
            peer: client_or(to),
            session: Some(session),
            value: None,
            honest: None,
            sent_ms: None,
            detail: format!("{kind} lost: {reason}"),
            ..Default::default()
        });
    }

    /// Records a frame held by a clog.
    pub fn record_hold(&mut self, now: TimeMs, from: AgentId, to: AgentId) {
        let (kind, session) = self.last_send;
        let key = Key { agent: from.0, peer: to.0, session, ..Key::default() };
        self.trace.record(now, "hold", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "hold".into(),
            agent: client_or(from),
            peer: client_or(to),
            session: Some(session),
            value: None,
            honest: None,
            sent_ms: None,
            detail: format!("{kind} held by a clog"),
            ..Default::default()
        });
    }

    /// Records a fault injection; returns its step.
    pub fn record_fault(&mut self, now: TimeMs, detail: String, agent: Option<AgentId>) -> u64 {
        let key = Key { agent: agent.map_or(u32::MAX, |a| a.0), extra: detail.len() as u64, ..Key::default() };
        self.trace.record(now, "fault", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "fault".into(),
            agent: agent.and_then(client_or),
            peer: None,
            session: None,
            value: None,
            honest: None,
            sent_ms: None,
            detail,
            ..Default::default()
        })
    }

    /// Notes what the client is about to send (for labelling drops).
    pub fn note_client_send(&mut self, kind: &'static str, session: u64) {
        self.last_send = (kind, session);
        self.counts.sent += 1;
    }

    /// Records a client event (`open`: session opened; `ack`: session acknowledged); returns
    /// its step.
    pub fn record_open(&mut self, now: TimeMs, session: u64, detail: String) -> u64 {
        self.record_client(now, "open", session, detail)
    }

    /// Records a client or opener event of `kind`; returns its step.
    pub fn record_client(&mut self, now: TimeMs, kind: &'static str, session: u64, detail: String) -> u64 {
        let key = Key { agent: u32::MAX, session, ..Key::default() };
        self.trace.record(now, kind, key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: kind.into(),
            agent: None,
            peer: None,
            session: Some(session),
            value: None,
            honest: None,
            sent_ms: None,
            detail,
            ..Default::default()
        })
    }

    /// Records what a runner reports; `sent_ms` is when the frame of a `Deliver` was sent.
    fn event(&mut self, agent: AgentId, now: TimeMs, event: &RunnerEvent<'_>, sent_ms: Option<TimeMs>) {
        let honest = !self.byzantine.contains(&agent);
        // `catch-up` is owed by a deadline: checked at every step.
        self.oracle.check_catch_up(self.trace.step(), now);
        self.stop |= self.oracle.violation().is_some();
        match event {
            RunnerEvent::Send { to, message, bytes } => {
                self.counts.sent += 1;
                self.counts.bytes += *bytes as u64;
                self.last_send = (message.kind(), message.session().0);
                let step = self.message_event(now, "send", agent, *to, message, (*bytes as u64, None));
                if let Message::RoundVote(v) = message {
                    if honest && v.agent == agent {
                        self.coverage.own_round_vote(agent, v.session, v.round, v.kind);
                        self.oracle.on_own_round_vote(agent, v.session, v.round, step, now);
                        self.stop |= self.oracle.violation().is_some();
                    }
                }
            }
            RunnerEvent::SendRaw { to, bytes } => {
                self.counts.sent += 1;
                self.counts.bytes += bytes.len() as u64;
                let session = wire::peek_session(bytes).map_or(0, |s| s.0);
                self.last_send = ("raw", session);
                let key =
                    Key { agent: agent.0, peer: to.0, session, extra: bytes.len() as u64 ^ 0x7261_7700_0000_0000 };
                self.trace.record(now, "send", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "send".into(),
                    agent: client_or(agent),
                    peer: client_or(*to),
                    session: Some(session),
                    value: None,
                    honest: None,
                    sent_ms: None,
                    detail: format!("raw frame of {} bytes (not a well-formed message)", bytes.len()),
                    ..Default::default()
                });
            }
            RunnerEvent::Deliver { from, message } => {
                self.message_event(now, "deliver", agent, *from, message, (0, sent_ms));
            }
            RunnerEvent::Timeout(timer) => self.timer_event(now, agent, *timer),
            RunnerEvent::LocalVote(vote) => {
                let key = Key {
                    agent: agent.0,
                    session: vote.session.0,
                    extra: u64::from(vote.candidate.0),
                    ..Key::default()
                };
                let step = self.trace.record(now, "vote", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "vote".into(),
                    agent: Some(agent.0),
                    peer: None,
                    session: Some(vote.session.0),
                    value: Some(vote.candidate.0),
                    honest: Some(honest),
                    sent_ms: None,
                    detail: format!("own vote for {} (confidence {})", vote.candidate, vote.confidence),
                    ..Default::default()
                });
                self.oracle.on_local_vote(agent, vote, step, now);
                self.stop |= self.oracle.violation().is_some();
            }
            RunnerEvent::Decide(record) => {
                let value = record.outcome.chosen().map(|c| c.0);
                let key = Key {
                    agent: agent.0,
                    session: record.session.0,
                    extra: record.value.map_or(0, |v| v.short()),
                    ..Key::default()
                };
                let step = self.trace.record(now, "decide", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "decide".into(),
                    agent: Some(agent.0),
                    peer: None,
                    session: Some(record.session.0),
                    value,
                    honest: Some(honest),
                    sent_ms: None,
                    detail: format!(
                        "decided {} {} ({} mode): {}",
                        crate::words::value(record.value),
                        record.round.map_or_else(|| "without a round".to_owned(), |r| format!("in round {r}")),
                        crate::words::mode(record.mode),
                        crate::words::outcome(&record.outcome)
                    ),
                    value_id: record.value.as_ref().map(crate::words::value_id),
                    round: record.round,
                    candidate: value,
                    method: Some(crate::words::method_field(&record.outcome)),
                });
                self.oracle.on_decide(agent, record, step, now);
                if self.oracle.violation().is_some() {
                    self.stop = true;
                }
            }
            RunnerEvent::Evidence(e) => {
                let culprit = e.culprit();
                let key = Key { agent: agent.0, peer: culprit.0, ..Key::default() };
                self.trace.record(now, "evidence", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "evidence".into(),
                    agent: Some(agent.0),
                    peer: Some(culprit.0),
                    session: None,
                    value: None,
                    honest: None,
                    sent_ms: None,
                    detail: crate::words::evidence(e),
                    ..Default::default()
                });
            }
            RunnerEvent::Reject { from, reason } => {
                let key = Key { agent: agent.0, peer: from.0, ..Key::default() };
                self.trace.record(now, "reject", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "reject".into(),
                    agent: Some(agent.0),
                    peer: client_or(*from),
                    session: None,
                    value: None,
                    honest: None,
                    sent_ms: None,
                    detail: crate::words::rejection(reason),
                    ..Default::default()
                });
            }
        }
    }

    fn message_event(
        &mut self,
        now: TimeMs,
        kind: &'static str,
        agent: AgentId,
        peer: AgentId,
        m: &Message,
        (size, sent_ms): (u64, Option<TimeMs>),
    ) -> u64 {
        let session = m.session().0;
        let key = Key { agent: agent.0, peer: peer.0, session, extra: size ^ (m.kind().len() as u64) << 32 };
        self.trace.record(now, kind, key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: kind.into(),
            agent: client_or(agent),
            peer: client_or(peer),
            session: Some(session),
            value: None,
            honest: None,
            sent_ms,
            detail: describe(m),
            ..Default::default()
        })
    }

    fn timer_event(&mut self, now: TimeMs, agent: AgentId, timer: Timer) {
        let key = Key { agent: agent.0, session: timer.session.0, extra: u64::from(timer.round), ..Key::default() };
        self.trace.record(now, "timeout", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "timeout".into(),
            agent: Some(agent.0),
            peer: None,
            session: Some(timer.session.0),
            value: None,
            honest: None,
            sent_ms: None,
            detail: crate::words::timer(timer.kind, timer.round),
            ..Default::default()
        });
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::Open(o) => format!("open {} candidates", o.spec.candidates.len()),
        Message::Vote(v) => format!("vote of {} for {}", v.vote.agent, v.vote.candidate),
        Message::Proposal(p) => crate::words::proposal(p),
        Message::RoundVote(v) => crate::words::round_vote(v),
        Message::Commit(c) => format!("commit round {} ({} precommits)", c.proposal.round, c.precommits.len()),
        Message::Sync { next } => format!("sync from {next}"),
        Message::Pruned { below } => format!("pruned below {below}"),
    }
}

/// The network's delivery task: delivers each frame in flight at its time, in the order of
/// its key. Runs on the network node until the run ends.
pub async fn carry<C: Clock>(world: Arc<Mutex<World>>, clock: C) {
    loop {
        let next = {
            let Ok(mut w) = world.lock() else { return };
            w.deliver_due(clock.now_ms())
        };
        let mut sleep = pin!(async {
            match next {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        });
        let mut registered = false;
        // Until the next frame is due, or an earlier one is queued (`enqueue` wakes us).
        std::future::poll_fn(|cx| {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let Ok(mut w) = world.lock() else { return Poll::Ready(()) };
            if registered && w.carrier.is_none() {
                return Poll::Ready(()); // woken by `enqueue`
            }
            registered = true;
            w.carrier = Some((cx.waker().clone(), next));
            Poll::Pending
        })
        .await;
    }
}

/// The observer handed to each runner: reports into the shared world.
#[derive(Clone)]
pub struct WorldObserver {
    /// The run's world.
    pub world: Arc<Mutex<World>>,
    /// When the frame the node received last was sent (its transport stores it, see
    /// `run::net::SimRx`): the runner reports a delivery right after receiving its frame.
    pub last_sent_ms: Arc<AtomicU64>,
}

impl Observer for WorldObserver {
    fn on_event(&mut self, agent: AgentId, now_ms: TimeMs, event: &RunnerEvent<'_>) {
        let sent_ms = matches!(event, RunnerEvent::Deliver { .. }).then(|| self.last_sent_ms.load(Relaxed));
        if let Ok(mut w) = self.world.lock() {
            w.event(agent, now_ms, event, sent_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_draws_depend_only_on_its_link_session_and_position() {
        let (a, b, c) = (AgentId(0), AgentId(1), AgentId(2));
        let mut one = Streams::new(7);
        let mut other = Streams::new(7);
        // `other` also carries session 1 and another link's frames in between: session 2's
        // frames on a → b draw the same numbers as without them.
        let first: Vec<_> = (0..5).map(|_| one.next_frame(a, b, Some(2))).collect();
        let mut second = Vec::new();
        for _ in 0..5 {
            other.next_frame(a, b, Some(1));
            other.next_frame(c, b, Some(2));
            second.push(other.next_frame(a, b, Some(2)));
        }
        assert_eq!(first, second);
        assert_ne!(first[0], first[1], "consecutive frames draw differently");
        assert_ne!(one.next_frame(b, a, Some(2)), first[0], "each direction has its own stream");
        assert_ne!(one.next_frame(a, b, None), first[0], "frames of no session have their own stream");
        assert_ne!(Streams::new(8).next_frame(a, b, Some(2)), first[0], "another seed, other draws");
    }

    #[test]
    fn draws_follow_the_configured_rates_and_ranges() {
        let mut streams = Streams::new(1);
        let n = 20_000;
        let draws: Vec<_> =
            (0..n).map(|i| streams.next_frame(AgentId(i % 3), AgentId(3), Some(u64::from(i % 7)))).collect();
        let lost = draws.iter().filter(|d| d.chance(Purpose::Loss, 0.2)).count();
        assert!((3_600..4_400).contains(&lost), "20% loss: {lost} of {n}");
        assert_eq!(draws.iter().filter(|d| d.chance(Purpose::Loss, 0.0)).count(), 0);
        let latencies: Vec<u64> = draws.iter().map(|d| in_range(d.u64(Purpose::Latency), 1, 10)).collect();
        assert!(latencies.iter().all(|l| (1..=10).contains(l)));
        for l in 1..=10 {
            let k = latencies.iter().filter(|x| **x == l).count();
            assert!((1_700..2_300).contains(&k), "latency {l} ms drawn {k} times of {n}");
        }
        // Purposes are independent draws of one frame.
        let same = draws.iter().filter(|d| d.u64(Purpose::Latency) == d.u64(Purpose::Order)).count();
        assert_eq!(same, 0);
    }

    #[test]
    fn partitions_cut_between_groups_only() {
        let p = Partition {
            groups: vec![[AgentId(0), AgentId(1)].into(), [AgentId(2), AgentId(3)].into()],
            one_way: false,
        };
        assert!(p.cuts(AgentId(0), AgentId(2)));
        assert!(p.cuts(AgentId(3), AgentId(1)));
        assert!(!p.cuts(AgentId(0), AgentId(1)));
        assert!(!p.cuts(AgentId::CLIENT, AgentId(2)));
        assert!(!p.cuts(AgentId(4), AgentId(2)), "agents in no group are unaffected");
        let one_way = Partition { one_way: true, ..p };
        assert!(one_way.cuts(AgentId(0), AgentId(2)));
        assert!(!one_way.cuts(AgentId(2), AgentId(0)));
    }
}
