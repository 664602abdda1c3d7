//! `bftsim run`: schedules (scenario, seed) jobs, streams `runs.jsonl`, writes `summary.json`;
//! stops cleanly on Ctrl-C or SIGTERM and resumes with `--resume`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Args;
use consensus_core::protocol::coverage::{self, Coverage};
use sim::exec::{execute_until, ExecOptions, Job};
use sim::merge::{shell_quote, Shard, SummaryFile};
use sim::results::{RunOutcome, RunRecord};
use sim::summary::{ScenarioSummary, Summary};

use super::out::outln;
use super::{io, load_points, print_table, progress, stop_on_signal, CliError, Point};

/// The exit code of an interrupted run: 128 + SIGINT, as shells report a command Ctrl-C ended.
pub(super) const INTERRUPTED: u8 = 130;

/// The options of `bftsim run`.
#[derive(Args)]
pub(super) struct RunArgs {
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
}

/// The options of `bftsim run` besides the paths and the output directory.
struct RunCommand {
    seeds: u64,
    seed_start: u64,
    jobs: usize,
    check_determinism: bool,
    quiet: bool,
    shard: Option<Shard>,
    /// Continue the run in the output directory: skip the (scenario, seed) pairs in its
    /// runs.jsonl.
    resume: bool,
}

pub(super) fn cmd_run(args: RunArgs) -> Result<ExitCode, CliError> {
    let RunArgs { paths, seeds, seed_start, jobs, out, check_determinism, quiet, shard, report, resume } = args;
    let jobs = super::jobs(jobs)?;
    let options = RunCommand { seeds, seed_start, jobs, check_determinism, quiet, shard, resume };
    let code = run_points(&paths, &options, &out)?;
    if report {
        super::report::cmd_report(&out, &out, None)?;
    }
    Ok(code)
}

