//! A simulated disk: files in memory that survive a simulated crash the way real files do.
//!
//! The model of RocksDB's `FaultInjectionTestFS` and SQLite's crash-test VFS: per file, the
//! content as of its last successful sync (the *durable* part) and the writes appended since
//! (the *unsynced* part). Readers see both. [`SimDisk::crash`] keeps the durable part and, as
//! the [`CrashMode`] says, none, all or a prefix of the unsynced writes, possibly tearing the
//! first write it does not keep whole. Fault hooks flip a bit of durable content, fail the
//! next syncs, fill the disk at a byte budget and declare a latency per operation.
//!
//! The disk draws no random number: every choice (which crash mode, which prefix, which bit)
//! is the caller's, made from its own seed, so a simulated run stays a function of its seed.
//! A `SimDisk` is a cloneable handle: keep one outside the simulated node and it outlives the
//! node's crash, like a disk outlives its process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{valid_name, Op, Storage, StorageError};

/// What survives a crash of the unsynced writes of a file. Durable content always survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write is lost (a power loss with a volatile cache).
    LoseUnsynced,
    /// Every unsynced write survives (a process crash: the OS page cache keeps them).
    KeepUnsynced,
    /// The first `keep % (w + 1)` of a file's `w` unsynced writes survive, the rest is lost.
    KeepPrefix {
        /// The caller's draw.
        keep: u64,
    },
    /// As [`CrashMode::KeepPrefix`], and of the first write not kept whole the first
    /// `bytes % len` bytes survive (a torn write; nothing if there is no such write).
    TearLast {
        /// The caller's draw for the whole writes kept.
        keep: u64,
        /// The caller's draw for the torn write's surviving bytes.
        bytes: u64,
    },
}

/// What an operation costs in simulated time. The disk does not wait (it has no clock): the
/// simulator reads [`SimDisk::latency_ms`] and waits it out before or after the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Per append.
    pub append_ms: u64,
    /// Per sync, `write_atomic` and `truncate`.
    pub sync_ms: u64,
    /// Per read.
    pub read_ms: u64,
}

/// What the disk counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Bytes appended.
    pub appended_bytes: u64,
    /// Successful syncs (including those of `truncate` and `write_atomic`).
    pub syncs: u64,
    /// Syncs failed on purpose.
    pub failed_syncs: u64,
    /// Appends refused because the disk was full.
    pub full: u64,
    /// Crashes.
    pub crashes: u64,
    /// Unsynced bytes lost in crashes.
    pub lost_bytes: u64,
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    /// Content as of the last sync; `None` if the file does not exist durably yet.
    durable: Option<Vec<u8>>,
    /// Writes appended since, in order.
    unsynced: Vec<Vec<u8>>,
}

impl SimFile {
    fn len(&self) -> u64 {
        let durable = self.durable.as_ref().map_or(0, Vec::len);
        (durable + self.unsynced.iter().map(Vec::len).sum::<usize>()) as u64
    }

    fn content(&self) -> Vec<u8> {
        let mut bytes = self.durable.clone().unwrap_or_default();
        for w in &self.unsynced {
            bytes.extend_from_slice(w);
        }
        bytes
    }

    fn make_durable(&mut self) {
        let content = self.content();
        self.durable = Some(content);
        self.unsynced.clear();
    }

    /// Applies `mode`; returns the unsynced bytes lost. `None` when the file is gone.
    fn crash(mut self, mode: CrashMode) -> (Option<SimFile>, u64) {
        let writes = std::mem::take(&mut self.unsynced);
        let pending: u64 = writes.iter().map(|w| w.len() as u64).sum();
        let count = writes.len() as u64;
        let (keep, torn) = match mode {
            CrashMode::LoseUnsynced => (0, None),
            CrashMode::KeepUnsynced => (count, None),
            CrashMode::KeepPrefix { keep } => (keep % (count + 1), None),
            CrashMode::TearLast { keep, bytes } => (keep % (count + 1), Some(bytes)),
        };
        let mut kept = self.durable.take();
        let mut survived = 0u64;
        for (i, w) in writes.iter().enumerate() {
            let take = if (i as u64) < keep {
                w.len()
            } else if i as u64 == keep {
                torn.map_or(0, |b| (b % (w.len().max(1) as u64)) as usize)
            } else {
                0
            };
            if take > 0 {
                kept.get_or_insert_with(Vec::new).extend_from_slice(&w[..take]);
                survived += take as u64;
            }
        }
        let lost = pending - survived;
        (kept.map(|durable| SimFile { durable: Some(durable), unsynced: Vec::new() }), lost)
    }
}

