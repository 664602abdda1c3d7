//! What the node shows: decisions with their certificates, counters for `/metrics`, and the
//! runner's [`Observer`] that fills them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use consensus_core::metrics::{MetricsRecorder, SessionOutcome, SessionResult};
use consensus_core::protocol::{
    AgreedOutcome, DecisionRecord, Evidence, Input, Message, Output, ProposalMode, TimerKind,
};
use consensus_core::runner::{Observer, RunnerEvent};
use consensus_core::{AgentId, SessionId, TimeMs};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

pub use durable::DecisionEntry;
use durable::{FileStorage, SharedArchive};

pub use crate::metrics::Labels;

/// Counters kept with prometheus-client.
pub struct Counters {
    /// Messages sent, by kind.
    pub sent: Family<Labels, Counter>,
    /// Messages received (decoded), by kind.
    pub received: Family<Labels, Counter>,
    /// Inputs the agent rejected, by reason.
    pub rejections: Family<Labels, Counter>,
    /// Evidence of Byzantine behaviour, by kind.
    pub evidence: Family<Labels, Counter>,
    /// Timers fired, by kind.
    pub timeouts: Family<Labels, Counter>,
    /// Sessions decided here.
    pub decisions: Counter,
    /// Evaluations that ended in an abstention, by reason (timeout, bad output, failure).
    pub abstentions: Family<Labels, Counter>,
    /// Decision latency (decided − opened), seconds.
    pub consensus_time: prometheus_client::metrics::histogram::Histogram,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            sent: Family::default(),
            received: Family::default(),
            rejections: Family::default(),
            evidence: Family::default(),
            timeouts: Family::default(),
            decisions: Counter::default(),
            abstentions: Family::default(),
            consensus_time: crate::metrics::seconds_histogram(),
        }
    }

    /// Registers every counter in `registry` under the `bftsim` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("messages_sent", "Protocol messages sent, by kind", self.sent.clone());
        registry.register("messages_received", "Protocol messages received, by kind", self.received.clone());
        registry.register("rejections", "Inputs rejected by the agent, by reason", self.rejections.clone());
        registry.register("evidence", "Evidence of Byzantine behaviour, by kind", self.evidence.clone());
        registry.register("timeouts", "Protocol timers fired, by kind", self.timeouts.clone());
        registry.register("decisions", "Sessions decided by this agent", self.decisions.clone());
        registry.register("evaluator_abstentions", "Evaluations that became abstentions", self.abstentions.clone());
        registry.register(
            "consensus_time_seconds",
            "Decision latency: from the session's opening to its decision here",
            self.consensus_time.clone(),
        );
    }
}

/// The decisions above the contiguous prefix remembered before the lowest are forgotten.
const MAX_DECIDED_ABOVE: usize = 65_536;

/// What healthz needs to know about the agent's progress and its peers'.
#[derive(Default)]
struct Progress {
    /// Every session below is decided here.
    applied: u64,
    /// Sessions decided here above `applied`.
    above: BTreeSet<u64>,
    /// Each peer's latest `Sync { next }`: the sessions it has applied.
    peers: BTreeMap<AgentId, u64>,
    /// Each peer's latest `Pruned { below }` (L81): it keeps no certificate below.
    pruned: BTreeMap<AgentId, u64>,
}

impl Progress {
    fn decided(&mut self, session: u64) {
        if session < self.applied {
            return;
        }
        self.above.insert(session);
        while self.above.remove(&self.applied) {
            self.applied += 1;
        }
        while self.above.len() > MAX_DECIDED_ABOVE {
            self.above.pop_first();
        }
    }
}

/// State shared by the runner's observer, the API and the metrics endpoint.
pub struct Shared {
    /// This agent.
    pub me: AgentId,
    /// Written by `durable::Archived` around the agent; read here for the API.
    decisions: SharedArchive<FileStorage>,
    recorder: Mutex<MetricsRecorder>,
    /// Woken on every decision.
    pub decided: Notify,
    /// Counters.
    pub counters: Counters,
    /// The highest session id seen in an `Open` (the opener numbers new sessions above it).
    pub highest_opened: AtomicU64,
    /// Undecided sessions: the latest round a protocol timer fired in, and the last timer.
    progress: Mutex<BTreeMap<SessionId, (u32, String)>>,
    applied: Mutex<Progress>,
    /// Why the durable log stopped taking records, if it did (the agent then stops).
    log_failure: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

fn kebab<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "other".into())
}

