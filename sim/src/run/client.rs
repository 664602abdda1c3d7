//! The client path, as a user of `bftsim-node` sees it: the client submits queries to the
//! session opener (`POST /v1/sessions`), which runs `durable::Opener` on agent 0's node with
//! its journal on agent 0's disk, so that crashing agent 0 crashes the opener too.
//!
//! The opener numbers each query, acknowledges it only once its record is durable (the
//! `ack-before-durable` mutation acknowledges at once), opens sessions (signed `Open` to every
//! agent, sent once durable) while fewer than `workload.concurrency` are undecided, re-sends
//! `Open` for undecided ones, and learns decisions from the `Commit` certificates agents send
//! the client (from f + 1 distinct agents, so at least one honest). The client records what
//! was acknowledged (the oracle checks `acknowledged-durable`), re-submits a query whose
//! request a crash of the opener cut, and ends the run when every query is acknowledged and
//! every honest agent that is up decided every acknowledged session (and no sooner than one
//! status tick after the scenario's last fault), when a violation is found, or at the
//! liveness bound.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::Message;
use consensus_core::runner::{Clock, Frame, TransportRx, TransportTx};
use consensus_core::sign::SimSigner;
use consensus_core::{wire, AgentId, SessionId, TimeMs};
use durable::{Op, Opener, OpenerConfig};
use futures_channel::mpsc::unbounded;

use super::disk::AgentStorage;
use super::net::{Routing, SimRx, SimTx};
use super::{lock, Shared, SimClock};
use crate::scenario::Scenario;

/// How often the opener re-sends `Open` for an undecided session, ms.
const RESEND_MS: TimeMs = 250;
/// How often the client and the opener look for work when nothing arrives, ms.
const POLL_MS: u64 = 25;

/// The client's connection to the opener: requests, answers, and what the client learnt.
#[derive(Default)]
pub(super) struct Port {
    /// The opener is up and takes requests.
    up: bool,
    /// The opener stopped for good (its disk failed).
    stopped: bool,
    /// Requests not yet taken by the opener: (query number, query).
    requests: VecDeque<(u64, String)>,
    /// Requests the opener took and has not answered.
    taken: BTreeMap<u64, String>,
    /// Answers: query number → session.
    acknowledged: BTreeMap<u64, SessionId>,
    /// Requests a crash of the opener cut (the client sends them again).
    cut: Vec<u64>,
    /// Sessions the opener learnt were decided.
    decided: BTreeSet<SessionId>,
}

/// Shared by the client and the opener.
pub(super) type SharedPort = Arc<Mutex<Port>>;

/// The opener's node crashed or stopped: every request in flight is cut.
pub(super) fn opener_down(port: &SharedPort, world: &Shared, stopped: bool) {
    let mut p = lock(port);
    p.up = false;
    p.stopped |= stopped;
    let mut cut: Vec<u64> = p.requests.drain(..).map(|(k, _)| k).collect();
    cut.extend(std::mem::take(&mut p.taken).into_keys());
    p.cut.extend(cut);
    drop(p);
    let mut w = lock(world);
    w.up.remove(&AgentId::CLIENT);
    w.inboxes.remove(&AgentId::CLIENT);
}

/// What the opener of one run needs.
#[derive(Clone)]
pub(super) struct OpenerHost {
    pub port: SharedPort,
    pub world: Shared,
    pub clock: SimClock,
    pub routing: Arc<Routing>,
    pub committee: Vec<AgentId>,
    pub signer: SimSigner,
    pub candidates: u32,
    pub concurrency: usize,
    /// The `ack-before-durable` mutation.
    pub ack_before_durable: bool,
    pub f_plus_one: usize,
}

