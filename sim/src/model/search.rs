//! The explicit-state breadth-first search: level by level, the frontier expanded by worker
//! threads, successors deduplicated by the fingerprint of their canonical encoding.
//!
//! Hash-consing: every agent snapshot and every message is interned once (exact, by its
//! bytes), so a state is a short vector of ids; its fingerprint is the SHA-256 of that vector
//! (the first 128 bits), as TLC keeps fingerprints rather than states. Breadth-first order
//! makes the first violation found a shortest counterexample.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use consensus_core::protocol::coverage::{Coverage, Point};
use consensus_core::protocol::messages::{Round, ValueId};
use consensus_core::protocol::Timer;
use reports::model::Violation;
use sha2::{Digest, Sha256};

use super::byzantine::injections;
use super::state::{Expansion, History, Label, Msg, State, Worker};
use super::stats::{self, LevelStats, Stats};
use super::Setup;

/// Why the search stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Every reachable state was expanded.
    #[default]
    Complete,
    /// `--max-states` distinct states were reached.
    MaxStates,
    /// States at `--max-depth` were not expanded.
    MaxDepth,
    /// A safety property was violated.
    Violation,
}

/// A shortest path to a violation.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// What was violated.
    pub violation: Violation,
    /// From the initial state (its vote assignment first) to the violating transition.
    pub path: Vec<Label>,
}

/// What a check found and what it cost.
#[derive(Clone, Debug, Default)]
pub struct ModelReport {
    /// Why it stopped.
    pub stop: Stop,
    /// Distinct states (after deduplication).
    pub states: u64,
    /// Transitions executed (successors computed, duplicates included).
    pub transitions: u64,
    /// Initial states (vote assignments).
    pub initial: u64,
    /// The deepest level reached.
    pub depth: u32,
    /// Wall time.
    pub elapsed_ms: u128,
    /// Peak resident memory of the process (kB, from /proc; 0 where unknown).
    pub peak_rss_kb: u64,
    /// The first violation, with a shortest path to it.
    pub counterexample: Option<Counterexample>,
    /// Whether each "sometimes" property was reached (docs/model.md).
    pub sometimes: BTreeMap<&'static str, bool>,
    /// The honest agents' protocol coverage over every transition.
    pub coverage: Coverage,
    /// States from which no transition is enabled, by whether every honest agent decided.
    pub terminal_decided: u64,
    /// Terminal states where some honest agent did not decide within the checked rounds.
    pub terminal_undecided: u64,
    /// The decisions of the terminal states: per honest agent (ascending id), its decided
    /// (round, value), or `None`. What the reductions must preserve (tests compare them).
    pub end_states: BTreeSet<EndState>,
    /// Successors left out as self-loops (a reception that changed nothing).
    pub self_loops: u64,
    /// Successors the lazy reduction left out (they commute with the silent step before).
    pub lazy_pruned: u64,
    /// Block middles where the lazy reduction left out every step of the owner (not terminal).
    pub dead_ends: u64,
    /// Where the states came from, level by level (`stats.rs`).
    pub levels: Vec<LevelStats>,
}

/// The decisions of one terminal state: per honest agent (ascending id), its decided round and
/// value, or `None`.
pub type EndState = Vec<Option<(Option<Round>, Option<ValueId>)>>;

/// Interning tables: the exact hash-consing of agent states and messages.
#[derive(Default)]
struct Tables {
    agents: HashMap<Arc<[u8]>, u32>,
    msgs: HashMap<Arc<[u8]>, (u32, Arc<Msg>)>,
}

impl Tables {
    fn agent(&mut self, bytes: &Arc<[u8]>) -> (u32, Arc<[u8]>) {
        if let Some((k, id)) = self.agents.get_key_value(bytes) {
            return (*id, k.clone());
        }
        let id = self.agents.len() as u32;
        self.agents.insert(bytes.clone(), id);
        (id, bytes.clone())
    }

    fn msg(&mut self, msg: &Arc<Msg>) -> (u32, Arc<Msg>) {
        if let Some((id, m)) = self.msgs.get(msg.bytes.as_slice()) {
            return (*id, m.clone());
        }
        let id = self.msgs.len() as u32;
        self.msgs.insert(Arc::from(msg.bytes.as_slice()), (id, msg.clone()));
        (id, msg.clone())
    }

