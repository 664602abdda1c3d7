//! `bftsim-cluster`: runs scenario files against real `bftsim-node` processes (see lib.rs and
//! docs/cluster.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cluster::procs::find_node_binary;
use cluster::run::{append_record, run, Options};
use cluster::setup::unsupported;
use reports::model::RunOutcome;
use sim::scenario::{discover, load};

#[derive(Parser)]
#[command(name = "bftsim-cluster", about = "Run scenario files against real bftsim-node processes on 127.0.0.1")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs scenarios (files or directories) against real clusters, one at a time.
    Run {
        /// Scenario files or directories (scenarios/ when omitted). In a directory, scenarios
        /// that cannot run for real are skipped with the reason; a named file that cannot is an
        /// error.
        paths: Vec<PathBuf>,
        /// Seeds the proxy's drops, duplicates and latencies (real runs are not deterministic:
        /// the seed fixes only the network's draws).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where `runs.jsonl` is appended and each cluster's files go (`clusters/`).
        #[arg(long, default_value = "cluster-results")]
        out: PathBuf,
        /// The bftsim-node binary (default: next to this executable, or $BFTSIM_NODE).
        #[arg(long)]
        node_bin: Option<PathBuf>,
        /// Keep each cluster's files (configurations, data, node output) after a passing run.
        #[arg(long)]
        keep: bool,
    },
    /// Lists scenarios and whether each can run against real processes (and why not).
    List {
        /// Scenario files or directories (scenarios/ when omitted).
        paths: Vec<PathBuf>,
    },
}

fn scenario_paths(paths: Vec<PathBuf>) -> anyhow::Result<(Vec<PathBuf>, bool)> {
    let explicit = !paths.is_empty() && paths.iter().all(|p| p.is_file());
    let paths = if paths.is_empty() { vec![PathBuf::from("scenarios")] } else { paths };
    Ok((discover(&paths)?, explicit))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::List { paths } => {
            for path in scenario_paths(paths)?.0 {
                let s = load(&path)?;
                match unsupported(&s) {
                    None => println!("{:<32} real", s.name),
                    Some(why) => println!("{:<32} simulator only: {why}", s.name),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { paths, seed, out, node_bin, keep } => {
            let node_bin = find_node_binary(node_bin.as_deref()).map_err(anyhow::Error::msg)?;
            let (paths, explicit) = scenario_paths(paths)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let opts = Options { node_bin, dir: out.join("clusters"), seed };
            let mut failed = 0;
            for path in paths {
                let s = load(&path)?;
                if let Some(why) = unsupported(&s) {
                    if explicit {
                        anyhow::bail!("{}: cannot run against real processes: {why}", path.display());
                    }
                    println!("{:<32} skipped: {why}", s.name);
                    continue;
                }
                // Ctrl-C ends the run; dropping it kills the nodes.
                let outcome = runtime.block_on(async {
                    tokio::select! {
                        r = run(&s, &opts) => Some(r),
                        _ = tokio::signal::ctrl_c() => None,
                    }
                });
                let Some(outcome) = outcome else {
                    eprintln!("interrupted");
                    return Ok(ExitCode::from(130));
                };
                let outcome = outcome?;
                let r = &outcome.record;
                append_record(&out, r)?;
                match r.violations.first() {
                    None => {
                        println!(
                            "{:<32} ok: {}/{} decided, p50 {} ms, p99 {} ms, {} ms, {} frames ({} lost)",
                            r.scenario,
                            r.counts.decided,
                            r.counts.sessions,
                            r.latency_ms.p50,
                            r.latency_ms.p99,
                            r.sim_time_ms,
                            r.messages.sent,
                            r.messages.dropped
                        );
                        if !keep {
                            let _ = std::fs::remove_dir_all(&outcome.dir);
                        }
                    }
                    Some(v) => {
                        failed += 1;
                        println!("{:<32} VIOLATION {} at {} ms: {}", r.scenario, v.invariant, v.time_ms, v.detail);
                    }
                }
                debug_assert!(r.outcome == RunOutcome::Ok || !r.violations.is_empty());
            }
            println!("records appended to {}", out.join("runs.jsonl").display());
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
