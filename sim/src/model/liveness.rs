//! Bounded liveness (docs/model.md, "Bounded liveness"): from every state the adversary can
//! reach in at most `depth` steps (any delivery order, any timer, any bounded Byzantine
//! message), the *fair completion* must make every honest agent decide within the round bound.
//!
//! The fair completion is the network after GST, made deterministic: every message in flight is
//! delivered (in the state's canonical order) before any timer fires, so every message delay is
//! below every timeout; when nothing is in flight, the earliest timer of any honest agent fires
//! (its own clock: the agents' clocks are independent); the Byzantine agents send nothing more.
//! It ends when every honest agent decided (live), when nothing is enabled (stuck: no timer is
//! left within the bound), after a step limit, or when it reaches a state it was in before (a
//! lasso: the completion is deterministic, so it would loop for ever without deciding).
//!
//! The round bound is the check's `--rounds` plus `extra_rounds`: the completion may need
//! rounds beyond those the prefix explored (a proposer that missed the polka of the round its
//! agents are locked in is the textbook case), so its timers are kept up to that bound.

use std::collections::BTreeSet;
use std::sync::Arc;

use consensus_core::AgentId;
use sha2::{Digest, Sha256};

use super::byzantine::injections;
use super::state::{keep_timer, Label, Msg, State, Worker};
use super::{ByzantineMode, ModelConfig, Setup};

/// Steps a completion may take before it is reported as not ending.
pub const COMPLETION_LIMIT: usize = 5_000;

/// How a fair completion failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// Nothing enabled, some honest agent undecided.
    Stuck,
    /// The completion came back to a state it was in.
    Lasso,
    /// [`COMPLETION_LIMIT`] steps without an end.
    Limit,
}

/// A liveness counterexample: the adversary's prefix, then the fair completion that does not
/// decide.
#[derive(Clone, Debug)]
pub struct LivenessCounterexample {
    /// From the initial state (its vote assignment first) to the state the completion starts.
    pub prefix: Vec<Label>,
    /// The fair completion's steps.
    pub completion: Vec<Label>,
    /// How it failed.
    pub failure: Failure,
    /// Honest agents that did not decide.
    pub undecided: Vec<AgentId>,
}

/// What the bounded liveness check found.
#[derive(Clone, Debug, Default)]
pub struct LivenessReport {
    /// Distinct prefix states whose completion was run.
    pub states: u64,
    /// The deepest prefix level reached.
    pub depth: u32,
    /// Whether every state within `depth` was checked (false: stopped at `max_states`).
    pub complete: bool,
    /// The longest completion that decided.
    pub longest_completion: usize,
    /// The round bound of the completions (`--rounds` + extra).
    pub round_bound: u32,
    /// A shortest prefix whose completion does not decide.
    pub counterexample: Option<LivenessCounterexample>,
}

