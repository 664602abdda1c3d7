//! The file operations the log and snapshots need, with typed errors, and their real-file
//! implementation.
//!
//! A [`Storage`] is a flat directory of named files. Appends are not durable until
//! [`Storage::sync`]; [`Storage::truncate`], [`Storage::write_atomic`] and [`Storage::remove`]
//! are durable when they return. Every method takes `&self`, so one handle can be shared by the
//! thread that appends and the one that syncs (group commit): a sync covers at least every
//! append that returned before it started.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Appending.
    Append,
    /// Syncing a file or its directory.
    Sync,
    /// Reading.
    Read,
    /// Cutting a file.
    Truncate,
    /// Writing a file to replace another.
    Write,
    /// Removing a file.
    Remove,
    /// Listing the directory.
    List,
    /// Opening or creating.
    Open,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Append => "append",
            Op::Sync => "sync",
            Op::Read => "read",
            Op::Truncate => "truncate",
            Op::Write => "write",
            Op::Remove => "remove",
            Op::List => "list",
            Op::Open => "open",
        })
    }
}

/// Why a storage operation failed. `file` is how the storage names the file (a path for real
/// files), so that an operator can find it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Any other I/O failure.
    #[error("{file}: {op} failed: {detail}")]
    Io {
        /// The file.
        file: String,
        /// What was being done.
        op: Op,
        /// The system's explanation.
        detail: String,
    },
    /// fsync failed: what was written since the last successful sync may be lost (Linux may
    /// even drop the dirty pages), so the writer must not assume anything about it.
    #[error("{file}: sync failed: {detail}; what was written since the last successful sync may be lost")]
    SyncFailed {
        /// The file.
        file: String,
        /// The system's explanation.
        detail: String,
    },
    /// No space left.
    #[error("{file}: disk full ({op}): {detail}")]
    DiskFull {
        /// The file.
        file: String,
        /// What was being done.
        op: Op,
        /// The system's explanation.
        detail: String,
    },
}

/// Minimal file-like operations over a flat namespace of file names (no `/`).
pub trait Storage: Send + Sync {
    /// Appends `bytes` to `file`, creating it. Not durable until [`Storage::sync`]. On error
    /// part of `bytes` may have been written.
    fn append(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError>;
    /// Makes everything appended to `file` so far durable (and its directory entry).
    fn sync(&self, file: &str) -> Result<(), StorageError>;
    /// The whole content of `file` as a reader sees it now; `None` if it does not exist.
    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// `len` bytes of `file` from `offset`.
    fn read_at(&self, file: &str, offset: u64, len: usize) -> Result<Vec<u8>, StorageError>;
    /// Cuts `file` to `len` bytes; durable when it returns (with everything appended before).
    fn truncate(&self, file: &str, len: u64) -> Result<(), StorageError>;
    /// Replaces (or creates) `file` with `bytes`, atomically and durably: a reader, even after
    /// a crash, sees the old content or the new, never a mix.
    fn write_atomic(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError>;
    /// Removes `file`, durably; a missing file is not an error.
    fn remove(&self, file: &str) -> Result<(), StorageError>;
    /// Every file, sorted by name.
    fn list(&self) -> Result<Vec<String>, StorageError>;
    /// The size of `file` as a reader sees it now; `None` if it does not exist.
    fn size(&self, file: &str) -> Result<Option<u64>, StorageError>;
    /// How messages name `file` (the full path of a real file).
    fn describe(&self, file: &str) -> String;
}

impl<T: Storage + ?Sized> Storage for Arc<T> {
    fn append(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        (**self).append(file, bytes)
    }
    fn sync(&self, file: &str) -> Result<(), StorageError> {
        (**self).sync(file)
    }
    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).read(file)
    }
    fn read_at(&self, file: &str, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        (**self).read_at(file, offset, len)
    }
    fn truncate(&self, file: &str, len: u64) -> Result<(), StorageError> {
        (**self).truncate(file, len)
    }
    fn write_atomic(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        (**self).write_atomic(file, bytes)
    }
    fn remove(&self, file: &str) -> Result<(), StorageError> {
        (**self).remove(file)
    }
    fn list(&self) -> Result<Vec<String>, StorageError> {
        (**self).list()
    }
    fn size(&self, file: &str) -> Result<Option<u64>, StorageError> {
        (**self).size(file)
    }
    fn describe(&self, file: &str) -> String {
        (**self).describe(file)
    }
}

