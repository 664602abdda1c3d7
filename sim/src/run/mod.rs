//! One run = (scenario, seed): a madsim runtime created with that seed, one madsim node per
//! agent plus a client node, the consensus-core runner unchanged on every agent, faults from
//! the scenario, and the oracle watching every step.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consensus_core::adversary::Byzantine;
use consensus_core::evaluator::{
    Evaluation, EvaluationRequest, Evaluator, GroundTruth, SyntheticEvaluator, TableTruth,
};
use consensus_core::metrics::{check_alerts, AlertThresholds, MetricsRecorder, SessionOutcome, SessionResult};
use consensus_core::protocol::{Agent, AgreedOutcome, Input, Mutation};
use consensus_core::registry::Registry;
use consensus_core::runner::{Clock, Runner};
use consensus_core::sign::{sim_committee, Keys, SimKeyring, SimSigner};
use consensus_core::types::ConsensusMethod;
use consensus_core::{AgentId, AgentSpecialization, CandidateId, Ppm, SessionId, TimeMs};
use futures_channel::mpsc::unbounded;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reports::coverage::CoverageRecord;

use crate::oracle::{Oracle, Promises};
use crate::results::{LatencySummary, RunOutcome, RunRecord, SessionCounts, WrongByCause, WrongCause};
use crate::scenario::{Behaviour, FaultAction, Scenario};
use crate::seeds::RunSeeds;
use crate::trace::TraceEvent;
use crate::world::{World, WorldObserver};

mod client;
mod disk;
mod disks;
mod faults;
mod net;
mod node;
mod record;
mod rounds;
mod script;

pub use script::{replay, ScriptOutput};

use node::{disk_reachable, durable_config, world_of, NodeContext, RunSetup};
use record::finish;

use client::{client_node, OpenerHost, Port};
use disk::{AgentStorage, Disks, Gate, Incarnation, Inner, Start};
use faults::{spawn_faults, DiskFaults};
use net::{net_model, twin_address, Routing, SharedDecodes, SimRx, SimTx};
use rounds::RoundFaults;

/// What to keep besides the record.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Keep every event (for `reproduce --trace`).
    pub trace: bool,
}

/// A finished run.
pub struct RunOutput {
    /// The record for `runs.jsonl`.
    pub record: RunRecord,
    /// The events, when asked for.
    pub trace: Vec<TraceEvent>,
}

type Shared = Arc<Mutex<World>>;

/// Locks `m`, also after a task panicked holding it (the run then reports the panic).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `scenario` with `seed` on a fresh madsim runtime.
pub fn run(scenario: &Scenario, seed: u64, params: BTreeMap<String, String>, options: RunOptions) -> RunOutput {
    let mut runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    // A safety net: the client ends every run at the liveness bound, so simulated time past it
    // means the simulator itself is stuck (reported as a `panic` violation by the executor).
    runtime.set_time_limit(Duration::from_millis(scenario.expect.liveness_bound_ms.saturating_add(60_000)));
    let seeds = RunSeeds::new(seed, scenario.agents.count, scenario.faults.len());
    let scenario = scenario.clone();
    runtime.block_on(simulate(scenario, seeds, params, options))
}

/// Everything derived from the seed before the run starts (logged first).
#[derive(Clone, Debug)]
pub struct Derived {
    /// Byzantine agents.
    pub byzantine: BTreeSet<AgentId>,
    /// True quality per session and candidate.
    pub truth: TableTruth,
    /// The best candidate per session.
    pub best: BTreeMap<SessionId, CandidateId>,
    /// The behaviour of each Byzantine agent.
    pub behaviours: BTreeMap<AgentId, Behaviour>,
}

