//! The simulated network: how a frame a node sends becomes a delivery, a drop or a hold, and
//! the timed faults (partitions, crashes, clogs) that change it.
//!
//! Twins: a twin agent runs as two nodes under one identity. Its first copy has the agent's
//! own network address, its second the address [`twin_address`]; a frame sent to the agent
//! goes to both copies (each with its own fate), and a frame a copy sends arrives from the
//! agent's identity. Round-targeted faults ([`RoundFaults`]) see every frame first.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use consensus_core::protocol::Message;
use consensus_core::runner::{Clock, Frame, TransportRx, TransportTx};
use consensus_core::wire::{self, WireError};
use consensus_core::AgentId;
use futures_channel::mpsc::UnboundedReceiver;
use futures_core::Stream;

use super::disk::{FrameStash, Gate};
use super::rounds::{RoundFaults, Verdict};
use super::{Shared, SimClock};
use crate::scenario::{NodeRef, Scenario};
use crate::world::{Delivery, NetModel, Tail};

/// Network addresses of twins' second copies start here (agent indices are below 256).
const TWIN_BASE: u32 = 1 << 30;

/// The network address of the second copy of twin `agent`.
pub(super) fn twin_address(agent: AgentId) -> AgentId {
    AgentId(TWIN_BASE + agent.0)
}

/// The node behind a network address.
pub(super) fn node_of(address: AgentId) -> NodeRef {
    if address != AgentId::CLIENT && address.0 >= TWIN_BASE {
        NodeRef { agent: address.0 - TWIN_BASE, copy: 1 }
    } else {
        NodeRef::agent(address.0)
    }
}

/// How frames find their receivers: twins' second copies and round-targeted faults.
pub(super) struct Routing {
    /// Twin agents (they have a second copy).
    pub twins: BTreeSet<AgentId>,
    /// Round partitions and tampering, when the scenario has any.
    pub rounds: Option<Mutex<RoundFaults>>,
}

/// Sends through the world's network model.
#[derive(Clone)]
pub(super) struct SimTx {
    /// The identity the frames come from.
    pub me: AgentId,
    /// This node's network address (differs from `me` for a twin's second copy).
    pub address: AgentId,
    pub world: Shared,
    pub clock: SimClock,
    pub routing: Arc<Routing>,
    /// An agent's frames wait here for its log (`run::disk`); `None` for the opener.
    pub gate: Option<Arc<Gate>>,
}

impl TransportTx for SimTx {
    fn send(&self, to: AgentId, frame: Frame) -> impl Future<Output = ()> {
        let twin = self.routing.twins.contains(&to);
        let addresses = [Some(to), twin.then(|| twin_address(to))];
        for address in addresses.into_iter().flatten() {
            let held = self.gate.as_ref().is_some_and(|g| g.hold(address, &frame));
            if !held {
                self.send_to(address, frame.clone());
            }
        }
        std::future::ready(())
    }
}

impl SimTx {
    /// Sends `frame` to `address` now (round faults, then the world's network model).
    pub(super) fn send_to(&self, address: AgentId, frame: Frame) {
        let now = self.clock.now_ms();
        let verdict = match &self.routing.rounds {
            Some(rounds) => match rounds.lock() {
                Ok(mut r) => r.apply(node_of(self.address), node_of(address), &frame, now),
                Err(_) => Verdict::Pass,
            },
            None => Verdict::Pass,
        };
        let frame = match verdict {
            Verdict::Pass => frame,
            Verdict::Replace(frame, what) => {
                if let Ok(mut w) = self.world.lock() {
                    w.record_fault(now, format!("tamper {} → {}: {what}", self.me, node_of(address)), Some(self.me));
                }
                frame
            }
            Verdict::Drop(reason) => {
                if let Ok(mut w) = self.world.lock() {
                    w.record_drop(now, self.me, address, reason);
                }
                return;
            }
        };
        if let Ok(mut w) = self.world.lock() {
            w.send_as(now, self.me, self.address, address, frame);
        }
    }
}

/// A node's inbox.
pub(super) struct SimRx {
    pub inbox: UnboundedReceiver<Delivery>,
    /// When the frame received last was sent (read by the node's `WorldObserver`).
    pub last_sent_ms: Arc<AtomicU64>,
    /// The run's decodes shared among the recipients of one frame.
    pub decodes: Arc<Mutex<SharedDecodes>>,
    /// Where the frame decoded last is left for the agent's log (`run::disk`), which logs the
    /// frame as it arrived rather than encoding the message again.
    pub stash: Option<FrameStash>,
}

impl TransportRx for SimRx {
    fn recv(&mut self) -> impl Future<Output = Option<(AgentId, Frame)>> {
        std::future::poll_fn(|cx| {
            std::pin::Pin::new(&mut self.inbox).poll_next(cx).map(|delivery| {
                delivery.map(|(from, frame, sent_ms)| {
                    self.last_sent_ms.store(sent_ms, Relaxed);
                    (from, frame)
                })
            })
        })
    }

    fn decode(&mut self, frame: &Frame) -> Result<Message, WireError> {
        let decoded = match self.decodes.lock() {
            Ok(mut decodes) => decodes.decode(frame),
            Err(_) => wire::decode(frame),
        };
        // After the shared decode, which counts the frame's references to know whether other
        // copies are still in flight (the agent takes the stashed copy in this same step).
        if let Some(stash) = &self.stash {
            stash.set(Some(frame.clone()));
        }
        decoded
    }
}