/// Whether `name` is a plain file name (no directory part, not `.` or `..`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Suffix of the temporary file [`FileStorage::write_atomic`] writes before renaming.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Real files in one directory: `std::fs`, `fsync` (`sync_data`) for [`Storage::sync`], the
/// directory fsync'd after a file is created, renamed or removed. Cloning shares the handles.
#[derive(Clone)]
pub struct FileStorage {
    inner: Arc<FileInner>,
}

struct FileInner {
    dir: PathBuf,
    fsync: bool,
    /// Open append handles, and whether the file's directory entry still needs a sync.
    open: Mutex<BTreeMap<String, (Arc<File>, bool)>>,
}

impl FileStorage {
    /// Files in `dir` (created if missing). With `fsync` false, syncs do nothing: the data
    /// survives a process crash (the OS keeps it) but not a power loss.
    pub fn new(dir: &Path, fsync: bool) -> Result<FileStorage, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir.display().to_string(), Op::Open, &e))?;
        let inner = FileInner { dir: dir.to_path_buf(), fsync, open: Mutex::new(BTreeMap::new()) };
        Ok(FileStorage { inner: Arc::new(inner) })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn path(&self, file: &str) -> Result<PathBuf, StorageError> {
        if !valid_name(file) {
            return Err(StorageError::Io {
                file: file.to_owned(),
                op: Op::Open,
                detail: "not a plain file name".into(),
            });
        }
        Ok(self.inner.dir.join(file))
    }

    fn handles(&self) -> MutexGuard<'_, BTreeMap<String, (Arc<File>, bool)>> {
        self.inner.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The append handle of `file`, opened (and created) on first use.
    fn handle(&self, file: &str) -> Result<Arc<File>, StorageError> {
        if let Some((f, _)) = self.handles().get(file) {
            return Ok(f.clone());
        }
        let path = self.path(file)?;
        let existed = path.exists();
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| self.error(file, Op::Open, &e))?;
        let f = Arc::new(f);
        self.handles().entry(file.to_owned()).or_insert((f.clone(), !existed));
        Ok(f)
    }

    fn sync_dir(&self) -> Result<(), StorageError> {
        if !self.inner.fsync {
            return Ok(());
        }
        let dir = self.inner.dir.display().to_string();
        let d = File::open(&self.inner.dir).map_err(|e| io(dir.clone(), Op::Sync, &e))?;
        d.sync_all().map_err(|e| StorageError::SyncFailed { file: dir, detail: e.to_string() })
    }

    fn error(&self, file: &str, op: Op, e: &std::io::Error) -> StorageError {
        io(self.describe(file), op, e)
    }
}

/// An I/O error as a [`StorageError`]: ENOSPC becomes [`StorageError::DiskFull`].
fn io(file: String, op: Op, e: &std::io::Error) -> StorageError {
    if e.kind() == ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        return StorageError::DiskFull { file, op, detail: e.to_string() };
    }
    StorageError::Io { file, op, detail: e.to_string() }
}

impl Storage for FileStorage {
    fn append(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let f = self.handle(file)?;
        (&*f).write_all(bytes).map_err(|e| self.error(file, Op::Append, &e))
    }

    fn sync(&self, file: &str) -> Result<(), StorageError> {
        let f = self.handle(file)?;
        if !self.inner.fsync {
            return Ok(());
        }
        f.sync_data().map_err(|e| StorageError::SyncFailed { file: self.describe(file), detail: e.to_string() })?;
        let new_entry = self.handles().get(file).is_some_and(|(_, new)| *new);
        if new_entry {
            // A new file's directory entry is durable only once the directory is synced.
            self.sync_dir()?;
            if let Some((_, new)) = self.handles().get_mut(file) {
                *new = false;
            }
        }
        Ok(())
    }

