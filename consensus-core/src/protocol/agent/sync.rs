//! Catch-up between agents (docs/protocol.md L70–L81): `Sync` on demand, the status tick, the
//! answer from held and archived certificates, and the chase of an agent that fell far behind.

use serde::{Deserialize, Serialize};

use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, SessionId, TimeMs};

use super::super::coverage::Point;
use super::super::messages::Message;
use super::super::{Output, TimerKind};
use super::Agent;

/// Batches of `sync_batch` certificates served to one peer per retransmit interval (L78): an
/// agent catching up asks again as soon as a batch is applied (L80), so the answer is not
/// paced by the interval, but a peer cannot make this agent send more than this.
pub const SYNC_BATCHES_PER_INTERVAL: u32 = 8;

/// What this agent served one peer (L72–L73, L78).
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

/// An agent behind a peer that knows more (L80): whom it asks, up to where, and its last
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
    /// Retransmit intervals in a row without progress (L80).
    stalls: u32,
}

/// L80: intervals without progress after which a chase is given up (the status tick, L76, goes
/// on asking in turn). The first is retried with the same peer (its serving window, L78, may
/// just have been full), the next ones with the next peers in turn.
const MAX_CHASE_STALLS: u32 = 3;

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
    /// those it holds, and (L78) those it pruned from its archive. L79: a peer behind hears how
    /// far this agent is; L77: a peer ahead is chased (L80).
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
            // L78: certificates prove themselves, so the host may send them from its archive.
            let until = SessionId(end.min(pruned_below));
            out.push(Output::ServeArchived { to: peer, from: next, until });
        }
        // Empty (not reversed: `range` panics on that) when the whole batch was pruned.
        let held = SessionId(next.0.max(pruned_below).min(end))..SessionId(end);
        let mut served = next.0 < pruned_below && self.protocol.sync_batch > 0;
        for machine in self.sessions.range(held).map(|(_, m)| m) {
            if let Some(commit) = machine.commit() {
                out.push(Output::Send { to: peer, message: Message::Commit(Box::new(commit.clone())) });
                served = true;
            }
        }
        if served {
            self.coverage.record(Point::L73);
        }
        if next.0 < self.applied {
            // L79: tell a peer behind how far it is behind, so it can chase (L80).
            out.push(Output::Send { to: peer, message: Message::Sync { next: SessionId(self.applied) } });
        }
    }

    /// L80: `peer` applied `target` sessions, more than this agent: chase it.
    fn start_chase(&mut self, peer: AgentId, target: u64) {
        match &mut self.chase {
            Some(c) if c.peer == peer => c.target = c.target.max(target),
            Some(c) if c.target >= target => {}
            _ => self.chase = Some(Chase { peer, target, until: 0, asked_ms: 0, asked_at: 0, stalls: 0 }),
        }
    }

    /// L80, after every input: while behind the chased peer, ask it for the next batch as
    /// soon as the last one is applied (not once per status tick: 1,000 missed sessions would
    /// take minutes), again after a retransmit interval if the answer was lost or refused, then
    /// the next peers in turn, and give up after [`MAX_CHASE_STALLS`] intervals without
    /// progress (the status tick, L76, goes on asking in turn).
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
            c.stalls += 1; // L80: no progress from this peer in an interval
            if c.stalls >= MAX_CHASE_STALLS {
                self.chase = None;
                return;
            }
            if c.stalls > 1 {
                c.peer = self.next_peer().unwrap_or(c.peer);
            }
        } else if self.applied > c.asked_at {
            c.stalls = 0;
        }
        if !asked {
            self.coverage.record(Point::L77); // the first Sync back to a peer ahead
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
            self.coverage.record(Point::L76);
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

#[cfg(test)]
mod tests {
    use crate::config::EngineConfig;
    use crate::protocol::{Input, Node, ProtocolConfig};
    use crate::registry::Registry;
    use crate::sign::{sim_committee, SimKeyring, SimSigner};

    use super::*;

    fn agent() -> Agent<SimSigner, SimKeyring> {
        let keys = sim_committee(47, 4);
        let engine = EngineConfig::default();
        let registry = Registry::seed_committee(4, &engine);
        Agent::new(keys.agents[0].clone(), keys.keyring.clone(), registry, engine, ProtocolConfig::default())
    }

    fn syncs_at(a: &mut Agent<SimSigner, SimKeyring>, now: TimeMs, input: Input) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        a.handle(now, input, &mut out);
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, message: Message::Sync { next } } => Some((to.0, next.0)),
                _ => None,
            })
            .collect()
    }

    fn from(peer: u32, next: u64) -> Input {
        Input::Receive { from: AgentId(peer), message: Message::Sync { next: SessionId(next) } }
    }

    /// L77, L80: a peer 500 sessions ahead is chased at once; asked again (not more often)
    /// after a retransmit interval without an answer, then the next peer in turn, and the chase
    /// is given up after three intervals without progress; a later Sync starts a new one.
    #[test]
    fn a_peer_ahead_is_chased_then_given_up_without_progress() {
        let mut a = agent();
        assert_eq!(syncs_at(&mut a, 10, from(3, 500)), [(3, 0)], "L77: asks the peer ahead");
        assert!(syncs_at(&mut a, 50, from(3, 500)).is_empty(), "not again within the interval");
        assert_eq!(syncs_at(&mut a, 110, from(2, 0)), [(3, 0)], "no answer in 100 ms: asks again");
        assert_eq!(syncs_at(&mut a, 210, from(2, 0)), [(1, 0)], "then the next peer in turn");
        assert!(syncs_at(&mut a, 310, from(2, 0)).is_empty(), "three intervals without progress: given up");
        assert!(a.chase.is_none());
        assert_eq!(syncs_at(&mut a, 320, from(2, 40)), [(2, 0)], "a new chase");
    }

    /// L72–L73, L78: a Sync from a peer behind whose batch this agent no longer holds asks the host
    /// for its archive (`ServeArchived`); a repeat within the interval is not served twice, and
    /// a peer cannot be served more than SYNC_BATCHES_PER_INTERVAL batches per interval.
    #[test]
    fn pruned_sessions_are_served_from_the_archive_at_a_bounded_rate() {
        let mut a = agent();
        a.applied = 1_000; // as if it had applied 1,000 sessions and pruned all but 64
        let served = |a: &mut Agent<SimSigner, SimKeyring>, now: TimeMs, next: u64| {
            let mut out = Vec::new();
            a.handle(now, from(2, next), &mut out);
            out.iter()
                .filter_map(|o| match o {
                    Output::ServeArchived { to, from, until } => Some((to.0, from.0, until.0)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(syncs_at(&mut a, 5, from(3, 100)), [(3, 1_000)], "L79: a peer behind hears how far");
        assert_eq!(served(&mut a, 10, 100), [(2, 100, 116)]);
        assert_eq!(served(&mut a, 11, 100), [], "the same request within the interval");
        assert_eq!(served(&mut a, 12, 930), [(2, 930, 936)], "up to the pruned sessions; 936.. are held");
        for k in 0..6 {
            assert_eq!(served(&mut a, 13, 200 + 16 * k).len(), 1);
        }
        assert_eq!(served(&mut a, 14, 400), [], "8 batches served in this interval");
        assert_eq!(served(&mut a, 110, 400), [(2, 400, 416)], "the next interval");
    }
}
