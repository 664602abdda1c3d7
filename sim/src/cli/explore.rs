//! `bftsim explore`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sim::explore::envelope::{self, Envelope, DEFAULT_ENVELOPE};
use sim::explore::generate::{Generator, Mode};
use sim::explore::{explore, ExploreConfig, ExploreSummary};
use sim::merge::Shard;
use sim::results::RunOutcome;

use super::out::{out, outln};
use super::{progress, CliError};

/// The options of `bftsim explore`.
#[derive(Args)]
pub(super) struct ExploreArgs {
    /// The master seed: the same seed gives the same runs and findings on any --jobs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most runs (default 10000, or no limit with --time).
    #[arg(long)]
    runs: Option<u64>,
    /// Most wall-clock time for the runs, e.g. 90s, 10m, 2h (shrinking comes after).
    #[arg(long, value_parser = parse_duration)]
    time: Option<Duration>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Output directory: runs.jsonl, explore.json, findings/.
    #[arg(long, default_value = "out/explore")]
    out: PathBuf,
    /// The envelope file (default: the bundled one; see --print-envelope).
    #[arg(long)]
    envelope: Option<PathBuf>,
    /// Print the bundled envelope and exit.
    #[arg(long)]
    print_envelope: bool,
    /// Only this mode: swarm, twins or byzzfuzz.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Explore this deliberately broken protocol variant (a protocol.mutation name).
    #[arg(long, default_value = "none")]
    mutation: String,
    /// Run only shard I of N of the run sequence (combine with `bftsim merge`).
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// Stop at the first finding (the runs before it complete, so it is the first in run order).
    #[arg(long)]
    until_found: bool,
    /// Simulator runs each shrink may spend.
    #[arg(long, default_value_t = 300)]
    shrink_runs: usize,
    /// Most findings shrunk and written.
    #[arg(long, default_value_t = 10)]
    max_findings: usize,
    /// Guided mode: after the first generation, half the runs are derived from a corpus of runs
    /// that reached new protocol coverage, by mutating their scenario (written to OUT/runs/).
    #[arg(long)]
    guided: bool,
    /// Runs per generation of the guided mode (the corpus grows between generations).
    #[arg(long, value_name = "RUNS", default_value_t = sim::explore::generate::guided::GENERATION)]
    generation: u64,
    /// Print generated run I as a scenario file and exit.
    #[arg(long, value_name = "I")]
    emit: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub(super) fn cmd_explore(args: ExploreArgs) -> Result<ExitCode, CliError> {
    if args.print_envelope {
        out!("{DEFAULT_ENVELOPE}");
        return Ok(ExitCode::SUCCESS);
    }
    let (envelope, envelope_name) = match &args.envelope {
        Some(path) => (envelope::load(path).map_err(|e| CliError::Input(e.to_string()))?, path.display().to_string()),
        None => (Envelope::default(), "default".to_owned()),
    };
    if args.mutation != "none" {
        check_mutation(&args.mutation)?;
    }
    if args.guided && args.shard.is_some() {
        return Err(CliError::Usage(
            "--guided cannot run as a shard: each generation derives from the coverage of every run before it; \
             run the guided exploration whole"
                .into(),
        ));
    }
    if let Some(index) = args.emit {
        return emit(&args, envelope, &envelope_name, index);
    }
    let jobs = super::jobs(args.jobs)?;
    let runs = match (args.runs, args.time) {
        (Some(0), _) => return Err(CliError::Usage("--runs must be at least 1".into())),
        (Some(r), _) => r,
        (None, Some(_)) => u64::MAX,
        (None, None) => 10_000,
    };
    let config = ExploreConfig {
        envelope,
        envelope_name,
        master: args.seed,
        runs,
        time: args.time,
        jobs,
        mode: args.mode,
        mutation: args.mutation.clone(),
        shard: args.shard,
        until_found: args.until_found,
        shrink_runs: args.shrink_runs,
        max_findings: args.max_findings,
        guided: args.guided,
        generation: args.generation,
    };
    // Ctrl-C, SIGTERM or SIGHUP: no new run starts, findings so far are shrunk and written; a
    // second signal while they are shrunk ends the process at once.
    let stop = super::stop_on_signal();
    let bar = progress(if runs == u64::MAX { 0 } else { runs }, args.quiet);
    let mut first_seen = std::collections::BTreeSet::new();
    let summary = explore(&config, &args.out, &stop, |done| {
        bar.inc(1);
        if done.record.outcome != RunOutcome::Ok {
            if let Some(v) = done.record.violations.first() {
                if first_seen.insert(v.invariant.clone()) && !args.quiet {
                    // explore wrote the failing run's scenario as OUT/runs/<index>.toml.
                    let file = args.out.join("runs").join(format!("{}.toml", done.generated.index));
                    super::bar_line(
                        &bar,
                        format!(
                            "run {} ({}, {}): {} — {}\n  replay: bftsim reproduce {} --seed {}",
                            done.k,
                            done.generated.mode.name(),
                            done.generated.scenario.byzantine.label(),
                            v.invariant,
                            v.detail,
                            sim::merge::shell_quote(&file.display().to_string()),
                            done.generated.seed
                        ),
                    );
                }
            }
        }
    })
    .map_err(|e| CliError::Io(e.to_string()))?;
    bar.finish_and_clear();
    print_summary(&summary, &args.out, &config);
    Ok(if !summary.findings.is_empty() {
        ExitCode::from(1)
    } else if summary.interrupted {
        ExitCode::from(super::run::INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--emit I`: prints generated run I as a scenario file (never a guided run: those derive from
/// the corpus of the exploration that made them).
fn emit(args: &ExploreArgs, envelope: Envelope, envelope_name: &str, index: u64) -> Result<ExitCode, CliError> {
    let generator = Generator::new(envelope, args.seed, args.mode, &args.mutation);
    if args.guided && generator.guided_slot(index, args.generation) {
        let file = args.out.join("runs").join(format!("{index}.toml"));
        return Err(CliError::Usage(format!(
            "run {index} of a guided exploration derives from its corpus, so only the exploration makes it: \
             replay its scenario file {} (written for every guided run)",
            file.display()
        )));
    }
    let g = generator.generate(index).map_err(|e| CliError::Input(e.to_string()))?;
    outln!(
        "# Run {index} of the exploration ({}): `{}`. Run it with --seed {}.",
        g.mode.name(),
        sim::explore::emit_command_of(args.seed, &args.mutation, args.mode, envelope_name, index),
        g.seed
    );
    out!("{}", g.text);
    Ok(ExitCode::SUCCESS)
}

fn print_summary(s: &ExploreSummary, out: &Path, config: &ExploreConfig) {
    print_findings(s, out, &config.mutation);
}

fn print_findings(s: &ExploreSummary, out: &Path, mutation: &str) {
    let secs = s.elapsed_ms as f64 / 1000.0;
    outln!(
        "explored {} runs (swarm {}, twins {}, byzzfuzz {}{}) of master seed {}{} in {secs:.1} s on {} job(s)",
        s.runs,
        s.modes.swarm,
        s.modes.twins,
        s.modes.byzzfuzz,
        if s.modes.guided > 0 { format!(", guided {}", s.modes.guided) } else { String::new() },
        s.master_seed,
        if mutation == "none" { String::new() } else { format!(" with mutation {mutation}") },
        s.jobs
    );
    print_quality(s);
    print_protocol_coverage(s);
    if s.interrupted {
        outln!(
            "interrupted: the runs above are in {}; the findings so far are written",
            out.join("runs.jsonl").display()
        );
    }
    if s.control_failures > 0 {
        outln!(
            "{} failing run(s) also failed without the mutation: failures of the protocol itself, not counted as findings",
            s.control_failures
        );
    }
    if s.findings.is_empty() {
        outln!("no finding: every invariant held in every run");
    } else {
        outln!("\n{} finding(s):", s.findings.len());
        for f in &s.findings {
            outln!(
                "  {:<18} {:<40} first at run {:>6}, {:>5} hit(s), size {} → {} ({} lines)",
                f.invariant,
                f.location,
                f.first_run,
                f.hits,
                f.size_before,
                f.size_after,
                f.lines
            );
            outln!("      {}", f.reproduce);
        }
    }
    outln!("\nwrote {} and {}", out.join("runs.jsonl").display(), out.join("explore.json").display());
}

/// Decision quality over the runs within f_max: sessions decided for the best candidate, and
/// the wrong decisions by cause (the honest votes alone too, or caused by the Byzantine agents).
fn print_quality(s: &ExploreSummary) {
    let all = sim::explore::ModeQuality::total(&s.quality);
    if all.sessions == 0 {
        return;
    }
    let pct = |x: u64| x as f64 * 100.0 / all.sessions as f64;
    let w = &all.wrong_by_cause;
    let largest = w.by_margin.iter().rev().find(|m| m.byzantine > 0).map_or_else(String::new, |m| {
        format!(" (largest honest margin {} vote{})", m.margin, if m.margin == 1 { "" } else { "s" })
    });
    outln!(
        "decision quality (runs within f_max): {} sessions, {:.2}% decided for the best candidate, {:.2}% for \
         another: {:.2}% as the honest votes alone decide, {:.2}% caused by Byzantine agents{largest}, {:.2}% with \
         too few honest votes to tell; {:.2}% of sessions influenced",
        all.sessions,
        pct(all.correct),
        pct(all.wrong),
        pct(w.honest),
        pct(w.byzantine),
        pct(w.unjudged),
        pct(all.influenced)
    );
    if w.beyond_bound > 0 {
        outln!("{} Byzantine-caused wrong decision(s) beyond the influence bound", w.beyond_bound);
    }
}

/// Cumulative protocol coverage by family, and every point no run reached.
fn print_protocol_coverage(s: &ExploreSummary) {
    let Some(c) = &s.protocol_coverage else { return };
    let families: Vec<String> = c.families.iter().map(|f| format!("{} {}/{}", f.family, f.reached, f.total)).collect();
    outln!(
        "protocol coverage (docs/coverage.md): {} of {} points reached by the honest agents of {} run(s): {}",
        c.reached,
        c.total,
        c.runs,
        families.join(", ")
    );
    if c.unreadable > 0 {
        outln!("  {} run(s) recorded no coverage this build can read", c.unreadable);
    }
    if c.never_reached.is_empty() {
        outln!("  every point was reached");
        return;
    }
    outln!("  never reached ({}):", c.never_reached.len());
    // A few names to a line, so the list reads in a terminal.
    let mut line = String::new();
    for name in &c.never_reached {
        if !line.is_empty() && line.len() + name.len() > 96 {
            outln!("    {line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(name);
    }
    if !line.is_empty() {
        outln!("    {line}");
    }
}

fn check_mutation(name: &str) -> Result<(), CliError> {
    let probe = format!("[protocol]\nmutation = \"{name}\"\n");
    sim::scenario::parse(&probe, Path::new("--mutation"))
        .map(|_| ())
        .map_err(|e| CliError::Usage(format!("--mutation {name}: {}", e.message)))
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match Mode::from_name(s) {
        Some(Mode::Guided) => Err("guided runs derive from the other modes' runs: use --guided".into()),
        Some(mode) => Ok(mode),
        None => Err(format!("unknown mode {s:?}: expected swarm, twins or byzzfuzz")),
    }
}

/// `90s`, `10m`, `2h`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration: expected e.g. 90s, 10m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}, expected s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// `bftsim merge` of exploration directories.
pub(super) fn cmd_merge(dirs: &[PathBuf], out: &Path) -> Result<ExitCode, CliError> {
    let summary = sim::explore::merge::merge(dirs, out).map_err(|e| CliError::Input(e.to_string()))?;
    let config_mutation = summary.mutation.clone();
    outln!("merged {} exploration(s) into {}", dirs.len(), out.display());
    print_findings(&summary, out, &config_mutation);
    Ok(if summary.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