impl OpenerHost {
    /// The opener of one incarnation of agent 0's node (killed with it).
    pub async fn run(self, storage: AgentStorage, restart: bool) {
        let config = OpenerConfig { max_in_flight: self.concurrency, ..OpenerConfig::default() };
        let now = self.clock.now_ms();
        let mut opener = match Opener::open(storage.clone(), self.signer.clone(), config) {
            Ok((opener, _)) => opener,
            Err(e) => {
                let mut w = lock(&self.world);
                w.record_fault(now, format!("the opener refuses to start: {e}"), Some(AgentId(0)));
                drop(w);
                opener_down(&self.port, &self.world, true);
                return;
            }
        };
        let (tx, rx) = unbounded();
        {
            let mut w = lock(&self.world);
            if restart {
                let step = w.record_fault(now, "the opener restarts".to_owned(), Some(AgentId(0)));
                w.oracle.on_opener_restart(|s| opener.is_pending(s), step, now);
                w.stop |= w.oracle.violation().is_some();
            }
            w.inboxes.insert(AgentId::CLIENT, tx);
            w.up.insert(AgentId::CLIENT);
        }
        lock(&self.port).up = true;
        let transport = SimTx {
            me: AgentId::CLIENT,
            address: AgentId::CLIENT,
            world: self.world.clone(),
            clock: self.clock.clone(),
            routing: self.routing.clone(),
            gate: None,
        };
        // The opener only peeks at frames: it never decodes, so it shares no decodes.
        let mut rx = SimRx { inbox: rx, last_sent_ms: Arc::default(), decodes: Arc::default(), stash: None };
        let mut committed: BTreeMap<SessionId, BTreeSet<AgentId>> = BTreeMap::new();
        let mut waiting: Vec<(u64, String, durable::Ticket)> = Vec::new();
        let mut to_send: Vec<durable::Open> = Vec::new();
        loop {
            if lock(&self.port).stopped {
                return;
            }
            let now = self.clock.now_ms();
            let failed = self.take_requests(&mut opener, &mut waiting, now);
            let failed = failed.or_else(|| opener.poll_open(now, &mut to_send).err().map(|e| e.to_string()));
            if let Some(e) = failed {
                return self.stop(&format!("its log failed ({e})"));
            }
            let acks_wait = !self.ack_before_durable && waiting.iter().any(|(_, _, t)| !opener.is_durable(t.mark));
            let opens_wait = to_send.iter().any(|o| !opener.is_durable(o.mark));
            if acks_wait || opens_wait {
                let latency = storage.disk.latency_ms(Op::Sync);
                if latency > 0 {
                    madsim::time::sleep(Duration::from_millis(latency)).await;
                }
                if let Err(e) = opener.sync() {
                    return self.stop(&format!("its fsync failed ({e})"));
                }
            }
            let now = self.clock.now_ms();
            self.acknowledge(&opener, &mut waiting, now);
            let ready: Vec<durable::Open> = to_send.iter().filter(|o| opener.is_durable(o.mark)).cloned().collect();
            to_send.retain(|o| !opener.is_durable(o.mark));
            for open in ready {
                self.send_open(&transport, open.spec, true, now).await;
            }
            let mut resend = Vec::new();
            opener.resend(now, RESEND_MS, &mut resend);
            for spec in resend {
                if !to_send.iter().any(|o| o.spec.spec.session == spec.spec.session) {
                    self.send_open(&transport, spec, false, now).await;
                }
            }
            let received = madsim::time::timeout(Duration::from_millis(POLL_MS), rx.recv()).await;
            if let Ok(Some((from, frame))) = received {
                let Some(session) = wire::peek_commit(&frame) else { continue };
                let senders = committed.entry(session).or_default();
                senders.insert(from);
                if senders.len() >= self.f_plus_one {
                    lock(&self.port).decided.insert(session);
                    // Asked of this incarnation's opener, not of the client's record: a crash
                    // may have lost the `Decided` record an earlier incarnation logged, and then
                    // the session held a place in flight forever (explore, master seed 17, run
                    // 15332; scenarios/regressions/opener-forgets-decided.toml).
                    if opener.is_pending(session) {
                        if let Err(e) = opener.decided(session) {
                            return self.stop(&format!("its log failed ({e})"));
                        }
                    }
                }
            }
        }
    }

    /// Submits every request waiting; returns the log's failure, if any.
    fn take_requests(
        &self,
        opener: &mut Opener<AgentStorage, SimSigner>,
        waiting: &mut Vec<(u64, String, durable::Ticket)>,
        now: TimeMs,
    ) -> Option<String> {
        let requests: Vec<(u64, String)> = {
            let mut p = lock(&self.port);
            let taken: Vec<(u64, String)> = p.requests.drain(..).collect();
            p.taken.extend(taken.iter().cloned());
            taken
        };
        for (k, query) in requests {
            match opener.submit(query.clone(), self.candidates) {
                Ok(ticket) => waiting.push((k, query, ticket)),
                Err(durable::SubmitError::Full { .. } | durable::SubmitError::Exhausted { .. }) => {
                    // 503: the client tries again (Exhausted: refused, never acknowledged).
                    let mut p = lock(&self.port);
                    p.taken.remove(&k);
                    p.cut.push(k);
                }
                Err(durable::SubmitError::Log(e)) => return Some(e.to_string()),
            }
        }
        if self.ack_before_durable {
            self.acknowledge_all(waiting, now);
        }
        None
    }

    /// Answers the requests whose record is durable.
    fn acknowledge(
        &self,
        opener: &Opener<AgentStorage, SimSigner>,
        waiting: &mut Vec<(u64, String, durable::Ticket)>,
        now: TimeMs,
    ) {
        let (ready, rest): (Vec<_>, Vec<_>) =
            std::mem::take(waiting).into_iter().partition(|(_, _, t)| opener.is_durable(t.mark));
        *waiting = rest;
        self.answer(ready, now);
    }

    fn acknowledge_all(&self, waiting: &mut Vec<(u64, String, durable::Ticket)>, now: TimeMs) {
        let all = std::mem::take(waiting);
        self.answer(all, now);
    }

