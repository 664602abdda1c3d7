//! `bftsim audit`: a committee's quorum size, and whether its threshold keeps safety and
//! liveness.

use std::process::ExitCode;

use clap::Args;
use consensus_core::quorum::{audit, AuditInput};
use consensus_core::{AgentSpecialization, Ratio};

use super::out::out;
use super::CliError;

/// The options of `bftsim audit`.
#[derive(Args)]
pub(super) struct AuditArgs {
    /// Agents in the committee.
    #[arg(long, default_value_t = 5)]
    agents: u32,
    /// Agreement threshold in (0, 1].
    #[arg(long, default_value_t = 0.66)]
    threshold: f64,
    /// Byzantine agents to tolerate (default: (n − 1) / 3).
    #[arg(long)]
    byzantine: Option<u64>,
}

pub(super) fn cmd_audit(args: AuditArgs) -> Result<ExitCode, CliError> {
    let AuditArgs { agents, threshold, byzantine } = args;
    let threshold = Ratio::from_f64(threshold)
        .ok_or_else(|| CliError::Usage(format!("--threshold must be in (0, 1], got {threshold}")))?;
    let weights_milli = (0..agents as usize).map(|i| AgentSpecialization::cycled(i).default_weight_milli()).collect();
    let a = audit(&AuditInput { weights_milli, threshold, byzantine }).map_err(|e| CliError::Usage(e.to_string()))?;
    out!("{a}");
    Ok(if a.is_sound() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
