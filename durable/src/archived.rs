//! The agent's host side of catch-up: a node wrapper that keeps every decision with its
//! certificate in the [`Archive`] and answers the agent's `ServeArchived` from it
//! (docs/protocol.md L78, L81).
//!
//! Why here and not in the agent: consensus-core keeps `keep_decided` decided sessions in
//! memory and no more (a node's memory must not grow with history); the certificates of older
//! sessions live on disk, and a pure state machine does no I/O. A certificate proves itself (q
//! precommits signed by committee members), so the host may send it for the agent: a receiver
//! checks it exactly as if the agent had sent it (L52–L53). `bftsim-node` runs it over real
//! files; it is generic over [`Storage`] so that the simulator can run it over a simulated disk
//! ([`Archived::open`]) once its agents run on the durable layer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};

use consensus_core::protocol::{Input, Message, Node, Output};
use consensus_core::{AgentId, SessionId, TimeMs};

use crate::agent::Recoverable;
use crate::archive::{Archive, DecisionEntry, SharedArchive};
use crate::log::LogError;
use crate::storage::Storage;

/// What the archive did for the agent.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Certificates sent to peers from the archive (L78).
    pub served: AtomicU64,
    /// `Pruned` answers: a peer asked for sessions older than the archive keeps (L81).
    pub pruned: AtomicU64,
    /// Decisions that could not be written or read (the archive's storage failed).
    pub failures: AtomicU64,
}

/// A node whose decisions are archived and whose `ServeArchived` outputs are answered from the
/// archive (see the module documentation).
pub struct Archived<N, S> {
    inner: N,
    archive: SharedArchive<S>,
    stats: Arc<ArchiveStats>,
}

fn lock<S>(archive: &SharedArchive<S>) -> MutexGuard<'_, Archive<S>> {
    archive.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<N: Node, S: Storage + Clone> Archived<N, S> {
    /// `inner` with its decisions kept in `archive`.
    pub fn new(inner: N, archive: SharedArchive<S>) -> Archived<N, S> {
        Archived { inner, archive, stats: Arc::default() }
    }

    /// `inner` with its decisions kept in a new archive of the last `keep` on `storage` (the
    /// simulator's agents: one disk holds the agent's log and its archive, as in the node).
    pub fn open(inner: N, storage: S, keep: usize) -> Result<Archived<N, S>, LogError> {
        let archive = Archive::open(storage, keep)?;
        Ok(Archived::new(inner, Arc::new(std::sync::Mutex::new(archive))))
    }

    /// The archive (shared: the node's API reads it).
    pub fn archive(&self) -> SharedArchive<S> {
        self.archive.clone()
    }

    /// The counters (shared: a reader may keep them).
    pub fn stats(&self) -> Arc<ArchiveStats> {
        self.stats.clone()
    }

    /// The wrapped node.
    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// Keeps the decisions among one input's outputs, each with the certificate the agent
    /// sends the client in the same step (L50–L51, L53).
    fn archive_decisions(&self, outputs: &[Output]) {
        for output in outputs {
            let Output::Decide(record) = output else { continue };
            let certificate = outputs.iter().find_map(|o| match o {
                Output::Send { to, message: Message::Commit(c) }
                    if *to == AgentId::CLIENT && c.proposal.value.session == record.session =>
                {
                    Some((**c).clone())
                }
                _ => None,
            });
            let entry = DecisionEntry { record: (**record).clone(), certificate };
            if lock(&self.archive).insert(entry).is_err() {
                // Not fatal: the decision is produced again when the agent's log is replayed.
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// L78 and L81: the archived certificates of `from .. until` for `to`, and `Pruned` when
    /// the archive no longer holds `from`.
    fn serve(&self, to: AgentId, from: SessionId, until: SessionId, out: &mut Vec<Output>) {
        let archive = lock(&self.archive);
        // Pruned names the oldest session still held (the asker learns how far the gap goes).
        let below = archive.oldest().unwrap_or(until);
        if from < below {
            self.stats.pruned.fetch_add(1, Ordering::Relaxed);
            out.push(Output::Send { to, message: Message::Pruned { below } });
        }
        for s in from.0.max(below.0)..until.0 {
            match archive.get(SessionId(s)) {
                Ok(Some(entry)) => {
                    if let Some(commit) = &entry.certificate {
                        self.stats.served.fetch_add(1, Ordering::Relaxed);
                        out.push(Output::Send { to, message: Message::Commit(Box::new(commit.clone())) });
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<N: Node, S: Storage + Clone> Node for Archived<N, S> {
    fn id(&self) -> AgentId {
        self.inner.id()
    }

    fn coverage(&self) -> Option<&consensus_core::protocol::coverage::Coverage> {
        self.inner.coverage()
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        let start = out.len();
        self.inner.handle(now_ms, input, out);
        self.archive_decisions(&out[start..]);
        if !out[start..].iter().any(|o| matches!(o, Output::ServeArchived { .. })) {
            return;
        }
        let produced: Vec<Output> = out.drain(start..).collect();
        for output in produced {
            match output {
                Output::ServeArchived { to, from, until } => self.serve(to, from, until, out),
                other => out.push(other),
            }
        }
    }
}

impl<N: Recoverable, S: Storage + Clone> Recoverable for Archived<N, S> {
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
    /// The decisions taken before the snapshot are not replayed after it: make them durable.
    fn prepare_snapshot(&mut self) -> Result<(), LogError> {
        lock(&self.archive).sync()?;
        self.inner.prepare_snapshot()
    }
}
