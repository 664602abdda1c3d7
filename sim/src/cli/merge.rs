//! `bftsim merge`: combines the output directories of `bftsim run --shard` (or of whole runs,
//! or of explorations) into one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::out::outln;
use super::{print_table, CliError};

/// The options of `bftsim merge`.
#[derive(Args)]
pub(super) struct MergeArgs {
    /// The directories to merge.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// The output directory (runs.jsonl and summary.json).
    #[arg(long)]
    out: PathBuf,
}

pub(super) fn cmd_merge(args: MergeArgs) -> Result<ExitCode, CliError> {
    let MergeArgs { dirs, out } = args;
    if dirs.first().is_some_and(|d| sim::explore::merge::is_exploration(d)) {
        return super::explore::cmd_merge(&dirs, &out);
    }
    let merged = sim::merge::merge(&dirs, &out).map_err(|e| CliError::Io(e.to_string()))?;
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