/// Draws the Byzantine agents and the workload's ground truth from their seeds.
pub fn derive_parameters(scenario: &Scenario, seeds: &RunSeeds) -> Derived {
    let n = scenario.agents.count;
    let mut rng = ChaCha8Rng::seed_from_u64(seeds.byzantine);
    let byzantine: BTreeSet<AgentId> = match &scenario.byzantine.agents {
        Some(list) => list.iter().map(|i| AgentId(*i)).collect(),
        None => {
            let mut all: Vec<u32> = (0..n).collect();
            all.shuffle(&mut rng);
            all.into_iter().take(scenario.byzantine.count as usize).map(AgentId).collect()
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seeds.workload);
    let gap = (scenario.workload.quality_gap.clamp(0.0, 1.0) * 1e6) as u64;
    let mut table = BTreeMap::new();
    let mut best = BTreeMap::new();
    for s in 0..scenario.workload.sessions {
        let session = SessionId(s);
        let k = scenario.workload.candidates.max(1);
        let top = rng.gen_range(0..k);
        let top_quality: u64 = rng.gen_range(700_000..=950_000);
        for c in 0..k {
            let q = if c == top {
                top_quality
            } else {
                top_quality.saturating_sub(gap).saturating_sub(rng.gen_range(0..=300_000))
            };
            table.insert((session, CandidateId(c)), Ppm::saturating(q));
        }
        best.insert(session, CandidateId(top));
    }
    let behaviours = byzantine.iter().enumerate().map(|(rank, a)| (*a, scenario.byzantine.behaviour(rank))).collect();
    Derived { byzantine, truth: TableTruth(table), best, behaviours }
}

/// Simulated milliseconds since the run started.
///
/// Read from the runtime's time handle, taken once: `Instant::now()` would do the same through
/// madsim's `clock_gettime` override, which looks the runtime up again on every call (every
/// send and receive reads the clock). The same readings.
#[derive(Clone)]
pub(crate) struct SimClock {
    start: madsim::time::Instant,
    /// Simulated time elapsed in the runtime when the run started.
    start_elapsed: Duration,
    time: madsim::time::TimeHandle,
}

impl SimClock {
    /// A clock that reads 0 now; inside a simulation only.
    fn start() -> SimClock {
        let time = madsim::time::TimeHandle::current();
        SimClock { start: time.now_instant(), start_elapsed: time.elapsed(), time }
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> TimeMs {
        self.time.elapsed().saturating_sub(self.start_elapsed).as_millis() as TimeMs
    }
    fn sleep_until(&self, at_ms: TimeMs) -> impl Future<Output = ()> {
        madsim::time::sleep_until(self.start + Duration::from_millis(at_ms))
    }
}

async fn simulate(
    scenario: Scenario,
    seeds: RunSeeds,
    params: BTreeMap<String, String>,
    options: RunOptions,
) -> RunOutput {
    let clock = SimClock::start();
    let handle = madsim::runtime::Handle::current();
    let n = scenario.agents.count;
    let derived = derive_parameters(&scenario, &seeds);
    let engine = scenario.engine_config();
    let keys = sim_committee(seeds.keys, n);
    let registry = Registry::seed_committee(n, &engine);
    let honest: BTreeSet<AgentId> = (0..n).map(AgentId).filter(|a| !derived.byzantine.contains(a)).collect();
    let setup = RunSetup {
        scenario: &scenario,
        seeds: &seeds,
        derived: &derived,
        keys: &keys,
        registry: &registry,
        honest: &honest,
    };
    let world = world_of(setup, options.trace);
    let net_node = handle.create_node().name("network").build();
    net_node.spawn(crate::world::carry(world.clone(), clock.clone()));
    let committee: Vec<AgentId> = (0..n).map(AgentId).collect();
    let twins: BTreeSet<AgentId> =
        derived.behaviours.iter().filter(|(_, b)| **b == Behaviour::Twin).map(|(a, _)| *a).collect();
    let signers = derived.byzantine.iter().map(|a| (*a, keys.agents[a.0 as usize].clone())).collect();
    let rounds = RoundFaults::new(scenario.round_partitions.clone(), scenario.tamper.clone(), signers);
    let routing = Arc::new(Routing { twins, rounds: rounds.map(Mutex::new) });
    let decodes = Arc::new(Mutex::new(SharedDecodes::default()));
    let port = Arc::new(Mutex::new(Port::default()));
    let f_plus_one = (consensus_core::quorum::f_max(u64::from(n)) + 1) as usize;
    let opener = OpenerHost {
        port: port.clone(),
        world: world.clone(),
        clock: clock.clone(),
        routing: routing.clone(),
        committee: committee.clone(),
        signer: keys.client.clone(),
        candidates: scenario.workload.candidates,
        concurrency: usize::try_from(scenario.workload.concurrency.max(1)).unwrap_or(usize::MAX),
        ack_before_durable: scenario.protocol.mutation == Mutation::AckBeforeDurable,
        f_plus_one,
    };
    let ctx = NodeContext {
        world: world.clone(),
        clock: clock.clone(),
        routing: routing.clone(),
        committee: committee.clone(),
        decodes,
        disks: Disks::default(),
        sync_ms: scenario.storage.sync_ms,
        mutation: scenario.protocol.mutation,
        durable_config: durable_config(&scenario),
        reachable: disk_reachable(&scenario),
        opener,
    };
    let (nodes, twin_nodes) = ctx.spawn_committee(setup);
    let disk_faults = DiskFaults {
        disks: ctx.disks.clone(),
        crash: scenario.storage.crash,
        seeds: seeds.clone(),
        port: port.clone(),
    };
    let faults = spawn_faults(&scenario, world.clone(), clock.clone(), nodes.clone(), &net_node, disk_faults);
    let (client_node, client) = client_node(&scenario, port, world.clone(), clock.clone());
    let end_ms = client.await.unwrap_or_else(|_| clock.now_ms());
    faults.abort();
    // Kill every node and let the executor drop their tasks: a pending task holds its own waker
    // (through its channel), so a task left pending would keep itself, and the world, alive.
    for node in nodes.values().chain(&twin_nodes) {
        handle.kill(node.id());
    }
    handle.kill(net_node.id());
    handle.kill(client_node.id());
    madsim::time::sleep(Duration::from_millis(1)).await;
    finish(&scenario, seeds.run, params, &world, &derived, end_ms)
}
