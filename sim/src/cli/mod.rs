//! The `bftsim` subcommands.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use consensus_core::config::AgreementBasis;
use consensus_core::quorum::{audit, AuditInput, Severity};
use consensus_core::{AgentSpecialization, Ratio};
use indicatif::{ProgressBar, ProgressStyle};
use sim::merge::Shard;
use sim::scenario::{self, Scenario, ScenarioError, SweepLabels};
use sim::shrink::{self, ShrinkOptions};
use sim::summary::ScenarioSummary;

use out::{out, outln};

mod explore;
mod model;
mod out;
mod reproduce;
mod run;

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
        /// Scenario files or directories (default: the bundled scenarios/).
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
        /// Continue an interrupted run in the --out directory: the (scenario, seed) pairs in
        /// its runs.jsonl are not run again. Give the same paths and options as the interrupted
        /// command.
        #[arg(long)]
        resume: bool,
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
        /// Where to write the minimized scenario (default: under out/, named after the scenario
        /// file and the seed, e.g. out/baseline-seed7.min.toml).
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
    /// Check one session of the production agents exhaustively for a small committee: every
    /// delivery order, timeout and bounded Byzantine message, against the safety properties.
    Model(model::ModelArgs),
    /// Replay one run and print its events in simulated time, with filters, and a summary of
    /// each session's rounds and decisions.
    Reproduce(reproduce::ReproduceArgs),
    /// Validate scenario files and print each one's configuration audit.
    Check {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the scenarios of a directory (default: the bundled scenarios/), one line each
    /// with its description.
    List {
        /// The directory (also accepted as --dir).
        #[arg(conflicts_with = "dir_option")]
        dir: Option<PathBuf>,
        #[arg(long = "dir", id = "dir_option", hide = true)]
        dir_option: Option<PathBuf>,
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
        Command::Run { paths, seeds, seed_start, jobs, out, check_determinism, quiet, shard, report, resume } => {
            self::jobs(jobs)
                .and_then(|jobs| {
                    let options = run::RunCommand { seeds, seed_start, jobs, check_determinism, quiet, shard, resume };
                    run::cmd_run(&paths, &options, &out)
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
        Command::Model(args) => model::cmd_model(args),
        Command::Reproduce(args) => reproduce::cmd_reproduce(args),
        Command::Check { paths } => cmd_check(&paths),
        Command::List { dir, dir_option } => cmd_list(dir.or(dir_option)),
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

fn cmd_merge(dirs: &[PathBuf], out: &Path) -> Result<ExitCode, CliError> {
    if dirs.first().is_some_and(|d| sim::explore::merge::is_exploration(d)) {
        return explore::cmd_merge(dirs, out);
    }
    let merged = sim::merge::merge(dirs, out).map_err(|e| CliError::Io(e.to_string()))?;
    print_table(&merged.summary.scenarios);
    outln!(
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
    outln!("\nwrote {}", output.html.display());
    outln!("wrote {}", output.markdown.display());
    const LISTED: usize = 12;
    if output.figures.len() <= LISTED {
        for figure in &output.figures {
            outln!("wrote {}", figure.display());
        }
    } else {
        let parent = output.figures.first().and_then(|f| f.parent()).unwrap_or(out);
        outln!("wrote {} figures (SVG and PNG) under {}", output.figures.len(), parent.display());
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
    let (labels, point) = sweep_point(path, set, seed, "shrink")?;
    let stem = path.file_stem().map_or_else(|| "scenario".to_owned(), |s| s.to_string_lossy().into_owned());
    let out = out.unwrap_or_else(|| PathBuf::from("out").join(format!("{stem}-seed{seed}.min.toml")));
    outln!("shrinking {} at seed {seed} (at most {max_runs} runs)", point.name);
    let shrunk = shrink::shrink(
        &point,
        ShrinkOptions { max_runs },
        |candidate| shrink::violation_at(candidate, seed),
        |step| outln!("  size {:>4}  after {:>3} runs: {}", step.size, step.runs, step.change),
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
    outln!(
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
        outln!("  {}", terms.join(", "));
    }
    let quoted = sim::merge::shell_quote(&out.display().to_string());
    outln!("wrote {}\nreproduce with: bftsim reproduce {quoted} --seed {seed}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// The scenario at `path`, at the sweep point `set` names (`key=value` for each axis). A
/// sweep without `--set` is a usage error that lists the points as `bftsim COMMAND` lines.
fn sweep_point(path: &Path, set: &[String], seed: u64, command: &str) -> Result<(SweepLabels, Scenario), CliError> {
    let scenario = scenario::load(path)?;
    let points = scenario.expand()?;
    if set.is_empty() && points.len() > 1 {
        let labels: Vec<SweepLabels> = points.into_iter().map(|(labels, _)| labels).collect();
        return Err(CliError::Usage(reproduce::list_points(path, seed, command, &labels)));
    }
    let mut wanted = BTreeMap::new();
    for kv in set {
        let (k, v) = kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--set {kv}: expected KEY=VALUE")))?;
        wanted.insert(k.to_owned(), v.to_owned());
    }
    points
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

fn cmd_check(paths: &[PathBuf]) -> Result<ExitCode, CliError> {
    let files = scenario::discover(paths)?;
    let mut all_sound = true;
    for file in files {
        let scenario = scenario::load(&file)?;
        let points = scenario.expand()?;
        let audit = scenario.audit();
        // By-weight findings do not apply when agreement counts agents (the default).
        let counted = scenario.protocol.agreement_basis == AgreementBasis::Count;
        let errors = audit
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !(counted && f.code.starts_with("weight-")))
            .count();
        // Errors are expected of a scenario that must find a violation or that puts more
        // Byzantine agents in than the committee tolerates (it checks that safety is kept or
        // that the system halts): such a file is still sound as a test.
        let f_max = scenario.agents.count.saturating_sub(1) / 3;
        let expected = !scenario.expect.safety || scenario.byzantine.count > f_max;
        let verdict = if audit.is_sound() {
            "ok"
        } else if errors == 0 {
            "ok (its by-weight ERRORs apply only to agreement_basis = \"weight\"; this scenario counts agents)"
        } else if expected {
            "ok (the audit's ERRORs below are what this scenario tests)"
        } else {
            all_sound = false;
            "ERROR: the configuration audit below fails"
        };
        let description = scenario.description.lines().next().unwrap_or_default().trim();
        let description = if description.is_empty() { String::new() } else { format!(" — {description}") };
        outln!("{}: {verdict}; {} sweep point(s){description}", file.display(), points.len());
        out!("{audit}");
    }
    Ok(if all_sound { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn cmd_list(dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let dir = dir.unwrap_or_else(bundled_scenarios);
    let files = scenario::discover(std::slice::from_ref(&dir))?;
    let mut lines = Vec::new();
    for file in &files {
        let scenario = scenario::load(file)?;
        let description = scenario.description.lines().next().unwrap_or_default().trim().to_owned();
        let stem = file.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        lines.push((stem, description));
    }
    let width = lines.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
    // A real file in the example, so that it runs as printed.
    let example = files.first().map_or_else(|| dir.join("baseline.toml"), Clone::clone);
    outln!(
        "{} scenario file(s) in {} (run one with `bftsim run {}`, all with `bftsim run {}`):",
        files.len(),
        dir.display(),
        sim::merge::shell_quote(&example.display().to_string()),
        sim::merge::shell_quote(&dir.display().to_string())
    );
    for (name, description) in lines {
        outln!("  {name:<width$}  {description}");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_audit(agents: u32, threshold: f64, byzantine: Option<u64>) -> Result<ExitCode, CliError> {
    let threshold = Ratio::from_f64(threshold)
        .ok_or_else(|| CliError::Usage(format!("--threshold must be in (0, 1], got {threshold}")))?;
    let weights_milli = (0..agents as usize).map(|i| AgentSpecialization::cycled(i).default_weight_milli()).collect();
    let a = audit(&AuditInput { weights_milli, threshold, byzantine }).map_err(|e| CliError::Usage(e.to_string()))?;
    out!("{a}");
    Ok(if a.is_sound() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
