//! The durable agent: every input is logged before the agent handles it, and an output that
//! carries one of the agent's own messages signed for the first time may leave only once the
//! log is durable up to that input.
//!
//! Why that is enough: the `Agent` is deterministic (no clock, no randomness; ed25519
//! signatures are deterministic), so its state (locks, valid values, its own votes,
//! proposals, prevotes and precommits, decisions, registry epochs) is a function of the
//! sequence of `(now, input)` it handled. Replaying the durable log rebuilds that state, and a
//! message that commits the agent (a vote, a proposal, a prevote or precommit) never leaves
//! before the inputs it follows from are durable, so a restarted agent cannot sign something
//! that contradicts a message another agent saw (the amnesia failure of the Twins paper).
//! Re-sent messages, certificates and `Sync` follow from state already durable or prove
//! themselves, so they need no sync.
//!
//! Sans-I/O in the sense that matters here: the wrapper never waits. [`DurableAgent::handle`]
//! appends (unsynced) and returns the *mark* the outputs must wait for; the caller syncs when
//! it likes ([`crate::SyncHandle`], one sync for many records) and releases what waited. The
//! node does so from a syncer task while its runner continues; the simulator can sync after a
//! simulated disk latency, or crash first.

use std::collections::BTreeSet;

use consensus_core::protocol::{Input, Message, Node, Output, Timer, VoteKind};
use consensus_core::{wire, AgentId, AgentVote, SessionId, TimeMs};
use serde::{Deserialize, Serialize};

use crate::journal::{Journal, SyncHandle};
use crate::log::{Cut, Fix, LogError};
use crate::storage::Storage;

/// The journal name of the agent's inputs (files `agent.snap`, `agent.<generation>.log`).
pub const AGENT_JOURNAL: &str = "agent";

/// A node whose state can be saved in a snapshot, so its log can be compacted.
pub trait Recoverable: Node {
    /// The node's whole state, or `None` if it cannot be saved (its log then grows).
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }
    /// Replaces the node's state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let _ = snapshot;
        Err("this node keeps no snapshots".into())
    }
    /// Whether [`Recoverable::snapshot`] gives a snapshot (otherwise the log is never compacted).
    fn can_snapshot(&self) -> bool {
        false
    }
    /// Sessions applied (every one below is decided), when the node tells.
    fn applied_sessions(&self) -> Option<u64> {
        None
    }
}

impl<T: Recoverable + ?Sized> Recoverable for Box<T> {
    fn snapshot(&self) -> Option<Vec<u8>> {
        (**self).snapshot()
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        (**self).restore(snapshot)
    }
    fn can_snapshot(&self) -> bool {
        (**self).can_snapshot()
    }
    fn applied_sessions(&self) -> Option<u64> {
        (**self).applied_sessions()
    }
}

impl<S, V> Recoverable for consensus_core::adversary::Byzantine<S, V>
where
    S: consensus_core::sign::Signer + Clone,
    V: consensus_core::sign::Verifier,
{
}

impl<S, V> Recoverable for consensus_core::protocol::Agent<S, V>
where
    S: consensus_core::sign::Signer,
    V: consensus_core::sign::Verifier,
{
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(consensus_core::protocol::Agent::snapshot(self))
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        consensus_core::protocol::Agent::restore(self, snapshot).map_err(|e| e.to_string())
    }
    fn can_snapshot(&self) -> bool {
        true
    }
    fn applied_sessions(&self) -> Option<u64> {
        Some(consensus_core::protocol::Agent::applied_sessions(self))
    }
}

/// An input as logged. `Receive` keeps the message as its wire frame.
#[derive(Serialize, Deserialize)]
enum Logged {
    Receive { from: AgentId, frame: Vec<u8> },
    LocalVote(AgentVote),
    Timeout(Timer),
    Malformed { from: AgentId },
    Recover,
}

#[derive(Serialize, Deserialize)]
struct Record {
    now_ms: TimeMs,
    input: Logged,
}

