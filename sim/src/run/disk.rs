//! Each agent's simulated disk and the durability code that runs on it: the same
//! `durable::DurableAgent` as `bftsim-node` (every input logged before the agent handles it,
//! an own message signed for the first time released only once the log is durable up to its
//! input), over a `durable::SimDisk` that lives outside the agent's madsim node, so that it
//! survives the node's crash as a disk survives its process.
//!
//! A simulated crash kills the node: the `Agent`, its timers, its pending frames and the
//! syncer task all vanish, and the disk keeps what was synced plus what `[storage] crash`
//! says of the rest. A restart rebuilds the agent from the disk alone (log replay) and feeds
//! it `Input::Recover`. The fsync is simulated: at once by default (inside the step that
//! needed it), or after the disk's latency (`slow-disk`), by a syncer task that releases the
//! frames waiting for it, as the node's syncer does (group commit: one sync covers every
//! record written before it).
//!
//! Every own signed message an honest agent lets out is shown to the oracle when it leaves
//! (`no-equivocation-across-restarts`), its answer to every `Sync` it handles
//! (`sync-serve-rate`) and every step's input and outputs (`sync-requests`); every record the simulator damages is checked at the
//! next restart (`corruption-detected`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use consensus_core::protocol::{Input, Message, Node, Output, TimerKind};
use consensus_core::runner::{Clock, Frame};
use consensus_core::{AgentId, SessionId, TimeMs};
use durable::{Archived, DurableAgent, DurableConfig, Op, Recoverable, SimDisk};

pub(super) use super::disks::{AgentStorage, Disks};
use super::{lock, Shared, SimClock};
use crate::oracle::asks::StepInput;
use crate::oracle::durability::Signed;
use crate::oracle::names;
use crate::oracle::rates::SyncSeen;

/// The frame a node's transport decoded last, left for the agent's log (which logs the frame
/// as it arrived rather than encoding the message again).
pub(super) type FrameStash = std::rc::Rc<std::cell::Cell<Option<Frame>>>;

/// An agent's node behind its durability layer.
pub(super) type Inner = Box<dyn Recoverable + Send>;

/// Frames and claims of one incarnation waiting for its log to be durable. The marks are
/// atomics so that the common case (nothing waits) takes no lock on every frame sent.
#[derive(Default)]
pub(super) struct Gate {
    /// The mark every frame queued now waits for (the last input that produced a first
    /// signature).
    required: AtomicU64,
    /// The mark known durable.
    durable: AtomicU64,
    /// The agent stopped (its log failed).
    stopped: AtomicBool,
    waiting: Mutex<Waiting>,
}

/// What waits for the syncer.
#[derive(Default)]
struct Waiting {
    /// Frames: (mark, recipient address, frame).
    outbox: VecDeque<(u64, AgentId, Frame)>,
    /// Own signed messages, shown to the oracle when they leave.
    claims: VecDeque<(u64, Vec<Signed>)>,
    /// The syncer's waker.
    syncer: Option<Waker>,
}

