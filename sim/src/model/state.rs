//! A model state and its transitions: one input to one real agent, its outputs performed on the
//! model's network and timers, the safety properties checked on what it did.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use consensus_core::protocol::messages::{Message, Round, VoteKind};
use consensus_core::protocol::{DecisionRecord, Input, Node, Output, Timer, TimerKind};
use consensus_core::{AgentId, AgentVote, TimeMs};
use reports::model::Violation;

use crate::oracle::{names, Oracle, Promises};

use super::{Honest, Links, Setup};

/// A message in flight (or seen by a Byzantine agent): the sender's address, the message, and
/// its canonical bytes, which order and identify it.
#[derive(Debug)]
pub struct Msg {
    /// The sender's address (an honest agent always sends as itself).
    pub from: AgentId,
    /// The message.
    pub message: Message,
    /// `postcard` of (from, message): equal bytes, equal messages.
    pub bytes: Vec<u8>,
}

impl Msg {
    /// A message with its canonical bytes.
    pub fn new(from: AgentId, message: Message) -> Arc<Msg> {
        let bytes = postcard::to_allocvec(&(from, &message)).unwrap_or_default();
        Arc::new(Msg { from, message, bytes })
    }
}

/// How a state was reached from its parent.
#[derive(Clone, Debug)]
pub enum Label {
    /// The initial state of one vote assignment (candidate per agent).
    Init(Vec<u32>),
    /// The network delivered `msg` to `to`.
    Deliver {
        /// The recipient.
        to: AgentId,
        /// What.
        msg: Arc<Msg>,
    },
    /// `agent`'s earliest timer fired.
    Fire {
        /// Whose.
        agent: AgentId,
        /// Its time (the agent's clock moves to it).
        at_ms: TimeMs,
        /// Which.
        timer: Timer,
    },
    /// A Byzantine agent sent `msg` to `to`, which received it at once.
    Inject {
        /// The recipient.
        to: AgentId,
        /// What.
        msg: Arc<Msg>,
    },
}

impl Label {
    /// The agent that takes the step (none for an initial state).
    pub fn agent(&self) -> Option<AgentId> {
        match self {
            Label::Init(_) => None,
            Label::Deliver { to, .. } | Label::Inject { to, .. } => Some(*to),
            Label::Fire { agent, .. } => Some(*agent),
        }
    }
}

/// What happened on the way to a state that its agents' snapshots do not show: the checks
/// need it, the state's key does not (it is a function of the agents' states).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Honest agents' own votes (for unanimity validity).
    pub votes: Vec<(AgentId, AgentVote)>,
    /// Honest decisions, in order.
    pub decisions: Vec<(AgentId, DecisionRecord)>,
    /// Every own signed message an honest agent let out, by (agent, kind, round): its bytes.
    pub signed: BTreeMap<(AgentId, u8, Round), Vec<u8>>,
}

/// One global state of the model.
#[derive(Clone)]
pub struct State {
    /// Each agent's canonical snapshot, by agent id (empty for a Byzantine agent).
    pub agents: Vec<Arc<[u8]>>,
    /// Each agent's clock.
    pub now: Vec<TimeMs>,
    /// Each agent's pending timers, ascending by (time, timer).
    pub timers: Vec<Vec<(TimeMs, Timer)>>,
    /// Messages in flight to honest agents, ascending by (recipient, bytes), no duplicates.
    pub net: Vec<(AgentId, Arc<Msg>)>,
    /// Messages the Byzantine agents received, ascending by bytes, no duplicates.
    pub seen: Vec<Arc<Msg>>,
    /// What the checks need from the path.
    pub history: Arc<History>,
    /// The agent in the middle of a block (docs/model.md, "Reductions"): its last step was
    /// silent, so only its own transitions are explored from here. `None`: every transition.
    pub owner: Option<AgentId>,
    /// In a block's middle with the lazy reduction: the owner's steps left out here (they
    /// commute with the silent step that led here), ascending by [`Label::order`].
    pub pruned: Option<Arc<Vec<Label>>>,
}

impl State {
    /// Whether honest agent `a` decided (by the history: its snapshot holds the same fact).
    pub fn decided(&self, a: AgentId) -> Option<&DecisionRecord> {
        self.history.decisions.iter().find(|(d, _)| *d == a).map(|(_, r)| r)
    }
}