/// The bytes of one logged input.
pub fn encode_input(now_ms: TimeMs, input: &Input) -> Vec<u8> {
    let input = match input {
        Input::Receive { from, message } => Logged::Receive { from: *from, frame: wire::encode(message) },
        Input::LocalVote(v) => Logged::LocalVote(v.clone()),
        Input::Timeout(t) => Logged::Timeout(*t),
        Input::Malformed { from } => Logged::Malformed { from: *from },
        Input::Recover => Logged::Recover,
    };
    // Serialising plain data into a Vec cannot fail.
    postcard::to_allocvec(&Record { now_ms, input }).unwrap_or_default()
}

/// One logged input, or why it does not decode.
pub fn decode_input(bytes: &[u8]) -> Result<(TimeMs, Input), String> {
    let record: Record = postcard::from_bytes(bytes).map_err(|e| format!("the record does not decode: {e}"))?;
    let input = match record.input {
        Logged::Receive { from, frame } => {
            let message = wire::decode(&frame).map_err(|e| format!("the logged frame does not decode: {e}"))?;
            Input::Receive { from, message }
        }
        Logged::LocalVote(v) => Input::LocalVote(v),
        Logged::Timeout(t) => Input::Timeout(t),
        Logged::Malformed { from } => Input::Malformed { from },
        Logged::Recover => Input::Recover,
    };
    Ok((record.now_ms, input))
}

/// Identifies one of the agent's own signed messages: session, kind, round.
type SignedKey = (SessionId, u8, u32);

/// The key of `message` when `me` signed it.
fn own_signed(me: AgentId, message: &Message) -> Option<SignedKey> {
    match message {
        Message::Vote(v) if v.vote.agent == me => Some((v.vote.session, 0, 0)),
        Message::Proposal(p) if p.proposer == me => Some((p.value.session, 1, p.round)),
        Message::RoundVote(v) if v.agent == me => {
            Some((v.session, if v.kind == VoteKind::Prevote { 2 } else { 3 }, v.round))
        }
        _ => None,
    }
}

/// Own signed messages remembered as already durable. A forgotten one only costs a sync when
/// it is re-sent; the oldest sessions are forgotten first.
const MAX_SIGNED_REMEMBERED: usize = 16_384;

/// Settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableConfig {
    /// The log is compacted (snapshot, then a new log) once it holds this many bytes.
    pub compact_log_bytes: u64,
}

impl Default for DurableConfig {
    fn default() -> Self {
        DurableConfig { compact_log_bytes: 16 << 20 }
    }
}

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Whether the state started from a snapshot.
    pub from_snapshot: bool,
    /// Inputs replayed after it.
    pub inputs: u64,
    /// The torn tail cut off the log.
    pub cut: Option<Cut>,
    /// Files a crash left behind, removed.
    pub removed: Vec<String>,
}

impl Replayed {
    /// Whether the agent had durable state (it restarts rather than starts).
    pub fn restarted(&self) -> bool {
        self.from_snapshot || self.inputs > 0
    }
}

/// A node whose inputs are logged before it handles them (see the module documentation).
pub struct DurableAgent<N, S> {
    inner: N,
    journal: Journal<S>,
    signed: BTreeSet<SignedKey>,
    config: DurableConfig,
}

