//! The async driver around a [`Node`]: it feeds the pure state machine from a transport and a
//! clock and performs its outputs. It is runtime-agnostic: the same code runs under madsim (the
//! simulator) and tokio (deployments and tests), and it never reads a clock or a random source
//! of its own.
//!
//! The loop waits for whichever comes first, the next frame or the next timer, with receipt
//! polled first (a biased race, so the order of events never depends on a coin flip). The
//! pending receive is kept across timer wake-ups, so no frame is lost to cancellation.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use crate::evaluator::{EvaluationRequest, Evaluator};
use crate::protocol::{DecisionRecord, Evidence, Input, Message, Node, Output, Rejection, Timer};
use crate::types::{AgentId, AgentSpecialization, AgentVote, TimeMs};
use crate::wire;

pub mod memory;

/// An encoded message. Shared, so a broadcast encodes once and every copy in flight points at
/// the same bytes.
pub type Frame = std::sync::Arc<[u8]>;

/// Sends frames. Losing one is allowed (the protocol re-sends).
pub trait TransportTx {
    /// Sends `frame` to `to`.
    fn send(&self, to: AgentId, frame: Frame) -> impl Future<Output = ()>;
}

/// Receives frames.
pub trait TransportRx {
    /// The next frame and its sender address, or `None` once the transport is closed. Must be
    /// cancel-safe: the runner drops a pending receive when a timer fires first, and a frame
    /// must not be lost by that.
    fn recv(&mut self) -> impl Future<Output = Option<(AgentId, Frame)>>;

    /// Decodes a frame [`recv`](Self::recv) returned. The default decodes it; a transport that
    /// hands the same frame (the same bytes) to several recipients in one process may decode it
    /// once and give each recipient its own copy of the result, error included.
    fn decode(&mut self, frame: &Frame) -> Result<Message, wire::WireError> {
        wire::decode(frame)
    }
}

/// The runtime's clock.
pub trait Clock {
    /// Milliseconds on the clock.
    fn now_ms(&self) -> TimeMs;
    /// Completes at or after `at_ms`.
    fn sleep_until(&self, at_ms: TimeMs) -> impl Future<Output = ()>;
}