/// What [`Shared::lookup`] found.
pub enum Lookup {
    /// The decision.
    Decided(Arc<DecisionEntry>),
    /// Decided here, but older than what the node keeps.
    Forgotten,
    /// Not decided here (yet).
    Unknown,
}

impl Shared {
    /// State for agent `me`, serving the decisions of `decisions` (the archive the agent's
    /// `durable::Archived` wrapper fills).
    pub fn new(me: AgentId, decisions: SharedArchive<FileStorage>) -> Arc<Shared> {
        Arc::new(Shared {
            me,
            decisions,
            recorder: Mutex::new(MetricsRecorder::new()),
            decided: Notify::new(),
            counters: Counters::new(),
            highest_opened: AtomicU64::new(0),
            progress: Mutex::new(BTreeMap::new()),
            applied: Mutex::new(Progress::default()),
            log_failure: Mutex::new(None),
        })
    }

    /// The decision of `session`, if this agent has it and keeps it.
    pub fn lookup(&self, session: SessionId) -> Lookup {
        let found = lock(&self.decisions).get(session);
        match found {
            Ok(Some(entry)) => Lookup::Decided(entry),
            Ok(None) if self.is_decided(session) => Lookup::Forgotten,
            Ok(None) => Lookup::Unknown,
            Err(e) => {
                eprintln!("agent {}: decision store: {e}", self.me.0);
                Lookup::Unknown
            }
        }
    }

    /// Whether this agent decided `session`.
    pub fn is_decided(&self, session: SessionId) -> bool {
        let p = lock(&self.applied);
        session.0 < p.applied || p.above.contains(&session.0)
    }

    /// Every session below this one is decided here.
    pub fn applied(&self) -> u64 {
        lock(&self.applied).applied
    }

    /// Sessions decided here that the API still serves, and the retention.
    pub fn kept_decisions(&self) -> (usize, usize) {
        let store = lock(&self.decisions);
        (store.len(), store.keep())
    }

    /// Where an undecided session is: the latest round a protocol timer fired in and that timer's kind.
    pub fn progress(&self, session: SessionId) -> Option<(u32, String)> {
        lock(&self.progress).get(&session).cloned()
    }

    /// The most sessions any peer reported applied (its `Sync`), and how many peers reported.
    pub fn peers_applied(&self) -> (u64, usize) {
        let p = lock(&self.applied);
        (p.peers.values().copied().max().unwrap_or(0), p.peers.len())
    }

    /// L81: the peers that said they no longer keep a session this agent has not applied
    /// (their latest `Pruned` is above `applied`), and the lowest session such a peer still
    /// keeps. `(0, 0)` when none did.
    pub fn pruned_beyond(&self) -> (usize, u64) {
        let p = lock(&self.applied);
        let beyond: Vec<u64> = p.pruned.values().copied().filter(|below| *below > p.applied).collect();
        (beyond.len(), beyond.iter().copied().min().unwrap_or(0))
    }

    /// The design's metrics recorder (latency histogram, rates).
    pub fn recorder(&self) -> MetricsRecorder {
        lock(&self.recorder).clone()
    }

    /// The log failed: the agent stopped.
    pub fn fail_log(&self, why: String) {
        lock(&self.log_failure).get_or_insert(why);
    }

    /// Why the log failed, if it did.
    pub fn log_failure(&self) -> Option<String> {
        lock(&self.log_failure).clone()
    }

    /// Every session below `applied` is decided (the agent restored a snapshot).
    pub fn note_applied(&self, applied: u64) {
        let mut guard = lock(&self.applied);
        let p = &mut *guard;
        if applied > p.applied {
            p.applied = applied;
            p.above = p.above.split_off(&applied);
            while p.above.remove(&p.applied) {
                p.applied += 1;
            }
        }
    }

