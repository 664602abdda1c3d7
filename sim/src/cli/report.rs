//! `bftsim report` (and `bftsim run --report`): writes report.html, report.md and the figures
//! of a run's output directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::out::outln;
use super::CliError;

/// The options of `bftsim report`.
#[derive(Args)]
pub(super) struct ReportArgs {
    /// A `bftsim run` or `bftsim merge` output directory.
    dir: PathBuf,
    /// Where to write the report (default: DIR).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The report's title.
    #[arg(long)]
    title: Option<String>,
}

pub(super) fn cmd_report_args(args: ReportArgs) -> Result<ExitCode, CliError> {
    let out = args.out.unwrap_or_else(|| args.dir.clone());
    cmd_report(&args.dir, &out, args.title).map(|()| ExitCode::SUCCESS)
}

/// Writes the report of `dir` into `out` and lists what it wrote.
pub(super) fn cmd_report(dir: &Path, out: &Path, title: Option<String>) -> Result<(), CliError> {
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