/// Checks bounded liveness of `setup`'s problem from every state within `depth` steps (at most
/// `max_states` of them), with `extra_rounds` rounds beyond `--rounds` for the completions.
pub fn check_liveness(setup: &Setup, depth: u32, extra_rounds: u32, max_states: u64) -> Result<LivenessReport, String> {
    let round_bound = setup.config.rounds.saturating_add(extra_rounds);
    // Every transition (no block reduction): the prefix is short, and the completion needs
    // every delivery enabled, not only a block owner's.
    let config = ModelConfig { rounds: round_bound, reduce: false, ..setup.config.clone() };
    let wide = Setup::new(config).map_err(|e| e.to_string())?;
    let mut worker = Worker::new(&wide);
    let mut report = LivenessReport { round_bound, complete: true, ..LivenessReport::default() };
    let mut seen: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut frontier: Vec<(State, Vec<Label>)> = Vec::new();
    for assignment in wide.vote_assignments() {
        let init = worker.initial(&assignment);
        if seen.insert(fingerprint(&init.state)) {
            frontier.push((init.state, vec![init.label]));
        }
    }
    for level in 0..=depth {
        report.depth = level;
        let mut next = Vec::new();
        for (state, prefix) in &frontier {
            report.states += 1;
            match complete(&mut worker, &wide, state) {
                Ok(steps) => report.longest_completion = report.longest_completion.max(steps),
                Err((completion, failure, undecided)) => {
                    report.counterexample =
                        Some(LivenessCounterexample { prefix: prefix.clone(), completion, failure, undecided });
                    return Ok(report);
                }
            }
            if level == depth {
                continue;
            }
            let inject = match wide.config.byzantine_mode {
                ByzantineMode::FullPower => injections(&wide, &state.seen),
                ByzantineMode::Silent => Vec::new(),
            };
            for s in worker.successors(state, &inject) {
                // The adversary's prefix stays within `--rounds` (the completions alone get the
                // extra rounds): a timeout that would enter a later round is left for them.
                if matches!(&s.label, Label::Fire { timer, .. } if !keep_timer(*timer, setup.config.rounds)) {
                    continue;
                }
                if seen.len() as u64 >= max_states {
                    report.complete = false;
                    break;
                }
                if seen.insert(fingerprint(&s.state)) {
                    let mut path = prefix.clone();
                    path.push(s.label);
                    next.push((s.state, path));
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    Ok(report)
}

type Failed = (Vec<Label>, Failure, Vec<AgentId>);

/// Runs the fair completion from `state`: its length when every honest agent decided.
fn complete(worker: &mut Worker<'_>, setup: &Setup, state: &State) -> Result<usize, Failed> {
    let undecided =
        |s: &State| -> Vec<AgentId> { setup.honest.iter().copied().filter(|a| s.decided(*a).is_none()).collect() };
    let mut state = State { owner: None, ..state.clone() };
    let mut visited: BTreeSet<[u8; 32]> = BTreeSet::new();
    let mut steps: Vec<Label> = Vec::new();
    loop {
        let left = undecided(&state);
        if left.is_empty() {
            return Ok(steps.len());
        }
        if !visited.insert(fingerprint(&state)) {
            return Err((steps, Failure::Lasso, left));
        }
        if steps.len() >= COMPLETION_LIMIT {
            return Err((steps, Failure::Limit, left));
        }
        // Deliveries first, in the state's canonical order; then the earliest timer.
        let succs = worker.successors(&state, &[]);
        let pick = succs.iter().position(|s| matches!(s.label, Label::Deliver { .. })).or_else(|| {
            succs
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match s.label {
                    Label::Fire { agent, at_ms, .. } => Some((at_ms, agent, i)),
                    _ => None,
                })
                .min()
                .map(|(_, _, i)| i)
        });
        let Some(i) = pick else { return Err((steps, Failure::Stuck, left)) };
        let Some(next) = succs.into_iter().nth(i) else { return Err((steps, Failure::Stuck, left)) };
        steps.push(next.label);
        state = State { owner: None, ..next.state };
    }
}

/// A state's identity for this check: every part of its key, by content (the search's
/// fingerprints use its interning tables, which this check does not share).
fn fingerprint(state: &State) -> [u8; 32] {
    let mut h = Sha256::new();
    for a in &state.agents {
        h.update((a.len() as u64).to_le_bytes());
        h.update(a);
    }
    for (now, timers) in state.now.iter().zip(&state.timers) {
        h.update(now.to_le_bytes());
        h.update((timers.len() as u64).to_le_bytes());
        for (at, t) in timers {
            h.update(at.to_le_bytes());
            h.update(t.round.to_le_bytes());
            h.update([t.kind as u8]);
        }
    }
    let msg = |h: &mut Sha256, m: &Arc<Msg>| {
        h.update((m.bytes.len() as u64).to_le_bytes());
        h.update(&m.bytes);
    };
    h.update((state.net.len() as u64).to_le_bytes());
    for (to, m) in &state.net {
        h.update(to.0.to_le_bytes());
        msg(&mut h, m);
    }
    h.update((state.seen.len() as u64).to_le_bytes());
    for m in &state.seen {
        msg(&mut h, m);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Votes;
    use consensus_core::protocol::Mutation;

    fn n3(mutation: Mutation) -> Setup {
        let config = ModelConfig { mutation, ..ModelConfig::honest(3, 1, Votes::Fixed(vec![0, 0, 1])) };
        Setup::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_correct_protocol_decides_in_every_fair_completion_of_short_prefixes() {
        let report = check_liveness(&n3(Mutation::None), 3, 2, 10_000).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.counterexample.is_none(), "{:?}", report.counterexample);
        assert!(report.complete && report.states > 10 && report.longest_completion > 0, "{report:?}");
    }

    #[test]
    fn proposal_not_reset_is_a_stuck_fair_completion() {
        // Agents 1 and 2 give up on round 0's proposal before it arrives: round 0 fails, and
        // with the mutation the later proposers, holding round 0's proposal, never propose.
        let report = check_liveness(&n3(Mutation::ProposalNotReset), 4, 2, 10_000).unwrap_or_else(|e| panic!("{e}"));
        let cx = report.counterexample.unwrap_or_else(|| panic!("not found"));
        assert_eq!(cx.failure, Failure::Stuck);
        assert_eq!(cx.undecided, [AgentId(0), AgentId(1), AgentId(2)]);
        assert!(cx.prefix.len() <= 5, "a shortest prefix: {} steps", cx.prefix.len() - 1);
        assert!(cx.completion.iter().all(|l| !matches!(l, Label::Inject { .. })));
    }
}