    /// Replaces the state's agents and messages by their interned copies (so equal parts share
    /// memory) and returns its fingerprint.
    fn canonicalise(&mut self, state: &mut State) -> u128 {
        self.fingerprints(state).0
    }

    /// As [`Tables::canonicalise`]: the state's fingerprint, and the fingerprint it has as a
    /// block boundary (no owner, nothing pruned).
    fn fingerprints(&mut self, state: &mut State) -> (u128, u128) {
        let mut key: Vec<u8> = Vec::with_capacity(256);
        for a in &mut state.agents {
            let (id, shared) = self.agent(a);
            *a = shared;
            key.extend_from_slice(&id.to_le_bytes());
        }
        for now in &state.now {
            key.extend_from_slice(&now.to_le_bytes());
        }
        for timers in &state.timers {
            key.extend_from_slice(&(timers.len() as u32).to_le_bytes());
            for (at, t) in timers {
                key.extend_from_slice(&at.to_le_bytes());
                push_timer(&mut key, t);
            }
        }
        key.extend_from_slice(&(state.net.len() as u32).to_le_bytes());
        for (to, m) in &mut state.net {
            let (id, shared) = self.msg(m);
            *m = shared;
            key.extend_from_slice(&to.0.to_le_bytes());
            key.extend_from_slice(&id.to_le_bytes());
        }
        key.extend_from_slice(&(state.seen.len() as u32).to_le_bytes());
        for m in &mut state.seen {
            let (id, shared) = self.msg(m);
            *m = shared;
            key.extend_from_slice(&id.to_le_bytes());
        }
        let boundary = first_128(&key);
        let mut fp = boundary;
        // The lazy reduction's pruned steps decide how a middle is expanded: part of its node.
        if let Some(pruned) = &state.pruned {
            let mut key = boundary.to_le_bytes().to_vec();
            let mut shared = Vec::with_capacity(pruned.len());
            for label in pruned.iter() {
                let label = match label {
                    Label::Deliver { to, msg } | Label::Inject { to, msg } => {
                        let (id, msg) = self.msg(msg);
                        key.push(if matches!(label, Label::Deliver { .. }) { 1 } else { 3 });
                        key.extend_from_slice(&to.0.to_le_bytes());
                        key.extend_from_slice(&id.to_le_bytes());
                        if matches!(label, Label::Deliver { .. }) {
                            Label::Deliver { to: *to, msg }
                        } else {
                            Label::Inject { to: *to, msg }
                        }
                    }
                    Label::Fire { agent, at_ms, timer } => {
                        key.push(2);
                        key.extend_from_slice(&agent.0.to_le_bytes());
                        key.extend_from_slice(&at_ms.to_le_bytes());
                        push_timer(&mut key, timer);
                        label.clone()
                    }
                    Label::Init(_) => label.clone(),
                };
                shared.push(label);
            }
            state.pruned = Some(Arc::new(shared));
            fp = first_128(&key);
        }
        // A block's middle is explored differently from its boundary: not the same node
        // (an odd multiplier keeps the owners' fingerprints distinct from each other).
        let fp = match state.owner {
            None => fp,
            Some(a) => fp ^ (u128::from(a.0) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        };
        (fp, boundary)
    }
}

/// The first 128 bits of the SHA-256 of `key`.
fn first_128(key: &[u8]) -> u128 {
    let digest = Sha256::digest(key);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

fn push_timer(key: &mut Vec<u8>, t: &Timer) {
    key.extend_from_slice(&t.session.0.to_le_bytes());
    key.extend_from_slice(&t.round.to_le_bytes());
    key.push(t.kind as u8);
}

/// A worker's cache of the Byzantine agents' possible messages, by what they saw (the
/// interned messages' addresses: interned messages live as long as the search).
struct Injections<'a> {
    setup: &'a Setup,
    cache: HashMap<Vec<usize>, Arc<Vec<Arc<Msg>>>>,
}

impl Injections<'_> {
    fn of(&mut self, state: &State) -> Arc<Vec<Arc<Msg>>> {
        let key: Vec<usize> = state.seen.iter().map(|m| Arc::as_ptr(m) as usize).collect();
        if let Some(found) = self.cache.get(&key) {
            return found.clone();
        }
        let made = Arc::new(injections(self.setup, &state.seen));
        if self.cache.len() > 100_000 {
            self.cache.clear();
        }
        self.cache.insert(key, made.clone());
        made
    }
}

