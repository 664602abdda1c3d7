//! `sync-requests`: whom an honest agent asks for certificates, and when (docs/protocol.md
//! L70–L71, L76, L80). `sync-serve-rate` ([`super::rates`]) judges the answering side; this
//! judges the asking side, from what the oracle sees of each step an honest agent takes: its
//! input, the `Sync`s it sends, the sessions it decides, its restarts.
//!
//! Every `Sync` an agent sends has one of five sources, each recognisable in a step:
//!
//! - **L76, the status tick**: in a step whose input is the status timer, the first `Sync`,
//!   `Sync(applied)` to the next member in turn (the active members of the newest registry but
//!   itself and the client, in id order; the turn advances at every pick, and the L80 chase's
//!   rotation picks from the same turn);
//! - **L70–L71, a session whose spec is unknown**: in a step whose input is the retransmit
//!   timer of session s, a `Sync(s)` followed at once by the re-armed retransmit timer of s; it
//!   goes to `others[(now / Δ) mod |others|]`, others the session's committee without the agent;
//! - **L71/L75 on buffered input and L79**: in a step whose input is a message from a, at most
//!   one `Sync(applied)` to a, before anything else of this list (for a `Sync(next)` from a,
//!   only when next < applied: L79 answers a peer behind);
//! - **L80, the chase**: the last `Sync` of any step, `Sync(applied)` to the chased peer.
//!
//! The oracle runs the chase exactly as the agent does (`Sync(next)` from a peer with next >
//! applied starts or raises a chase of it, L77/L79; after every input the agent asks the chased
//! peer for the next batch as soon as the last one is applied, again after Δ without an answer,
//! then the next member in turn, and gives up after 3 intervals without progress), on the
//! agent's `applied` (the sessions below the first it has not decided: every decision is an
//! output of the step that applies it) and the status turn (known from the agent's first
//! status `Sync` on), and judges every step: the `Sync`s it sent are exactly the ones the rules
//! send, where the rule's state is known. A violation: a status tick that asks nobody, the
//! wrong member or with another `next` than applied; an L71 request to another member than the
//! one in turn; a chase request missing, to the wrong peer, or sent when no rule sends one.
//!
//! What a crash loses: the agent rebuilds its state from the part of its log that was durable,
//! so after a restart the oracle knows neither its `applied`, nor its turn, nor its chase:
//! - `applied` is known again at the first `Sync(applied)` the oracle can recognise (the
//!   status tick, or the restart's own request, L75), provided every session the agent had
//!   decided before the restart is below it (else a kept decision could still move it);
//! - the turn at the first status tick (the restart's own request picks one too);
//! - the chase is known empty after the restart if the agent never had one (every state its
//!   log can hold had none), and otherwise once `applied` reaches every `next` any peer ever
//!   sent it (no chase can aim further). Until then the chase is not judged.
//!
//! Rotation is judged only while the active members never changed (the oracle's reference
//! registry): the agent's newest registry lags the oracle's, so after a change its list of
//! peers is not known.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::{Message, Output, TimerKind};
use consensus_core::{AgentId, SessionId, TimeMs};

/// L80: intervals without progress after which a chase is given up
/// (`consensus_core::protocol::agent::sync::MAX_CHASE_STALLS`, private there).
const MAX_CHASE_STALLS: u32 = 3;

/// What the input of a step was, as far as requests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepInput {
    /// The status timer (L76).
    Status,
    /// The retransmit timer of a session (L62, L70).
    Retransmit(SessionId),
    /// `Sync(next)` from a peer (L72–L79).
    Sync {
        /// The asker.
        from: AgentId,
        /// Its `next`.
        next: u64,
    },
    /// Another message from a peer (or the client).
    Message {
        /// The sender.
        from: AgentId,
    },
    /// The restart's `Recover` (L74–L75).
    Recover,
    /// Anything else (other timers, the agent's own evaluation, a malformed frame).
    Other,
}

