//! `bftsim shrink`: delta debugging of a failing (scenario, seed).
//!
//! Given a scenario that violates an invariant at a seed, the shrinker looks for a smaller
//! scenario that violates the **same** invariant at the **same** seed. It tries one change at a
//! time and keeps it only when the oracle (a run of the simulator) still reports that invariant
//! first; a candidate that passes, or that fails a different invariant, is rejected. It repeats
//! every kind of change until a whole pass keeps nothing (a fixpoint) or the run budget is spent.
//!
//! The changes, in the order a pass tries them:
//!
//! - `workload.sessions`: 1, then half, then one less;
//! - `faults`: all of them, then halves, quarters, … down to one fault at a time (restarts of
//!   agents that are no longer crashed, and crashes of agents that are still crashed, go with
//!   the fault that made them so);
//! - `agents.count`: 1, half, one less; `byzantine.count` is kept at most `agents.count`,
//!   faults that name a missing agent are dropped (partition groups lose the missing agents and
//!   the partition goes when fewer than two groups are left), and an explicit `byzantine.agents`
//!   list keeps its indices that still exist or is dropped (agents drawn from the seed);
//! - `byzantine.count`: 0, half, one less (an explicit `byzantine.agents` list is cut to match);
//! - `workload.candidates`: down to 2 (or 1 when the scenario had fewer than 2), half, one less;
//! - `workload.concurrency`: 1, half, one less;
//! - `network.drop` and `network.duplicate`: 0, half, one hundredth less (rounded down to a
//!   hundredth);
//! - `network.tail`: removed;
//! - `network.latency_ms`: the upper bound halved (not below 1), then 10 ms less; the lower
//!   bound goes down with it when needed so that `min ≤ max`;
//! - `round_partitions` and `tamper` rules: all of them, then one at a time;
//! - `byzantine.strategies` (a mix): each behaviour of the mix alone;
//! - `expect.liveness_bound_ms` back to its default and `expect.liveness_rounds` removed, for a
//!   safety violation only.
//!
//! After every change the round rules are pruned to what still fits ([`Scenario::prune_rules`]:
//! no rule names a removed session or agent, or an agent that is no longer Byzantine), and so
//! are the behaviours ([`forget_unused_behaviours`]): with no Byzantine agent left the
//! `[byzantine]` table goes back to its default, and a mix longer than `byzantine.count` loses
//! the behaviours no agent has. Otherwise a minimized file could say `byzantine.strategy =
//! "twin"` about a run without any twin (explore finding liveness-twins-10316 of master seed 3
//! read as a twin in a committee of 3, where the twin had been the first thing removed).
//!
//! Every candidate is written as TOML and parsed again with [`scenario::parse`], so it is a
//! valid scenario file by construction; one that does not parse is skipped without a run.
//! For a `liveness` violation of an original whose fault model promises liveness
//! ([`Scenario::default_liveness`]), a candidate outside that model (more faulty agents than its
//! `f_max`, a partition left in effect, …) is skipped without a run as well: an explicit
//! `expect.liveness = true` would otherwise have the oracle check a promise the smaller
//! committee does not make.
//! Nothing else (protocol settings, evaluators, the behaviours of the Byzantine agents left,
//! expectations, seed) is changed.
//!
//! The size of a scenario ([`size`]) is
//! `faults + agents.count + byzantine.count + workload.sessions + workload.candidates +
//! workload.concurrency + round(100·network.drop) + round(100·network.duplicate) +
//! network.latency_ms[1] / 10 + (1 if network.tail else 0) + round rules + behaviours in the
//! mix`. No change makes it larger.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::oracle::names;
use crate::scenario::{self, Byzantine, ClogTarget, Fault, FaultAction, Scenario};

/// The default run budget of a shrink.
pub const DEFAULT_MAX_RUNS: usize = 500;

/// How far to shrink.
#[derive(Clone, Copy, Debug)]
pub struct ShrinkOptions {
    /// Most oracle calls (simulator runs), the check of the original included.
    pub max_runs: usize,
}

impl Default for ShrinkOptions {
    fn default() -> Self {
        ShrinkOptions { max_runs: DEFAULT_MAX_RUNS }
    }
}

/// One accepted change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What changed, e.g. `workload.sessions 20 → 10`.
    pub change: String,
    /// The size after it.
    pub size: u64,
    /// Oracle calls so far.
    pub runs: usize,
}