/// A successor: how it was reached, the state, and the first property it violated.
pub struct Succ {
    /// The transition.
    pub label: Label,
    /// The state reached.
    pub state: State,
    /// A safety property the transition violated.
    pub violation: Option<Violation>,
    /// The step let nothing out (no message, vote or decision; timers are the agent's own).
    pub silent: bool,
}

/// What expanding one state gave.
pub struct Expansion {
    /// The successors explored.
    pub succs: Vec<Succ>,
    /// The owner had steps, but the lazy reduction left them all out: not a terminal state.
    pub dead_end: bool,
    /// Successors the lazy reduction left out.
    pub pruned: u64,
    /// The histories of the successors it left out: real steps, so the "sometimes"
    /// properties observe them too.
    pub pruned_histories: Vec<Arc<History>>,
}

/// A worker's scratch agents: restored from a state's snapshot for each transition. Their
/// coverage (not part of any state) accumulates over every transition the worker ran.
pub struct Worker<'a> {
    setup: &'a Setup,
    scratch: Vec<Option<Honest>>,
    memo: HashMap<MemoKey, MemoEntry>,
    /// Steps answered by the memo rather than by running the agent.
    pub memo_hits: u64,
    /// Successors left out as self-loops.
    pub self_loops: u64,
}

fn insert_sorted<T: Ord>(v: &mut Vec<T>, item: T) {
    if let Err(at) = v.binary_search(&item) {
        v.insert(at, item);
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct NetKey<'a>(AgentId, &'a [u8]);

fn insert_net(net: &mut Vec<(AgentId, Arc<Msg>)>, to: AgentId, msg: Arc<Msg>) {
    let key = NetKey(to, &msg.bytes);
    match net.binary_search_by(|(t, m)| NetKey(*t, &m.bytes).cmp(&key)) {
        Ok(_) => {}
        Err(at) => net.insert(at, (to, msg)),
    }
}

/// Adds `msg` to what the Byzantine agents saw.
pub fn insert_seen(seen: &mut Vec<Arc<Msg>>, msg: Arc<Msg>) {
    match seen.binary_search_by(|m| m.bytes.cmp(&msg.bytes)) {
        Ok(_) => {}
        Err(at) => seen.insert(at, msg),
    }
}

impl<'a> Worker<'a> {
    /// A worker for `setup`.
    pub fn new(setup: &'a Setup) -> Worker<'a> {
        let scratch = (0..setup.config.agents)
            .map(|i| (!setup.is_byzantine(AgentId(i))).then(|| setup.agent(AgentId(i))))
            .collect();
        Worker { setup, scratch, memo: HashMap::new(), memo_hits: 0, self_loops: 0 }
    }

    /// The coverage of the honest agents over every transition this worker ran.
    pub fn coverage(&self) -> consensus_core::protocol::coverage::Coverage {
        let mut total = consensus_core::protocol::coverage::Coverage::default();
        for a in self.scratch.iter().flatten() {
            total.merge(a.coverage());
        }
        total
    }

    /// The initial state of one vote assignment: every honest agent received the session's
    /// `Open` at time 0 (and its evaluation returned at once).
    pub fn initial(&mut self, assignment: &[u32]) -> Succ {
        let n = self.setup.config.agents as usize;
        let empty: Arc<[u8]> = Arc::from(Vec::new());
        let mut state = State {
            // Fresh agents: the scratch agents hold whatever state they last ran.
            agents: (0..n)
                .map(|i| match &self.scratch[i] {
                    Some(_) => Arc::from(self.setup.agent(AgentId(i as u32)).canonical_snapshot()),
                    None => empty.clone(),
                })
                .collect(),
            now: vec![0; n],
            timers: vec![Vec::new(); n],
            net: Vec::new(),
            seen: Vec::new(),
            history: Arc::new(History::default()),
            owner: None,
            pruned: None,
        };
        let open = Message::Open(self.setup.open.clone());
        let mut violation = None;
        for a in self.setup.honest.clone() {
            let input = Input::Receive { from: AgentId::CLIENT, message: open.clone() };
            let next = self.step(&state, a, input, None, None, assignment, Label::Init(assignment.to_vec()));
            violation = violation.or(next.violation);
            state = next.state;
        }
        Succ { label: Label::Init(assignment.to_vec()), state, violation, silent: false }
    }

    /// Every successor of `state` (with the reductions: only its owner's, when it has one).
    pub fn successors(&mut self, state: &State, injections: &[Arc<Msg>]) -> Vec<Succ> {
        self.expand(state, injections).succs
    }

    /// The successors of `state` with the reductions, and what the lazy reduction left out.
    pub fn expand(&mut self, state: &State, injections: &[Arc<Msg>]) -> Expansion {
        let mut out = self.all_successors(state, injections);
        // A reception that changed nothing (same snapshot and timers, no output, nothing
        // consumed) is a self-loop: with at-least-once links every message received stays
        // deliverable, and receiving it again is normally such a step.
        let before = out.len();
        out.retain(|s| {
            let Some(a) = s.label.agent() else { return true };
            let i = a.0 as usize;
            !(s.silent
                && s.state.agents[i] == state.agents[i]
                && s.state.timers[i] == state.timers[i]
                && s.state.net.len() == state.net.len())
        });
        self.self_loops += (before - out.len()) as u64;
        if !self.setup.config.reduce {
            return Expansion { succs: out, dead_end: false, pruned: 0, pruned_histories: Vec::new() };
        }
        for s in &mut out {
            s.state.owner = s.silent.then(|| s.label.agent()).flatten();
        }
        if out.is_empty() && state.owner.is_some() {
            // The owner is blocked: the block ends here, every agent may move.
            let boundary = State { owner: None, pruned: None, ..state.clone() };
            return self.expand(&boundary, injections);
        }
        if !self.setup.config.lazy {
            return Expansion { succs: out, dead_end: false, pruned: 0, pruned_histories: Vec::new() };
        }
        // The lazy reduction: this state's pruned steps are left out, and every silent
        // successor learns which of its owner's steps commute with it (`lazy.rs`).
        let mut index: Vec<usize> = (0..out.len()).collect();
        index.sort_by(|&a, &b| out[a].label.order(&out[b].label));
        let here = state.pruned.clone();
        let keep: Vec<bool> =
            out.iter().map(|s| !here.as_deref().is_some_and(|p| super::lazy::contains(p, &s.label))).collect();
        let mut sets = Vec::with_capacity(out.len());
        for (s, keep) in out.iter().zip(&keep) {
            sets.push(if *keep && s.silent { self.lazy_pruned(&out, &index, s, injections) } else { None });
        }
        let before = out.len();
        let mut succs = Vec::with_capacity(before);
        let mut pruned_histories = Vec::new();
        for ((mut s, keep), set) in out.into_iter().zip(keep).zip(sets) {
            if keep {
                s.state.pruned = set;
                succs.push(s);
            } else if !Arc::ptr_eq(&s.state.history, &state.history) {
                pruned_histories.push(s.state.history);
            }
        }
        // Steps left, but none needed the silent step before: a pruned dead end, not a
        // terminal state (every run through it is explored in another order).
        let pruned = (before - succs.len()) as u64;
        Expansion { dead_end: before > 0 && succs.is_empty(), pruned, succs, pruned_histories }
    }

    /// The links' semantics.
    pub(super) fn links(&self) -> Links {
        self.setup.config.links
    }

    pub(super) fn all_successors(&mut self, state: &State, injections: &[Arc<Msg>]) -> Vec<Succ> {
        let mut out = Vec::new();
        let mine = |to: &AgentId| state.owner.is_none_or(|o| o == *to);
        for (i, (to, msg)) in state.net.iter().enumerate() {
            if !mine(to) {
                continue;
            }
            let mut from = state.clone();
            // Exactly-once links consume the message; at-least-once links keep it deliverable
            // (the in-flight set is then every message sent to the agent).
            if self.setup.config.links == Links::ExactlyOnce {
                from.net.remove(i);
            }
            let input = Input::Receive { from: msg.from, message: msg.message.clone() };
            let memo = Some(Memo::Msg(msg.clone()));
            out.push(self.step(&from, *to, input, memo, None, &[], Label::Deliver { to: *to, msg: msg.clone() }));
        }
        for a in self.setup.honest.clone() {
            let Some(&(at_ms, timer)) = state.timers[a.0 as usize].first().filter(|_| mine(&a)) else { continue };
            let mut from = state.clone();
            from.timers[a.0 as usize].remove(0);
            let label = Label::Fire { agent: a, at_ms, timer };
            out.push(self.step(&from, a, Input::Timeout(timer), Some(Memo::Timer(timer)), Some(at_ms), &[], label));
        }
        for msg in injections {
            for to in self.setup.honest.clone().into_iter().filter(|a| mine(a)) {
                let input = Input::Receive { from: msg.from, message: msg.message.clone() };
                let memo = Some(Memo::Msg(msg.clone()));
                out.push(self.step(state, to, input, memo, None, &[], Label::Inject { to, msg: msg.clone() }));
            }
        }
        out
    }

    /// Agent `a` handles `input` (at its clock, moved to `fire_at` for a timer), then its
    /// outputs are performed: sends join the network, timers within the checked rounds are
    /// set, an evaluation request is answered at once with the agent's vote of `assignment`
    /// (or of the history), decisions and own signed messages are checked.
    ///
    /// `memo`: the input's interned identity, when the state's snapshots are interned (every
    /// expanded state): the agent's part of the step is then looked up, not recomputed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn step(
        &mut self,
        state: &State,
        a: AgentId,
        input: Input,
        memo: Option<Memo>,
        fire_at: Option<TimeMs>,
        assignment: &[u32],
        label: Label,
    ) -> Succ {
        let setup = self.setup;
        let i = a.0 as usize;
        let mut next = State { pruned: None, ..state.clone() };
        if let Some(at) = fire_at {
            next.now[i] = next.now[i].max(at);
        }
        let now = next.now[i];
        let candidate = assignment
            .get(i)
            .copied()
            .or_else(|| state.history.votes.iter().find(|(v, _)| *v == a).map(|(_, vote)| vote.candidate.0));
        let snapshot = &state.agents[i];
        let key = memo.as_ref().map(|input| MemoKey {
            snapshot: Arc::as_ptr(snapshot) as *const u8 as usize,
            now,
            input: match input {
                Memo::Msg(m) => MemoInput::Msg(Arc::as_ptr(m) as usize),
                Memo::Timer(t) => MemoInput::Timer(*t),
            },
            candidate,
        });
        let effect = match key.as_ref().and_then(|k| self.memo.get(k)) {
            Some(found) => {
                self.memo_hits += 1;
                found.effect.clone()
            }
            None => {
                let Some(effect) = self.run_agent(a, snapshot, now, input, candidate) else {
                    return Succ { label, state: next, violation: None, silent: false };
                };
                let effect = Arc::new(effect);
                if let Some(k) = key {
                    if self.memo.len() >= MEMO_CAPACITY {
                        self.memo.clear();
                    }
                    let pins = (snapshot.clone(), memo);
                    self.memo.insert(k, MemoEntry { _pins: pins, effect: effect.clone() });
                }
                effect
            }
        };
        let violation = apply(setup, state, &mut next, a, &effect, now);
        let silent = effect.events.iter().all(|e| matches!(e, Event::Schedule(..)));
        Succ { label, state: next, violation, silent }
    }

    /// Runs the real agent `a` from `snapshot` on `input`: what it did, in order (`None` for a
    /// Byzantine agent, which the model does not run).
    fn run_agent(
        &mut self,
        a: AgentId,
        snapshot: &Arc<[u8]>,
        now: TimeMs,
        input: Input,
        candidate: Option<u32>,
    ) -> Option<Effect> {
        let setup = self.setup;
        let agent = self.scratch[a.0 as usize].as_mut()?;
        let mut effect = Effect { snapshot: snapshot.clone(), events: Vec::new() };
        if agent.restore(snapshot).is_err() {
            effect.events.push(Event::RestoreFailed);
            return Some(effect);
        }
        let mut queue = vec![input];
        let mut outputs = Vec::new();
        while let Some(input) = queue.pop() {
            agent.handle(now, input, &mut outputs);
            for o in outputs.drain(..) {
                match o {
                    Output::Broadcast(m) => effect.events.push(Event::Send(None, Msg::new(a, m))),
                    Output::Send { to, message } if to.0 < setup.config.agents => {
                        effect.events.push(Event::Send(Some(to), Msg::new(a, message)));
                    }
                    Output::Schedule { timer, at_ms } if keep_timer(timer, setup.config.rounds) => {
                        effect.events.push(Event::Schedule(at_ms, timer));
                    }
                    Output::Evaluate(_) => {
                        if let Some(c) = candidate {
                            let vote = setup.vote(a, c);
                            effect.events.push(Event::Voted(vote.clone()));
                            queue.push(Input::LocalVote(vote));
                        }
                    }
                    Output::Decide(record) => effect.events.push(Event::Decide(*record)),
                    // Sends to the client, evidence, rejections, archive requests: nothing
                    // for the model's network (coverage counts the rejections).
                    _ => {}
                }
            }
        }
        effect.snapshot = Arc::from(agent.canonical_snapshot());
        Some(effect)
    }
}

/// A step's input as the memo knows it: the message received (its address identifies it: the
/// memo entry holds it, so the address is not reused while the entry lives) or the timer.
pub enum Memo {
    /// A message received.
    Msg(Arc<Msg>),
    /// A timer fired.
    Timer(Timer),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum MemoInput {
    /// A message received, by the address of its `Arc<Msg>`.
    Msg(usize),
    /// A timer fired.
    Timer(Timer),
}

/// A local step's identity: the agent's snapshot (interned: by address, held by the entry), its
/// clock, the input, and the candidate its evaluation returns. The agent is a deterministic
/// function of these (consensus-core is pure), so equal keys mean equal effects.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct MemoKey {
    snapshot: usize,
    now: TimeMs,
    input: MemoInput,
    candidate: Option<u32>,
}

/// Memo entries per worker before the memo is emptied (bounds its memory). 2^18: the lazy
/// reduction's check steps mostly make effects that are never stored; with 2^20 the n = 4,
/// f = 1 search at 300,000 states peaked at 3.7 GB and ran slower (86 s against 69 s).
const MEMO_CAPACITY: usize = 1 << 18;

/// A memo entry: the effect, and what the key's addresses point into (kept alive while the
/// entry lives, so no other snapshot or message can take their addresses).
struct MemoEntry {
    _pins: (Arc<[u8]>, Option<Memo>),
    effect: Arc<Effect>,
}

/// What one agent step did, in order: a function of the memo key alone.
struct Effect {
    /// The agent's canonical snapshot after the step.
    snapshot: Arc<[u8]>,
    events: Vec<Event>,
}

enum Event {
    /// A message to one agent (`Some`) or to every other agent (`None`).
    Send(Option<AgentId>, Arc<Msg>),
    Schedule(TimeMs, Timer),
    /// The agent's own evaluation, returned at once.
    Voted(AgentVote),
    Decide(DecisionRecord),
    RestoreFailed,
}

/// Performs `effect` of agent `a`'s step on `next` (a copy of `state`) and checks it: sends join
/// the network, timers are set, votes and decisions join the history.
fn apply(
    setup: &Setup,
    state: &State,
    next: &mut State,
    a: AgentId,
    effect: &Effect,
    now: TimeMs,
) -> Option<Violation> {
    let i = a.0 as usize;
    let mut history: Option<History> = None;
    let mut violation = None;
    for event in &effect.events {
        match event {
            Event::Send(to, msg) => {
                let h = history.get_or_insert_with(|| (*state.history).clone());
                violation = violation.or(check_signed(h, a, msg, now));
                let targets: Vec<AgentId> = match to {
                    Some(t) => vec![*t],
                    None => (0..setup.config.agents).map(AgentId).filter(|t| *t != a).collect(),
                };
                for t in targets {
                    if setup.is_byzantine(t) {
                        insert_seen(&mut next.seen, msg.clone());
                    } else {
                        insert_net(&mut next.net, t, msg.clone());
                    }
                }
            }
            Event::Schedule(at_ms, timer) => insert_sorted(&mut next.timers[i], (*at_ms, *timer)),
            Event::Voted(vote) => {
                let h = history.get_or_insert_with(|| (*state.history).clone());
                if !h.votes.iter().any(|(v, _)| *v == a) {
                    h.votes.push((a, vote.clone()));
                }
            }
            Event::Decide(record) => {
                let h = history.get_or_insert_with(|| (*state.history).clone());
                h.decisions.push((a, record.clone()));
                violation = violation.or(check_decisions(setup, h));
            }
            Event::RestoreFailed => {
                let detail = format!("agent {a}'s canonical snapshot did not restore");
                return Some(model_violation("model-snapshot", detail, now));
            }
        }
    }
    next.agents[i] = effect.snapshot.clone();
    if let Some(h) = history {
        next.history = Arc::new(h);
    }
    violation
}

/// Timers the model fires: the protocol's round timers within the checked rounds, vote
/// collection and the deadline. Retransmission and the status tick re-send what reliable
/// links already carry; the precommit timeout of the last round would start a round beyond
/// the bound (L60).
pub(super) fn keep_timer(timer: Timer, rounds: u32) -> bool {
    match timer.kind {
        TimerKind::VoteCollection | TimerKind::Deadline => true,
        TimerKind::Propose | TimerKind::Prevote => timer.round < rounds,
        TimerKind::Precommit => timer.round.saturating_add(1) < rounds,
        TimerKind::Retransmit | TimerKind::Status | TimerKind::Adversary => false,
    }
}

fn model_violation(invariant: &str, detail: String, now: TimeMs) -> Violation {
    Violation { invariant: invariant.to_owned(), step: 0, time_ms: now, detail }
}

/// No honest equivocation: an honest agent never lets out two different own votes of the
/// session, proposals of one round, or prevotes / precommits of one round.
fn check_signed(h: &mut History, a: AgentId, msg: &Msg, now: TimeMs) -> Option<Violation> {
    let (kind, round, bytes) = match &msg.message {
        Message::Vote(v) if v.vote.agent == a => (0u8, 0, postcard::to_allocvec(&v.vote).unwrap_or_default()),
        Message::Proposal(p) if p.proposer == a => {
            let id = consensus_core::protocol::ValueId::of(&p.value);
            (1, p.round, id.0.to_vec())
        }
        Message::RoundVote(v) if v.agent == a => {
            let kind = if v.kind == VoteKind::Prevote { 2 } else { 3 };
            (kind, v.round, postcard::to_allocvec(&v.value).unwrap_or_default())
        }
        _ => return None,
    };
    match h.signed.get(&(a, kind, round)) {
        Some(first) if *first != bytes => {
            let what = ["vote", "proposal", "prevote", "precommit"][usize::from(kind)];
            let detail = format!("honest {a} signed two different {what}s in round {round}");
            Some(model_violation(names::NO_EQUIVOCATION_ACROSS_RESTARTS, detail, now))
        }
        Some(_) => None,
        None => {
            h.signed.insert((a, kind, round), bytes);
            None
        }
    }
}

/// Agreement, integrity, external validity, unanimity validity, support validity and the
/// threshold: the simulator's own oracle, fed this path's honest votes and decisions.
fn check_decisions(setup: &Setup, h: &History) -> Option<Violation> {
    let n = u64::from(setup.config.agents);
    let mut oracle = Oracle::new(
        setup.keys.keyring.clone(),
        setup.registry.clone(),
        setup.engine,
        setup.protocol,
        setup.honest_set(),
    )
    .with_promises(Promises::of(n, u64::from(setup.config.byzantine)));
    oracle.on_client_spec(&setup.open);
    for (a, v) in &h.votes {
        oracle.on_local_vote(*a, v, 0, 0);
    }
    for (a, record) in &h.decisions {
        oracle.on_decide(*a, record, 0, record.at_ms);
    }
    oracle.violation().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_core::SessionId;

    #[test]
    fn timers_beyond_the_round_bound_and_retransmissions_are_not_fired() {
        let t = |kind, round| Timer { session: SessionId(0), round, kind };
        assert!(keep_timer(t(TimerKind::Propose, 1), 2));
        assert!(!keep_timer(t(TimerKind::Propose, 2), 2));
        assert!(keep_timer(t(TimerKind::Precommit, 0), 2));
        assert!(!keep_timer(t(TimerKind::Precommit, 1), 2), "it would start round 2");
        assert!(!keep_timer(t(TimerKind::Retransmit, 0), 2));
        assert!(keep_timer(t(TimerKind::Deadline, 0), 2));
    }
}
