//! A committee over the in-memory transport on tokio's paused clock: every agent runs the real
//! runner; a client opens sessions with bounded overlap and learns decisions from the commit
//! certificates the agents send it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consensus_core::config::QuarantineConfig;
use consensus_core::evaluator::{EvaluatorProfile, SyntheticEvaluator, TableTruth};
use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::{Agent, AgreedOutcome, DecisionRecord, Message, Node, ProtocolConfig, SessionSpec};
use consensus_core::registry::Registry;
use consensus_core::runner::memory::{DropRule, MemoryNetwork};
use consensus_core::runner::{Clock, Observer, Runner, RunnerEvent, TransportRx, TransportTx};
use consensus_core::sign::{sim_committee, Signer, SimKeyring, SimSigner};
use consensus_core::{wire, AgentId, AgentSpecialization, CandidateId, EngineConfig, Ppm, SessionId, TimeMs};

/// Milliseconds since the harness started, on tokio's (paused) clock.
#[derive(Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now_ms(&self) -> TimeMs {
        self.start.elapsed().as_millis() as TimeMs
    }
    fn sleep_until(&self, at_ms: TimeMs) -> impl Future<Output = ()> {
        tokio::time::sleep_until(self.start + Duration::from_millis(at_ms))
    }
}

/// What every runner reports, shared.
#[derive(Default)]
pub struct Log {
    pub decisions: Vec<(AgentId, DecisionRecord)>,
    pub messages: u64,
    pub bytes: u64,
    pub per_kind: BTreeMap<&'static str, (u64, u64)>,
    pub evidence: Vec<AgentId>,
    pub rejections: u64,
    pub trace: Vec<String>,
    pub tracing: bool,
}

#[derive(Clone, Default)]
pub struct SharedLog(pub Arc<Mutex<Log>>);

impl Observer for SharedLog {
    fn on_event(&mut self, agent: AgentId, now: TimeMs, event: &RunnerEvent<'_>) {
        let Ok(mut log) = self.0.lock() else { return };
        if log.tracing {
            let line = match event {
                RunnerEvent::Send { to, message, .. } => {
                    format!("{now} {agent} -> {to} {} {}", message.kind(), message.session())
                }
                RunnerEvent::Deliver { from, message } => format!(
                    "{now} {agent} <- {from} {} {} {}",
                    message.kind(),
                    message.session(),
                    match message {
                        Message::RoundVote(v) => format!("r{} {:?}", v.round, v.value.map(|x| x.short())),
                        Message::Proposal(p) => format!("r{}", p.round),
                        _ => String::new(),
                    }
                ),
                RunnerEvent::Timeout(t) => format!("{now} {agent} timeout {:?} {} r{}", t.kind, t.session, t.round),
                RunnerEvent::Reject { from, reason } => {
                    format!("{now} {agent} reject from {from} {reason:?} session-?")
                }
                other => format!("{now} {agent} {other:?}"),
            };
            log.trace.push(line);
        }
        match event {
            RunnerEvent::Send { message, bytes, .. } => {
                log.messages += 1;
                log.bytes += *bytes as u64;
                let e = log.per_kind.entry(message.kind()).or_default();
                e.0 += 1;
                e.1 += *bytes as u64;
            }
            RunnerEvent::Decide(record) => log.decisions.push((agent, (*record).clone())),
            RunnerEvent::Evidence(e) => {
                let culprit = e.culprit();
                log.evidence.push(culprit);
            }
            RunnerEvent::Reject { .. } => log.rejections += 1,
            _ => {}
        }
    }
}

/// Builds a node from the honest agent, its signer and its peers.
pub type MakeNode = Box<dyn FnOnce(Agent<SimSigner, SimKeyring>, SimSigner, Vec<AgentId>) -> Box<dyn Node>>;

/// How a committee member behaves.
pub enum Member {
    Honest,
    /// Never started: crashed from the beginning.
    Absent,
    /// Any node built from the honest agent (Byzantine wrappers).
    Custom(MakeNode),
}