impl Gate {
    fn behind(&self) -> bool {
        self.required.load(Ordering::Relaxed) > self.durable.load(Ordering::Relaxed)
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Whether a frame sent now must wait (or never leave); if it must wait it is queued.
    pub fn hold(&self, to: AgentId, frame: &Frame) -> bool {
        if self.stopped() {
            return true;
        }
        if !self.behind() {
            return false;
        }
        let required = self.required.load(Ordering::Relaxed);
        lock(&self.waiting).outbox.push_back((required, to, frame.clone()));
        true
    }
}

/// Shows own signed messages to the oracle as they leave.
fn publish(world: &Shared, agent: AgentId, now: TimeMs, signed: Vec<Signed>) {
    if signed.is_empty() {
        return;
    }
    let mut w = lock(world);
    let step = w.trace.step();
    for s in signed {
        w.oracle.on_signed(agent, s, step, now);
    }
    w.stop |= w.oracle.violation().is_some();
}

/// What a running incarnation needs to stop itself or release frames.
#[derive(Clone)]
pub(super) struct Incarnation {
    pub me: AgentId,
    pub address: AgentId,
    pub world: Shared,
    pub clock: SimClock,
    pub gate: Arc<Gate>,
    /// Called when the node stops (the opener of agent 0's node stops with it).
    pub on_stop: Arc<dyn Fn() + Send + Sync>,
}

impl Incarnation {
    /// The agent cannot go on (its log failed): it stops as a crashed node does, and counts
    /// as faulty (`Scenario::disk_stopped_agents`).
    pub fn stop(&self, reason: &str) {
        self.gate.stopped.store(true, Ordering::Relaxed);
        {
            let mut waiting = lock(&self.gate.waiting);
            waiting.outbox.clear();
            waiting.claims.clear();
        }
        let now = self.clock.now_ms();
        {
            let mut w = lock(&self.world);
            w.up.remove(&self.address);
            w.inboxes.remove(&self.address);
            w.oracle.on_down(self.me);
            w.record_fault(now, format!("agent {} stops: {reason}", self.me.0), Some(self.me));
        }
        (self.on_stop)();
    }

    /// Releases what waited for the log up to `durable`.
    fn release(&self, durable: u64) {
        let (frames, claims) = {
            let d = self.gate.durable.fetch_max(durable, Ordering::Relaxed).max(durable);
            let mut waiting = lock(&self.gate.waiting);
            let mut frames = Vec::new();
            while waiting.outbox.front().is_some_and(|(m, _, _)| *m <= d) {
                frames.extend(waiting.outbox.pop_front());
            }
            let mut claims = Vec::new();
            while waiting.claims.front().is_some_and(|(m, _)| *m <= d) {
                claims.extend(waiting.claims.pop_front().map(|(_, c)| c).unwrap_or_default());
            }
            (frames, claims)
        };
        let now = self.clock.now_ms();
        publish(&self.world, self.me, now, claims);
        let mut w = lock(&self.world);
        for (_, to, frame) in frames {
            w.send_as(now, self.me, self.address, to, frame);
        }
    }
}

/// The agent behind its durability layer, as the runner drives it.
pub(super) struct DurableNode {
    agent: Layer,
    /// The frame the transport decoded last: a `Receive` is logged as that frame.
    stash: FrameStash,
    disk: SimDisk,
    life: Incarnation,
    /// Whether the oracle checks this agent's own messages (honest agents).
    check: bool,
}

/// How an incarnation's inputs reach the agent.
enum Layer {
    /// Through `durable::DurableAgent` onto the agent's disk, as in `bftsim-node`.
    Logged(DurableAgent<Inner, AgentStorage>),
    /// Straight to the agent: one that no fault of the run can reach (it never crashes, so
    /// nothing ever reads its log: `AgentStorage::keep` is false) and whose fsyncs are
    /// instant (`[storage] sync_ms = 0`). Through the layer its frames would never wait and
    /// its disk would keep no byte, so it behaves the same, without encoding, checksumming and
    /// dropping a record per input (`Start::direct`). Only madsim's schedule changes, as it
    /// draws among fewer tasks (no syncer): with a placeholder task in the syncer's place, every
    /// run of `bftsim run scenarios --seeds 20` had the trace hash it had through the layer.
    Direct(Inner),
}

impl DurableNode {
    fn inner(&self) -> &Inner {
        match &self.agent {
            Layer::Logged(agent) => agent.inner(),
            Layer::Direct(inner) => inner,
        }
    }

