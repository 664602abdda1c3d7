//! Real clusters of `bftsim-node` processes on 127.0.0.1, killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use consensus_core::protocol::Commit;
use consensus_core::sign::Ed25519Keyring;
use consensus_core::AgentId;
use node::cluster::{init_cluster, ClusterSpec};
use node::config::NodeConfig;
use node::http_client;
use serde_json::Value;

/// One cluster at a time: each is 5 processes, and the machine has 2 cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serialises cluster tests.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// Free ports: bind port 0, remember, release.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"))).collect();
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// A running agent process; killed (SIGKILL) on drop.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    /// Waits up to `timeout` for it to exit on its own; its status, or `None` if it still runs.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it at once (kill -9).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster's files and processes.
pub struct Cluster {
    /// Its directory.
    pub dir: PathBuf,
    /// Config file per agent.
    pub configs: Vec<PathBuf>,
    /// HTTP base URL per agent.
    pub urls: Vec<String>,
    /// Processes per agent.
    pub procs: Vec<Proc>,
    byzantine: Vec<(usize, String)>,
}

impl Cluster {
    /// Writes a cluster of `n` agents with an almost instant synthetic evaluator and starts it;
    /// `byzantine` runs agent i with a strategy.
    pub fn start(name: &str, n: usize, byzantine: &[(usize, &str)]) -> Cluster {
        let instant = "[evaluator]\nkind = \"synthetic\"\nlatency_ms = [0, 2]\n";
        Cluster::start_with(name, n, byzantine, instant, &[])
    }

    /// A cluster with an almost instant evaluator whose every configuration file has `from`
    /// replaced by `to`.
    pub fn start_replacing(name: &str, n: usize, from: &str, to: &str) -> Cluster {
        let instant = "[evaluator]\nkind = \"synthetic\"\nlatency_ms = [0, 2]\n";
        Cluster::start_edited(name, n, &[], instant, &|_, text| text.replace(from, to))
    }

    /// A cluster with an almost instant evaluator whose every configuration file is
    /// `edit(written)`.
    pub fn start_edited_text(name: &str, n: usize, edit: &dyn Fn(&str) -> String) -> Cluster {
        let instant = "[evaluator]\nkind = \"synthetic\"\nlatency_ms = [0, 2]\n";
        Cluster::start_edited(name, n, &[], instant, &|_, text| edit(text))
    }

    /// A cluster whose agents use the `[evaluator]` table `evaluator`, except those listed in
    /// `overrides`.
    pub fn start_with(
        name: &str,
        n: usize,
        byzantine: &[(usize, &str)],
        evaluator: &str,
        overrides: &[(usize, String)],
    ) -> Cluster {
        Cluster::start_edited(name, n, byzantine, evaluator, &|i, text| match overrides.iter().find(|(j, _)| *j == i) {
            Some((_, table)) => text.replace(evaluator, table),
            None => text.to_owned(),
        })
    }

