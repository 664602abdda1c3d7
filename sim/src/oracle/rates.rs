//! `sync-serve-rate`: the amplification bound of catch-up (docs/protocol.md L72–L73, L78, and
//! the line under L81). However a peer floods it with `Sync(next)`, an honest agent answers
//! that peer with at most `SYNC_BATCHES_PER_INTERVAL` (8) batches per retransmit interval Δ,
//! and never answers a `Sync(next)` that repeats the last one it served that peer within Δ of
//! it: a flooding peer gets at most 8 × `sync_batch` certificates per Δ out of it.
//!
//! The rule, exactly (per honest agent p and asker a ≠ p, a ≠ the client): p keeps a serving
//! interval per asker, which begins with the first `Sync` from a at least Δ after the current
//! interval began (every `Sync` counts, served or not). In an interval p serves a
//! `Sync(next)` unless it already served 8, or it served one before in this interval, the
//! last of them asked for the same `next` and was served less than Δ ago. A served `Sync`
//! may send nothing (the batch is empty), so the oracle cannot see every serve, but the rule
//! depends only on the `Sync`s a received and their times, which the oracle sees: it keeps
//! the same state per (p, a) from those alone, and judges every `Sync` p refuses by the rule.
//! A refused `Sync` that nevertheless gets a certificate of the batch (`Commit`, from p's
//! state or its archive, L78) or `Pruned` (L81) back to a in the same step is a violation.
//! (The `Sync` of L79 and the chase's request, L80, are not counted: both are `Sync(applied)`
//! to a, so an answer cannot be told from a request by its content.)
//!
//! Restarts: the limits are in memory. A restarted agent rebuilds them from the part of its
//! log that was durable, so after a crash that lost unsynced inputs it may have counted fewer
//! batches than the oracle did. The oracle therefore stops judging a restarted agent's
//! serving to a until it knows p's state again: at the first `Sync` from a that arrives at
//! least Δ after the previous one (before or after the restart). p's interval began at a
//! `Sync` of a no later than that previous one, so p begins a new interval there, with no
//! batch served, whatever its log kept; from then on the oracle's state is p's again.

use std::collections::BTreeMap;

use consensus_core::protocol::agent::SYNC_BATCHES_PER_INTERVAL;
use consensus_core::{AgentId, SessionId, TimeMs};

/// What p served a since the oracle last knew its state (the same fields as the agent's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Serving {
    /// Start of the current interval.
    window_ms: TimeMs,
    /// Batches served in it.
    batches: u32,
    /// The `next` of the last `Sync` served, and when.
    last_next: u64,
    last_ms: TimeMs,
    /// Whether the state above is p's (false after p restarted, until a gap of Δ).
    unknown: bool,
    /// When the last `Sync` from a reached p (any incarnation).
    last_arrival: Option<TimeMs>,
}

/// `sync-serve-rate`'s state: per (honest agent, asker).
#[derive(Clone, Debug, Default)]
pub struct ServeRates {
    serving: BTreeMap<(AgentId, AgentId), Serving>,
}

/// A `Sync` an honest agent received and whether it answered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncSeen {
    /// The honest agent.
    pub agent: AgentId,
    /// The asker.
    pub from: AgentId,
    /// The `next` it asked from.
    pub next: SessionId,
    /// Certificates (or `Pruned`) of the batch went back to the asker in the same step.
    pub answered: bool,
}

impl ServeRates {
    /// `seen` at `now`, with retransmit interval `interval_ms`: a violation's detail if the
    /// agent answered a `Sync` the rule refuses.
    pub fn on_sync(&mut self, seen: SyncSeen, now: TimeMs, interval_ms: TimeMs) -> Option<String> {
        let s = self.serving.entry((seen.agent, seen.from)).or_default();
        let gap = s.last_arrival.is_none_or(|t| now >= t.saturating_add(interval_ms));
        s.last_arrival = Some(now);
        if s.unknown {
            if !gap {
                return None;
            }
            *s = Serving { window_ms: now, batches: 0, unknown: false, ..*s };
        }
        if now >= s.window_ms.saturating_add(interval_ms) {
            s.window_ms = now;
            s.batches = 0;
        }
        let repeated = s.batches > 0 && s.last_next == seen.next.0 && now < s.last_ms.saturating_add(interval_ms);
        let full = s.batches >= SYNC_BATCHES_PER_INTERVAL;
        if !repeated && !full {
            s.batches += 1;
            s.last_next = seen.next.0;
            s.last_ms = now;
            return None;
        }
        if !seen.answered {
            return None;
        }
        let why = if full {
            format!(
                "it had served {} {SYNC_BATCHES_PER_INTERVAL} batches in the interval that began at {} ms \
                 (at most {SYNC_BATCHES_PER_INTERVAL} per retransmit interval of {interval_ms} ms, L78)",
                seen.from, s.window_ms
            )
        } else {
            format!(
                "it had served {} the same Sync({}) at {} ms, less than a retransmit interval ({interval_ms} ms) \
                 before (L72-L73: the same next at most once per interval)",
                seen.from, seen.next.0, s.last_ms
            )
        };
        Some(format!(
            "{} answered Sync({}) from {} at {now} ms with certificates although {why}",
            seen.agent, seen.next.0, seen.from
        ))
    }