impl<N: Recoverable, S: Storage + Clone> DurableAgent<N, S> {
    /// Opens the agent's journal in `storage` and rebuilds `inner` from it: the snapshot, then
    /// every logged input in order. `on_replay` sees each replayed input with the outputs it
    /// produced (nothing is sent: the caller rebuilds what it shows, such as decisions).
    pub fn open(
        mut inner: N,
        storage: S,
        config: DurableConfig,
        mut on_replay: impl FnMut(TimeMs, &Input, &[Output]),
    ) -> Result<(DurableAgent<N, S>, Replayed), LogError> {
        let (journal, recovered) = Journal::open(storage, AGENT_JOURNAL)?;
        let snap_file = journal.storage().describe(&format!("{AGENT_JOURNAL}.snap"));
        if let Some(snapshot) = &recovered.snapshot {
            inner.restore(snapshot).map_err(|reason| LogError::Corrupt {
                file: snap_file.clone(),
                offset: 0,
                reason: format!("the snapshot does not restore: {reason}"),
                fix: Fix::Restore,
            })?;
        }
        let log_file = journal.storage().describe(&format!("{AGENT_JOURNAL}.{}.log", journal.generation()));
        let mut out = Vec::new();
        let mut inputs = 0;
        for (offset, body) in recovered.replay.records() {
            let (now_ms, input) = decode_input(body).map_err(|reason| LogError::Corrupt {
                file: log_file.clone(),
                offset,
                reason,
                fix: Fix::CutLog,
            })?;
            out.clear();
            inner.handle(now_ms, input.clone(), &mut out);
            on_replay(now_ms, &input, &out);
            inputs += 1;
        }
        let replayed = Replayed {
            from_snapshot: recovered.snapshot.is_some(),
            inputs,
            cut: recovered.replay.cut,
            removed: recovered.removed,
        };
        Ok((DurableAgent { inner, journal, signed: BTreeSet::new(), config }, replayed))
    }

    /// Logs `input`, then lets the agent handle it. Returns the mark the outputs must wait
    /// for (the log durable up to it) when one of them carries an own message signed for the
    /// first time; `None` when they may leave at once. On error nothing was handled: the
    /// agent must stop (its log no longer records what it does).
    pub fn handle(&mut self, now_ms: TimeMs, input: Input, out: &mut Vec<Output>) -> Result<Option<u64>, LogError> {
        let mark = self.journal.append(&encode_input(now_ms, &input))?;
        let start = out.len();
        self.inner.handle(now_ms, input, out);
        let me = self.inner.id();
        let mut fresh = false;
        for output in &out[start..] {
            if let Output::Broadcast(message) | Output::Send { message, .. } = output {
                if let Some(key) = own_signed(me, message) {
                    fresh |= self.signed.insert(key);
                }
            }
        }
        while self.signed.len() > MAX_SIGNED_REMEMBERED {
            self.signed.pop_first();
        }
        Ok(fresh.then_some(mark))
    }

    /// Whether the log has grown past the compaction threshold and the agent can be saved.
    pub fn needs_compaction(&self) -> bool {
        self.journal.log_bytes() >= self.config.compact_log_bytes && self.inner.can_snapshot()
    }

    /// Saves the agent's state as a snapshot and restarts the log. `Ok(false)` if the agent
    /// keeps no snapshots. Everything logged so far is durable afterwards.
    pub fn compact(&mut self) -> Result<bool, LogError> {
        let Some(snapshot) = self.inner.snapshot() else { return Ok(false) };
        self.journal.compact(&snapshot)?;
        Ok(true)
    }

    /// Makes every logged input durable now; returns the durable mark.
    pub fn sync(&mut self) -> Result<u64, LogError> {
        self.journal.sync()
    }

    /// Syncs from another thread.
    pub fn sync_handle(&self) -> SyncHandle<S> {
        self.journal.sync_handle()
    }

    /// The mark of the last logged input.
    pub fn written(&self) -> u64 {
        self.journal.written()
    }

    /// The mark up to which inputs are durable.
    pub fn durable(&self) -> u64 {
        self.journal.durable()
    }

    /// The journal (sizes, generation).
    pub fn journal(&self) -> &Journal<S> {
        &self.journal
    }

    /// The wrapped agent.
    pub fn inner(&self) -> &N {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};

    use consensus_core::protocol::messages::SignedSpec;
    use consensus_core::protocol::{Agent, ProtocolConfig, SessionSpec, TimerKind};
    use consensus_core::registry::Registry;
    use consensus_core::sign::{sim_committee, Keys, Signer, SimKeyring, SimSigner};
    use consensus_core::{AgentSpecialization, CandidateId, EngineConfig, Ppm};

    use super::*;
    use crate::simdisk::{CrashMode, SimDisk};

