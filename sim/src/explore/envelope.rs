//! The envelope of `bftsim explore`: the fault space runs are drawn from, as a TOML file.
//! `default-envelope.toml` (bundled, printed by `bftsim explore --print-envelope`) documents
//! every key; a user's file overrides any of them and keeps the defaults for the rest.

use std::path::Path;

use consensus_core::config::{DetectorKind, FallbackPolicy};
use serde::{Deserialize, Serialize};

use crate::scenario::Behaviour;

/// The bundled default envelope.
pub const DEFAULT_ENVELOPE: &str = include_str!("default-envelope.toml");

/// An inclusive range `[min, max]`.
pub type Span<T> = [T; 2];

/// The fault space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Weights of the modes.
    pub modes: Modes,
    /// Committee sizes.
    pub committee: Committee,
    /// Byzantine behaviours.
    pub byzantine: ByzantineSpace,
    /// Network ranges.
    pub network: NetworkSpace,
    /// Timed faults before GST.
    pub faults: FaultSpace,
    /// Workload ranges.
    pub workload: WorkloadSpace,
    /// Protocol options.
    pub protocol: ProtocolSpace,
    /// Storage faults and catch-up.
    pub storage: StorageSpace,
    /// Swarm testing.
    pub swarm: Swarm,
    /// Twins mode.
    pub twins: Twins,
    /// ByzzFuzz mode.
    pub byzzfuzz: ByzzFuzz,
    /// The `full-power` Byzantine agent.
    pub full_power: FullPowerSpace,
    /// The far-behind restart.
    pub far_behind: FarBehindSpace,
    /// The liveness bound.
    pub liveness: Liveness,
}

/// `[modes]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modes {
    /// Weight of swarm runs.
    pub swarm: u32,
    /// Weight of Twins runs.
    pub twins: u32,
    /// Weight of ByzzFuzz runs.
    pub byzzfuzz: u32,
}

/// `[committee]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Committee {
    /// Sizes, drawn with weight 1/size.
    pub sizes: Vec<u32>,
    /// Share of runs beyond f_max.
    pub beyond_f_max: f64,
}

/// `[byzantine]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByzantineSpace {
    /// Behaviours drawn from.
    pub behaviours: Vec<Behaviour>,
    /// Probability all Byzantine agents share one behaviour.
    pub same: f64,
}

/// `[network]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpace {
    /// Loss probability.
    pub drop: Span<f64>,
    /// Lower latency bound.
    pub latency_min_ms: Span<u64>,
    /// Upper latency bound.
    pub latency_max_ms: Span<u64>,
    /// Pareto scale of the tail.
    pub tail_scale_ms: Span<u64>,
    /// Cap of the tail.
    pub tail_max_ms: Span<u64>,
    /// Duplication probability.
    pub duplicate: Span<f64>,
}

/// `[faults]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpace {
    /// Global stabilisation time.
    pub gst_ms: Span<u64>,
    /// Partition windows when partitions are on.
    pub partitions: Span<u32>,
    /// Probability a partition is one-way.
    pub one_way: f64,
    /// Crash/restart pairs when crashes are on.
    pub crashes: Span<u32>,
    /// Clog windows when clogs are on.
    pub clogs: Span<u32>,
    /// Probability of a quiet restart (any mode but Twins, its own random stream).
    pub quiet_restart: f64,
    /// Probability of a round lag in session 0 (swarm runs, its own random stream).
    pub round_lag: f64,
    /// Probability of split locks in session 0 (swarm runs, its own random stream).
    pub split_locks: f64,
}

/// `[workload]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpace {
    /// Sessions per run.
    pub sessions: Span<u64>,
    /// Candidates per session.
    pub candidates: Span<u32>,
    /// Overlapping sessions.
    pub concurrency: Span<u64>,
    /// Quality gap.
    pub quality_gap: Span<f64>,
}

/// `[protocol]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolSpace {
    /// Detectors drawn from.
    pub detectors: Vec<DetectorKind>,
    /// Fallbacks drawn from.
    pub fallbacks: Vec<FallbackPolicy>,
    /// Thresholds drawn from (those the audit accepts).
    pub thresholds: Vec<f64>,
    /// Probability that early unanimous decisions are on.
    pub early_unanimous: f64,
    /// Probability that a run scales its round timeouts (propose, prevote, precommit and the
    /// per-round growth) by a factor from `timeout_scale`.
    pub short_timeouts: f64,
    /// The factor's range (0.1 to 1.0).
    pub timeout_scale: Span<f64>,
}