    fn on_decide(&self, record: &DecisionRecord) {
        let latency_ms = record.at_ms.saturating_sub(record.spec.spec.opened_ms);
        let (result, flagged) = match &record.outcome {
            AgreedOutcome::Decided { agreement, byzantine, .. } => (
                SessionResult::Decided { agreement: *agreement, fallback: record.mode == ProposalMode::Fallback },
                byzantine.len(),
            ),
            AgreedOutcome::Escalated { byzantine, .. } => (SessionResult::Escalated, byzantine.len()),
            AgreedOutcome::NoDecision { .. } => (SessionResult::NoDecision, 0),
        };
        let votes = record.votes.len();
        let outcome = SessionOutcome {
            session: record.session,
            latency_ms,
            result,
            votes_counted: votes.saturating_sub(flagged) as u32,
            votes_flagged: flagged as u32,
        };
        lock(&self.recorder).record(&outcome);
        self.counters.consensus_time.observe(latency_ms as f64 / 1000.0);
        {
            let applied = {
                let mut p = lock(&self.applied);
                p.decided(record.session.0);
                p.applied
            };
            let mut progress = lock(&self.progress);
            progress.remove(&record.session);
            // Sessions below `applied` are decided: their progress no longer matters.
            let undecided = progress.split_off(&SessionId(applied));
            *progress = undecided;
        }
        self.note_opened(record.session);
        self.counters.decisions.inc();
        self.decided.notify_waiters();
    }

    /// Records that `session` exists (so the opener never reuses its number).
    pub fn note_opened(&self, session: SessionId) {
        self.highest_opened.fetch_max(session.0.saturating_add(1), Ordering::Relaxed);
    }

    /// Counts the decisions among one input's outputs (the archive keeps them with their
    /// certificates: `durable::Archived`).
    pub fn keep_decisions(&self, outputs: &[Output]) {
        for output in outputs {
            if let Output::Decide(record) = output {
                self.on_decide(record);
            }
        }
    }

    /// Rebuilds what replaying one logged input shows: sessions opened, decisions.
    pub fn absorb_replayed(&self, input: &Input, outputs: &[Output]) {
        if let Input::Receive { message: Message::Open(open), .. } = input {
            self.note_opened(open.spec.session);
        }
        self.keep_decisions(outputs);
    }
}

/// The runner's observer: fills [`Shared`].
pub struct NodeObserver {
    shared: Arc<Shared>,
}

impl NodeObserver {
    /// An observer writing into `shared`.
    pub fn new(shared: Arc<Shared>) -> NodeObserver {
        NodeObserver { shared }
    }
}

impl Observer for NodeObserver {
    fn on_event(&mut self, _agent: AgentId, _now_ms: TimeMs, event: &RunnerEvent<'_>) {
        let counters = &self.shared.counters;
        match event {
            RunnerEvent::Send { to, message, .. } => {
                if *to == AgentId::CLIENT {
                    return; // certificates are kept with their decision (`keep_decisions`)
                }
                counters.sent.get_or_create(&label("kind", message.kind())).inc();
            }
            // Only a Byzantine wrapper sends raw frames (the testing-only --byzantine flag).
            RunnerEvent::SendRaw { .. } => {
                counters.sent.get_or_create(&label("kind", "raw")).inc();
            }
            RunnerEvent::Deliver { from, message, .. } => {
                match message {
                    Message::Open(open) => self.shared.note_opened(open.spec.session),
                    Message::Sync { next } if *from != self.shared.me && *from != AgentId::CLIENT => {
                        lock(&self.shared.applied).peers.insert(*from, next.0);
                    }
                    Message::Pruned { below } if *from != self.shared.me && *from != AgentId::CLIENT => {
                        lock(&self.shared.applied).pruned.insert(*from, below.0);
                    }
                    _ => {}
                }
                counters.received.get_or_create(&label("kind", message.kind())).inc();
            }
            RunnerEvent::Timeout(timer) => {
                counters.timeouts.get_or_create(&label("kind", kebab(&timer.kind))).inc();
                if !self.shared.is_decided(timer.session) && timer.kind != TimerKind::Status {
                    let mut progress = lock(&self.shared.progress);
                    let entry = progress.entry(timer.session).or_insert((0, String::new()));
                    entry.0 = entry.0.max(timer.round);
                    entry.1 = format!("{} (round {})", kebab(&timer.kind), timer.round);
                }
            }
            RunnerEvent::LocalVote(_) => {}
            RunnerEvent::Decide(_) => {} // kept by `DurableNode` with the certificate
            RunnerEvent::Evidence(evidence) => {
                let kind = match &**evidence {
                    Evidence::ConflictingVotes { .. } => "conflicting-votes",
                    Evidence::ConflictingRoundVotes { .. } => "conflicting-round-votes",
                    Evidence::ConflictingProposals { .. } => "conflicting-proposals",
                };
                counters.evidence.get_or_create(&label("kind", kind)).inc();
            }
            RunnerEvent::Reject { reason, .. } => {
                counters.rejections.get_or_create(&label("reason", kebab(*reason))).inc();
            }
        }
    }
}
