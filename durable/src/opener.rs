//! The session opener as a sans-I/O state machine: numbers sessions, logs them, acknowledges
//! them only once they are durable, keeps at most `max_in_flight` open and undecided, and
//! says what to send and re-send. The node's `POST /v1/sessions` and the simulator's client
//! both open sessions through it.
//!
//! Why each rule:
//! - **Acknowledge after durable.** A session id is answered (HTTP 201) only once its
//!   `Accepted` record is durable ([`Ticket::mark`]), so a restarted opener knows every id it
//!   acknowledged: it never numbers another session with it, and it re-opens every one that
//!   is not decided.
//! - **Sign once, send after durable.** A session is signed (`Open`, with the time it opens)
//!   once; the signed spec is logged and its frames may leave only once that record is durable
//!   ([`Open::mark`]). A restarted opener re-sends the same signed spec, so no agent ever sees
//!   two specs for one id, and no id an agent saw can be given to another query.
//! - **Dense ids.** The registry applies decided sessions in order, so a gap would stall every
//!   later session: ids are consecutive, and an id lost before it was acknowledged (its record
//!   never became durable) is simply handed out again.
//!
//! The journal `opener` is compacted to a snapshot of the undecided sessions, so it stays
//! bounded by `max_queued` and `max_in_flight`, not by history.

use std::collections::{BTreeMap, VecDeque};

use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::SessionSpec;
use consensus_core::sign::Signer;
use consensus_core::{wire, CandidateId, SessionId, TimeMs};
use serde::{Deserialize, Serialize};

use crate::journal::{Journal, SyncHandle};
use crate::log::{Fix, LogError};
use crate::storage::Storage;

/// The journal name of the opener (files `opener.snap`, `opener.<generation>.log`).
pub const OPENER_JOURNAL: &str = "opener";

/// Settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenerConfig {
    /// Sessions opened and not yet decided, at most.
    pub max_in_flight: usize,
    /// Sessions acknowledged and waiting to be opened, at most; more are refused.
    pub max_queued: usize,
    /// The log is compacted once it holds this many bytes.
    pub compact_log_bytes: u64,
}

impl Default for OpenerConfig {
    fn default() -> Self {
        OpenerConfig { max_in_flight: 16, max_queued: 4_096, compact_log_bytes: 4 << 20 }
    }
}

/// An accepted session: acknowledge it once the log is durable up to `mark`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// Its id.
    pub session: SessionId,
    /// The mark its record has.
    pub mark: u64,
}

/// A session to open: send `spec` (as `Open`) to every agent once the log is durable up to
/// `mark`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The client-signed specification.
    pub spec: SignedSpec,
    /// The mark its record has.
    pub mark: u64,
}

/// Why a session was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Too many sessions wait to be opened.
    #[error("{queued} sessions are waiting to be opened (at most {max}); retry later")]
    Full {
        /// Waiting now.
        queued: usize,
        /// The limit.
        max: usize,
    },
    /// Every session id has been handed out or seen: the next one would reuse an id.
    #[error("no session id is left: the opener has handed out or seen session {last} (the largest id); it never reuses an id")]
    Exhausted {
        /// The largest id.
        last: u64,
    },
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
}

#[derive(Serialize, Deserialize)]
enum Record {
    Accepted { session: SessionId, query: String, candidates: u32 },
    Opened(SignedSpec),
    Decided(SessionId),
}

/// Accepted, not yet opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Queued {
    session: SessionId,
    query: String,
    candidates: u32,
}

/// The opener's durable state (also its snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// The next id to hand out.
    next: u64,
    queued: VecDeque<Queued>,
    /// Opened and not known decided.
    opened: BTreeMap<SessionId, SignedSpec>,
}

impl State {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Accepted { session, query, candidates } => {
                self.next = self.next.max(session.0.saturating_add(1));
                self.queued.push_back(Queued { session, query, candidates });
            }
            Record::Opened(spec) => {
                let session = spec.spec.session;
                self.queued.retain(|q| q.session != session);
                self.next = self.next.max(session.0.saturating_add(1));
                self.opened.insert(session, spec);
            }
            Record::Decided(session) => {
                self.queued.retain(|q| q.session != session);
                self.opened.remove(&session);
            }
        }
    }
}

/// What a restarted opener found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenerRecovery {
    /// The next id it will hand out (every id below was acknowledged or never answered).
    pub next: SessionId,
    /// Opened, undecided sessions it re-sends.
    pub reopened: usize,
    /// Accepted sessions still waiting to be opened.
    pub queued: usize,
}

