//! Durable state: a write-ahead log of the agent's inputs, and the node wrapper that writes it.
//!
//! The `Agent` is a deterministic state machine (no clock, no randomness; ed25519 signatures
//! are deterministic), so its state after a sequence of `(now, input)` is a function of that
//! sequence. The log records every input **before** the agent handles it and is fsync'd
//! **before** any message produced by that input leaves (the runner sends only after
//! `Node::handle` returns). Locks, valid values, own signed votes, prevotes and precommits,
//! decisions and registry epochs are all functions of the logged prefix, so a restarted agent
//! replays the log, reaches the same state, and can never sign a prevote or precommit that
//! conflicts with one it sent before. It then gets `Input::Recover` (timers re-armed, `Sync`
//! to a peer) and catches up on sessions decided while it was down through `Commit`
//! certificates.
//!
//! Record format: `length (u32 LE) | postcard(Record)`; a torn last record (a crash mid-write)
//! is cut off on replay.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use consensus_core::protocol::{Input, Message, Node, Output, SessionSpec, Timer};
use consensus_core::{wire, AgentId, AgentVote, TimeMs};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

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

/// The append-only input log.
pub struct Wal {
    path: PathBuf,
    file: File,
    fsync: bool,
    dirty: bool,
    /// Records appended since start.
    pub appended: Counter,
    /// fsyncs performed since start.
    pub fsyncs: Counter,
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
        Ok((Wal { path, file, fsync, dirty: false, appended: Counter::default(), fsyncs: Counter::default() }, inputs))
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
        self.dirty = true;
        Ok(())
    }

    /// Makes everything appended durable (when fsync is on).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.dirty && self.fsync {
            self.file.sync_data().map_err(|source| WalError::Io { path: self.path.clone(), source })?;
            self.fsyncs.inc();
        }
        self.dirty = false;
        Ok(())
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
}

impl<N: Node> DurableNode<N> {
    /// Wraps `inner`.
    pub fn new(inner: N, wal: Wal, evaluations: mpsc::UnboundedSender<SessionSpec>) -> Self {
        DurableNode { inner, wal, evaluations }
    }

    /// Replays logged inputs into the wrapped node (nothing is sent, no evaluation is asked
    /// for) and returns the outputs, for the caller to rebuild what it shows (decisions).
    pub fn replay(&mut self, inputs: Vec<(TimeMs, Input)>) -> Vec<Output> {
        let mut all = Vec::new();
        let mut out = Vec::new();
        for (now_ms, input) in inputs {
            out.clear();
            self.inner.handle(now_ms, input, &mut out);
            all.extend(out.drain(..).filter(|o| matches!(o, Output::Decide(_) | Output::Send { .. })));
        }
        all
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
        let mut leaves = false;
        let mut kept = Vec::with_capacity(out.len() - start);
        for output in out.drain(start..) {
            match output {
                Output::Evaluate(spec) => {
                    let _ = self.evaluations.send(spec);
                }
                Output::Broadcast(_) => {
                    leaves = true;
                    kept.push(output);
                }
                Output::Send { to, .. } => {
                    leaves |= to != consensus_core::AgentId::CLIENT;
                    kept.push(output);
                }
                other => kept.push(other),
            }
        }
        out.extend(kept);
        if leaves {
            if let Err(e) = self.wal.sync() {
                self.fail(&e);
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