    /// `agent` restarted: what it served is known again only after a gap of Δ per asker.
    pub fn on_restart(&mut self, agent: AgentId) {
        for (_, s) in self.serving.range_mut((agent, AgentId(0))..=(agent, AgentId(u32::MAX))) {
            s.unknown = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(next: u64, answered: bool) -> SyncSeen {
        SyncSeen { agent: AgentId(1), from: AgentId(2), next: SessionId(next), answered }
    }

    /// The rule as the correct agent applies it: 8 batches per interval, a repeat of the last
    /// next within Δ refused, a new interval from the first Sync Δ after the last began.
    #[test]
    fn the_correct_serving_pattern_passes() {
        let mut r = ServeRates::default();
        assert_eq!(r.on_sync(seen(100, true), 10, 100), None);
        assert_eq!(r.on_sync(seen(100, false), 11, 100), None, "a refused repeat, not answered");
        for k in 0..7 {
            assert_eq!(r.on_sync(seen(200 + 16 * k, true), 12 + k, 100), None);
        }
        assert_eq!(r.on_sync(seen(400, false), 30, 100), None, "the ninth, refused");
        assert_eq!(r.on_sync(seen(400, true), 110, 100), None, "a new interval");
        // The agent's own interval: a repeat at the start of a new interval is served again.
        assert_eq!(r.on_sync(seen(500, true), 205, 100), None);
        assert_eq!(r.on_sync(seen(500, true), 211, 100), None, "new interval at 211: the repeat is served");
    }

    #[test]
    fn a_ninth_batch_or_an_answered_repeat_is_a_violation() {
        let mut r = ServeRates::default();
        for k in 0..8 {
            assert_eq!(r.on_sync(seen(16 * k, true), 10 + k, 100), None);
        }
        let v = r.on_sync(seen(999, true), 50, 100).unwrap_or_else(|| panic!("ninth batch not caught"));
        assert!(v.contains("8 batches"), "{v}");
        let mut r = ServeRates::default();
        assert_eq!(r.on_sync(seen(7, true), 10, 100), None);
        let v = r.on_sync(seen(7, true), 60, 100).unwrap_or_else(|| panic!("repeat not caught"));
        assert!(v.contains("same Sync(7)"), "{v}");
        // An empty answer (nothing sent) is never judged.
        let mut r = ServeRates::default();
        assert_eq!(r.on_sync(seen(7, true), 10, 100), None);
        assert_eq!(r.on_sync(seen(7, false), 60, 100), None);
    }

    /// After a restart the agent may have forgotten batches: nothing is judged until a Sync
    /// arrives Δ after the previous one; from then on the rule applies again.
    #[test]
    fn a_restart_suspends_judgement_until_a_gap_of_one_interval() {
        let mut r = ServeRates::default();
        for k in 0..8 {
            assert_eq!(r.on_sync(seen(16 * k, true), 10 + k, 100), None);
        }
        r.on_restart(AgentId(1));
        assert_eq!(r.on_sync(seen(999, true), 40, 100), None, "the log lost the 8 batches: not judged");
        assert_eq!(r.on_sync(seen(999, true), 41, 100), None, "still within Δ of the previous Sync");
        assert_eq!(r.on_sync(seen(5, true), 150, 100), None, "a gap of Δ: known again");
        assert!(r.on_sync(seen(5, true), 160, 100).is_some(), "and judged");
    }
}