/// The agent's chase (L80), as the oracle runs it; `peer` is `None` when the rotation picked
/// a member the oracle cannot name (the turn or the peers unknown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChaseModel {
    peer: Option<AgentId>,
    target: u64,
    until: u64,
    asked_ms: TimeMs,
    asked_at: u64,
    stalls: u32,
}

/// The chase, if the oracle knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChaseState {
    Known(Option<ChaseModel>),
    Unknown,
}

/// What the oracle knows of one honest agent's requesting state.
#[derive(Clone, Debug)]
struct Asker {
    /// Sessions below this are all decided (applied); `None` after a restart until known.
    applied: Option<u64>,
    /// Decided sessions at or above `applied` (when unknown: decided since the restart).
    decided: BTreeSet<u64>,
    /// The highest session decided before the last restart.
    before_restart: Option<u64>,
    /// The highest session ever decided.
    max_decided: Option<u64>,
    /// The status turn (index of the next pick, unreduced); `None` when unknown.
    turn: Option<u64>,
    chase: ChaseState,
    /// Whether the agent ever had (or may have had) a chase.
    chase_ever: bool,
    /// The highest `next` any peer sent it in a `Sync`.
    max_target: u64,
}

impl Default for Asker {
    fn default() -> Asker {
        Asker {
            applied: Some(0),
            decided: BTreeSet::new(),
            before_restart: None,
            max_decided: None,
            turn: Some(0),
            chase: ChaseState::Known(None),
            chase_ever: false,
            max_target: 0,
        }
    }
}

impl Asker {
    /// `applied` seen in a `Sync(applied)` the agent sent: known again if no decision kept
    /// from before the restart can lie above it.
    fn learn_applied(&mut self, applied: u64) {
        if self.applied.is_some() || self.before_restart.is_some_and(|m| m >= applied) {
            return;
        }
        self.decided.retain(|s| *s >= applied);
        self.applied = Some(applied);
        self.advance();
    }

    fn advance(&mut self) {
        let Some(mut applied) = self.applied else { return };
        while self.decided.remove(&applied) {
            applied += 1;
        }
        self.applied = Some(applied);
    }

    /// The next member in turn (`Agent::next_peer`): `None` when the agent has no peer,
    /// `Some(None)` when the oracle cannot name it.
    fn next_peer(&mut self, peers: Option<&[AgentId]>) -> Option<Option<AgentId>> {
        let Some(peers) = peers else {
            self.turn = None;
            return Some(None);
        };
        if peers.is_empty() {
            return None;
        }
        let Some(turn) = self.turn else { return Some(None) };
        self.turn = Some(turn.wrapping_add(1));
        Some(Some(peers[(turn % peers.len() as u64) as usize]))
    }
}

/// The chase's rules (L77, L80) as `Agent::start_chase` applies them.
fn start_chase(chase: &mut ChaseState, peer: AgentId, target: u64) {
    let ChaseState::Known(current) = chase else { return };
    let fresh = ChaseModel { peer: Some(peer), target, until: 0, asked_ms: 0, asked_at: 0, stalls: 0 };
    match current {
        Some(c) if c.peer == Some(peer) => c.target = c.target.max(target),
        Some(c) if c.target >= target => {}
        // The chased peer unknown: kept or raised gives the same chase only if no higher.
        Some(c) if c.peer.is_none() => *chase = ChaseState::Unknown,
        _ => *current = Some(fresh),
    }
}

/// The requests of one step the oracle recognised and still has to match.
struct Sent {
    syncs: Vec<(usize, AgentId, u64)>,
}

impl Sent {
    fn of(outputs: &[Output]) -> Sent {
        let syncs = outputs
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Output::Send { to, message: Message::Sync { next } } => Some((i, *to, next.0)),
                _ => None,
            })
            .collect();
        Sent { syncs }
    }

    fn take(&mut self, index: usize) -> Option<(AgentId, u64)> {
        let at = self.syncs.iter().position(|(i, _, _)| *i == index)?;
        let (_, to, next) = self.syncs.remove(at);
        Some((to, next))
    }
}