/// Expanded states per parallel batch.
const BATCH: usize = 2_048;

/// Runs the check.
pub fn check(setup: &Setup) -> ModelReport {
    let started = Instant::now();
    let jobs = setup.config.jobs.max(1);
    let mut workers: Vec<(Worker<'_>, Injections<'_>)> =
        (0..jobs).map(|_| (Worker::new(setup), Injections { setup, cache: HashMap::new() })).collect();
    let mut tables = Tables::default();
    let mut seen: HashSet<u128> = HashSet::new();
    let mut terminals: HashSet<u128> = HashSet::new();
    let mut parents: Vec<(u32, Label)> = Vec::new();
    let mut sometimes = Sometimes::default();
    let mut report = ModelReport::default();
    let mut frontier: Vec<(u32, State)> = Vec::new();
    for assignment in setup.vote_assignments() {
        let mut init = workers[0].0.initial(&assignment);
        let fp = tables.canonicalise(&mut init.state);
        if seen.insert(fp) {
            let index = parents.len() as u32;
            parents.push((u32::MAX, init.label));
            sometimes.observe(&init.state.history);
            if let Some(v) = init.violation {
                report.counterexample = Some(Counterexample { violation: v, path: path_to(&parents, index) });
            }
            frontier.push((index, init.state));
        }
    }
    report.initial = frontier.len() as u64;
    let mut progress = Progress::new(setup.config.progress);
    let mut stats = Stats::default();
    'levels: while !frontier.is_empty() && report.counterexample.is_none() {
        if report.depth >= setup.config.max_depth {
            report.stop = Stop::MaxDepth;
            break;
        }
        let mut next: Vec<(u32, State)> = Vec::new();
        for batch in frontier.chunks(BATCH) {
            let expanded = expand(&mut workers, batch);
            for (parent, Expansion { succs, dead_end, pruned, pruned_histories }) in expanded {
                for history in &pruned_histories {
                    sometimes.observe(history);
                }
                if succs.is_empty() && !dead_end {
                    note_terminal(setup, &mut report, &mut tables, &mut terminals, &parent.1);
                }
                report.transitions += succs.len() as u64;
                report.lazy_pruned += pruned;
                report.dead_ends += u64::from(dead_end);
                stats.expanded(&succs, pruned, dead_end);
                for mut s in succs {
                    let (fp, boundary) = tables.fingerprints(&mut s.state);
                    // A boundary explores every transition, its block's middle a subset: a
                    // middle whose boundary was reached adds nothing.
                    if s.state.owner.is_some() && seen.contains(&boundary) {
                        continue;
                    }
                    if !seen.insert(fp) {
                        continue;
                    }
                    let index = parents.len() as u32;
                    parents.push((parent.0, s.label));
                    sometimes.observe(&s.state.history);
                    stats.new_state(&s.state);
                    if let Some(v) = s.violation {
                        report.counterexample = Some(Counterexample { violation: v, path: path_to(&parents, index) });
                        report.stop = Stop::Violation;
                        report.depth += 1;
                        break 'levels;
                    }
                    if seen.len() as u64 >= setup.config.max_states {
                        report.stop = Stop::MaxStates;
                        report.depth += 1;
                        break 'levels;
                    }
                    next.push((index, s.state));
                }
            }
            progress.tick(seen.len() as u64, report.depth, next.len());
        }
        stats.finish_level();
        if setup.config.progress {
            eprintln!("model: {}", stats::describe(stats.levels.last().unwrap_or(&LevelStats::default())));
        }
        frontier = next;
        if !frontier.is_empty() {
            report.depth += 1;
        }
    }
    if report.counterexample.is_some() {
        report.stop = Stop::Violation;
    }
    progress.done(seen.len() as u64, report.depth);
    report.states = seen.len() as u64;
    stats.finish_level();
    report.levels = stats.levels;
    for (w, _) in &workers {
        report.coverage.merge(&w.coverage());
        report.self_loops += w.self_loops;
    }
    report.sometimes = sometimes.finish(&report.coverage);
    report.elapsed_ms = started.elapsed().as_millis();
    report.peak_rss_kb = peak_rss_kb();
    report
}