    const N: u32 = 4;
    type Keyset = Keys<SimSigner, SimKeyring>;
    type Honest = Agent<SimSigner, SimKeyring>;
    type Durable = DurableAgent<Honest, SimDisk>;

    fn agent(keys: &Keyset, i: u32) -> Honest {
        let engine = EngineConfig::default();
        let registry = Registry::seed_committee(N, &engine);
        Agent::new(keys.agents[i as usize].clone(), keys.keyring.clone(), registry, engine, ProtocolConfig::default())
    }

    fn open(keys: &Keyset, session: u64) -> Message {
        let candidates = vec![CandidateId(0), CandidateId(1)];
        let spec = SessionSpec { session: SessionId(session), query: "q".into(), candidates, opened_ms: 0 };
        let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
        Message::Open(SignedSpec { spec, signature })
    }

    fn vote(agent: AgentId, session: SessionId) -> AgentVote {
        let spec = AgentSpecialization::cycled(agent.0 as usize);
        let (score, confidence) = (Ppm::saturating(900_000), Ppm::saturating(950_000));
        let mut v = AgentVote::accept(agent, spec, session, CandidateId(0), score, confidence);
        v.scores = [(CandidateId(0), score), (CandidateId(1), Ppm::saturating(200_000))].into_iter().collect();
        v
    }

