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
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use consensus_core::runner::{Clock, Frame};
use consensus_core::{wire, AgentId, TimeMs};
use futures_channel::mpsc::UnboundedSender;

mod faults;
mod model;
mod record;

use model::{in_range, unit, Purpose};
pub use model::{Fate, FrameDraws, NetModel, Partition, Streams, Tail};
pub use record::WorldObserver;

use crate::oracle::Oracle;
use crate::scenario::ClogTarget;
use crate::trace::Trace;

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
