//! One scenario against real processes: write the cluster, start the proxy and the nodes, run
//! the workload while the fault timeline acts on the real processes, ask every live honest
//! node for every acknowledged session, check, and make the run's record.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use consensus_core::AgentId;
use reports::model::{LatencySummary, RunOutcome, RunRecord, SessionCounts, Violation};
use sim::scenario::{FaultAction, Scenario};
use tokio::time::Instant;

use crate::check::{check, Answers, Context};
use crate::client::{self, History, Workload};
use crate::procs::{Nodes, Status};
use crate::proxy::{self, Net};
use crate::setup;

/// How long the nodes get to answer `/healthz` after they are spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `bftsim-node` binary.
    pub node_bin: PathBuf,
    /// Where the cluster's files go (`<dir>/<scenario>-<seed>`); kept after a violation.
    pub dir: PathBuf,
    /// Seeds the proxy's drops, duplicates and latencies.
    pub seed: u64,
}

/// The outcome of one real run.
pub struct Outcome {
    /// The record, as `runs.jsonl` holds it (`real = true`).
    pub record: RunRecord,
    /// The cluster's directory (configurations, data, each node's output).
    pub dir: PathBuf,
    /// The client history.
    pub history: Vec<client::Submission>,
    /// The live honest nodes' answers at the end.
    pub answers: Answers,
    /// The cluster's public keys and committee (to check the answers again).
    pub keys: (consensus_core::sign::Ed25519Keyring, Vec<AgentId>),
}

/// The proxy's accept loops, stopped when the run ends (its connections end with the nodes).
struct Links(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.0 {
            l.abort();
        }
    }
}

/// The command that repeats a run.
pub fn reproduce(s: &Scenario, seed: u64) -> String {
    format!("bftsim-cluster run {} --seed {seed}", s.path.display())
}

