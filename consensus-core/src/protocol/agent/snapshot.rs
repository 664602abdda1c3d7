//! An agent's snapshot: its whole protocol state as bytes, so a durable log can be compacted
//! (the `durable` crate writes it, then starts a new log) and a restarted agent restored from
//! it behaves exactly as the agent it was taken from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::registry::{Registry, SessionRecord};
use crate::sign::{Signer, Verifier};
use crate::types::{AgentId, SessionId, TimeMs};

use super::super::session::SessionMachine;
use super::super::{Input, Rejection};
use super::{Agent, AgentStats, Chase, Served};

/// The encoding of [`Agent::snapshot`]; a snapshot of another version is refused.
const SNAPSHOT_VERSION: u32 = 2;

/// Why [`Agent::restore`] refused a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a snapshot.
    #[error("the snapshot does not decode: {0}")]
    Decode(String),
    /// Written by another encoding.
    #[error("the snapshot has encoding version {found}; this agent reads version {expected}")]
    Version {
        /// In the snapshot.
        found: u32,
        /// Read here.
        expected: u32,
    },
    /// Another agent's state.
    #[error("the snapshot is agent {found}'s, not agent {expected}'s")]
    WrongAgent {
        /// In the snapshot.
        found: u32,
        /// This agent.
        expected: u32,
    },
}

/// An agent's state as [`Agent::snapshot`] writes it (borrowed) ...
#[derive(Serialize)]
struct SavedRef<'a> {
    version: u32,
    id: AgentId,
    registry: &'a Registry,
    applied: u64,
    epochs: &'a BTreeMap<u64, Registry>,
    sessions: &'a BTreeMap<SessionId, SessionMachine>,
    buffered: &'a BTreeMap<SessionId, Vec<Input>>,
    records: &'a BTreeMap<SessionId, SessionRecord>,
    sync_sent_at: Option<TimeMs>,
    served: &'a BTreeMap<AgentId, Served>,
    chase: Option<Chase>,
    status_armed: bool,
    status_turn: u64,
    rejected: &'a BTreeMap<Rejection, u64>,
    evidence: u64,
    decided: u64,
}

/// ... and as [`Agent::restore`] reads it (the same fields in the same order).
#[derive(Deserialize)]
struct Saved {
    /// Checked through [`Head`] before the rest is decoded.
    _version: u32,
    id: AgentId,
    registry: Registry,
    applied: u64,
    epochs: BTreeMap<u64, Registry>,
    sessions: BTreeMap<SessionId, SessionMachine>,
    buffered: BTreeMap<SessionId, Vec<Input>>,
    records: BTreeMap<SessionId, SessionRecord>,
    sync_sent_at: Option<TimeMs>,
    served: BTreeMap<AgentId, Served>,
    chase: Option<Chase>,
    status_armed: bool,
    status_turn: u64,
    rejected: BTreeMap<Rejection, u64>,
    evidence: u64,
    decided: u64,
}

/// Version 1, written before catch-up beyond `keep_decided` (docs/protocol.md L78–L81): the
/// time each peer's `Sync` was last served instead of [`Served`], and no chase. Still read, so
/// that a node upgraded in place restores its snapshot (the serving window and the chase start
/// empty: the next `Sync` rebuilds them).
#[derive(Serialize, Deserialize)]
struct SavedV1 {
    version: u32,
    id: AgentId,
    registry: Registry,
    applied: u64,
    epochs: BTreeMap<u64, Registry>,
    sessions: BTreeMap<SessionId, SessionMachine>,
    buffered: BTreeMap<SessionId, Vec<Input>>,
    records: BTreeMap<SessionId, SessionRecord>,
    sync_sent_at: Option<TimeMs>,
    sync_served_at: BTreeMap<AgentId, TimeMs>,
    status_armed: bool,
    status_turn: u64,
    rejected: BTreeMap<Rejection, u64>,
    evidence: u64,
    decided: u64,
}