/// The opener (see the module documentation).
pub struct Opener<S, G> {
    journal: Journal<S>,
    signer: G,
    config: OpenerConfig,
    state: State,
    /// When each opened session was last sent; absent means due now.
    sent_at: BTreeMap<SessionId, TimeMs>,
    compaction_error: Option<String>,
}

impl<S: Storage + Clone, G: Signer> Opener<S, G> {
    /// Opens the opener's journal in `storage`; `signer` is the client's key.
    pub fn open(storage: S, signer: G, config: OpenerConfig) -> Result<(Opener<S, G>, OpenerRecovery), LogError> {
        let (journal, recovered) = Journal::open(storage, OPENER_JOURNAL)?;
        let describe = |file: String| journal.storage().describe(&file);
        let mut state = match &recovered.snapshot {
            Some(bytes) => postcard::from_bytes(bytes).map_err(|e| LogError::Corrupt {
                file: describe(format!("{OPENER_JOURNAL}.snap")),
                offset: 0,
                reason: format!("the snapshot does not decode: {e}"),
                fix: Fix::Restore,
            })?,
            None => State::default(),
        };
        let log_file = describe(format!("{OPENER_JOURNAL}.{}.log", journal.generation()));
        for (offset, body) in recovered.replay.records() {
            let record = postcard::from_bytes(body).map_err(|e| LogError::Corrupt {
                file: log_file.clone(),
                offset,
                reason: format!("the record does not decode: {e}"),
                fix: Fix::CutLog,
            })?;
            state.apply(record);
        }
        let recovery =
            OpenerRecovery { next: SessionId(state.next), reopened: state.opened.len(), queued: state.queued.len() };
        let opener = Opener { journal, signer, config, state, sent_at: BTreeMap::new(), compaction_error: None };
        Ok((opener, recovery))
    }

    fn log(&mut self, record: Record) -> Result<u64, LogError> {
        // Serialising plain data into a Vec cannot fail.
        let bytes = postcard::to_allocvec(&record).unwrap_or_default();
        let mark = self.journal.append(&bytes)?;
        self.state.apply(record);
        if self.journal.log_bytes() >= self.config.compact_log_bytes {
            let snapshot = postcard::to_allocvec(&self.state).unwrap_or_default();
            // Not fatal: the journal is unchanged and still takes records; the next record
            // tries again, and the failure is kept for the operator.
            self.compaction_error = self.journal.compact(&snapshot).err().map(|e| e.to_string());
        }
        Ok(mark)
    }

    /// Why the last compaction failed, if it did.
    pub fn compaction_error(&self) -> Option<&str> {
        self.compaction_error.as_deref()
    }

    /// Numbers a session with `candidates` candidates and logs it. Acknowledge it (answer the
    /// client) only once [`Opener::durable`] reaches the ticket's mark.
    pub fn submit(&mut self, query: String, candidates: u32) -> Result<Ticket, SubmitError> {
        if self.state.queued.len() >= self.config.max_queued {
            return Err(SubmitError::Full { queued: self.state.queued.len(), max: self.config.max_queued });
        }
        // `next` saturates at u64::MAX (a certificate or log may name that id: `note_seen`), so
        // u64::MAX itself is never handed out: the id after it would be the same id again.
        if self.state.next == u64::MAX {
            return Err(SubmitError::Exhausted { last: u64::MAX });
        }
        let session = SessionId(self.state.next);
        let mark = self.log(Record::Accepted { session, query, candidates })?;
        Ok(Ticket { session, mark })
    }

    /// Opens queued sessions, in order, while fewer than `max_in_flight` are undecided: signs
    /// each (opened at `now_ms`), logs it and appends it to `out`.
    pub fn poll_open(&mut self, now_ms: TimeMs, out: &mut Vec<Open>) -> Result<(), LogError> {
        while self.state.opened.len() < self.config.max_in_flight.max(1) {
            let Some(next) = self.state.queued.front().cloned() else { break };
            let spec = SessionSpec {
                session: next.session,
                query: next.query,
                candidates: (0..next.candidates).map(CandidateId).collect(),
                opened_ms: now_ms,
            };
            let signature = self.signer.sign(&wire::spec_signing_bytes(&spec));
            let spec = SignedSpec { spec, signature };
            let mark = self.log(Record::Opened(spec.clone()))?;
            self.sent_at.insert(next.session, now_ms);
            out.push(Open { spec, mark });
        }
        Ok(())
    }

    /// Opened, undecided sessions last sent `interval_ms` ago or more (or never since a
    /// restart), to re-send; they count as sent now.
    pub fn resend(&mut self, now_ms: TimeMs, interval_ms: TimeMs, out: &mut Vec<SignedSpec>) {
        for (session, spec) in &self.state.opened {
            let due = self.sent_at.get(session).is_none_or(|at| now_ms >= at.saturating_add(interval_ms));
            if due {
                self.sent_at.insert(*session, now_ms);
                out.push(spec.clone());
            }
        }
    }

