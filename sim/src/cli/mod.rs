//! The `bftsim` subcommands.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use consensus_core::quorum::{audit, AuditInput};
use consensus_core::{AgentSpecialization, Ratio};
use indicatif::{ProgressBar, ProgressStyle};
use sim::exec::{execute, ExecOptions, Job};
use sim::merge::{Shard, SummaryFile};
use sim::results::RunOutcome;
use sim::run::{run, RunOptions};
use sim::scenario::{self, Scenario, ScenarioError, SweepLabels};
use sim::shrink::{self, ShrinkOptions};
use sim::summary::{ScenarioSummary, Summary};

mod explore;

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
    Run {
        /// Scenario files or directories (default: scenarios/).
        paths: Vec<PathBuf>,
        /// Seeds per scenario (and per sweep point).
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        seed_start: u64,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Output directory for runs.jsonl and summary.json.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Run every seed twice and compare trace hashes.
        #[arg(long)]
        check_determinism: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Run only shard I of N: the jobs whose index in the job list is I modulo N (combine
        /// the shards' outputs with `bftsim merge`).
        #[arg(long, value_name = "I/N")]
        shard: Option<Shard>,
        /// Write the report (report.html, report.md, figures) into the output directory after
        /// the run.
        #[arg(long)]
        report: bool,
    },
    /// Explore the fault space: generate scenarios from a master seed within an envelope (swarm,
    /// Twins, ByzzFuzz), run them, and shrink and write every distinct failure.
    Explore(explore::ExploreArgs),
    /// Minimize a failing (scenario, seed): a smaller scenario that still violates the same
    /// invariant at the same seed.
    Shrink {
        /// The scenario file.
        scenario: PathBuf,
        /// The failing seed (kept fixed).
        #[arg(long)]
        seed: u64,
        /// Sweep point: `key=value` (repeat for each axis).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Where to write the minimized scenario (default: out/<stem>-seed<S>.min.toml).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Most simulator runs to spend.
        #[arg(long, default_value_t = shrink::DEFAULT_MAX_RUNS)]
        max_runs: usize,
    },
    /// Combine the output directories of `bftsim run --shard` (or of whole runs) into one.
    Merge {
        /// The directories to merge.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The output directory (runs.jsonl and summary.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the report of a run's output directory: report.html, report.md and the figures.
    Report {
        /// A `bftsim run` or `bftsim merge` output directory.
        dir: PathBuf,
        /// Where to write the report (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The report's title.
        #[arg(long)]
        title: Option<String>,
    },
    /// Replay one run and print its events in simulated time.
    Reproduce {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Sweep point: `key=value` (repeat for each axis).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Write the events as JSON lines to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print at most this many events (the violation is always printed).
        #[arg(long, default_value_t = 400)]
        limit: usize,
    },
    /// Validate scenario files and print each one's configuration audit.
    Check {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the bundled scenarios.
    List {
        /// Directory (default: scenarios/).
        #[arg(long, default_value = "scenarios")]
        dir: PathBuf,
    },
    /// Audit a committee: quorum size, and whether the threshold keeps safety and liveness.
    Audit {
        /// Agents in the committee.
        #[arg(long, default_value_t = 5)]
        agents: u32,
        /// Agreement threshold in (0, 1].
        #[arg(long, default_value_t = 0.66)]
        threshold: f64,
        /// Byzantine agents to tolerate (default: (n − 1) / 3).
        #[arg(long)]
        byzantine: Option<u64>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Run { paths, seeds, seed_start, jobs, out, check_determinism, quiet, shard, report } => {
            self::jobs(jobs)
                .and_then(|jobs| {
                    let options = RunCommand { seeds, seed_start, jobs, check_determinism, quiet, shard };
                    cmd_run(&paths, &options, &out)
                })
                .and_then(|code| {
                    if report {
                        cmd_report(&out, &out, None)?;
                    }
                    Ok(code)
                })
        }
        Command::Explore(args) => explore::cmd_explore(args),
        Command::Shrink { scenario, seed, set, out, max_runs } => cmd_shrink(&scenario, seed, &set, out, max_runs),
        Command::Merge { dirs, out } => cmd_merge(&dirs, &out),
        Command::Report { dir, out, title } => {
            let out = out.unwrap_or_else(|| dir.clone());
            cmd_report(&dir, &out, title).map(|()| ExitCode::SUCCESS)
        }
        Command::Reproduce { scenario, seed, set, trace, limit } => cmd_reproduce(&scenario, seed, &set, trace, limit),
        Command::Check { paths } => cmd_check(&paths),
        Command::List { dir } => cmd_list(&dir),
        Command::Audit { agents, threshold, byzantine } => cmd_audit(agents, threshold, byzantine),
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

/// A scenario file, one sweep point's parameters, and the scenario at that point.
type Point = (PathBuf, BTreeMap<String, String>, Arc<Scenario>);

/// Loads every scenario under `paths` and expands sweeps into jobs.
fn load_points(paths: &[PathBuf]) -> Result<Vec<Point>, CliError> {
    let paths = if paths.is_empty() { vec![PathBuf::from("scenarios")] } else { paths.to_vec() };
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

/// The options of `bftsim run` besides the paths and the output directory.
struct RunCommand {
    seeds: u64,
    seed_start: u64,
    jobs: usize,
    check_determinism: bool,
    quiet: bool,
    shard: Option<Shard>,
}

fn cmd_run(paths: &[PathBuf], options: &RunCommand, out: &Path) -> Result<ExitCode, CliError> {
    let RunCommand { seeds, seed_start, jobs, check_determinism, quiet, shard } = *options;
    if seeds == 0 {
        return Err(CliError::Usage("--seeds must be at least 1".into()));
    }
    let points = load_points(paths)?;
    fs::create_dir_all(out).map_err(io("cannot create", out))?;
    let runs_path = out.join("runs.jsonl");
    let mut runs = BufWriter::new(File::create(&runs_path).map_err(io("cannot create", &runs_path))?);
    let mut summaries: Vec<ScenarioSummary> = points
        .iter()
        .map(|(path, params, s)| {
            let path = path.display().to_string();
            ScenarioSummary::new(s.name.clone(), path, params.clone(), s.expect.safety, s.expect.invariant.clone())
                .with_settings(sim::summary::settings(s))
        })
        .collect();
    let mut index = BTreeMap::new();
    let mut job_list = Vec::new();
    for (i, (path, params, scenario)) in points.iter().enumerate() {
        index.insert(scenario.name.clone(), i);
        for seed in seed_start..seed_start.saturating_add(seeds) {
            job_list.push(Job { scenario: scenario.clone(), path: path.clone(), params: params.clone(), seed });
        }
    }
    if let Some(shard) = shard {
        // The job list depends only on the arguments, so the shards of one command are
        // disjoint and cover it.
        job_list = job_list.into_iter().enumerate().filter(|(i, _)| shard.contains(*i)).map(|(_, job)| job).collect();
        if !quiet {
            println!("shard {shard}: {} job(s) of this run", job_list.len());
        }
    }
    let bar = progress(job_list.len() as u64, quiet);
    let mut write_error = None;
    execute(&job_list, ExecOptions { jobs, check_determinism }, |job, record| {
        if let Ok(line) = serde_json::to_string(&record) {
            // One line per run, flushed at once: an interrupted sweep keeps every finished run.
            if let Err(e) = writeln!(runs, "{line}").and_then(|()| runs.flush()) {
                write_error = Some(e);
            }
        }
        if let Some(summary) = index.get(&job.scenario.name).and_then(|i| summaries.get_mut(*i)) {
            summary.add(&record, || job.reproduce_command());
        }
        if record.outcome != RunOutcome::Ok && !quiet {
            bar.println(format!(
                "{} seed {}: {:?}",
                job.scenario.name,
                job.seed,
                record.violations.first().map(|v| &v.invariant)
            ));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(CliError::Io(format!("writing {}: {e}", runs_path.display())));
    }
    for s in &mut summaries {
        s.finish();
    }
    print_table(&summaries);
    let passed = summaries.iter().all(|s| s.passed);
    let summary = Summary { seeds, seed_start, runs: job_list.len() as u64, passed, scenarios: summaries };
    let summary_path = out.join("summary.json");
    let file = SummaryFile { summary, shard, merged_from: Vec::new() };
    let json = serde_json::to_string_pretty(&file).map_err(|e| CliError::Io(e.to_string()))?;
    fs::write(&summary_path, json).map_err(io("cannot write", &summary_path))?;
    println!("\nwrote {} and {}", runs_path.display(), summary_path.display());
    if let Some(shard) = shard {
        // A shard cannot judge an [expect]: the seed a mutation scenario must fail at may be in
        // another shard. Its exit code says only that its runs are written; merge gives the verdict.
        println!(
            "shard {shard}: the verdicts above cover this shard only; `bftsim merge` the shards for the run's verdict"
        );
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn cmd_merge(dirs: &[PathBuf], out: &Path) -> Result<ExitCode, CliError> {
    if dirs.first().is_some_and(|d| sim::explore::merge::is_exploration(d)) {
        return explore::cmd_merge(dirs, out);
    }
    let merged = sim::merge::merge(dirs, out).map_err(|e| CliError::Io(e.to_string()))?;
    print_table(&merged.summary.scenarios);
    println!(
        "\nmerged {} run(s) from {} director{} into {} and {}",
        merged.summary.runs,
        dirs.len(),
        if dirs.len() == 1 { "y" } else { "ies" },
        merged.runs_path.display(),
        merged.summary_path.display()
    );
    Ok(if merged.summary.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn cmd_report(dir: &Path, out: &Path, title: Option<String>) -> Result<(), CliError> {
    let mut options = reports::ReportOptions::default();
    if let Some(title) = title {
        options.title = title;
    }
    let output = reports::generate(dir, out, &options).map_err(|e| {
        CliError::Io(format!("cannot write the report of {} into {}: {e}", dir.display(), out.display()))
    })?;
    println!("\nwrote {}", output.html.display());
    println!("wrote {}", output.markdown.display());
    const LISTED: usize = 12;
    if output.figures.len() <= LISTED {
        for figure in &output.figures {
            println!("wrote {}", figure.display());
        }
    } else {
        let parent = output.figures.first().and_then(|f| f.parent()).unwrap_or(out);
        println!("wrote {} figures (SVG and PNG) under {}", output.figures.len(), parent.display());
    }
    Ok(())
}

fn cmd_shrink(
    path: &Path,
    seed: u64,
    set: &[String],
    out: Option<PathBuf>,
    max_runs: usize,
) -> Result<ExitCode, CliError> {
    let (labels, point) = sweep_point(path, set)?;
    let stem = path.file_stem().map_or_else(|| "scenario".to_owned(), |s| s.to_string_lossy().into_owned());
    let out = out.unwrap_or_else(|| PathBuf::from("out").join(format!("{stem}-seed{seed}.min.toml")));
    println!("shrinking {} at seed {seed} (at most {max_runs} runs)", point.name);
    let shrunk = shrink::shrink(
        &point,
        ShrinkOptions { max_runs },
        |candidate| shrink::violation_at(candidate, seed),
        |step| println!("  size {:>4}  after {:>3} runs: {}", step.size, step.runs, step.change),
    )
    .map_err(|e| CliError::Usage(format!("{} at seed {seed}: {e}", path.display())))?;
    let text = shrink::render(&shrunk, path, &labels, seed, &out);
    // Check the file as it will be read back before writing it.
    let written = scenario::parse(&text, &out)?;
    match shrink::violation_at(&written, seed) {
        Some(invariant) if invariant == shrunk.invariant => {}
        other => {
            return Err(CliError::Io(format!(
                "the minimized scenario does not fail the same way when read back ({} instead of {} at seed {seed}); nothing written",
                other.as_deref().unwrap_or("no violation"),
                shrunk.invariant
            )))
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    }
    fs::write(&out, &text).map_err(io("cannot write", &out))?;
    println!(
        "\n{} at seed {seed} violates {}: size {} → {} after {} runs{}",
        point.name,
        shrunk.invariant,
        shrunk.original_size,
        shrunk.size,
        shrunk.runs,
        if shrunk.budget_exhausted { " (run budget exhausted; raise --max-runs to go further)" } else { "" }
    );
    let before = shrink::size_terms(&point);
    let after = shrink::size_terms(&shrunk.scenario);
    let terms: Vec<String> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|((name, b), (_, a))| format!("{name} {b} → {a}"))
        .collect();
    if !terms.is_empty() {
        println!("  {}", terms.join(", "));
    }
    println!("wrote {}\nreproduce with: bftsim reproduce {} --seed {seed}", out.display(), out.display());
    Ok(ExitCode::SUCCESS)
}

/// The scenario at `path`, at the sweep point `set` names (`key=value` for each axis).
fn sweep_point(path: &Path, set: &[String]) -> Result<(SweepLabels, Scenario), CliError> {
    let scenario = scenario::load(path)?;
    let mut wanted = BTreeMap::new();
    for kv in set {
        let (k, v) = kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--set {kv}: expected KEY=VALUE")))?;
        wanted.insert(k.to_owned(), v.to_owned());
    }
    scenario
        .expand()?
        .into_iter()
        .find(|(labels, _)| labels.iter().cloned().collect::<BTreeMap<_, _>>() == wanted)
        .ok_or_else(|| CliError::Usage(format!("no sweep point of {} matches {wanted:?}", path.display())))
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

fn print_table(summaries: &[ScenarioSummary]) {
    println!("{}", ScenarioSummary::table_header());
    for s in summaries {
        println!("{}", s.table_row());
    }
    for s in summaries {
        let unexpected = s.expect_safety && !s.failures.is_empty();
        if unexpected {
            println!("\n{}: {} failing seed(s); reproduce with:", s.scenario, s.violations.values().sum::<u64>());
            for f in &s.failures {
                println!("  {}    # {} at step {}, {} ms", f.reproduce, f.invariant, f.step, f.time_ms);
            }
        } else if !s.expect_safety {
            if let Some(f) = s.failures.first() {
                println!(
                    "\n{}: found {} (as expected) first at seed {}: {}",
                    s.scenario, f.invariant, f.seed, f.reproduce
                );
            } else {
                println!(
                    "\n{}: expected a {} violation but found none",
                    s.scenario,
                    s.expect_invariant.as_deref().unwrap_or("safety")
                );
            }
        }
    }
}

fn cmd_reproduce(
    path: &Path,
    seed: u64,
    set: &[String],
    trace: Option<PathBuf>,
    limit: usize,
) -> Result<ExitCode, CliError> {
    let (labels, point) = sweep_point(path, set)?;
    let output = run(&point, seed, labels.into_iter().collect(), RunOptions { trace: true });
    let shown = output.trace.len().min(limit);
    for event in &output.trace[..shown] {
        println!(
            "{:>8} ms  #{:<6} {:<9} {:>8} {:>8} {:>10}  {}",
            event.time_ms,
            event.step,
            event.kind,
            event.agent.map_or("-".into(), |a| format!("agent-{a}")),
            event.peer.map_or(String::new(), |p| format!("↔ {p}")),
            event.session.map_or(String::new(), |s| format!("session-{s}")),
            event.detail
        );
    }
    if output.trace.len() > shown {
        println!("... {} more events (raise --limit or use --trace FILE)", output.trace.len() - shown);
    }
    if let Some(file) = trace {
        let mut w = BufWriter::new(File::create(&file).map_err(io("cannot create", &file))?);
        for event in &output.trace {
            let line = serde_json::to_string(event).map_err(|e| CliError::Io(e.to_string()))?;
            writeln!(w, "{line}").map_err(io("cannot write", &file))?;
        }
        w.flush().map_err(io("cannot write", &file))?;
        println!("wrote {} events to {}", output.trace.len(), file.display());
    }
    let r = &output.record;
    println!(
        "\n{} seed {}: {:?}; {} of {} sessions decided ({} correct), p99 {} ms, {} messages sent",
        r.scenario, r.seed, r.outcome, r.decided, r.sessions, r.correct, r.latency_ms.p99, r.messages.sent
    );
    for v in &r.violations {
        println!("VIOLATION {} at step {} ({} ms): {}", v.invariant, v.step, v.time_ms, v.detail);
    }
    println!("trace_hash {}", r.trace_hash);
    Ok(if r.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn cmd_check(paths: &[PathBuf]) -> Result<ExitCode, CliError> {
    let files = scenario::discover(paths)?;
    let mut all_sound = true;
    for file in files {
        let scenario = scenario::load(&file)?;
        let points = scenario.expand()?;
        println!("{}: ok ({} sweep point(s)) — {}", file.display(), points.len(), scenario.description);
        let audit = scenario.audit();
        all_sound &= audit.is_sound() || !scenario.expect.safety || scenario.byzantine.count as u64 > audit.f;
        print!("{audit}");
    }
    Ok(if all_sound { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn cmd_list(dir: &Path) -> Result<ExitCode, CliError> {
    for file in scenario::discover(&[dir.to_path_buf()])? {
        let scenario = scenario::load(&file)?;
        println!("{:<36} {}", scenario.name, scenario.description);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_audit(agents: u32, threshold: f64, byzantine: Option<u64>) -> Result<ExitCode, CliError> {
    let threshold = Ratio::from_f64(threshold)
        .ok_or_else(|| CliError::Usage(format!("--threshold must be in (0, 1], got {threshold}")))?;
    let weights_milli = (0..agents as usize).map(|i| AgentSpecialization::cycled(i).default_weight_milli()).collect();
    let a = audit(&AuditInput { weights_milli, threshold, byzantine }).map_err(|e| CliError::Usage(e.to_string()))?;
    print!("{a}");
    Ok(if a.is_sound() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
