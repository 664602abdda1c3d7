//! The model's report in words and as JSON.

use consensus_core::protocol::messages::Message;

use crate::oracle::{names, Promises};

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

/// Which properties the check judges, and those it does not with the reason: the oracle's
/// `Promises::of` for this committee and Byzantine count (docs/model.md, "Properties").
/// `liveness_depth`: the `--liveness-depth` of the run (0: bounded liveness is not checked).
pub fn properties(setup: &Setup, liveness_depth: u32) -> (Vec<&'static str>, Vec<(&'static str, String)>) {
    let (n, b) = (u64::from(setup.config.agents), u64::from(setup.config.byzantine));
    let promises = Promises::of(n, b);
    let f_max = n.saturating_sub(1) / 3;
    let q = consensus_core::quorum::quorum(n, f_max).unwrap_or(n);
    let mut on = vec![
        names::INTEGRITY,
        names::EXTERNAL_VALIDITY,
        names::SUPPORT_VALIDITY,
        names::THRESHOLD,
        names::NO_EQUIVOCATION_ACROSS_RESTARTS,
    ];
    let mut off = Vec::new();
    if promises.agreement {
        on.insert(0, names::AGREEMENT);
    } else {
        let why = format!(
            "{b} Byzantine of n = {n} reach the quorum intersection 2q − n = {} (q = {q}): two quorums need not share \
             an honest agent",
            (2 * q).saturating_sub(n)
        );
        off.push((names::AGREEMENT, why));
    }
    if promises.unanimity_validity {
        on.insert(on.len() - 4, names::UNANIMITY_VALIDITY);
    } else {
        off.push((names::UNANIMITY_VALIDITY, format!("{b} Byzantine of n = {n} exceed f_max = {f_max}")));
    }
    if liveness_depth == 0 {
        off.push((names::LIVENESS, "a safety search; bounded liveness is checked with --liveness-depth D".to_owned()));
    } else {
        on.push(names::LIVENESS);
    }
    (on, off)
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
        "properties": {
            "checked": properties(setup, 0).0,
            "not_checked": properties(setup, 0).1.into_iter().map(|(p, why)| serde_json::json!({"property": p, "why": why})).collect::<Vec<_>>(),
        },
        "violation": r.counterexample.as_ref().map(|cx| serde_json::json!({
            "invariant": cx.violation.invariant,
            "detail": cx.violation.detail,
            "steps": cx.path.len().saturating_sub(1),
        })),
        "self_loops": r.self_loops,
        "reduction": if !c.reduce { "none" } else if c.lazy { "lazy" } else { "block" },
        "lazy_pruned": r.lazy_pruned,
        "dead_ends": r.dead_ends,
        "levels": r.levels,
        "coverage_points": r.coverage.reached().map(|p| p.name()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn props(agents: u32, byzantine: u32) -> (Vec<&'static str>, Vec<&'static str>) {
        let setup =
            Setup::new(ModelConfig { agents, byzantine, ..ModelConfig::default() }).unwrap_or_else(|e| panic!("{e}"));
        let (on, off) = properties(&setup, 0);
        (on, off.into_iter().map(|(p, _)| p).collect())
    }

    #[test]
    fn agreement_is_off_from_2q_minus_n_byzantine_agents() {
        let (on, off) = props(4, 1);
        assert!(on.contains(&names::AGREEMENT) && on.contains(&names::UNANIMITY_VALIDITY), "{on:?}");
        assert_eq!(off, [names::LIVENESS]);
        // n = 4: q = 3, 2q − n = 2.
        let (on, off) = props(4, 2);
        assert!(!on.contains(&names::AGREEMENT) && off.contains(&names::AGREEMENT), "{off:?}");
        assert!(off.contains(&names::UNANIMITY_VALIDITY), "2 > f_max = 1");
        // n = 3: q = 2, 2q − n = 1: one Byzantine agent already turns agreement off.
        let (_, off) = props(3, 1);
        assert!(off.contains(&names::AGREEMENT));
        let (on, _) = props(3, 0);
        assert!(on.contains(&names::AGREEMENT));
        let setup = Setup::new(ModelConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(properties(&setup, 3).0.contains(&names::LIVENESS), "bounded, with --liveness-depth");
    }
}
