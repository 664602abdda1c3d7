//! From a scenario to a real cluster's files: what of the scenario runs for real, the keys and
//! configuration files (`init-cluster` with free ports), and every peer address pointed at the
//! harness's proxy.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use consensus_core::protocol::Mutation;
use node::cluster::{init_cluster, ClusterSpec, DEFAULT_PIPELINE};
use node::config::EvaluatorConfig;
use sim::scenario::{Behaviour, FaultAction, Scenario};

/// The synthetic evaluator's latency in a real run, ms: short, so a run takes seconds (the
/// simulator's profiles model LLM latencies of a few hundred ms, which only stretch the run).
pub const EVALUATOR_LATENCY_MS: (u64, u64) = (0, 5);

/// Why a scenario cannot run against real processes (`None`: it can).
pub fn unsupported(s: &Scenario) -> Option<String> {
    if s.agents.spares > 0 || s.protocol.replace {
        return Some("spares and replacement need agents the node cannot add at run time".into());
    }
    if s.protocol.mutation != Mutation::None {
        return Some("protocol mutations exist only in the simulator (the node runs the real protocol)".into());
    }
    if !s.round_partitions.is_empty() || !s.tamper.is_empty() {
        return Some("round partitions and tampering follow the simulator's view of rounds".into());
    }
    if s.storage != sim::scenario::Storage::default() {
        return Some(
            "its [storage] settings (power loss, torn writes, slow fsyncs, compaction) act on the simulated disk"
                .into(),
        );
    }
    if !s.sweep.is_empty() {
        return Some("a sweep expands to many scenarios; run its points with bftsim".into());
    }
    if s.network.tail.is_some() {
        return Some("the latency tail is not modelled by the proxy yet".into());
    }
    for f in &s.faults {
        match f.action {
            FaultAction::FlipBit { .. }
            | FaultAction::FailSync { .. }
            | FaultAction::DiskFull { .. }
            | FaultAction::SlowDisk { .. } => {
                return Some(format!(
                    "disk faults ({} at {} ms) need a fault-injecting file system the harness does not have",
                    fault_name(&f.action),
                    f.at_ms
                ))
            }
            _ => {}
        }
    }
    if !s.expect.safety {
        return Some("it expects a violation, which only a simulator mutation or fault produces".into());
    }
    for rank in 0..s.byzantine.count as usize {
        if !matches!(s.byzantine.behaviour(rank), Behaviour::Core(_)) {
            return Some("twin and tampered agents exist only in the simulator".into());
        }
    }
    if s.agents.count > 31 {
        return Some(format!("{} agents on one machine is beyond what the harness starts", s.agents.count));
    }
    None
}

