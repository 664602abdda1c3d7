//! `init-cluster`: keys and one configuration file per agent for a local cluster.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use consensus_core::protocol::ProtocolConfig;
use consensus_core::{AgentSpecialization, EngineConfig};

use crate::keys::{generate, to_hex};

/// Sessions that may be in flight at once in a generated cluster (the protocol's `pipeline`):
/// session s is judged against the registry after sessions `0 ..= s - pipeline`, so an agent
/// takes part in s only once everything before `s - pipeline + 1` is decided here.
pub const DEFAULT_PIPELINE: u64 = 64;

/// What `init-cluster` writes.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Agents.
    pub agents: u32,
    /// Agent i listens on `base_port + i` (TCP) and `base_port + agents + i` (HTTP).
    pub base_port: u16,
    /// Host to bind and dial.
    pub host: String,
    /// Output directory.
    pub out: PathBuf,
    /// `[evaluator]` table text for every agent (synthetic when `None`).
    pub evaluator: Option<String>,
    /// Agents' TCP ports, overriding `base_port` (tests pick free ports one by one).
    pub ports: Option<Vec<(u16, u16)>>,
}

/// Why `init-cluster` failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bad arguments.
    #[error("{0}")]
    Invalid(String),
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|source| ClusterError::Io { path: path.to_path_buf(), source })?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(path, perms)
            .map_err(|source| ClusterError::Io { path: path.to_path_buf(), source })?;
    }
    Ok(())
}

fn table(name: &str, value: &impl serde::Serialize, drop: &[&str]) -> String {
    let mut t = toml::Table::try_from(value).unwrap_or_default();
    for key in drop {
        t.remove(*key);
    }
    let mut root = toml::Table::new();
    root.insert(name.to_owned(), toml::Value::Table(t));
    toml::to_string(&root).unwrap_or_default()
}

/// Writes `agent-<i>.key`, `client.key` and `agent-<i>.toml`; returns the config paths.
pub fn init_cluster(spec: &ClusterSpec) -> Result<Vec<PathBuf>, ClusterError> {
    if spec.agents == 0 || spec.agents > 1_000 {
        return Err(ClusterError::Invalid("--agents must be 1 to 1000".into()));
    }
    let n = spec.agents;
    let ports: Vec<(u16, u16)> = match &spec.ports {
        Some(p) if p.len() == n as usize => p.clone(),
        Some(_) => return Err(ClusterError::Invalid("one port pair per agent".into())),
        None => {
            let top = u32::from(spec.base_port) + 2 * n;
            if top > u32::from(u16::MAX) {
                return Err(ClusterError::Invalid(format!(
                    "--base-port {} leaves no room for {n} agents",
                    spec.base_port
                )));
            }
            (0..n).map(|i| (spec.base_port + i as u16, spec.base_port + (n + i) as u16)).collect()
        }
    };
    std::fs::create_dir_all(&spec.out).map_err(|source| ClusterError::Io { path: spec.out.clone(), source })?;
    let keys: Vec<_> = (0..n).map(|_| generate()).collect();
    let client = generate();
    for (i, key) in keys.iter().enumerate() {
        write(&spec.out.join(format!("agent-{i}.key")), &format!("{}\n", to_hex(key.as_bytes())), true)?;
    }
    write(&spec.out.join("client.key"), &format!("{}\n", to_hex(client.as_bytes())), true)?;
    let protocol = ProtocolConfig { pipeline: DEFAULT_PIPELINE, ..ProtocolConfig::default() };
    let engine = table("engine", &EngineConfig::default(), &[]);
    let protocol = table("protocol", &protocol, &["client", "mutation"]);
    let evaluator = spec.evaluator.clone().unwrap_or_else(|| "[evaluator]\nkind = \"synthetic\"\n".into());
    let mut paths = Vec::new();
    for i in 0..n as usize {
        let mut t = String::new();
        let _ = writeln!(t, "# bftsim-node configuration of agent {i} (written by `bftsim-node init-cluster`).");
        let _ = writeln!(t, "# docs/node.md explains every key.");
        let _ = writeln!(t, "id = {i}");
        let _ = writeln!(t, "specialization = \"{}\"", kebab(AgentSpecialization::cycled(i)));
        let _ = writeln!(t, "listen = \"{}:{}\"", spec.host, ports[i].0);
        let _ = writeln!(t, "http = \"{}:{}\"", spec.host, ports[i].1);
        let _ = writeln!(t, "key_file = \"agent-{i}.key\"");
        let _ = writeln!(t, "public_key = \"{}\"", to_hex(keys[i].verifying_key().as_bytes()));
        let _ = writeln!(t, "data_dir = \"data/agent-{i}\"\n");
        let _ = writeln!(t, "[client]");
        let _ = writeln!(t, "# The cluster client signs Open; agent `opener` numbers and opens every session.");
        let _ = writeln!(t, "public_key = \"{}\"", to_hex(client.verifying_key().as_bytes()));
        let _ = writeln!(t, "key_file = \"client.key\"");
        let _ = writeln!(t, "opener = 0");
        // The admission rule (docs/node.md, Admission): the window shrinks with n².
        let window = crate::config::admission_window(n as usize);
        let _ = writeln!(t, "max_in_flight = {window}");
        let _ = writeln!(t, "max_queued = {}\n", crate::config::queue_for(window));
        for (j, key) in keys.iter().enumerate() {
            if j == i {
                continue;
            }
            let _ = writeln!(t, "[[peers]]");
            let _ = writeln!(t, "id = {j}");
            let _ = writeln!(t, "specialization = \"{}\"", kebab(AgentSpecialization::cycled(j)));
            let _ = writeln!(t, "address = \"{}:{}\"", spec.host, ports[j].0);
            let _ = writeln!(t, "http = \"{}:{}\"", spec.host, ports[j].1);
            let _ = writeln!(t, "public_key = \"{}\"\n", to_hex(key.verifying_key().as_bytes()));
        }
        let _ = writeln!(t, "{evaluator}");
        let _ = writeln!(t, "[transport]\nqueue_frames = 4096\nbackoff_min_ms = 20\nbackoff_max_ms = 1000\nhandshake_timeout_ms = 2000\n");
        let _ = writeln!(t, "[storage]\nfsync = true\n");
        let api = crate::config::ApiConfig::default();
        let _ = writeln!(t, "[api]\n# A request slower than this to arrive is cut off (408 for a body).");
        let _ =
            writeln!(t, "header_timeout_ms = {}\nbody_timeout_ms = {}\n", api.header_timeout_ms, api.body_timeout_ms);
        let _ = writeln!(t, "{engine}");
        let _ = write!(t, "{protocol}");
        let path = spec.out.join(format!("agent-{i}.toml"));
        write(&path, &t, false)?;
        paths.push(path);
    }
    Ok(paths)
}

fn kebab(s: AgentSpecialization) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_31_agent_cluster_gets_the_admission_window_of_its_size_not_16() {
        let out = std::env::temp_dir().join(format!("bftsim-init-31-{}", std::process::id()));
        let spec = ClusterSpec {
            agents: 31,
            base_port: 20_000,
            host: "127.0.0.1".into(),
            out: out.clone(),
            evaluator: None,
            ports: None,
        };
        let paths = init_cluster(&spec).unwrap_or_else(|e| panic!("{e}"));
        let c = crate::checks::load(&paths[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.client.max_in_flight, c.client.max_queued, c.max_in_flight()), (Some(2), 512, 2));
        let _ = std::fs::remove_dir_all(&out);
    }
}