    fn answer(&self, answered: Vec<(u64, String, durable::Ticket)>, now: TimeMs) {
        if answered.is_empty() {
            return;
        }
        let mut w = lock(&self.world);
        let mut p = lock(&self.port);
        for (k, query, ticket) in answered {
            if p.taken.remove(&k).is_none() {
                continue; // cut by a crash meanwhile: never answered
            }
            p.acknowledged.insert(k, ticket.session);
            let detail = format!("the opener acknowledged {} for {query:?}", ticket.session);
            let step = w.record_client(now, "ack", ticket.session.0, detail);
            w.oracle.on_acknowledged(ticket.session, &query, step, now);
        }
        w.stop |= w.oracle.violation().is_some();
    }

    async fn send_open(&self, transport: &SimTx, spec: SignedSpec, first: bool, now: TimeMs) {
        let session = spec.spec.session.0;
        lock(&self.world).oracle.on_client_spec(&spec);
        let frame: Frame = wire::encode(&Message::Open(spec)).into();
        if first {
            let mut w = lock(&self.world);
            w.opened.entry(session).or_insert(now);
            w.oracle.on_open(SessionId(session), now);
            w.record_open(now, session, format!("open session {session}"));
        }
        for a in &self.committee {
            lock(&self.world).note_client_send("open", session);
            transport.send(*a, frame.clone()).await;
        }
    }

    /// The opener cannot go on: agent 0's node stops (its disk failed).
    fn stop(&self, reason: &str) {
        let now = self.clock.now_ms();
        lock(&self.world).record_fault(now, format!("the opener stops: {reason}"), Some(AgentId(0)));
        opener_down(&self.port, &self.world, true);
    }
}

/// The client: submits the workload's queries (at most `concurrency + 1` unanswered or
/// undecided at a time, so one waits queued at the opener), re-submits those a crash cut, and
/// ends the run.
pub(super) fn client_node(
    scenario: &Scenario,
    port: SharedPort,
    world: Shared,
    clock: SimClock,
) -> (madsim::runtime::NodeHandle, madsim::task::JoinHandle<TimeMs>) {
    let handle = madsim::runtime::Handle::current();
    let node = handle.create_node().name("client").build();
    let queries = scenario.workload.sessions;
    let window = scenario.workload.concurrency.max(1) as usize + 1;
    let bound = scenario.expect.liveness_bound_ms;
    let settled_ms = settled_ms(scenario);
    let task = node.spawn(async move {
        let mut next = 0u64;
        let mut resubmit: VecDeque<u64> = VecDeque::new();
        loop {
            let now = clock.now_ms();
            {
                let mut p = lock(&port);
                resubmit.extend(std::mem::take(&mut p.cut));
                if p.up {
                    let undecided = p.acknowledged.values().filter(|s| !p.decided.contains(s)).count();
                    let mut outstanding = undecided + p.requests.len() + p.taken.len();
                    while outstanding < window {
                        let k = match resubmit.pop_front() {
                            Some(k) => k,
                            None if next < queries => {
                                next += 1;
                                next - 1
                            }
                            None => break,
                        };
                        p.requests.push_back((k, format!("query {k}")));
                        outstanding += 1;
                    }
                }
            }
            // A violation ends the run at once; otherwise not before the faults are over.
            if (done(&world, &port, queries) && (now >= settled_ms || lock(&world).stop)) || now >= bound {
                return now;
            }
            madsim::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    });
    (node, task)
}

/// When the run may end at the earliest: one status tick (L76: 5 retransmit intervals) after
/// the scenario's last fault or round-partition end, 0 for a run without any. A crash or
/// restart scheduled after the last decision must happen, and a restarted agent must have
/// replayed its log, asked a peer (L74–L75) and be up, undecided, before `done` can end the
/// run; otherwise the run would end first and a quiet restart would never be judged.
/// Runs whose last fault is over a tick before their last decision end exactly as before.
fn settled_ms(scenario: &Scenario) -> TimeMs {
    let any = !scenario.faults.is_empty() || scenario.round_partitions.iter().any(|p| p.until_ms.is_some());
    if !any {
        return 0;
    }
    let status_tick =
        scenario.protocol_config().retransmit_ms.saturating_mul(consensus_core::protocol::STATUS_EVERY_RETRANSMITS);
    scenario.last_fault_ms().saturating_add(status_tick)
}

/// Whether the run can end: a violation, or every query acknowledged and every honest agent
/// that is up decided every acknowledged session.
fn done(world: &Shared, port: &SharedPort, queries: u64) -> bool {
    let sessions: Vec<SessionId> = {
        let p = lock(port);
        if (p.acknowledged.len() as u64) < queries {
            return lock(world).stop;
        }
        p.acknowledged.values().copied().collect()
    };
    let w = lock(world);
    if w.stop {
        return true;
    }
    let decisions = w.oracle.decisions();
    sessions.iter().all(|s| {
        let decided = decisions.get(s);
        w.up.iter()
            .filter(|a| **a != AgentId::CLIENT && w.oracle.is_honest(**a))
            .all(|a| decided.is_some_and(|d| d.contains_key(a)))
    })
}
