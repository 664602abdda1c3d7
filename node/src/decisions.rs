//! The decisions the client API serves, with their certificates: the most recent in memory,
//! the last `keep` on disk, older ones forgotten (a documented retention).
//!
//! Why a store of its own: the agent forgets a decided session once `keep_decided` later ones
//! are applied, and its log is compacted, so the API cannot rebuild old decisions from either.
//! Keeping every decision in memory grew a node by 7–8 KB per session, without end.
//!
//! Files: `decisions.<n>.log`, segments of [`SEGMENT_RECORDS`] checksummed records (the
//! durable crate's log format). A record is `session (u64 LE) | postcard(Stored)`; a decision
//! with a certificate stores only the certificate (the decision record is a function of it),
//! which halves its size. When the closed segments hold more than `keep` decisions, the oldest
//! segment is removed. Records are written unsynced: the store is synced before the agent's
//! log is compacted, and every decision taken after the agent's snapshot is produced again
//! when the log is replayed, so a crash loses none.

use std::collections::BTreeMap;
use std::sync::Arc;

use consensus_core::protocol::{Commit, DecisionRecord, Round, ValueId};
use consensus_core::{SessionId, TimeMs};
use durable::log::{self, Fix, LogError, HEADER_BYTES};
use durable::{FileStorage, Log, Storage};
use serde::{Deserialize, Serialize};

use crate::state::DecisionEntry;

/// Decisions per segment file.
pub const SEGMENT_RECORDS: usize = 1_024;
/// Decisions kept in memory (the most recent by session id).
pub const RECENT_IN_MEMORY: usize = 256;

/// A decision as stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    at_ms: TimeMs,
    round: Option<Round>,
    value: Option<ValueId>,
    /// The certificate, from which the record is rebuilt.
    certificate: Option<Commit>,
    /// The record itself, only when there is no certificate.
    record: Option<DecisionRecord>,
}

impl Stored {
    fn of(entry: &DecisionEntry) -> Stored {
        let r = &entry.record;
        Stored {
            at_ms: r.at_ms,
            round: r.round,
            value: r.value,
            certificate: entry.certificate.clone(),
            record: entry.certificate.is_none().then(|| r.clone()),
        }
    }

    fn entry(self, session: SessionId) -> Option<DecisionEntry> {
        if let Some(record) = self.record {
            return Some(DecisionEntry { record, certificate: self.certificate });
        }
        let commit = self.certificate?;
        let value = &commit.proposal.value;
        let record = DecisionRecord {
            session,
            round: self.round,
            value: self.value,
            outcome: value.outcome.clone(),
            mode: value.mode,
            votes: value.votes.clone(),
            spec: value.spec.clone(),
            at_ms: self.at_ms,
        };
        Some(DecisionEntry { record, certificate: Some(commit) })
    }
}

/// Where a stored decision is.
#[derive(Clone, Copy, Debug)]
struct Place {
    segment: u64,
    offset: u64,
    len: u32,
}

fn segment_file(n: u64) -> String {
    format!("decisions.{n}.log")
}

fn segment_of(file: &str) -> Option<u64> {
    file.strip_prefix("decisions.")?.strip_suffix(".log")?.parse().ok()
}

/// The store (see the module documentation).
pub struct DecisionStore {
    storage: FileStorage,
    keep: usize,
    current: Log<FileStorage>,
    current_no: u64,
    /// Records per segment.
    segments: BTreeMap<u64, usize>,
    index: BTreeMap<SessionId, Place>,
    recent: BTreeMap<SessionId, Arc<DecisionEntry>>,
}

impl DecisionStore {
    /// Opens the segments in `storage`, keeping at least the last `keep` decisions.
    pub fn open(storage: FileStorage, keep: usize) -> Result<DecisionStore, LogError> {
        let mut numbers: Vec<u64> = storage.list()?.iter().filter_map(|f| segment_of(f)).collect();
        numbers.sort_unstable();
        let mut store = DecisionStore {
            current: Log::open(storage.clone(), &segment_file(numbers.last().copied().unwrap_or(0)))?.0,
            current_no: numbers.last().copied().unwrap_or(0),
            storage,
            keep: keep.max(1),
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            recent: BTreeMap::new(),
        };
        for n in numbers {
            let file = segment_file(n);
            let (_, replay) = Log::open(store.storage.clone(), &file)?;
            for (offset, body) in replay.records() {
                let session = body.first_chunk::<8>().map(|b| SessionId(u64::from_le_bytes(*b)));
                let Some(session) = session else {
                    return Err(LogError::Corrupt {
                        file: store.storage.describe(&file),
                        offset,
                        reason: "a decision record without its session".into(),
                        fix: Fix::Restore,
                    });
                };
                store.index.insert(session, Place { segment: n, offset, len: body.len() as u32 });
            }
            store.segments.insert(n, replay.len());
        }
        store.segments.entry(store.current_no).or_insert(0);
        store.retire();
        Ok(store)
    }

