//! A log with snapshots: the state of a state machine as a snapshot file plus the log of what
//! happened since, so the log and the time to replay it stay bounded.
//!
//! Files of a journal named `j`: `j.snap` (one checksummed record: the generation, then the
//! caller's snapshot bytes) and `j.<generation>.log` (the records since that snapshot).
//! [`Journal::compact`] writes the next snapshot atomically (write, sync, rename, sync the
//! directory), starts the next generation's log and removes the previous one; a crash at any
//! point leaves either the old snapshot with its whole log or the new snapshot, and opening
//! removes what a crash left behind.
//!
//! Marks for group commit: every record appended since the journal was opened has a *mark*
//! (1, 2, 3, ...). [`SyncHandle::sync`] can run on another thread while records are appended;
//! it returns the mark up to which everything is durable, so the caller can release what
//! waited for it (one sync covers every record written meanwhile).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::log::{frame, parse, Fix, Log, LogError, Replay};
use crate::storage::{Storage, TEMP_SUFFIX};

/// What the sync side shares with the appending side.
struct Marks {
    /// The current log file. Held while a sync runs and while compaction switches files, so
    /// a sync never targets a file compaction removed.
    current: Mutex<String>,
    /// Records appended since open.
    written: AtomicU64,
    /// Records known durable.
    durable: AtomicU64,
    /// The first sync failure; the journal takes no more records after it.
    failed: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Syncs a journal from any thread; cloneable.
#[derive(Clone)]
pub struct SyncHandle<S> {
    storage: S,
    marks: Arc<Marks>,
}

impl<S: Storage> SyncHandle<S> {
    /// Makes every record appended so far durable; returns the mark now durable.
    pub fn sync(&self) -> Result<u64, LogError> {
        let current = lock(&self.marks.current);
        if let Some(cause) = lock(&self.marks.failed).clone() {
            return Err(LogError::Failed { file: self.storage.describe(&current), cause });
        }
        // Read under the lock: every record counted is in `current` or was covered by the
        // snapshot of a compaction that finished before the lock was taken.
        let target = self.marks.written.load(Ordering::Acquire);
        if self.marks.durable.load(Ordering::Acquire) >= target {
            return Ok(target);
        }
        if let Err(e) = self.storage.sync(&current) {
            lock(&self.marks.failed).get_or_insert_with(|| e.to_string());
            return Err(e.into());
        }
        self.marks.durable.fetch_max(target, Ordering::AcqRel);
        Ok(target)
    }

    /// The mark up to which records are durable.
    pub fn durable(&self) -> u64 {
        self.marks.durable.load(Ordering::Acquire)
    }

    /// The mark of the last record appended.
    pub fn written(&self) -> u64 {
        self.marks.written.load(Ordering::Acquire)
    }

    /// Whether a record is waiting for a sync.
    pub fn behind(&self) -> bool {
        self.durable() < self.written()
    }
}

/// What a journal held when it was opened.
#[derive(Debug)]
pub struct Recovered {
    /// The caller's bytes of the latest snapshot, if one was taken.
    pub snapshot: Option<Vec<u8>>,
    /// The records logged after it.
    pub replay: Replay,
    /// The generation (snapshots taken over the journal's life).
    pub generation: u64,
    /// Files a crash left behind, removed.
    pub removed: Vec<String>,
}

/// A snapshot file plus the log since (see the module documentation).
pub struct Journal<S> {
    storage: S,
    name: String,
    generation: u64,
    log: Log<S>,
    marks: Arc<Marks>,
    snapshot_bytes: u64,
}

impl<S: Storage + Clone> Journal<S> {
    /// Opens (or creates) the journal `name` in `storage`.
    pub fn open(storage: S, name: &str) -> Result<(Journal<S>, Recovered), LogError> {
        let snap_file = format!("{name}.snap");
        let (generation, snapshot) = match storage.read(&snap_file)? {
            Some(bytes) => read_snapshot(&storage.describe(&snap_file), bytes)?,
            None => (0, None),
        };
        let file = log_file(name, generation);
        let mut removed = Vec::new();
        for other in storage.list()? {
            let stale_temp = other.starts_with(&format!("{name}.")) && other.ends_with(TEMP_SUFFIX);
            match generation_of(name, &other) {
                Some(g) if g > generation => {
                    // A log newer than the snapshot: the snapshot that started it is missing.
                    return Err(LogError::Corrupt {
                        file: storage.describe(&snap_file),
                        offset: 0,
                        reason: format!("missing, but {other} (generation {g}) needs it"),
                        fix: Fix::Restore,
                    });
                }
                Some(g) if g < generation => {}
                _ if stale_temp => {}
                _ => continue,
            }
            storage.remove(&other)?;
            removed.push(other);
        }
        let (log, replay) = Log::open(storage.clone(), &file)?;
        let marks = Arc::new(Marks {
            current: Mutex::new(file),
            written: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            failed: Mutex::new(None),
        });
        let snapshot_bytes = storage.size(&snap_file)?.unwrap_or(0);
        let journal = Journal { storage, name: name.to_owned(), generation, log, marks, snapshot_bytes };
        Ok((journal, Recovered { snapshot, replay, generation, removed }))
    }