    /// A cluster whose configuration file of agent i is `edit(i, written)`.
    fn start_edited(
        name: &str,
        n: usize,
        byzantine: &[(usize, &str)],
        evaluator: &str,
        edit: &dyn Fn(usize, &str) -> String,
    ) -> Cluster {
        let dir = std::env::temp_dir().join(format!("bftsim-node-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ports = free_ports(2 * n);
        let pairs: Vec<(u16, u16)> = (0..n).map(|i| (ports[i], ports[n + i])).collect();
        let spec = ClusterSpec {
            agents: n as u32,
            base_port: 0,
            host: "127.0.0.1".into(),
            out: dir.clone(),
            evaluator: Some(evaluator.to_owned()),
            ports: Some(pairs.clone()),
        };
        let configs = init_cluster(&spec).unwrap_or_else(|e| panic!("init-cluster: {e}"));
        for (i, path) in configs.iter().enumerate() {
            let text = edit(i, &std::fs::read_to_string(path).unwrap_or_default());
            std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        }
        let urls = pairs.iter().map(|(_, http)| format!("http://127.0.0.1:{http}")).collect();
        let byzantine = byzantine.iter().map(|(i, s)| (*i, (*s).to_owned())).collect();
        let mut cluster = Cluster { dir, configs, urls, procs: Vec::new(), byzantine };
        for i in 0..n {
            let p = cluster.spawn(i);
            cluster.procs.push(p);
        }
        cluster
    }

    fn spawn(&self, i: usize) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("agent-{i}.log")))
            .unwrap_or_else(|e| panic!("log: {e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bftsim-node"));
        cmd.arg("run").arg("--config").arg(&self.configs[i]);
        if let Some((_, strategy)) = self.byzantine.iter().find(|(j, _)| *j == i) {
            cmd.arg("--byzantine").arg(strategy);
        }
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = cmd.stdin(Stdio::null()).stdout(log).stderr(err).spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
        Proc { child: Some(child) }
    }

    /// Restarts agent `i` (after [`Proc::kill`]).
    pub fn restart(&mut self, i: usize) {
        self.procs[i].kill();
        self.procs[i] = self.spawn(i);
    }

    /// Waits until every listed agent answers `/healthz`.
    pub async fn wait_healthy(&self, agents: &[usize]) {
        for &i in agents {
            let url = format!("{}/healthz", self.urls[i]);
            let mut tries = 0;
            loop {
                match http_client::request("GET", &url, None, Duration::from_secs(1)).await {
                    Ok(r) if r.status == 200 => break,
                    _ => {
                        tries += 1;
                        assert!(tries < 200, "agent {i} never became healthy; see {}", self.dir.display());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    /// Agent `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join("data").join(format!("agent-{i}"))
    }

    /// Agent `i`'s `/healthz`: status and body.
    pub async fn healthz(&self, i: usize) -> Option<(u16, Value)> {
        let url = format!("{}/healthz", self.urls[i]);
        let r = http_client::request("GET", &url, None, Duration::from_secs(2)).await.ok()?;
        Some((r.status, serde_json::from_slice(&r.body).ok()?))
    }

    /// The agent's log, for failure messages.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("agent-{i}.log"))).unwrap_or_default()
    }

    /// Every public key, and the committee.
    pub fn keyring(&self) -> (Ed25519Keyring, Vec<AgentId>) {
        let mut keys = Vec::new();
        let mut members = Vec::new();
        for (i, path) in self.configs.iter().enumerate() {
            let c = node::checks::load(path).unwrap_or_else(|e| panic!("{e}"));
            let secret =
                node::keys::read_secret(&NodeConfig::resolve(path, &c.key_file)).unwrap_or_else(|e| panic!("{e}"));
            keys.push((AgentId(i as u32), secret.verifying_key()));
            members.push(AgentId(i as u32));
            if i == 0 {
                let client = node::keys::parse_public(&c.client.public_key, "client").unwrap_or_else(|e| panic!("{e}"));
                keys.push((AgentId::CLIENT, client));
            }
        }
        (node::keys::keyring(keys), members)
    }

    /// Opens a session through agent `via`; returns its id.
    pub async fn open(&self, via: usize, query: &str) -> u64 {
        open_at(self.urls[via].clone(), query.to_owned()).await
    }

    /// Agent `i`'s decision of `session`, waiting up to `wait_ms`; `None` while pending.
    pub async fn decision(&self, i: usize, session: u64, wait_ms: u64) -> Option<Value> {
        let deadline = std::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            // The API waits at most MAX_WAIT_MS per request: ask again while pending.
            let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis() as u64;
            let wait = left.min(node::api::MAX_WAIT_MS);
            let url = format!("{}/v1/sessions/{session}?wait_ms={wait}", self.urls[i]);
            let r = http_client::request("GET", &url, None, Duration::from_millis(wait + 5_000)).await.ok();
            match r {
                Some(r) if r.status == 200 => return serde_json::from_slice(&r.body).ok(),
                _ if left == 0 => return None,
                Some(r) if r.status == 202 => {}
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Agent `i`'s decision of `session`, or a panic with its log after `wait_ms`.
    pub async fn must_decide(&self, i: usize, session: u64, wait_ms: u64) -> Value {
        match self.decision(i, session, wait_ms).await {
            Some(v) => v,
            None => {
                let url = format!("{}/metrics", self.urls[i]);
                let metrics = http_client::request("GET", &url, None, Duration::from_secs(5))
                    .await
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .unwrap_or_default();
                let metrics: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#')).collect();
                let mut states = Vec::new();
                for (j, base) in self.urls.iter().enumerate() {
                    let url = format!("{base}/v1/sessions/{session}");
                    let state = http_client::request("GET", &url, None, Duration::from_secs(5))
                        .await
                        .map(|r| String::from_utf8_lossy(&r.body).chars().take(160).collect::<String>())
                        .unwrap_or_else(|e| e.to_string());
                    states.push(format!("agent {j}: {state}"));
                }
                eprintln!("session {session} everywhere:\n{}", states.join("\n"));
                panic!(
                    "agent {i} did not decide session {session} in {wait_ms} ms; log:\n{}\nmetrics:\n{}",
                    self.log(i),
                    metrics.join("\n")
                )
            }
        }
    }

    /// The sum of a metric's samples at agent `i` whose line contains `filter`.
    pub async fn metric(&self, i: usize, name: &str, filter: &str) -> f64 {
        let url = format!("{}/metrics", self.urls[i]);
        let r = http_client::request("GET", &url, None, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("metrics of {i}: {e}"));
        let text = String::from_utf8_lossy(&r.body).into_owned();
        text.lines()
            .filter(|l| {
                !l.starts_with('#') && (l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            })
            .filter(|l| l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            p.kill();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The part of a decision every agent must agree on.
pub fn agreed_part(decision: &Value) -> Value {
    let value_id = decision["certificate"]["precommits"][0]["value"].clone();
    serde_json::json!({
        "outcome": decision["outcome"],
        "chosen": decision["chosen"],
        "method": decision["method"],
        "agreement": decision["agreement"],
        "participating": decision["participating"],
        "flagged": decision["flagged"],
        "value": value_id,
    })
}

/// Verifies the certificate of a decision.
pub fn verify(decision: &Value, keyring: &Ed25519Keyring, members: &[AgentId]) {
    let commit: Commit = serde_json::from_value(decision["certificate"].clone())
        .unwrap_or_else(|e| panic!("certificate of {}: {e}", decision["session"]));
    node::verify::verify_certificate(&commit, keyring, members)
        .unwrap_or_else(|e| panic!("certificate of session {}: {e}", decision["session"]));
}

/// Opens a session through the agent at `base` (its HTTP URL); returns its id.
pub async fn open_at(base: String, query: String) -> u64 {
    let body = serde_json::json!({ "query": query, "candidates": ["alpha", "beta", "gamma"] }).to_string();
    let url = format!("{base}/v1/sessions");
    let r = http_client::request("POST", &url, Some(body.as_bytes()), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert_eq!(r.status, 201, "POST {url}: {}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}"));
    v["session"].as_u64().unwrap_or_else(|| panic!("no session in {v}"))
}

/// Opens `count` sessions at once, spread over `urls`; returns their ids.
pub async fn open_concurrently(urls: &[String], count: usize, tag: &str) -> Vec<u64> {
    let mut set = tokio::task::JoinSet::new();
    for k in 0..count {
        set.spawn(open_at(urls[k % urls.len()].clone(), format!("{tag} question {k}")));
    }
    let mut ids = Vec::new();
    while let Some(id) = set.join_next().await {
        ids.push(id.unwrap_or_else(|e| panic!("open task: {e}")));
    }
    ids.sort_unstable();
    ids
}
