//! The model's report in words and as JSON.

use consensus_core::protocol::messages::Message;

use super::search::ModelReport;
use super::state::Label;
use super::Setup;
use crate::words;

/// One message in words.
pub fn describe_message(m: &Message) -> String {
    match m {
        Message::Open(_) => "open".into(),
        Message::Vote(v) => format!("vote of {} for candidate {}", v.vote.agent, v.vote.candidate.0),
        Message::Proposal(p) => words::proposal(p),
        Message::RoundVote(v) => words::round_vote(v),
        Message::Commit(c) => format!("commit certificate of {}", words::proposal(&c.proposal)),
        Message::Sync { next } => format!("sync from {}", next.0),
        Message::Pruned { below } => format!("pruned below {}", below.0),
    }
}

/// One transition in words.
pub fn describe_label(label: &Label) -> String {
    match label {
        Label::Init(votes) => {
            format!("initial state: votes (candidate per agent) {votes:?}; every honest agent has the Open")
        }
        Label::Deliver { to, msg } => format!("deliver to {to}: {} from {}", describe_message(&msg.message), msg.from),
        Label::Fire { agent, at_ms, timer } => {
            format!("{agent}: timer {:?} of round {} fires at {at_ms} ms", timer.kind, timer.round)
        }
        Label::Inject { to, msg } => {
            format!("Byzantine {} sends to {to}: {}", msg.from, describe_message(&msg.message))
        }
    }
}

/// A whole path, one numbered step a line, with the configuration that reproduces it.
pub fn describe_path(setup: &Setup, path: &[Label]) -> String {
    let c = &setup.config;
    let mut text = format!(
        "# bftsim model counterexample: n = {}, byzantine = {} ({:?}), rounds = {}, candidates = {}, mutation {:?}\n",
        c.agents, c.byzantine, c.byzantine_mode, c.rounds, c.candidates, c.mutation
    );
    for (i, label) in path.iter().enumerate() {
        text.push_str(&format!("{i:>3}  {}\n", describe_label(label)));
    }
    text
}

/// The report as JSON (model.json).
pub fn report_json(setup: &Setup, r: &ModelReport, mutation: &str) -> serde_json::Value {
    let c = &setup.config;
    serde_json::json!({
        "agents": c.agents,
        "byzantine": c.byzantine,
        "byzantine_mode": format!("{:?}", c.byzantine_mode),
        "first_proposer": format!("{:?}", c.first_proposer),
        "rounds": c.rounds,
        "candidates": c.candidates,
        "mutation": mutation,
        "jobs": c.jobs,
        "stop": r.stop,
        "states": r.states,
        "initial": r.initial,
        "transitions": r.transitions,
        "depth": r.depth,
        "elapsed_ms": r.elapsed_ms,
        "peak_rss_kb": r.peak_rss_kb,
        "terminal_decided": r.terminal_decided,
        "terminal_undecided": r.terminal_undecided,
        "sometimes": r.sometimes,
        "violation": r.counterexample.as_ref().map(|cx| serde_json::json!({
            "invariant": cx.violation.invariant,
            "detail": cx.violation.detail,
            "steps": cx.path.len().saturating_sub(1),
        })),
        "self_loops": r.self_loops,
        "levels": r.levels,
        "coverage_points": r.coverage.reached().map(|p| p.name()).collect::<Vec<_>>(),
    })
}