    fn read(&self, file: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match std::fs::read(self.path(file)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(file, Op::Read, &e)),
        }
    }

    fn read_at(&self, file: &str, offset: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut f = File::open(self.path(file)?).map_err(|e| self.error(file, Op::Read, &e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| self.error(file, Op::Read, &e))?;
        let mut bytes = vec![0; len];
        f.read_exact(&mut bytes).map_err(|e| self.error(file, Op::Read, &e))?;
        Ok(bytes)
    }

    fn truncate(&self, file: &str, len: u64) -> Result<(), StorageError> {
        let f = self.handle(file)?;
        f.set_len(len).map_err(|e| self.error(file, Op::Truncate, &e))?;
        if self.inner.fsync {
            f.sync_all().map_err(|e| StorageError::SyncFailed { file: self.describe(file), detail: e.to_string() })?;
        }
        self.sync(file)
    }

    fn write_atomic(&self, file: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.path(file)?;
        let temp_name = format!("{file}{TEMP_SUFFIX}");
        let temp = self.path(&temp_name)?;
        let write = |temp: &Path| -> std::io::Result<File> {
            let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(temp)?;
            f.write_all(bytes)?;
            Ok(f)
        };
        let f = write(&temp).map_err(|e| self.error(&temp_name, Op::Write, &e))?;
        if self.inner.fsync {
            f.sync_all()
                .map_err(|e| StorageError::SyncFailed { file: self.describe(&temp_name), detail: e.to_string() })?;
        }
        // The cached append handle would keep writing to the replaced file.
        self.handles().remove(file);
        std::fs::rename(&temp, &path).map_err(|e| self.error(file, Op::Write, &e))?;
        self.sync_dir()
    }

    fn remove(&self, file: &str) -> Result<(), StorageError> {
        self.handles().remove(file);
        match std::fs::remove_file(self.path(file)?) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(file, Op::Remove, &e)),
        }
    }

    fn list(&self) -> Result<Vec<String>, StorageError> {
        let dir = self.inner.dir.display().to_string();
        let entries = std::fs::read_dir(&self.inner.dir).map_err(|e| io(dir.clone(), Op::List, &e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(dir.clone(), Op::List, &e))?;
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn size(&self, file: &str) -> Result<Option<u64>, StorageError> {
        match std::fs::metadata(self.path(file)?) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(file, Op::Read, &e)),
        }
    }

    fn describe(&self, file: &str) -> String {
        self.inner.dir.join(file).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("durable-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn file_storage_appends_reads_truncates_replaces_and_removes() {
        let dir = temp_dir("ops");
        let s = FileStorage::new(&dir, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.read("a").unwrap_or_else(|e| panic!("{e}")), None);
        s.append("a", b"hello ").unwrap_or_else(|e| panic!("{e}"));
        s.append("a", b"world").unwrap_or_else(|e| panic!("{e}"));
        s.sync("a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.read("a").unwrap_or_else(|e| panic!("{e}")).as_deref(), Some(&b"hello world"[..]));
        assert_eq!(s.read_at("a", 6, 5).unwrap_or_else(|e| panic!("{e}")), b"world");
        s.truncate("a", 5).unwrap_or_else(|e| panic!("{e}"));
        s.append("a", b"!").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.read("a").unwrap_or_else(|e| panic!("{e}")).as_deref(), Some(&b"hello!"[..]));
        assert_eq!(s.size("a").unwrap_or_else(|e| panic!("{e}")), Some(6));
        s.write_atomic("a", b"new").unwrap_or_else(|e| panic!("{e}"));
        s.append("a", b"+").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.read("a").unwrap_or_else(|e| panic!("{e}")).as_deref(), Some(&b"new+"[..]));
        s.write_atomic("b", b"b").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.list().unwrap_or_else(|e| panic!("{e}")), vec!["a".to_owned(), "b".to_owned()]);
        s.remove("a").unwrap_or_else(|e| panic!("{e}"));
        s.remove("a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.list().unwrap_or_else(|e| panic!("{e}")), vec!["b".to_owned()]);
        assert!(s.describe("b").ends_with("/b"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_with_a_directory_part_are_refused() {
        let dir = temp_dir("names");
        let s = FileStorage::new(&dir, false).unwrap_or_else(|e| panic!("{e}"));
        for bad in ["", "..", "a/b", "../x"] {
            assert!(matches!(s.append(bad, b"x"), Err(StorageError::Io { op: Op::Open, .. })), "{bad:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
