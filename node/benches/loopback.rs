//! Decision latency and throughput of real `bftsim-node` clusters on loopback, with an instant
//! synthetic evaluator: `cargo bench -p node --bench loopback`.
//!
//! For each committee size it starts one process per agent, then
//! 1. latency: opens sessions one after another and reads each decision's latency as the
//!    opener's agent measured it (`decided_ms - opened_ms`) and as the client saw it (POST to
//!    decision), reporting p50 / p99;
//! 2. throughput: submits a burst of sessions and times until the opener has decided them all.
//!
//! Environment: `BENCH_AGENTS` (default "5,31"), `BENCH_SEQUENTIAL` (default 200),
//! `BENCH_BURST` (default 500), `BENCH_FSYNC` (default 1), `BENCH_IN_FLIGHT` (the opener's
//! `max_in_flight`, default 16).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::cluster::{init_cluster, ClusterSpec};
use node::http_client;
use serde_json::Value;

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn post(base: &str, k: usize) -> u64 {
    let body = format!(r#"{{"query":"bench {k}","candidates":["a","b","c"]}}"#);
    let r =
        http_client::request("POST", &format!("{base}/v1/sessions"), Some(body.as_bytes()), Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("POST: {e}"));
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}"));
    v["session"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

async fn decision(base: &str, s: u64, wait_ms: u64) -> Option<Value> {
    let deadline = std::time::Instant::now() + Duration::from_millis(wait_ms);
    loop {
        // The API waits at most MAX_WAIT_MS per request: ask again while pending.
        let left = deadline.saturating_duration_since(std::time::Instant::now()).as_millis() as u64;
        let wait = left.min(node::api::MAX_WAIT_MS);
        let url = format!("{base}/v1/sessions/{s}?wait_ms={wait}");
        let r = http_client::request("GET", &url, None, Duration::from_millis(wait + 10_000)).await.ok()?;
        if r.status == 200 {
            return serde_json::from_slice(&r.body).ok();
        }
        if left == 0 || r.status != 202 {
            return None;
        }
    }
}

async fn bench(n: usize, sequential: usize, burst: usize, fsync: bool, in_flight: usize) {
    let dir = std::env::temp_dir().join(format!("bftsim-node-bench-{n}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let listeners: Vec<TcpListener> =
        (0..2 * n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"))).collect();
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0)).collect();
    drop(listeners);
    let pairs: Vec<(u16, u16)> = (0..n).map(|i| (ports[i], ports[n + i])).collect();
    let spec = ClusterSpec {
        agents: n as u32,
        base_port: 0,
        host: "127.0.0.1".into(),
        out: dir.clone(),
        evaluator: Some("[evaluator]\nkind = \"synthetic\"\nlatency_ms = [0, 0]\n".into()),
        ports: Some(pairs.clone()),
    };
    let configs = init_cluster(&spec).unwrap_or_else(|e| panic!("{e}"));
    let mut procs = Procs(Vec::new());
    for path in &configs {
        let mut text = std::fs::read_to_string(path).unwrap_or_default();
        if !fsync {
            text = text.replace("fsync = true", "fsync = false");
        }
        text = text.replace("max_in_flight = 16", &format!("max_in_flight = {in_flight}"));
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(env!("CARGO_BIN_EXE_bftsim-node"))
            .arg("run")
            .arg("--config")
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        procs.0.push(child);
    }
    let opener = format!("http://127.0.0.1:{}", pairs[0].1);
    for _ in 0..200 {
        if http_client::request("GET", &format!("{opener}/healthz"), None, Duration::from_secs(1)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // connections up
                                                          // Warm up.
    for k in 0..5 {
        let s = post(&opener, k).await;
        let _ = decision(&opener, s, 10_000).await;
    }
    let mut agent_ms = Vec::new();
    let mut client_ms = Vec::new();
    for k in 0..sequential {
        let start = Instant::now();
        let s = post(&opener, k).await;
        let Some(d) = decision(&opener, s, 10_000).await else { continue };
        client_ms.push(start.elapsed().as_millis() as u64);
        agent_ms.push(d["latency_ms"].as_u64().unwrap_or(0));
    }
    agent_ms.sort_unstable();
    client_ms.sort_unstable();
    println!(
        "n={n} fsync={fsync} sequential {}: decision latency at the opener p50 {} ms p99 {} ms max {} ms; \
         client round trip (POST to decision) p50 {} ms p99 {} ms",
        agent_ms.len(),
        percentile(&agent_ms, 0.5),
        percentile(&agent_ms, 0.99),
        agent_ms.last().copied().unwrap_or(0),
        percentile(&client_ms, 0.5),
        percentile(&client_ms, 0.99),
    );
    let start = Instant::now();
    let mut ids = Vec::new();
    for k in 0..burst {
        ids.push(post(&opener, k).await);
    }
    let mut burst_ms = Vec::new();
    for &s in &ids {
        if let Some(d) = decision(&opener, s, 60_000).await {
            burst_ms.push(d["latency_ms"].as_u64().unwrap_or(0));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    burst_ms.sort_unstable();
    println!(
        "n={n} fsync={fsync} burst {burst} ({in_flight} in flight): {} decided in {elapsed:.2} s = {:.0} sessions/s; \
         latency p50 {} ms p99 {} ms",
        burst_ms.len(),
        burst_ms.len() as f64 / elapsed,
        percentile(&burst_ms, 0.5),
        percentile(&burst_ms, 0.99),
    );
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run only under bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let agents: Vec<usize> = env("BENCH_AGENTS", "5,31").split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let sequential: usize = env("BENCH_SEQUENTIAL", "200").parse().unwrap_or(200);
    let burst: usize = env("BENCH_BURST", "500").parse().unwrap_or(500);
    let fsync = env("BENCH_FSYNC", "1") != "0";
    let in_flight: usize = env("BENCH_IN_FLIGHT", "16").parse().unwrap_or(16);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let runtime = runtime.unwrap_or_else(|e| panic!("{e}"));
    for n in agents {
        runtime.block_on(bench(n, sequential, burst, fsync, in_flight));
    }
}