fn run_points(paths: &[PathBuf], options: &RunCommand, out: &Path) -> Result<ExitCode, CliError> {
    let RunCommand { seeds, seed_start, jobs, check_determinism, quiet, shard, resume } = *options;
    if seeds == 0 {
        return Err(CliError::Usage("--seeds must be at least 1".into()));
    }
    let points = load_points(paths)?;
    warn_beyond_f_max(&points);
    fs::create_dir_all(out).map_err(io("cannot create", out))?;
    let runs_path = out.join("runs.jsonl");
    let mut summaries = scenario_summaries(&points);
    let index: BTreeMap<String, usize> = points.iter().enumerate().map(|(i, p)| (p.2.name.clone(), i)).collect();
    let job_list = job_list(&points, seed_start, seeds, shard);
    if let (Some(shard), false) = (shard, quiet) {
        outln!("shard {shard}: {} job(s) of this run", job_list.len());
    }
    let done = if resume { read_finished(&runs_path, &job_list, &index, &mut summaries)? } else { BTreeSet::new() };
    let todo: Vec<Job> =
        job_list.iter().filter(|j| !done.contains(&(j.scenario.name.clone(), j.seed))).cloned().collect();
    if resume && !quiet {
        outln!(
            "resuming: {} of {} run(s) already in {}, {} to go",
            done.len(),
            job_list.len(),
            runs_path.display(),
            todo.len()
        );
    }
    let file =
        if resume { OpenOptions::new().create(true).append(true).open(&runs_path) } else { File::create(&runs_path) };
    let mut runs = BufWriter::new(file.map_err(io("cannot open", &runs_path))?);
    let stop = stop_on_signal();
    let bar = progress(todo.len() as u64, quiet);
    let mut write_error = None;
    // How many of the runs reached each protocol point (docs/coverage.md).
    let coverage = Coverage::default();
    let ran = execute_until(&todo, ExecOptions { jobs, check_determinism }, &stop, |job, record| {
        if let Ok(line) = serde_json::to_string(&record) {
            // One line per run, flushed at once: an interrupted sweep keeps every finished run.
            if let Err(e) = writeln!(runs, "{line}").and_then(|()| runs.flush()) {
                write_error = Some(e);
            }
        }
        if let Some(summary) = index.get(&job.scenario.name).and_then(|i| summaries.get_mut(*i)) {
            summary.add(&record, || job.reproduce_command());
        }
        for point in record.coverage.as_ref().and_then(|c| c.points().ok()).unwrap_or_default() {
            coverage.record(point);
        }
        if record.outcome != RunOutcome::Ok && !quiet {
            let invariant = record.violations.first().map_or("?", |v| v.invariant.as_str());
            super::bar_line(&bar, format!("{} seed {}: {invariant} violated", job.scenario.name, job.seed));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(CliError::Io(format!("writing {}: {e}", runs_path.display())));
    }
    let interrupted = ran < todo.len();
    debug_assert!(!interrupted || stop.load(Ordering::SeqCst), "runs were skipped without a stop signal");
    for s in &mut summaries {
        s.finish();
    }
    print_table(&summaries);
    print_coverage(ran, &coverage);
    let passed = summaries.iter().all(|s| s.passed);
    let finished = (done.len() + ran) as u64;
    let summary = Summary { seeds, seed_start, runs: finished, passed, scenarios: summaries };
    let summary_path = out.join("summary.json");
    let file = SummaryFile { summary, shard, merged_from: Vec::new(), interrupted };
    let json = serde_json::to_string_pretty(&file).map_err(|e| CliError::Io(e.to_string()))?;
    fs::write(&summary_path, json).map_err(io("cannot write", &summary_path))?;
    outln!("\nwrote {} and {}", runs_path.display(), summary_path.display());
    if interrupted {
        // A violation where safety is expected is a finding whatever comes next; any other
        // verdict (a mutation scenario has not found its violation yet) waits for the rest.
        let finding = file.summary.scenarios.iter().any(|s| s.expect_safety && !s.passed);
        outln!(
            "interrupted after {finished} of {} run(s): the verdicts above cover the finished runs only.\n\
             Resume (finished runs are not rerun) with:\n  {}",
            job_list.len(),
            resume_command()
        );
        return Ok(ExitCode::from(if finding { 1 } else { INTERRUPTED }));
    }
    if let Some(shard) = shard {
        // A shard cannot judge an [expect]: the seed a mutation scenario must fail at may be in
        // another shard. Its exit code says only that its runs are written; merge gives the verdict.
        outln!(
            "shard {shard}: the verdicts above cover this shard only; `bftsim merge` the shards for the run's verdict"
        );
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// An empty summary per scenario (sweep point) of the command.
fn scenario_summaries(points: &[Point]) -> Vec<ScenarioSummary> {
    points
        .iter()
        .map(|(path, params, s)| {
            let path = path.display().to_string();
            ScenarioSummary::new(s.name.clone(), path, params.clone(), s.expect.safety, s.expect.invariant.clone())
                .with_settings(sim::summary::settings(s))
        })
        .collect()
}

/// One line: how many protocol points the honest agents of the `ran` runs reached.
fn print_coverage(ran: usize, coverage: &Coverage) {
    if ran > 0 {
        outln!(
            "\nprotocol coverage: the honest agents of these {ran} run(s) reached {} of {} points (docs/coverage.md; \
             replay a run with `--coverage` to list its own)",
            coverage.reached().count(),
            coverage::Point::COUNT
        );
    }
}

/// Every (scenario, seed) job of the command, in job-list order (files in the order given,
/// sweep points, then seeds), restricted to the shard if any.
fn job_list(points: &[Point], seed_start: u64, seeds: u64, shard: Option<Shard>) -> Vec<Job> {
    let mut jobs = Vec::new();
    for (path, params, scenario) in points {
        for seed in seed_start..seed_start.saturating_add(seeds) {
            jobs.push(Job { scenario: scenario.clone(), path: path.clone(), params: params.clone(), seed });
        }
    }
    match shard {
        // The job list depends only on the arguments, so the shards of one command are
        // disjoint and cover it.
        Some(shard) => jobs.into_iter().enumerate().filter(|(i, _)| shard.contains(*i)).map(|(_, job)| job).collect(),
        None => jobs,
    }
}

/// Warns (on stderr) about every scenario with more Byzantine agents than its committee
/// tolerates: such a run may violate safety by design, which is not a bug of the protocol.
fn warn_beyond_f_max(points: &[Point]) {
    for (_, _, scenario) in points {
        let (n, byzantine) = (scenario.agents.count, scenario.byzantine.count);
        let f_max = n.saturating_sub(1) / 3;
        if byzantine > f_max {
            eprintln!(
                "warning: {}: {byzantine} Byzantine of {n} agents exceeds f_max = {f_max} (n ≥ 3f + 1): \
                 agreement is not guaranteed, only what the scenario's [expect] says",
                scenario.name
            );
        }
    }
}

/// Reads the runs an interrupted `bftsim run` wrote to `runs_path`, folds them into `summaries`
/// and returns their (scenario, seed) pairs. A last line cut short (the process was killed
/// mid-write) is removed from the file; a run this command does not schedule is an error (the
/// resume must repeat the interrupted command).
fn read_finished(
    runs_path: &Path,
    job_list: &[Job],
    index: &BTreeMap<String, usize>,
    summaries: &mut [ScenarioSummary],
) -> Result<BTreeSet<(String, u64)>, CliError> {
    let mut done = BTreeSet::new();
    let text = match fs::read_to_string(runs_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: no {} to resume: running every job", runs_path.display());
            return Ok(done);
        }
        Err(e) => return Err(CliError::Io(format!("cannot read {}: {e}", runs_path.display()))),
    };
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        eprintln!("note: {}: dropping a last line cut short ({} bytes)", runs_path.display(), text.len() - complete);
        let file = OpenOptions::new().write(true).open(runs_path).map_err(io("cannot open", runs_path))?;
        file.set_len(complete as u64).map_err(io("cannot truncate", runs_path))?;
    }
    let jobs: BTreeMap<(&str, u64), &Job> = job_list.iter().map(|j| ((j.scenario.name.as_str(), j.seed), j)).collect();
    for (number, line) in text[..complete].lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", runs_path.display(), number + 1);
        let record: RunRecord =
            serde_json::from_str(line).map_err(|e| CliError::Input(format!("{}: not a run record: {e}", at())))?;
        let job = jobs.get(&(record.scenario.as_str(), record.seed)).ok_or_else(|| {
            CliError::Input(format!(
                "{}: {} seed {} is not a job of this command: resume with the same paths, --seeds, \
                 --seed-start and --shard as the interrupted run",
                at(),
                record.scenario,
                record.seed
            ))
        })?;
        if !done.insert((record.scenario.clone(), record.seed)) {
            return Err(CliError::Input(format!(
                "{}: {} seed {} is in the file twice",
                at(),
                record.scenario,
                record.seed
            )));
        }
        if let Some(summary) = index.get(&record.scenario).and_then(|i| summaries.get_mut(*i)) {
            summary.add(&record, || job.reproduce_command());
        }
    }
    Ok(done)
}

/// The command line that resumes this run: the same arguments plus `--resume`.
fn resume_command() -> String {
    let mut words: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    if !words.iter().any(|w| w == "--resume") {
        words.push("--resume".to_owned());
    }
    format!("bftsim {}", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_commands_quote_what_the_shell_would_split() {
        assert_eq!(shell_quote("scenarios/baseline.toml"), "scenarios/baseline.toml");
        assert_eq!(shell_quote("--shard=0/8"), "--shard=0/8");
        assert_eq!(shell_quote("my runs"), "'my runs'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
