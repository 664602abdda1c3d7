//! `bftsim list`: the scenarios of a directory, one line each with its description.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sim::scenario;

use super::out::outln;
use super::{bundled_scenarios, CliError};

/// The options of `bftsim list`.
#[derive(Args)]
pub(super) struct ListArgs {
    /// The directory (also accepted as --dir).
    #[arg(conflicts_with = "dir_option")]
    dir: Option<PathBuf>,
    #[arg(long = "dir", id = "dir_option", hide = true)]
    dir_option: Option<PathBuf>,
}

pub(super) fn cmd_list(args: ListArgs) -> Result<ExitCode, CliError> {
    let dir = args.dir.or(args.dir_option).unwrap_or_else(bundled_scenarios);
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
