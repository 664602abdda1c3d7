//! An append-only log of checksummed records over a [`Storage`] file.
//!
//! Record: `length (u32 LE) | crc32c(body) (u32 LE) | crc32c(first 8 header bytes) (u32 LE) |
//! body`. The header has its own checksum so that a damaged length is told apart from a torn
//! write: a crash tears only the last write, and a write reaches the disk as a prefix of its
//! bytes, so a complete header with a bad checksum is damage, wherever it is.
//!
//! On replay, a torn tail is cut: an incomplete last header or body, a tail of zero bytes (space a
//! file system allocated but never wrote), or a last record whose body checksum fails *because
//! its final sectors were never written*: from a [`SECTOR_BYTES`]-aligned offset (or the body's
//! start) to the end of the file only zeros, at least [`MIN_UNWRITTEN_BYTES`] of them or the
//! whole body. That is what a crash leaves: a device writes a sector whole or not at all, and a
//! file system shows a sector never written as zeros, never as stale data.
//!
//! Any other failing record is damage, also the last one: a last record written to its end whose
//! checksum fails was synced whole and then damaged (a flipped bit), and cutting it could make
//! the agent forget a message it signed and sent, then sign a different one after the restart.
//! Replay stops with [`LogError::Corrupt`], which names the file, the byte offset and what an
//! operator can do. Nothing is ever skipped silently. (Conservative on purpose: a crash that
//! leaves an earlier sector of the last record unwritten but a later one written, or fewer than
//! [`MIN_UNWRITTEN_BYTES`] zeros in its last sector, is refused too; the fix is the same.)

use std::fmt;

use crate::storage::{Storage, StorageError};

/// Bytes of a record header.
pub const HEADER_BYTES: usize = 12;
/// The unit a device writes whole or not at all (a 4 KiB page is 8 of them).
pub const SECTOR_BYTES: usize = 512;
/// Fewest zero bytes at the end of a last record that make its failing checksum a torn write
/// rather than damage (unless its whole body is zero): a flipped bit elsewhere in a record that
/// happens to end in a few zero bytes just after a sector boundary must not pass for a tear.
pub const MIN_UNWRITTEN_BYTES: usize = 8;
/// Largest record body accepted (a log record holds one protocol frame of at most 1 MiB).
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// The checksum of every record: CRC-32C (Castagnoli), hardware-accelerated where available.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// `body` framed as one record.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER_BYTES + body.len());
    record.extend_from_slice(&(body.len() as u32).to_le_bytes());
    record.extend_from_slice(&checksum(body).to_le_bytes());
    let header_crc = checksum(&record[..8]);
    record.extend_from_slice(&header_crc.to_le_bytes());
    record.extend_from_slice(body);
    record
}

/// What an operator can do about a corrupt file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    /// A log: restore it, or cut it at the damaged record.
    CutLog,
    /// A file that must be whole (a snapshot): restore it.
    Restore,
}

/// Why a log cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A damaged record before the end of the file.
    #[error("{file}: corrupt record at byte {offset}: {reason}; {}", fix_text(*.fix, file, *offset))]
    Corrupt {
        /// The file, as the storage names it.
        file: String,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
        /// What an operator can do.
        fix: Fix,
    },
    /// An earlier write failed; the log accepts nothing more (restart to recover it).
    #[error("{file}: an earlier write failed ({cause}); the log takes no more records until restarted")]
    Failed {
        /// The file.
        file: String,
        /// The first failure.
        cause: String,
    },
}

fn fix_text(fix: Fix, file: &str, offset: u64) -> String {
    match fix {
        Fix::CutLog => format!(
            "the node refuses to start, because skipping the record could make this agent forget messages it \
             signed. Fix: restore {file} from a backup of this node; or, accepting that the agent may contradict \
             messages it signed after that point (count it as faulty until the sessions then in progress are \
             decided), cut the log there with `truncate -s {offset} {file}` and restart"
        ),
        Fix::Restore => format!(
            "the node refuses to start without it. Fix: restore {file} from a backup of this node, or move the \
             data directory aside and restart the agent empty (it then counts as faulty until the sessions then \
             in progress are decided)"
        ),
    }
}

