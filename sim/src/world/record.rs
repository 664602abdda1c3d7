//! Recording: every event a runner, the client or the fault task reports becomes a trace event
//! (and a step of the trace hash), and the oracle checks its invariants where the event happens.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use consensus_core::protocol::{DecisionRecord, Evidence, Message, Rejection, Timer};
use consensus_core::runner::{Observer, RunnerEvent};
use consensus_core::{wire, AgentId, AgentVote, TimeMs};

use super::{client_or, World};
use crate::trace::{Key, TraceEvent};

impl World {
    /// Records a lost frame.
    pub fn record_drop(&mut self, now: TimeMs, from: AgentId, to: AgentId, reason: &'static str) {
        self.counts.dropped += 1;
        let (kind, session) = self.last_send;
        let key = Key { agent: from.0, peer: to.0, session, extra: reason.len() as u64 };
        self.trace.record(now, "drop", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "drop".into(),
            agent: client_or(from),
            peer: client_or(to),
            session: Some(session),
            detail: format!("{kind} lost: {reason}"),
            ..Default::default()
        });
    }

    /// Records a frame held by a clog.
    pub fn record_hold(&mut self, now: TimeMs, from: AgentId, to: AgentId) {
        let (kind, session) = self.last_send;
        let key = Key { agent: from.0, peer: to.0, session, ..Key::default() };
        self.trace.record(now, "hold", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "hold".into(),
            agent: client_or(from),
            peer: client_or(to),
            session: Some(session),
            detail: format!("{kind} held by a clog"),
            ..Default::default()
        });
    }

    /// Records a fault injection; returns its step.
    pub fn record_fault(&mut self, now: TimeMs, detail: String, agent: Option<AgentId>) -> u64 {
        let key = Key { agent: agent.map_or(u32::MAX, |a| a.0), extra: detail.len() as u64, ..Key::default() };
        self.trace.record(now, "fault", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "fault".into(),
            agent: agent.and_then(client_or),
            detail,
            ..Default::default()
        })
    }

    /// Records that `agent` compacted its log: a snapshot of its state, then a new log
    /// (`[storage] compact_log_bytes`).
    pub fn record_compaction(&mut self, now: TimeMs, agent: AgentId) {
        let key = Key { agent: agent.0, ..Key::default() };
        self.trace.record(now, "compact", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "compact".into(),
            agent: Some(agent.0),
            detail: format!("agent {} compacted its log: a snapshot of its state, then a new log", agent.0),
            ..Default::default()
        });
    }

    /// Notes what the client is about to send (for labelling drops).
    pub fn note_client_send(&mut self, kind: &'static str, session: u64) {
        self.last_send = (kind, session);
        self.counts.sent += 1;
    }

    /// Records a client event (`open`: session opened; `ack`: session acknowledged); returns
    /// its step.
    pub fn record_open(&mut self, now: TimeMs, session: u64, detail: String) -> u64 {
        self.record_client(now, "open", session, detail)
    }

    /// Records a client or opener event of `kind`; returns its step.
    pub fn record_client(&mut self, now: TimeMs, kind: &'static str, session: u64, detail: String) -> u64 {
        let key = Key { agent: u32::MAX, session, ..Key::default() };
        self.trace.record(now, kind, key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: kind.into(),
            session: Some(session),
            detail,
            ..Default::default()
        })
    }

    /// Records what a runner reports; `sent_ms` is when the frame of a `Deliver` was sent.
    fn event(&mut self, agent: AgentId, now: TimeMs, event: &RunnerEvent<'_>, sent_ms: Option<TimeMs>) {
        let honest = !self.byzantine.contains(&agent);
        // `catch-up` is owed by a deadline: checked at every step.
        self.oracle.check_catch_up(self.trace.step(), now);
        self.stop |= self.oracle.violation().is_some();
        if honest && matches!(event, RunnerEvent::Deliver { .. } | RunnerEvent::Timeout(_) | RunnerEvent::LocalVote(_))
        {
            // The step before this input performed all its outputs: the evidence it owed.
            self.oracle.on_input(agent, self.trace.step(), now);
            self.stop |= self.oracle.violation().is_some();
        }
        match event {
            RunnerEvent::Send { to, message, bytes } => self.sent(now, agent, honest, *to, message, *bytes),
            RunnerEvent::SendRaw { to, bytes } => self.sent_raw(now, agent, *to, bytes),
            RunnerEvent::Deliver { from, message } => {
                if honest {
                    self.oracle.on_delivered(agent, message, now);
                }
                let step = self.message_event(now, "deliver", agent, *from, message, (0, sent_ms));
                self.oracle.on_deliver(agent, message, step);
            }
            RunnerEvent::Timeout(timer) => self.timer_event(now, agent, *timer),
            RunnerEvent::LocalVote(vote) => self.local_vote(now, agent, honest, vote),
            RunnerEvent::Decide(record) => self.decided(now, agent, honest, record),
            RunnerEvent::Evidence(e) => self.evidence(now, agent, e),
            RunnerEvent::Reject { from, reason } => self.rejected(now, agent, *from, reason),
        }
    }

    /// A message sent; an honest agent's own round vote is checked against what it signed.
    fn sent(&mut self, now: TimeMs, agent: AgentId, honest: bool, to: AgentId, message: &Message, bytes: usize) {
        self.counts.sent += 1;
        self.counts.bytes += bytes as u64;
        self.last_send = (message.kind(), message.session().0);
        let step = self.message_event(now, "send", agent, to, message, (bytes as u64, None));
        if let Message::Proposal(p) = message {
            self.oracle.on_proposal_sent(agent, p, step, now);
            if honest && p.proposer == agent && self.oracle.violation().is_none() {
                self.oracle.locks_on_proposal_sent(agent, p, step, now);
            }
            self.stop |= self.oracle.violation().is_some();
        }
        if let Message::RoundVote(v) = message {
            if honest && v.agent == agent {
                self.coverage.own_round_vote(agent, v.session, v.round, v.kind);
                self.oracle.on_own_round_vote(agent, v, step, now);
                self.stop |= self.oracle.violation().is_some();
            }
        }
    }

    /// Bytes that are not a well-formed message (a full-power agent's malformed frames).
    fn sent_raw(&mut self, now: TimeMs, agent: AgentId, to: AgentId, bytes: &[u8]) {
        self.counts.sent += 1;
        self.counts.bytes += bytes.len() as u64;
        let session = wire::peek_session(bytes).map_or(0, |s| s.0);
        self.last_send = ("raw", session);
        let key = Key { agent: agent.0, peer: to.0, session, extra: bytes.len() as u64 ^ 0x7261_7700_0000_0000 };
        self.trace.record(now, "send", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "send".into(),
            agent: client_or(agent),
            peer: client_or(to),
            session: Some(session),
            detail: format!("raw frame of {} bytes (not a well-formed message)", bytes.len()),
            ..Default::default()
        });
    }

    /// An agent's own evaluation (its vote for a candidate).
    fn local_vote(&mut self, now: TimeMs, agent: AgentId, honest: bool, vote: &AgentVote) {
        let key = Key { agent: agent.0, session: vote.session.0, extra: u64::from(vote.candidate.0), ..Key::default() };
        let step = self.trace.record(now, "vote", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "vote".into(),
            agent: Some(agent.0),
            session: Some(vote.session.0),
            value: Some(vote.candidate.0),
            honest: Some(honest),
            detail: format!("own vote for {} (confidence {})", vote.candidate, vote.confidence),
            ..Default::default()
        });
        self.oracle.on_local_vote(agent, vote, step, now);
        self.stop |= self.oracle.violation().is_some();
    }

    /// A decision: checked for agreement, validity and integrity where it happens.
    fn decided(&mut self, now: TimeMs, agent: AgentId, honest: bool, record: &DecisionRecord) {
        let value = record.outcome.chosen().map(|c| c.0);
        let key = Key {
            agent: agent.0,
            session: record.session.0,
            extra: record.value.map_or(0, |v| v.short()),
            ..Key::default()
        };
        let step = self.trace.record(now, "decide", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "decide".into(),
            agent: Some(agent.0),
            peer: None,
            session: Some(record.session.0),
            value,
            honest: Some(honest),
            sent_ms: None,
            detail: format!(
                "decided {} {} ({} mode): {}",
                crate::words::value(record.value),
                record.round.map_or_else(|| "without a round".to_owned(), |r| format!("in round {r}")),
                crate::words::mode(record.mode),
                crate::words::outcome(&record.outcome)
            ),
            value_id: record.value.as_ref().map(crate::words::value_id),
            round: record.round,
            candidate: value,
            method: Some(crate::words::method_field(&record.outcome)),
            copy: None,
        });
        self.oracle.on_decide(agent, record, step, now);
        if self.oracle.violation().is_some() {
            self.stop = true;
        }
    }

    /// Evidence of a Byzantine agent: an honest agent's is checked (`evidence-sound`).
    fn evidence(&mut self, now: TimeMs, agent: AgentId, e: &Evidence) {
        let culprit = e.culprit();
        let key = Key { agent: agent.0, peer: culprit.0, ..Key::default() };
        let step = self.trace.record(now, "evidence", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "evidence".into(),
            agent: Some(agent.0),
            peer: Some(culprit.0),
            detail: crate::words::evidence(e),
            ..Default::default()
        });
        self.oracle.on_evidence(agent, e, step, now);
        self.stop |= self.oracle.violation().is_some();
    }

    /// A message refused (malformed, forged, wrong session...).
    fn rejected(&mut self, now: TimeMs, agent: AgentId, from: AgentId, reason: &Rejection) {
        let key = Key { agent: agent.0, peer: from.0, ..Key::default() };
        self.trace.record(now, "reject", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "reject".into(),
            agent: Some(agent.0),
            peer: client_or(from),
            detail: crate::words::rejection(reason),
            ..Default::default()
        });
    }

    fn message_event(
        &mut self,
        now: TimeMs,
        kind: &'static str,
        agent: AgentId,
        peer: AgentId,
        m: &Message,
        (size, sent_ms): (u64, Option<TimeMs>),
    ) -> u64 {
        let session = m.session().0;
        let key = Key { agent: agent.0, peer: peer.0, session, extra: size ^ (m.kind().len() as u64) << 32 };
        self.trace.record(now, kind, key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: kind.into(),
            agent: client_or(agent),
            peer: client_or(peer),
            session: Some(session),
            sent_ms,
            detail: describe(m),
            ..Default::default()
        })
    }

    fn timer_event(&mut self, now: TimeMs, agent: AgentId, timer: Timer) {
        self.oracle.on_timer_fired(agent, &timer);
        let key = Key { agent: agent.0, session: timer.session.0, extra: u64::from(timer.round), ..Key::default() };
        self.trace.record(now, "timeout", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "timeout".into(),
            agent: Some(agent.0),
            session: Some(timer.session.0),
            detail: crate::words::timer(timer.kind, timer.round),
            ..Default::default()
        });
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::Open(o) => format!("open {} candidates", o.spec.candidates.len()),
        Message::Vote(v) => format!("vote of {} for {}", v.vote.agent, v.vote.candidate),
        Message::Proposal(p) => crate::words::proposal(p),
        Message::RoundVote(v) => crate::words::round_vote(v),
        Message::Commit(c) => format!("commit round {} ({} precommits)", c.proposal.round, c.precommits.len()),
        Message::Sync { next } => format!("sync from {next}"),
        Message::Pruned { below } => format!("pruned below {below}"),
    }
}

/// The observer handed to each runner: reports into the shared world.
#[derive(Clone)]
pub struct WorldObserver {
    /// The run's world.
    pub world: Arc<Mutex<World>>,
    /// When the frame the node received last was sent (its transport stores it, see
    /// `run::net::SimRx`): the runner reports a delivery right after receiving its frame.
    pub last_sent_ms: Arc<AtomicU64>,
    /// Which copy of its agent the node is (0; 1 for a twin's second copy): its trace events
    /// say so.
    pub copy: u32,
}

impl Observer for WorldObserver {
    fn on_event(&mut self, agent: AgentId, now_ms: TimeMs, event: &RunnerEvent<'_>) {
        let sent_ms = matches!(event, RunnerEvent::Deliver { .. }).then(|| self.last_sent_ms.load(Relaxed));
        if let Ok(mut w) = self.world.lock() {
            let from = w.trace.step();
            w.event(agent, now_ms, event, sent_ms);
            if self.copy > 0 {
                w.trace.mark_copy(from, agent.0, self.copy);
            }
        }
    }
}