impl From<SavedV1> for Saved {
    fn from(v: SavedV1) -> Saved {
        Saved {
            _version: SNAPSHOT_VERSION,
            id: v.id,
            registry: v.registry,
            applied: v.applied,
            epochs: v.epochs,
            sessions: v.sessions,
            buffered: v.buffered,
            records: v.records,
            sync_sent_at: v.sync_sent_at,
            served: BTreeMap::new(),
            chase: None,
            status_armed: v.status_armed,
            status_turn: v.status_turn,
            rejected: v.rejected,
            evidence: v.evidence,
            decided: v.decided,
        }
    }
}

/// The first field of every version.
#[derive(Deserialize)]
struct Head {
    version: u32,
}

impl<S: Signer, V: Verifier> Agent<S, V> {
    /// The agent's whole protocol state (every session it holds, the registry and its epochs,
    /// buffered inputs, catch-up bookkeeping, counters), for a durable snapshot: an agent
    /// restored from it behaves exactly as this one would from here on. Its keys and
    /// configuration are not in it (the agent it is restored into has them).
    pub fn snapshot(&self) -> Vec<u8> {
        let saved = SavedRef {
            version: SNAPSHOT_VERSION,
            id: self.id,
            registry: &self.registry,
            applied: self.applied,
            epochs: &self.epochs,
            sessions: &self.sessions,
            buffered: &self.buffered,
            records: &self.records,
            sync_sent_at: self.sync_sent_at,
            served: &self.served,
            chase: self.chase,
            status_armed: self.status_armed,
            status_turn: self.status_turn,
            rejected: &self.stats.rejected,
            evidence: self.stats.evidence,
            decided: self.stats.decided,
        };
        // Serialising plain data into a Vec cannot fail.
        postcard::to_allocvec(&saved).unwrap_or_default()
    }

    /// The protocol state alone, canonically encoded: [`Agent::snapshot`] without the counters
    /// (rejections, evidence, decisions counted), which record what happened but never change
    /// what the agent does next. Two agents with equal canonical snapshots behave identically
    /// from here on, so a model checker (`bftsim model`) keys its states on it; the bytes
    /// restore like a snapshot (with zero counters).
    pub fn canonical_snapshot(&self) -> Vec<u8> {
        let no_rejections = BTreeMap::new();
        let saved = SavedRef {
            version: SNAPSHOT_VERSION,
            id: self.id,
            registry: &self.registry,
            applied: self.applied,
            epochs: &self.epochs,
            sessions: &self.sessions,
            buffered: &self.buffered,
            records: &self.records,
            sync_sent_at: self.sync_sent_at,
            served: &self.served,
            chase: self.chase,
            status_armed: self.status_armed,
            status_turn: self.status_turn,
            rejected: &no_rejections,
            evidence: 0,
            decided: 0,
        };
        postcard::to_allocvec(&saved).unwrap_or_default()
    }