/// Why the end of a log was cut on replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutReason {
    /// Fewer bytes than a header.
    PartialHeader,
    /// A header whose body does not fit in the file.
    PartialBody,
    /// The last record's final sectors were never written (zeros where its body ends).
    UnwrittenSectors,
    /// Only zero bytes after the last record.
    ZeroTail,
}

impl fmt::Display for CutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CutReason::PartialHeader => "an incomplete record header",
            CutReason::PartialBody => "an incomplete record",
            CutReason::UnwrittenSectors => "a last record whose final sectors were never written",
            CutReason::ZeroTail => "zero bytes after the last record",
        })
    }
}

/// A torn tail cut off on replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Where the log now ends.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// Why.
    pub reason: CutReason,
}

/// The records of a log, as read on open.
#[derive(Debug, Default)]
pub struct Replay {
    bytes: Vec<u8>,
    records: Vec<(u64, usize, usize)>,
    /// The torn tail cut off, if any.
    pub cut: Option<Cut>,
}

impl Replay {
    /// The records in order, each with its byte offset in the file.
    pub fn records(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.records.iter().map(|(offset, start, end)| (*offset, &self.bytes[*start..*end]))
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes the records span (where the next record goes).
    pub fn end(&self) -> u64 {
        self.records.last().map_or(0, |(_, _, end)| *end as u64)
    }
}

/// Parses `bytes` as a log named `file`: the records and the torn tail to cut, or the first
/// corrupt record.
pub fn parse(file: &str, bytes: Vec<u8>, fix: Fix) -> Result<Replay, LogError> {
    let total = bytes.len();
    let mut records = Vec::new();
    let mut at = 0usize;
    let corrupt =
        |offset: usize, reason: String| LogError::Corrupt { file: file.to_owned(), offset: offset as u64, reason, fix };
    let cut = loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break None;
        }
        if rest.iter().all(|b| *b == 0) {
            break Some(CutReason::ZeroTail);
        }
        if rest.len() < HEADER_BYTES {
            break Some(CutReason::PartialHeader);
        }
        let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let (len, body_crc, header_crc) = (word(0) as usize, word(4), word(8));
        if checksum(&rest[..8]) != header_crc {
            return Err(corrupt(at, "the record header's checksum does not match".into()));
        }
        if len > MAX_RECORD_BYTES {
            return Err(corrupt(at, format!("a record of {len} bytes (at most {MAX_RECORD_BYTES})")));
        }
        let Some(body) = rest.get(HEADER_BYTES..HEADER_BYTES + len) else {
            break Some(CutReason::PartialBody);
        };
        if checksum(body) != body_crc {
            let end = at + HEADER_BYTES + len;
            if bytes[end..].iter().all(|b| *b == 0) && unwritten_end(&bytes[..end], at + HEADER_BYTES) {
                break Some(CutReason::UnwrittenSectors);
            }
            let after = total - end;
            return Err(corrupt(
                at,
                if after == 0 {
                    "the last record's checksum does not match, yet it was written to its end (a crash leaves \
                     unwritten sectors as zeros, not this: the record was damaged after it was written)"
                        .to_owned()
                } else {
                    format!("the record's checksum does not match, and {after} bytes follow it")
                },
            ));
        }
        records.push((at as u64, at + HEADER_BYTES, at + HEADER_BYTES + len));
        at += HEADER_BYTES + len;
    };
    let cut = cut.map(|reason| Cut { offset: at as u64, bytes: (total - at) as u64, reason });
    Ok(Replay { bytes, records, cut })
}

