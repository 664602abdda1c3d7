//! One agent's configuration file (TOML), written by `init-cluster`, checked on load.
//!
//! Errors name `file:line:column` (toml's spans) and say how to fix the problem.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use consensus_core::protocol::ProtocolConfig;
use consensus_core::{AgentId, AgentSpecialization, EngineConfig};
use serde::{Deserialize, Serialize};

use crate::problem::{line_col, Field, Problem};

/// One agent's node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This agent's id.
    pub id: u32,
    /// What it is specialised in.
    pub specialization: AgentSpecialization,
    /// Where peers connect (TCP).
    pub listen: SocketAddr,
    /// Where the client API listens (HTTP).
    pub http: SocketAddr,
    /// The agent's secret key (64 hex digits), relative to this file.
    pub key_file: PathBuf,
    /// The agent's public key (64 hex digits), as its peers know it: `key_file` must hold its
    /// secret half (checked on start). Optional for files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Where the durable log lives, relative to this file.
    pub data_dir: PathBuf,
    /// The cluster client that opens sessions.
    pub client: ClientConfig,
    /// Every other agent of the committee.
    pub peers: Vec<PeerConfig>,
    /// The voting engine (the design's defaults when omitted).
    #[serde(default)]
    pub engine: EngineConfig,
    /// The agreement protocol (the design's defaults when omitted; `pipeline` is the number of
    /// sessions that may be in flight at once).
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// How this agent votes.
    #[serde(default)]
    pub evaluator: EvaluatorConfig,
    /// Peer connections.
    #[serde(default)]
    pub transport: TransportConfig,
    /// Durable state.
    #[serde(default)]
    pub storage: StorageConfig,
    /// The client API's read timeouts.
    #[serde(default)]
    pub api: ApiConfig,
}

/// `[client]`: the cluster's client identity (signs `Open`) and which agent opens sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client's public key (64 hex digits): every agent checks `Open` against it.
    pub public_key: String,
    /// The client's secret key, relative to this file; needed on the opener only.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The agent that numbers and opens sessions; the others forward `POST /v1/sessions` to it.
    pub opener: u32,
    /// Sessions the opener keeps open at once (undecided at the opener); later ones wait their
    /// turn. At most `protocol.pipeline`; by default [`admission_window`] of the committee size,
    /// capped by the pipeline.
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Sessions the opener holds acknowledged and not yet opened; more are refused (`429` with
    /// `Retry-After`).
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
}

fn default_max_queued() -> usize {
    4_096
}

/// What the committee may have in flight, in sessions × agents²: each session in flight costs
/// every agent about 3n signature checks and n² messages cluster-wide per retransmit interval,
/// so the window shrinks with the square of the committee. 2,048 keeps 5 agents at 16 (81)
/// and gives 31 agents 2, where the issue measured 16 in flight collapsing (16 of 80 sessions
/// decided in 240 s, full inboxes) and 2 deciding 100 of 100 (docs/node.md, Admission).
pub const ADMISSION_BUDGET: usize = 2_048;

/// The default `max_in_flight` of an `n`-agent committee: `ADMISSION_BUDGET / n²`, between 1
/// and 16.
pub fn admission_window(n: usize) -> usize {
    (ADMISSION_BUDGET / n.max(1).saturating_mul(n.max(1))).clamp(1, 16)
}

/// The default `max_queued` for a window: 256 sessions per session in flight, so that a
/// queue holds a few seconds of work at the committee's pace, not minutes.
pub fn queue_for(window: usize) -> usize {
    window.saturating_mul(256).clamp(256, 4_096)
}

impl NodeConfig {
    /// The opener's window: `max_in_flight`, or the committee's [`admission_window`] capped by
    /// the pipeline.
    pub fn max_in_flight(&self) -> usize {
        self.client.max_in_flight.unwrap_or_else(|| {
            let window = admission_window(self.peers.len() + 1) as u64;
            usize::try_from(self.protocol.pipeline.min(window)).unwrap_or(1)
        })
    }
}

/// `[[peers]]`: another agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its id.
    pub id: u32,
    /// Its specialisation.
    pub specialization: AgentSpecialization,
    /// Its TCP address.
    pub address: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Its public key (64 hex digits).
    pub public_key: String,
}

/// `[evaluator]`: how this agent scores candidates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EvaluatorConfig {
    /// consensus-core's `SyntheticEvaluator` over a ground truth derived from the query (demos,
    /// benchmarks). `latency_ms` overrides the specialisation's latency range.
    Synthetic {
        /// `[min, max]` milliseconds; the specialisation's default when omitted.
        #[serde(default)]
        latency_ms: Option<(u64, u64)>,
        /// Seeds the noise.
        #[serde(default)]
        seed: u64,
    },
    /// Runs a program: the request as JSON on stdin, the vote as JSON on stdout.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Beyond this the agent abstains.
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
        /// Judge processes running at once; more evaluations wait their turn (the number of
        /// CPUs when omitted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_concurrent: Option<usize>,
    },
    /// POSTs the request as JSON to a URL; the response body is the vote.
    Http {
        /// `http://host:port/path` or `https://host/path`.
        url: String,
        /// A PEM file of certificates to trust besides the public roots (a judge with a
        /// self-signed or private-CA certificate); relative to the configuration file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<PathBuf>,
        /// Beyond this the agent abstains.
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
        /// Requests in flight at once; more evaluations wait their turn (16 when omitted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_concurrent: Option<usize>,
    },
}