/// Decode once per frame, not once per recipient: a broadcast is one `Frame` (one allocation of
/// immutable bytes) that every recipient's copy points at, so the first recipient to receive it
/// decodes it and the others get a copy of that result (an error included: each recipient still
/// rejects and counts a malformed frame). Entries are keyed by the frame's allocation and hold a
/// reference to it, so a hit is the very same bytes; a tampered or forged copy is a new frame
/// (see `rounds`) and is decoded on its own. Signatures are not checked here: every recipient
/// still verifies what it receives. The last copy to be received takes the entry out, so the
/// cache only holds frames with copies still in flight.
#[derive(Default)]
pub(super) struct SharedDecodes {
    /// (the frame's address, the frame, its decode): a few dozen at most (frames in flight), so
    /// a linear search beats an ordered map whose nodes would move the large decoded values.
    entries: Vec<(usize, Frame, Result<Message, WireError>)>,
}

/// Entries above which those whose every copy has been received or lost are swept.
const SHARED_DECODES_SWEEP: usize = 256;

impl SharedDecodes {
    /// `wire::decode(frame)`, computed once per frame.
    pub fn decode(&mut self, frame: &Frame) -> Result<Message, WireError> {
        let key = Arc::as_ptr(frame).cast::<u8>() as usize;
        if let Some(i) = self.entries.iter().position(|e| e.0 == key) {
            debug_assert!(Arc::ptr_eq(&self.entries[i].1, frame), "a cached frame keeps its allocation alive");
            // Other references than this copy and the cache's: copies still to be received.
            if Arc::strong_count(frame) > 2 {
                return self.entries[i].2.clone();
            }
            return self.entries.swap_remove(i).2;
        }
        let decoded = wire::decode(frame);
        if Arc::strong_count(frame) > 1 {
            if self.entries.len() >= SHARED_DECODES_SWEEP {
                self.entries.retain(|e| Arc::strong_count(&e.1) > 1);
            }
            self.entries.push((key, frame.clone(), decoded.clone()));
        }
        decoded
    }

    /// Frames held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

pub(super) fn net_model(scenario: &Scenario) -> NetModel {
    let network = &scenario.network;
    NetModel {
        drop: network.drop,
        latency_ms: (network.latency_ms[0], network.latency_ms[1]),
        tail: network.tail.as_ref().map(|t| Tail {
            scale_ms: t.scale_ms as f64,
            shape: t.shape,
            max_ms: t.max_ms as f64,
        }),
        duplicate: network.duplicate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote_frame(candidate: u32) -> Frame {
        use consensus_core::protocol::messages::SignedVote;
        use consensus_core::sign::Signature;
        use consensus_core::types::{AgentSpecialization, AgentVote, CandidateId, SessionId};
        use consensus_core::Ppm;
        let vote = AgentVote::accept(
            AgentId(1),
            AgentSpecialization::Analyzer,
            SessionId(2),
            CandidateId(candidate),
            Ppm::saturating(800_000),
            Ppm::saturating(900_000),
        );
        wire::encode(&Message::Vote(SignedVote { vote, signature: Signature([9; 64]) })).into()
    }

    #[test]
    fn shared_decodes_decode_each_frame_once_and_equal_a_fresh_decode() {
        let mut decodes = SharedDecodes::default();
        let frame = vote_frame(0);
        let copies: Vec<Frame> = (0..3).map(|_| frame.clone()).collect();
        drop(frame);
        // Another frame with other bytes (a tampered copy) is decoded on its own.
        let other = vote_frame(1);
        let other_copy = other.clone();
        for (i, copy) in copies.into_iter().enumerate() {
            assert_eq!(decodes.decode(&copy), wire::decode(&copy), "copy {i}");
            if i == 0 {
                assert_eq!(decodes.decode(&other), wire::decode(&other_copy));
                assert_ne!(decodes.decode(&other), decodes.decode(&copy));
            }
            drop(copy);
        }
        // The last copy of the vote took its entry out; `other` still has a copy unreceived.
        assert_eq!(decodes.len(), 1);
        drop(other_copy);
        assert_eq!(decodes.decode(&other), wire::decode(&other));
        assert_eq!(decodes.len(), 0, "the last copy takes the entry out");
    }

    #[test]
    fn shared_decodes_keep_rejecting_malformed_frames() {
        let mut decodes = SharedDecodes::default();
        let good = vote_frame(0);
        let mut bytes = good.to_vec();
        bytes.truncate(bytes.len() - 1);
        let bad: Frame = bytes.into();
        let copies = [bad.clone(), bad.clone()];
        for copy in &copies {
            assert!(matches!(decodes.decode(copy), Err(WireError::LengthMismatch { .. })));
        }
        assert!(decodes.decode(&good).is_ok());
    }

    #[test]
    fn twin_addresses_map_back_to_their_node() {
        assert_eq!(node_of(AgentId(3)), NodeRef::agent(3));
        assert_eq!(node_of(twin_address(AgentId(3))), NodeRef { agent: 3, copy: 1 });
        assert_eq!(node_of(AgentId::CLIENT), NodeRef::agent(u32::MAX));
    }
}
