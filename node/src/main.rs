//! `bftsim-node`: run an agent of a real cluster, or manage its keys and configuration.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use consensus_core::adversary::Strategy;
use consensus_core::protocol::Commit;
use consensus_core::AgentId;
use node::answer::{classify, mismatches, Submitted, UNCERTIFIED};
use node::cluster::{init_cluster, ClusterSpec};
use node::config::NodeConfig;
use node::keys;
use node::run::{run, RunOptions};
use node::verify::verify_certificate;

#[derive(Parser)]
#[command(
    name = "bftsim-node",
    version,
    about = "Run consensus-core's agents for real: TCP between agents, HTTP for clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a new ed25519 secret key (64 hex digits) and prints its public key.
    Keygen {
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes keys and one configuration file per agent for a local cluster.
    InitCluster {
        /// Number of agents.
        #[arg(long, default_value_t = 5)]
        agents: u32,
        /// Agent i listens on base-port + i (peers) and base-port + agents + i (HTTP).
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
        /// Host to listen on and dial.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// A judge program for every agent (the `command` evaluator), e.g. "python3 examples/judge.py".
        #[arg(long)]
        judge: Option<String>,
        /// The synthetic evaluator's latency range in ms, e.g. "0,0" for an instant evaluator.
        #[arg(long)]
        synthetic_latency_ms: Option<String>,
    },
    /// Runs one agent.
    Run {
        /// The agent's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// TESTING ONLY: run the agent with a Byzantine strategy (consensus-core::adversary).
        #[arg(long, value_name = "STRATEGY")]
        byzantine: Option<String>,
    },
    /// Checks a configuration file and prints the committee.
    Check {
        /// The file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Verifies a decision's commit certificate offline against the cluster's public keys.
    Verify {
        /// Any agent's configuration file (for the public keys).
        #[arg(long)]
        config: PathBuf,
        /// A `GET /v1/sessions/{id}` answer or a bare certificate, as JSON ("-" for stdin).
        #[arg(long)]
        certificate: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Keygen { out } => {
            let key = keys::generate();
            std::fs::write(&out, format!("{}\n", keys::to_hex(key.as_bytes())))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{}", keys::to_hex(key.verifying_key().as_bytes()));
        }
        Command::InitCluster { agents, base_port, host, out, judge, synthetic_latency_ms } => {
            let evaluator = match (judge, synthetic_latency_ms) {
                (Some(judge), _) => {
                    let argv: Vec<String> = judge.split_whitespace().map(|s| format!("{s:?}")).collect();
                    Some(format!("[evaluator]\nkind = \"command\"\nargv = [{}]\ntimeout_ms = 2000\n", argv.join(", ")))
                }
                (None, Some(range)) => {
                    let Some((a, b)) = range.split_once(',') else { bail!("--synthetic-latency-ms takes MIN,MAX") };
                    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
                    Some(format!("[evaluator]\nkind = \"synthetic\"\nlatency_ms = [{a}, {b}]\n"))
                }
                (None, None) => None,
            };
            let spec = ClusterSpec { agents, base_port, host, out, evaluator, ports: None };
            for path in init_cluster(&spec)? {
                println!("{}", path.display());
            }
        }
        Command::Run { config, byzantine } => {
            let byzantine = match byzantine {
                Some(name) => match Strategy::from_name(&name) {
                    Some(s) => Some(s),
                    None => bail!("unknown strategy {name:?}; one of: {}", strategy_names()),
                },
                None => None,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(async {
                tokio::select! {
                    // The message only: a StartError's source is the message itself ("Error: X … Caused by: X").
                    result = run(&config, RunOptions { byzantine }) => result.map_err(|e| anyhow::anyhow!("{e}")),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            })?;
        }
        Command::Check { config } => {
            let (c, errors) = node::checks::diagnose(&config)?;
            for e in &errors {
                eprintln!("{e}");
            }
            if !errors.is_empty() {
                bail!("{}: {} problem(s); the node would not start", config.display(), errors.len());
            }
            println!("agent {} of {} agents; opener {}", c.id, c.committee().len(), c.client.opener);
        }
        Command::Verify { config, certificate } => verify(&config, &certificate)?,
    }
    Ok(())
}

/// `verify`: the certificate against the cluster's keys, and every field of an answer against
/// the certificate.
fn verify(config: &std::path::Path, certificate: &std::path::Path) -> anyhow::Result<()> {
    let c = node::checks::load(config)?;
    let text = if certificate.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(certificate).with_context(|| format!("reading {}", certificate.display()))?
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not JSON ({e})", certificate.display()))?;
    let (answer, cert) = match classify(json) {
        Submitted::Certificate(cert) => (None, cert),
        Submitted::Answer(fields, cert) => (Some(fields), cert),
        Submitted::Unverifiable(why) => bail!("nothing to verify: {why}"),
    };
    let commit: Commit =
        serde_json::from_value(cert).map_err(|e| anyhow::anyhow!("the certificate is malformed: {e}"))?;
    let mut public = vec![(AgentId::CLIENT, keys::parse_public(&c.client.public_key, "[client] public_key")?)];
    let own = match &c.public_key {
        Some(own) => keys::parse_public(own, "public_key")?,
        None => keys::read_secret(&NodeConfig::resolve(config, &c.key_file))
            .map(|k| k.verifying_key())
            .context("reading this agent's key (the file has no public_key)")?,
    };
    public.push((c.agent(), own));
    for p in &c.peers {
        public.push((AgentId(p.id), keys::parse_public(&p.public_key, "peer public_key")?));
    }
    let members: Vec<AgentId> = c.committee().iter().map(|(id, _)| *id).collect();
    let verified = verify_certificate(&commit, &keys::keyring(public), &members)?;
    if let Some(fields) = &answer {
        let wrong = mismatches(fields, &commit);
        if !wrong.is_empty() {
            bail!(
                "the certificate is valid, but the answer says what it does not certify (edited outside the \
                 certificate?):\n  {}",
                wrong.join("\n  ")
            );
        }
    }
    println!(
        "valid: session {} decided in round {} by {} precommits ({:?}): {}",
        verified.session.0,
        verified.round,
        verified.signers.len(),
        verified.signers.iter().map(|a| a.0).collect::<Vec<_>>(),
        serde_json::to_string(&verified.outcome)?
    );
    if answer.is_some() {
        println!(
            "every field of the answer is the certificate's ({} are this node's clock readings, not certified)",
            UNCERTIFIED.join(" and ")
        );
    }
    Ok(())
}

fn strategy_names() -> String {
    Strategy::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}