/// Counts a terminal state (no successor) once, however its block reached it: decided by
/// every honest agent or not, and its honest agents' decisions as an end state.
fn note_terminal(
    setup: &Setup,
    report: &mut ModelReport,
    tables: &mut Tables,
    terminals: &mut HashSet<u128>,
    state: &State,
) {
    let mut copy = State { owner: None, pruned: None, ..state.clone() };
    if !terminals.insert(tables.canonicalise(&mut copy)) {
        return;
    }
    let all = setup.honest.iter().all(|a| state.decided(*a).is_some());
    *(if all { &mut report.terminal_decided } else { &mut report.terminal_undecided }) += 1;
    let decisions = setup.honest.iter().map(|a| state.decided(*a).map(|d| (d.round, d.value)));
    report.end_states.insert(decisions.collect());
}

/// Expands one batch of states over the workers' threads.
fn expand<'s>(
    workers: &mut [(Worker<'_>, Injections<'_>)],
    batch: &'s [(u32, State)],
) -> Vec<(&'s (u32, State), Expansion)> {
    let per = batch.len().div_ceil(workers.len()).max(1);
    let run = |worker: &mut (Worker<'_>, Injections<'_>), part: &'s [(u32, State)]| {
        part.iter()
            .map(|entry| {
                let inject = worker.1.of(&entry.1);
                (entry, worker.0.expand(&entry.1, &inject))
            })
            .collect::<Vec<_>>()
    };
    if workers.len() == 1 {
        return run(&mut workers[0], batch);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(batch.chunks(per))
            .map(|(worker, part)| scope.spawn(move || run(worker, part)))
            .collect();
        // A worker's panic is the checker's own bug: re-raised, never a silently smaller space.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

fn path_to(parents: &[(u32, Label)], mut index: u32) -> Vec<Label> {
    let mut path = Vec::new();
    while let Some((parent, label)) = parents.get(index as usize) {
        path.push(label.clone());
        index = *parent;
    }
    path.reverse();
    path
}

/// The "sometimes" properties: each must hold in some reachable state, or the check was
/// vacuous.
#[derive(Default)]
struct Sometimes {
    decided_round_0: bool,
    decided_round_1: bool,
    relocked_round_1: bool,
}

/// Names of the "sometimes" properties (docs/model.md).
pub mod sometimes {
    /// An honest agent decides in round 0.
    pub const DECIDE_ROUND_0: &str = "decide-in-round-0";
    /// An honest agent decides in round 1.
    pub const DECIDE_ROUND_1: &str = "decide-in-round-1";
    /// An honest agent locks in round 1 (precommits a value: L36–L40) on a value other than
    /// one an honest agent locked on in round 0 (which needed a round-0 polka on it).
    pub const RELOCK_ROUND_1: &str = "relock-in-round-1";
    /// V2 (too few votes) rejects a proposal.
    pub const V2: &str = "V2-rejects";
    /// V3 (a bad vote signature) rejects a proposal.
    pub const V3: &str = "V3-rejects";
    /// V4 (a claimed outcome that is not the aggregate) rejects a proposal.
    pub const V4: &str = "V4-rejects";
}

impl Sometimes {
    fn observe(&mut self, history: &History) {
        for (_, d) in &history.decisions {
            match d.round {
                Some(0) => self.decided_round_0 = true,
                Some(1) => self.decided_round_1 = true,
                _ => {}
            }
        }
        if !self.relocked_round_1 {
            // `History::signed` keys precommits as kind 3 with the value's bytes
            // (postcard of `Option<ValueId>`: a leading 1 for a value, 0 for nil).
            let locks = |round: u32| {
                history
                    .signed
                    .iter()
                    .filter(move |((_, kind, r), bytes)| *kind == 3 && *r == round && bytes.first() == Some(&1))
                    .map(|(_, bytes)| bytes)
            };
            self.relocked_round_1 = locks(1).any(|late| locks(0).any(|early| early != late));
        }
    }

    fn finish(&self, coverage: &Coverage) -> BTreeMap<&'static str, bool> {
        let reached = |name: &str| Point::from_name(name).is_some_and(|p| coverage.count(p) > 0);
        let mut out = BTreeMap::new();
        out.insert(sometimes::DECIDE_ROUND_0, self.decided_round_0);
        out.insert(sometimes::DECIDE_ROUND_1, self.decided_round_1);
        out.insert(sometimes::RELOCK_ROUND_1, self.relocked_round_1);
        out.insert(sometimes::V2, reached("V2-fail"));
        out.insert(sometimes::V3, reached("V3-fail"));
        out.insert(sometimes::V4, reached("V4-fail"));
        out
    }
}

