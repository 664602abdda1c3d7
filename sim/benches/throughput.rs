//! Simulator throughput (issue: "a benchmark and your note, not a timed test").
//!
//! Measures, in one process: seeds, sessions and message deliveries per second of `bftsim` on
//! `scenarios/baseline.toml` with 1 and 2 worker threads, and a bare madsim loop in which 5
//! nodes only broadcast one vote each over madsim's own network (10% loss, 1–50 ms latency,
//! 500 ms of simulated waiting), the reference the simulator is compared with.
//!
//! `cargo bench -p sim --bench throughput [-- SEEDS]`

/// The allocator `bftsim` runs with (see `sim/src/main.rs`), so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(madsim))]
fn main() {
    eprintln!("build with --cfg madsim (the workspace's .cargo/config.toml does)");
}

#[cfg(madsim)]
fn main() {
    bench::main();
}

#[cfg(madsim)]
mod bench {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use madsim::net::Endpoint;
    use sim::exec::{execute, ExecOptions, Job};
    use sim::scenario;

    pub fn main() {
        let seeds: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2_000);
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/baseline.toml");
        let s = match scenario::load(&path) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("{e}");
                return;
            }
        };
        let jobs: Vec<Job> = (0..seeds)
            .map(|seed| Job { scenario: s.clone(), path: path.clone(), params: BTreeMap::new(), seed })
            .collect();
        let one = measure(&jobs, 1);
        let two = measure(&jobs, 2);
        let bare = bare_loop(seeds * 4);
        println!(
            "baseline.toml ({} agents, {} sessions per seed), {seeds} seeds:",
            s.agents.count, s.workload.sessions
        );
        println!(
            "  1 job : {:>8.0} seeds/s {:>9.0} sessions/s {:>11.0} deliveries/s",
            one.seeds_per_s, one.sessions_per_s, one.deliveries_per_s
        );
        println!(
            "  2 jobs: {:>8.0} seeds/s {:>9.0} sessions/s {:>11.0} deliveries/s   speed-up {:.2}x",
            two.seeds_per_s,
            two.sessions_per_s,
            two.deliveries_per_s,
            two.seeds_per_s / one.seeds_per_s
        );
        println!("bare madsim broadcast loop (5 nodes, one vote each), {} seeds, 1 thread:", seeds * 4);
        println!("        {:>8.0} seeds/s {:>20} {:>11.0} deliveries/s", bare.0, "", bare.1);
        println!(
            "bftsim deliveries per second per core vs the bare loop: {:.0}%",
            100.0 * one.deliveries_per_s / bare.1
        );
    }

    struct Rates {
        seeds_per_s: f64,
        sessions_per_s: f64,
        deliveries_per_s: f64,
    }

    fn measure(jobs: &[Job], threads: usize) -> Rates {
        let started = Instant::now();
        let mut sessions = 0;
        let mut deliveries = 0;
        execute(jobs, ExecOptions { jobs: threads, check_determinism: false }, |_, record| {
            sessions += record.counts.sessions;
            deliveries += record.messages.delivered;
        });
        let wall = started.elapsed().as_secs_f64();
        Rates {
            seeds_per_s: jobs.len() as f64 / wall,
            sessions_per_s: sessions as f64 / wall,
            deliveries_per_s: deliveries as f64 / wall,
        }
    }

    /// 5 nodes each send one 128-byte vote to every peer over madsim's network.
    fn bare_loop(seeds: u64) -> (f64, f64) {
        let delivered = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        for seed in 0..seeds {
            let mut config = madsim::Config::default();
            config.net.packet_loss_rate = 0.10;
            config.net.send_latency = Duration::from_millis(1)..Duration::from_millis(50);
            let rt = madsim::runtime::Runtime::with_seed_and_config(seed, config);
            let delivered = delivered.clone();
            rt.block_on(async move {
                let handle = madsim::runtime::Handle::current();
                let addrs: Vec<SocketAddr> = (0..5u8).map(|i| SocketAddr::from(([10, 0, 0, i + 1], 7000))).collect();
                let mut endpoints = Vec::new();
                for addr in &addrs {
                    let node = handle.create_node().ip(addr.ip()).build();
                    let addr = *addr;
                    let ep = node.spawn(async move { Endpoint::bind(addr).await }).await;
                    if let Ok(Ok(ep)) = ep {
                        endpoints.push((node, Arc::new(ep)));
                    }
                }
                for (i, (node, ep)) in endpoints.iter().enumerate() {
                    let (ep, addrs, delivered) = (ep.clone(), addrs.clone(), delivered.clone());
                    node.spawn(async move {
                        let vote = [i as u8; 128];
                        for (j, to) in addrs.iter().enumerate() {
                            if j != i {
                                let _ = ep.send_to(*to, 1, &vote).await;
                            }
                        }
                        let mut buf = [0u8; 256];
                        while let Ok(Ok(_)) =
                            madsim::time::timeout(Duration::from_millis(500), ep.recv_from(1, &mut buf)).await
                        {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                madsim::time::sleep(Duration::from_millis(600)).await;
            });
        }
        let wall = started.elapsed().as_secs_f64();
        (seeds as f64 / wall, delivered.load(Ordering::Relaxed) as f64 / wall)
    }
}
