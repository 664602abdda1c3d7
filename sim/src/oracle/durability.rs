//! The durability invariants: what a crash that loses unsynced writes, a damaged disk and a
//! restart must never do (docs/protocol.md, "Restart and catch-up").
//!
//! | invariant | checked when | meaning |
//! |---|---|---|
//! | `acknowledged-durable` | the opener acknowledges a session, restarts, and an honest agent decides | an acknowledged session id is never given to another query, a restarted opener still holds every acknowledged session not yet decided (with at most f_max Byzantine agents: `Promises::opener_keeps_pending`), and a decision of an acknowledged id is of the acknowledged query |
//! | `no-equivocation-across-restarts` | an honest agent's own signed message leaves it | an honest agent never lets two different signed messages out for one (session, round, kind), across restarts |
//! | `corruption-detected` | an agent restarts | a record the simulator damaged is never replayed as whole (the restart refuses it, or cuts the log before it) |
//! | `catch-up` | every step | a restarted honest agent decides every session an honest agent decided within `expect.catch_up_ms` of the latest of its restart, that decision and the run's last fault |

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::{Message, VoteKind};
use consensus_core::sign::Signature;
use consensus_core::{AgentId, SessionId, TimeMs};

/// The key of an agent's own signed message: session, kind (0 vote, 1 proposal, 2 prevote,
/// 3 precommit), round (0 for votes).
pub type SignedKey = (SessionId, u8, u32);

/// One own signed message as it left its agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// What it is about.
    pub key: SignedKey,
    /// Its signature: deterministic signatures differ exactly when the signed bytes do.
    pub signature: Signature,
    /// What it says, for the report.
    pub what: What,
}

/// What an own signed message says, for a report (computed only then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// A vote for a candidate with a confidence (ppm).
    Vote(u32, u32),
    /// A proposal with a valid round (its value: the signatures tell the two apart).
    Proposal(Option<u32>),
    /// A prevote or precommit of a value (short id) or nil.
    RoundVote(Option<u64>),
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::Vote(c, confidence) => write!(f, "a vote for candidate {c} (confidence {confidence} ppm)"),
            What::Proposal(Some(r)) => write!(f, "a proposal (valid round {r})"),
            What::Proposal(None) => write!(f, "a proposal (no valid round)"),
            What::RoundVote(None) => write!(f, "nil"),
            What::RoundVote(Some(v)) => write!(f, "value {v:016x}"),
        }
    }
}

impl Signed {
    /// The own signed message `message` carries when `me` signed it.
    pub fn of(me: AgentId, message: &Message) -> Option<Signed> {
        let (key, signature, what) = match message {
            Message::Vote(v) if v.vote.agent == me => {
                ((v.vote.session, 0, 0), &v.signature, What::Vote(v.vote.candidate.0, v.vote.confidence.raw()))
            }
            Message::Proposal(p) if p.proposer == me => {
                // Not the value id: hashing the value on every proposal sent costs too much.
                ((p.value.session, 1, p.round), &p.signature, What::Proposal(p.valid_round))
            }
            Message::RoundVote(v) if v.agent == me => {
                let kind = if v.kind == VoteKind::Prevote { 2 } else { 3 };
                ((v.session, kind, v.round), &v.signature, What::RoundVote(v.value.map(|x| x.short())))
            }
            _ => return None,
        };
        Some(Signed { key, signature: *signature, what })
    }
}

/// The kind byte of a proposal in a [`SignedKey`].
pub const PROPOSAL: u8 = 1;
/// The kind byte of a prevote in a [`SignedKey`].
pub const PREVOTE: u8 = 2;

fn kind_name(kind: u8) -> &'static str {
    match kind {
        0 => "vote",
        1 => "proposal",
        2 => "prevote",
        _ => "precommit",
    }
}