pub struct Setup {
    pub n: u32,
    pub sessions: u64,
    pub concurrency: u64,
    pub seed: u64,
    pub members: BTreeMap<u32, Member>,
    pub drop_rule: Option<Arc<DropRule>>,
    pub engine: EngineConfig,
    pub protocol: ProtocolConfig,
    pub limit_ms: u64,
    pub trace: bool,
}

impl Setup {
    pub fn new(n: u32, sessions: u64) -> Setup {
        Setup {
            n,
            sessions,
            concurrency: 1,
            seed: 7,
            members: BTreeMap::new(),
            drop_rule: None,
            // No spare agents run here: replacements would be phantoms that never vote.
            engine: EngineConfig {
                quarantine: QuarantineConfig { replace: false, ..QuarantineConfig::default() },
                ..EngineConfig::default()
            },
            protocol: ProtocolConfig::default(),
            limit_ms: 60_000,
            trace: false,
        }
    }
}

pub struct Outcome {
    pub log: Log,
    /// session → the candidate with the highest true quality
    pub best: BTreeMap<SessionId, CandidateId>,
    pub honest: BTreeSet<AgentId>,
    pub elapsed_ms: TimeMs,
}

impl Outcome {
    /// Decisions of honest agents per session.
    pub fn honest_decisions(&self) -> BTreeMap<SessionId, Vec<(AgentId, AgreedOutcome)>> {
        let mut by_session: BTreeMap<SessionId, Vec<(AgentId, AgreedOutcome)>> = BTreeMap::new();
        for (agent, d) in &self.log.decisions {
            if self.honest.contains(agent) {
                by_session.entry(d.session).or_default().push((*agent, d.outcome.clone()));
            }
        }
        by_session
    }

    /// Agreement and integrity: no two honest agents decide differently; none decides twice.
    pub fn assert_safe(&self) {
        for (session, decisions) in self.honest_decisions() {
            let agents: BTreeSet<_> = decisions.iter().map(|(a, _)| *a).collect();
            assert_eq!(agents.len(), decisions.len(), "integrity: an agent decided {session} twice");
            let outcomes: BTreeSet<_> = decisions.iter().map(|(_, o)| o.clone()).collect();
            assert_eq!(outcomes.len(), 1, "agreement violated in {session}: {outcomes:?}");
        }
    }

    /// Every honest agent decided every session.
    pub fn assert_live(&self, sessions: u64) {
        let decided = self.honest_decisions();
        for s in 0..sessions {
            let got = decided.get(&SessionId(s)).map_or(0, Vec::len);
            assert_eq!(got, self.honest.len(), "{} of {} honest agents decided session {s}", got, self.honest.len());
        }
    }
}

fn truth_for(seed: u64, sessions: u64, candidates: u32) -> (TableTruth, BTreeMap<SessionId, CandidateId>) {
    let mut table = BTreeMap::new();
    let mut best = BTreeMap::new();
    for s in 0..sessions {
        // A clear best candidate whose position moves with the session.
        let top = ((s.wrapping_mul(31) ^ seed) % u64::from(candidates)) as u32;
        for c in 0..candidates {
            let q = if c == top { 900_000 } else { 300_000 + 50_000 * c as u64 };
            table.insert((SessionId(s), CandidateId(c)), Ppm::saturating(q));
        }
        best.insert(SessionId(s), CandidateId(top));
    }
    (TableTruth(table), best)
}

