//! The opener's tokio glue: the `durable` crate's [`durable::Opener`] (numbering, the durable
//! log, acknowledgement only once durable, `max_in_flight`, what to re-send) behind a mutex,
//! its syncer, and the tasks that send `Open` frames.
//!
//! The opener signs `Open` with the cluster client key, sends it to every agent (its own
//! included) once its record is durable, and re-sends it until its own agent has decided.
//! After a restart it re-sends every acknowledged session its log holds as undecided.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::Message;
use consensus_core::runner::{Clock, Frame, TransportTx};
use consensus_core::{wire, AgentId, SessionId};
use durable::opener::OpenerRecovery;
use durable::{FileStorage, LogError, OpenerConfig, SubmitError};
use tokio::sync::Notify;

use crate::clock::RealClock;
use crate::durable::{syncer, Durability};
use crate::keys::NodeSigner;
use crate::state::Shared;
use crate::transport::{Inbox, TcpTx};

type Machine = durable::Opener<FileStorage, NodeSigner>;

/// Why a session was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The queue is full (retry later).
    #[error("{0}")]
    Busy(String),
    /// The opener's log failed: it takes no more sessions until restarted.
    #[error("the opener's durable log failed: {0}")]
    Failed(String),
}

/// The opener of this node (see the module documentation).
pub struct Opener {
    machine: Mutex<Machine>,
    durability: Arc<Durability>,
    tx: TcpTx,
    inbox: Inbox,
    clock: RealClock,
    shared: Arc<Shared>,
    wake: Notify,
}

impl Opener {
    /// Opens the opener's journal in `storage` (signing with the client key `signer`) and
    /// starts its syncer.
    pub fn open(
        storage: FileStorage,
        signer: NodeSigner,
        config: OpenerConfig,
        tx: TcpTx,
        inbox: Inbox,
        shared: Arc<Shared>,
    ) -> Result<(Arc<Opener>, OpenerRecovery), LogError> {
        let (mut machine, recovery) = durable::Opener::open(storage, signer, config)?;
        // Sessions this agent's own log saw opened (only matters if the opener's log was lost).
        let highest = shared.highest_opened.load(std::sync::atomic::Ordering::Relaxed);
        if highest > 0 {
            machine.note_seen(SessionId(highest - 1));
        }
        let durability = Durability::new();
        tokio::spawn(syncer(durability.clone(), machine.sync_handle(), "opener log"));
        let opener = Opener {
            machine: Mutex::new(machine),
            durability,
            tx,
            inbox,
            clock: RealClock::new(),
            shared,
            wake: Notify::new(),
        };
        Ok((Arc::new(opener), recovery))
    }

    fn machine(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// fsyncs of the opener's log.
    pub fn fsyncs(&self) -> prometheus_client::metrics::counter::Counter {
        self.durability.fsyncs.clone()
    }

    /// The id the next session gets: every id below was handed out (or is being), none above.
    pub fn next_session(&self) -> SessionId {
        self.machine().next_session()
    }

    /// Why the opener's log failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.durability.failure()
    }

    /// Numbers a session and returns its id once its record is durable (the acknowledgement).
    pub async fn submit(&self, query: String, candidates: u32) -> Result<SessionId, Refused> {
        let ticket = match self.machine().submit(query, candidates) {
            Ok(t) => t,
            Err(e @ SubmitError::Full { .. }) => return Err(Refused::Busy(e.to_string())),
            Err(e @ SubmitError::Exhausted { .. }) => return Err(Refused::Failed(e.to_string())),
            Err(SubmitError::Log(e)) => return Err(Refused::Failed(e.to_string())),
        };
        self.durability.durable_or_failed(ticket.mark).await.map_err(Refused::Failed)?;
        self.wake.notify_one();
        Ok(ticket.session)
    }

    /// Tells the machine which in-flight sessions its agent decided.
    fn note_decided(&self) {
        let mut machine = self.machine();
        for session in machine.in_flight_sessions() {
            if self.shared.is_decided(session) {
                if let Err(e) = machine.decided(session) {
                    eprintln!("opener: {e}");
                }
            }
        }
    }

    async fn send(&self, spec: SignedSpec, to_self: bool) {
        let frame: Frame = wire::encode(&Message::Open(spec)).into();
        for peer in self.tx.peers() {
            self.tx.send(peer, frame.clone()).await;
        }
        if to_self {
            let _ = self.inbox.send((AgentId::CLIENT, frame)).await;
        }
    }

    /// Opens queued sessions while fewer than `max_in_flight` are undecided here; each
    /// leaves once its record is durable.
    pub async fn pump(self: Arc<Self>) {
        loop {
            self.note_decided();
            let mut opens = Vec::new();
            let polled = self.machine().poll_open(self.clock.now_ms(), &mut opens);
            if let Err(e) = polled {
                eprintln!("fatal: opener: {e}; no more sessions are opened (see /healthz)");
                return;
            }
            for open in opens {
                if self.durability.durable_or_failed(open.mark).await.is_err() {
                    return;
                }
                self.shared.note_opened(open.spec.spec.session);
                self.send(open.spec, true).await;
            }
            let decided = self.shared.decided.notified();
            tokio::select! {
                biased;
                _ = self.wake.notified() => {}
                _ = decided => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// Re-sends `Open` of sessions its own agent has not decided, every `interval_ms`; right
    /// after a restart, every acknowledged undecided session at once (to itself too: its own
    /// agent may have lost the session with the rest of its state).
    pub async fn retransmit(self: Arc<Self>, interval_ms: u64) {
        let mut first = true;
        loop {
            self.note_decided();
            let mut due = Vec::new();
            self.machine().resend(self.clock.now_ms(), interval_ms, &mut due);
            for spec in due {
                self.send(spec, first).await;
            }
            first = false;
            tokio::time::sleep(Duration::from_millis(interval_ms.max(10))).await;
        }
    }
}