    /// Stores `entry` unless the session is stored already or older than everything kept.
    /// Returns whether it was stored.
    pub fn insert(&mut self, entry: DecisionEntry) -> Result<bool, LogError> {
        let session = entry.record.session;
        let below_retention =
            self.index.len() >= self.keep && self.index.keys().next().is_some_and(|oldest| session < *oldest);
        if self.index.contains_key(&session) || below_retention {
            return Ok(false);
        }
        if self.segments.get(&self.current_no).copied().unwrap_or(0) >= SEGMENT_RECORDS {
            self.current_no += 1;
            self.current = Log::open(self.storage.clone(), &segment_file(self.current_no))?.0;
            self.segments.insert(self.current_no, 0);
            self.retire();
        }
        let mut body = session.0.to_le_bytes().to_vec();
        body.extend(postcard::to_allocvec(&Stored::of(&entry)).unwrap_or_default());
        let offset = self.current.append(&body)?;
        *self.segments.entry(self.current_no).or_default() += 1;
        self.index.insert(session, Place { segment: self.current_no, offset, len: body.len() as u32 });
        self.recent.insert(session, Arc::new(entry));
        while self.recent.len() > RECENT_IN_MEMORY {
            self.recent.pop_first();
        }
        Ok(true)
    }

    /// Removes the oldest segments while the others hold at least `keep` decisions.
    fn retire(&mut self) {
        loop {
            let total: usize = self.segments.values().sum();
            let Some((&oldest, &count)) = self.segments.iter().next() else { return };
            if oldest == self.current_no || total - count < self.keep {
                return;
            }
            // A segment that cannot be removed now is removed at the next start.
            let _ = self.storage.remove(&segment_file(oldest));
            self.segments.remove(&oldest);
            self.index.retain(|_, place| place.segment != oldest);
            self.recent.retain(|s, _| self.index.contains_key(s));
        }
    }

    /// The decision of `session`, if kept.
    pub fn get(&self, session: SessionId) -> Result<Option<Arc<DecisionEntry>>, LogError> {
        if let Some(entry) = self.recent.get(&session) {
            return Ok(Some(entry.clone()));
        }
        let Some(place) = self.index.get(&session) else { return Ok(None) };
        let file = segment_file(place.segment);
        let bytes = self.storage.read_at(&file, place.offset, HEADER_BYTES + place.len as usize)?;
        let corrupt = |reason: String| LogError::Corrupt {
            file: self.storage.describe(&file),
            offset: place.offset,
            reason,
            fix: Fix::Restore,
        };
        let replay = log::parse(&file, bytes, Fix::Restore)?;
        let Some((_, body)) = replay.records().next().filter(|_| replay.cut.is_none()) else {
            return Err(corrupt("the decision record's checksum does not match".into()));
        };
        let stored: Stored =
            postcard::from_bytes(&body[8..]).map_err(|e| corrupt(format!("the decision does not decode: {e}")))?;
        Ok(stored.entry(session).map(Arc::new))
    }

    /// Whether `session` is kept.
    pub fn contains(&self, session: SessionId) -> bool {
        self.index.contains_key(&session)
    }

    /// Decisions kept.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The oldest session kept.
    pub fn oldest(&self) -> Option<SessionId> {
        self.index.keys().next().copied()
    }

    /// The retention: at least this many recent decisions are kept.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Makes every stored decision durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.current.sync()
    }
}

#[cfg(test)]
mod tests {
    use consensus_core::protocol::messages::SignedSpec;
    use consensus_core::protocol::{AgreedOutcome, ProposalMode, SessionSpec};
    use consensus_core::sign::Signature;
    use consensus_core::{CandidateId, ConsensusMethod, Ppm};

    use super::*;

    fn entry(session: u64) -> DecisionEntry {
        let spec = SessionSpec {
            session: SessionId(session),
            query: format!("q{session}"),
            candidates: vec![CandidateId(0)],
            opened_ms: 1,
        };
        let outcome = AgreedOutcome::Decided {
            chosen: CandidateId(0),
            method: ConsensusMethod::Threshold,
            agreement: Ppm::saturating(1_000_000),
            byzantine: vec![],
        };
        let record = DecisionRecord {
            session: SessionId(session),
            round: Some(0),
            value: None,
            outcome,
            mode: ProposalMode::Normal,
            votes: vec![],
            spec: SignedSpec { spec, signature: Signature([7; 64]) },
            at_ms: 9,
        };
        DecisionEntry { record, certificate: None }
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("bftsim-decisions-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn decisions_survive_a_restart_and_only_the_last_ones_are_kept() {
        let d = dir("keep");
        let storage = FileStorage::new(&d, false).unwrap_or_else(|e| panic!("{e}"));
        let mut store = DecisionStore::open(storage.clone(), 2_000).unwrap_or_else(|e| panic!("{e}"));
        for s in 0..5_000 {
            assert!(store.insert(entry(s)).unwrap_or_else(|e| panic!("{e}")));
        }
        assert!(!store.insert(entry(4_999)).unwrap_or_else(|e| panic!("{e}")), "already stored");
        assert!(store.len() >= 2_000 && store.len() <= 2_000 + SEGMENT_RECORDS, "{}", store.len());
        let oldest = store.oldest().unwrap_or(SessionId(0));
        assert!(!store.insert(entry(0)).unwrap_or_else(|e| panic!("{e}")), "older than the retention");
        store.sync().unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let store = DecisionStore::open(storage, 2_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.oldest(), Some(oldest));
        for s in [oldest.0, 3_000, 4_999] {
            let got = store.get(SessionId(s)).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("{s} kept"));
            assert_eq!(*got, entry(s), "read back from disk");
        }
        assert_eq!(store.get(SessionId(0)).unwrap_or_else(|e| panic!("{e}")), None);
        let segments = std::fs::read_dir(&d).map(|r| r.count()).unwrap_or(0);
        assert!(segments <= 2_000 / SEGMENT_RECORDS + 2, "{segments} segment files");
        let _ = std::fs::remove_dir_all(&d);
    }
}