/// The result of a shrink.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest scenario found that still violates [`Shrunk::invariant`].
    pub scenario: Scenario,
    /// The invariant the original violated first (and the minimized scenario still does).
    pub invariant: String,
    /// [`size`] of the original.
    pub original_size: u64,
    /// [`size`] of the minimized scenario.
    pub size: u64,
    /// Oracle calls made, the check of the original included.
    pub runs: usize,
    /// The accepted changes, in order.
    pub steps: Vec<Step>,
    /// Whether the run budget ran out before a fixpoint.
    pub budget_exhausted: bool,
}

/// Why a shrink cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShrinkError {
    /// The original violates nothing.
    #[error("the scenario violates no invariant at this seed: there is nothing to shrink")]
    NoFailure,
    /// The original still has sweep axes.
    #[error("the scenario has a [sweep]: pick one point of it (--set KEY=VALUE for each axis)")]
    Sweep,
    /// A budget too small to check the original.
    #[error("the run budget must be at least 1")]
    NoBudget,
}

/// The terms of [`size`], by name.
pub fn size_terms(s: &Scenario) -> [(&'static str, u64); 12] {
    [
        ("faults", s.faults.len() as u64),
        ("agents", u64::from(s.agents.count)),
        ("byzantine", u64::from(s.byzantine.count)),
        ("sessions", s.workload.sessions),
        ("candidates", u64::from(s.workload.candidates)),
        ("concurrency", s.workload.concurrency),
        ("drop%", percent(s.network.drop)),
        ("duplicate%", percent(s.network.duplicate)),
        ("latency_max/10", s.network.latency_ms[1] / 10),
        ("tail", u64::from(s.network.tail.is_some())),
        ("rules", (s.round_partitions.len() + s.tamper.len()) as u64),
        ("mix", s.byzantine.strategies.as_ref().map_or(0, |m| m.len() as u64)),
    ]
}

/// The size of a scenario: the sum of [`size_terms`] (see the module documentation).
pub fn size(s: &Scenario) -> u64 {
    size_terms(s).iter().map(|(_, v)| v).sum()
}

fn percent(p: f64) -> u64 {
    // Probabilities are in [0, 1] in a parsed scenario.
    (p * 100.0).round().clamp(0.0, 100.0) as u64
}

/// Shrinks `original` while `oracle(candidate)` still returns the invariant that
/// `oracle(original)` returns. `oracle` gives the first violated invariant of a run, or `None`
/// when the run is clean. `on_step` sees every accepted change as it happens.
pub fn shrink(
    original: &Scenario,
    options: ShrinkOptions,
    mut oracle: impl FnMut(&Scenario) -> Option<String>,
    mut on_step: impl FnMut(&Step),
) -> Result<Shrunk, ShrinkError> {
    if !original.sweep.is_empty() {
        return Err(ShrinkError::Sweep);
    }
    if options.max_runs == 0 {
        return Err(ShrinkError::NoBudget);
    }
    let invariant = oracle(original).ok_or(ShrinkError::NoFailure)?;
    let mut search = Search {
        within_liveness_model: invariant == names::LIVENESS && original.default_liveness(),
        invariant: invariant.clone(),
        runs: 1,
        max_runs: options.max_runs,
        seen: BTreeMap::new(),
        original_byzantine: original.byzantine.count,
        min_candidates: if original.workload.candidates >= 2 { 2 } else { 1 },
        steps: Vec::new(),
    };
    let mut current = original.clone();
    if let Some(text) = to_text(&current) {
        search.seen.insert(text, true);
    }
    'fixpoint: loop {
        let mut changed = false;
        for kind in Kind::ALL {
            // Keep applying this kind of change while one of its candidates is accepted.
            loop {
                if search.runs >= search.max_runs {
                    break 'fixpoint;
                }
                let accepted = search.first_accepted(&current, kind, &mut oracle);
                let Some((change, next)) = accepted else { break };
                current = next;
                changed = true;
                let step = Step { change, size: size(&current), runs: search.runs };
                on_step(&step);
                search.steps.push(step);
            }
        }
        if !changed {
            break;
        }
    }
    let budget_exhausted = search.runs >= search.max_runs;
    Ok(Shrunk {
        original_size: size(original),
        size: size(&current),
        scenario: current,
        invariant,
        runs: search.runs,
        steps: search.steps,
        budget_exhausted,
    })
}

/// The kinds of change, in the order a pass tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sessions,
    Faults,
    Agents,
    Byzantine,
    Candidates,
    Concurrency,
    Drop,
    Duplicate,
    Tail,
    Latency,
    Rules,
    Mix,
    Bound,
}

