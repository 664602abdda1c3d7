//! The simulated world shared by every node of one run: the network model (loss, latency,
//! long tails, duplicates, partitions, clogs, crashed nodes), the oracle and the trace.
//!
//! Every random choice comes from a ChaCha stream derived from the run's seed, and everything
//! happens on madsim's single-threaded, seeded executor, so one seed gives one run.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::{Message, Timer};
use consensus_core::runner::{Frame, Observer, RunnerEvent};
use consensus_core::{AgentId, TimeMs};
use futures_channel::mpsc::UnboundedSender;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::oracle::Oracle;
use crate::scenario::ClogTarget;
use crate::trace::{Key, Trace, TraceEvent};

/// Long-tail latency: a Pareto draw added to the uniform base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tail {
    /// Pareto scale, ms.
    pub scale_ms: f64,
    /// Pareto shape (smaller is heavier).
    pub shape: f64,
    /// Cap, ms.
    pub max_ms: f64,
}

/// The network model.
#[derive(Clone, Debug, PartialEq)]
pub struct NetModel {
    /// Loss probability per frame.
    pub drop: f64,
    /// Uniform latency range, inclusive.
    pub latency_ms: (u64, u64),
    /// Optional long tail.
    pub tail: Option<Tail>,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
}

/// A partition: frames between different groups are lost (only from the first group to the
/// others when one-way). Agents in no group, and the client, are unaffected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The groups.
    pub groups: Vec<BTreeSet<AgentId>>,
    /// Only traffic leaving the first group is cut.
    pub one_way: bool,
}

impl Partition {
    fn group_of(&self, agent: AgentId) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&agent))
    }

    /// Whether a frame from → to is cut.
    pub fn cuts(&self, from: AgentId, to: AgentId) -> bool {
        match (self.group_of(from), self.group_of(to)) {
            (Some(a), Some(b)) if a != b => !self.one_way || a == 0,
            _ => false,
        }
    }
}

/// What happens to one frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    /// Lost, and why.
    Dropped(&'static str),
    /// Delivered after each of these latencies (two for a duplicate).
    Deliver(Vec<u64>),
    /// Held by a clog until it is lifted.
    Held,
}

/// Network, oracle and trace of one run.
pub struct World {
    rng: ChaCha8Rng,
    net: NetModel,
    /// The active partition.
    pub partition: Option<Partition>,
    /// Active clogs: frames they match are held until the clog is lifted.
    pub clogs: BTreeSet<ClogTarget>,
    /// Frames held by clogs: (from, to, frame).
    pub held: Vec<(AgentId, AgentId, Frame)>,
    /// Nodes that are up.
    pub up: BTreeSet<AgentId>,
    /// Inboxes of nodes that are up.
    pub inboxes: BTreeMap<AgentId, UnboundedSender<(AgentId, Frame)>>,
    /// The invariants.
    pub oracle: Oracle,
    /// The trace.
    pub trace: Trace,
    /// Counters.
    pub counts: crate::results::MessageCounts,
    /// Byzantine agents.
    pub byzantine: BTreeSet<AgentId>,
    /// When each session was opened.
    pub opened: BTreeMap<u64, TimeMs>,
    /// Stop as soon as possible (a violation was found).
    pub stop: bool,
    last_send: (&'static str, u64),
}

fn client_or(id: AgentId) -> Option<u32> {
    (id != AgentId::CLIENT).then_some(id.0)
}

impl World {
    /// A world with the network model and oracle of a run.
    pub fn new(
        rng: ChaCha8Rng,
        net: NetModel,
        oracle: Oracle,
        byzantine: BTreeSet<AgentId>,
        keep_trace: bool,
    ) -> World {
        World {
            rng,
            net,
            partition: None,
            clogs: BTreeSet::new(),
            held: Vec::new(),
            up: BTreeSet::new(),
            inboxes: BTreeMap::new(),
            oracle,
            trace: Trace::new(keep_trace),
            counts: crate::results::MessageCounts::default(),
            byzantine,
            opened: BTreeMap::new(),
            stop: false,
            last_send: ("", 0),
        }
    }