    /// Replaces this agent's state with a snapshot's ([`Agent::snapshot`] of the same agent).
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), SnapshotError> {
        let decode = |e: postcard::Error| SnapshotError::Decode(e.to_string());
        let head: Head = postcard::from_bytes(snapshot).map_err(decode)?;
        let saved: Saved = match head.version {
            SNAPSHOT_VERSION => postcard::from_bytes(snapshot).map_err(decode)?,
            1 => postcard::from_bytes::<SavedV1>(snapshot).map_err(decode)?.into(),
            found => return Err(SnapshotError::Version { found, expected: SNAPSHOT_VERSION }),
        };
        if saved.id != self.id {
            return Err(SnapshotError::WrongAgent { found: saved.id.0, expected: self.id.0 });
        }
        self.registry = saved.registry;
        self.applied = saved.applied;
        self.epochs = saved.epochs;
        self.sessions = saved.sessions;
        self.buffered = saved.buffered;
        self.records = saved.records;
        self.sync_sent_at = saved.sync_sent_at;
        self.served = saved.served;
        self.chase = saved.chase;
        self.status_armed = saved.status_armed;
        self.status_turn = saved.status_turn;
        self.stats = AgentStats {
            rejected: saved.rejected,
            evidence: saved.evidence,
            decided: saved.decided,
            registry_events: Vec::new(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::config::EngineConfig;
    use crate::fixed::Ppm;
    use crate::protocol::messages::{Message, SessionSpec, SignedSpec};
    use crate::protocol::{Node, Output, ProtocolConfig, Timer};
    use crate::sign::{sim_committee, Keys, SimKeyring, SimSigner};
    use crate::types::{AgentSpecialization, AgentVote, CandidateId};
    use crate::wire;

    const N: u32 = 4;
    type Keyset = Keys<SimSigner, SimKeyring>;
    type Honest = Agent<SimSigner, SimKeyring>;

    fn agent(keys: &Keyset, i: u32) -> Honest {
        let engine = EngineConfig::default();
        let protocol = ProtocolConfig { pipeline: 2, keep_decided: 2, ..ProtocolConfig::default() };
        Agent::new(
            keys.agents[i as usize].clone(),
            keys.keyring.clone(),
            Registry::seed_committee(N, &engine),
            engine,
            protocol,
        )
    }

    fn open(keys: &Keyset, session: u64) -> Input {
        let candidates = vec![CandidateId(0), CandidateId(1)];
        let spec = SessionSpec { session: SessionId(session), query: format!("q{session}"), candidates, opened_ms: 0 };
        let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
        Input::Receive { from: AgentId::CLIENT, message: Message::Open(SignedSpec { spec, signature }) }
    }

    fn vote(agent: AgentId, session: SessionId) -> AgentVote {
        let spec = AgentSpecialization::cycled(agent.0 as usize);
        let (score, confidence) = (Ppm::saturating(800_000), Ppm::saturating(900_000));
        let mut v = AgentVote::accept(agent, spec, session, CandidateId(1), score, confidence);
        v.scores = [(CandidateId(0), Ppm::saturating(100_000)), (CandidateId(1), score)].into_iter().collect();
        v
    }

    /// Agent 0's inputs over 5 sessions of a 4-agent cluster: every message delivered in order
    /// (agent 3's never, so rounds need every other vote), own votes, and each scheduled timer
    /// fired once the messages run out.
    fn history(keys: &Keyset) -> Vec<(TimeMs, Input)> {
        let mut agents: Vec<Honest> = (0..N).map(|i| agent(keys, i)).collect();
        let mut queue: VecDeque<(u32, Input)> =
            (0..5).flat_map(|s| (0..3).map(move |a| (a, s))).map(|(a, s)| (a, open(keys, s))).collect();
        let mut timers: VecDeque<(u32, Timer)> = VecDeque::new();
        let mut inputs = Vec::new();
        let mut now = 0;
        while let Some((to, input)) = queue.pop_front().or_else(|| {
            now += 100;
            timers.pop_front().map(|(a, t)| (a, Input::Timeout(t)))
        }) {
            if inputs.len() > 400 {
                break;
            }
            let mut out = Vec::new();
            agents[to as usize].handle(now, input.clone(), &mut out);
            if to == 0 {
                inputs.push((now, input));
            }
            for o in out {
                let from = AgentId(to);
                match o {
                    Output::Broadcast(m) => {
                        queue.extend(
                            (0..3).filter(|a| *a != to).map(|a| (a, Input::Receive { from, message: m.clone() })),
                        );
                    }
                    Output::Send { to: peer, message } if peer.0 < 3 => {
                        queue.push_back((peer.0, Input::Receive { from, message }));
                    }
                    Output::Evaluate(spec) => queue.push_back((to, Input::LocalVote(vote(from, spec.session)))),
                    Output::Schedule { timer, .. } => timers.push_back((to, timer)),
                    _ => {}
                }
            }
        }
        inputs
    }

    #[test]
    fn a_restored_snapshot_behaves_exactly_as_the_agent_it_was_taken_from() {
        let keys = sim_committee(5, N);
        let inputs = history(&keys);
        assert!(inputs.len() > 60, "{} inputs", inputs.len());
        let mut original = agent(&keys, 0);
        for cut in 0..=inputs.len() {
            if cut > 0 {
                let (now, input) = inputs[cut - 1].clone();
                original.handle(now, input, &mut Vec::new());
            }
            if cut % 7 != 0 {
                continue;
            }
            let snapshot = original.snapshot();
            let mut restored = agent(&keys, 0);
            restored.restore(&snapshot).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(restored.snapshot(), snapshot, "cut {cut}: the snapshot round-trips");
            let mut ahead = agent(&keys, 0);
            ahead.restore(&snapshot).unwrap_or_else(|e| panic!("{e}"));
            // The restored agent and one that never stopped answer the rest identically.
            let mut reference = agent(&keys, 0);
            for (now, input) in &inputs[..cut] {
                reference.handle(*now, input.clone(), &mut Vec::new());
            }
            for (i, (now, input)) in inputs[cut..].iter().enumerate() {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                reference.handle(*now, input.clone(), &mut a);
                ahead.handle(*now, input.clone(), &mut b);
                assert_eq!(a, b, "cut {cut}, input {}", cut + i);
            }
            assert_eq!(ahead.snapshot(), reference.snapshot(), "cut {cut}: the same state at the end");
        }
        assert!(original.applied_sessions() >= 3, "sessions were decided: {}", original.applied_sessions());
    }

    /// The canonical snapshot leaves out only the counters: a restored agent behaves as the
    /// original, and two agents differing in counters alone have equal canonical snapshots.
    #[test]
    fn the_canonical_snapshot_drops_only_the_counters() {
        let keys = sim_committee(5, N);
        let inputs = history(&keys);
        let mut original = agent(&keys, 0);
        for (now, input) in &inputs[..inputs.len() / 2] {
            original.handle(*now, input.clone(), &mut Vec::new());
        }
        assert!(original.stats().decided > 0 || !original.stats().rejected.is_empty());
        let canonical = original.canonical_snapshot();
        assert_ne!(canonical, original.snapshot(), "the counters are not in it");
        let mut restored = agent(&keys, 0);
        restored.restore(&canonical).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(restored.canonical_snapshot(), canonical);
        for (now, input) in &inputs[inputs.len() / 2..] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            original.handle(*now, input.clone(), &mut a);
            restored.handle(*now, input.clone(), &mut b);
            assert_eq!(a, b);
        }
        assert_eq!(restored.canonical_snapshot(), original.canonical_snapshot());
    }

    #[test]
    fn a_foreign_or_damaged_snapshot_is_refused() {
        let keys = sim_committee(5, N);
        let snapshot = agent(&keys, 1).snapshot();
        let mut a0 = agent(&keys, 0);
        assert_eq!(a0.restore(&snapshot), Err(SnapshotError::WrongAgent { found: 1, expected: 0 }));
        assert!(matches!(a0.restore(&snapshot[..3]), Err(SnapshotError::Decode(_))));
        let mut other_version = snapshot.clone();
        other_version[0] = 9;
        assert_eq!(a0.restore(&other_version), Err(SnapshotError::Version { found: 9, expected: SNAPSHOT_VERSION }));
    }

    /// A version-1 snapshot (before L78–L81) of an agent that decided sessions restores to the
    /// same state, with an empty serving window and no chase.
    #[test]
    fn a_version_1_snapshot_still_restores() {
        let keys = sim_committee(5, N);
        let mut original = agent(&keys, 0);
        for (now, input) in history(&keys) {
            original.handle(now, input, &mut Vec::new());
        }
        original.served.clear();
        original.chase = None;
        let o = &original;
        let v1 = SavedV1 {
            version: 1,
            id: o.id,
            registry: o.registry.clone(),
            applied: o.applied,
            epochs: o.epochs.clone(),
            // Sessions are not Clone: a copy through their encoding.
            sessions: postcard::from_bytes(&postcard::to_allocvec(&o.sessions).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}")),
            buffered: o.buffered.clone(),
            records: o.records.clone(),
            sync_sent_at: o.sync_sent_at,
            sync_served_at: [(AgentId(2), 40)].into_iter().collect(),
            status_armed: o.status_armed,
            status_turn: o.status_turn,
            rejected: o.stats.rejected.clone(),
            evidence: o.stats.evidence,
            decided: o.stats.decided,
        };
        let bytes = postcard::to_allocvec(&v1).unwrap_or_default();
        let mut restored = agent(&keys, 0);
        restored.restore(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(original.applied_sessions() >= 3);
        assert_eq!(restored.snapshot(), original.snapshot());
    }
}