/// A disk fault the envelope can draw (the scenario `[[faults]]` kind of the same name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskKind {
    /// A bit of a synced log record, then a crash and restart of its agent.
    FlipBit,
    /// The next fsync fails: the agent stops.
    FailSync,
    /// The disk is full: the agent stops.
    DiskFull,
    /// fsyncs are slow until GST.
    SlowDisk,
}

impl DiskKind {
    /// The `[[faults]]` kind.
    pub fn name(self) -> &'static str {
        match self {
            DiskKind::FlipBit => "flip-bit",
            DiskKind::FailSync => "fail-sync",
            DiskKind::DiskFull => "disk-full",
            DiskKind::SlowDisk => "slow-disk",
        }
    }

    /// Whether it leaves its agent unable to go on (a fault in the budget).
    pub fn stops_agent(self) -> bool {
        self != DiskKind::SlowDisk
    }
}

/// `[storage]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpace {
    /// Disk faults per swarm run when the storage family is on.
    pub faults: Span<u32>,
    /// The disk faults drawn from.
    pub kinds: Vec<DiskKind>,
    /// fsync latency of a slow disk, ms.
    pub sync_ms: Span<u64>,
    /// Probability that a run's agents keep few decided sessions for catch-up.
    pub small_keep_decided: f64,
    /// `protocol.keep_decided` in those runs.
    pub keep_decided: Span<u64>,
    /// Probability that a run's agents compact their logs into snapshots (`[storage]
    /// compact_log_bytes`), so that snapshots are taken and restarts restore them. 0 when an
    /// envelope file does not say (envelopes written before it existed).
    #[serde(default)]
    pub small_compact_log: f64,
    /// `storage.compact_log_bytes` in those runs.
    #[serde(default = "default_compact_log_bytes")]
    pub compact_log_bytes: Span<u64>,
}

fn default_compact_log_bytes() -> Span<u64> {
    [4_096, 32_768]
}

/// `[swarm]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Swarm {
    /// Probability each family is off.
    pub off: f64,
}

/// `[twins]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Twins {
    /// Committee sizes.
    pub sizes: Vec<u32>,
    /// Rounds with a chosen partition.
    pub rounds: Span<u32>,
    /// Most groups per partition (2 or 3).
    pub groups: u32,
}

/// `[byzzfuzz]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByzzFuzz {
    /// Rounds with tampered messages.
    pub c: Span<u32>,
    /// Rounds with partitions.
    pub d: Span<u32>,
    /// Rounds are drawn from `0..=max_round`.
    pub max_round: u32,
}

/// `[full_power]`: how often generated runs have a `full-power` Byzantine agent, and its knobs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullPowerSpace {
    /// Probability that a Byzantine agent of a swarm or ByzzFuzz run runs `full-power` instead
    /// of the behaviour drawn for it (ByzzFuzz's mutated agent excepted).
    pub share: f64,
    /// Probability that a Twins run of a committee that tolerates two faults gets a
    /// `full-power` agent besides the twin.
    pub twins: f64,
    /// Its `rate`.
    pub rate: Span<f64>,
    /// Its `actions_per_input`.
    pub actions_per_input: Span<u32>,
    /// Probability that each of its families is off (at least one stays on).
    pub off: f64,
    /// Probability that its `flood` family (off by default in scenarios) is on besides; 0 when
    /// an envelope file does not say.
    #[serde(default)]
    pub flood: f64,
}

/// `[far_behind]`: an honest agent down while many sessions are decided, restarted when the
/// workload is over, judged by a catch-up bound derived from the protocol's promised rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarBehindSpace {
    /// Probability (its own random stream) that a swarm run that qualifies gets the shape.
    pub share: f64,
    /// Largest committee that qualifies.
    pub max_agents: u32,
    /// Sessions of such a run (the backlog).
    pub sessions: Span<u64>,
    /// The latency's maximum in such a run (no tail).
    pub latency_max_ms: Span<u64>,
    /// Probability of loss in such a run.
    pub lossy: f64,
    /// The loss probability, when lossy.
    pub drop: Span<f64>,
    /// Probability of `keep_decided` from `[storage] keep_decided` (the archive serves).
    pub small_keep_decided: f64,
    /// The restart comes this many ms per session after GST.
    pub per_session_ms: Span<u64>,
    /// Probability that one honest peer cannot reach the agent, nor it the peer, from just
    /// before its restart to the end (a clogged link): whom the agent asks, and when it gives
    /// up on one, decides whether it catches up in time (L75–L76, L80).
    pub unreachable_peer: f64,
}