    /// The session is decided (the opener's agent decided it, or the client holds its
    /// certificate): it no longer counts as in flight and is not re-sent.
    pub fn decided(&mut self, session: SessionId) -> Result<(), LogError> {
        self.note_seen(session);
        let pending =
            self.state.opened.contains_key(&session) || self.state.queued.iter().any(|q| q.session == session);
        if pending {
            self.sent_at.remove(&session);
            self.log(Record::Decided(session))?;
        }
        Ok(())
    }

    /// A session numbered `session` exists (seen in an agent's log): never hand its id out.
    /// Only matters if the opener's own journal was lost.
    pub fn note_seen(&mut self, session: SessionId) {
        self.state.next = self.state.next.max(session.0.saturating_add(1));
    }

    /// Whether everything up to `mark` is durable.
    pub fn is_durable(&self, mark: u64) -> bool {
        self.journal.durable() >= mark
    }

    /// The mark up to which records are durable.
    pub fn durable(&self) -> u64 {
        self.journal.durable()
    }

    /// Makes every record durable now; returns the durable mark.
    pub fn sync(&mut self) -> Result<u64, LogError> {
        self.journal.sync()
    }

    /// Syncs from another thread.
    pub fn sync_handle(&self) -> SyncHandle<S> {
        self.journal.sync_handle()
    }

    /// Opened, undecided sessions.
    pub fn in_flight(&self) -> usize {
        self.state.opened.len()
    }

    /// The opened, undecided sessions.
    pub fn in_flight_sessions(&self) -> Vec<SessionId> {
        self.state.opened.keys().copied().collect()
    }

    /// Accepted sessions waiting to be opened.
    pub fn queued(&self) -> usize {
        self.state.queued.len()
    }

    /// The id the next session gets.
    pub fn next_session(&self) -> SessionId {
        SessionId(self.state.next)
    }

    /// Whether `session` is accepted and not known decided.
    pub fn is_pending(&self, session: SessionId) -> bool {
        self.state.opened.contains_key(&session) || self.state.queued.iter().any(|q| q.session == session)
    }

    /// Bytes of the journal's current log.
    pub fn log_bytes(&self) -> u64 {
        self.journal.log_bytes()
    }
}

#[cfg(test)]
mod tests {
    use consensus_core::sign::{sim_committee, SimSigner, Verifier};
    use consensus_core::AgentId;

    use super::*;
    use crate::simdisk::{CrashMode, SimDisk};

    type TestOpener = Opener<SimDisk, SimSigner>;