/// Something that wants to see what the runner does: the simulator's oracle and trace.
pub trait Observer {
    /// Called for every event, in order, with the agent and the clock reading.
    fn on_event(&mut self, agent: AgentId, now_ms: TimeMs, event: &RunnerEvent<'_>);
}

impl Observer for () {
    fn on_event(&mut self, _: AgentId, _: TimeMs, _: &RunnerEvent<'_>) {}
}

/// What the runner reports to its [`Observer`].
#[derive(Debug)]
pub enum RunnerEvent<'a> {
    /// A frame is being sent.
    Send {
        /// Recipient.
        to: AgentId,
        /// The message.
        message: &'a Message,
        /// Encoded size.
        bytes: usize,
    },
    /// A frame arrived and decoded.
    Deliver {
        /// Sender address.
        from: AgentId,
        /// The message.
        message: &'a Message,
    },
    /// Raw bytes are being sent as a frame ([`Output::SendRaw`]).
    SendRaw {
        /// Recipient.
        to: AgentId,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// A timer fired.
    Timeout(Timer),
    /// The agent's own vote became available from its evaluator.
    LocalVote(&'a AgentVote),
    /// The agent decided.
    Decide(&'a DecisionRecord),
    /// The agent produced evidence.
    Evidence(&'a Evidence),
    /// The agent rejected an input.
    Reject {
        /// Who sent it.
        from: AgentId,
        /// Why.
        reason: &'a Rejection,
    },
}

enum Scheduled {
    Timer(Timer),
    /// Boxed: a vote is large, and the timer map moves its entries around.
    LocalVote(Box<AgentVote>),
}

/// Drives one node until its transport closes.
pub struct Runner<N, Tx, Rx, C, E, O> {
    node: N,
    specialization: AgentSpecialization,
    tx: Tx,
    rx: Rx,
    clock: C,
    evaluator: E,
    observer: O,
    peers: Vec<AgentId>,
    timers: BTreeMap<(TimeMs, u64), Scheduled>,
    next_seq: u64,
    initial: Vec<Input>,
}

impl<N, Tx, Rx, C, E, O> Runner<N, Tx, Rx, C, E, O>
where
    N: Node,
    Tx: TransportTx,
    Rx: TransportRx,
    C: Clock,
    E: Evaluator,
    O: Observer,
{
    /// A runner for `node`, broadcasting to `peers` (itself excluded automatically).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: N,
        specialization: AgentSpecialization,
        tx: Tx,
        rx: Rx,
        clock: C,
        evaluator: E,
        observer: O,
        peers: Vec<AgentId>,
    ) -> Self {
        let me = node.id();
        let peers = peers.into_iter().filter(|p| *p != me).collect();
        Runner {
            node,
            specialization,
            tx,
            rx,
            clock,
            evaluator,
            observer,
            peers,
            timers: BTreeMap::new(),
            next_seq: 0,
            initial: Vec::new(),
        }
    }

    /// Feeds `input` to the node before anything else (e.g. [`Input::Recover`] after a restart).
    pub fn start_with(mut self, input: Input) -> Self {
        self.initial.push(input);
        self
    }

    /// Runs until the transport closes; returns the node and the observer.
    pub async fn run(mut self) -> (N, O) {
        let mut out = Vec::new();
        for input in std::mem::take(&mut self.initial) {
            let now = self.clock.now_ms();
            self.step(now, input, &mut out).await;
        }
        loop {
            self.fire_due_timers(&mut out).await;
            let next_timer = self.timers.keys().next().map(|(t, _)| *t);
            let received = {
                let recv = pin!(self.rx.recv());
                match next_timer {
                    Some(at) => race_biased(recv, pin!(self.clock.sleep_until(at))).await,
                    None => Some(recv.await),
                }
            };
            match received {
                Some(Some((from, frame))) => {
                    let now = self.clock.now_ms();
                    let input = match self.rx.decode(&frame) {
                        Ok(message) => {
                            self.observer.on_event(
                                self.node.id(),
                                now,
                                &RunnerEvent::Deliver { from, message: &message },
                            );
                            Input::Receive { from, message }
                        }
                        Err(_) => Input::Malformed { from },
                    };
                    self.step(now, input, &mut out).await;
                }
                Some(None) => return (self.node, self.observer),
                None => {} // a timer is due
            }
        }
    }

    async fn fire_due_timers(&mut self, out: &mut Vec<Output>) {
        loop {
            let now = self.clock.now_ms();
            let Some(entry) = self.timers.first_entry() else { return };
            if entry.key().0 > now {
                return;
            }
            let input = match entry.remove() {
                Scheduled::Timer(timer) => {
                    self.observer.on_event(self.node.id(), now, &RunnerEvent::Timeout(timer));
                    Input::Timeout(timer)
                }
                Scheduled::LocalVote(vote) => {
                    self.observer.on_event(self.node.id(), now, &RunnerEvent::LocalVote(&vote));
                    Input::LocalVote(*vote)
                }
            };
            self.step(now, input, out).await;
        }
    }

    fn schedule(&mut self, at: TimeMs, what: Scheduled) {
        self.timers.insert((at, self.next_seq), what);
        self.next_seq += 1;
    }

    async fn step(&mut self, now: TimeMs, input: Input, out: &mut Vec<Output>) {
        out.clear();
        self.node.handle(now, input, out);
        let me = self.node.id();
        for output in out.drain(..) {
            match output {
                Output::Broadcast(message) => {
                    let frame: Frame = wire::encode(&message).into();
                    for i in 0..self.peers.len() {
                        let to = self.peers[i];
                        self.observer.on_event(
                            me,
                            now,
                            &RunnerEvent::Send { to, message: &message, bytes: frame.len() },
                        );
                        self.tx.send(to, frame.clone()).await;
                    }
                }
                Output::Send { to, message } => {
                    let frame: Frame = wire::encode(&message).into();
                    self.observer.on_event(me, now, &RunnerEvent::Send { to, message: &message, bytes: frame.len() });
                    self.tx.send(to, frame).await;
                }
                Output::SendRaw { to, bytes } => {
                    self.observer.on_event(me, now, &RunnerEvent::SendRaw { to, bytes: &bytes });
                    self.tx.send(to, bytes.into()).await;
                }
                Output::Schedule { timer, at_ms } => self.schedule(at_ms, Scheduled::Timer(timer)),
                Output::Evaluate(spec) => {
                    let request =
                        EvaluationRequest { spec: &spec, agent: me, specialization: self.specialization, now_ms: now };
                    let evaluation = self.evaluator.evaluate(&request);
                    self.schedule(
                        now.saturating_add(evaluation.latency_ms),
                        Scheduled::LocalVote(Box::new(evaluation.vote)),
                    );
                }
                Output::Decide(record) => self.observer.on_event(me, now, &RunnerEvent::Decide(&record)),
                // L78: a host with an archive (`durable::Archived`) answers it before the
                // runner sees it; without one there is nothing to send.
                Output::ServeArchived { .. } => {}
                Output::Evidence(evidence) => self.observer.on_event(me, now, &RunnerEvent::Evidence(&evidence)),
                Output::Reject { from, reason } => {
                    self.observer.on_event(me, now, &RunnerEvent::Reject { from, reason: &reason })
                }
            }
        }
    }
}

/// Polls `first`, then `second`; `Some(a)` when `first` is ready, `None` when only `second`
/// is. `first` is polled first on every wake-up, so the choice is deterministic.
async fn race_biased<A, B>(mut first: Pin<&mut A>, mut second: Pin<&mut B>) -> Option<A::Output>
where
    A: Future,
    B: Future<Output = ()>,
{
    std::future::poll_fn(|cx| {
        if let Poll::Ready(a) = first.as_mut().poll(cx) {
            return Poll::Ready(Some(a));
        }
        if second.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
