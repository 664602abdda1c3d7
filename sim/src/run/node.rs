//! The world of a run and its agent nodes: the world (network model, oracle, the setup line)
//! is built from the values derived from the run's seeds and handed down with them, so the
//! seeds pass through here once. Each agent's node is built from a factory (the real agent,
//! wrapped in its Byzantine behaviour if it has one), on its own disk, with an evaluator that
//! survives its crashes; restarts rebuild it from the disk alone (run::disk).

use super::*;
use crate::seeds::Stream;

/// The evaluator is the agent's judge (a program or service beside the node, not the agent's
/// state), so it survives the node's crash and its random stream continues.
#[derive(Clone)]
pub(super) struct DurableEvaluator(Arc<Mutex<SyntheticEvaluator>>);

impl Evaluator for DurableEvaluator {
    fn evaluate(&mut self, request: &EvaluationRequest<'_>) -> Evaluation {
        match self.0.lock() {
            Ok(mut e) => e.evaluate(request),
            Err(poisoned) => poisoned.into_inner().evaluate(request),
        }
    }
}

/// What a run's world and committee are built from, all derived from the scenario and the
/// run's seed before anything is spawned.
#[derive(Clone, Copy)]
pub(super) struct RunSetup<'a> {
    pub scenario: &'a Scenario,
    pub seeds: &'a RunSeeds,
    pub derived: &'a Derived,
    pub keys: &'a Keys<SimSigner, SimKeyring>,
    pub registry: &'a Registry,
    pub honest: &'a BTreeSet<AgentId>,
}

impl NodeContext {
    /// Spawns every agent's node (and each twin's second copy): the real agent, wrapped in its
    /// Byzantine behaviour if it has one, with its own evaluator stream.
    pub(super) fn spawn_committee(
        &self,
        setup: RunSetup<'_>,
    ) -> (BTreeMap<AgentId, madsim::runtime::NodeHandle>, Vec<madsim::runtime::NodeHandle>) {
        let RunSetup { scenario, seeds, derived, keys, registry, honest } = setup;
        let (ctx, committee, n) = (self, &self.committee, scenario.agents.count);
        let (engine, protocol) = (scenario.engine_config(), scenario.protocol_config());
        let truth: Arc<dyn GroundTruth> = Arc::new(derived.truth.clone());
        let mut nodes = BTreeMap::new();
        let mut twin_nodes = Vec::new();
        for i in 0..n {
            let id = AgentId(i);
            let make_agent = {
                let (signer, keyring, registry) =
                    (keys.agents[i as usize].clone(), keys.keyring.clone(), registry.clone());
                move || Agent::new(signer.clone(), keyring.clone(), registry.clone(), engine, protocol)
            };
            let behaviour = derived.behaviours.get(&id).copied();
            let factory = match behaviour {
                Some(Behaviour::Core(strategy)) => {
                    let peers: Vec<AgentId> = committee.iter().copied().filter(|p| *p != id).collect();
                    byzantine_factory(
                        scenario,
                        seeds,
                        id,
                        strategy,
                        keys.agents[i as usize].clone(),
                        peers,
                        make_agent.clone(),
                    )
                }
                Some(Behaviour::Twin) | Some(Behaviour::Honest) | None => {
                    let make_agent = make_agent.clone();
                    Arc::new(move || -> Inner { Box::new(make_agent()) })
                }
            };
            let spec = AgentSpecialization::cycled(i as usize);
            let evaluator = SyntheticEvaluator::new(
                seeds.of(&seeds.evaluators, Stream::Evaluator, u64::from(i)),
                scenario.evaluator_profile(spec),
                truth.clone(),
            );
            let honest_agent = honest.contains(&id);
            nodes.insert(id, ctx.spawn_agent(id, id, spec, factory, evaluator, honest_agent));
            if behaviour == Some(Behaviour::Twin) {
                // The second copy: the same identity and key, its own evaluator stream, state and disk.
                let evaluator = SyntheticEvaluator::new(
                    seeds.of(&seeds.twin_evaluators, Stream::TwinEvaluator, u64::from(i)),
                    scenario.evaluator_profile(spec),
                    truth.clone(),
                );
                let factory: Factory = Arc::new(move || -> Inner { Box::new(make_agent()) });
                twin_nodes.push(ctx.spawn_agent(id, twin_address(id), spec, factory, evaluator, false));
            }
        }
        (nodes, twin_nodes)
    }
}

/// The run's world: the network model, the oracle with the run's promises, and the setup line
/// (the seed and every parameter derived from it) as its first event.
pub(super) fn world_of(setup: RunSetup<'_>, trace: bool) -> Shared {
    let RunSetup { scenario, seeds, derived, keys, registry, honest } = setup;
    let (engine, protocol) = (scenario.engine_config(), scenario.protocol_config());
    let oracle = oracle_of(
        scenario,
        derived,
        Oracle::new(keys.keyring.clone(), registry.clone(), engine, protocol, honest.clone()),
    );
    let net = net_model(scenario);
    let world: Shared = Arc::new(Mutex::new(World::new(seeds.network, net, oracle, derived.byzantine.clone(), trace)));
    log_setup(&world, scenario, seeds.run, derived);
    world
}

