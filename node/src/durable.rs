//! Durable state: a write-ahead log of the agent's inputs, and the node wrapper that writes it.
//!
//! The `Agent` is a deterministic state machine (no clock, no randomness; ed25519 signatures
//! are deterministic), so its state after a sequence of `(now, input)` is a function of that
//! sequence. The log records every input **before** the agent handles it, and is fsync'd
//! **before** any message that depends on it leaves: when an input makes the agent sign
//! something for the first time (a vote, a proposal, a prevote or precommit), the wrapper
//! raises the log's *required* mark to the records written so far; the transport writes a
//! frame to a socket only once the *durable* mark (advanced by the syncer task after each
//! fsync) has reached the required mark at the time the frame was queued. fsyncs are batched
//! (group commit) and the runner never waits for one. Locks, valid values, own signed votes, prevotes and precommits,
//! decisions and registry epochs are all functions of the logged prefix, so a restarted agent
//! replays the log, reaches the same state, and can never sign a prevote or precommit that
//! conflicts with one it sent before. It then gets `Input::Recover` (timers re-armed, `Sync`
//! to a peer) and catches up on sessions decided while it was down through `Commit`
//! certificates.
//!
//! Record format: `length (u32 LE) | postcard(Record)`; a torn last record (a crash mid-write)
//! is cut off on replay.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use consensus_core::protocol::{Input, Message, Node, Output, SessionSpec, Timer};
use consensus_core::{wire, AgentId, AgentVote, SessionId, TimeMs};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};

/// The sender id under which the node's own evaluator delivers the agent's vote: a frame
/// `Vote` from this id (never reachable from the network, whose frames carry authenticated
/// agent ids) becomes `Input::LocalVote`.
pub const LOCAL_EVALUATOR: AgentId = AgentId(u32::MAX - 1);

/// Largest record accepted on replay.
const MAX_RECORD_BYTES: usize = 8 << 20;

#[derive(Serialize, Deserialize)]
enum Logged {
    Receive { from: AgentId, frame: Vec<u8> },
    LocalVote(AgentVote),
    Timeout(Timer),
    Malformed { from: AgentId },
    Recover,
}

#[derive(Serialize, Deserialize)]
struct Record {
    now_ms: TimeMs,
    input: Logged,
}

/// Why the log failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A record in the middle of the log does not decode.
    #[error("{path}: record at byte {offset} does not decode")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: usize,
    },
}

/// How far the log is written, required to be durable, and durable (in records since start).
pub struct Durability {
    written: AtomicU64,
    required: AtomicU64,
    durable: watch::Sender<u64>,
    kick: Notify,
    /// fsyncs performed.
    pub fsyncs: Counter,
}

impl Durability {
    fn new() -> Arc<Durability> {
        Arc::new(Durability {
            written: AtomicU64::new(0),
            required: AtomicU64::new(0),
            durable: watch::Sender::new(0),
            kick: Notify::new(),
            fsyncs: Counter::default(),
        })
    }

    /// The mark a frame queued now must wait for.
    pub fn required(&self) -> u64 {
        self.required.load(Ordering::Acquire)
    }

    /// Waits until the log is durable up to `mark`.
    pub async fn wait_durable(&self, mark: u64) {
        let mut rx = self.durable.subscribe();
        let _ = rx.wait_for(|d| *d >= mark).await;
    }

    fn require_all_written(&self) {
        self.required.fetch_max(self.written.load(Ordering::Acquire), Ordering::AcqRel);
        self.kick.notify_one();
    }
}

/// fsyncs the log whenever the required mark is ahead of the durable one, covering every
/// record written by then (group commit). Exits the process if the disk fails: without a
/// durable log the agent could contradict itself after a restart.
pub async fn syncer(durability: Arc<Durability>, file: File, path: PathBuf) {
    let file = Arc::new(file);
    loop {
        let required = durability.required();
        if *durability.durable.borrow() >= required {
            durability.kick.notified().await;
            continue;
        }
        let target = durability.written.load(Ordering::Acquire);
        let f = file.clone();
        let synced = tokio::task::spawn_blocking(move || f.sync_data()).await;
        match synced {
            Ok(Ok(())) => {
                durability.fsyncs.inc();
                durability.durable.send_replace(target);
            }
            Ok(Err(e)) => {
                eprintln!("fatal: durable log {}: fsync: {e}", path.display());
                std::process::exit(74);
            }
            Err(_) => std::process::exit(74),
        }
    }
}

/// The append-only input log.
pub struct Wal {
    path: PathBuf,
    file: File,
    fsync: bool,
    durability: Arc<Durability>,
    /// Records appended since start.
    pub appended: Counter,
}

