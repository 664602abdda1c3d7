//! What the node shows: decisions with their certificates, counters for `/metrics`, and the
//! runner's [`Observer`] that fills them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use consensus_core::metrics::{MetricsRecorder, SessionOutcome, SessionResult};
use consensus_core::protocol::{AgreedOutcome, Commit, DecisionRecord, Evidence, Message, Output, ProposalMode};
use consensus_core::runner::{Observer, RunnerEvent};
use consensus_core::{AgentId, SessionId, TimeMs};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

/// Prometheus label pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A decision and, once the agent has it, its commit certificate.
#[derive(Clone, Debug)]
pub struct DecisionEntry {
    /// What the agent decided.
    pub record: DecisionRecord,
    /// q precommits for the decided value.
    pub certificate: Option<Commit>,
}

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
    }
}

/// State shared by the runner's observer, the API and the metrics endpoint.
pub struct Shared {
    /// This agent.
    pub me: AgentId,
    decisions: Mutex<BTreeMap<SessionId, DecisionEntry>>,
    recorder: Mutex<MetricsRecorder>,
    /// Woken on every decision.
    pub decided: Notify,
    /// Counters.
    pub counters: Counters,
    /// The highest session id seen in an `Open` (the opener numbers new sessions above it).
    pub highest_opened: AtomicU64,
    /// Undecided sessions: the latest round a protocol timer fired in, and the last timer.
    progress: Mutex<BTreeMap<SessionId, (u32, String)>>,
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

impl Shared {
    /// Empty state for agent `me`.
    pub fn new(me: AgentId) -> Arc<Shared> {
        Arc::new(Shared {
            me,
            decisions: Mutex::new(BTreeMap::new()),
            recorder: Mutex::new(MetricsRecorder::new()),
            decided: Notify::new(),
            counters: Counters::new(),
            highest_opened: AtomicU64::new(0),
            progress: Mutex::new(BTreeMap::new()),
        })
    }

    /// The decision of `session`, if this agent has it.
    pub fn decision(&self, session: SessionId) -> Option<DecisionEntry> {
        lock(&self.decisions).get(&session).cloned()
    }

    /// Where an undecided session is: the latest round a timer fired in and that timer's kind.
    pub fn progress(&self, session: SessionId) -> Option<(u32, String)> {
        lock(&self.progress).get(&session).cloned()
    }

    /// Sessions decided here.
    pub fn decided_sessions(&self) -> Vec<SessionId> {
        lock(&self.decisions).keys().copied().collect()
    }

    /// The design's metrics recorder (latency histogram, rates).
    pub fn recorder(&self) -> MetricsRecorder {
        lock(&self.recorder).clone()
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
        lock(&self.progress).remove(&record.session);
        lock(&self.decisions)
            .entry(record.session)
            .or_insert_with(|| DecisionEntry { record: record.clone(), certificate: None });
        self.note_opened(record.session);
        self.counters.decisions.inc();
        self.decided.notify_waiters();
    }

    fn on_certificate(&self, commit: &Commit) {
        let session = commit.proposal.value.session;
        if let Some(entry) = lock(&self.decisions).get_mut(&session) {
            entry.certificate.get_or_insert_with(|| commit.clone());
        }
        self.decided.notify_waiters();
    }

    /// Records that `session` exists (so the opener never reuses its number).
    pub fn note_opened(&self, session: SessionId) {
        self.highest_opened.fetch_max(session.0.saturating_add(1), Ordering::Relaxed);
    }

    /// Rebuilds decisions from the outputs of a log replay.
    pub fn absorb_replayed(&self, outputs: &[Output]) {
        for output in outputs {
            match output {
                Output::Decide(record) => self.on_decide(record),
                Output::Send { to, message: Message::Commit(c) } if *to == AgentId::CLIENT => self.on_certificate(c),
                _ => {}
            }
        }
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
                    if let Message::Commit(c) = message {
                        self.shared.on_certificate(c);
                    }
                    return;
                }
                counters.sent.get_or_create(&label("kind", message.kind())).inc();
            }
            // Only a Byzantine wrapper sends raw frames (the testing-only --byzantine flag).
            RunnerEvent::SendRaw { .. } => {
                counters.sent.get_or_create(&label("kind", "raw")).inc();
            }
            RunnerEvent::Deliver { message, .. } => {
                if let Message::Open(open) = message {
                    self.shared.note_opened(open.spec.session);
                }
                counters.received.get_or_create(&label("kind", message.kind())).inc();
            }
            RunnerEvent::Timeout(timer) => {
                counters.timeouts.get_or_create(&label("kind", kebab(&timer.kind))).inc();
                if self.shared.decision(timer.session).is_none() {
                    let mut progress = lock(&self.shared.progress);
                    let entry = progress.entry(timer.session).or_insert((0, String::new()));
                    entry.0 = entry.0.max(timer.round);
                    entry.1 = format!("{} (round {})", kebab(&timer.kind), timer.round);
                }
            }
            RunnerEvent::LocalVote(_) => {}
            RunnerEvent::Decide(record) => self.shared.on_decide(record),
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