/// Runs the committee until every honest agent decided every session or the time limit.
pub async fn run(setup: Setup) -> Outcome {
    let Setup { n, sessions, concurrency, seed, mut members, drop_rule, engine, protocol, limit_ms, trace } = setup;
    let clock = TokioClock { start: tokio::time::Instant::now() };
    let keys = sim_committee(seed, n);
    let mut protocol = protocol;
    protocol.pipeline = concurrency.max(1);
    let registry = Registry::seed_committee(n, &engine);
    let (truth, best) = truth_for(seed, sessions, 3);
    let truth = Arc::new(truth);
    let mut ids: Vec<AgentId> = (0..n).map(AgentId).collect();
    ids.push(AgentId::CLIENT);
    let (network, receivers) = MemoryNetwork::new(&ids, drop_rule);
    let mut receivers: BTreeMap<AgentId, _> = receivers.into_iter().collect();
    let committee: Vec<AgentId> = (0..n).map(AgentId).collect();
    let log = SharedLog::default();
    if let Ok(mut l) = log.0.lock() {
        l.tracing = trace;
    }
    let mut honest = BTreeSet::new();
    let local = tokio::task::LocalSet::new();
    for i in 0..n {
        let id = AgentId(i);
        let member = members.remove(&i).unwrap_or(Member::Honest);
        let agent =
            Agent::new(keys.agents[i as usize].clone(), keys.keyring.clone(), registry.clone(), engine, protocol);
        let peers: Vec<AgentId> = committee.iter().copied().filter(|p| *p != id).collect();
        let node: Box<dyn Node> = match member {
            Member::Absent => continue,
            Member::Honest => {
                honest.insert(id);
                Box::new(agent)
            }
            Member::Custom(make) => make(agent, keys.agents[i as usize].clone(), peers),
        };
        let spec = AgentSpecialization::cycled(i as usize);
        let evaluator =
            SyntheticEvaluator::new(seed ^ u64::from(i) << 8, EvaluatorProfile::seed_default(spec), truth.clone());
        let Some(rx) = receivers.remove(&id) else { continue };
        let runner = Runner::new(node, spec, network.tx(id), rx, clock, evaluator, log.clone(), committee.clone());
        local.spawn_local(async move {
            runner.run().await;
        });
    }
    let client_rx = receivers.remove(&AgentId::CLIENT);
    let client_tx = network.tx(AgentId::CLIENT);
    let f_plus_one = (consensus_core::quorum::f_max(u64::from(n)) + 1) as usize;
    let honest_count = honest.len();
    let honest_ids = honest.clone();
    let log_for_client = log.clone();
    let elapsed = local
        .run_until(async move {
            let Some(mut rx) = client_rx else { return 0 };
            let mut committed: BTreeMap<SessionId, BTreeSet<AgentId>> = BTreeMap::new();
            let mut next = 0u64;
            loop {
                // Open every session whose predecessor `concurrency` back is known decided.
                while next < sessions
                    && (next < concurrency
                        || committed.get(&SessionId(next - concurrency)).is_some_and(|s| s.len() >= f_plus_one))
                {
                    let spec = SessionSpec {
                        session: SessionId(next),
                        query: format!("query {next}"),
                        candidates: vec![CandidateId(0), CandidateId(1), CandidateId(2)],
                        opened_ms: clock.now_ms(),
                    };
                    let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
                    let frame: consensus_core::runner::Frame =
                        wire::encode(&Message::Open(SignedSpec { spec, signature })).into();
                    for a in &committee {
                        client_tx.send(*a, frame.clone()).await;
                    }
                    next += 1;
                }
                let all_done = {
                    let decided = log_for_client
                        .0
                        .lock()
                        .map(|l| l.decisions.iter().filter(|(a, _)| honest_ids.contains(a)).count())
                        .unwrap_or(0);
                    next == sessions && decided >= honest_count * sessions as usize
                };
                if all_done || clock.now_ms() > limit_ms {
                    return clock.now_ms();
                }
                let recv = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
                if let Ok(Some((from, frame))) = recv {
                    if let Ok(Message::Commit(c)) = wire::decode(&frame) {
                        committed.entry(c.proposal.value.session).or_default().insert(from);
                    }
                }
            }
        })
        .await;
    network.close();
    local.await;
    let log = std::mem::take(&mut *log.0.lock().unwrap_or_else(|e| e.into_inner()));
    Outcome { log, best, honest, elapsed_ms: elapsed }
}
