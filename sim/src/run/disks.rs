//! Every agent's simulated disk (a `durable::SimDisk` outside the agent's madsim node, so that
//! it survives the node's crash) and what faults do to it: a crash keeps what `[storage]
//! crash` says of the unsynced writes, a flipped bit damages a durable record, a failed fsync,
//! a full or a slow disk (docs/scenarios.md, `[storage]` and `[[faults]]`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use consensus_core::AgentId;
use durable::log::{checksum, HEADER_BYTES, MAX_RECORD_BYTES};
use durable::{Archive, CrashMode, Latency, LogError, SharedArchive, SimDisk, Storage, StorageError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::lock;
use crate::scenario::CrashLoss;

/// What the agent's journal sees of its disk: the disk itself, or (the `skip-checksum`
/// mutation) the disk read through a lens that rewrites every record's checksums to match its
/// bytes, which is what a replay that does not verify them amounts to.
///
/// An agent that no fault of the scenario can reach (no crash, no disk fault) never restarts,
/// so nothing ever reads its log back: its storage (`keep = false`) takes every write and
/// keeps no byte. The same durability code runs; the run is the same; only the memory and the
/// copying of a log nobody reads are saved.
#[derive(Clone)]
pub(super) struct AgentStorage {
    pub disk: SimDisk,
    pub blind: bool,
    pub keep: bool,
}

impl Storage for AgentStorage {
    fn append(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        if !self.keep {
            return Ok(());
        }
        self.disk.append(file, bytes)
    }
    fn sync(&self, file: &str) -> Result<(), StorageError> {
        if !self.keep {
            return Ok(());
        }
        self.disk.sync(file)
    }
    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let bytes = self.disk.read(file)?;
        Ok(if self.blind { bytes.map(rewrite_checksums) } else { bytes })
    }
    fn read_at(&self, file: &str, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        self.disk.read_at(file, offset, len)
    }
    fn truncate(&self, file: &str, len: u64) -> Result<(), StorageError> {
        self.disk.truncate(file, len)
    }
    fn write_atomic(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        if !self.keep {
            return Ok(());
        }
        self.disk.write_atomic(file, bytes)
    }
    fn remove(&self, file: &str) -> Result<(), StorageError> {
        self.disk.remove(file)
    }
    fn list(&self) -> Result<Vec<String>, StorageError> {
        self.disk.list()
    }
    fn size(&self, file: &str) -> Result<Option<u64>, StorageError> {
        self.disk.size(file)
    }
    fn describe(&self, file: &str) -> String {
        self.disk.describe(file)
    }
}

/// Walks the records of a log by their lengths and sets both checksums of each to the ones
/// its bytes have (`skip-checksum`): damage passes unnoticed, as without checksums.
pub(super) fn rewrite_checksums(mut bytes: Vec<u8>) -> Vec<u8> {
    let mut at = 0;
    while at + HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let end = at + HEADER_BYTES + len;
        if len > MAX_RECORD_BYTES || end > bytes.len() {
            break;
        }
        let body = checksum(&bytes[at + HEADER_BYTES..end]);
        bytes[at + 4..at + 8].copy_from_slice(&body.to_le_bytes());
        let header = checksum(&bytes[at..at + 8]);
        bytes[at + 8..at + 12].copy_from_slice(&header.to_le_bytes());
        at = end;
    }
    bytes
}

/// A record the simulator damaged: where, and its bytes as written.
#[derive(Clone, Debug)]
struct Flip {
    file: String,
    offset: usize,
    original: Vec<u8>,
}

/// One agent's disk and what the simulator did to it; outlives the agent's node.
pub(super) struct AgentDisk {
    pub disk: SimDisk,
    flips: Vec<Flip>,
    /// The agent's archive of decided sessions with their certificates (`durable::Archived`,
    /// docs/protocol.md L78-L81), on a disk of its own that survives the agent's crashes.
    archive: Option<SharedArchive<SimDisk>>,
}

