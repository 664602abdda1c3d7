//! Catch-up between agents (docs/protocol.md L70–L81): `Sync` on demand, the status tick, the
//! answer from held and archived certificates, and the chase of an agent that fell far behind.

use serde::{Deserialize, Serialize};

use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, SessionId, TimeMs};

use super::super::messages::Message;
use super::super::{Output, TimerKind};
use super::Agent;

/// Batches of `sync_batch` certificates served to one peer per retransmit interval (L73a): an
/// agent catching up asks again as soon as a batch is applied (L79), so the answer is not
/// paced by the interval, but a peer cannot make this agent send more than this.
pub const SYNC_BATCHES_PER_INTERVAL: u32 = 8;

/// What this agent served one peer (L72–L73a).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Served {
    /// Start of the current interval.
    window_ms: TimeMs,
    /// Batches served in it.
    batches: u32,
    /// The `next` of the last Sync served, and when.
    last_next: u64,
    last_ms: TimeMs,
}

/// An agent behind a peer that knows more (L79–L80): whom it asks, up to where, and its last
/// request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Chase {
    peer: AgentId,
    /// The peer's `applied`, as its `Sync` said.
    target: u64,
    /// The end of the batch last asked for (0: not asked yet).
    until: u64,
    /// When it asked, and `applied` then.
    asked_ms: TimeMs,
    asked_at: u64,
}

impl<S: Signer, V: Verifier> Agent<S, V> {
    /// A peer is ahead of us: ask it for the certificates of the sessions we have not applied
    /// (at most once per retransmit interval).
    pub(super) fn request_sync(&mut self, now: TimeMs, peer: AgentId, out: &mut Vec<Output>) {
        if peer == self.id || peer == self.protocol.client {
            return;
        }
        if self.sync_sent_at.is_some_and(|t| now < t.saturating_add(self.protocol.retransmit_ms)) {
            return;
        }
        self.sync_sent_at = Some(now);
        out.push(Output::Send { to: peer, message: Message::Sync { next: SessionId(self.applied) } });
    }

    /// L72–L73: answers a `Sync(next)` with the certificates of `next .. next + sync_batch`:
    /// those it holds, and (L73a) those it pruned from its archive. L73b: a peer behind hears how
    /// far this agent is; L77: a peer ahead is chased (L79).
    pub(super) fn serve_sync(&mut self, now: TimeMs, peer: AgentId, next: SessionId, out: &mut Vec<Output>) {
        if peer == self.id || peer == self.protocol.client {
            return;
        }
        if next.0 > self.applied {
            self.start_chase(peer, next.0); // L77
        }
        let interval = self.protocol.retransmit_ms;
        let served = self.served.entry(peer).or_default();
        if now >= served.window_ms.saturating_add(interval) {
            *served = Served { window_ms: now, batches: 0, ..*served };
        }
        let repeated =
            served.batches > 0 && served.last_next == next.0 && now < served.last_ms.saturating_add(interval);
        if repeated || served.batches >= SYNC_BATCHES_PER_INTERVAL {
            return;
        }
        served.batches += 1;
        served.last_next = next.0;
        served.last_ms = now;
        let end = next.0.saturating_add(self.protocol.sync_batch);
        let pruned_below = self.applied.saturating_sub(self.protocol.keep_decided as u64);
        if next.0 < pruned_below && self.protocol.sync_batch > 0 {
            // L73a: certificates prove themselves, so the host may send them from its archive.
            let until = SessionId(end.min(pruned_below));
            out.push(Output::ServeArchived { to: peer, from: next, until });
        }
        let held = SessionId(next.0.max(pruned_below))..SessionId(end);
        for machine in self.sessions.range(held).map(|(_, m)| m) {
            if let Some(commit) = machine.commit() {
                out.push(Output::Send { to: peer, message: Message::Commit(Box::new(commit.clone())) });
            }
        }
        if next.0 < self.applied {
            // L73b: tell a peer behind how far it is behind, so it can chase (L79).
            out.push(Output::Send { to: peer, message: Message::Sync { next: SessionId(self.applied) } });
        }
    }

    /// L79: `peer` applied `target` sessions, more than this agent: chase it.
    fn start_chase(&mut self, peer: AgentId, target: u64) {
        match &mut self.chase {
            Some(c) if c.peer == peer => c.target = c.target.max(target),
            Some(c) if c.target >= target => {}
            _ => self.chase = Some(Chase { peer, target, until: 0, asked_ms: 0, asked_at: 0 }),
        }
    }

    /// L79–L80, after every input: while behind the chased peer, ask it for the next batch as
    /// soon as the last one is applied (not once per status tick: 1,000 missed sessions would
    /// take minutes), again after a retransmit interval if the answer was lost, and give up
    /// after an interval without progress (the status tick, L76, goes on asking in turn).
    pub(super) fn chase(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        let Some(mut c) = self.chase else { return };
        if self.applied >= c.target {
            self.chase = None;
            return;
        }
        let asked = c.until > 0;
        let waited = now >= c.asked_ms.saturating_add(self.protocol.retransmit_ms);
        if asked && self.applied < c.until && !waited {
            return;
        }
        if asked && waited && self.applied == c.asked_at {
            self.chase = None; // L80: no progress from this peer
            return;
        }
        c.until = self.applied.saturating_add(self.protocol.sync_batch.max(1));
        c.asked_ms = now;
        c.asked_at = self.applied;
        self.chase = Some(c);
        self.sync_sent_at = Some(now);
        out.push(Output::Send { to: c.peer, message: Message::Sync { next: SessionId(self.applied) } });
    }

    /// L76: tells the next committee member in turn which sessions this agent applied, as a
    /// `Sync` that it answers with the certificates this agent lacks (L72–L73). Without it an
    /// agent that missed every message of a session the others decided (partitioned or down
    /// while it ran) is never told of it: nobody speaks of a decided session again.
    pub(super) fn status_tick(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        if let Some(peer) = self.next_peer() {
            out.push(Output::Send { to: peer, message: Message::Sync { next: SessionId(self.applied) } });
        }
        self.arm_status(now, out);
    }

    /// The next active committee member (of the newest registry) in turn, never this agent.
    pub(super) fn next_peer(&mut self) -> Option<AgentId> {
        let (me, client) = (self.id, self.protocol.client);
        let registry = self.epochs.values().next_back()?;
        let peers: Vec<AgentId> = registry.active().map(|a| a.id).filter(|id| *id != me && *id != client).collect();
        let peer = *peers.get((self.status_turn % peers.len().max(1) as u64) as usize)?;
        self.status_turn = self.status_turn.wrapping_add(1);
        Some(peer)
    }

    /// Schedules the next status tick (L76) unless one is pending.
    pub(super) fn arm_status(&mut self, now: TimeMs, out: &mut Vec<Output>) {
        if self.status_armed {
            return;
        }
        self.status_armed = true;
        let timer = super::super::Timer { session: SessionId(0), round: 0, kind: TimerKind::Status };
        out.push(Output::Schedule { timer, at_ms: now.saturating_add(self.protocol.timeout(TimerKind::Status, 0)) });
    }
}
