//! The tokio glue around the `durable` crate: the syncer task (group commit), the marks the
//! transport waits for, and the runner's node.
//!
//! The log, its checksums, replay, compaction and the rule of when an output must wait for the
//! log are the `durable` crate's (`DurableAgent`), the same code the simulator runs. Here:
//! - [`syncer`] fsyncs a journal whenever a record is required durable and the last sync does
//!   not cover it, covering every record written meanwhile (one fsync for many records); the
//!   runner never waits for it;
//! - [`Durability`] carries the marks: the transport tags every frame with the mark required
//!   when it was queued, and a peer's writer puts it on the socket only once the syncer has
//!   made the log durable that far;
//! - [`DurableNode`] is what the runner drives: it logs through `DurableAgent`, raises the
//!   required mark, hands `Evaluate` to the asynchronous evaluator, keeps decisions for the
//!   API, and compacts the log. If the log fails, the agent stops: nothing it does afterwards
//!   would survive a restart, so it neither handles nor sends anything, and `/healthz` says
//!   why.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use consensus_core::protocol::{Input, Message, Node, Output, SessionSpec};
use consensus_core::{AgentId, TimeMs};
use durable::{DurableAgent, FileStorage, LogError, Recoverable, SyncHandle};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, watch, Notify};

use crate::state::Shared;

/// The sender id under which the node's own evaluator delivers the agent's vote: a frame
/// `Vote` from this id (never reachable from the network, whose frames carry authenticated
/// agent ids) becomes `Input::LocalVote`.
pub const LOCAL_EVALUATOR: AgentId = AgentId(u32::MAX - 1);

/// Where a journal's syncs are.
#[derive(Clone, Copy, Debug, Default)]
struct Marks {
    durable: u64,
    failed: bool,
}

/// How far a journal is required to be durable, and how far it is.
pub struct Durability {
    required: AtomicU64,
    marks: watch::Sender<Marks>,
    kick: Notify,
    failure: Mutex<Option<String>>,
    /// fsyncs performed.
    pub fsyncs: Counter,
}

impl Durability {
    /// Nothing required yet.
    pub fn new() -> Arc<Durability> {
        Arc::new(Durability {
            required: AtomicU64::new(0),
            marks: watch::Sender::new(Marks::default()),
            kick: Notify::new(),
            failure: Mutex::new(None),
            fsyncs: Counter::default(),
        })
    }

    /// The mark a frame queued now must wait for.
    pub fn required(&self) -> u64 {
        self.required.load(Ordering::Acquire)
    }

    /// Requires the journal durable up to `mark` and wakes the syncer.
    pub fn require(&self, mark: u64) {
        self.required.fetch_max(mark, Ordering::AcqRel);
        self.kick.notify_one();
    }

    /// Waits until the journal is durable up to `mark`. Never returns if the journal failed
    /// first (what waits must then never happen).
    pub async fn wait_durable(&self, mark: u64) {
        let mut rx = self.marks.subscribe();
        let _ = rx.wait_for(|m| m.durable >= mark).await;
    }

    /// Requires `mark` and waits for it; `Err` with the reason if the journal failed first.
    pub async fn durable_or_failed(&self, mark: u64) -> Result<(), String> {
        self.require(mark);
        let mut rx = self.marks.subscribe();
        let reached = rx.wait_for(|m| m.durable >= mark || m.failed).await.map(|m| m.durable >= mark);
        match reached {
            Ok(true) => Ok(()),
            _ => Err(self.failure().unwrap_or_else(|| "the durable log stopped".into())),
        }
    }

    /// Why the journal failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fail(&self, why: String) {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(why);
        self.marks.send_modify(|m| m.failed = true);
    }
}

/// fsyncs the journal behind `handle` whenever the required mark is ahead of the durable one.
/// Stops at the first failure (the journal then takes nothing more, and what waits never
/// leaves).
pub async fn syncer(durability: Arc<Durability>, handle: SyncHandle<FileStorage>, what: &'static str) {
    loop {
        let durable = durability.marks.borrow().durable;
        if durable >= durability.required() {
            durability.kick.notified().await;
            continue;
        }
        let h = handle.clone();
        match tokio::task::spawn_blocking(move || h.sync()).await {
            Ok(Ok(mark)) => {
                durability.fsyncs.inc();
                durability.marks.send_modify(|m| m.durable = m.durable.max(mark));
            }
            Ok(Err(e)) => {
                eprintln!("fatal: {what}: {e}");
                durability.fail(e.to_string());
                return;
            }
            Err(e) => {
                durability.fail(format!("{what}: the sync task failed: {e}"));
                return;
            }
        }
    }
}

/// What the runner drives: a `DurableAgent` over real files, with the node's duties around it
/// (see the module documentation).
pub struct DurableNode<N> {
    agent: DurableAgent<N, FileStorage>,
    /// `None` when fsync is off: frames then never wait.
    durability: Option<Arc<Durability>>,
    evaluations: mpsc::UnboundedSender<SessionSpec>,
    shared: Arc<Shared>,
    stopped: bool,
}

impl<N: Recoverable> DurableNode<N> {
    /// Wraps an opened agent.
    pub fn new(
        agent: DurableAgent<N, FileStorage>,
        durability: Option<Arc<Durability>>,
        evaluations: mpsc::UnboundedSender<SessionSpec>,
        shared: Arc<Shared>,
    ) -> Self {
        DurableNode { agent, durability, evaluations, shared, stopped: false }
    }

    fn stop(&mut self, error: &LogError) {
        // Without a durable log the agent could sign conflicting messages after a restart:
        // it stops rather than act.
        eprintln!("fatal: agent {}: durable log: {error}; the agent stopped (see /healthz)", self.agent.inner().id().0);
        self.shared.fail_log(error.to_string());
        if let Some(d) = &self.durability {
            d.fail(error.to_string());
        }
        self.stopped = true;
    }

    /// Compacts the log when it is due, after making the decisions the API serves durable
    /// (the replay after a restart no longer produces those decided before the snapshot).
    fn compact_if_due(&mut self) {
        if !self.agent.needs_compaction() {
            return;
        }
        let compacted = self.shared.sync_decisions().and_then(|()| self.agent.compact());
        if let Err(e) = compacted {
            // The old snapshot and log still hold everything; the next input tries again.
            eprintln!("agent {}: compaction failed: {e}", self.agent.inner().id().0);
        }
    }
}

impl<N: Recoverable> Node for DurableNode<N> {
    fn id(&self) -> AgentId {
        self.agent.inner().id()
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        if self.stopped {
            return;
        }
        let input = match input {
            Input::Receive { from: LOCAL_EVALUATOR, message: Message::Vote(signed) } => Input::LocalVote(signed.vote),
            Input::Receive { from: LOCAL_EVALUATOR, .. } => return,
            other => other,
        };
        let start = out.len();
        match self.agent.handle(now_ms, input, out) {
            Ok(Some(mark)) => {
                if let Some(d) = &self.durability {
                    d.require(mark);
                }
            }
            Ok(None) => {}
            Err(e) => {
                out.truncate(start);
                self.stop(&e);
                return;
            }
        }
        self.shared.keep_decisions(&out[start..]);
        let mut kept = start;
        for i in start..out.len() {
            if let Output::Evaluate(spec) = &out[i] {
                let _ = self.evaluations.send(spec.clone());
            } else {
                out.swap(kept, i);
                kept += 1;
            }
        }
        out.truncate(kept);
        self.compact_if_due();
    }
}