    /// Decides the fate of a frame from → to, drawing from the network stream.
    pub fn fate(&mut self, from: AgentId, to: AgentId) -> Fate {
        if !self.up.contains(&to) {
            return Fate::Dropped("recipient down");
        }
        if self.partition.as_ref().is_some_and(|p| p.cuts(from, to)) {
            return Fate::Dropped("partition");
        }
        if self.clogged(from, to) {
            return Fate::Held;
        }
        if self.net.drop > 0.0 && self.rng.gen_bool(self.net.drop.clamp(0.0, 1.0)) {
            return Fate::Dropped("loss");
        }
        let mut latencies = vec![self.latency()];
        if self.net.duplicate > 0.0 && self.rng.gen_bool(self.net.duplicate.clamp(0.0, 1.0)) {
            latencies.push(self.latency());
        }
        Fate::Deliver(latencies)
    }

    /// Whether a clog holds frames from → to.
    pub fn clogged(&self, from: AgentId, to: AgentId) -> bool {
        self.clogs.iter().any(|c| match c {
            ClogTarget::Agent(a) => from.0 == *a || to.0 == *a,
            ClogTarget::Link([a, b]) => (from.0 == *a && to.0 == *b) || (from.0 == *b && to.0 == *a),
        })
    }

    /// A latency draw for a frame released from a clog.
    pub fn release_latency(&mut self) -> u64 {
        self.latency()
    }