impl Kind {
    const ALL: [Kind; 13] = [
        Kind::Sessions,
        Kind::Faults,
        Kind::Agents,
        Kind::Byzantine,
        Kind::Candidates,
        Kind::Concurrency,
        Kind::Drop,
        Kind::Duplicate,
        Kind::Tail,
        Kind::Latency,
        Kind::Rules,
        Kind::Mix,
        Kind::Bound,
    ];
}

struct Search {
    invariant: String,
    /// Candidates must keep the fault model's liveness promise ([`Scenario::default_liveness`]):
    /// the invariant is `liveness` and the original kept it.
    within_liveness_model: bool,
    runs: usize,
    max_runs: usize,
    /// Verdicts by the candidate's TOML text.
    seen: BTreeMap<String, bool>,
    original_byzantine: u32,
    min_candidates: u32,
    steps: Vec<Step>,
}

impl Search {
    /// The first candidate of `kind` that still fails the same way, if any (within budget).
    fn first_accepted(
        &mut self,
        current: &Scenario,
        kind: Kind,
        oracle: &mut impl FnMut(&Scenario) -> Option<String>,
    ) -> Option<(String, Scenario)> {
        let current_size = size(current);
        let current_text = to_text(current);
        for (change, mut candidate) in self.candidates(current, kind) {
            forget_unused_behaviours(&mut candidate);
            candidate.prune_rules();
            let Some(text) = to_text(&candidate) else { continue };
            // Re-parse: the candidate must be a valid scenario file, and its source text must
            // be the text it is written as.
            let Ok(candidate) = scenario::parse(&text, &current.path) else { continue };
            if Some(&text) == current_text.as_ref() || size(&candidate) > current_size {
                continue;
            }
            // A liveness violation only counts where liveness is promised by the fault model,
            // not by an `expect.liveness = true` written for a larger committee.
            if self.within_liveness_model && !candidate.default_liveness() {
                continue;
            }
            let accepted = match self.seen.get(&text) {
                Some(&verdict) => verdict,
                None => {
                    if self.runs >= self.max_runs {
                        return None;
                    }
                    self.runs += 1;
                    let verdict = oracle(&candidate).as_deref() == Some(self.invariant.as_str());
                    self.seen.insert(text, verdict);
                    verdict
                }
            };
            if accepted {
                return Some((change, candidate));
            }
        }
        None
    }

