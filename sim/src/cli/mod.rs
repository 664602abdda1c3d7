//! The `bftsim` subcommands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sim::scenario::{self, Scenario, ScenarioError};
use sim::summary::ScenarioSummary;

use out::outln;

mod audit;
mod check;
mod events;
mod explore;
mod list;
mod merge;
mod model;
mod out;
mod point;
mod report;
mod reproduce;
mod run;
mod schedule;
mod shrink;

/// Deterministic fault-injection simulator for consensus-core: runs seeded scenarios on madsim,
/// checks safety, liveness and validity invariants at every step, and replays any failure from
/// its seed.
#[derive(Parser)]
#[command(name = "bftsim", version, about)]
struct Cli {
    /// More logging (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (or directories of them) over many seeds.
    Run(run::RunArgs),
    /// Explore the fault space: generate scenarios from a master seed within an envelope (swarm,
    /// Twins, ByzzFuzz), run them, and shrink and write every distinct failure.
    Explore(explore::ExploreArgs),
    /// Minimize a failing (scenario, seed): a smaller scenario that still violates the same
    /// invariant at the same seed.
    Shrink(shrink::ShrinkArgs),
    /// Combine the output directories of `bftsim run --shard` (or of whole runs) into one.
    Merge(merge::MergeArgs),
    /// Write the report of a run's output directory: report.html, report.md and the figures.
    Report(report::ReportArgs),
    /// Check one session of the production agents exhaustively for a small committee: every
    /// delivery order, timeout and bounded Byzantine message, against the safety properties.
    Model(model::ModelArgs),
    /// Replay one run and print its events in simulated time, with filters, and a summary of
    /// each session's rounds and decisions.
    Reproduce(reproduce::ReproduceArgs),
    /// Validate scenario files and print each one's configuration audit.
    Check(check::CheckArgs),
    /// List the scenarios of a directory (default: the bundled scenarios/), one line each
    /// with its description.
    List(list::ListArgs),
    /// Audit a committee: quorum size, and whether the threshold keeps safety and liveness.
    Audit(audit::AuditArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run(args) => run::cmd_run(args),
        Command::Explore(args) => explore::cmd_explore(args),
        Command::Shrink(args) => shrink::cmd_shrink(args),
        Command::Merge(args) => merge::cmd_merge(args),
        Command::Report(args) => report::cmd_report_args(args),
        Command::Model(args) => model::cmd_model(args),
        Command::Reproduce(args) => reproduce::cmd_reproduce(args),
        Command::Check(args) => check::cmd_check(args),
        Command::List(args) => list::cmd_list(args),
        Command::Audit(args) => audit::cmd_audit(args),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Scenario(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(CliError::Io(message)) | Err(CliError::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// `--jobs`: at least 1; all cores when absent.
fn jobs(jobs: Option<usize>) -> Result<usize, CliError> {
    match jobs {
        Some(0) => Err(CliError::Usage("--jobs must be at least 1".into())),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

enum CliError {
    Usage(String),
    /// A file the user gave cannot be used.
    Input(String),
    Scenario(ScenarioError),
    Io(String),
}

impl From<ScenarioError> for CliError {
    fn from(e: ScenarioError) -> Self {
        CliError::Scenario(e)
    }
}

fn io(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> CliError {
    let context = format!("{context} {}", path.display());
    move |e| CliError::Io(format!("{context}: {e}"))
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn,madsim=error",
        1 => "info,madsim=error",
        _ => "debug",
    };
    // Without -v or RUST_LOG no subscriber is installed: madsim enters a tracing span for every
    // task poll, and an installed subscriber would cost several percent of every run.
    if verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_timer(SimTime).with_writer(std::io::stderr).try_init();
}

/// Log lines are stamped with simulated time inside a run.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match madsim::time::TimeHandle::try_current() {
            Some(t) => write!(w, "sim {:>8.3}s", t.elapsed().as_secs_f64()),
            None => write!(w, "{:>12}", "-"),
        }
    }
}

/// The bundled scenario directory: `scenarios/` in the working directory when there is one
/// (the repository root), else the one of the repository the binary was built from, so that
/// `bftsim list` and `bftsim run` work from any directory.
fn bundled_scenarios() -> PathBuf {
    let local = PathBuf::from("scenarios");
    if local.is_dir() {
        return local;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(|root| root.join("scenarios"));
    built.filter(|dir| dir.is_dir()).unwrap_or(local)
}

/// Sets the returned flag on Ctrl-C, SIGTERM or SIGHUP (`ctrlc`'s `termination` feature), so
/// a command stops scheduling runs and writes what it has; a second signal exits at once with
/// 130. If no handler can be installed (one already is), the flag is never set.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(run::INTERRUPTED));
        }
        eprintln!("\nstopping: no new runs start; the runs in flight finish (again to quit at once)");
    });
    if let Err(e) = installed {
        tracing::warn!("cannot handle Ctrl-C: {e}");
    }
    stop
}

/// A scenario file, one sweep point's parameters, and the scenario at that point.
type Point = (PathBuf, BTreeMap<String, String>, Arc<Scenario>);

/// Loads every scenario under `paths` and expands sweeps into jobs.
fn load_points(paths: &[PathBuf]) -> Result<Vec<Point>, CliError> {
    let paths = if paths.is_empty() { vec![bundled_scenarios()] } else { paths.to_vec() };
    let files = scenario::discover(&paths)?;
    if files.is_empty() {
        return Err(CliError::Usage(format!("no scenario files under {paths:?}")));
    }
    let mut points = Vec::new();
    for file in files {
        let scenario = scenario::load(&file)?;
        for (labels, point) in scenario.expand()? {
            points.push((file.clone(), labels.into_iter().collect(), Arc::new(point)));
        }
    }
    Ok(points)
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet || total < 50 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {per_sec}  eta {eta}") {
        bar.set_style(style);
    }
    bar
}

/// A line above the progress bar, or on stderr when the bar is hidden (`--quiet` filters
/// before calling; a hidden bar's `println` would drop the line).
fn bar_line(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn print_table(summaries: &[ScenarioSummary]) {
    let width = ScenarioSummary::name_width(summaries);
    outln!("{}", ScenarioSummary::table_header(width));
    for s in summaries {
        outln!("{}", s.table_row(width));
    }
    for s in summaries {
        let unexpected = s.expect_safety && !s.failures.is_empty();
        if unexpected {
            outln!("\n{}: {} failing seed(s); reproduce with:", s.scenario, s.violations.values().sum::<u64>());
            for f in &s.failures {
                outln!("  {}    # {} at step {}, {} ms", f.reproduce, f.invariant, f.step, f.time_ms);
            }
        } else if !s.expect_safety {
            if let Some(f) = s.failures.first() {
                outln!(
                    "\n{}: found {} (as expected) first at seed {}: {}",
                    s.scenario,
                    f.invariant,
                    f.seed,
                    f.reproduce
                );
            } else {
                outln!(
                    "\n{}: expected a {} violation but found none",
                    s.scenario,
                    s.expect_invariant.as_deref().unwrap_or("safety")
                );
            }
        }
    }
}