    /// Own signed messages among `outputs`, for the oracle (honest agents only).
    fn signed(&self, outputs: &[Output]) -> Vec<Signed> {
        if !self.check {
            return Vec::new();
        }
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Broadcast(m) | Output::Send { message: m, .. } => Signed::of(self.life.me, m),
                _ => None,
            })
            .collect()
    }

    /// `sync-serve-rate` (honest agents): the `Sync` this step handled, if any, and whether
    /// certificates or `Pruned` went back to its sender (after the archive answered for the
    /// agent, L78).
    fn judge_sync(&self, now: TimeMs, sync: Option<(AgentId, SessionId)>, outputs: &[Output]) {
        let Some((from, next)) = sync.filter(|_| self.check) else { return };
        let answered = outputs.iter().any(
            |o| matches!(o, Output::Send { to, message: Message::Commit(_) | Message::Pruned { .. } } if *to == from),
        );
        let mut w = lock(&self.life.world);
        let step = w.trace.step();
        w.oracle.on_sync(SyncSeen { agent: self.life.me, from, next, answered }, step, now);
        w.stop |= w.oracle.violation().is_some();
    }

    /// `sync-requests` (honest agents): the step's input and every output, for the `Sync`s it
    /// sent and the sessions it decided.
    fn judge_requests(&self, now: TimeMs, input: StepInput, outputs: &[Output]) {
        if !self.check {
            return;
        }
        let mut w = lock(&self.life.world);
        let step = w.trace.step();
        w.oracle.on_agent_step(self.life.me, input, outputs, step, now);
        w.stop |= w.oracle.violation().is_some();
    }
}

/// What a step's input is for `sync-requests`.
fn step_input(input: &Input) -> StepInput {
    match input {
        Input::Receive { from, message: Message::Sync { next } } => StepInput::Sync { from: *from, next: next.0 },
        Input::Receive { from, .. } => StepInput::Message { from: *from },
        Input::Timeout(t) if t.kind == TimerKind::Status => StepInput::Status,
        Input::Timeout(t) if t.kind == TimerKind::Retransmit => StepInput::Retransmit(t.session),
        Input::Recover => StepInput::Recover,
        Input::Timeout(_) | Input::LocalVote(_) | Input::Malformed { .. } => StepInput::Other,
    }
}

impl Node for DurableNode {
    fn id(&self) -> AgentId {
        self.life.me
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        if self.life.gate.stopped() {
            return;
        }
        let start = out.len();
        let sync = match &input {
            Input::Receive { from, message: Message::Sync { next } } => Some((*from, *next)),
            _ => None,
        };
        let kind = step_input(&input);
        let agent = match &mut self.agent {
            Layer::Logged(agent) => agent,
            Layer::Direct(inner) => {
                inner.handle(now_ms, input, out);
                self.judge_sync(now_ms, sync, &out[start..]);
                self.judge_requests(now_ms, kind, &out[start..]);
                let signed = self.signed(&out[start..]);
                publish(&self.life.world, self.life.me, now_ms, signed);
                return;
            }
        };
        let handled = match (input, self.stash.take()) {
            (Input::Receive { from, message }, Some(frame)) => agent.handle_frame(now_ms, from, message, &frame, out),
            (input, _) => agent.handle(now_ms, input, out),
        };
        let mark = match handled {
            Ok(mark) => mark,
            Err(e) => {
                out.truncate(start);
                self.life.stop(&format!("its log failed ({e})"));
                return;
            }
        };
        let signed = self.signed(&out[start..]);
        self.judge_sync(now_ms, sync, &out[start..]);
        self.judge_requests(now_ms, kind, &out[start..]);
        let Layer::Logged(agent) = &mut self.agent else { return };
        if agent.needs_compaction() {
            // As the node does: a snapshot of the agent, then a new log (everything durable).
            match agent.compact() {
                Ok(true) => lock(&self.life.world).record_compaction(now_ms, self.life.me),
                Ok(false) => {}
                Err(e) => {
                    out.truncate(start);
                    self.life.stop(&format!("its log compaction failed ({e})"));
                    return;
                }
            }
            // Everything logged is durable now: what waited for a sync leaves, in order.
            self.life.release(agent.durable());
        }
        let gate = &self.life.gate;
        if let Some(m) = mark {
            gate.required.fetch_max(m, Ordering::Relaxed);
        }
        if !gate.behind() {
            publish(&self.life.world, self.life.me, now_ms, signed);
            return;
        }
        {
            let mut waiting = lock(&gate.waiting);
            let idle = waiting.outbox.is_empty() && waiting.claims.is_empty();
            if !idle || self.disk.latency_ms(Op::Sync) > 0 {
                // The syncer makes the log durable after the disk's latency and releases these.
                waiting.claims.push_back((gate.required.load(Ordering::Relaxed), signed));
                if let Some(w) = waiting.syncer.take() {
                    w.wake();
                }
                return;
            }
        }
        // An instant fsync, inside the step that needs it.
        match agent.sync() {
            Ok(durable) => {
                gate.durable.fetch_max(durable, Ordering::Relaxed);
                publish(&self.life.world, self.life.me, now_ms, signed);
            }
            Err(e) => {
                out.truncate(start);
                self.life.stop(&format!("its fsync failed ({e})"));
            }
        }
    }
}