    fn candidates(&self, s: &Scenario, kind: Kind) -> Vec<(String, Scenario)> {
        let mut out = Vec::new();
        match kind {
            Kind::Sessions => {
                for v in lower(s.workload.sessions, 1) {
                    let mut c = s.clone();
                    c.workload.sessions = v;
                    out.push((format!("workload.sessions {} → {v}", s.workload.sessions), c));
                }
            }
            Kind::Faults => {
                let n = s.faults.len();
                let mut chunk = n;
                while chunk >= 1 {
                    let mut start = 0;
                    while start < n {
                        let end = (start + chunk).min(n);
                        let mut c = s.clone();
                        c.faults = s.faults[..start].iter().chain(&s.faults[end..]).cloned().collect();
                        c.faults = consistent(c.faults);
                        let what = if end - start == 1 {
                            format!("removed faults[{start}] ({})", describe(&s.faults[start]))
                        } else {
                            format!("removed faults[{start}..{end}]")
                        };
                        out.push((what, c));
                        start = end;
                    }
                    if chunk == 1 {
                        break;
                    }
                    chunk = chunk.div_ceil(2).min(chunk - 1);
                }
            }
            Kind::Agents => {
                for v in lower(u64::from(s.agents.count), 1) {
                    let Ok(v) = u32::try_from(v) else { continue };
                    let c = self.with_agents(s, v);
                    out.push((format!("agents.count {} → {v}", s.agents.count), c));
                }
            }
            Kind::Byzantine => {
                for v in lower(u64::from(s.byzantine.count), 0) {
                    let Ok(v) = u32::try_from(v) else { continue };
                    let mut c = s.clone();
                    c.byzantine.count = v;
                    match &s.byzantine.agents {
                        // One fewer listed agent: try leaving out each of them.
                        Some(list) if v > 0 && v + 1 == s.byzantine.count => {
                            for (i, gone) in list.iter().enumerate() {
                                let mut c = c.clone();
                                let mut kept = list.clone();
                                kept.remove(i);
                                c.byzantine.agents = Some(kept);
                                out.push((
                                    format!("byzantine.count {} → {v} (agent {gone} honest)", s.byzantine.count),
                                    c,
                                ));
                            }
                            continue;
                        }
                        Some(list) if v > 0 => c.byzantine.agents = Some(list[..v as usize].to_vec()),
                        _ => c.byzantine.agents = None,
                    }
                    out.push((format!("byzantine.count {} → {v}", s.byzantine.count), c));
                }
            }
            Kind::Candidates => {
                for v in lower(u64::from(s.workload.candidates), u64::from(self.min_candidates)) {
                    let Ok(v) = u32::try_from(v) else { continue };
                    let mut c = s.clone();
                    c.workload.candidates = v;
                    out.push((format!("workload.candidates {} → {v}", s.workload.candidates), c));
                }
            }
            Kind::Concurrency => {
                for v in lower(s.workload.concurrency, 1) {
                    let mut c = s.clone();
                    c.workload.concurrency = v;
                    out.push((format!("workload.concurrency {} → {v}", s.workload.concurrency), c));
                }
            }
            Kind::Drop => {
                for p in lower_probability(s.network.drop) {
                    let mut c = s.clone();
                    c.network.drop = p;
                    out.push((format!("network.drop {} → {p}", s.network.drop), c));
                }
            }
            Kind::Duplicate => {
                for p in lower_probability(s.network.duplicate) {
                    let mut c = s.clone();
                    c.network.duplicate = p;
                    out.push((format!("network.duplicate {} → {p}", s.network.duplicate), c));
                }
            }
            Kind::Tail => {
                if s.network.tail.is_some() {
                    let mut c = s.clone();
                    c.network.tail = None;
                    out.push(("removed network.tail".to_owned(), c));
                }
            }
            Kind::Latency => {
                // Half the upper bound, then 10 ms less (one unit of the size).
                let [min, max] = s.network.latency_ms;
                let half = (max / 2).max(1);
                let mut bounds = vec![half];
                if max > 10 && max - 10 > half {
                    bounds.push(max - 10);
                }
                for bound in bounds.into_iter().filter(|&b| b < max) {
                    let mut c = s.clone();
                    c.network.latency_ms = [min.min(bound), bound];
                    out.push((format!("network.latency_ms [{min}, {max}] → {:?}", c.network.latency_ms), c));
                }
            }
            Kind::Rules => {
                let total = s.round_partitions.len() + s.tamper.len();
                if total > 1 {
                    let mut c = s.clone();
                    c.round_partitions.clear();
                    c.tamper.clear();
                    out.push(("removed every round rule".to_owned(), c));
                }
                for i in 0..s.round_partitions.len() {
                    let mut c = s.clone();
                    c.round_partitions.remove(i);
                    out.push((format!("removed round_partitions[{i}]"), c));
                }
                for i in 0..s.tamper.len() {
                    let mut c = s.clone();
                    c.tamper.remove(i);
                    out.push((format!("removed tamper[{i}] ({})", s.tamper[i].action.name()), c));
                }
            }
            // A safety violation does not depend on when the run would have ended; a liveness
            // violation does, so its bound is never lowered.
            Kind::Bound if self.invariant != "liveness" => {
                let default = crate::scenario::Expect::default().liveness_bound_ms;
                if s.expect.liveness_bound_ms > default {
                    let mut c = s.clone();
                    c.expect.liveness_bound_ms = default;
                    out.push((format!("expect.liveness_bound_ms {} → {default}", s.expect.liveness_bound_ms), c));
                }
                if let Some(rounds) = s.expect.liveness_rounds {
                    let mut c = s.clone();
                    c.expect.liveness_rounds = None;
                    out.push((format!("expect.liveness_rounds {rounds} removed"), c));
                }
            }
            Kind::Bound => {}
            Kind::Mix => {
                let mut seen = Vec::new();
                for b in s.byzantine.strategies.iter().flatten() {
                    if seen.contains(b) {
                        continue;
                    }
                    seen.push(*b);
                    let mut c = s.clone();
                    c.byzantine.strategies = None;
                    c.byzantine.strategy = *b;
                    out.push((format!("byzantine.strategies → strategy = {b}"), c));
                }
            }
        }
        out
    }

    /// `s` with `count` agents, and everything that names an agent kept consistent with it.
    fn with_agents(&self, s: &Scenario, count: u32) -> Scenario {
        let mut c = s.clone();
        c.agents.count = count;
        c.byzantine.count = c.byzantine.count.min(count).min(self.original_byzantine);
        if let Some(list) = c.byzantine.agents.take() {
            let kept: Vec<u32> = list.into_iter().filter(|&a| a < count).take(c.byzantine.count as usize).collect();
            if kept.len() == c.byzantine.count as usize {
                c.byzantine.agents = Some(kept);
            }
        }
        let faults = c.faults.into_iter().filter_map(|f| within_committee(f, count)).collect();
        c.faults = consistent(faults);
        c
    }
}