    fn ok<T>(r: Result<T, LogError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every input each agent handled, with its outputs, in order.
    type History = BTreeMap<u32, Vec<(Input, Vec<Output>)>>;

    /// Delivers every message at once (FIFO), answers `Evaluate` with an accepting vote, and
    /// ignores timers: `sessions` sessions decide at every agent without a timeout.
    fn run(agents: &mut [Durable], keys: &Keyset, sessions: std::ops::Range<u64>, history: &mut History) {
        let mut queue: VecDeque<(u32, Input)> = VecDeque::new();
        for s in sessions {
            for a in 0..N {
                queue.push_back((a, Input::Receive { from: AgentId::CLIENT, message: open(keys, s) }));
            }
        }
        while let Some((to, input)) = queue.pop_front() {
            let mut out = Vec::new();
            ok(agents[to as usize].handle(5, input.clone(), &mut out));
            for o in &out {
                match o {
                    Output::Broadcast(m) => {
                        let from = AgentId(to);
                        queue.extend(
                            (0..N).filter(|a| *a != to).map(|a| (a, Input::Receive { from, message: m.clone() })),
                        );
                    }
                    Output::Send { to: peer, message } if peer.0 < N => {
                        queue.push_back((peer.0, Input::Receive { from: AgentId(to), message: message.clone() }))
                    }
                    Output::Evaluate(spec) => queue.push_back((to, Input::LocalVote(vote(AgentId(to), spec.session)))),
                    _ => {}
                }
            }
            history.entry(to).or_default().push((input, out));
        }
    }

    fn cluster(keys: &Keyset, disks: &[SimDisk], config: DurableConfig) -> Vec<Durable> {
        (0..N)
            .map(|i| ok(DurableAgent::open(agent(keys, i), disks[i as usize].clone(), config, |_, _, _| {})).0)
            .collect()
    }

    fn decided(out: &[Output]) -> usize {
        out.iter().filter(|o| matches!(o, Output::Decide(_))).count()
    }

    #[test]
    fn a_restarted_agent_replays_to_the_same_state_from_what_its_disk_kept() {
        let keys = sim_committee(7, N);
        let disks: Vec<SimDisk> = (0..N).map(|_| SimDisk::new()).collect();
        let mut agents = cluster(&keys, &disks, DurableConfig::default());
        let mut history = History::new();
        run(&mut agents, &keys, 0..3, &mut history);
        let a2 = &history[&2];
        assert_eq!(a2.iter().map(|(_, out)| decided(out)).sum::<usize>(), 3, "agent 2 decides the 3 sessions");
        // Make the first half durable, then lose the rest in a power loss.
        let half = a2.len() / 2;
        drop(agents);
        let durable_part: Vec<u8> = disks[2].durable_content("agent.0.log").unwrap_or_default();
        assert!(durable_part.is_empty(), "nothing was synced yet");
        for (mode, kept) in [(CrashMode::KeepUnsynced, a2.len()), (CrashMode::KeepPrefix { keep: half as u64 }, half)] {
            let disk = SimDisk::new();
            for (input, _) in &a2[..] {
                ok(disk.append("agent.0.log", &crate::log::frame(&encode_input(5, input))).map_err(LogError::from));
            }
            disk.crash(mode);
            let mut replayed = Vec::new();
            let (mut restarted, r) =
                ok(DurableAgent::open(agent(&keys, 2), disk.clone(), DurableConfig::default(), |_, input, out| {
                    replayed.push((input.clone(), out.to_vec()))
                }));
            assert_eq!(r.inputs as usize, kept, "{mode:?}");
            assert_eq!(replayed, a2[..kept].to_vec(), "{mode:?}: replay produces the same outputs");
            // And it goes on from there exactly as the original did.
            if kept < a2.len() {
                let mut out = Vec::new();
                ok(restarted.handle(5, a2[kept].0.clone(), &mut out));
                assert_eq!(out, a2[kept].1, "{mode:?}");
            }
        }
    }

    #[test]
    fn only_a_first_signature_waits_for_the_log() {
        let keys = sim_committee(7, N);
        let disk = SimDisk::new();
        let (mut a, r) = ok(DurableAgent::open(agent(&keys, 0), disk.clone(), DurableConfig::default(), |_, _, _| {}));
        assert!(!r.restarted());
        let mut out = Vec::new();
        let open = Input::Receive { from: AgentId::CLIENT, message: open(&keys, 0) };
        assert_eq!(ok(a.handle(1, open, &mut out)), None, "opening signs nothing");
        assert!(out.iter().any(|o| matches!(o, Output::Evaluate(_))));
        let mark = ok(a.handle(2, Input::LocalVote(vote(AgentId(0), SessionId(0))), &mut out));
        assert_eq!(mark, Some(2), "the first vote waits for both inputs");
        assert_eq!((a.written(), a.durable()), (2, 0));
        let retransmit = Input::Timeout(Timer { session: SessionId(0), round: 0, kind: TimerKind::Retransmit });
        out.clear();
        assert_eq!(ok(a.handle(120, retransmit, &mut out)), None, "a re-sent vote needs no sync");
        assert!(out.iter().any(|o| matches!(o, Output::Broadcast(Message::Vote(_)))), "{out:?}");
        assert_eq!(ok(a.sync()), 3);
        assert_eq!(disk.unsynced_writes("agent.0.log"), Vec::<usize>::new());
        assert!(!a.needs_compaction(), "16 MiB by default");
        assert!(ok(a.compact()), "the agent keeps snapshots");
        assert_eq!(a.journal().log_bytes(), 0);
    }

    #[test]
    fn a_compacting_agent_restarts_from_snapshot_and_log_to_the_same_state() {
        let keys = sim_committee(9, N);
        let disks: Vec<SimDisk> = (0..N).map(|_| SimDisk::new()).collect();
        let config = DurableConfig { compact_log_bytes: 4_000 };
        let mut agents = cluster(&keys, &disks, config);
        let mut history = History::new();
        let mut compactions = 0;
        for k in 0..8 {
            run(&mut agents, &keys, 2 * k..2 * k + 2, &mut history);
            for a in &mut agents {
                if a.needs_compaction() {
                    assert!(ok(a.compact()));
                    compactions += 1;
                }
            }
        }
        assert!(compactions >= 4, "{compactions} compactions");
        for a in &mut agents {
            ok(a.sync());
        }
        let before: Vec<Vec<u8>> = agents.iter().map(|a| a.inner().snapshot()).collect();
        drop(agents);
        for (i, disk) in disks.iter().enumerate() {
            disk.crash(CrashMode::LoseUnsynced);
            let (a, r) = ok(DurableAgent::open(agent(&keys, i as u32), disk.clone(), config, |_, _, _| {}));
            assert!(r.from_snapshot, "agent {i}");
            assert_eq!(a.inner().snapshot(), before[i], "agent {i}: snapshot plus log rebuild the state exactly");
            assert!(a.journal().log_bytes() < 4_000 + 2_000, "agent {i}: {}", a.journal().log_bytes());
        }
    }

    /// A node whose state is the sum of the timer rounds it was given, with snapshots.
    struct Summer(u64);

    impl Node for Summer {
        fn id(&self) -> AgentId {
            AgentId(0)
        }
        fn handle(&mut self, _: TimeMs, input: Input, _: &mut Vec<Output>) {
            if let Input::Timeout(t) = input {
                self.0 += u64::from(t.round);
            }
        }
    }

    impl Recoverable for Summer {
        fn snapshot(&self) -> Option<Vec<u8>> {
            Some(self.0.to_le_bytes().to_vec())
        }
        fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
            self.0 = u64::from_le_bytes(snapshot.try_into().map_err(|_| "not 8 bytes".to_owned())?);
            Ok(())
        }
        fn can_snapshot(&self) -> bool {
            true
        }
    }