#[derive(Default)]
struct DiskState {
    files: BTreeMap<String, SimFile>,
    /// Total bytes the disk holds before appends fail with "disk full".
    capacity: Option<u64>,
    /// The next this many syncs fail.
    failing_syncs: u32,
    latency: Latency,
    stats: DiskStats,
}

impl DiskState {
    fn used(&self) -> u64 {
        self.files.values().map(SimFile::len).sum()
    }

    /// Fails the sync of `file` if one is due to fail.
    fn sync_fault(&mut self, file: &str) -> Result<(), StorageError> {
        if self.failing_syncs == 0 {
            return Ok(());
        }
        self.failing_syncs -= 1;
        self.stats.failed_syncs += 1;
        Err(StorageError::SyncFailed { file: describe(file), detail: "injected fsync failure".into() })
    }

    fn room(&mut self, file: &str, op: Op, bytes: u64, freed: u64) -> Result<(), StorageError> {
        let Some(capacity) = self.capacity else { return Ok(()) };
        let used = self.used().saturating_sub(freed);
        if used.saturating_add(bytes) <= capacity {
            return Ok(());
        }
        self.stats.full += 1;
        let detail = format!("{bytes} more bytes on a {capacity}-byte disk holding {used}");
        Err(StorageError::DiskFull { file: describe(file), op, detail })
    }
}

fn describe(file: &str) -> String {
    format!("simdisk:{file}")
}

fn check(file: &str) -> Result<(), StorageError> {
    if valid_name(file) {
        return Ok(());
    }
    Err(StorageError::Io { file: describe(file), op: Op::Open, detail: "not a plain file name".into() })
}

/// An in-memory disk that survives simulated crashes; clones share it.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl SimDisk {
    /// An empty disk without faults.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The crash of the process using the disk: every file keeps its durable content and
    /// what `mode` says of its unsynced writes. Returns the unsynced bytes lost.
    pub fn crash(&self, mode: CrashMode) -> u64 {
        let mut state = self.lock();
        let files = std::mem::take(&mut state.files);
        let mut lost = 0;
        for (name, file) in files {
            let (kept, l) = file.crash(mode);
            lost += l;
            if let Some(kept) = kept {
                state.files.insert(name, kept);
            }
        }
        state.stats.crashes += 1;
        state.stats.lost_bytes += lost;
        lost
    }

    /// Like [`SimDisk::crash`] for one file only (to draw a mode per file); the caller counts
    /// the crash. Returns the unsynced bytes lost.
    pub fn crash_file(&self, file: &str, mode: CrashMode) -> u64 {
        let mut state = self.lock();
        let Some(f) = state.files.remove(file) else { return 0 };
        let (kept, lost) = f.crash(mode);
        if let Some(kept) = kept {
            state.files.insert(file.to_owned(), kept);
        }
        state.stats.lost_bytes += lost;
        lost
    }

    /// Flips bit `bit` (counted from the file's first byte, least significant bit first) of
    /// the durable content of `file`; `false` if the file has no such durable bit.
    pub fn flip_bit(&self, file: &str, bit: u64) -> bool {
        let mut state = self.lock();
        let Some(durable) = state.files.get_mut(file).and_then(|f| f.durable.as_mut()) else { return false };
        let Some(byte) = usize::try_from(bit / 8).ok().and_then(|i| durable.get_mut(i)) else { return false };
        *byte ^= 1 << (bit % 8);
        true
    }

    /// The next `count` syncs (of any file, and the syncs inside `truncate` and
    /// `write_atomic`) fail; what they should have made durable stays unsynced.
    pub fn fail_next_syncs(&self, count: u32) {
        self.lock().failing_syncs = count;
    }

    /// Appends and replacements that would make the disk hold more than `bytes` fail with
    /// [`StorageError::DiskFull`] (nothing is written); `None` removes the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Declares what each operation costs in simulated time.
    pub fn set_latency(&self, latency: Latency) {
        self.lock().latency = latency;
    }

    /// The simulated time `op` takes (0 unless declared); the caller waits it out.
    pub fn latency_ms(&self, op: Op) -> u64 {
        let l = self.lock().latency;
        match op {
            Op::Append => l.append_ms,
            Op::Sync | Op::Write | Op::Truncate => l.sync_ms,
            Op::Read => l.read_ms,
            Op::Remove | Op::List | Op::Open => 0,
        }
    }

    /// What the disk counted.
    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }

    /// The content of `file` that would survive any crash.
    pub fn durable_content(&self, file: &str) -> Option<Vec<u8>> {
        self.lock().files.get(file).and_then(|f| f.durable.clone())
    }

    /// The lengths of the unsynced writes of `file`, in order.
    pub fn unsynced_writes(&self, file: &str) -> Vec<usize> {
        self.lock().files.get(file).map(|f| f.unsynced.iter().map(Vec::len).collect()).unwrap_or_default()
    }

    /// Bytes held by every file, durable or not.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }
}