/// The progress line: states, states per second, depth, frontier.
struct Progress {
    on: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(on: bool) -> Progress {
        Progress { on, started: Instant::now(), last: Instant::now() }
    }

    fn tick(&mut self, states: u64, depth: u32, frontier: usize) {
        if !self.on || self.last.elapsed().as_secs() < 2 {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        eprintln!(
            "model: {states} states ({:.0}/s), depth {depth}, next frontier {frontier}, {:.0} s",
            states as f64 / secs,
            secs
        );
    }

    fn done(&self, states: u64, depth: u32) {
        if self.on {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            eprintln!("model: done: {states} states ({:.0}/s), depth {depth}, {secs:.1} s", states as f64 / secs);
        }
    }
}

/// VmHWM of /proc/self/status, in kB (0 where there is no /proc).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, Votes};
    use consensus_core::AgentId;

    fn tiny(votes: Votes) -> Setup {
        let config = ModelConfig::honest(2, 1, votes);
        Setup::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_vote_assignment_is_an_initial_state() {
        let setup = tiny(Votes::Enumerate);
        let mut worker = Worker::new(&setup);
        let mut tables = Tables::default();
        let mut fps = HashSet::new();
        for a in setup.vote_assignments() {
            let mut init = worker.initial(&a);
            assert!(init.violation.is_none());
            assert_eq!(init.state.history.votes.len(), 2, "{a:?}: both agents voted");
            fps.insert(tables.canonicalise(&mut init.state));
        }
        assert_eq!(fps.len(), 4);
    }

    #[test]
    fn a_relock_is_a_round_1_lock_on_another_value_than_a_round_0_lock() {
        let lock = |v: u8| postcard::to_allocvec(&Some(consensus_core::protocol::ValueId([v; 32]))).unwrap_or_default();
        let nil = postcard::to_allocvec(&None::<consensus_core::protocol::ValueId>).unwrap_or_default();
        let observe = |signed: Vec<((AgentId, u8, u32), Vec<u8>)>| {
            let history = super::super::state::History { signed: signed.into_iter().collect(), ..Default::default() };
            let state = State {
                agents: Vec::new(),
                now: Vec::new(),
                timers: Vec::new(),
                net: Vec::new(),
                seen: Vec::new(),
                history: Arc::new(history),
                owner: None,
                pruned: None,
            };
            let mut s = Sometimes::default();
            s.observe(&state.history);
            s.relocked_round_1
        };
        let (a, b) = (AgentId(0), AgentId(1));
        assert!(observe(vec![((a, 3, 0), lock(1)), ((b, 3, 1), lock(2))]));
        assert!(!observe(vec![((a, 3, 0), lock(1)), ((b, 3, 1), lock(1))]), "the same value: no relock");
        assert!(!observe(vec![((a, 3, 0), nil.clone()), ((b, 3, 1), lock(2))]), "nil in round 0 is no lock");
        assert!(!observe(vec![((a, 2, 0), lock(1)), ((b, 3, 1), lock(2))]), "a prevote is no lock");
        assert!(!observe(vec![((a, 3, 0), lock(1)), ((b, 3, 1), nil)]));
    }

    #[test]
    fn memoised_steps_give_the_same_successors_as_running_the_agent() {
        // Block reduction only: the lazy reduction's own steps would count as memo hits too.
        let mut setup = tiny(Votes::Fixed(vec![0, 1]));
        setup.config.lazy = false;
        let mut tables = Tables::default();
        let mut worker = Worker::new(&setup);
        let mut init = worker.initial(&[0, 1]);
        tables.canonicalise(&mut init.state);
        let first: Vec<u128> =
            worker.successors(&init.state, &[]).into_iter().map(|mut s| tables.canonicalise(&mut s.state)).collect();
        assert_eq!(worker.memo_hits, 0);
        let again: Vec<u128> =
            worker.successors(&init.state, &[]).into_iter().map(|mut s| tables.canonicalise(&mut s.state)).collect();
        assert_eq!(worker.memo_hits, first.len() as u64, "every step of the second expansion came from the memo");
        let mut fresh = Worker::new(&setup);
        let computed: Vec<u128> =
            fresh.successors(&init.state, &[]).into_iter().map(|mut s| tables.canonicalise(&mut s.state)).collect();
        assert!(!first.is_empty());
        assert_eq!(first, again);
        assert_eq!(first, computed);
    }
}