/// Runs `s` against real processes. `Err` when the cluster could not be set up (the scenario
/// cannot run for real, a node refused to start): no invariant was checked then.
pub async fn run(s: &Scenario, opts: &Options) -> anyhow::Result<Outcome> {
    if let Some(why) = setup::unsupported(s) {
        anyhow::bail!("{} cannot run against real processes: {why}", s.name);
    }
    let dir = opts.dir.join(format!("{}-{}", s.name, opts.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let files = setup::write(s, &dir)?;
    let net = Net::new(s.network, opts.seed);
    let mut links = Links(Vec::new());
    for ((from, to), listener) in files.links {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        links.0.push(proxy::spawn_link(net.clone(), listener, from, to, files.listen[to as usize]));
    }
    let byzantine = setup::byzantine(s);
    let mut nodes = Nodes::new(opts.node_bin.clone(), files.configs.clone(), files.logs, byzantine.clone());
    for i in 0..nodes.len() {
        nodes.start(i)?;
    }
    let nodes = Arc::new(Mutex::new(nodes));
    wait_started(&nodes, &files.urls).await?;

    let start = Instant::now();
    let last_fault_ms = s.faults.iter().map(|f| f.at_ms).max().unwrap_or(0);
    let deadline = start + Duration::from_millis(last_fault_ms + s.expect.liveness_bound_ms);
    let faults = tokio::spawn(apply_faults(s.faults.clone(), nodes.clone(), net.clone(), start));
    let history = History::default();
    let workload = Workload {
        tag: s.name.clone(),
        sessions: s.workload.sessions,
        candidates: s.workload.candidates,
        concurrency: s.workload.concurrency,
    };
    // The client talks to the honest nodes: the invariants are about their answers, and a
    // Byzantine node may acknowledge and then never answer (or answer anything).
    let honest_urls: Vec<String> =
        files.urls.iter().enumerate().filter(|(i, _)| byzantine[*i].is_none()).map(|(_, u)| u.clone()).collect();
    client::drive(workload, honest_urls, start, deadline, history.clone()).await;
    let fault_error = faults.await.unwrap_or_else(|e| Some(format!("the fault task failed: {e}")));
    let history = history.snapshot();

    let (keyring, members) = keys(&files.configs)?;
    let live: Vec<usize> = {
        let mut n = nodes.lock().unwrap_or_else(PoisonError::into_inner);
        (0..n.len()).filter(|&i| byzantine[i].is_none() && n.exited(i).is_none() && n.status(i) == Status::Up).collect()
    };
    let answers = final_answers(&history, &live, &files.urls, deadline.max(Instant::now())).await;
    let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let cx = Context { keyring: &keyring, members: &members, liveness: s.promises_liveness(), now_ms };
    let mut violation = check(&history, &answers, &cx);
    if violation.is_none() && cx.liveness && (history.len() as u64) < s.workload.sessions {
        let detail = format!(
            "only {} of {} sessions were submitted within the liveness bound ({} ms after the last fault)",
            history.len(),
            s.workload.sessions,
            s.expect.liveness_bound_ms
        );
        violation =
            Some(Violation { invariant: "liveness".into(), step: history.len() as u64, time_ms: now_ms, detail });
    }
    if violation.is_none() {
        violation = exits(&nodes, now_ms).or(fault_error.map(|e| Violation {
            invariant: "fault-applied".into(),
            step: 0,
            time_ms: now_ms,
            detail: e,
        }));
    }
    if let Some(v) = &mut violation {
        v.detail = format!(
            "{}; seed {}; reproduce: {}; files: {}",
            v.detail,
            opts.seed,
            reproduce(s, opts.seed),
            dir.display()
        );
    }
    nodes.lock().unwrap_or_else(PoisonError::into_inner).kill_all();
    drop(links);
    let record = record(s, opts.seed, &history, &answers, violation, &net, now_ms, &byzantine);
    Ok(Outcome { record, dir, history, answers, keys: (keyring, members) })
}

/// Waits until every node answers `/healthz` (any status: a node lagging at the start is
/// still up), or fails with the output of the first that exited.
async fn wait_started(nodes: &Arc<Mutex<Nodes>>, urls: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    for (i, url) in urls.iter().enumerate() {
        loop {
            let exited = {
                let mut n = nodes.lock().unwrap_or_else(PoisonError::into_inner);
                n.exited(i).map(|status| (status, n.output(i)))
            };
            if let Some((status, out)) = exited {
                anyhow::bail!("node {i} exited at the start ({status}):\n{out}");
            }
            let health = format!("{url}/healthz");
            if node::http_client::request("GET", &health, None, Duration::from_secs(1)).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!("node {i} did not answer {health} within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Applies the fault timeline at its times (ms since `start`); the first failure, if any.
async fn apply_faults(
    faults: Vec<sim::scenario::Fault>,
    nodes: Arc<Mutex<Nodes>>,
    net: Net,
    start: Instant,
) -> Option<String> {
    let mut error = None;
    for f in faults {
        tokio::time::sleep_until(start + Duration::from_millis(f.at_ms)).await;
        let name = setup::fault_name(&f.action);
        let mut n = nodes.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match f.action {
            FaultAction::Crash { agent } => {
                n.crash(agent as usize);
                Ok(())
            }
            FaultAction::Restart { agent } => n.start(agent as usize).map_err(|e| e.to_string()),
            FaultAction::Partition { groups, one_way } => {
                net.partition(groups, one_way);
                Ok(())
            }
            FaultAction::Heal => {
                net.heal();
                Ok(())
            }
            FaultAction::Clog { target } => {
                net.clog(target);
                Ok(())
            }
            FaultAction::Unclog { target } => {
                net.unclog(target);
                Ok(())
            }
            FaultAction::Pause { agent } => n.pause(agent as usize),
            FaultAction::Resume { agent } => n.resume(agent as usize),
            _ => Err(format!("{name} is not supported for real")),
        };
        if let Err(e) = result {
            error.get_or_insert(format!("{name} at {} ms: {e}", f.at_ms));
        }
    }
    error
}

/// Every live honest node's answer for every acknowledged session, asked concurrently.
async fn final_answers(history: &[client::Submission], live: &[usize], urls: &[String], deadline: Instant) -> Answers {
    let ids: Vec<u64> = history.iter().filter_map(|s| s.session).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for &i in live {
        let (url, ids) = (urls[i].clone(), ids.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            for id in ids {
                out.push(((i, id), client::answer(&url, id, deadline).await));
            }
            out
        });
    }
    let mut answers = Answers::new();
    while let Some(Ok(part)) = tasks.join_next().await {
        answers.extend(part);
    }
    answers
}

/// A node that died on its own (not by the harness's SIGKILL) is a finding.
fn exits(nodes: &Arc<Mutex<Nodes>>, now_ms: u64) -> Option<Violation> {
    let mut n = nodes.lock().unwrap_or_else(PoisonError::into_inner);
    for i in 0..n.len() {
        if let Some(status) = n.exited(i) {
            let out = n.output(i);
            let tail: String = out.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            let detail = format!("node {i} exited on its own ({status}); its last output: {tail}");
            return Some(Violation { invariant: "no-unexpected-exit".into(), step: 0, time_ms: now_ms, detail });
        }
    }
    None
}

/// The cluster's public keys and committee, from the written configurations.
fn keys(configs: &[PathBuf]) -> anyhow::Result<(consensus_core::sign::Ed25519Keyring, Vec<AgentId>)> {
    let mut public = Vec::new();
    let mut members = Vec::new();
    for path in configs {
        let c = node::checks::load(path)?;
        let own = c.public_key.clone().unwrap_or_default();
        public.push((c.agent(), node::keys::parse_public(&own, "public_key")?));
        members.push(c.agent());
        if c.id == 0 {
            public.push((AgentId::CLIENT, node::keys::parse_public(&c.client.public_key, "client")?));
        }
    }
    Ok((node::keys::keyring(public), members))
}

/// The run's record: the same fields as a simulated run's where a real run has them.
#[allow(clippy::too_many_arguments)]
fn record(
    s: &Scenario,
    seed: u64,
    history: &[client::Submission],
    answers: &Answers,
    violation: Option<Violation>,
    net: &Net,
    now_ms: u64,
    byzantine: &[Option<String>],
) -> RunRecord {
    let mut record = RunRecord {
        scenario: s.name.clone(),
        seed,
        counts: SessionCounts { sessions: s.workload.sessions, ..SessionCounts::default() },
        real: true,
        messages: net.counts(),
        sim_time_ms: now_ms,
        deadline_ms: s.protocol.deadline_ms,
        agents: s.agents.count,
        byzantine: (0..byzantine.len() as u32).filter(|&i| byzantine[i as usize].is_some()).collect(),
        network: sim::summary::network_condition(s).to_owned(),
        families: sim::summary::families(s),
        ..RunRecord::default()
    };
    let mut latencies = Vec::new();
    for sub in history {
        let first = sub
            .session
            .and_then(|id| answers.iter().find(|((_, sid), v)| *sid == id && v.is_some()).and_then(|(_, v)| v.clone()));
        let Some(v) = first.or_else(|| sub.decision.as_ref().map(|d| d.2.clone())) else {
            record.counts.undecided += 1;
            continue;
        };
        match v["outcome"].as_str() {
            Some("escalated") => record.counts.escalated += 1,
            Some("no-decision") => record.counts.no_decision += 1,
            _ => record.counts.decided += 1,
        }
        if let Some(ms) = v["latency_ms"].as_u64() {
            latencies.push(ms);
        }
    }
    record.counts.undecided += s.workload.sessions.saturating_sub(history.len() as u64);
    record.latency_ms = LatencySummary::of(&mut latencies);
    record.outcome = if violation.is_some() { RunOutcome::Violation } else { RunOutcome::Ok };
    record.violations = violation.into_iter().collect();
    record
}

/// Appends `record` to `<out>/runs.jsonl`.
pub fn append_record(out: &Path, record: &RunRecord) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(out)?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out.join("runs.jsonl"))?;
    writeln!(f, "{}", serde_json::to_string(record)?)?;
    Ok(())
}