/// Forgets the behaviours no agent has: with `byzantine.count = 0` the whole `[byzantine]`
/// table goes back to its default (no strategy, mix or agent list left to name a behaviour
/// nobody runs), and a mix longer than the count is cut to it. Neither changes a run: the
/// Byzantine agent of rank `r < count` has the mix's behaviour `r` either way.
fn forget_unused_behaviours(s: &mut Scenario) {
    if s.byzantine.count == 0 {
        s.byzantine = Byzantine::default();
        return;
    }
    if let Some(mix) = &mut s.byzantine.strategies {
        mix.truncate(s.byzantine.count as usize);
    }
}

/// The value candidates for an integer field: `min`, half, one less (each below `current`).
fn lower(current: u64, min: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for v in [min, current / 2, current.saturating_sub(1)] {
        if v >= min && v < current && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The value candidates for a probability: 0, half, and one hundredth less, each rounded down
/// to a hundredth.
fn lower_probability(p: f64) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    if p > 0.0 {
        let hundredths = (p * 100.0).round();
        for v in [0.0, (p * 50.0).floor() / 100.0, (hundredths - 1.0).max(0.0) / 100.0] {
            if v < p && !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// The fault with agents `≥ count` removed from it, or `None` when nothing of it is left.
fn within_committee(fault: Fault, count: u32) -> Option<Fault> {
    let exists = |a: &u32| *a < count;
    let action = match fault.action {
        FaultAction::Partition { groups, one_way } => {
            let groups: Vec<Vec<u32>> = groups
                .into_iter()
                .map(|g| g.into_iter().filter(exists).collect::<Vec<u32>>())
                .filter(|g| !g.is_empty())
                .collect();
            if groups.len() < 2 {
                return None;
            }
            FaultAction::Partition { groups, one_way }
        }
        FaultAction::Crash { agent } if !exists(&agent) => return None,
        FaultAction::Restart { agent } if !exists(&agent) => return None,
        ref disk if disk.disk_agent().is_some_and(|a| !exists(&a)) => return None,
        FaultAction::Clog { target } | FaultAction::Unclog { target } if !target_exists(target, count) => {
            return None;
        }
        action => action,
    };
    Some(Fault { at_ms: fault.at_ms, action })
}

fn target_exists(target: ClogTarget, count: u32) -> bool {
    match target {
        ClogTarget::Agent(a) => a < count,
        ClogTarget::Link([a, b]) => a < count && b < count,
    }
}

/// Drops restarts of agents that are not crashed at that time and crashes of agents that
/// already are (left behind when the matching fault went), keeping the time order.
fn consistent(faults: Vec<Fault>) -> Vec<Fault> {
    let mut crashed = BTreeSet::new();
    faults
        .into_iter()
        .filter(|f| match f.action {
            FaultAction::Crash { agent } => crashed.insert(agent),
            FaultAction::Restart { agent } => crashed.remove(&agent),
            _ => true,
        })
        .collect()
}

fn describe(fault: &Fault) -> String {
    let what = match &fault.action {
        FaultAction::Partition { groups, one_way: false } => format!("partition {groups:?}"),
        FaultAction::Partition { groups, one_way: true } => format!("one-way partition {groups:?}"),
        FaultAction::Heal => "heal".to_owned(),
        FaultAction::Crash { agent } => format!("crash agent {agent}"),
        FaultAction::Restart { agent } => format!("restart agent {agent}"),
        FaultAction::Clog { target } => format!("clog {}", target_name(*target)),
        FaultAction::Unclog { target } => format!("unclog {}", target_name(*target)),
        FaultAction::FlipBit { agent } => format!("flip a bit in agent {agent}'s log"),
        FaultAction::FailSync { agent } => format!("fail agent {agent}'s next fsync"),
        FaultAction::DiskFull { agent } => format!("fill agent {agent}'s disk"),
        FaultAction::SlowDisk { agent, sync_ms } => format!("agent {agent}'s fsyncs take {sync_ms} ms"),
    };
    format!("{what} at {} ms", fault.at_ms)
}

fn target_name(target: ClogTarget) -> String {
    match target {
        ClogTarget::Agent(a) => format!("agent {a}"),
        ClogTarget::Link([a, b]) => format!("link {a}–{b}"),
    }
}

/// The simulator as a shrink oracle: the first invariant `scenario` violates at `seed` (with
/// [`crate::run::RunOptions::default`]), `panic` when the simulator panics, `None` when the
/// run is clean.
#[cfg(madsim)]
pub fn violation_at(scenario: &Scenario, seed: u64) -> Option<String> {
    let attempt = || crate::run::run(scenario, seed, Default::default(), crate::run::RunOptions::default()).record;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)) {
        Ok(record) => record.violations.first().map(|v| v.invariant.clone()),
        Err(_) => Some("panic".to_owned()),
    }
}

fn to_text(s: &Scenario) -> Option<String> {
    toml::to_string(s).ok()
}

/// The minimized scenario as a file: a comment header (original file, seed, invariant, sizes,
/// the reproduce command), then the scenario as TOML. `name` is the minimized scenario's name.
pub fn render(shrunk: &Shrunk, original: &Path, params: &[(String, String)], seed: u64, out: &Path) -> String {
    let mut scenario = shrunk.scenario.clone();
    scenario.name = format!("{}-min", scenario.name);
    scenario.sweep.clear();
    let point = if params.is_empty() {
        String::new()
    } else {
        let labels: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(" (sweep point {})", labels.join(", "))
    };
    scenario.description = String::new();
    let mut text = format!(
        "# Minimized by `bftsim shrink` from {}{point} at seed {seed}: still violates `{}` (size {} → {}, {} runs{}).\n",
        original.display(),
        shrunk.invariant,
        shrunk.original_size,
        shrunk.size,
        shrunk.runs,
        if shrunk.budget_exhausted { ", budget exhausted" } else { "" }
    );
    text.push_str(&format!("# Replay: bftsim reproduce {} --seed {seed}\n", out.display()));
    text.push_str(&scenario.to_minimal_toml());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
description = \"test\"
[agents]
count = 7
[workload]
sessions = 16
candidates = 4
concurrency = 3
[byzantine]
count = 2
strategy = \"equivocate\"
agents = [5, 6]
[network]
drop = 0.2
duplicate = 0.1
latency_ms = [40, 200]
tail = { kind = \"pareto\" }
[[faults]]
at_ms = 100
kind = \"crash\"
agent = 6
[[faults]]
at_ms = 200
kind = \"partition\"
groups = [[0, 1], [2, 3, 4, 5, 6]]
[[faults]]
at_ms = 300
kind = \"heal\"
[[faults]]
at_ms = 400
kind = \"restart\"
agent = 6
[[faults]]
at_ms = 500
kind = \"clog\"
link = [1, 6]
[expect]
safety = false
liveness = false
";

    fn base() -> Scenario {
        scenario::parse(BASE, Path::new("scenarios/base.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn opts(max_runs: usize) -> ShrinkOptions {
        ShrinkOptions { max_runs }
    }

    #[test]
    fn size_is_the_documented_sum() {
        let s = base();
        // faults 5 + agents 7 + byzantine 2 + sessions 16 + candidates 4 + concurrency 3
        // + drop 20 + duplicate 10 + latency 200/10 + tail 1
        assert_eq!(size(&s), 5 + 7 + 2 + 16 + 4 + 3 + 20 + 10 + 20 + 1);
    }

    #[test]
    fn an_always_failing_oracle_shrinks_to_the_floor() {
        let shrunk =
            shrink(&base(), opts(10_000), |_| Some("agreement".into()), |_| {}).unwrap_or_else(|e| panic!("{e}"));
        let s = &shrunk.scenario;
        assert!(!shrunk.budget_exhausted);
        assert_eq!(shrunk.invariant, "agreement");
        assert!(s.faults.is_empty());
        assert_eq!((s.agents.count, s.byzantine.count, s.byzantine.agents.as_deref()), (1, 0, None));
        assert_eq!((s.workload.sessions, s.workload.candidates, s.workload.concurrency), (1, 2, 1));
        assert_eq!((s.network.drop, s.network.duplicate, s.network.tail), (0.0, 0.0, None));
        assert_eq!(s.network.latency_ms, [1, 1]);
        assert_eq!(shrunk.size, 1 + 1 + 2 + 1);
        assert_eq!(shrunk.original_size, size(&base()));
        // No Byzantine agent is left, so no behaviour is named either.
        assert_eq!(s.byzantine, Byzantine::default());
        // Untouched: protocol, expectations.
        assert_eq!(s.expect, base().expect);
        assert_eq!(s.protocol, base().protocol);
    }

    #[test]
    fn a_different_invariant_is_rejected() {
        // Anything with fewer than 10 sessions fails "liveness" instead: the shrinker must not
        // go below 10 sessions, although those candidates still fail.
        let oracle =
            |s: &Scenario| Some(if s.workload.sessions < 10 { "liveness".to_owned() } else { "agreement".to_owned() });
        let shrunk = shrink(&base(), opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shrunk.scenario.workload.sessions, 10);
        assert_eq!(shrunk.invariant, "agreement");
        // And a clean run is rejected as well.
        let oracle = |s: &Scenario| (s.agents.count >= 4).then(|| "agreement".to_owned());
        let shrunk = shrink(&base(), opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shrunk.scenario.agents.count, 4);
    }

    #[test]
    fn the_fault_that_matters_is_kept_with_what_it_needs() {
        // Fails only while the partition is there, and only with agent 6 Byzantine.
        let oracle = |s: &Scenario| {
            let partitioned = s.faults.iter().any(|f| matches!(f.action, FaultAction::Partition { .. }));
            let byz6 = s.byzantine.agents.as_ref().is_some_and(|a| a.contains(&6));
            (partitioned && byz6).then(|| "agreement".to_owned())
        };
        let shrunk = shrink(&base(), opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        let s = &shrunk.scenario;
        assert_eq!(s.faults.len(), 1, "{:?}", s.faults);
        assert!(matches!(s.faults[0].action, FaultAction::Partition { .. }));
        assert_eq!(s.agents.count, 7, "agent 6 must exist");
        assert_eq!(s.byzantine.agents, Some(vec![6]));
        assert!(shrunk.size < shrunk.original_size);
        // Every step was a valid scenario and sizes never grew.
        let sizes: Vec<u64> = shrunk.steps.iter().map(|s| s.size).collect();
        assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "{sizes:?}");
    }

    #[test]
    fn fewer_agents_keep_faults_and_byzantine_lists_valid() {
        let search = Search {
            invariant: String::new(),
            within_liveness_model: false,
            runs: 0,
            max_runs: 1,
            seen: BTreeMap::new(),
            original_byzantine: 2,
            min_candidates: 2,
            steps: vec![],
        };
        let c = search.with_agents(&base(), 3);
        assert_eq!(c.byzantine.count, 2);
        assert_eq!(c.byzantine.agents, None, "5 and 6 are gone, so the list is dropped");
        // The crash/restart of 6 and the clog of link 1–6 are gone; the partition keeps
        // [[0, 1], [2]].
        let kinds: Vec<&FaultAction> = c.faults.iter().map(|f| &f.action).collect();
        assert_eq!(
            kinds,
            vec![&FaultAction::Partition { groups: vec![vec![0, 1], vec![2]], one_way: false }, &FaultAction::Heal]
        );
        let text = to_text(&c).unwrap_or_default();
        assert!(scenario::parse(&text, Path::new("x.toml")).is_ok(), "{text}");
        let c = search.with_agents(&base(), 1);
        assert_eq!(c.byzantine.count, 1);
        assert!(c.faults.iter().all(|f| f.action == FaultAction::Heal));
    }

    /// `bftsim explore --seed 3` run 10316 (twins): agent 0 is a twin, its second copy sits in
    /// a round-0 partition with agent 2. Its liveness failure does not need the twin, so the
    /// twin is the first thing the shrinker removes, and then one agent; the minimized file
    /// used to keep `byzantine.strategy = "twin"` and so read as a twin in a committee of 3
    /// (f_max = 0), whose liveness is not promised.
    const TWINS_10316: &str = "\
[agents]
count = 4
[byzantine]
agents = [0]
count = 1
strategy = \"twin\"
[network]
drop = 0.09
latency_ms = [1, 20]
[[round_partitions]]
groups = [[0, 1, 3], [2, \"0'\"]]
round = 0
session = 0
until_ms = 964
[workload]
candidates = 3
sessions = 1
";

    #[test]
    fn a_shrunk_file_names_no_behaviour_that_no_agent_has() {
        let original = scenario::parse(TWINS_10316, Path::new("twins.toml")).unwrap_or_else(|e| panic!("{e}"));
        // Fails whatever the Byzantine agents, while agent 2 exists.
        let oracle = |s: &Scenario| (s.agents.count >= 3).then(|| "liveness".to_owned());
        let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        let s = &shrunk.scenario;
        assert_eq!((s.agents.count, s.byzantine.count), (3, 0));
        assert_eq!(s.byzantine, Byzantine::default());
        let text = render(&shrunk, Path::new("twins.toml"), &[], 5, Path::new("out/twins.min.toml"));
        assert!(!text.contains("twin\""), "a run without a twin, written as one:\n{text}");
        assert!(!text.contains("0'"), "{text}");
        // The committee of 3 with nobody faulty promises liveness: the finding stands.
        let back = scenario::parse(&text, Path::new("out/twins.min.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(back.promises_liveness() && back.default_liveness());
        // A mix keeps only the behaviours of the agents it still has.
        let mut mixed = original.clone();
        mixed.byzantine.strategies = Some(vec![scenario::Behaviour::Twin, scenario::Behaviour::Honest]);
        forget_unused_behaviours(&mut mixed);
        assert_eq!(mixed.byzantine.strategies, Some(vec![scenario::Behaviour::Twin]));
    }

    #[test]
    fn a_liveness_violation_stays_within_the_fault_model() {
        // The twin is needed, and the file says `expect.liveness = true`: without the model's
        // promise kept, the shrinker went down to one agent (a Byzantine one) with liveness
        // still checked, because the file said so.
        let text = format!("{TWINS_10316}[expect]\nliveness = true\n");
        let original = scenario::parse(&text, Path::new("twins.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(original.default_liveness());
        let oracle = |s: &Scenario| (s.byzantine.count >= 1).then(|| "liveness".to_owned());
        let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        let s = &shrunk.scenario;
        assert_eq!((s.agents.count, s.byzantine.count), (4, 1), "n ≥ 3f + 1 is kept");
        assert!(s.default_liveness());
        // A safety violation is not bound by it: what safety the committee still promises
        // beyond f_max is the oracle's to say (`oracle::Promises`, quorum arithmetic).
        let oracle = |s: &Scenario| (s.byzantine.count >= 1).then(|| "agreement".to_owned());
        let shrunk = shrink(&original, opts(10_000), oracle, |_| {}).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((shrunk.scenario.agents.count, shrunk.scenario.byzantine.count), (1, 1));
    }

    #[test]
    fn removing_a_crash_takes_its_restart_along() {
        let faults = consistent(base().faults.into_iter().skip(1).collect());
        assert!(faults.iter().all(|f| !matches!(f.action, FaultAction::Restart { .. })));
        assert_eq!(faults.len(), 3);
    }

    #[test]
    fn the_budget_bounds_the_runs() {
        let mut calls = 0;
        let shrunk = shrink(
            &base(),
            opts(5),
            |_| {
                calls += 1;
                Some("agreement".into())
            },
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((calls, shrunk.runs), (5, 5));
        assert!(shrunk.budget_exhausted);
        assert!(shrunk.size < shrunk.original_size);
    }

    #[test]
    fn nothing_to_shrink_and_sweeps_are_errors() {
        assert_eq!(shrink(&base(), opts(10), |_| None, |_| {}).err(), Some(ShrinkError::NoFailure));
        let sweep = scenario::parse("[sweep]\n\"network.drop\" = [0.0, 0.1]\n", Path::new("s.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shrink(&sweep, opts(10), |_| Some("x".into()), |_| {}).err(), Some(ShrinkError::Sweep));
        assert_eq!(shrink(&base(), opts(0), |_| Some("x".into()), |_| {}).err(), Some(ShrinkError::NoBudget));
    }

    #[test]
    fn the_rendered_file_parses_back_with_a_header() {
        let shrunk = shrink(&base(), opts(30), |_| Some("agreement".into()), |_| {}).unwrap_or_else(|e| panic!("{e}"));
        let out = Path::new("out/base-seed7.min.toml");
        let text = render(&shrunk, Path::new("scenarios/base.toml"), &[], 7, out);
        assert!(text.starts_with("# Minimized by `bftsim shrink` from scenarios/base.toml at seed 7: "), "{text}");
        assert!(text.contains("still violates `agreement`"));
        assert!(text.contains("bftsim reproduce out/base-seed7.min.toml --seed 7"));
        assert!(text.contains(&format!("size {} → {}", shrunk.original_size, shrunk.size)));
        assert!(text.lines().count() <= 15, "{text}");
        let back = scenario::parse(&text, out).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.name, "base-min");
        assert!(back.sweep.is_empty());
        assert_eq!(size(&back), shrunk.size);
        assert_eq!(
            (back.workload, back.network, back.faults),
            (shrunk.scenario.workload, shrunk.scenario.network, shrunk.scenario.faults.clone())
        );
    }

    #[test]
    fn value_candidates() {
        assert_eq!(lower(20, 1), vec![1, 10, 19]);
        assert_eq!(lower(2, 1), vec![1]);
        assert_eq!(lower(3, 2), vec![2]);
        assert_eq!(lower(1, 1), Vec::<u64>::new());
        assert_eq!(lower_probability(0.2), vec![0.0, 0.1, 0.19]);
        assert_eq!(lower_probability(0.05), vec![0.0, 0.02, 0.04]);
        assert_eq!(lower_probability(0.01), vec![0.0]);
        assert_eq!(lower_probability(0.0), Vec::<f64>::new());
    }
}