impl Storage for SimDisk {
    fn append(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        check(file)?;
        let mut state = self.lock();
        state.room(file, Op::Append, bytes.len() as u64, 0)?;
        state.stats.appended_bytes += bytes.len() as u64;
        state.files.entry(file.to_owned()).or_default().unsynced.push(bytes.to_vec());
        Ok(())
    }

    fn sync(&self, file: &str) -> Result<(), StorageError> {
        check(file)?;
        let mut state = self.lock();
        state.sync_fault(file)?;
        state.files.entry(file.to_owned()).or_default().make_durable();
        state.stats.syncs += 1;
        Ok(())
    }

    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, StorageError> {
        check(file)?;
        Ok(self.lock().files.get(file).map(SimFile::content))
    }

    fn read_at(&self, file: &str, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        check(file)?;
        let content = self.lock().files.get(file).map(SimFile::content).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match content.get(start..start.saturating_add(len)) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(StorageError::Io {
                file: describe(file),
                op: Op::Read,
                detail: format!("{len} bytes at {offset}: the file holds {}", content.len()),
            }),
        }
    }

    fn truncate(&self, file: &str, len: u64) -> Result<(), StorageError> {
        check(file)?;
        let mut state = self.lock();
        state.sync_fault(file)?;
        let f = state.files.entry(file.to_owned()).or_default();
        let mut content = f.content();
        content.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        *f = SimFile { durable: Some(content), unsynced: Vec::new() };
        state.stats.syncs += 1;
        Ok(())
    }

    fn write_atomic(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        check(file)?;
        let mut state = self.lock();
        let freed = state.files.get(file).map_or(0, SimFile::len);
        state.room(file, Op::Write, bytes.len() as u64, freed)?;
        state.sync_fault(file)?;
        state.files.insert(file.to_owned(), SimFile { durable: Some(bytes.to_vec()), unsynced: Vec::new() });
        state.stats.syncs += 1;
        Ok(())
    }

    fn remove(&self, file: &str) -> Result<(), StorageError> {
        check(file)?;
        self.lock().files.remove(file);
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, StorageError> {
        Ok(self.lock().files.keys().cloned().collect())
    }

    fn size(&self, file: &str) -> Result<Option<u64>, StorageError> {
        check(file)?;
        Ok(self.lock().files.get(file).map(SimFile::len))
    }

    fn describe(&self, file: &str) -> String {
        describe(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(r: Result<T, StorageError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A disk with "ab" durable and the unsynced writes "cd", "efg".
    fn disk() -> SimDisk {
        let d = SimDisk::new();
        ok(d.append("f", b"ab"));
        ok(d.sync("f"));
        ok(d.append("f", b"cd"));
        ok(d.append("f", b"efg"));
        d
    }

    #[test]
    fn a_crash_keeps_what_its_mode_says() {
        let table: &[(CrashMode, &[u8], u64)] = &[
            (CrashMode::LoseUnsynced, b"ab", 5),
            (CrashMode::KeepUnsynced, b"abcdefg", 0),
            (CrashMode::KeepPrefix { keep: 1 }, b"abcd", 3),
            (CrashMode::KeepPrefix { keep: 5 }, b"abcdefg", 0), // 5 % 3 = 2 writes
            (CrashMode::TearLast { keep: 1, bytes: 2 }, b"abcdef", 1),
            (CrashMode::TearLast { keep: 0, bytes: 1 }, b"abc", 4),
            (CrashMode::TearLast { keep: 2, bytes: 9 }, b"abcdefg", 0), // nothing left to tear
        ];
        for (mode, expected, lost) in table {
            let d = disk();
            assert_eq!(d.crash(*mode), *lost, "{mode:?}");
            assert_eq!(ok(d.read("f")).as_deref(), Some(*expected), "{mode:?}");
            assert!(d.unsynced_writes("f").is_empty());
        }
    }

    #[test]
    fn a_file_never_synced_disappears_when_its_writes_are_lost() {
        let d = SimDisk::new();
        ok(d.append("new", b"x"));
        assert_eq!(ok(d.list()), vec!["new".to_owned()]);
        d.crash(CrashMode::LoseUnsynced);
        assert_eq!(ok(d.read("new")), None);
        assert!(ok(d.list()).is_empty());
    }

    #[test]
    fn clones_share_the_disk_and_survive_the_user() {
        let d = disk();
        let survivor = d.clone();
        drop(d);
        survivor.crash(CrashMode::LoseUnsynced);
        assert_eq!(survivor.durable_content("f").as_deref(), Some(&b"ab"[..]));
    }

    #[test]
    fn faults_flip_bits_fail_syncs_and_fill_the_disk() {
        let d = disk();
        assert!(d.flip_bit("f", 9)); // 'b' = 0x62 -> 0x60
        assert!(!d.flip_bit("f", 16), "the third byte is not durable");
        assert_eq!(ok(d.read("f")).as_deref(), Some(&b"a`cdefg"[..]));

        d.fail_next_syncs(1);
        assert!(matches!(d.sync("f"), Err(StorageError::SyncFailed { .. })));
        assert_eq!(d.unsynced_writes("f"), vec![2, 3], "a failed sync makes nothing durable");
        ok(d.sync("f"));
        assert_eq!(d.stats().failed_syncs, 1);

        d.set_capacity(Some(9));
        ok(d.append("f", b"hi"));
        assert!(matches!(d.append("f", b"!"), Err(StorageError::DiskFull { .. })));
        assert_eq!(ok(d.size("f")), Some(9), "a refused append writes nothing");
        ok(d.write_atomic("f", b"short"));
        d.set_capacity(None);
        ok(d.append("f", b" and long"));
        assert_eq!(ok(d.read("f")).as_deref(), Some(&b"short and long"[..]));
    }

    #[test]
    fn truncate_and_write_atomic_are_durable_and_latency_is_declared() {
        let d = disk();
        ok(d.truncate("f", 3));
        d.crash(CrashMode::LoseUnsynced);
        assert_eq!(ok(d.read("f")).as_deref(), Some(&b"abc"[..]));
        ok(d.write_atomic("s", b"snap"));
        d.crash(CrashMode::LoseUnsynced);
        assert_eq!(ok(d.read_at("s", 1, 2)), b"na");
        assert!(d.read_at("s", 3, 2).is_err());
        d.set_latency(Latency { append_ms: 1, sync_ms: 8, read_ms: 2 });
        assert_eq!((d.latency_ms(Op::Append), d.latency_ms(Op::Sync), d.latency_ms(Op::Read)), (1, 8, 2));
        ok(d.remove("s"));
        assert_eq!(ok(d.size("s")), None);
    }
}