/// Requests an `http` evaluator has in flight at once by default.
pub const DEFAULT_HTTP_CONCURRENCY: usize = 16;

impl EvaluatorConfig {
    /// How many evaluations may run at once (`None`: no limit, the synthetic evaluator only
    /// sleeps). The judge's timeout counts from its start, not from its wait for a turn.
    pub fn concurrency(&self) -> Option<usize> {
        match self {
            EvaluatorConfig::Synthetic { .. } => None,
            EvaluatorConfig::Command { max_concurrent, .. } => Some(
                max_concurrent
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)),
            ),
            EvaluatorConfig::Http { max_concurrent, .. } => Some(max_concurrent.unwrap_or(DEFAULT_HTTP_CONCURRENCY)),
        }
    }
}

fn default_timeout_ms() -> u64 {
    2_000
}

impl Default for EvaluatorConfig {
    fn default() -> Self {
        EvaluatorConfig::Synthetic { latency_ms: None, seed: 0 }
    }
}

/// `[transport]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Frames queued per peer; beyond, new frames are dropped (and counted).
    pub queue_frames: usize,
    /// First reconnect delay.
    pub backoff_min_ms: u64,
    /// Longest reconnect delay.
    pub backoff_max_ms: u64,
    /// Time allowed for a handshake.
    pub handshake_timeout_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig { queue_frames: 4_096, backoff_min_ms: 20, backoff_max_ms: 1_000, handshake_timeout_ms: 2_000 }
    }
}

/// `[storage]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// fsync the log before any message that depends on it leaves (off: survives a process
    /// crash, not a power loss).
    pub fsync: bool,
    /// The agent's log is compacted (a snapshot of the agent, then a new log) once it holds
    /// this many bytes; the opener's at a sixteenth of it.
    pub compact_log_bytes: u64,
    /// Decisions the API keeps serving (on disk; the most recent 256 also in memory); older
    /// ones answer 410.
    pub keep_decisions: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { fsync: true, compact_log_bytes: 16 << 20, keep_decisions: 10_000 }
    }
}

/// `[api]`: how long the client API waits for a request to arrive. A client that sends its
/// headers or body slower than this (a stalled or hostile one) is answered `408` or cut off,
/// so that it does not hold a connection and its buffers open indefinitely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// From the connection's first byte (or the previous response) to the end of the headers.
    pub header_timeout_ms: u64,
    /// From the end of the headers to the end of the body.
    pub body_timeout_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { header_timeout_ms: 5_000, body_timeout_ms: 10_000 }
    }
}

/// A configuration error at a place in a file.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line; 0 for the file as a whole.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Adds a hint on how to fix the commonest mistakes.
fn with_fix(message: &str) -> String {
    let first = message.trim().lines().next().unwrap_or_default().to_owned();
    let fix = if first.contains("unknown field") {
        "fix: remove the key or correct its spelling (the expected keys are listed above)"
    } else if first.contains("missing field") {
        "fix: add the key (init-cluster writes every required key)"
    } else if first.contains("unknown variant") {
        "fix: use one of the listed names"
    } else if first.contains("invalid socket address") {
        "fix: write an address as \"host:port\", e.g. \"127.0.0.1:7000\""
    } else {
        "fix: see docs/node.md, \"Configuration\""
    };
    format!("{}; {fix}", message.trim().replace('\n', " "))
}