impl Wal {
    /// Opens (creating) the log in `dir` and returns it with the inputs it already holds.
    pub fn open(dir: &Path, fsync: bool) -> Result<(Wal, Vec<(TimeMs, Input)>), WalError> {
        let io = |source| WalError::Io { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join("inputs.log");
        let io = |source| WalError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (inputs, good) = parse(&bytes).map_err(|offset| WalError::Corrupt { path: path.clone(), offset })?;
        if good < bytes.len() {
            file.set_len(good as u64).map_err(io)?; // a torn last record
        }
        let durability = Durability::new();
        Ok((Wal { path, file, fsync, durability, appended: Counter::default() }, inputs))
    }

    /// Appends one input (written, not yet fsync'd).
    pub fn append(&mut self, now_ms: TimeMs, input: &Input) -> Result<(), WalError> {
        let input = match input {
            Input::Receive { from, message } => Logged::Receive { from: *from, frame: wire::encode(message) },
            Input::LocalVote(v) => Logged::LocalVote(v.clone()),
            Input::Timeout(t) => Logged::Timeout(*t),
            Input::Malformed { from } => Logged::Malformed { from: *from },
            Input::Recover => Logged::Recover,
        };
        let body = postcard::to_allocvec(&Record { now_ms, input }).unwrap_or_default();
        let mut record = Vec::with_capacity(4 + body.len());
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        record.extend_from_slice(&body);
        self.file.write_all(&record).map_err(|source| WalError::Io { path: self.path.clone(), source })?;
        self.appended.inc();
        self.durability.written.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Makes everything appended durable now (when fsync is on), waiting for the disk.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.fsync {
            self.file.sync_data().map_err(|source| WalError::Io { path: self.path.clone(), source })?;
        }
        Ok(())
    }

    /// The marks shared with the transport and the syncer.
    pub fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }

    /// The syncer task for this log, or `None` when fsync is off (frames then never wait).
    pub fn syncer(&self) -> Result<Option<impl std::future::Future<Output = ()>>, WalError> {
        if !self.fsync {
            return Ok(None);
        }
        let file = self.file.try_clone().map_err(|source| WalError::Io { path: self.path.clone(), source })?;
        Ok(Some(syncer(self.durability.clone(), file, self.path.clone())))
    }
}

/// The inputs in `bytes` and how many bytes they span; `Err(offset)` for a corrupt record.
fn parse(bytes: &[u8]) -> Result<(Vec<(TimeMs, Input)>, usize), usize> {
    let mut inputs = Vec::new();
    let mut at = 0;
    while bytes.len() >= at + 4 {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        if len > MAX_RECORD_BYTES {
            return Err(at);
        }
        let Some(body) = bytes.get(at + 4..at + 4 + len) else { break };
        let record: Record = match postcard::from_bytes(body) {
            Ok(r) => r,
            // A record that does not decode at the very end is torn; elsewhere it is corrupt.
            Err(_) if at + 4 + len == bytes.len() => break,
            Err(_) => return Err(at),
        };
        let input = match record.input {
            Logged::Receive { from, frame } => match wire::decode(&frame) {
                Ok(message) => Input::Receive { from, message },
                Err(_) => Input::Malformed { from },
            },
            Logged::LocalVote(v) => Input::LocalVote(v),
            Logged::Timeout(t) => Input::Timeout(t),
            Logged::Malformed { from } => Input::Malformed { from },
            Logged::Recover => Input::Recover,
        };
        inputs.push((record.now_ms, input));
        at += 4 + len;
    }
    Ok((inputs, at))
}

/// A node whose inputs are logged before they are handled and whose outgoing messages wait
/// for the log to be durable. It also hands `Evaluate` requests to the node's asynchronous
/// evaluator (a judge program may take seconds; the runner must not wait for it).
pub struct DurableNode<N> {
    inner: N,
    wal: Wal,
    evaluations: mpsc::UnboundedSender<SessionSpec>,
    /// Own signed messages already made durable: re-sending one (retransmission, help for a
    /// lagging peer) needs no fsync.
    durable_signed: BTreeSet<SignedKey>,
}

/// Identifies one of the agent's own signed messages: session, kind, round.
type SignedKey = (SessionId, u8, u32);

/// Own signed messages remembered before the oldest half is forgotten.
const MAX_DURABLE_SIGNED: usize = 200_000;

/// The key of `message` when it is signed by `me`.
fn own_signed(me: AgentId, message: &Message) -> Option<SignedKey> {
    match message {
        Message::Vote(v) if v.vote.agent == me => Some((v.vote.session, 0, 0)),
        Message::Proposal(p) if p.proposer == me => Some((p.value.session, 1, p.round)),
        Message::RoundVote(v) if v.agent == me => {
            Some((v.session, if v.kind == consensus_core::protocol::VoteKind::Prevote { 2 } else { 3 }, v.round))
        }
        _ => None,
    }
}