fn log_setup(world: &Shared, scenario: &Scenario, seed: u64, derived: &Derived) {
    let byzantine: Vec<u32> = derived.byzantine.iter().map(|a| a.0).collect();
    let best: Vec<u32> = derived.best.values().map(|c| c.0).collect();
    let detail = format!(
        "scenario {} seed {seed}: {} agents, byzantine {byzantine:?} ({}), {} sessions × {} candidates, best {best:?}",
        scenario.name,
        scenario.agents.count,
        scenario.byzantine.label(),
        scenario.workload.sessions,
        scenario.workload.candidates
    );
    tracing::info!("{detail}");
    if let Ok(mut w) = world.lock() {
        w.record_fault(0, format!("setup: {detail}"), None);
    }
}

/// The oracle's promises for this run: what the fault model promises (f_max), the ground truth,
/// the round bound and the catch-up deadline where liveness is promised.
fn oracle_of(scenario: &Scenario, derived: &Derived, oracle: Oracle) -> Oracle {
    let promises = Promises::of(u64::from(scenario.agents.count), derived.byzantine.len() as u64);
    let catch_up = scenario.promises_liveness().then_some((scenario.expect.catch_up_ms, scenario.last_fault_ms()));
    oracle
        .with_promises(promises)
        .with_best(derived.best.clone())
        .with_liveness_rounds(scenario.expect.liveness_rounds.filter(|_| scenario.promises_liveness()))
        .with_catch_up(catch_up)
        .with_timely(crate::oracle::timely::TimelyBound::of(scenario, derived.byzantine.len() as u64))
        .with_round_skip(Oracle::round_skip_sync(scenario))
}

/// The node's durability settings, with the scenario's compaction size.
pub(super) fn durable_config(scenario: &Scenario) -> durable::DurableConfig {
    let mut config = durable::DurableConfig::default();
    if let Some(bytes) = scenario.storage.compact_log_bytes {
        config.compact_log_bytes = bytes;
    }
    config
}

/// The agents a crash or a disk fault reaches (the others may skip the log layer).
pub(super) fn disk_reachable(scenario: &Scenario) -> BTreeSet<AgentId> {
    scenario
        .faults
        .iter()
        .filter_map(|f| match f.action {
            FaultAction::Crash { agent } => Some(AgentId(agent)),
            ref other => other.disk_agent().map(AgentId),
        })
        .collect()
}

/// A Byzantine agent `id` running `strategy` around the real agent `make_agent` builds.
pub(super) fn byzantine_factory(
    scenario: &Scenario,
    seeds: &RunSeeds,
    id: AgentId,
    strategy: consensus_core::adversary::Strategy,
    signer: SimSigner,
    peers: Vec<AgentId>,
    make_agent: impl Fn() -> Agent<SimSigner, SimKeyring> + Send + Sync + 'static,
) -> Factory {
    let node_seed = seeds.of(&seeds.byzantine_nodes, Stream::ByzantineNode, u64::from(id.0));
    let collusion = seeds.collusion;
    let engine = scenario.engine_config();
    let full_power = scenario.byzantine.full_power.config();
    Arc::new(move || -> Inner {
        let agent = make_agent();
        Box::new(
            Byzantine::new(agent, signer.clone(), strategy, peers.clone(), engine, node_seed, collusion)
                .with_full_power(full_power.clone()),
        )
    })
}

/// Builds an agent's node afresh (at its first start and at every restart).
pub(super) type Factory = Arc<dyn Fn() -> Inner + Send + Sync>;

/// What every agent node of a run shares.
pub(super) struct NodeContext {
    pub(super) world: Shared,
    pub(super) clock: SimClock,
    pub(super) routing: Arc<Routing>,
    pub(super) committee: Vec<AgentId>,
    pub(super) decodes: Arc<Mutex<SharedDecodes>>,
    pub(super) disks: Disks,
    pub(super) sync_ms: u64,
    pub(super) mutation: Mutation,
    pub(super) durable_config: durable::DurableConfig,
    /// Agents a crash or disk fault of the scenario can reach (the others' disks keep no bytes:
    /// `run::disk::AgentStorage`).
    pub(super) reachable: BTreeSet<AgentId>,
    /// The session opener, run on agent 0's node.
    pub(super) opener: OpenerHost,
}