impl NodeConfig {
    /// Parses the syntax of `text` (from `file`), reporting serde's first error at its position;
    /// [`crate::checks::parse`] also checks ids, keys, addresses and ranges.
    pub fn parse_syntax(file: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            ConfigError { file: file.to_path_buf(), line, column, message: with_fix(e.message()) }
        })
    }

    /// Reads a file's text.
    pub fn read(file: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })
    }

    /// Reads a file and parses its syntax only, keeping the text (to place later errors).
    pub fn load_unchecked(file: &Path) -> Result<(NodeConfig, String), ConfigError> {
        let text = NodeConfig::read(file)?;
        Ok((NodeConfig::parse_syntax(file, &text)?, text))
    }

    /// Values out of their range, each at its key.
    pub fn range_problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: &'static str, message: String| out.push(Problem { at: Field::Key(key), message });
        if self.client.opener == self.id && self.client.key_file.is_none() {
            bad(
                "opener",
                "this agent is the opener but [client] has no key_file; fix: add key_file = \"client.key\"".into(),
            );
        }
        if self.protocol.mutation != consensus_core::protocol::Mutation::None {
            bad("mutation", "mutations are for the simulator only; fix: remove protocol.mutation".into());
        }
        if self.protocol.pipeline == 0 {
            bad("pipeline", "pipeline must be at least 1; fix: set protocol.pipeline = 64".into());
        }
        let window = self.max_in_flight();
        if self.protocol.pipeline > 0 && (window == 0 || window as u64 > self.protocol.pipeline) {
            bad(
                "max_in_flight",
                format!(
                    "max_in_flight = {window} must be between 1 and protocol.pipeline = {}; fix: lower it or raise the pipeline",
                    self.protocol.pipeline
                ),
            );
        }
        if self.transport.queue_frames == 0 {
            bad("queue_frames", "queue_frames must be at least 1".into());
        }
        if self.storage.compact_log_bytes < 1 << 16 {
            bad("compact_log_bytes", "compact_log_bytes must be at least 65536; fix: raise it".into());
        }
        if self.storage.keep_decisions == 0 {
            bad("keep_decisions", "keep_decisions must be at least 1; fix: remove it for 10000".into());
        }
        if self.evaluator.concurrency() == Some(0) {
            bad("max_concurrent", "max_concurrent must be at least 1; fix: remove it for the default".into());
        }
        if self.client.max_queued == 0 {
            bad("max_queued", "max_queued must be at least 1; fix: remove it for 4096".into());
        }
        if self.api.header_timeout_ms == 0 {
            bad("header_timeout_ms", "header_timeout_ms must be at least 1; fix: remove it for 5000".into());
        }
        if self.api.body_timeout_ms == 0 {
            bad("body_timeout_ms", "body_timeout_ms must be at least 1; fix: remove it for 10000".into());
        }
        out
    }

    /// Resolves a path written in the file relative to the file's directory.
    pub fn resolve(base: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.parent().unwrap_or(Path::new(".")).join(path)
        }
    }

    /// The agent's id.
    pub fn agent(&self) -> AgentId {
        AgentId(self.id)
    }

    /// Every agent, ascending, with its specialisation.
    pub fn committee(&self) -> Vec<(AgentId, AgentSpecialization)> {
        let mut all: Vec<(AgentId, AgentSpecialization)> =
            self.peers.iter().map(|p| (AgentId(p.id), p.specialization)).collect();
        all.push((self.agent(), self.specialization));
        all.sort();
        all
    }
}

/// Position of the first line that assigns `key`, for errors serde cannot place.
pub(crate) fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')) {
            return (i + 1, line.len() - trimmed.len() + 1);
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admission_window_shrinks_with_the_square_of_the_committee() {
        let windows: Vec<(usize, usize)> =
            [1, 4, 5, 7, 10, 13, 16, 31, 64].iter().map(|&n| (n, admission_window(n))).collect();
        assert_eq!(windows, [(1, 16), (4, 16), (5, 16), (7, 16), (10, 16), (13, 12), (16, 8), (31, 2), (64, 1)]);
        assert_eq!((queue_for(16), queue_for(2), queue_for(1)), (4_096, 512, 256));
    }

    const MINIMAL: &str = r#"
id = 0
specialization = "retriever"
listen = "127.0.0.1:7000"
http = "127.0.0.1:8000"
key_file = "agent-0.key"
data_dir = "data"

[client]
public_key = "00"
key_file = "client.key"
opener = 0

[[peers]]
id = 1
specialization = "analyzer"
address = "127.0.0.1:7001"
http = "127.0.0.1:8001"
public_key = "00"
"#;

    /// MINIMAL with two distinct valid public keys in place of its "00"s.
    fn minimal() -> String {
        let public = |seed: u8| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            format!("\"{}\"", crate::keys::to_hex(key.verifying_key().as_bytes()))
        };
        MINIMAL.replacen("\"00\"", &public(1), 1).replacen("\"00\"", &public(2), 1)
    }

    #[test]
    fn minimal_file_takes_the_designs_defaults() {
        let c = NodeConfig::parse_syntax(Path::new("a.toml"), &minimal()).map_err(|e| e.to_string());
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.engine, EngineConfig::default());
        assert_eq!(c.protocol, ProtocolConfig::default());
        assert_eq!(c.committee().len(), 2);
    }

    #[test]
    fn errors_point_at_the_line_and_say_how_to_fix() {
        let bad = minimal().replace("opener = 0", "opener = 0\nopenr = 1");
        let e = NodeConfig::parse_syntax(Path::new("a.toml"), &bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("a.toml:13:1: unknown field `openr`"), "{e}");
        assert!(e.contains("fix:"), "{e}");
        let bad = minimal().replace("\"127.0.0.1:7000\"", "\"localhost\"");
        let e = NodeConfig::parse_syntax(Path::new("a.toml"), &bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("a.toml:4:10:"), "{e}");
    }
}