impl<N: Node> DurableNode<N> {
    /// Wraps `inner`.
    pub fn new(inner: N, wal: Wal, evaluations: mpsc::UnboundedSender<SessionSpec>) -> Self {
        DurableNode { inner, wal, evaluations, durable_signed: BTreeSet::new() }
    }

    /// Replays logged inputs into the wrapped node (nothing is sent, no evaluation is asked
    /// for) and returns the outputs, for the caller to rebuild what it shows (decisions), and
    /// the sessions whose `Open` was logged (the opener must never number a session twice).
    pub fn replay(&mut self, inputs: Vec<(TimeMs, Input)>) -> (Vec<Output>, Vec<SessionId>) {
        let mut all = Vec::new();
        let mut opened = Vec::new();
        let mut out = Vec::new();
        for (now_ms, input) in inputs {
            if let Input::Receive { message: Message::Open(open), .. } = &input {
                opened.push(open.spec.session);
            }
            out.clear();
            self.inner.handle(now_ms, input, &mut out);
            all.extend(out.drain(..).filter(|o| matches!(o, Output::Decide(_) | Output::Send { .. })));
        }
        (all, opened)
    }

    fn fail(&self, error: &WalError) -> ! {
        // Without a durable log the agent could sign conflicting messages after a restart:
        // stop rather than send.
        eprintln!("fatal: durable log: {error}");
        std::process::exit(74)
    }
}

impl<N: Node> Node for DurableNode<N> {
    fn id(&self) -> AgentId {
        self.inner.id()
    }

    fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) {
        let input = match input {
            Input::Receive { from: LOCAL_EVALUATOR, message: Message::Vote(signed) } => Input::LocalVote(signed.vote),
            Input::Receive { from: LOCAL_EVALUATOR, .. } => return,
            other => other,
        };
        if let Err(e) = self.wal.append(now_ms, &input) {
            self.fail(&e);
        }
        let start = out.len();
        self.inner.handle(now_ms, input, out);
        let me = self.inner.id();
        let mut new_signed = Vec::new();
        let mut kept = Vec::with_capacity(out.len() - start);
        for output in out.drain(start..) {
            match &output {
                Output::Evaluate(spec) => {
                    let _ = self.evaluations.send(spec.clone());
                    continue;
                }
                Output::Broadcast(message) | Output::Send { message, .. } => {
                    if let Some(key) = own_signed(me, message).filter(|k| !self.durable_signed.contains(k)) {
                        new_signed.push(key);
                    }
                }
                _ => {}
            }
            kept.push(output);
        }
        out.extend(kept);
        // A message signed for the first time commits the agent (a vote, a proposal, a
        // prevote or precommit it must never contradict): the inputs it follows from must be
        // durable before it leaves. Everything else that leaves (re-sent messages, commit
        // certificates, Sync) follows from state that is already durable or proves itself.
        if !new_signed.is_empty() {
            if self.wal.fsync {
                self.wal.durability.require_all_written();
            }
            self.durable_signed.extend(new_signed);
            if self.durable_signed.len() > MAX_DURABLE_SIGNED {
                let keep_from = self.durable_signed.iter().nth(MAX_DURABLE_SIGNED / 2).copied();
                if let Some(k) = keep_from {
                    self.durable_signed = self.durable_signed.split_off(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_core::protocol::TimerKind;
    use consensus_core::SessionId;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bftsim-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn log_round_trips_and_cuts_a_torn_tail() {
        let dir = temp_dir("torn");
        let timer = Timer { session: SessionId(3), round: 1, kind: TimerKind::Propose };
        {
            let (mut wal, inputs) = Wal::open(&dir, true).unwrap_or_else(|e| panic!("{e}"));
            assert!(inputs.is_empty());
            wal.append(5, &Input::Timeout(timer)).unwrap_or_else(|e| panic!("{e}"));
            wal.append(6, &Input::Recover).unwrap_or_else(|e| panic!("{e}"));
            wal.sync().unwrap_or_else(|e| panic!("{e}"));
        }
        // A crash mid-write leaves half a record.
        let mut f = OpenOptions::new().append(true).open(dir.join("inputs.log")).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(&[40, 0, 0, 0, 1, 2]).unwrap_or_else(|e| panic!("{e}"));
        let (_, inputs) = Wal::open(&dir, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inputs, vec![(5, Input::Timeout(timer)), (6, Input::Recover)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