/// What the oracle knows of the agent's peers and the session's committee for one step.
pub struct StepView<'a> {
    /// The agent's peers in turn order, when known (the active members never changed).
    pub peers: Option<&'a [AgentId]>,
    /// For a retransmit step of session s: s's committee without the agent, if known.
    pub others: Option<Vec<AgentId>>,
    /// The retransmit interval Δ.
    pub interval_ms: TimeMs,
    /// `sync_batch`.
    pub batch: u64,
}

/// `sync-requests`'s state: per honest agent.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    agents: BTreeMap<AgentId, Asker>,
}

impl Requests {
    /// `agent` restarted: its applied count, turn and chase are what its log kept.
    pub fn on_restart(&mut self, agent: AgentId) {
        let a = self.agents.entry(agent).or_default();
        a.before_restart = a.max_decided;
        a.applied = None;
        a.decided.clear();
        a.turn = None;
        a.chase = if a.chase_ever { ChaseState::Unknown } else { ChaseState::Known(None) };
    }

    /// One step of honest `agent` at `now`: its input, outputs and the sessions it decided in
    /// them (`Output::Decide`). A violation's detail if a
    /// `Sync` it sent (or failed to send) breaks L71, L76 or L80.
    pub fn on_step(
        &mut self,
        agent: AgentId,
        input: StepInput,
        outputs: &[Output],
        decided: &[u64],
        now: TimeMs,
        view: &StepView<'_>,
    ) -> Option<String> {
        let a = self.agents.entry(agent).or_default();
        let mut sent = Sent::of(outputs);
        let mut found: Option<String> = None;
        let applied_before = a.applied;
        match input {
            StepInput::Retransmit(session) => {
                // L71: Sync(s) right before the re-armed retransmit timer of s.
                let l71 = outputs.windows(2).position(|w| {
                    matches!(&w[0], Output::Send { message: Message::Sync { next }, .. } if *next == session)
                        && matches!(&w[1], Output::Schedule { timer, .. }
                            if timer.kind == TimerKind::Retransmit && timer.session == session)
                });
                if let Some((to, _)) = l71.and_then(|i| sent.take(i)) {
                    let turn = now / view.interval_ms.max(1);
                    let expected =
                        view.others.as_ref().filter(|o| !o.is_empty()).map(|o| o[(turn % o.len() as u64) as usize]);
                    if let Some(expected) = expected.filter(|e| *e != to) {
                        found = Some(format!(
                            "{agent} asked {to} for {session} (L70-L71, its spec unknown) at {now} ms; the member in \
                             turn is {expected} (turn {turn} of the committee's other members)"
                        ));
                    }
                }
            }
            StepInput::Status => {
                let first = sent.syncs.first().map(|(i, _, _)| *i);
                match (first.and_then(|i| sent.take(i)), view.peers) {
                    (None, Some(peers)) if !peers.is_empty() => {
                        found = Some(format!(
                            "{agent}'s status tick at {now} ms sent no Sync (L76: Sync(applied) to the next of its {} \
                             peers in turn)",
                            peers.len()
                        ));
                    }
                    (None, _) => {}
                    (Some((to, next)), peers) => {
                        let expected = a.next_peer(peers).flatten();
                        if let Some(peers) = peers {
                            match peers.iter().position(|p| *p == to) {
                                Some(i) => a.turn = Some(i as u64 + 1),
                                None => {
                                    found = Some(format!(
                                        "{agent}'s status tick at {now} ms asked {to}, not one of its peers {peers:?} \
                                         (L76)"
                                    ));
                                }
                            }
                        }
                        if let Some(expected) = expected.filter(|e| *e != to) {
                            found.get_or_insert(format!(
                                "{agent}'s status tick at {now} ms asked {to}; the next member in turn is {expected} \
                                 (L76: each peer in turn)"
                            ));
                        }
                        match a.applied {
                            Some(applied) if applied != next => {
                                found.get_or_insert(format!(
                                    "{agent}'s status tick at {now} ms sent Sync({next}) although it applied \
                                     {applied} sessions (L76: Sync(applied))"
                                ));
                            }
                            Some(_) => {}
                            None => a.learn_applied(next),
                        }
                    }
                }
            }
            StepInput::Recover => {
                // L75: the restart asks the next member in turn (unless it asked within Δ).
                let _ = a.next_peer(view.peers);
                if a.chase == ChaseState::Known(None) {
                    if let Some((_, to, next)) = sent.syncs.first().copied() {
                        a.learn_applied(next);
                        if let Some(i) = view.peers.and_then(|p| p.iter().position(|x| *x == to)) {
                            a.turn = Some(i as u64 + 1);
                        }
                    }
                }
            }
            StepInput::Sync { from, next } => {
                a.max_target = a.max_target.max(next);
                match applied_before {
                    Some(applied) if next > applied => start_chase(&mut a.chase, from, next), // L77, L79
                    Some(_) => {}
                    None => a.chase = ChaseState::Unknown,
                }
            }
            StepInput::Message { .. } | StepInput::Other => {}
        }
        if let ChaseState::Known(Some(_)) | ChaseState::Unknown = a.chase {
            a.chase_ever = true;
        }
        for s in decided.iter().copied() {
            a.max_decided = Some(a.max_decided.map_or(s, |m| m.max(s)));
            if a.applied.is_none_or(|applied| s >= applied) {
                a.decided.insert(s);
            }
        }
        a.advance();
        let Some(applied) = a.applied else {
            if a.chase != ChaseState::Known(None) {
                a.chase = ChaseState::Unknown;
                a.turn = None;
            }
            return found;
        };
        // L80, after every input.
        let predicted = match a.chase {
            ChaseState::Unknown => {
                // An unknown chase may have rotated: the turn is known again at the next tick.
                a.turn = None;
                if applied >= a.max_target {
                    a.chase = ChaseState::Known(None);
                }
                return found;
            }
            ChaseState::Known(None) => None,
            ChaseState::Known(Some(mut c)) => 'chase: {
                if applied >= c.target {
                    a.chase = ChaseState::Known(None);
                    break 'chase None;
                }
                let asked = c.until > 0;
                let waited = now >= c.asked_ms.saturating_add(view.interval_ms);
                if asked && applied < c.until && !waited {
                    break 'chase None;
                }
                if asked && waited && applied == c.asked_at {
                    c.stalls += 1;
                    if c.stalls >= MAX_CHASE_STALLS {
                        a.chase = ChaseState::Known(None);
                        break 'chase None;
                    }
                    if c.stalls > 1 {
                        c.peer = a.next_peer(view.peers).unwrap_or(c.peer);
                    }
                } else if applied > c.asked_at {
                    c.stalls = 0;
                }
                c.until = applied.saturating_add(view.batch.max(1));
                c.asked_ms = now;
                c.asked_at = applied;
                a.chase = ChaseState::Known(Some(c));
                Some(c)
            }
        };
        if found.is_some() || input == StepInput::Recover {
            return found;
        }
        let mut rest: Vec<(AgentId, u64)> = sent.syncs.iter().map(|(_, to, next)| (*to, *next)).collect();
        if let Some(c) = predicted {
            let last = rest.pop();
            let matches = last.is_some_and(|(to, next)| next == applied && c.peer.is_none_or(|p| p == to));
            if !matches {
                let peer = c.peer.map_or_else(|| "the peer in turn".to_owned(), |p| p.to_string());
                let what = last.map_or_else(|| "no Sync".to_owned(), |(to, next)| format!("Sync({next}) to {to}"));
                return Some(format!(
                    "{agent} at {now} ms sent {what} as its last request; L80 asks {peer} for Sync({applied}) \
                     (chasing {} sessions; the batch asked last ends at {}, stalls {})",
                    c.target, c.until, c.stalls
                ));
            }
        }
        // Before the chase: at most one Sync(applied) back to the sender of a message (L71/L75
        // on buffered input, L79).
        let from = match input {
            // L79 answers a peer behind; a peer ahead is chased (L77), not answered.
            StepInput::Sync { from, next } if applied_before.is_some_and(|a| next < a) => Some(from),
            StepInput::Message { from } => Some(from),
            _ => None,
        };
        let allowed = |(to, next): (AgentId, u64)| from == Some(to) && applied_before == Some(next);
        if rest.len() > 1 || rest.first().is_some_and(|s| !allowed(*s)) {
            let what: Vec<String> = rest.iter().map(|(to, next)| format!("Sync({next}) to {to}")).collect();
            return Some(format!(
                "{agent} at {now} ms sent {} that no rule sends (L80's chase {}; L71/L79 answer only the sender \
                 with Sync(applied = {}))",
                what.join(", "),
                if predicted.is_some() { "asked already" } else { "asks nobody now" },
                applied_before.map_or_else(|| "?".to_owned(), |x| x.to_string())
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use consensus_core::protocol::Timer;

    use super::*;

    const PEERS: [AgentId; 3] = [AgentId(1), AgentId(2), AgentId(3)];

    fn view() -> StepView<'static> {
        StepView { peers: Some(&PEERS), others: None, interval_ms: 100, batch: 16 }
    }

    fn sync(to: u32, next: u64) -> Output {
        Output::Send { to: AgentId(to), message: Message::Sync { next: SessionId(next) } }
    }

    fn me() -> AgentId {
        AgentId(0)
    }

    /// L76 in turn, L77/L80 chase with progress, retry, rotation and give-up: all as the agent
    /// does it, no finding.
    #[test]
    fn the_correct_request_pattern_passes() {
        let mut r = Requests::default();
        let v = view();
        assert_eq!(r.on_step(me(), StepInput::Status, &[sync(1, 0)], &[], 500, &v), None);
        assert_eq!(r.on_step(me(), StepInput::Status, &[sync(2, 0)], &[], 1_000, &v), None);
        // Peer 3 is 40 ahead: asked at once (L77), the batch applied: the next one (L80).
        let step = r.on_step(me(), StepInput::Sync { from: AgentId(3), next: 40 }, &[sync(3, 0)], &[], 1_010, &v);
        assert_eq!(step, None);
        let batch: Vec<u64> = (0..16).collect();
        let step = r.on_step(me(), StepInput::Message { from: AgentId(3) }, &[sync(3, 16)], &batch, 1_020, &v);
        assert_eq!(step, None);
        // Nothing for Δ: asked again, then the next member in turn (3 then 1), then given up.
        assert_eq!(r.on_step(me(), StepInput::Other, &[], &[], 1_050, &v), None);
        assert_eq!(r.on_step(me(), StepInput::Other, &[sync(3, 16)], &[], 1_120, &v), None);
        assert_eq!(r.on_step(me(), StepInput::Other, &[sync(3, 16)], &[], 1_220, &v), None, "the turn was at 3");
        assert_eq!(r.on_step(me(), StepInput::Other, &[], &[], 1_320, &v), None, "given up");
        assert_eq!(r.on_step(me(), StepInput::Status, &[sync(1, 16)], &[], 1_500, &v), None, "turn moved past 3");
    }

    #[test]
    fn a_status_tick_to_the_same_peer_or_to_nobody_is_a_violation() {
        let mut r = Requests::default();
        let v = view();
        assert_eq!(r.on_step(me(), StepInput::Status, &[sync(1, 0)], &[], 500, &v), None);
        let found = r.on_step(me(), StepInput::Status, &[sync(1, 0)], &[], 1_000, &v);
        assert!(found.is_some_and(|f| f.contains("next member in turn is agent-2")));
        let mut r = Requests::default();
        let found = r.on_step(me(), StepInput::Status, &[], &[], 500, &v);
        assert!(found.is_some_and(|f| f.contains("sent no Sync")));
    }

    #[test]
    fn a_chase_that_stops_after_a_batch_applied_or_never_gives_up_is_a_violation() {
        let v = view();
        let mut r = Requests::default();
        r.on_step(me(), StepInput::Sync { from: AgentId(3), next: 40 }, &[sync(3, 0)], &[], 10, &v);
        let batch: Vec<u64> = (0..16).collect();
        let found = r.on_step(me(), StepInput::Message { from: AgentId(3) }, &[], &batch, 20, &v);
        assert!(found.is_some_and(|f| f.contains("L80 asks agent-3 for Sync(16)")));
        // Never giving up: a fourth request without progress.
        let mut r = Requests::default();
        r.on_step(me(), StepInput::Sync { from: AgentId(3), next: 40 }, &[sync(3, 0)], &[], 10, &v);
        r.on_step(me(), StepInput::Other, &[sync(3, 0)], &[], 110, &v);
        r.on_step(me(), StepInput::Other, &[sync(1, 0)], &[], 210, &v);
        let found = r.on_step(me(), StepInput::Other, &[sync(1, 0)], &[], 310, &v);
        assert!(found.is_some_and(|f| f.contains("no rule sends")));
    }

    /// L77: a claim from another peer no further than the chase's target keeps the chase, so a
    /// request to that peer (a chase started again) is one no rule sends.
    #[test]
    fn a_chase_restarted_by_a_nearer_claim_is_a_violation() {
        let v = view();
        let mut r = Requests::default();
        r.on_step(me(), StepInput::Sync { from: AgentId(3), next: 40 }, &[sync(3, 0)], &[], 10, &v);
        let found = r.on_step(me(), StepInput::Sync { from: AgentId(2), next: 30 }, &[sync(2, 0)], &[], 20, &v);
        assert!(found.is_some_and(|f| f.contains("no rule sends")));
        // The same claim, further than the target: a new chase of that peer, asked at once.
        let mut r = Requests::default();
        r.on_step(me(), StepInput::Sync { from: AgentId(3), next: 40 }, &[sync(3, 0)], &[], 10, &v);
        let step = r.on_step(me(), StepInput::Sync { from: AgentId(2), next: 50 }, &[sync(2, 0)], &[], 20, &v);
        assert_eq!(step, None);
    }

    /// L71: Sync(s) before the re-armed retransmit timer goes to the member in turn.
    #[test]
    fn an_l71_request_goes_to_the_member_in_turn() {
        let mut r = Requests::default();
        let v = StepView { others: Some(vec![AgentId(1), AgentId(2), AgentId(3)]), ..view() };
        let timer = Timer { session: SessionId(7), round: 0, kind: TimerKind::Retransmit };
        let out = |to| [sync(to, 7), Output::Schedule { timer, at_ms: 0 }];
        assert_eq!(r.on_step(me(), StepInput::Retransmit(SessionId(7)), &out(2), &[], 400, &v), None);
        let found = r.on_step(me(), StepInput::Retransmit(SessionId(7)), &out(0), &[], 500, &v);
        assert!(found.is_some_and(|f| f.contains("member in turn is agent-3")));
    }

    /// After a restart nothing is judged until applied and the chase are known again.
    #[test]
    fn a_restart_suspends_judgement_until_the_state_is_known() {
        let mut r = Requests::default();
        let v = view();
        r.on_step(me(), StepInput::Sync { from: AgentId(3), next: 40 }, &[sync(3, 0)], &[], 10, &v);
        r.on_restart(me());
        assert_eq!(r.on_step(me(), StepInput::Recover, &[sync(2, 0)], &[], 500, &v), None);
        assert_eq!(r.on_step(me(), StepInput::Other, &[sync(1, 0)], &[], 510, &v), None, "chase unknown");
        assert_eq!(r.on_step(me(), StepInput::Status, &[sync(3, 0)], &[], 1_000, &v), None, "turn unknown");
        // The chase the log may have kept may still rotate: the turn stays unknown until it ends.
        assert_eq!(r.on_step(me(), StepInput::Status, &[sync(3, 0)], &[], 1_500, &v), None, "chase unknown");
        let caught_up: Vec<u64> = (0..40).collect();
        assert_eq!(r.on_step(me(), StepInput::Message { from: AgentId(3) }, &[], &caught_up, 1_600, &v), None);
        assert_eq!(r.on_step(me(), StepInput::Status, &[sync(3, 40)], &[], 2_000, &v), None, "turn learnt");
        assert!(r.on_step(me(), StepInput::Status, &[sync(3, 40)], &[], 2_500, &v).is_some(), "turn known again");
    }
}