    fn opener(disk: &SimDisk, config: OpenerConfig) -> (TestOpener, OpenerRecovery) {
        let keys = sim_committee(3, 4);
        Opener::open(disk.clone(), keys.client, config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn submit(o: &mut TestOpener, query: &str) -> Ticket {
        o.submit(query.into(), 3).unwrap_or_else(|e| panic!("{e}"))
    }

    fn poll(o: &mut TestOpener, now: TimeMs) -> Vec<Open> {
        let mut out = Vec::new();
        o.poll_open(now, &mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    fn config(max_in_flight: usize) -> OpenerConfig {
        OpenerConfig { max_in_flight, ..OpenerConfig::default() }
    }

    #[test]
    fn sessions_are_numbered_densely_signed_once_and_opened_within_the_bound() {
        let disk = SimDisk::new();
        let (mut o, r) = opener(&disk, config(2));
        assert_eq!(r, OpenerRecovery { next: SessionId(0), reopened: 0, queued: 0 });
        let tickets: Vec<Ticket> = (0..3).map(|i| submit(&mut o, &format!("q{i}"))).collect();
        assert_eq!(tickets.iter().map(|t| (t.session.0, t.mark)).collect::<Vec<_>>(), vec![(0, 1), (1, 2), (2, 3)]);
        assert!(!o.is_durable(tickets[0].mark), "acknowledge only after a sync");
        assert_eq!(o.sync().unwrap_or_else(|e| panic!("{e}")), 3);
        assert!(tickets.iter().all(|t| o.is_durable(t.mark)));
        let opened = poll(&mut o, 50);
        assert_eq!(opened.iter().map(|x| x.spec.spec.session.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!((opened[0].mark, opened[0].spec.spec.query.as_str(), opened[0].spec.spec.opened_ms), (4, "q0", 50));
        let keys = sim_committee(3, 4);
        let signed = &opened[1].spec;
        assert!(keys.keyring.verify(AgentId::CLIENT, &wire::spec_signing_bytes(&signed.spec), &signed.signature));
        assert!(poll(&mut o, 60).is_empty(), "two in flight");
        let mut resent = Vec::new();
        o.resend(100, 100, &mut resent);
        assert!(resent.is_empty(), "sent at 50");
        o.resend(150, 100, &mut resent);
        assert_eq!(resent.len(), 2);
        o.decided(SessionId(0)).unwrap_or_else(|e| panic!("{e}"));
        o.decided(SessionId(0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(poll(&mut o, 200).iter().map(|x| x.spec.spec.session.0).collect::<Vec<_>>(), vec![2]);
        assert_eq!((o.in_flight(), o.queued(), o.next_session()), (2, 0, SessionId(3)));
    }

    #[test]
    fn a_restart_keeps_every_acknowledged_id_and_reopens_the_undecided_with_the_same_signature() {
        for mode in [CrashMode::LoseUnsynced, CrashMode::KeepUnsynced, CrashMode::TearLast { keep: 0, bytes: 7 }] {
            let disk = SimDisk::new();
            let (mut o, _) = opener(&disk, config(1));
            for i in 0..3 {
                submit(&mut o, &format!("q{i}"));
            }
            let first = poll(&mut o, 10).remove(0).spec;
            o.sync().unwrap_or_else(|e| panic!("{e}"));
            // Acknowledged: 0, 1, 2 (0 opened). Then one more, never synced, so never acknowledged.
            submit(&mut o, "unacknowledged");
            drop(o);
            disk.crash(mode);
            let (mut o, r) = opener(&disk, config(1));
            let lost = mode == CrashMode::LoseUnsynced || matches!(mode, CrashMode::TearLast { .. });
            assert_eq!(r.next, SessionId(if lost { 3 } else { 4 }), "{mode:?}");
            assert_eq!((r.reopened, r.queued), (1, if lost { 2 } else { 3 }), "{mode:?}");
            let mut resent = Vec::new();
            o.resend(500, 100, &mut resent);
            assert_eq!(resent, vec![first.clone()], "{mode:?}: the same signed spec");
            let t = submit(&mut o, "after restart");
            assert!(t.session.0 >= 3, "{mode:?}: an acknowledged id is never reused");
        }
    }

    /// Found by explore (master seed 4, run 951, more than f Byzantine agents): a certificate
    /// named session u64::MAX, `next` saturated there and two queries got that one id.
    #[test]
    fn an_id_is_never_handed_out_twice_even_at_the_end_of_the_id_space() {
        let disk = SimDisk::new();
        let (mut o, _) = opener(&disk, config(2));
        submit(&mut o, "q0");
        o.note_seen(SessionId(u64::MAX - 2));
        assert_eq!(submit(&mut o, "last").session, SessionId(u64::MAX - 1));
        assert!(matches!(o.submit("one more".into(), 2), Err(SubmitError::Exhausted { last: u64::MAX })));
        o.decided(SessionId(u64::MAX)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(o.submit("and another".into(), 2), Err(SubmitError::Exhausted { .. })));
    }

    #[test]
    fn the_queue_is_bounded_and_the_log_compacts_to_the_pending_sessions() {
        let disk = SimDisk::new();
        let small = OpenerConfig { max_in_flight: 4, max_queued: 8, compact_log_bytes: 600 };
        let (mut o, _) = opener(&disk, small);
        for i in 0..8 {
            submit(&mut o, &format!("question {i}"));
        }
        assert!(matches!(o.submit("one too many".into(), 2), Err(SubmitError::Full { queued: 8, max: 8 })));
        for round in 0..20u64 {
            let opened = poll(&mut o, round);
            for x in opened {
                o.decided(x.spec.spec.session).unwrap_or_else(|e| panic!("{e}"));
            }
            while o.queued() < 4 {
                submit(&mut o, &format!("question in round {round}"));
            }
            assert!(o.log_bytes() < 600 + 200, "compacted: {}", o.log_bytes());
        }
        o.sync().unwrap_or_else(|e| panic!("{e}"));
        let next = o.next_session();
        let pending: Vec<bool> = (0..next.0).map(|s| o.is_pending(SessionId(s))).collect();
        drop(o);
        disk.crash(CrashMode::LoseUnsynced);
        let (o, r) = opener(&disk, small);
        assert_eq!(r.next, next);
        assert_eq!((0..next.0).map(|s| o.is_pending(SessionId(s))).collect::<Vec<_>>(), pending);
        assert!(disk.list().unwrap_or_default().iter().any(|f| f == "opener.snap"));
    }
}
