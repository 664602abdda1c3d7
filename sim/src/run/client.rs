//! The client node: opens the sessions of the workload, re-sends `Open` for sessions not yet
//! decided, learns decisions from commits, and ends the run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::{Message, SessionSpec};
use consensus_core::runner::{Clock, Frame, TransportRx, TransportTx};
use consensus_core::sign::Signer;
use consensus_core::{wire, AgentId, CandidateId, SessionId, TimeMs};
use futures_channel::mpsc::unbounded;

use super::net::{Routing, SimRx, SimTx};
use super::{Shared, SimClock};
use crate::scenario::Scenario;

/// The client: opens sessions (at most `concurrency` ahead of the last one it knows decided),
/// re-sends `Open` for sessions not yet decided, and ends the run when every honest agent that
/// is up decided every session, when a violation is found, or at the liveness bound.
pub(super) fn client_node<S: Signer + Clone + 'static>(
    scenario: &Scenario,
    signer: &S,
    world: Shared,
    clock: SimClock,
    committee: Vec<AgentId>,
    routing: Arc<Routing>,
) -> (madsim::runtime::NodeHandle, madsim::task::JoinHandle<TimeMs>) {
    let handle = madsim::runtime::Handle::current();
    let node = handle.create_node().name("client").build();
    let sessions = scenario.workload.sessions;
    let concurrency = scenario.workload.concurrency.max(1);
    let candidates: Vec<CandidateId> = (0..scenario.workload.candidates).map(CandidateId).collect();
    let bound = scenario.expect.liveness_bound_ms;
    let f_plus_one = (consensus_core::quorum::f_max(u64::from(scenario.agents.count)) + 1) as usize;
    let signer = signer.clone();
    let task = node.spawn(async move {
        let (tx, rx) = unbounded();
        if let Ok(mut w) = world.lock() {
            w.inboxes.insert(AgentId::CLIENT, tx);
            w.up.insert(AgentId::CLIENT);
        }
        let transport = SimTx {
            me: AgentId::CLIENT,
            address: AgentId::CLIENT,
            world: world.clone(),
            clock: clock.clone(),
            routing,
        };
        // The client only peeks at frames: it never decodes, so it shares no decodes.
        let mut rx = SimRx { inbox: rx, last_sent_ms: Arc::default(), decodes: Arc::default() };
        let mut committed: BTreeMap<u64, BTreeSet<AgentId>> = BTreeMap::new();
        let mut opened: BTreeMap<u64, (TimeMs, Frame)> = BTreeMap::new();
        let mut next = 0u64;
        let mut last_resend = 0;
        loop {
            let now = clock.now_ms();
            while next < sessions
                && (next < concurrency || committed.get(&(next - concurrency)).is_some_and(|c| c.len() >= f_plus_one))
            {
                let spec = SessionSpec {
                    session: SessionId(next),
                    query: format!("query {next}"),
                    candidates: candidates.clone(),
                    opened_ms: now,
                };
                let signature = signer.sign(&wire::spec_signing_bytes(&spec));
                let frame: Frame = wire::encode(&Message::Open(SignedSpec { spec, signature })).into();
                if let Ok(mut w) = world.lock() {
                    w.opened.insert(next, now);
                    w.record_open(now, next, format!("open session {next}"));
                }
                for a in &committee {
                    note_send(&world, next);
                    transport.send(*a, frame.clone()).await;
                }
                opened.insert(next, (now, frame));
                next += 1;
            }
            if now >= last_resend + 250 {
                last_resend = now;
                for (s, (_, frame)) in &opened {
                    if committed.get(s).is_none_or(|c| c.len() < f_plus_one) {
                        for a in &committee {
                            note_send(&world, *s);
                            transport.send(*a, frame.clone()).await;
                        }
                    }
                }
            }
            if done(&world, sessions, next) || now >= bound {
                return now;
            }
            let received = madsim::time::timeout(Duration::from_millis(25), rx.recv()).await;
            if let Ok(Some((from, frame))) = received {
                if let Some(session) = wire::peek_commit(&frame) {
                    committed.entry(session.0).or_default().insert(from);
                }
            }
        }
    });
    (node, task)
}

fn note_send(world: &Shared, session: u64) {
    if let Ok(mut w) = world.lock() {
        w.note_client_send("open", session);
    }
}

/// Whether the run can end: a violation, or every honest agent that is up decided every session.
fn done(world: &Shared, sessions: u64, opened: u64) -> bool {
    let Ok(w) = world.lock() else { return true };
    if w.stop {
        return true;
    }
    if opened < sessions {
        return false;
    }
    let decisions = w.oracle.decisions();
    (0..sessions).all(|s| {
        let decided = decisions.get(&SessionId(s));
        w.up.iter()
            .filter(|a| **a != AgentId::CLIENT && w.oracle.is_honest(**a))
            .all(|a| decided.is_some_and(|d| d.contains_key(a)))
    })
}