/// A violation found here: (invariant, detail).
pub type Found = (&'static str, String);

/// The durability checks of one run.
#[derive(Default)]
pub struct DurableChecks {
    /// Acknowledged session → the query it was acknowledged for.
    acknowledged: BTreeMap<SessionId, String>,
    /// Every own signed message an honest agent let out, by (agent, key).
    signed: BTreeMap<(AgentId, SignedKey), Signed>,
    /// Honest agents restarted with their log, while up: agent → restart time.
    restarted: BTreeMap<AgentId, TimeMs>,
    /// When each agent last restarted (kept while it is down again).
    last_restart: BTreeMap<AgentId, TimeMs>,
    /// Catch-up obligations: (deadline, agent, session), and the deadline by (agent, session).
    due: BTreeSet<(TimeMs, AgentId, SessionId)>,
    due_of: BTreeMap<(AgentId, SessionId), TimeMs>,
    /// `(expect.catch_up_ms, the run's last fault)` when the run promises catch-up.
    catch_up: Option<(TimeMs, TimeMs)>,
}

impl DurableChecks {
    /// Checks `catch-up` with `bound_ms` after `last_fault_ms` (only when the run promises
    /// liveness).
    pub fn with_catch_up(mut self, catch_up: Option<(TimeMs, TimeMs)>) -> DurableChecks {
        self.catch_up = catch_up;
        self
    }

    /// The opener acknowledged `session` for `query`.
    pub fn on_acknowledged(&mut self, session: SessionId, query: &str) -> Option<Found> {
        match self.acknowledged.get(&session) {
            Some(earlier) if earlier != query => Some((
                super::names::ACKNOWLEDGED_DURABLE,
                format!(
                    "the opener acknowledged {session} for {query:?}, but it had acknowledged that id for {earlier:?}"
                ),
            )),
            Some(_) => None,
            None => {
                self.acknowledged.insert(session, query.to_owned());
                None
            }
        }
    }

    /// Acknowledged sessions, with their queries.
    pub fn acknowledged(&self) -> &BTreeMap<SessionId, String> {
        &self.acknowledged
    }

    /// A restarted opener: every acknowledged session is still `pending` there or decided.
    pub fn on_opener_restart(
        &self,
        pending: impl Fn(SessionId) -> bool,
        decided: impl Fn(SessionId) -> bool,
    ) -> Option<Found> {
        let lost = self.acknowledged.iter().find(|(s, _)| !pending(**s) && !decided(**s))?;
        Some((
            super::names::ACKNOWLEDGED_DURABLE,
            format!(
                "the restarted opener lost acknowledged {} ({:?}): its log holds no such session and nobody decided it",
                lost.0, lost.1
            ),
        ))
    }

    /// An honest agent let `signed` out.
    pub fn on_signed(&mut self, agent: AgentId, signed: Signed) -> Option<Found> {
        let restart = self.last_restart.get(&agent).copied();
        match self.signed.get(&(agent, signed.key)) {
            Some(earlier) if earlier.signature != signed.signature => {
                let (session, kind, round) = signed.key;
                let restarted = restart.map_or_else(String::new, |t| format!(" (it last restarted at {t} ms)"));
                Some((
                    super::names::NO_EQUIVOCATION_ACROSS_RESTARTS,
                    format!(
                        "{agent} signed two different {}s for {session} round {round}: {}, then {}{restarted}",
                        kind_name(kind),
                        earlier.what,
                        signed.what
                    ),
                ))
            }
            Some(_) => None,
            None => {
                self.signed.insert((agent, signed.key), signed);
                None
            }
        }
    }

    /// Whether honest `agent` let out its own signed message of `key`.
    pub fn has_signed(&self, agent: AgentId, key: SignedKey) -> bool {
        self.signed.contains_key(&(agent, key))
    }

    /// `agent` crashed or stopped: no catch-up is due from it while it is down.
    pub fn on_down(&mut self, agent: AgentId) {
        self.restarted.remove(&agent);
        let sessions: Vec<SessionId> =
            self.due_of.range((agent, SessionId(0))..=(agent, SessionId(u64::MAX))).map(|((_, s), _)| *s).collect();
        for s in sessions {
            if let Some(deadline) = self.due_of.remove(&(agent, s)) {
                self.due.remove(&(deadline, agent, s));
            }
        }
    }

    /// Honest `agent` restarted with its log at `now`; `decided` are the sessions an honest
    /// agent decided (with the first decision's time) that it has not.
    pub fn on_restart(&mut self, agent: AgentId, now: TimeMs, honest: bool, undecided: &[(SessionId, TimeMs)]) {
        self.last_restart.insert(agent, now);
        if !honest || self.catch_up.is_none() {
            return;
        }
        self.restarted.insert(agent, now);
        for (session, decided_ms) in undecided {
            self.oblige(agent, *session, now.max(*decided_ms));
        }
    }

    /// When `agent` last restarted.
    pub fn last_restart(&self, agent: AgentId) -> Option<TimeMs> {
        self.last_restart.get(&agent).copied()
    }

    fn oblige(&mut self, agent: AgentId, session: SessionId, from_ms: TimeMs) {
        let Some((bound, last_fault)) = self.catch_up else { return };
        if self.due_of.contains_key(&(agent, session)) {
            return;
        }
        let deadline = from_ms.max(last_fault).saturating_add(bound);
        self.due.insert((deadline, agent, session));
        self.due_of.insert((agent, session), deadline);
    }

    /// Honest `agent` decided `session` (the session's first honest decision when `first`):
    /// its obligation is met, and every other restarted agent now owes it. Returns a
    /// violation when the decision is of another query than the one acknowledged.
    pub fn on_decide(
        &mut self,
        agent: AgentId,
        session: SessionId,
        query: &str,
        first: bool,
        now: TimeMs,
    ) -> Option<Found> {
        if let Some(deadline) = self.due_of.remove(&(agent, session)) {
            self.due.remove(&(deadline, agent, session));
        }
        if first {
            let owing: Vec<AgentId> = self.restarted.keys().copied().filter(|a| *a != agent).collect();
            for a in owing {
                self.oblige(a, session, now);
            }
        }
        match self.acknowledged.get(&session) {
            Some(acked) if acked != query => Some((
                super::names::ACKNOWLEDGED_DURABLE,
                format!("{agent} decided {session} for {query:?}, but the opener acknowledged that id for {acked:?}"),
            )),
            _ => None,
        }
    }

    /// The first catch-up obligation overdue at `now`.
    pub fn overdue(&self, now: TimeMs) -> Option<Found> {
        let (deadline, agent, session) = *self.due.first()?;
        if now <= deadline {
            return None;
        }
        let restarted = self.restarted.get(&agent).copied().unwrap_or(0);
        let bound = self.catch_up.map_or(0, |(b, _)| b);
        Some((
            super::names::CATCH_UP,
            format!(
                "{agent} restarted at {restarted} ms and has not decided {session} by {deadline} ms, although an honest \
                 agent decided it ({bound} ms after the latest of the restart, that decision and the last fault)"
            ),
        ))
    }

    /// Whether `agent` restarted after `t`.
    pub fn restarted_after(&self, agent: AgentId, t: TimeMs) -> bool {
        self.last_restart.get(&agent).is_some_and(|r| *r >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(kind: u8, byte: u8) -> Signed {
        Signed {
            key: (SessionId(1), kind, 2),
            signature: Signature([byte; 64]),
            what: What::RoundVote(Some(u64::from(byte))),
        }
    }

    #[test]
    fn a_second_different_message_for_one_key_is_equivocation() {
        let mut c = DurableChecks::default();
        assert_eq!(c.on_signed(AgentId(0), signed(2, 1)), None);
        assert_eq!(c.on_signed(AgentId(0), signed(2, 1)), None, "a re-send is the same message");
        assert_eq!(c.on_signed(AgentId(1), signed(2, 2)), None, "another agent");
        assert_eq!(c.on_signed(AgentId(0), signed(3, 2)), None, "another kind");
        c.on_restart(AgentId(0), 500, true, &[]);
        let (name, detail) = c.on_signed(AgentId(0), signed(2, 9)).unwrap_or_else(|| panic!("not caught"));
        assert_eq!(name, "no-equivocation-across-restarts");
        assert!(
            detail.contains(
                "two different prevotes for session-1 round 2: value 0000000000000001, then value 0000000000000009"
            ),
            "{detail}"
        );
        assert!(detail.contains("restarted at 500 ms"), "{detail}");
    }

    #[test]
    fn acknowledged_ids_are_never_reused_lost_or_decided_for_another_query() {
        let mut c = DurableChecks::default();
        assert_eq!(c.on_acknowledged(SessionId(0), "q0"), None);
        assert_eq!(c.on_acknowledged(SessionId(0), "q0"), None);
        assert!(c.on_acknowledged(SessionId(0), "q1").is_some_and(|(_, d)| d.contains("\"q1\"")));
        assert_eq!(c.on_acknowledged(SessionId(1), "q1"), None);
        assert_eq!(c.on_opener_restart(|s| s.0 == 1, |s| s.0 == 0), None);
        let (_, lost) = c.on_opener_restart(|_| false, |s| s.0 == 0).unwrap_or_else(|| panic!("not caught"));
        assert!(lost.contains("session-1"), "{lost}");
        assert_eq!(c.on_decide(AgentId(2), SessionId(1), "q1", true, 5), None);
        assert!(c.on_decide(AgentId(2), SessionId(0), "other", true, 5).is_some());
    }

    #[test]
    fn catch_up_is_owed_from_the_latest_of_restart_decision_and_last_fault() {
        let mut c = DurableChecks::default().with_catch_up(Some((1_000, 300)));
        c.on_restart(AgentId(2), 100, true, &[(SessionId(0), 50)]);
        assert_eq!(c.overdue(1_300), None, "due at 300 + 1000");
        assert!(c.overdue(1_301).is_some_and(|(n, d)| n == "catch-up" && d.contains("session-0")));
        c.on_decide(AgentId(2), SessionId(0), "q", false, 1_200);
        assert_eq!(c.overdue(5_000), None);
        // A new session decided later is owed too; a crash cancels what is owed.
        c.on_decide(AgentId(0), SessionId(1), "q", true, 2_000);
        assert!(c.overdue(3_001).is_some());
        c.on_down(AgentId(2));
        assert_eq!(c.overdue(9_000), None);
        // Not promised: nothing is owed.
        let mut off = DurableChecks::default();
        off.on_restart(AgentId(2), 100, true, &[(SessionId(0), 50)]);
        assert_eq!(off.overdue(u64::MAX), None);
        assert!(off.restarted_after(AgentId(2), 100));
    }
}