    #[test]
    fn compaction_bounds_the_log_and_a_restart_restores_snapshot_then_log() {
        let disk = SimDisk::new();
        let config = DurableConfig { compact_log_bytes: 300 };
        let (mut a, _) = ok(DurableAgent::open(Summer(0), disk.clone(), config, |_, _, _| {}));
        let mut sum = 0;
        for round in 0..200u32 {
            let timer = Timer { session: SessionId(1), round, kind: TimerKind::Propose };
            ok(a.handle(u64::from(round), Input::Timeout(timer), &mut Vec::new()));
            sum += u64::from(round);
            if a.needs_compaction() {
                assert!(ok(a.compact()));
                assert_eq!(a.durable(), a.written(), "a snapshot makes everything durable");
            }
            assert!(a.journal().log_bytes() < 300, "round {round}: {} bytes", a.journal().log_bytes());
        }
        assert!(a.journal().generation() > 10);
        drop(a);
        disk.crash(CrashMode::KeepUnsynced);
        let (a, r) = ok(DurableAgent::open(Summer(0), disk.clone(), config, |_, _, _| {}));
        assert!(r.from_snapshot && r.restarted());
        assert_eq!(a.inner().0, sum, "snapshot plus the log since");
        let files = disk.list().unwrap_or_default();
        assert_eq!(files.len(), 2, "one snapshot, one log: {files:?}");
    }

    #[test]
    fn a_damaged_closed_record_stops_the_restart_with_its_place() {
        let keys = sim_committee(7, N);
        let disk = SimDisk::new();
        let (mut a, _) = ok(DurableAgent::open(agent(&keys, 0), disk.clone(), DurableConfig::default(), |_, _, _| {}));
        let mut out = Vec::new();
        ok(a.handle(1, Input::Receive { from: AgentId::CLIENT, message: open(&keys, 0) }, &mut out));
        ok(a.handle(2, Input::Recover, &mut out));
        ok(a.sync());
        drop(a);
        assert!(disk.flip_bit("agent.0.log", 8 * 20));
        let err = DurableAgent::open(agent(&keys, 0), disk.clone(), DurableConfig::default(), |_, _, _| {})
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, LogError::Corrupt { offset: 0, .. }), "{err}");
        assert!(err.to_string().contains("simdisk:agent.0.log: corrupt record at byte 0"), "{err}");

        // A record whose checksum holds but whose content is not an input: also refused.
        let disk = SimDisk::new();
        ok(disk.append("agent.0.log", &crate::log::frame(b"\xff\xff\xff")).map_err(LogError::from));
        ok(disk.append("agent.0.log", &crate::log::frame(&encode_input(1, &Input::Recover))).map_err(LogError::from));
        let err =
            DurableAgent::open(agent(&keys, 0), disk, DurableConfig::default(), |_, _, _| {}).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("does not decode"), "{err}");
    }
}