/// How many decisions an agent's archive keeps: `bftsim-node`'s default `[storage]
/// keep_decisions`.
const ARCHIVE_KEEP: usize = 10_000;

/// Every agent's disk, by network address (a twin's second copy has its own).
#[derive(Clone, Default)]
pub(super) struct Disks(Arc<Mutex<BTreeMap<AgentId, AgentDisk>>>);

impl Disks {
    /// The disk of `address`, created empty with `sync_ms` per fsync on first use.
    pub fn disk(&self, address: AgentId, sync_ms: u64) -> SimDisk {
        let mut disks = lock(&self.0);
        let entry = disks.entry(address).or_insert_with(|| {
            let disk = SimDisk::new();
            disk.set_latency(Latency { sync_ms, ..Latency::default() });
            AgentDisk { disk, flips: Vec::new(), archive: None }
        });
        entry.disk.clone()
    }

    /// The archive of `address`, opened on first use and kept across its crashes. Unlike the
    /// node, whose archive shares the agent's disk, it is not subject to the run's storage
    /// faults: a lost or damaged archive entry only means a peer answers `Pruned` earlier (L81),
    /// and the storage faults are aimed at the log, whose damage the oracle accounts for.
    pub(super) fn archive(&self, address: AgentId) -> Result<SharedArchive<SimDisk>, LogError> {
        let mut disks = lock(&self.0);
        let entry = disks.entry(address).or_insert_with(|| AgentDisk {
            disk: SimDisk::new(),
            flips: Vec::new(),
            archive: None,
        });
        if let Some(archive) = &entry.archive {
            return Ok(archive.clone());
        }
        let archive: SharedArchive<SimDisk> = Arc::new(Mutex::new(Archive::open(SimDisk::new(), ARCHIVE_KEEP)?));
        entry.archive = Some(archive.clone());
        Ok(archive)
    }

    fn with<T>(&self, address: AgentId, f: impl FnOnce(&mut AgentDisk) -> T) -> Option<T> {
        lock(&self.0).get_mut(&address).map(f)
    }

    /// The crash of `address`'s node: the disk keeps its synced bytes and what `loss` (drawn
    /// from `draw` when `any`) says of the rest. Describes what it kept.
    pub fn crash(&self, address: AgentId, loss: CrashLoss, draw: u64) -> String {
        let mut rng = ChaCha8Rng::seed_from_u64(draw);
        let loss = match loss {
            CrashLoss::Any => {
                [CrashLoss::Keep, CrashLoss::Lose, CrashLoss::Prefix, CrashLoss::Torn][rng.gen_range(0..4)]
            }
            other => other,
        };
        let mode = match loss {
            CrashLoss::Keep => CrashMode::KeepUnsynced,
            CrashLoss::Lose | CrashLoss::Any => CrashMode::LoseUnsynced,
            CrashLoss::Prefix => CrashMode::KeepPrefix { keep: rng.gen() },
            CrashLoss::Torn => CrashMode::TearLast { keep: rng.gen(), bytes: rng.gen() },
        };
        let lost = self.with(address, |d| d.disk.crash(mode)).unwrap_or(0);
        match loss {
            CrashLoss::Keep => "its disk kept every unsynced write".to_owned(),
            CrashLoss::Lose | CrashLoss::Any => format!("its disk lost every unsynced write ({lost} bytes)"),
            CrashLoss::Prefix => format!("its disk kept a prefix of the unsynced writes ({lost} bytes lost)"),
            CrashLoss::Torn => {
                format!("its disk kept a prefix of the unsynced writes and tore the next ({lost} bytes lost)")
            }
        }
    }