    /// Appends a record (not durable until synced); returns its mark.
    pub fn append(&mut self, body: &[u8]) -> Result<u64, LogError> {
        if let Some(cause) = lock(&self.marks.failed).clone() {
            self.log.fail(cause);
        }
        self.log.append(body)?;
        Ok(self.marks.written.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Makes every record durable now; returns the durable mark.
    pub fn sync(&mut self) -> Result<u64, LogError> {
        let synced = self.sync_handle().sync();
        if let Err(e) = &synced {
            self.log.fail(e.to_string());
        }
        synced
    }

    /// A handle that syncs from another thread.
    pub fn sync_handle(&self) -> SyncHandle<S> {
        SyncHandle { storage: self.storage.clone(), marks: self.marks.clone() }
    }

    /// The mark of the last record appended.
    pub fn written(&self) -> u64 {
        self.marks.written.load(Ordering::Acquire)
    }

    /// The mark up to which records are durable.
    pub fn durable(&self) -> u64 {
        self.marks.durable.load(Ordering::Acquire)
    }

    /// Bytes of the current log (what a restart replays after the snapshot).
    pub fn log_bytes(&self) -> u64 {
        self.log.len_bytes()
    }

    /// Bytes of the snapshot file.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes
    }

    /// The generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Replaces the snapshot with `snapshot` (the state after every record appended so far)
    /// and starts an empty log. Every record appended so far is durable afterwards. On error
    /// the journal is unchanged (the old snapshot and log still hold everything).
    pub fn compact(&mut self, snapshot: &[u8]) -> Result<(), LogError> {
        let mut current = lock(&self.marks.current);
        let next = self.generation + 1;
        let mut body = Vec::with_capacity(8 + snapshot.len());
        body.extend_from_slice(&next.to_le_bytes());
        body.extend_from_slice(snapshot);
        let framed = frame(&body);
        let snap_file = format!("{}.snap", self.name);
        self.storage.write_atomic(&snap_file, &framed)?;
        // The snapshot holds the effect of every record written so far.
        let written = self.marks.written.load(Ordering::Acquire);
        self.marks.durable.fetch_max(written, Ordering::AcqRel);
        let old = std::mem::replace(&mut *current, log_file(&self.name, next));
        let (log, _) = Log::open(self.storage.clone(), &current)?;
        self.log = log;
        self.generation = next;
        self.snapshot_bytes = framed.len() as u64;
        // A log that cannot be removed now is stale and removed at the next open.
        let _ = self.storage.remove(&old);
        Ok(())
    }
}

fn log_file(name: &str, generation: u64) -> String {
    format!("{name}.{generation}.log")
}

/// The generation of `file` if it is a log of journal `name`.
fn generation_of(name: &str, file: &str) -> Option<u64> {
    file.strip_prefix(name)?.strip_prefix('.')?.strip_suffix(".log")?.parse().ok()
}

/// A snapshot file: one whole record holding the generation and the caller's bytes.
fn read_snapshot(file: &str, bytes: Vec<u8>) -> Result<(u64, Option<Vec<u8>>), LogError> {
    let replay = parse(file, bytes, Fix::Restore)?;
    let whole =
        |reason: &str| LogError::Corrupt { file: file.to_owned(), offset: 0, reason: reason.into(), fix: Fix::Restore };
    if replay.cut.is_some() || replay.len() != 1 {
        return Err(whole("the snapshot is not one whole record"));
    }
    let Some((_, body)) = replay.records().next() else { return Err(whole("the snapshot is empty")) };
    let Some((generation, rest)) = body.split_first_chunk::<8>() else {
        return Err(whole("the snapshot has no generation"));
    };
    Ok((u64::from_le_bytes(*generation), Some(rest.to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simdisk::{CrashMode, SimDisk};
    use crate::storage::FileStorage;

    fn ok<T>(r: Result<T, LogError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn records(r: &Recovered) -> Vec<Vec<u8>> {
        r.replay.records().map(|(_, b)| b.to_vec()).collect()
    }

    #[test]
    fn compaction_keeps_the_snapshot_and_the_records_after_it() {
        let disk = SimDisk::new();
        let (mut j, r) = ok(Journal::open(disk.clone(), "j"));
        assert!(r.snapshot.is_none() && r.replay.is_empty());
        assert_eq!((ok(j.append(b"1")), ok(j.append(b"2"))), (1, 2));
        ok(j.compact(b"state after 1, 2"));
        assert_eq!(j.durable(), 2, "the snapshot covers every record");
        assert_eq!(ok(j.append(b"3")), 3);
        assert_eq!(ok(j.sync()), 3);
        ok(j.append(b"unsynced"));
        drop(j);
        disk.crash(CrashMode::LoseUnsynced);
        assert_eq!(ok(disk.list().map_err(LogError::from)), vec!["j.1.log".to_owned(), "j.snap".to_owned()]);
        let (j, r) = ok(Journal::open(disk.clone(), "j"));
        assert_eq!(r.snapshot.as_deref(), Some(&b"state after 1, 2"[..]));
        assert_eq!(records(&r), vec![b"3".to_vec()]);
        assert_eq!((r.generation, j.generation()), (1, 1));
    }

    #[test]
    fn a_crash_between_snapshot_and_removal_leaves_a_stale_log_that_open_removes() {
        let disk = SimDisk::new();
        let (mut j, _) = ok(Journal::open(disk.clone(), "j"));
        ok(j.append(b"old"));
        ok(j.sync());
        // As if the process died right after the rename of a compaction.
        let snapshot = frame(&[&1u64.to_le_bytes()[..], b"S"].concat());
        ok(disk.write_atomic("j.snap", &snapshot).map_err(LogError::from));
        ok(disk.write_atomic("j.snap.tmp", b"half").map_err(LogError::from));
        let (_, r) = ok(Journal::open(disk.clone(), "j"));
        assert_eq!(r.snapshot.as_deref(), Some(&b"S"[..]));
        assert!(r.replay.is_empty());
        assert_eq!(r.removed, vec!["j.0.log".to_owned(), "j.snap.tmp".to_owned()]);
    }

    #[test]
    fn a_damaged_or_missing_snapshot_is_refused() {
        let disk = SimDisk::new();
        let (mut j, _) = ok(Journal::open(disk.clone(), "j"));
        ok(j.compact(b"state"));
        assert!(disk.flip_bit("j.snap", 8 * 14));
        let err = Journal::open(disk.clone(), "j").map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("simdisk:j.snap: corrupt record at byte 0") && err.contains("restore"), "{err}");
        ok(disk.remove("j.snap").map_err(LogError::from));
        ok(disk.append("j.1.log", &frame(b"x")).map_err(LogError::from));
        let err = Journal::open(disk.clone(), "j").map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("missing, but j.1.log"), "{err}");
    }

    #[test]
    fn a_sync_handle_on_another_thread_covers_every_record_written_before_it() {
        let dir = std::env::temp_dir().join(format!("durable-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let storage = FileStorage::new(&dir, true).unwrap_or_else(|e| panic!("{e}"));
        let (mut j, _) = ok(Journal::open(storage, "j"));
        let handle = j.sync_handle();
        let syncer = std::thread::spawn(move || {
            let mut last = 0;
            while last < 200 {
                last = handle.sync().unwrap_or_else(|e| panic!("{e}"));
            }
            last
        });
        for i in 0..200u32 {
            ok(j.append(&i.to_le_bytes()));
            if i == 100 {
                ok(j.compact(b"half"));
            }
        }
        assert_eq!(syncer.join().unwrap_or_else(|_| panic!("syncer panicked")), 200);
        assert_eq!(j.durable(), 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_sync_stops_the_journal() {
        let disk = SimDisk::new();
        let (mut j, _) = ok(Journal::open(disk.clone(), "j"));
        ok(j.append(b"a"));
        disk.fail_next_syncs(1);
        assert!(j.sync_handle().sync().is_err());
        assert!(matches!(j.append(b"b"), Err(LogError::Failed { .. })));
        assert!(matches!(j.sync(), Err(LogError::Failed { .. })));
    }
}