/// Whether `record` (the file up to the end of its last record, whose body starts at
/// `body_start`) ends the way a write cut short by a crash ends: zeros from a sector boundary
/// (or the body's start) to the end, at least [`MIN_UNWRITTEN_BYTES`] of them or the whole body.
fn unwritten_end(record: &[u8], body_start: usize) -> bool {
    let end = record.len();
    let zeros_from = end - record.iter().rev().take_while(|b| **b == 0).count();
    if zeros_from <= body_start {
        return true;
    }
    let first_unwritten = zeros_from.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    end.saturating_sub(first_unwritten) >= MIN_UNWRITTEN_BYTES
}

/// An open log file: appends records, syncs, and remembers a failed write.
pub struct Log<S> {
    storage: S,
    file: String,
    len: u64,
    failed: Option<String>,
}

impl<S: Storage> Log<S> {
    /// Opens `file` (absent means empty), cuts a torn tail, and makes what it holds durable
    /// (records that survived a process crash unsynced may still be only in the OS cache).
    pub fn open(storage: S, file: &str) -> Result<(Log<S>, Replay), LogError> {
        let bytes = storage.read(file)?.unwrap_or_default();
        let replay = parse(&storage.describe(file), bytes, Fix::CutLog)?;
        if let Some(cut) = replay.cut {
            storage.truncate(file, cut.offset)?;
        } else if replay.end() > 0 {
            storage.sync(file)?;
        }
        let log = Log { storage, file: file.to_owned(), len: replay.end(), failed: None };
        Ok((log, replay))
    }

    /// Appends one record (not durable until synced); returns its offset.
    pub fn append(&mut self, body: &[u8]) -> Result<u64, LogError> {
        self.usable()?;
        if body.len() > MAX_RECORD_BYTES {
            let cause = format!("a record of {} bytes (at most {MAX_RECORD_BYTES})", body.len());
            return Err(LogError::Failed { file: self.storage.describe(&self.file), cause });
        }
        let offset = self.len;
        if let Err(e) = self.storage.append(&self.file, &frame(body)) {
            // Part of the record may be on disk: nothing after it could be replayed.
            self.failed = Some(e.to_string());
            return Err(e.into());
        }
        self.len += (HEADER_BYTES + body.len()) as u64;
        Ok(offset)
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.usable()?;
        if let Err(e) = self.storage.sync(&self.file) {
            self.failed = Some(e.to_string());
            return Err(e.into());
        }
        Ok(())
    }

    /// Bytes in the log.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// The file.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Records a failure seen by another user of the file (a syncer thread).
    pub fn fail(&mut self, cause: String) {
        self.failed.get_or_insert(cause);
    }

