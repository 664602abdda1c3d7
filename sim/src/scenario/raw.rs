//! The scenario file as written (serde's model of it): the public sections, plus faults in their
//! flat form. Validation turns it into a [`Scenario`] (load.rs, validate.rs).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

/// The file as written: the public sections, plus faults in their flat form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a scenario file")]
pub(super) struct ScenarioFile {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) agents: Agents,
    #[serde(default)]
    pub(super) protocol: Protocol,
    #[serde(default)]
    pub(super) workload: Workload,
    #[serde(default)]
    pub(super) evaluator: Evaluators,
    #[serde(default)]
    pub(super) byzantine: Byzantine,
    #[serde(default)]
    pub(super) network: Network,
    #[serde(default)]
    pub(super) storage: Storage,
    #[serde(default)]
    pub(super) faults: Vec<FaultEntry>,
    #[serde(default)]
    pub(super) round_partitions: Vec<RoundPartition>,
    #[serde(default)]
    pub(super) tamper: Vec<Tamper>,
    #[serde(default)]
    pub(super) expect: Expect,
    #[serde(default)]
    pub(super) sweep: BTreeMap<String, Vec<toml::Value>>,
}

/// A `[[faults]]` entry as written: every kind's fields, each optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[faults]] table with at_ms, kind and the kind's fields")]
pub(super) struct FaultEntry {
    pub(super) at_ms: u64,
    pub(super) kind: FaultKind,
    pub(super) groups: Option<Vec<Vec<u32>>>,
    pub(super) one_way: Option<bool>,
    pub(super) agent: Option<u32>,
    pub(super) link: Option<[u32; 2]>,
    pub(super) sync_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum FaultKind {
    Partition,
    Heal,
    Crash,
    Restart,
    Clog,
    Unclog,
    FlipBit,
    FailSync,
    DiskFull,
    SlowDisk,
}

impl FaultKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Heal => "heal",
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::Clog => "clog",
            FaultKind::Unclog => "unclog",
            FaultKind::FlipBit => "flip-bit",
            FaultKind::FailSync => "fail-sync",
            FaultKind::DiskFull => "disk-full",
            FaultKind::SlowDisk => "slow-disk",
        }
    }

    /// The fields this kind takes besides `at_ms` and `kind`.
    pub(super) fn fields(self) -> &'static [&'static str] {
        match self {
            FaultKind::Partition => &["groups", "one_way"],
            FaultKind::Heal => &[],
            FaultKind::Crash | FaultKind::Restart => &["agent"],
            FaultKind::FlipBit | FaultKind::FailSync | FaultKind::DiskFull => &["agent"],
            FaultKind::SlowDisk => &["agent", "sync_ms"],
            FaultKind::Clog | FaultKind::Unclog => &["agent", "link"],
        }
    }
}
