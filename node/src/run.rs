//! Assembles one agent's node: keys, durable log, TCP transport, evaluator, client API, and
//! consensus-core's `Runner`, unchanged, driving the agent.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consensus_core::adversary::{Byzantine, Strategy};
use consensus_core::evaluator::{Evaluation, EvaluationRequest, Evaluator};
use consensus_core::protocol::{Agent, Input};
use consensus_core::registry::{AgentRecord, Registry};
use consensus_core::runner::Runner;
use consensus_core::AgentId;
use durable::{Archive, Archived, DurableAgent, DurableConfig, FileStorage, OpenerConfig, Recoverable};
use prometheus_client::registry::Registry as Metrics;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::api::{self, ApiState};
use crate::clock::RealClock;
use crate::config::{ConfigError, EvaluatorConfig, NodeConfig};
use crate::durable::{syncer, Durability, DurableNode};
use crate::evaluate::{abstention, EvaluatorTask};
use crate::http_client::{HttpClient, HttpError};
use crate::keys::{self, KeyError, NodeSigner};
use crate::opener::Opener;
use crate::state::{NodeObserver, Shared};
use crate::transport::{self, Peer};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A key.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The durable state.
    #[error("{0}")]
    Durable(#[from] durable::LogError),
    /// The data directory.
    #[error("{0}")]
    Storage(#[from] durable::StorageError),
    /// A log of the format before checksums.
    #[error(
        "{0}: a log of an older bftsim-node (no checksums), which this version does not read; fix: let the \
         sessions in progress finish, stop the node, move its data directory aside and start it empty"
    )]
    OldLog(String),
    /// Binding a socket.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// Where.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The registry.
    #[error("registry: {0}")]
    Registry(String),
    /// The `http` evaluator's client (its `ca_file`).
    #[error("[evaluator] {0}")]
    Evaluator(#[from] crate::http_client::HttpError),
}

/// The client an `http` evaluator calls its judge with: trusting the configuration's `ca_file`
/// (relative to the configuration file) besides the public roots.
pub fn evaluator_client(path: &Path, evaluator: &EvaluatorConfig) -> Result<HttpClient, HttpError> {
    match evaluator {
        EvaluatorConfig::Http { ca_file: Some(ca), .. } => HttpClient::new(Some(&NodeConfig::resolve(path, ca))),
        _ => Ok(crate::http_client::shared().clone()),
    }
}

/// How the node runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Run the agent with this Byzantine strategy (testing only).
    pub byzantine: Option<Strategy>,
}

/// The runner's evaluator is never asked: `DurableNode` takes every `Evaluate` output to the
/// asynchronous [`EvaluatorTask`]. Should it be asked, it abstains.
struct Unused;

impl Evaluator for Unused {
    fn evaluate(&mut self, request: &EvaluationRequest<'_>) -> Evaluation {
        let vote = abstention(request.spec, request.agent, request.specialization, request.now_ms, "no evaluator");
        Evaluation { vote, latency_ms: 0 }
    }
}

/// The agent, honest or (testing only) wrapped in a Byzantine strategy, and the committee.
fn build_agent(
    config: &NodeConfig,
    signer: &NodeSigner,
    keyring: consensus_core::sign::Ed25519Keyring,
    options: RunOptions,
) -> Result<(Box<dyn Recoverable + Send>, Vec<AgentId>), StartError> {
    let me = config.agent();
    let committee = config.committee();
    let records = committee.iter().map(|(id, s)| AgentRecord::new(*id, *s, &config.engine)).collect();
    let registry = Registry::from_records(records).map_err(|e| StartError::Registry(e.to_string()))?;
    let members: Vec<AgentId> = committee.iter().map(|(id, _)| *id).collect();
    let agent = Agent::new(signer.clone(), keyring, registry, config.engine, config.protocol);
    let node: Box<dyn Recoverable + Send> = match options.byzantine {
        Some(strategy) => {
            eprintln!("agent {}: running BYZANTINE strategy {strategy}", me.0);
            let seed = u64::from(me.0);
            Box::new(Byzantine::new(agent, signer.clone(), strategy, members.clone(), config.engine, seed, 1))
        }
        None => Box::new(agent),
    };
    Ok((node, members))
}

/// The agent rebuilt from its durable state in `storage`, with the decisions the API serves.
struct Opened {
    agent: DurableAgent<Archived<Box<dyn Recoverable + Send>, FileStorage>, FileStorage>,
    shared: Arc<Shared>,
    restarted: bool,
}

/// Opens the data directory: refuses a log of the old format, opens the decision store,
/// replays the agent's snapshot and log.
fn open_durable(
    config: &NodeConfig,
    storage: &FileStorage,
    node: Box<dyn Recoverable + Send>,
) -> Result<Opened, StartError> {
    let me = config.agent();
    let old_log = storage.dir().join("inputs.log");
    if old_log.exists() {
        return Err(StartError::OldLog(old_log.display().to_string()));
    }
    let archive = Arc::new(Mutex::new(Archive::open(storage.clone(), config.storage.keep_decisions)?));
    let shared = Shared::new(me, archive.clone());
    // L78: the archive also answers peers' Sync for sessions the agent pruned.
    let node = Archived::new(node, archive);
    let durable_config = DurableConfig { compact_log_bytes: config.storage.compact_log_bytes };
    let (agent, replayed) = DurableAgent::open(node, storage.clone(), durable_config, |_, input, outputs| {
        shared.absorb_replayed(input, outputs)
    })?;
    if let Some(applied) = agent.inner().applied_sessions() {
        shared.note_applied(applied);
    }
    if let Some(cut) = replayed.cut {
        let (bytes, at, why) = (cut.bytes, cut.offset, cut.reason);
        eprintln!("agent {}: cut the log's torn tail: {bytes} bytes at byte {at} ({why})", me.0);
    }
    if replayed.restarted() {
        let snapshot = if replayed.from_snapshot { "a snapshot and " } else { "" };
        let (inputs, applied) = (replayed.inputs, shared.applied());
        eprintln!("agent {}: replayed {snapshot}{inputs} logged inputs: {applied} sessions applied", me.0);
    }
    Ok(Opened { agent, shared, restarted: replayed.restarted() })
}

