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
//! - `byzantine.full_power` (when an agent runs `full-power`): each family off, the rate 0,
//!   half, one hundredth less, the actions per input 1, half, one less;
//! - `expect.liveness_bound_ms` back to its default and `expect.liveness_rounds` removed, for a
//!   safety violation only;
//! - `[storage]` back to its defaults, whole, then `crash`, `sync_ms` and `compact_log_bytes`
//!   one at a time.
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
//! mix + (full-power families + round(100·rate) + actions per input, when an agent runs
//! full-power) + [storage] settings that differ from their defaults`. No change makes it larger.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::oracle::names;
use crate::scenario::{
    self, Behaviour, Byzantine, ByzantineStrategy, ClogTarget, Fault, FaultAction, FullPowerKnobs, Scenario, Storage,
};

mod axes;

use axes::*;

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
pub fn size_terms(s: &Scenario) -> [(&'static str, u64); 14] {
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
        ("full-power", full_power_size(s)),
        ("storage", storage_size(s)),
    ]
}

/// The `full-power` knobs' share of [`size`] when a Byzantine agent runs it: families on,
/// `round(100 × rate)`, actions per input; 0 otherwise.
fn full_power_size(s: &Scenario) -> u64 {
    if !uses_full_power(s) {
        return 0;
    }
    let k = &s.byzantine.full_power;
    k.families.len() as u64 + percent(k.rate) + u64::from(k.actions_per_input)
}

/// Whether a Byzantine agent of `s` runs `full-power`.
fn uses_full_power(s: &Scenario) -> bool {
    s.byzantine.behaviours().contains(&Behaviour::Core(ByzantineStrategy::FullPower))
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
    FullPower,
    Bound,
    Storage,
}

impl Kind {
    const ALL: [Kind; 15] = [
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
        Kind::FullPower,
        Kind::Bound,
        Kind::Storage,
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
            Kind::Faults => fault_candidates(s, &mut out),
            Kind::Agents => {
                for v in lower(u64::from(s.agents.count), 1) {
                    let Ok(v) = u32::try_from(v) else { continue };
                    let c = self.with_agents(s, v);
                    out.push((format!("agents.count {} → {v}", s.agents.count), c));
                }
            }
            Kind::Byzantine => byzantine_candidates(s, &mut out),
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
            Kind::Latency => latency_candidates(s, &mut out),
            Kind::Rules => rule_candidates(s, &mut out),
            // A safety violation does not depend on when the run would have ended; a liveness
            // violation does, so its bound is never lowered.
            Kind::Bound if self.invariant != "liveness" => bound_candidates(s, &mut out),
            Kind::Bound => {}
            Kind::Storage => storage_candidates(s, &mut out),
            Kind::FullPower if uses_full_power(s) => full_power_candidates(s, &mut out),
            Kind::FullPower => {}
            Kind::Mix => mix_candidates(s, &mut out),
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
mod tests;