impl NodeContext {
    /// A madsim node that runs agent `id` at network `address`: at every start, the agent is
    /// rebuilt from its disk alone (`run::disk`), its frames leave once its log allows.
    pub(super) fn spawn_agent(
        &self,
        id: AgentId,
        address: AgentId,
        spec: AgentSpecialization,
        factory: Factory,
        evaluator: SyntheticEvaluator,
        honest: bool,
    ) -> madsim::runtime::NodeHandle {
        let keep = self.reachable.contains(&address);
        let boot = Boot {
            id,
            address,
            spec,
            factory,
            evaluator: DurableEvaluator(Arc::new(Mutex::new(evaluator))),
            honest,
            started: Arc::new(Mutex::new(false)),
            world: self.world.clone(),
            committee: self.committee.clone(),
            routing: self.routing.clone(),
            clock: self.clock.clone(),
            decodes: self.decodes.clone(),
            disks: self.disks.clone(),
            storage: AgentStorage {
                disk: self.disks.disk(address, self.sync_ms),
                blind: self.mutation == Mutation::SkipChecksum,
                keep,
            },
            direct: !keep && self.sync_ms == 0,
            amnesia: self.mutation == Mutation::ForgetLockOnRestart,
            durable_config: self.durable_config,
            // Agent 0's node (its first copy) hosts the session opener, on the same disk.
            opener: (address == AgentId(0)).then(|| self.opener.clone()),
        };
        let name = if id == address { format!("agent-{}", id.0) } else { format!("agent-{}-twin", id.0) };
        madsim::runtime::Handle::current().create_node().name(name).init(move || boot.start()).build()
    }
}

/// What an agent's node needs at each of its starts (`spawn_agent`).
struct Boot {
    id: AgentId,
    address: AgentId,
    spec: AgentSpecialization,
    factory: Factory,
    evaluator: DurableEvaluator,
    honest: bool,
    /// Whether the node started before (a start after that is a restart).
    started: Arc<Mutex<bool>>,
    world: Shared,
    committee: Vec<AgentId>,
    routing: Arc<Routing>,
    clock: SimClock,
    decodes: Arc<Mutex<SharedDecodes>>,
    disks: Disks,
    storage: AgentStorage,
    direct: bool,
    amnesia: bool,
    durable_config: durable::DurableConfig,
    opener: Option<OpenerHost>,
}

impl Boot {
    /// One start of the node: the agent rebuilt from its disk, wired to the network, and its
    /// runner (and agent 0's opener, and the disk syncer) as the node's future.
    fn start(&self) -> impl Future<Output = ()> {
        let (id, address, w, clock) = (self.id, self.address, &self.world, &self.clock);
        let restart = self.started.lock().map(|mut s| std::mem::replace(&mut *s, true)).unwrap_or(true);
        let gate = Arc::new(Gate::default());
        let on_stop: Arc<dyn Fn() + Send + Sync> = match &self.opener {
            Some(o) => {
                let (port, world) = (o.port.clone(), o.world.clone());
                Arc::new(move || client::opener_down(&port, &world, true))
            }
            None => Arc::new(|| {}),
        };
        let life = Incarnation { me: id, address, world: w.clone(), clock: clock.clone(), gate, on_stop };
        let start = Start {
            inner: (self.factory)(),
            storage: self.storage.clone(),
            life: life.clone(),
            honest: self.honest,
            restart,
            amnesia: self.amnesia,
            config: self.durable_config,
            direct: self.direct,
        };
        let Some((node, recover)) = disk::open(start, &self.disks) else {
            if let Some(o) = &self.opener {
                client::opener_down(&o.port, &o.world, true);
            }
            return futures_either(None);
        };
        let (tx, rx) = unbounded();
        if let Ok(mut w) = w.lock() {
            w.inboxes.insert(address, tx);
            w.up.insert(address);
        }
        let transport = SimTx {
            me: id,
            address,
            world: w.clone(),
            clock: clock.clone(),
            routing: self.routing.clone(),
            gate: Some(life.gate.clone()),
        };
        let last_sent_ms = Arc::new(AtomicU64::new(0));
        let inbox =
            SimRx { inbox: rx, last_sent_ms: last_sent_ms.clone(), decodes: self.decodes.clone(), stash: node.stash() };
        let syncer = node.sync_handle().map(|sync| disk::syncer(life, sync, node.disk()));
        let mut runner = Runner::new(
            node,
            self.spec,
            transport,
            inbox,
            clock.clone(),
            self.evaluator.clone(),
            WorldObserver { world: w.clone(), last_sent_ms, copy: u32::from(id != address) },
            self.committee.clone(),
        );
        if recover {
            runner = runner.start_with(Input::Recover);
        }
        let opener = self.opener.clone().map(|o| o.run(self.storage.clone(), restart));
        futures_either(Some(async move {
            if let Some(syncer) = syncer {
                madsim::task::spawn(syncer);
            }
            if let Some(opener) = opener {
                madsim::task::spawn_local(opener);
            }
            runner.run().await;
        }))
    }
}

/// A node's main future: the agent's, or nothing when it refused to start.
pub(super) async fn futures_either<F: Future<Output = ()>>(run: Option<F>) {
    if let Some(run) = run {
        run.await;
    }
}