/// Starts the opener on this node (it holds the client key).
fn start_opener(
    path: &Path,
    config: &NodeConfig,
    storage: &FileStorage,
    net: &transport::Transport,
    shared: &Arc<Shared>,
    metrics: &mut Metrics,
) -> Result<Arc<Opener>, StartError> {
    let key_file = config.client.key_file.clone().unwrap_or_default();
    let client_key = keys::read_secret(&NodeConfig::resolve(path, &key_file))?;
    let opener_config = OpenerConfig {
        max_in_flight: config.max_in_flight(),
        max_queued: config.client.max_queued,
        compact_log_bytes: (config.storage.compact_log_bytes / 16).max(1 << 16),
    };
    let signer = NodeSigner::new(AgentId::CLIENT, client_key);
    let (opener, recovery) =
        Opener::open(storage.clone(), signer, opener_config, net.tx.clone(), net.inbox.clone(), shared.clone())?;
    if recovery.reopened + recovery.queued > 0 {
        let (next, reopened, queued) = (recovery.next.0, recovery.reopened, recovery.queued);
        eprintln!("opener: next session {next}, re-opening {reopened} undecided, {queued} waiting");
    }
    metrics.register("opener_fsyncs", "fsyncs of the opener's durable log", opener.fsyncs());
    tokio::spawn(opener.clone().retransmit(config.protocol.retransmit_ms.saturating_mul(3)));
    tokio::spawn(opener.clone().pump());
    Ok(opener)
}

/// Runs the node of the configuration at `path` until the process is stopped.
pub async fn run(path: &Path, options: RunOptions) -> Result<(), StartError> {
    // Keys, addresses and ids first: a node with another agent's key must not start.
    let config = crate::checks::preflight(path)?;
    let judge_client = evaluator_client(path, &config.evaluator)?;
    let me = config.agent();
    let signing_key = keys::read_secret(&NodeConfig::resolve(path, &config.key_file))?;
    let signer = NodeSigner::new(me, signing_key.clone());
    let client_public = keys::parse_public(&config.client.public_key, "[client] public_key")?;
    let mut public_keys = vec![(me, signer.public()), (AgentId::CLIENT, client_public)];
    let mut peers = Vec::new();
    for p in &config.peers {
        let key = keys::parse_public(&p.public_key, &format!("[[peers]] id = {} public_key", p.id))?;
        public_keys.push((AgentId(p.id), key));
        peers.push(Peer { id: AgentId(p.id), address: p.address, key });
    }
    let (node, members) = build_agent(&config, &signer, keys::keyring(public_keys), options)?;

    // Durable state first: replay before anything can be sent.
    let storage = FileStorage::new(&NodeConfig::resolve(path, &config.data_dir), config.storage.fsync)?;
    let Opened { agent, shared, restarted } = open_durable(&config, &storage, node)?;
    let mut metrics = Metrics::with_prefix("bftsim");
    shared.counters.register(&mut metrics);
    let durability = config.storage.fsync.then(Durability::new);
    if let Some(d) = &durability {
        metrics.register("wal_fsyncs", "fsyncs of the agent's durable log (group commits)", d.fsyncs.clone());
        tokio::spawn(syncer(d.clone(), agent.sync_handle(), "durable log"));
    }
    let (eval_tx, eval_rx) = mpsc::unbounded_channel();
    let durable = DurableNode::new(agent, durability.clone(), eval_tx, shared.clone());

    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { address: config.listen, source })?;
    let http =
        TcpListener::bind(config.http).await.map_err(|source| StartError::Bind { address: config.http, source })?;
    let net = transport::start(me, Arc::new(signing_key), listener, &peers, config.transport, durability);
    net.stats.register(&mut metrics);
    let clock = RealClock::new();

    let evaluator = EvaluatorTask {
        agent: me,
        specialization: config.specialization,
        config: config.evaluator.clone(),
        deadline_ms: config.engine.deadline_ms,
        inbox: net.inbox.clone(),
        shared: shared.clone(),
        clock,
        http: judge_client,
    };
    tokio::spawn(evaluator.run(eval_rx));

    let opener = match config.client.opener == me.0 {
        true => Some(start_opener(path, &config, &storage, &net, &shared, &mut metrics)?),
        false => None,
    };
    let opener_http = config.peers.iter().find(|p| p.id == config.client.opener).map_or(config.http, |p| p.http);
    let lag_bound = config.protocol.keep_decided as u64;
    let net_handles = (net.tx.clone(), net.inbox.clone(), net.links.clone());
    let state = ApiState::new(shared.clone(), opener, opener_http, net_handles, lag_bound, metrics);
    let app = api::router(state, Duration::from_millis(config.api.body_timeout_ms));
    tokio::spawn(crate::server::serve(http, app, config.api));

    let mut runner =
        Runner::new(durable, config.specialization, net.tx, net.rx, clock, Unused, NodeObserver::new(shared), members);
    if restarted {
        runner = runner.start_with(Input::Recover);
    }
    eprintln!("agent {}: listening on {} (peers) and http://{} (clients)", me.0, config.listen, config.http);
    runner.run().await;
    Ok(())
}
