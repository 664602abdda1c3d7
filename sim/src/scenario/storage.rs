//! `[storage]` and the disk faults of a scenario: what a crash keeps of unsynced writes, and
//! which agents a disk fault stops (docs/scenarios.md, `[storage]` and `[[faults]]`).

use serde::{Deserialize, Serialize};

use super::{FaultAction, Scenario};

/// `[storage]`: every agent's simulated disk (its write-ahead log, and the session opener's
/// log on agent 0's disk).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a [storage] table with crash, sync_ms and compact_log_bytes")]
pub struct Storage {
    /// What a crash keeps of the writes not yet synced (default `any`: drawn per crash).
    pub crash: CrashLoss,
    /// How long each fsync takes, in ms (default 0: at once); `slow-disk` faults change it.
    pub sync_ms: u64,
    /// An agent's log is compacted (snapshot, then a new log) once it holds this many bytes
    /// (default: the node's, `durable::DurableConfig`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact_log_bytes: Option<u64>,
}

/// What a crash keeps of an agent's writes that were not synced yet (what was synced always
/// survives).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashLoss {
    /// Every unsynced write survives (a process crash: the OS cache keeps them).
    Keep,
    /// Every unsynced write is lost (a power loss).
    Lose,
    /// A prefix of the unsynced writes survives, its length drawn from the seed.
    Prefix,
    /// A prefix survives and the next write is torn (a prefix of its bytes survives).
    Torn,
    /// One of the four, drawn from the seed for each crash.
    #[default]
    Any,
}

impl CrashLoss {
    /// Every mode, as written in files.
    pub const ALL: [CrashLoss; 5] =
        [CrashLoss::Keep, CrashLoss::Lose, CrashLoss::Prefix, CrashLoss::Torn, CrashLoss::Any];

    /// The name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            CrashLoss::Keep => "keep",
            CrashLoss::Lose => "lose",
            CrashLoss::Prefix => "prefix",
            CrashLoss::Torn => "torn",
            CrashLoss::Any => "any",
        }
    }
}

impl FaultAction {
    /// The agent a disk fault hits; `None` for other faults.
    pub fn disk_agent(&self) -> Option<u32> {
        match self {
            FaultAction::FlipBit { agent }
            | FaultAction::FailSync { agent }
            | FaultAction::DiskFull { agent }
            | FaultAction::SlowDisk { agent, .. } => Some(*agent),
            _ => None,
        }
    }

    /// Whether the fault leaves its agent unable to continue (refused at start, stopped): a
    /// fault in the budget, as a crash that never restarts is.
    pub fn stops_agent(&self) -> bool {
        matches!(self, FaultAction::FlipBit { .. } | FaultAction::FailSync { .. } | FaultAction::DiskFull { .. })
    }
}

impl Scenario {
    /// When the last fault ends: the latest fault time and round-partition end (the run's
    /// global stabilisation time, 0 without faults).
    pub fn last_fault_ms(&self) -> u64 {
        let faults = self.faults.iter().map(|f| f.at_ms);
        let rounds = self.round_partitions.iter().filter_map(|p| p.until_ms);
        faults.chain(rounds).max().unwrap_or(0)
    }

    /// The agents a disk fault leaves unable to continue (`flip-bit`, `fail-sync`, `disk-full`).
    pub fn disk_stopped_agents(&self) -> std::collections::BTreeSet<u32> {
        self.faults.iter().filter(|f| f.action.stops_agent()).filter_map(|f| f.action.disk_agent()).collect()
    }
}
