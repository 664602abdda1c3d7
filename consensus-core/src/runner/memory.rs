//! An in-memory transport for tests and benchmarks: unbounded channels between agents, with an
//! optional deterministic drop rule. Runtime-agnostic (any executor and clock).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_core::Stream;

use super::{Frame, TransportRx, TransportTx};
use crate::types::AgentId;

type Envelope = (AgentId, Frame);
/// Decides whether a frame from → to is dropped.
pub type DropRule = dyn Fn(AgentId, AgentId, &[u8]) -> bool + Send + Sync;

/// The shared switchboard.
#[derive(Clone)]
pub struct MemoryNetwork {
    inboxes: Arc<Mutex<BTreeMap<AgentId, UnboundedSender<Envelope>>>>,
    drop_rule: Option<Arc<DropRule>>,
}

impl MemoryNetwork {
    /// A network with one inbox per id; returns it and each id's receiver.
    pub fn new(ids: &[AgentId], drop_rule: Option<Arc<DropRule>>) -> (MemoryNetwork, Vec<(AgentId, MemoryRx)>) {
        let mut inboxes = BTreeMap::new();
        let mut receivers = Vec::new();
        for id in ids {
            let (tx, rx) = unbounded();
            inboxes.insert(*id, tx);
            receivers.push((*id, MemoryRx { rx }));
        }
        (MemoryNetwork { inboxes: Arc::new(Mutex::new(inboxes)), drop_rule }, receivers)
    }

    /// The sending half for agent `me`.
    pub fn tx(&self, me: AgentId) -> MemoryTx {
        MemoryTx { me, network: self.clone() }
    }

    /// Closes every inbox: receivers drain what is queued, then see `None`.
    pub fn close(&self) {
        if let Ok(mut inboxes) = self.inboxes.lock() {
            inboxes.clear();
        }
    }
}

/// Sends as one agent.
#[derive(Clone)]
pub struct MemoryTx {
    me: AgentId,
    network: MemoryNetwork,
}

impl TransportTx for MemoryTx {
    fn send(&self, to: AgentId, frame: Frame) -> impl Future<Output = ()> {
        let dropped = self.network.drop_rule.as_ref().is_some_and(|rule| rule(self.me, to, &frame));
        if !dropped {
            if let Ok(inboxes) = self.network.inboxes.lock() {
                if let Some(inbox) = inboxes.get(&to) {
                    // A closed inbox means the receiver is gone: the frame is lost, as on a network.
                    let _ = inbox.unbounded_send((self.me, frame));
                }
            }
        }
        std::future::ready(())
    }
}

/// Receives for one agent.
pub struct MemoryRx {
    rx: UnboundedReceiver<Envelope>,
}

impl TransportRx for MemoryRx {
    fn recv(&mut self) -> impl Future<Output = Option<Envelope>> {
        std::future::poll_fn(|cx| Pin::new(&mut self.rx).poll_next(cx))
    }
}