/// `[liveness]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// Allowance per session after GST.
    pub per_session_ms: u64,
}

/// An envelope file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct EnvelopeError {
    /// The file.
    pub file: String,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and the fix.
    pub message: String,
}

impl Default for Envelope {
    fn default() -> Self {
        // The bundled text is tested to parse (`tests::the_default_parses_and_is_sane`).
        match parse(DEFAULT_ENVELOPE, "default-envelope.toml") {
            Ok(envelope) => envelope,
            Err(e) => panic!("bftsim bug: the bundled envelope does not parse: {e}"),
        }
    }
}

/// Reads an envelope file; omitted keys keep the bundled defaults.
pub fn load(path: &Path) -> Result<Envelope, EnvelopeError> {
    let text = std::fs::read_to_string(path).map_err(|e| EnvelopeError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: format!("cannot read the envelope: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses envelope text over the bundled defaults.
pub fn parse(text: &str, file: &str) -> Result<Envelope, EnvelopeError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| {
        let offset = span.map_or(0, |s| s.start).min(text.len());
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        EnvelopeError { file: file.to_owned(), line, column, message }
    };
    let user: toml::Table = toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;
    let mut merged: toml::Table = toml::from_str(DEFAULT_ENVELOPE).map_err(|e| at(None, e.to_string()))?;
    for (section, value) in user {
        match (merged.get_mut(&section), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => base.extend(over),
            (_, value) => {
                merged.insert(section, value);
            }
        }
    }
    let envelope: Envelope = toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| {
        // Positions are lost in the merge: name the key instead.
        at(None, format!("{}; see `bftsim explore --print-envelope` for every key", e.message()))
    })?;
    envelope.check().map_err(|message| at(None, message))?;
    Ok(envelope)
}

impl Envelope {
    /// 16 hex digits that change with any value of the envelope (FNV-1a of its JSON form):
    /// recorded in explore.json so that `bftsim merge` refuses shards of different envelopes.
    pub fn fingerprint(&self) -> String {
        let mut h = crate::trace::Fnv::default();
        h.bytes(serde_json::to_string(self).unwrap_or_default().as_bytes());
        format!("{:016x}", h.finish())
    }

    fn check(&self) -> Result<(), String> {
        let Modes { swarm, twins, byzzfuzz } = self.modes;
        if swarm + twins + byzzfuzz == 0 {
            return Err("modes: every weight is 0: give at least one mode a weight above 0".into());
        }
        if self.committee.sizes.is_empty() || self.committee.sizes.iter().any(|n| !(1..=64).contains(n)) {
            return Err("committee.sizes: expected a non-empty list of sizes from 1 to 64".into());
        }
        if self.twins.sizes.iter().any(|n| !(2..=64).contains(n)) || !(2..=3).contains(&self.twins.groups) {
            return Err("twins: expected sizes from 2 to 64 and groups = 2 or 3".into());
        }
        if self.storage.kinds.is_empty() {
            return Err("storage.kinds: expected at least one disk fault kind".into());
        }
        if self.byzantine.behaviours.is_empty() {
            return Err("byzantine.behaviours: expected at least one behaviour".into());
        }
        let [low, high] = self.protocol.timeout_scale;
        if !(0.1..=1.0).contains(&low) || !(low..=1.0).contains(&high) {
            return Err(format!(
                "protocol.timeout_scale = [{low}, {high}]: expected [min, max] with 0.1 <= min <= max <= 1.0"
            ));
        }
        if self.protocol.detectors.is_empty()
            || self.protocol.fallbacks.is_empty()
            || self.protocol.thresholds.is_empty()
        {
            return Err("protocol: detectors, fallbacks and thresholds each need at least one value".into());
        }
        self.check_probabilities()?;
        self.check_ranges()
    }

    /// Every probability of the envelope is within [0, 1].
    fn check_probabilities(&self) -> Result<(), String> {
        let probabilities = [
            ("committee.beyond_f_max", self.committee.beyond_f_max),
            ("byzantine.same", self.byzantine.same),
            ("faults.one_way", self.faults.one_way),
            ("faults.quiet_restart", self.faults.quiet_restart),
            ("faults.round_lag", self.faults.round_lag),
            ("faults.split_locks", self.faults.split_locks),
            ("protocol.early_unanimous", self.protocol.early_unanimous),
            ("protocol.short_timeouts", self.protocol.short_timeouts),
            ("storage.small_keep_decided", self.storage.small_keep_decided),
            ("storage.small_compact_log", self.storage.small_compact_log),
            ("swarm.off", self.swarm.off),
            ("full_power.share", self.full_power.share),
            ("full_power.twins", self.full_power.twins),
            ("full_power.off", self.full_power.off),
            ("full_power.flood", self.full_power.flood),
            ("far_behind.share", self.far_behind.share),
            ("far_behind.lossy", self.far_behind.lossy),
            ("far_behind.drop[0]", self.far_behind.drop[0]),
            ("far_behind.drop[1]", self.far_behind.drop[1]),
            ("far_behind.small_keep_decided", self.far_behind.small_keep_decided),
            ("far_behind.unreachable_peer", self.far_behind.unreachable_peer),
            ("full_power.rate[0]", self.full_power.rate[0]),
            ("full_power.rate[1]", self.full_power.rate[1]),
            ("network.drop[0]", self.network.drop[0]),
            ("network.drop[1]", self.network.drop[1]),
            ("network.duplicate[0]", self.network.duplicate[0]),
            ("network.duplicate[1]", self.network.duplicate[1]),
            ("workload.quality_gap[0]", self.workload.quality_gap[0]),
            ("workload.quality_gap[1]", self.workload.quality_gap[1]),
        ];
        for (key, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{key} = {p}: expected a number from 0.0 to 1.0"));
            }
        }
        Ok(())
    }

    /// Every `[min, max]` span is ordered (counts start at 1), and the workload fits a run.
    fn check_ranges(&self) -> Result<(), String> {
        let ranges = [
            ("network.drop", self.network.drop[0] <= self.network.drop[1]),
            ("network.duplicate", self.network.duplicate[0] <= self.network.duplicate[1]),
            ("network.latency_min_ms", self.network.latency_min_ms[0] <= self.network.latency_min_ms[1]),
            ("network.latency_max_ms", self.network.latency_max_ms[0] <= self.network.latency_max_ms[1]),
            ("network.tail_scale_ms", self.network.tail_scale_ms[0] <= self.network.tail_scale_ms[1]),
            ("network.tail_max_ms", self.network.tail_max_ms[0] <= self.network.tail_max_ms[1]),
            ("faults.gst_ms", self.faults.gst_ms[0] <= self.faults.gst_ms[1]),
            ("faults.partitions", self.faults.partitions[0] <= self.faults.partitions[1]),
            ("faults.crashes", self.faults.crashes[0] <= self.faults.crashes[1]),
            ("faults.clogs", self.faults.clogs[0] <= self.faults.clogs[1]),
            ("storage.faults", self.storage.faults[0] <= self.storage.faults[1]),
            (
                "storage.sync_ms",
                self.storage.sync_ms[0] <= self.storage.sync_ms[1] && self.storage.sync_ms[1] <= 10_000,
            ),
            (
                "storage.keep_decided",
                1 <= self.storage.keep_decided[0] && self.storage.keep_decided[0] <= self.storage.keep_decided[1],
            ),
            (
                "storage.compact_log_bytes",
                1 <= self.storage.compact_log_bytes[0]
                    && self.storage.compact_log_bytes[0] <= self.storage.compact_log_bytes[1],
            ),
            (
                "workload.sessions",
                1 <= self.workload.sessions[0] && self.workload.sessions[0] <= self.workload.sessions[1],
            ),
            (
                "workload.candidates",
                1 <= self.workload.candidates[0] && self.workload.candidates[0] <= self.workload.candidates[1],
            ),
            (
                "workload.concurrency",
                1 <= self.workload.concurrency[0] && self.workload.concurrency[0] <= self.workload.concurrency[1],
            ),
            ("workload.quality_gap", self.workload.quality_gap[0] <= self.workload.quality_gap[1]),
            ("twins.rounds", 1 <= self.twins.rounds[0] && self.twins.rounds[0] <= self.twins.rounds[1]),
            ("byzzfuzz.c", self.byzzfuzz.c[0] <= self.byzzfuzz.c[1]),
            ("byzzfuzz.d", self.byzzfuzz.d[0] <= self.byzzfuzz.d[1]),
            ("full_power.rate", self.full_power.rate[0] <= self.full_power.rate[1]),
            ("far_behind.drop", self.far_behind.drop[0] <= self.far_behind.drop[1]),
            (
                "far_behind.sessions",
                1 <= self.far_behind.sessions[0]
                    && self.far_behind.sessions[0] <= self.far_behind.sessions[1]
                    && self.far_behind.sessions[1] <= 1_000,
            ),
            (
                "far_behind.latency_max_ms",
                1 <= self.far_behind.latency_max_ms[0]
                    && self.far_behind.latency_max_ms[0] <= self.far_behind.latency_max_ms[1],
            ),
            ("far_behind.per_session_ms", self.far_behind.per_session_ms[0] <= self.far_behind.per_session_ms[1]),
            (
                "full_power.actions_per_input",
                1 <= self.full_power.actions_per_input[0]
                    && self.full_power.actions_per_input[0] <= self.full_power.actions_per_input[1]
                    && self.full_power.actions_per_input[1] <= 16,
            ),
        ];
        for (key, ok) in ranges {
            if !ok {
                return Err(format!("{key}: expected [min, max] with min ≤ max (and min ≥ 1 for counts of sessions, candidates, concurrency and rounds)"));
            }
        }
        if self.workload.sessions[1] > 1_000 || self.workload.candidates[1] > 64 {
            return Err("workload: at most 1000 sessions and 64 candidates per generated run".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_parses_and_is_sane() {
        let e = Envelope::default();
        assert_eq!(e.committee.sizes.first(), Some(&4));
        // Every behaviour: the scripted ones, twin and honest by [byzantine], full-power by its share.
        let full_power = Behaviour::Core(consensus_core::adversary::Strategy::FullPower);
        let listed: Vec<Behaviour> = Behaviour::all().into_iter().filter(|b| *b != full_power).collect();
        assert_eq!(e.byzantine.behaviours, listed, "the default covers every behaviour");
        assert!(e.full_power.share > 0.0 && e.full_power.twins > 0.0);
        assert!(e.network.latency_max_ms[1] > 200, "the default crosses the propose timeout");
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let e = parse("[committee]\nsizes = [4]\n", "x.toml").unwrap();
        assert_eq!(e.committee.sizes, vec![4]);
        assert_eq!(e.committee.beyond_f_max, Envelope::default().committee.beyond_f_max);
        assert_eq!(e.network, Envelope::default().network);
    }

    #[test]
    fn the_fingerprint_follows_the_contents() {
        let e = Envelope::default();
        assert_eq!(e.fingerprint().len(), 16);
        assert_eq!(e.fingerprint(), parse("", "other-name.toml").unwrap().fingerprint());
        let other = parse("[network]\ndrop = [0.01, 0.3]\n", "x.toml").unwrap();
        assert_ne!(e.fingerprint(), other.fingerprint());
    }

    #[test]
    fn errors_name_the_place() {
        let e = parse("[committee]\nsizes = [4\n", "x.toml").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("x.toml", 2));
        let e = parse("[network]\ndrop = [0.5, 0.1]\n", "x.toml").unwrap_err();
        assert!(e.message.contains("network.drop"), "{e}");
        let e = parse("[byzantine]\nbehaviours = [\"sneaky\"]\n", "x.toml").unwrap_err();
        assert!(e.message.contains("sneaky"), "{e}");
        let e = parse("[modes]\nswarm = 0\ntwins = 0\nbyzzfuzz = 0\n", "x.toml").unwrap_err();
        assert!(e.message.contains("modes"), "{e}");
        let e = parse("[full_power]\nshare = 1.5\n", "x.toml").unwrap_err();
        assert!(e.message.contains("full_power.share"), "{e}");
        let e = parse("[full_power]\nactions_per_input = [0, 3]\n", "x.toml").unwrap_err();
        assert!(e.message.contains("full_power.actions_per_input"), "{e}");
    }
}