    fn latency(&mut self) -> u64 {
        let (lo, hi) = self.net.latency_ms;
        let mut ms = self.rng.gen_range(lo.min(hi)..=hi.max(lo));
        if let Some(t) = self.net.tail {
            // Pareto(scale, shape) − scale: 0 most of the time, occasionally very long.
            let u: f64 = self.rng.gen_range(f64::EPSILON..1.0);
            let extra = (t.scale_ms / u.powf(1.0 / t.shape) - t.scale_ms).clamp(0.0, t.max_ms);
            ms = ms.saturating_add(extra as u64);
        }
        ms
    }

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
            value: None,
            honest: None,
            detail: format!("{kind} lost: {reason}"),
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
            value: None,
            honest: None,
            detail: format!("{kind} held by a clog"),
        });
    }

    /// Takes the held frames that no clog holds any more.
    pub fn release_unclogged(&mut self) -> Vec<(AgentId, AgentId, Frame)> {
        let held = std::mem::take(&mut self.held);
        let (keep, release): (Vec<_>, Vec<_>) = held.into_iter().partition(|(f, t, _)| self.clogged(*f, *t));
        self.held = keep;
        release
    }

    /// Records a fault injection.
    pub fn record_fault(&mut self, now: TimeMs, detail: String, agent: Option<AgentId>) {
        let key = Key { agent: agent.map_or(u32::MAX, |a| a.0), extra: detail.len() as u64, ..Key::default() };
        self.trace.record(now, "fault", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "fault".into(),
            agent: agent.and_then(client_or),
            peer: None,
            session: None,
            value: None,
            honest: None,
            detail,
        });
    }

    /// Notes what the client is about to send (for labelling drops).
    pub fn note_client_send(&mut self, kind: &'static str, session: u64) {
        self.last_send = (kind, session);
        self.counts.sent += 1;
    }

    /// Records a client event (session opened).
    pub fn record_open(&mut self, now: TimeMs, session: u64, detail: String) {
        let key = Key { agent: u32::MAX, session, ..Key::default() };
        self.trace.record(now, "open", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "open".into(),
            agent: None,
            peer: None,
            session: Some(session),
            value: None,
            honest: None,
            detail,
        });
    }

    fn event(&mut self, agent: AgentId, now: TimeMs, event: &RunnerEvent<'_>) {
        let honest = !self.byzantine.contains(&agent);
        match event {
            RunnerEvent::Send { to, message, bytes } => {
                self.counts.sent += 1;
                self.counts.bytes += *bytes as u64;
                self.last_send = (message.kind(), message.session().0);
                self.message_event(now, "send", agent, *to, message, *bytes as u64);
            }
            RunnerEvent::Deliver { from, message } => self.message_event(now, "deliver", agent, *from, message, 0),
            RunnerEvent::Timeout(timer) => self.timer_event(now, agent, *timer),
            RunnerEvent::LocalVote(vote) => {
                self.oracle.on_local_vote(agent, vote);
                let key = Key {
                    agent: agent.0,
                    session: vote.session.0,
                    extra: u64::from(vote.candidate.0),
                    ..Key::default()
                };
                self.trace.record(now, "vote", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "vote".into(),
                    agent: Some(agent.0),
                    peer: None,
                    session: Some(vote.session.0),
                    value: Some(vote.candidate.0),
                    honest: Some(honest),
                    detail: format!("own vote for {} (confidence {})", vote.candidate, vote.confidence),
                });
            }
            RunnerEvent::Decide(record) => {
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
                    detail: format!("{:?} in round {:?} ({:?} mode)", record.outcome, record.round, record.mode),
                });
                self.oracle.on_decide(agent, record, step, now);
                if self.oracle.violation().is_some() {
                    self.stop = true;
                }
            }
            RunnerEvent::Evidence(e) => {
                let culprit = e.culprit();
                let key = Key { agent: agent.0, peer: culprit.0, ..Key::default() };
                self.trace.record(now, "evidence", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "evidence".into(),
                    agent: Some(agent.0),
                    peer: Some(culprit.0),
                    session: None,
                    value: None,
                    honest: None,
                    detail: format!("{e:?}"),
                });
            }
            RunnerEvent::Reject { from, reason } => {
                let key = Key { agent: agent.0, peer: from.0, ..Key::default() };
                self.trace.record(now, "reject", key, |step| TraceEvent {
                    step,
                    time_ms: now,
                    kind: "reject".into(),
                    agent: Some(agent.0),
                    peer: client_or(*from),
                    session: None,
                    value: None,
                    honest: None,
                    detail: format!("{reason:?}"),
                });
            }
        }
    }

    fn message_event(
        &mut self,
        now: TimeMs,
        kind: &'static str,
        agent: AgentId,
        peer: AgentId,
        m: &Message,
        size: u64,
    ) {
        let session = m.session().0;
        let key = Key { agent: agent.0, peer: peer.0, session, extra: size ^ (m.kind().len() as u64) << 32 };
        self.trace.record(now, kind, key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: kind.into(),
            agent: client_or(agent),
            peer: client_or(peer),
            session: Some(session),
            value: None,
            honest: None,
            detail: describe(m),
        });
    }

    fn timer_event(&mut self, now: TimeMs, agent: AgentId, timer: Timer) {
        let key = Key { agent: agent.0, session: timer.session.0, extra: u64::from(timer.round), ..Key::default() };
        self.trace.record(now, "timeout", key, |step| TraceEvent {
            step,
            time_ms: now,
            kind: "timeout".into(),
            agent: Some(agent.0),
            peer: None,
            session: Some(timer.session.0),
            value: None,
            honest: None,
            detail: format!("{:?} round {}", timer.kind, timer.round),
        });
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::Open(o) => format!("open {} candidates", o.spec.candidates.len()),
        Message::Vote(v) => format!("vote of {} for {}", v.vote.agent, v.vote.candidate),
        Message::Proposal(p) => {
            format!(
                "proposal round {} by {} with {} votes: {:?}",
                p.round,
                p.proposer,
                p.value.votes.len(),
                p.value.outcome
            )
        }
        Message::RoundVote(v) => {
            format!(
                "{:?} round {} by {} for {:?}",
                v.kind,
                v.round,
                v.agent,
                v.value.map(|x| format!("{:016x}", x.short()))
            )
        }
        Message::Commit(c) => format!("commit round {} ({} precommits)", c.proposal.round, c.precommits.len()),
        Message::Sync { next } => format!("sync from {next}"),
    }
}

/// The observer handed to each runner: reports into the shared world.
#[derive(Clone)]
pub struct WorldObserver(pub std::sync::Arc<std::sync::Mutex<World>>);

impl Observer for WorldObserver {
    fn on_event(&mut self, agent: AgentId, now_ms: TimeMs, event: &RunnerEvent<'_>) {
        if let Ok(mut w) = self.0.lock() {
            w.event(agent, now_ms, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cut_between_groups_only() {
        let p = Partition {
            groups: vec![[AgentId(0), AgentId(1)].into(), [AgentId(2), AgentId(3)].into()],
            one_way: false,
        };
        assert!(p.cuts(AgentId(0), AgentId(2)));
        assert!(p.cuts(AgentId(3), AgentId(1)));
        assert!(!p.cuts(AgentId(0), AgentId(1)));
        assert!(!p.cuts(AgentId::CLIENT, AgentId(2)));
        assert!(!p.cuts(AgentId(4), AgentId(2)), "agents in no group are unaffected");
        let one_way = Partition { one_way: true, ..p };
        assert!(one_way.cuts(AgentId(0), AgentId(2)));
        assert!(!one_way.cuts(AgentId(2), AgentId(0)));
    }
}
