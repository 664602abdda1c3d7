//! `bftsim`: the command-line front end of the simulator.
//!
//! The simulator proper lands with the `sim` issue; today the binary audits committee
//! configurations with consensus-core's fault-tolerance math.

#[cfg(not(madsim))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "bftsim was built without `--cfg madsim`, so it cannot run deterministic simulations.\n\
         The workspace's .cargo/config.toml sets that flag; an exported RUSTFLAGS overrides it.\n\
         Fix: `unset RUSTFLAGS` (or add `--cfg madsim` to it) and rebuild with `cargo build --release`."
    );
    std::process::ExitCode::from(2)
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(madsim)]
mod cli {
    use std::process::ExitCode;

    use clap::{Parser, Subcommand};
    use consensus_core::quorum::{audit, AuditInput};
    use consensus_core::{AgentSpecialization, Ratio};

    /// Deterministic fault-injection simulator for consensus-core.
    #[derive(Parser)]
    #[command(name = "bftsim", version, about)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Audit a committee: quorum size, and whether the threshold keeps safety and liveness.
        Audit {
            /// Agents in the committee (specialisations cycle retriever, analyzer, validator,
            /// reranker, monitor, with the seed's weights).
            #[arg(long, default_value_t = 5)]
            agents: u32,
            /// Agreement threshold in (0, 1].
            #[arg(long, default_value_t = 0.66)]
            threshold: f64,
            /// Byzantine agents to tolerate (default: the most n agents can, (n − 1) / 3).
            #[arg(long)]
            byzantine: Option<u64>,
        },
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        match cli.command {
            Command::Audit { agents, threshold, byzantine } => {
                let Some(threshold) = Ratio::from_f64(threshold) else {
                    eprintln!("error: --threshold must be in (0, 1], got {threshold}");
                    return ExitCode::from(2);
                };
                let weights_milli =
                    (0..agents as usize).map(|i| AgentSpecialization::cycled(i).default_weight_milli()).collect();
                match audit(&AuditInput { weights_milli, threshold, byzantine }) {
                    Ok(a) => {
                        print!("{a}");
                        if a.is_sound() {
                            ExitCode::SUCCESS
                        } else {
                            ExitCode::from(1)
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            }
        }
    }
}