    fn usable(&self) -> Result<(), LogError> {
        match &self.failed {
            None => Ok(()),
            Some(cause) => Err(LogError::Failed { file: self.storage.describe(&self.file), cause: cause.clone() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simdisk::{CrashMode, SimDisk};

    fn log_of(bodies: &[&[u8]]) -> Vec<u8> {
        bodies.iter().flat_map(|b| frame(b)).collect()
    }

    fn bodies(replay: &Replay) -> Vec<Vec<u8>> {
        replay.records().map(|(_, b)| b.to_vec()).collect()
    }

    #[test]
    fn torn_tails_are_cut_and_corruption_before_the_end_is_refused() {
        let full = log_of(&[b"one", b"two!", b"three"]);
        let second = (HEADER_BYTES + 3) as u64;
        let third = second + (HEADER_BYTES + 4) as u64;
        let flip = |at: usize| {
            let mut b = full.clone();
            b[at] ^= 0x10;
            b
        };
        let mut zeros = full.clone();
        zeros.extend_from_slice(&[0; 100]);
        let unwritten = |bytes: &[u8], from: usize| {
            let mut b = bytes.to_vec();
            b[from..].fill(0);
            b
        };
        let zeros_after = |mut b: Vec<u8>| {
            b.extend_from_slice(&[0; 600]);
            b
        };
        // (name, bytes, Ok((records kept, cut)) or Err(offset of the corrupt record))
        type Expected = Result<(usize, Option<CutReason>), u64>;
        let table: Vec<(&str, Vec<u8>, Expected)> = vec![
            ("whole", full.clone(), Ok((3, None))),
            ("empty", Vec::new(), Ok((0, None))),
            ("partial header", full[..third as usize + 5].to_vec(), Ok((2, Some(CutReason::PartialHeader)))),
            ("partial body", full[..full.len() - 1].to_vec(), Ok((2, Some(CutReason::PartialBody)))),
            ("bad last body", flip(full.len() - 1), Err(third)),
            (
                "last body never written",
                unwritten(&full, third as usize + HEADER_BYTES),
                Ok((2, Some(CutReason::UnwrittenSectors))),
            ),
            (
                "last body never written, zeros follow",
                zeros_after(unwritten(&full, third as usize + HEADER_BYTES)),
                Ok((2, Some(CutReason::UnwrittenSectors))),
            ),
            ("bad middle body, zeros follow", zeros_after(flip(second as usize + HEADER_BYTES)), Err(second)),
            ("zero tail", zeros, Ok((3, Some(CutReason::ZeroTail)))),
            ("bad first body", flip(HEADER_BYTES + 1), Err(0)),
            ("bad middle length", flip(second as usize), Err(second)),
            ("bad middle header crc", flip(second as usize + 9), Err(second)),
            ("bad last header", flip(third as usize + 2), Err(third)),
        ];
        for (name, bytes, expected) in table {
            match (parse("f", bytes, Fix::CutLog), expected) {
                (Ok(replay), Ok((kept, cut))) => {
                    assert_eq!(replay.len(), kept, "{name}");
                    assert_eq!(replay.cut.map(|c| c.reason), cut, "{name}");
                }
                (Err(LogError::Corrupt { offset, .. }), Err(at)) => assert_eq!(offset, at, "{name}"),
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_failing_last_record_is_cut_only_when_its_final_sectors_were_never_written() {
        // A last record spanning sectors 1..=4 of the file (its body starts at byte 624, the file
        // ends at byte 2124).
        let body: Vec<u8> = (0..1500u32).map(|i| (i % 251 + 1) as u8).collect();
        let full = log_of(&[&[7u8; 600], &body]);
        let (last, end) = (600 + 2 * HEADER_BYTES, full.len());
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = full.clone();
            edit(&mut b);
            parse("f", b, Fix::CutLog).map(|r| (r.len(), r.cut.map(|c| c.reason))).map_err(|e| match e {
                LogError::Corrupt { offset, .. } => offset,
                other => panic!("{other}"),
            })
        };
        let cut = Ok((1, Some(CutReason::UnwrittenSectors)));
        let refused = Err(600 + HEADER_BYTES as u64);
        // (what happened to the last record, what replay must do)
        type Edit<'a> = &'a dyn Fn(&mut Vec<u8>);
        type Expected = Result<(usize, Option<CutReason>), u64>;
        let table: [(&str, Edit, Expected); 7] = [
            ("its last sector never written", &|b| b[2048..].fill(0), cut),
            ("its last two sectors never written", &|b| b[1536..].fill(0), cut),
            ("zeros from mid-sector only", &|b| b[2060..].fill(0), refused),
            ("a sector in the middle never written", &|b| b[1024..1536].fill(0), refused),
            ("one bit flipped, written to its end", &|b| b[last + 700] ^= 4, refused),
            ("one bit flipped in its last byte", &|b| b[end - 1] ^= 1, refused),
            (
                "fewer zeros than the minimum after a boundary",
                &|b| b.truncate(2048 + 5),
                Ok((1, Some(CutReason::PartialBody))),
            ),
        ];
        for (name, edit, expected) in table {
            assert_eq!(with(edit), expected, "{name}");
        }
        // A record ending a few zero bytes after a sector boundary, damaged elsewhere: not a tear.
        let mut ends_in_zeros = body.clone();
        ends_in_zeros.truncate(1536 - 600 - 2 * HEADER_BYTES);
        ends_in_zeros.extend_from_slice(&[0; MIN_UNWRITTEN_BYTES - 2]);
        let mut bytes = log_of(&[&[7u8; 600], &ends_in_zeros]);
        assert_eq!(bytes.len() % SECTOR_BYTES, 6);
        bytes[last + 10] ^= 1;
        assert!(matches!(parse("f", bytes, Fix::CutLog), Err(LogError::Corrupt { .. })));
        // What the operator reads: damage at the end, or with bytes after it; and what was cut.
        let said = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut b = full.clone();
            edit(&mut b);
            parse("f", b, Fix::CutLog).map(|r| r.cut.map(|c| c.reason.to_string())).map_err(|e| e.to_string())
        };
        let at_end = said(&|b| b[end - 1] ^= 1).unwrap_err();
        assert!(
            at_end.contains("the last record's checksum does not match, yet it was written to its end"),
            "{at_end}"
        );
        let before = said(&|b| b[HEADER_BYTES + 5] ^= 1).unwrap_err();
        assert!(before.contains(&format!("and {} bytes follow it", end - 612)), "{before}");
        let cut = said(&|b| b[2048..].fill(0));
        assert_eq!(cut, Ok(Some("a last record whose final sectors were never written".to_owned())));
    }

    #[test]
    fn the_corruption_message_names_the_file_the_offset_and_the_fix() {
        let mut bytes = log_of(&[b"one", b"two"]);
        bytes[HEADER_BYTES] ^= 1;
        let message = parse("data/agent.0.log", bytes, Fix::CutLog).map(|_| ()).unwrap_err().to_string();
        assert!(message.starts_with("data/agent.0.log: corrupt record at byte 0:"), "{message}");
        assert!(message.contains("truncate -s 0 data/agent.0.log"), "{message}");
    }

    #[test]
    fn a_log_survives_a_crash_up_to_its_last_sync_and_cuts_a_torn_write() {
        let disk = SimDisk::new();
        {
            let (mut log, replay) = Log::open(disk.clone(), "l").unwrap_or_else(|e| panic!("{e}"));
            assert!(replay.is_empty());
            for body in [&b"a"[..], b"bb"] {
                log.append(body).unwrap_or_else(|e| panic!("{e}"));
            }
            log.sync().unwrap_or_else(|e| panic!("{e}"));
            log.append(b"lost").unwrap_or_else(|e| panic!("{e}"));
            log.append(b"torn").unwrap_or_else(|e| panic!("{e}"));
        }
        disk.crash(CrashMode::TearLast { keep: 1, bytes: 5 });
        let (mut log, replay) = Log::open(disk.clone(), "l").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bodies(&replay), vec![b"a".to_vec(), b"bb".to_vec(), b"lost".to_vec()]);
        assert_eq!(replay.cut.map(|c| (c.reason, c.bytes)), Some((CutReason::PartialHeader, 5)));
        assert!(disk.unsynced_writes("l").is_empty(), "open makes the survivors durable");
        assert_eq!(log.append(b"next").unwrap_or_else(|e| panic!("{e}")), replay.end());
    }

    #[test]
    fn a_failed_sync_or_append_stops_the_log() {
        let disk = SimDisk::new();
        let (mut log, _) = Log::open(disk.clone(), "l").unwrap_or_else(|e| panic!("{e}"));
        disk.fail_next_syncs(1);
        log.append(b"x").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(log.sync(), Err(LogError::Storage(StorageError::SyncFailed { .. }))));
        assert!(matches!(log.append(b"y"), Err(LogError::Failed { .. })), "no record after a failed sync");
        let disk = SimDisk::new();
        disk.set_capacity(Some(20));
        let (mut log, _) = Log::open(disk, "l").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(log.append(&[7; 10]), Err(LogError::Storage(StorageError::DiskFull { .. }))));
        assert!(matches!(log.sync(), Err(LogError::Failed { .. })));
    }
}