/// The syncer of one incarnation: whenever frames wait, waits out the disk's fsync latency,
/// syncs (covering every record written by then) and releases them. Killed with the node.
pub(super) async fn syncer(life: Incarnation, sync: durable::SyncHandle<AgentStorage>, disk: SimDisk) {
    loop {
        std::future::poll_fn(|cx| {
            let mut waiting = lock(&life.gate.waiting);
            if life.gate.stopped() || !life.gate.behind() {
                waiting.syncer = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let latency = disk.latency_ms(Op::Sync);
        if latency > 0 {
            madsim::time::sleep(std::time::Duration::from_millis(latency)).await;
        }
        match sync.sync() {
            Ok(durable) => life.release(durable),
            Err(e) => {
                life.stop(&format!("its fsync failed ({e})"));
                return;
            }
        }
    }
}

/// The `forget-lock-on-restart` mutation: while the log is replayed after a restart, the
/// proposals, round votes and round timeouts it holds are skipped, so the agent comes back
/// without its lock, valid value and own round votes (amnesia).
pub(super) struct Amnesic {
    pub inner: Inner,
    pub replaying: Arc<AtomicBool>,
}

impl Node for Amnesic {
    fn id(&self) -> AgentId {
        self.inner.id()
    }
    fn coverage(&self) -> Option<&consensus_core::protocol::coverage::Coverage> {
        self.inner.coverage()
    }
    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        let forgotten = match &input {
            Input::Receive { message: Message::Proposal(_) | Message::RoundVote(_), .. } => true,
            Input::Timeout(t) => matches!(t.kind, TimerKind::Propose | TimerKind::Prevote | TimerKind::Precommit),
            _ => false,
        };
        if forgotten && self.replaying.load(Ordering::Relaxed) {
            return;
        }
        self.inner.handle(now_ms, input, out);
    }
}

/// A snapshot holds the agent's lock, so a restart from one remembers it: the amnesia is
/// of the log replayed after the snapshot (`[storage] compact_log_bytes`).
impl Recoverable for Amnesic {
    fn snapshot(&self) -> Option<Vec<u8>> {
        self.inner.snapshot()
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.inner.restore(snapshot)
    }
    fn can_snapshot(&self) -> bool {
        self.inner.can_snapshot()
    }
    fn applied_sessions(&self) -> Option<u64> {
        self.inner.applied_sessions()
    }
}

/// How one incarnation of an agent starts.
pub(super) struct Start {
    pub inner: Inner,
    pub storage: AgentStorage,
    pub life: Incarnation,
    pub honest: bool,
    /// The node crashed and restarts (not its first start).
    pub restart: bool,
    /// `forget-lock-on-restart`.
    pub amnesia: bool,
    /// The log's compaction threshold.
    pub config: DurableConfig,
    /// No fault of the run reaches the agent and fsyncs are instant: no layer (`Layer::Direct`).
    pub direct: bool,
}

/// Opens the agent's log and rebuilds it: the node to run and whether to feed it
/// `Input::Recover`, or `None` when the log is refused (the agent stays down: a disk fault).
pub(super) fn open(start: Start, disks: &Disks) -> Option<(DurableNode, bool)> {
    let Start { inner, storage, life, honest, restart, amnesia, config, direct } = start;
    // As in the node: the agent answers peers far behind from its archive (L78-L81).
    let archive = match disks.archive(life.address) {
        Ok(archive) => archive,
        Err(e) => {
            life.stop(&format!("its archive cannot be opened ({e})"));
            return None;
        }
    };
    if direct && !restart {
        let disk = storage.disk.clone();
        let agent = Layer::Direct(Box::new(Archived::new(inner, archive)));
        return Some((DurableNode { agent, stash: FrameStash::default(), disk, life, check: honest }, false));
    }
    let replaying = Arc::new(AtomicBool::new(true));
    let inner: Inner =
        if amnesia && restart { Box::new(Amnesic { inner, replaying: replaying.clone() }) } else { inner };
    let inner: Inner = Box::new(Archived::new(inner, archive));
    let opened = DurableAgent::open(inner, storage.clone(), config, |_, _, _| {});
    replaying.store(false, Ordering::Relaxed);
    let now = life.clock.now_ms();
    let (agent, replayed) = match opened {
        Ok(x) => x,
        Err(e) => {
            life.stop(&format!("it refuses to start: {e}"));
            return None;
        }
    };
    let damage = disks.replayed_damage(life.address, &storage);
    {
        let mut w = lock(&life.world);
        if restart {
            let cut = replayed
                .cut
                .map_or_else(String::new, |c| format!(", cut {} bytes at byte {} ({})", c.bytes, c.offset, c.reason));
            let from = if replayed.from_snapshot { "restored its snapshot and " } else { "" };
            let detail = format!("agent {} restarts: {from}replayed {} logged inputs{cut}", life.me.0, replayed.inputs);
            let step = w.record_fault(now, detail, Some(life.me));
            if life.me == life.address {
                w.oracle.on_restart(life.me, now);
            }
            if let Some(detail) = damage {
                w.oracle.report(names::CORRUPTION_DETECTED, step, now, detail);
                w.stop = true;
            }
        }
    }
    life.gate.durable.store(agent.durable(), Ordering::Relaxed);
    let recover = restart || replayed.restarted();
    let disk = storage.disk.clone();
    let agent = Layer::Logged(agent);
    Some((DurableNode { agent, stash: FrameStash::default(), disk, life, check: honest }, recover))
}

/// The incarnation ends (its node crashed, or the run ended and killed it): an honest agent's
/// protocol coverage goes to the run's (docs/coverage.md). madsim drops a killed node's tasks
/// outside the world's lock (`run::net::spawn_faults`, the end of `run::simulate`).
impl Drop for DurableNode {
    fn drop(&mut self) {
        if !self.check {
            return;
        }
        if let Some(coverage) = self.inner().coverage() {
            lock(&self.life.world).coverage.agent_ended(coverage);
        }
    }
}

impl DurableNode {
    /// The sync handle for the syncer task (none without the layer: nothing waits).
    pub fn sync_handle(&self) -> Option<durable::SyncHandle<AgentStorage>> {
        match &self.agent {
            Layer::Logged(agent) => Some(agent.sync_handle()),
            Layer::Direct(_) => None,
        }
    }

    /// Where the transport leaves the frame it decodes (none without the layer: no log).
    pub fn stash(&self) -> Option<FrameStash> {
        matches!(self.agent, Layer::Logged(_)).then(|| self.stash.clone())
    }

    /// The disk.
    pub fn disk(&self) -> SimDisk {
        self.disk.clone()
    }
}
