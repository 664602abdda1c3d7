//! `bftsim shrink`: minimizes a failing (scenario, seed) and writes the smaller scenario.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sim::scenario;
use sim::shrink::{self, ShrinkOptions};

use super::out::outln;
use super::point::PointArgs;
use super::{io, CliError};

/// The options of `bftsim shrink`.
#[derive(Args)]
pub(super) struct ShrinkArgs {
    /// The scenario, the failing seed (kept fixed) and the sweep point.
    #[command(flatten)]
    point: PointArgs,
    /// Where to write the minimized scenario (default: under out/, named after the scenario
    /// file and the seed, e.g. out/baseline-seed7.min.toml).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Most simulator runs to spend.
    #[arg(long, default_value_t = shrink::DEFAULT_MAX_RUNS)]
    max_runs: usize,
}

pub(super) fn cmd_shrink(args: ShrinkArgs) -> Result<ExitCode, CliError> {
    let ShrinkArgs { point: args_point, out, max_runs } = args;
    let (path, seed) = (&args_point.scenario, args_point.seed()?);
    let (labels, point) = args_point.load("shrink")?;
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