/// The name of a fault kind, as in the file.
pub fn fault_name(action: &FaultAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// The Byzantine agents of a real run and their strategies: `byzantine.agents` when the file
/// names them, else the highest indices (the simulator draws them from the seed; agent 0 hosts
/// the opener, so the highest are the neutral choice).
pub fn byzantine(s: &Scenario) -> Vec<Option<String>> {
    let n = s.agents.count;
    let mut out = vec![None; n as usize];
    let agents: Vec<u32> = match &s.byzantine.agents {
        Some(list) => list.clone(),
        None => (n.saturating_sub(s.byzantine.count)..n).collect(),
    };
    for (rank, a) in agents.iter().enumerate() {
        if let (Some(slot), Behaviour::Core(strategy)) = (out.get_mut(*a as usize), s.byzantine.behaviour(rank)) {
            *slot = Some(strategy.name().to_owned());
        }
    }
    out
}

/// A real cluster's files.
pub struct Files {
    /// Configuration file per node.
    pub configs: Vec<PathBuf>,
    /// Output file per node.
    pub logs: Vec<PathBuf>,
    /// Each node's HTTP base URL.
    pub urls: Vec<String>,
    /// Each node's real peer address (the proxy forwards to it).
    pub listen: Vec<SocketAddr>,
    /// The proxy's listener of link `from → to`, by `(from, to)`.
    pub links: Vec<((u32, u32), TcpListener)>,
}

fn free_listeners(count: usize) -> std::io::Result<Vec<TcpListener>> {
    (0..count).map(|_| TcpListener::bind("127.0.0.1:0")).collect()
}

fn port(l: &TcpListener) -> std::io::Result<u16> {
    Ok(l.local_addr()?.port())
}

/// Writes the cluster of `s` into `dir`: keys, one configuration per node with the scenario's
/// engine and protocol settings, `max_in_flight = workload.concurrency`, and peer addresses on
/// the proxy. The proxy's listeners stay bound (no other process can take their ports); the
/// nodes' own ports are released just before the nodes bind them.
pub fn write(s: &Scenario, dir: &Path) -> anyhow::Result<Files> {
    let n = s.agents.count as usize;
    let own = free_listeners(2 * n)?;
    let pairs: Vec<(u16, u16)> =
        (0..n).map(|i| Ok((port(&own[i])?, port(&own[n + i])?))).collect::<std::io::Result<_>>()?;
    let (a, b) = EVALUATOR_LATENCY_MS;
    let spec = ClusterSpec {
        agents: s.agents.count,
        base_port: 0,
        host: "127.0.0.1".into(),
        out: dir.to_path_buf(),
        evaluator: Some(format!("[evaluator]\nkind = \"synthetic\"\nlatency_ms = [{a}, {b}]\n")),
        ports: Some(pairs.clone()),
    };
    let configs = init_cluster(&spec)?;
    let mut links = Vec::new();
    for from in 0..n as u32 {
        for to in 0..n as u32 {
            if from != to {
                links.push(((from, to), TcpListener::bind("127.0.0.1:0")?));
            }
        }
    }
    let protocol = s.protocol_config();
    for (i, path) in configs.iter().enumerate() {
        let mut c = node::checks::load(path)?;
        c.engine = s.engine_config();
        c.protocol = consensus_core::protocol::ProtocolConfig { pipeline: DEFAULT_PIPELINE, ..protocol };
        c.client.max_in_flight = Some(usize::try_from(s.workload.concurrency.min(DEFAULT_PIPELINE)).unwrap_or(1));
        c.evaluator = EvaluatorConfig::Synthetic { latency_ms: Some(EVALUATOR_LATENCY_MS), seed: i as u64 };
        for peer in &mut c.peers {
            let link = links.iter().find(|((f, t), _)| *f == i as u32 && *t == peer.id);
            if let Some((_, l)) = link {
                peer.address = l.local_addr()?;
            }
        }
        let mut table = toml::Table::try_from(&c)?;
        if let Some(toml::Value::Table(p)) = table.get_mut("protocol") {
            p.remove("client");
            p.remove("mutation");
        }
        std::fs::write(path, toml::to_string(&table)?)?;
        node::checks::load(path).map_err(|e| anyhow::anyhow!("the written configuration does not load: {e}"))?;
    }
    let urls = pairs.iter().map(|(_, h)| format!("http://127.0.0.1:{h}")).collect();
    let listen = pairs.iter().map(|(p, _)| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
    let logs = (0..n).map(|i| dir.join(format!("node-{i}.out"))).collect();
    drop(own);
    Ok(Files { configs, logs, urls, listen, links })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        sim::scenario::parse(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn disk_faults_mutations_and_twins_are_refused_with_the_reason() {
        let disk = scenario("[[faults]]\nat_ms = 10\nkind = \"disk-full\"\nagent = 1\n");
        assert!(unsupported(&disk).is_some_and(|w| w.contains("disk-full at 10 ms")));
        let mutation = scenario("[protocol]\nmutation = \"no-locking\"\n[expect]\nsafety = false\n");
        assert!(unsupported(&mutation).is_some_and(|w| w.contains("mutation")));
        let twin = scenario("[byzantine]\ncount = 1\nstrategy = \"twin\"\n");
        assert!(unsupported(&twin).is_some_and(|w| w.contains("twin")));
        assert_eq!(unsupported(&scenario("[workload]\nsessions = 3\n")), None);
    }

    #[test]
    fn byzantine_agents_are_the_named_ones_or_the_highest() {
        let named = scenario("[byzantine]\ncount = 1\nstrategy = \"equivocate\"\nagents = [2]\n");
        assert_eq!(byzantine(&named), vec![None, None, Some("equivocate".to_owned()), None, None]);
        let drawn = scenario("[byzantine]\ncount = 1\nstrategy = \"silent\"\n");
        assert_eq!(byzantine(&drawn)[4].as_deref(), Some("silent"));
    }
}