    /// Flips one bit of a record `address`'s log holds durably, chosen by `draw`.
    pub fn flip_bit(&self, address: AgentId, draw: u64) -> String {
        let mut rng = ChaCha8Rng::seed_from_u64(draw);
        self.with(address, |d| {
            let files = d.disk.list().unwrap_or_default();
            let Some(file) = files.into_iter().rfind(|f| f.starts_with("agent.") && f.ends_with(".log")) else {
                return "nothing to flip: the agent's log does not exist".to_owned();
            };
            let bytes = d.disk.durable_content(&file).unwrap_or_default();
            let records = record_spans(&bytes);
            if records.is_empty() {
                return format!("nothing to flip: {file} holds no durable record");
            }
            let (offset, len) = records[rng.gen_range(0..records.len())];
            let bit = rng.gen_range(0..len as u64 * 8);
            d.disk.flip_bit(&file, offset as u64 * 8 + bit);
            d.flips.push(Flip { file: file.clone(), offset, original: bytes[offset..offset + len].to_vec() });
            format!("flipped bit {bit} of the record at byte {offset} of {file} ({} records durable)", records.len())
        })
        .unwrap_or_else(|| "nothing to flip: the agent has no disk".to_owned())
    }

    /// Applies a disk fault other than a flip.
    pub fn fault(&self, address: AgentId, action: &crate::scenario::FaultAction) {
        use crate::scenario::FaultAction;
        self.with(address, |d| match action {
            FaultAction::FailSync { .. } => d.disk.fail_next_syncs(1),
            FaultAction::DiskFull { .. } => d.disk.set_capacity(Some(d.disk.used_bytes())),
            FaultAction::SlowDisk { sync_ms, .. } => {
                d.disk.set_latency(Latency { sync_ms: *sync_ms, ..Latency::default() })
            }
            _ => {}
        });
        // A slower or faster disk: the running syncer re-reads the latency at its next sync.
    }

    /// `corruption-detected` after `address` opened its log: a damaged record whose bytes are
    /// still in the file (it was not cut) must be as written, or it was replayed damaged.
    pub(super) fn replayed_damage(&self, address: AgentId, storage: &AgentStorage) -> Option<String> {
        let flips = self.with(address, |d| d.flips.clone()).unwrap_or_default();
        let mut kept = Vec::new();
        let mut damage = None;
        for flip in flips {
            let bytes = storage.read(&flip.file).ok().flatten().unwrap_or_default();
            let Some(now) = bytes.get(flip.offset..flip.offset + flip.original.len()) else { continue };
            if now != flip.original.as_slice() && damage.is_none() {
                damage = Some(format!(
                    "{address}'s restart replayed the damaged record at byte {} of {} as if it were whole",
                    flip.offset, flip.file
                ));
            }
            kept.push(flip);
        }
        self.with(address, |d| d.flips = kept);
        damage
    }
}

/// `(offset, length)` of each whole record of a log's bytes (header included).
pub(super) fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at + HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let end = at + HEADER_BYTES + len;
        if end > bytes.len() {
            break;
        }
        spans.push((at, end - at));
        at = end;
    }
    spans
}

#[cfg(test)]
mod tests {
    use durable::log::{frame, parse, Fix};

    use super::*;

    #[test]
    fn the_checksum_lens_makes_damage_pass_and_leaves_whole_logs_alone() {
        let mut log: Vec<u8> = [&b"one"[..], b"two", b"three"].iter().flat_map(|b| frame(b)).collect();
        assert_eq!(rewrite_checksums(log.clone()), log);
        assert_eq!(record_spans(&log), vec![(0, 15), (15, 15), (30, 17)]);
        log[HEADER_BYTES + 1] ^= 4;
        assert!(parse("l", log.clone(), Fix::CutLog).is_err(), "with checksums the damage is found");
        let replay = parse("l", rewrite_checksums(log), Fix::CutLog).unwrap_or_else(|e| panic!("{e}"));
        let bodies: Vec<Vec<u8>> = replay.records().map(|(_, b)| b.to_vec()).collect();
        assert_ne!(bodies[0], b"one".to_vec(), "replayed damaged");
    }
}
