//! `bftsim model`: exhaustive model checking of one session of the production agents.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use consensus_core::protocol::Mutation;
use sim::model::{self, ByzantineMode, FirstProposer, Label, ModelConfig, ModelReport, Setup};

use super::out::outln;
use super::{io, CliError};

/// The options of `bftsim model`.
#[derive(Args)]
pub(super) struct ModelArgs {
    /// Agents in the committee.
    #[arg(long, default_value_t = 4)]
    agents: u32,
    /// Byzantine agents (the highest ids).
    #[arg(long, default_value_t = 1)]
    byzantine: u32,
    /// Rounds checked: no honest agent enters a later round.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Candidates of the session.
    #[arg(long, default_value_t = 2)]
    candidates: u32,
    /// Sessions (the model checks one session; more are refused).
    #[arg(long, default_value_t = 1)]
    sessions: u32,
    /// The honest agents' votes: `enumerate` (every assignment) or a candidate per agent, e.g. 0,0,1,0.
    #[arg(long, default_value = "enumerate")]
    votes: String,
    /// What the Byzantine agents do.
    #[arg(long, value_enum, default_value_t = ByzantineArg::FullPower)]
    byzantine_mode: ByzantineArg,
    /// Who proposes round 0.
    #[arg(long, value_enum, default_value_t = ProposerArg::Honest)]
    first_proposer: ProposerArg,
    /// A bundled protocol mutation (kebab-case, e.g. quorum-one-short); default: the correct protocol.
    #[arg(long, default_value = "none")]
    mutation: String,
    /// Worker threads expanding states.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Output directory: model.json and, on a violation, counterexample.txt and the replayable
    /// counterexample.toml (and liveness.txt for a liveness failure).
    #[arg(long, default_value = "out/model")]
    out: PathBuf,
    /// Stop after this many distinct states (the report gives the coverage reached).
    #[arg(long, default_value_t = 1_000_000)]
    max_states: u64,
    /// Do not expand states at this depth.
    #[arg(long, default_value_t = u32::MAX)]
    max_depth: u32,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Explore every interleaving (no block reduction of silent steps): for comparison.
    #[arg(long)]
    no_reduction: bool,
    /// Keep only the block reduction (no lazy reduction: after a silent step, every step of its
    /// agent is explored, not only those that need it): for comparison.
    #[arg(long)]
    no_lazy: bool,
    /// Exit 0 even when a "sometimes" property was not reached (the check may be vacuous).
    #[arg(long)]
    allow_vacuous: bool,
    /// Bounded liveness: from every state within this many steps, the fair completion must
    /// decide (docs/model.md, "Bounded liveness"); 0: not checked.
    #[arg(long, default_value_t = 0)]
    liveness_depth: u32,
    /// Rounds beyond --rounds a fair completion may use.
    #[arg(long, default_value_t = 2)]
    liveness_extra_rounds: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum ByzantineArg {
    /// Sends nothing.
    Silent,
    /// Any bounded message its key and what it saw allow.
    FullPower,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProposerArg {
    /// Agent 0 proposes round 0.
    Honest,
    /// The first Byzantine agent proposes round 0.
    Byzantine,
}

/// Parses a mutation by its kebab-case name.
fn parse_mutation(name: &str) -> Result<Mutation, CliError> {
    let quoted = format!("\"{name}\"");
    serde_json::from_str::<Mutation>(&quoted).map_err(|_| {
        CliError::Usage(format!(
            "--mutation {name}: not a bundled mutation (none, quorum-one-short, no-locking, skip-signature-check, ...; see docs/model.md)"
        ))
    })
}

pub(super) fn cmd_model(args: ModelArgs) -> Result<ExitCode, CliError> {
    if args.sessions != 1 {
        return Err(CliError::Usage(format!(
            "--sessions {}: the model checks one session (sessions interact only through the registry epochs, which it does not model)",
            args.sessions
        )));
    }
    if args.jobs == 0 {
        return Err(CliError::Usage("--jobs must be at least 1".into()));
    }
    let mutation = parse_mutation(&args.mutation)?;
    if mutation.is_durability() {
        return Err(CliError::Usage(format!(
            "--mutation {}: a durability mutation; the model has no crashes or disks",
            args.mutation
        )));
    }
    let config = ModelConfig {
        agents: args.agents,
        byzantine: args.byzantine,
        rounds: args.rounds,
        candidates: args.candidates,
        votes: model::parse_votes(&args.votes).map_err(CliError::Usage)?,
        byzantine_mode: match args.byzantine_mode {
            ByzantineArg::Silent => ByzantineMode::Silent,
            ByzantineArg::FullPower => ByzantineMode::FullPower,
        },
        first_proposer: match args.first_proposer {
            ProposerArg::Honest => FirstProposer::Honest,
            ProposerArg::Byzantine => FirstProposer::Byzantine,
        },
        mutation,
        max_states: args.max_states,
        max_depth: args.max_depth,
        jobs: args.jobs,
        progress: !args.quiet,
        reduce: !args.no_reduction,
        lazy: !args.no_lazy,
        ..ModelConfig::default()
    };
    let setup = Setup::new(config).map_err(|e| CliError::Usage(e.to_string()))?;
    let report = model::check(&setup);
    print_report(&setup, &report, &args.mutation, args.liveness_depth);
    let liveness = (args.liveness_depth > 0)
        .then(|| {
            model::liveness::check_liveness(&setup, args.liveness_depth, args.liveness_extra_rounds, args.max_states)
        })
        .transpose()
        .map_err(CliError::Usage)?;
    let live_failed = match &liveness {
        Some(l) => report_liveness(&setup, l, &args.out)?.is_some(),
        None => false,
    };
    write_json(&setup, &report, &args, liveness.as_ref())?;
    if let Some(cx) = &report.counterexample {
        let path = args.out.join("counterexample.txt");
        let text = model::describe_path(&setup, &cx.path);
        fs::write(&path, text).map_err(io("cannot write", &path))?;
        outln!("wrote {} ({} steps)", path.display(), cx.path.len().saturating_sub(1));
        let schedule = args.out.join("counterexample.toml");
        fs::write(&schedule, model::schedule::Schedule::of(&setup, cx).to_text())
            .map_err(io("cannot write", &schedule))?;
        outln!(
            "wrote {}: replay it in the simulator with `bftsim reproduce {}`",
            schedule.display(),
            schedule.display()
        );
        return Ok(ExitCode::from(1));
    }
    if live_failed {
        return Ok(ExitCode::from(1));
    }
    let missed: Vec<&str> = report.sometimes.iter().filter(|(_, reached)| !**reached).map(|(n, _)| *n).collect();
    if !missed.is_empty() {
        outln!(
            "VACUOUS CHECK: {} \"sometimes\" propert{} not reached ({}): no violation found means little for what \
             was never reached{}",
            missed.len(),
            if missed.len() == 1 { "y" } else { "ies" },
            missed.join(", "),
            if report.stop == model::Stop::Complete { "" } else { "; the search stopped at its budget" }
        );
        if !args.allow_vacuous {
            outln!("exit 1 (a missed expectation); pass --allow-vacuous to accept it");
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// model.json, with the liveness result when it was checked.
fn write_json(
    setup: &Setup,
    report: &ModelReport,
    args: &ModelArgs,
    liveness: Option<&model::liveness::LivenessReport>,
) -> Result<(), CliError> {
    fs::create_dir_all(&args.out).map_err(io("cannot create", &args.out))?;
    let json_path = args.out.join("model.json");
    let mut json = model::report_json(setup, report, &args.mutation);
    if let (Some(l), Some(obj)) = (liveness, json.as_object_mut()) {
        let (on, off) = model::properties(setup, args.liveness_depth);
        let off: Vec<_> = off.into_iter().map(|(p, why)| serde_json::json!({"property": p, "why": why})).collect();
        obj.insert("properties".into(), serde_json::json!({"checked": on, "not_checked": off}));
        obj.insert(
            "liveness".into(),
            serde_json::json!({
                "depth": args.liveness_depth,
                "round_bound": l.round_bound,
                "states": l.states,
                "complete": l.complete,
                "longest_completion": l.longest_completion,
                "failure": l.counterexample.as_ref().map(|c| serde_json::json!({
                    "kind": c.failure,
                    "undecided": c.undecided.iter().map(|a| a.0).collect::<Vec<_>>(),
                    "prefix_steps": c.prefix.len().saturating_sub(1),
                    "completion_steps": c.completion.len(),
                })),
            }),
        );
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| CliError::Io(e.to_string()))?;
    fs::write(&json_path, text + "\n").map_err(io("cannot write", &json_path))?;
    outln!("wrote {}", json_path.display());
    Ok(())
}

/// Prints the bounded liveness result; on a failure writes `liveness.txt` and returns exit 1.
fn report_liveness(
    setup: &Setup,
    l: &model::liveness::LivenessReport,
    out: &std::path::Path,
) -> Result<Option<ExitCode>, CliError> {
    let scope = if l.complete { "every" } else { "the first (budget)" };
    outln!(
        "  bounded liveness: {scope} {} states within depth {} checked, fair completions within round bound {}",
        l.states,
        l.depth,
        l.round_bound
    );
    let Some(cx) = &l.counterexample else {
        outln!("  liveness: every fair completion decided (longest {} steps)", l.longest_completion);
        return Ok(None);
    };
    outln!(
        "  LIVENESS VIOLATION ({:?}): honest {:?} undecided after a {}-step prefix and a {}-step fair completion",
        cx.failure,
        cx.undecided.iter().map(|a| a.0).collect::<Vec<_>>(),
        cx.prefix.len().saturating_sub(1),
        cx.completion.len()
    );
    fs::create_dir_all(out).map_err(io("cannot create", out))?;
    let path = out.join("liveness.txt");
    let mut text = model::describe_path(setup, &cx.prefix);
    text.push_str(&format!("# fair completion (messages before timers, Byzantine silent): {:?}\n", cx.failure));
    for (i, label) in cx.completion.iter().enumerate() {
        text.push_str(&format!("{:>3}  {}\n", cx.prefix.len() + i, model::describe_label(label)));
    }
    fs::write(&path, text).map_err(io("cannot write", &path))?;
    outln!("wrote {}", path.display());
    Ok(Some(ExitCode::from(1)))
}

fn print_report(setup: &Setup, r: &ModelReport, mutation: &str, liveness_depth: u32) {
    let c = &setup.config;
    outln!(
        "model: n = {}, byzantine = {} ({:?}), rounds = {}, candidates = {}, mutation {mutation}",
        c.agents,
        c.byzantine,
        c.byzantine_mode,
        c.rounds,
        c.candidates
    );
    outln!(
        "  {:?}: {} distinct states ({} initial), {} transitions, depth {}, {:.1} s, peak memory {} MB",
        r.stop,
        r.states,
        r.initial,
        r.transitions,
        r.depth,
        r.elapsed_ms as f64 / 1000.0,
        r.peak_rss_kb / 1024
    );
    let (on, off) = model::properties(setup, liveness_depth);
    outln!("  properties checked: {}", on.join(", "));
    for (name, why) in &off {
        outln!("  not checked: {name}: {why}");
    }
    outln!("  terminal states: {} all honest decided, {} not", r.terminal_decided, r.terminal_undecided);
    if setup.config.reduce && setup.config.lazy {
        outln!("  lazy reduction: {} successors left out, {} pruned dead ends", r.lazy_pruned, r.dead_ends);
    }
    for (name, reached) in &r.sometimes {
        outln!("  sometimes {name}: {}", if *reached { "reached" } else { "NOT reached" });
    }
    match &r.counterexample {
        Some(cx) => {
            outln!(
                "  VIOLATION {}: {} (shortest path: {} steps)",
                cx.violation.invariant,
                cx.violation.detail,
                cx.path.len().saturating_sub(1)
            );
            for (i, label) in cx.path.iter().enumerate() {
                if matches!(label, Label::Init(_)) || i + 1 == cx.path.len() {
                    outln!("    {}", model::describe_label(label));
                }
            }
        }
        None => outln!("  no violation"),
    }
}
