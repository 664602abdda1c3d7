//! `bftsim check`: validates scenario files and prints each one's configuration audit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use consensus_core::config::AgreementBasis;
use consensus_core::quorum::Severity;
use sim::scenario;

use super::out::{out, outln};
use super::CliError;

/// The options of `bftsim check`.
#[derive(Args)]
pub(super) struct CheckArgs {
    /// Files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub(super) fn cmd_check(args: CheckArgs) -> Result<ExitCode, CliError> {
    let files = scenario::discover(&args.paths)?;
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
