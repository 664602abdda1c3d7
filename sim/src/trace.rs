//! The run's event trace: a running hash over every event (always), and the events themselves
//! (only when asked, for `bftsim reproduce --trace`). Recording an event costs a few
//! multiplications; its `TraceEvent` (and any text in it) is built only when events are kept.

use serde::{Deserialize, Serialize};

/// One event of a run, as written to a trace file (one JSON object per line).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TraceEvent {
    /// Position in the run, from 0.
    pub step: u64,
    /// Simulated time.
    pub time_ms: u64,
    /// `setup`, `open`, `send`, `deliver`, `drop`, `hold`, `timeout`, `vote`, `decide`, `evidence`,
    /// `reject`, `fault`, `compact`, `violation`.
    pub kind: String,
    /// The agent the event happens at (`None`: the client or the network).
    pub agent: Option<u32>,
    /// The other end of a message, if any. A frame dropped or held on its way to a twin's
    /// second copy names that copy's network address, 2^30 + the agent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peer: Option<u32>,
    /// The session, if the event belongs to one.
    pub session: Option<u64>,
    /// Decide events: the decided candidate (`None`: escalation or no decision).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<u32>,
    /// Decide events: whether the deciding agent is honest in this run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub honest: Option<bool>,
    /// Deliver events: when the frame was sent (simulated ms), so a space-time diagram draws
    /// the arrow from its true send point (the sender is `peer`). Not part of the trace hash:
    /// it is fixed by the send event already hashed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sent_ms: Option<u64>,
    /// Human-readable detail: a sentence, never a Rust `Debug` dump.
    pub detail: String,
    /// Decide events: the decided value's id, 64 hex digits (`None`: the local-fallback
    /// mutation decides without a value).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value_id: Option<String>,
    /// Decide events: the round decided in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub round: Option<u32>,
    /// Decide events: the decided candidate (`None`: escalation or no decision; the same as
    /// `value`, which older traces carry alone).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub candidate: Option<u32>,
    /// Decide events: how, as the engine's method name (`threshold`, `early-unanimous`,
    /// `minority-overrule`, `timeout-fallback`, …), or `escalation` / `no-decision`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method: Option<String>,
    /// Twins: 1 when the event happened at the agent's second copy (the two copies share one
    /// identity and key, so `agent` alone does not tell them apart); absent for first copies
    /// and every other agent. Not part of the trace hash.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub copy: Option<u32>,
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms (unlike std's hashers).
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Mixes in bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Mixes in a number.
    pub fn u64(&mut self, x: u64) {
        self.bytes(&x.to_le_bytes());
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// What an event contributes to the hash besides its kind and time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Key {
    /// Agent (client: `u32::MAX`).
    pub agent: u32,
    /// Peer, if any.
    pub peer: u32,
    /// Session, if any.
    pub session: u64,
    /// Anything else that identifies the event (message size, decided value, ...).
    pub extra: u64,
}

/// The running trace of one run.
#[derive(Debug, Default)]
pub struct Trace {
    step: u64,
    hash: u64,
    events: Option<Vec<TraceEvent>>,
}

/// splitmix64's finaliser: a bijection of u64 that mixes every input bit into every output bit.
/// The trace hash folds each event word by word with it (`h = mix(h ^ word)`): order-sensitive,
/// stable across platforms and Rust versions like FNV, and a few times cheaper per event than
/// FNV's one multiplication per byte, which showed in the profile (one event per message).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An event kind as one word: its bytes folded in (kinds are short ASCII names, all distinct).
fn kind_word(kind: &str) -> u64 {
    kind.bytes().fold(kind.len() as u64, |w, b| w.rotate_left(8) ^ u64::from(b))
}

impl Trace {
    /// A trace that keeps its events when `keep` is true.
    pub fn new(keep: bool) -> Trace {
        Trace { step: 0, hash: Fnv::default().finish(), events: keep.then(Vec::new) }
    }

    /// The step the next event will get.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Whether events are kept (so that building details is worth it).
    pub fn keeps_events(&self) -> bool {
        self.events.is_some()
    }

    /// Records one event; `event` is built only when events are kept.
    pub fn record(&mut self, time_ms: u64, kind: &str, key: Key, event: impl FnOnce(u64) -> TraceEvent) -> u64 {
        let step = self.step;
        let mut h = self.hash;
        for x in [kind_word(kind), time_ms, u64::from(key.agent), u64::from(key.peer), key.session, key.extra] {
            h = mix(h ^ x);
        }
        self.hash = h;
        if let Some(events) = &mut self.events {
            events.push(event(step));
        }
        self.step += 1;
        step
    }

    /// Marks the kept events of `agent` from step `from` on as happening at its copy `copy`
    /// (a twin's second copy reports under the agent's identity).
    pub fn mark_copy(&mut self, from: u64, agent: u32, copy: u32) {
        let Some(events) = &mut self.events else { return };
        let first = events.partition_point(|e| e.step < from);
        for e in events[first..].iter_mut().filter(|e| e.agent == Some(agent)) {
            e.copy = Some(copy);
        }
    }

    /// The kept events.
    pub fn into_events(self) -> Vec<TraceEvent> {
        self.events.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        let mut h = Fnv::default();
        h.bytes(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let h = Fnv::default();
        assert_eq!(h.finish(), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn hash_depends_on_order_and_content() {
        let ev =
            |step| TraceEvent { step, time_ms: 0, kind: String::new(), detail: String::new(), ..Default::default() };
        let mut a = Trace::new(false);
        a.record(1, "send", Key { agent: 1, ..Key::default() }, ev);
        a.record(2, "deliver", Key { agent: 2, ..Key::default() }, ev);
        let mut b = Trace::new(true);
        b.record(2, "deliver", Key { agent: 2, ..Key::default() }, ev);
        b.record(1, "send", Key { agent: 1, ..Key::default() }, ev);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(b.into_events().len(), 2);
    }
}
