//! Durable state for bftsim, the same code in `bftsim-node` and in the simulator.
//!
//! | module | what |
//! |---|---|
//! | [`storage`] | the [`Storage`] trait (append, sync, read, truncate, atomic replace, remove, list, size) with typed errors, and [`FileStorage`] (real files, fsync) |
//! | [`simdisk`] | [`SimDisk`]: an in-memory disk that survives a simulated crash, losing or tearing unsynced writes as the caller chooses; bit flips, failing syncs, a full disk, latency |
//! | [`log`] | an append-only log of checksummed records (crc32c): a torn tail is cut, any other damage (the last record too) is refused with the file, offset and fix |
//! | [`journal`] | a snapshot plus the log since, compaction, and the marks of group commit ([`SyncHandle`]) |
//! | [`archive`] | [`Archive`]: decided sessions with their certificates, the last `keep` on disk (the node's API and catch-up read it) |
//! | [`archived`] | [`Archived`]: the agent's host side of catch-up: archives every decision, answers `ServeArchived` from the archive (L78, L81) |
//! | [`agent`] | [`DurableAgent`]: logs each input before the agent handles it; own messages signed for the first time wait for the log |
//! | [`opener`] | [`Opener`]: numbers sessions and acknowledges them only once they are durable; re-opens them after a restart |
//!
//! Plain Rust: no async runtime, no clock, no randomness, no thread of its own, so it runs
//! deterministically inside a madsim simulation. Time (`now_ms`) and every fault choice are
//! the caller's.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

pub mod agent;
pub mod archive;
pub mod archived;
pub mod journal;
pub mod log;
pub mod opener;
pub mod simdisk;
pub mod storage;

pub use agent::{DurableAgent, DurableConfig, Recoverable, Replayed};
pub use archive::{Archive, DecisionEntry, SharedArchive};
pub use archived::{ArchiveStats, Archived};
pub use journal::{Journal, Recovered, SyncHandle};
pub use log::{Cut, CutReason, Fix, Log, LogError};
pub use opener::{Open, Opener, OpenerConfig, SubmitError, Ticket};
pub use simdisk::{CrashMode, DiskStats, Latency, SimDisk};
pub use storage::{FileStorage, Op, Storage, StorageError};
