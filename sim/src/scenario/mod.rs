//! Scenario files: what one simulation run is made of, as data.
//!
//! A scenario is a TOML file; `docs/scenarios.md` documents every key, its type, default and
//! valid range. Loading parses, it does not merely validate: [`parse`] turns text into a
//! [`Scenario`] whose every value is in range, or into a [`ScenarioError`] that names
//! `file:line:column` and says what was expected. Nothing here panics on any input.
//!
//! How errors get their position: the text is parsed once into toml's spanned document tree.
//! Serde deserialises the file model from that tree with `deny_unknown_fields` everywhere, so a
//! syntax error, an unknown key, a wrong type or an unknown name is reported at its span. The
//! semantic checks then run on typed values and report the offending key as a path
//! (`faults[2].agent`), which is located in the same tree.
//!
//! Faults are read through a flat entry (`at_ms`, `kind` and every kind's optional fields) and
//! converted to the tagged [`FaultAction`]: serde's internally tagged enums buffer their input
//! and lose the spans, so a misspelt key inside a fault would point at the `[[faults]]` header.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use consensus_core::config::{
    AgreementBasis, ConflictPolicy, DetectorConfig, DetectorKind, FallbackPolicy, QuarantineConfig,
};
use consensus_core::evaluator::EvaluatorProfile;
use consensus_core::protocol::{Mutation, ProtocolConfig};
use consensus_core::quorum::{self, Audit, AuditInput, Finding, Severity};
use consensus_core::{AgentSpecialization, EngineConfig, Ppm, Ratio};
use serde::{Deserialize, Serialize};

mod adversarial;
mod load;
mod problem;
mod raw;
mod storage;
mod sweep;
#[cfg(test)]
mod tests;
mod validate;
mod write;

pub use adversarial::{Behaviour, FullPowerKnobs, NodeRef, RoundPartition, Tamper, TamperAction};
pub use load::{discover, load, parse};
pub use storage::{CrashLoss, Storage};
use validate::Timeline;

/// Most agents a scenario may have (active plus spares).
pub const MAX_AGENTS: u32 = 256;
/// Most vote sessions per run.
pub const MAX_SESSIONS: u64 = 100_000;
/// Most candidates per session.
pub const MAX_CANDIDATES: u32 = 256;
/// Most scenarios one `[sweep]` may expand to.
pub const MAX_SWEEP_COMBINATIONS: usize = 4_096;
/// The invariants `expect.invariant` may name (the oracle's names).
pub const INVARIANTS: [&str; 22] = [
    "agreement",
    "integrity",
    "external-validity",
    "unanimity-validity",
    "support-validity",
    "threshold",
    "liveness",
    "acknowledged-durable",
    "no-equivocation-across-restarts",
    "corruption-detected",
    "catch-up",
    "honest-proposal-valid",
    "timely-proposal",
    "evidence-sound",
    "equivocation-detected",
    "round-skip",
    "sync-serve-rate",
    "sync-requests",
    "lock-respected",
    "valid-value",
    "step-justified",
    "step-timely",
];

/// The `(dotted key, value)` pairs that name one scenario of a sweep, in key order.
pub type SweepLabels = Vec<(String, String)>;

/// A validated scenario: every value is in range and every agent index exists.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    /// Name; defaults to the file stem. Expanded sweep scenarios are `name[key=value,...]`.
    pub name: String,
    /// One line for `bftsim list`.
    pub description: String,
    /// The committee.
    pub agents: Agents,
    /// Engine and agreement-protocol settings.
    pub protocol: Protocol,
    /// The vote sessions the client opens.
    pub workload: Workload,
    /// Evaluator profile overrides per specialisation.
    pub evaluator: Evaluators,
    /// Byzantine agents and their strategy.
    pub byzantine: Byzantine,
    /// Message drops, latency and duplication.
    pub network: Network,
    /// Each agent's simulated disk.
    pub storage: Storage,
    /// Timed faults, sorted by `at_ms` (stable: equal times keep file order).
    pub faults: Vec<Fault>,
    /// Partitions of one round of one session.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub round_partitions: Vec<RoundPartition>,
    /// Mutations of a faulty agent's messages of one round of one session.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tamper: Vec<Tamper>,
    /// What the run must show.
    pub expect: Expect,
    /// Sweep axes: dotted key → values. Empty for expanded scenarios.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sweep: BTreeMap<String, Vec<toml::Value>>,
    /// The file the scenario came from.
    #[serde(skip)]
    pub path: PathBuf,
    /// The file's text, for [`Scenario::expand`] and its error positions.
    #[serde(skip)]
    pub(crate) source: Arc<str>,
}

/// `[agents]`: the committee. Specialisations cycle retriever, analyzer, validator, reranker,
/// monitor by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "an [agents] table with count and spares")]
pub struct Agents {
    /// Active agents, `1..=256` (default 5).
    pub count: u32,
    /// Spare agents that replacements activate (default 0); `count + spares ≤ 256`.
    pub spares: u32,
}

impl Default for Agents {
    fn default() -> Self {
        Agents { count: 5, spares: 0 }
    }
}

/// `[protocol]`: engine and agreement-protocol settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a [protocol] table")]
pub struct Protocol {
    /// Agreement threshold in `(0, 1]` (default 0.66), kept to parts per million.
    pub threshold: f64,
    /// Session deadline, ≥ 1 (default 500).
    pub deadline_ms: u64,
    /// What happens past the deadline (default `none`).
    pub fallback: FallbackPolicy,
    /// Byzantine detector (default `mean-deviation`).
    pub detector: DetectorKind,
    /// A deliberately broken protocol variant (default `none`).
    pub mutation: Mutation,
    /// What agreement counts (default `count`).
    pub agreement_basis: AgreementBasis,
    /// Below-threshold conflict resolutions (default `resolve`).
    pub conflict_policy: ConflictPolicy,
    /// Detector deviation threshold in `[0, 1]` (default 0.3).
    pub detector_threshold: f64,
    /// Detector window in votes, ≥ 1 (default 100).
    pub detector_window: usize,
    /// Offences before exclusion, ≥ 1 (default 3).
    pub exclude_after: u32,
    /// Decided sessions a quarantined agent sits out (default 10).
    pub quarantine_sessions: u64,
    /// Whether excluded agents are replaced by spares (default false; needs `agents.spares ≥ 1`).
    pub replace: bool,
    /// Decide at once when every expected vote agrees (default true).
    pub early_unanimous: bool,
    /// Proposer's wait for all n votes (default 150).
    pub vote_collect_ms: u64,
    /// Round-0 propose timeout, ≥ 1 (default 200).
    pub timeout_propose_ms: u64,
    /// Round-0 prevote timeout, ≥ 1 (default 50).
    pub timeout_prevote_ms: u64,
    /// Round-0 precommit timeout, ≥ 1 (default 50).
    pub timeout_precommit_ms: u64,
    /// Added to every timeout per round (default 50).
    pub timeout_delta_ms: u64,
    /// Re-send interval of an undecided agent, ≥ 1 (default 100).
    pub retransmit_ms: u64,
    /// Decided sessions an agent keeps for catch-up before pruning them, ≥ 1 (default 64).
    pub keep_decided: u64,
}

impl Default for Protocol {
    fn default() -> Self {
        let engine = EngineConfig::default();
        let timing = ProtocolConfig::default();
        Protocol {
            threshold: 0.66,
            deadline_ms: engine.deadline_ms,
            fallback: engine.fallback,
            detector: engine.detector.kind,
            mutation: Mutation::None,
            agreement_basis: engine.agreement_basis,
            conflict_policy: engine.conflict_policy,
            detector_threshold: 0.3,
            detector_window: engine.detector.window,
            exclude_after: engine.quarantine.exclude_after,
            quarantine_sessions: engine.quarantine.sessions,
            replace: false,
            early_unanimous: engine.early_unanimous,
            vote_collect_ms: timing.vote_collect_ms,
            timeout_propose_ms: timing.timeout_propose_ms,
            timeout_prevote_ms: timing.timeout_prevote_ms,
            timeout_precommit_ms: timing.timeout_precommit_ms,
            timeout_delta_ms: timing.timeout_delta_ms,
            retransmit_ms: timing.retransmit_ms,
            keep_decided: timing.keep_decided as u64,
        }
    }
}

/// `[workload]`: the vote sessions the client opens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a [workload] table")]
pub struct Workload {
    /// Vote sessions per run, `1..=100_000` (default 10).
    pub sessions: u64,
    /// Candidates per session, `1..=256` (default 3).
    pub candidates: u32,
    /// Sessions that may overlap, ≥ 1 (default 1).
    pub concurrency: u64,
    /// True quality of the best candidate minus the second best, in `[0, 1]` (default 0.3).
    pub quality_gap: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { sessions: 10, candidates: 3, concurrency: 1, quality_gap: 0.3 }
    }
}

/// `[evaluator]`: optional per-specialisation overrides of
/// [`EvaluatorProfile::seed_default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "an [evaluator] table of specialisations")]
pub struct Evaluators {
    /// `[evaluator.retriever]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retriever: Option<ProfileSpec>,
    /// `[evaluator.analyzer]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<ProfileSpec>,
    /// `[evaluator.validator]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validator: Option<ProfileSpec>,
    /// `[evaluator.reranker]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reranker: Option<ProfileSpec>,
    /// `[evaluator.monitor]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<ProfileSpec>,
}

impl Evaluators {
    /// The override for `spec`, if the file has one.
    pub fn spec(&self, spec: AgentSpecialization) -> Option<&ProfileSpec> {
        match spec {
            AgentSpecialization::Retriever => self.retriever.as_ref(),
            AgentSpecialization::Analyzer => self.analyzer.as_ref(),
            AgentSpecialization::Validator => self.validator.as_ref(),
            AgentSpecialization::Reranker => self.reranker.as_ref(),
            AgentSpecialization::Monitor => self.monitor.as_ref(),
        }
    }
}

/// One specialisation's evaluator override; an omitted field keeps the seed default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table with noise, latency_ms and confidence")]
pub struct ProfileSpec {
    /// Maximum absolute score error in `[0, 1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// Evaluation latency `[min, max]` in ms, `min ≤ max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<[u64; 2]>,
    /// Reported confidence `[min, max]`, both in `[0, 1]`, `min ≤ max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<[f64; 2]>,
}

/// consensus-core's Byzantine strategies, by their kebab-case names.
pub use consensus_core::adversary::Strategy as ByzantineStrategy;

/// `[byzantine]`: how many agents are Byzantine, which, and how they behave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a [byzantine] table with count, strategy, strategies, agents and full_power"
)]
pub struct Byzantine {
    /// Byzantine agents, at most `agents.count` (default 0).
    pub count: u32,
    /// Their behaviour (default `silent`): a consensus-core strategy, `twin` or `honest`.
    pub strategy: Behaviour,
    /// A mix: the behaviour of each Byzantine agent in agent-index order, cycled when shorter;
    /// overrides `strategy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategies: Option<Vec<Behaviour>>,
    /// Which agents, by index; `None` means drawn from the seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<u32>>,
    /// `[byzantine.full_power]`: the knobs of the `full-power` agents.
    #[serde(skip_serializing_if = "FullPowerKnobs::is_default")]
    pub full_power: FullPowerKnobs,
}

impl Default for Byzantine {
    fn default() -> Self {
        Byzantine {
            count: 0,
            strategy: Behaviour::Core(ByzantineStrategy::Silent),
            strategies: None,
            agents: None,
            full_power: FullPowerKnobs::default(),
        }
    }
}

impl Byzantine {
    /// The behaviour of the Byzantine agent of rank `rank` (0 = lowest agent index).
    pub fn behaviour(&self, rank: usize) -> Behaviour {
        match &self.strategies {
            Some(list) if !list.is_empty() => list[rank % list.len()],
            _ => self.strategy,
        }
    }

    /// Every behaviour in use, sorted, without repeats.
    pub fn behaviours(&self) -> Vec<Behaviour> {
        let mut all: Vec<Behaviour> = (0..self.count as usize).map(|r| self.behaviour(r)).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The behaviours as one label, e.g. `equivocate+silent`.
    pub fn label(&self) -> String {
        let names: Vec<&str> = self.behaviours().into_iter().map(Behaviour::name).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join("+")
        }
    }
}

/// `[network]`: message drops, latency and duplication.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a [network] table")]
pub struct Network {
    /// Probability that a message is dropped, `[0, 1]` (default 0.0).
    pub drop: f64,
    /// Uniform one-way latency `[min, max]` in ms, `min ≤ max` (default `[1, 10]`).
    pub latency_ms: [u64; 2],
    /// Long-tail extra latency (default none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<LatencyTail>,
    /// Probability that a message is delivered twice, `[0, 1]` (default 0.0).
    pub duplicate: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network { drop: 0.0, latency_ms: [1, 10], tail: None, duplicate: 0.0 }
    }
}

/// The distribution of a latency tail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TailKind {
    /// Pareto: `scale_ms / U^(1 / shape)` for uniform `U` in `(0, 1]`, capped at `max_ms`.
    #[default]
    Pareto,
}

/// `network.tail`: extra latency from a long-tailed distribution, added to the uniform range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table { kind = \"pareto\", scale_ms, shape, max_ms }")]
pub struct LatencyTail {
    /// The distribution (required).
    pub kind: TailKind,
    /// Scale (the minimum of the tail), ≥ 1 (default 5).
    #[serde(default = "LatencyTail::default_scale_ms")]
    pub scale_ms: u64,
    /// Shape, > 0; smaller is heavier (default 1.5).
    #[serde(default = "LatencyTail::default_shape")]
    pub shape: f64,
    /// Cap, ≥ `scale_ms` (default 2000).
    #[serde(default = "LatencyTail::default_max_ms")]
    pub max_ms: u64,
}

impl LatencyTail {
    fn default_scale_ms() -> u64 {
        5
    }
    fn default_shape() -> f64 {
        1.5
    }
    fn default_max_ms() -> u64 {
        2_000
    }
}

/// One timed fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Simulated time at which it happens.
    pub at_ms: u64,
    /// What happens.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// What a fault does; tagged by `kind` as in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultAction {
    /// Cut every link between two different groups (only from the first group to the others
    /// when `one_way`). Replaces any partition in effect; agents in no group keep their links.
    Partition {
        /// At least two disjoint, non-empty groups of agent indices.
        groups: Vec<Vec<u32>>,
        /// Cut only the traffic from `groups[0]` to the other groups.
        one_way: bool,
    },
    /// Remove the partition in effect, if any.
    Heal,
    /// Stop an agent: it loses its volatile state and sends nothing.
    Crash {
        /// Agent index.
        agent: u32,
    },
    /// Restart a crashed agent.
    Restart {
        /// Agent index.
        agent: u32,
    },
    /// Hold messages (they are delivered after the matching unclog).
    Clog {
        /// An agent (all its links) or one link.
        #[serde(flatten)]
        target: ClogTarget,
    },
    /// Release a clog.
    Unclog {
        /// As in the clog.
        #[serde(flatten)]
        target: ClogTarget,
    },
    /// Stop an agent's process without losing anything (SIGSTOP for real processes): it
    /// neither handles nor sends anything until the matching resume, and what peers send it
    /// waits. Simulated as a clog of every link of the agent (what its peers observe).
    Pause {
        /// Agent index.
        agent: u32,
    },
    /// Continue a paused agent (SIGCONT).
    Resume {
        /// Agent index.
        agent: u32,
    },
    /// Flip one bit of a record the agent's log holds durably (record and bit drawn from the
    /// seed). Its next restart must detect it and refuse to start: a disk fault, counted like
    /// a crash that never restarts.
    FlipBit {
        /// Agent index.
        agent: u32,
    },
    /// The agent's next fsync fails: it stops, since its log no longer records what it does.
    FailSync {
        /// Agent index.
        agent: u32,
    },
    /// The agent's disk is full from now on: its next append fails and it stops.
    DiskFull {
        /// Agent index.
        agent: u32,
    },
    /// Every fsync of the agent takes `sync_ms` from now on (0: at once again).
    SlowDisk {
        /// Agent index.
        agent: u32,
        /// The fsync latency, ms.
        sync_ms: u64,
    },
}

/// What a clog holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClogTarget {
    /// Every link of this agent, both directions.
    Agent(u32),
    /// The link between these two agents, both directions.
    Link([u32; 2]),
}

impl std::fmt::Display for ClogTarget {
    /// `agent 3`, `link 1–6`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClogTarget::Agent(a) => write!(f, "agent {a}"),
            ClogTarget::Link([a, b]) => write!(f, "link {a}–{b}"),
        }
    }
}

/// `[expect]`: what a run must show to pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "an [expect] table")]
pub struct Expect {
    /// `true`: no invariant may be violated; `false`: the run passes only if one is (default
    /// true).
    pub safety: bool,
    /// Whether every honest agent must decide every session; `None` means
    /// [`Scenario::default_liveness`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<bool>,
    /// Simulated time by which every honest agent must have decided every session, ≥ 1
    /// (default 30000).
    pub liveness_bound_ms: u64,
    /// A liveness bound in rounds as well (off by default): an honest agent that is up and
    /// enters this round of a session it has not decided violates liveness at once. Set by
    /// `bftsim explore` to the rounds the growing timeouts reach by the faults' end plus the
    /// rounds they need to outlast the latency, plus slack; it ends a stalled run long before
    /// its time bound, which grows with the square of those rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness_rounds: Option<u64>,
    /// With `safety = false`: the invariant that must be violated (one of [`INVARIANTS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invariant: Option<String>,
    /// The `catch-up` bound, ≥ 1 (default 10000): a restarted honest agent decides every
    /// session an honest agent decided within this time of the latest of its restart, that
    /// decision and the last fault (docs/protocol.md, "Restart and catch-up").
    pub catch_up_ms: u64,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            safety: true,
            liveness: None,
            liveness_bound_ms: 30_000,
            liveness_rounds: None,
            invariant: None,
            catch_up_ms: 10_000,
        }
    }
}

/// A scenario file that cannot be used, with its position and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ScenarioError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line; 0 when the error concerns the file as a whole (cannot be read).
    pub line: usize,
    /// 1-based column in characters; 0 with line 0.
    pub column: usize,
    /// What is wrong, what was expected, and the fix.
    pub message: String,
}

impl ScenarioError {
    fn render(&self) -> String {
        if self.line == 0 {
            format!("{}: {}", self.file.display(), self.message)
        } else {
            format!("{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
        }
    }

    fn whole_file(file: &Path, message: String) -> Self {
        ScenarioError { file: file.to_path_buf(), line: 0, column: 0, message }
    }
}

/// Reads and parses the scenario file at `path`.
/// The run from its last fault on ([`Scenario::after_gst`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterGst {
    /// Every agent up, every link open.
    pub all_up: bool,
    /// The slowest fsync in effect, ms.
    pub sync_ms: u64,
}

impl Scenario {
    /// The engine configuration: `protocol.*` mapped onto [`EngineConfig`]; everything the file
    /// does not set keeps the engine's default. `quarantine.min_active` is `agents.count`.
    pub fn engine_config(&self) -> EngineConfig {
        let p = &self.protocol;
        let defaults = EngineConfig::default();
        EngineConfig {
            // Both were checked by `Ratio::from_f64` / `Ppm::from_f64` when the file was parsed.
            threshold: Ratio::from_f64(p.threshold).unwrap_or(defaults.threshold),
            agreement_basis: p.agreement_basis,
            conflict_policy: p.conflict_policy,
            detector: DetectorConfig {
                kind: p.detector,
                threshold: Ppm::from_f64(p.detector_threshold).unwrap_or(defaults.detector.threshold),
                window: p.detector_window,
            },
            quarantine: QuarantineConfig {
                sessions: p.quarantine_sessions,
                exclude_after: p.exclude_after,
                min_active: self.agents.count as usize,
                replace: p.replace,
            },
            fallback: p.fallback,
            early_unanimous: p.early_unanimous,
            deadline_ms: p.deadline_ms,
            ..defaults
        }
    }

    /// The agreement protocol's configuration: timings, mutation, and
    /// `pipeline = workload.concurrency`.
    pub fn protocol_config(&self) -> ProtocolConfig {
        let p = &self.protocol;
        ProtocolConfig {
            vote_collect_ms: p.vote_collect_ms,
            timeout_propose_ms: p.timeout_propose_ms,
            timeout_prevote_ms: p.timeout_prevote_ms,
            timeout_precommit_ms: p.timeout_precommit_ms,
            timeout_delta_ms: p.timeout_delta_ms,
            retransmit_ms: p.retransmit_ms,
            keep_decided: usize::try_from(p.keep_decided).unwrap_or(usize::MAX),
            pipeline: self.workload.concurrency,
            mutation: p.mutation,
            ..ProtocolConfig::default()
        }
    }

    /// The evaluator profile of `spec`: the design's default with the file's overrides.
    pub fn evaluator_profile(&self, spec: AgentSpecialization) -> EvaluatorProfile {
        let mut profile = EvaluatorProfile::seed_default(spec);
        let Some(over) = self.evaluator.spec(spec) else {
            return profile;
        };
        if let Some(noise) = over.noise.and_then(Ppm::from_f64) {
            profile.noise = noise;
        }
        if let Some([min, max]) = over.latency_ms {
            profile.latency_ms = (min, max);
        }
        if let Some([min, max]) = over.confidence {
            if let (Some(min), Some(max)) = (Ppm::from_f64(min), Ppm::from_f64(max)) {
                profile.confidence = (min, max);
            }
        }
        profile
    }

    /// The most Byzantine agents the committee tolerates: `(count − 1) / 3`.
    pub fn f_max(&self) -> u32 {
        self.agents.count.saturating_sub(1) / 3
    }

    /// Whether the run must be live: `expect.liveness`, or [`Scenario::default_liveness`].
    pub fn promises_liveness(&self) -> bool {
        self.expect.liveness.unwrap_or_else(|| self.default_liveness())
    }

    /// The default of `expect.liveness`: true when the faulty agents at the end of the run
    /// (Byzantine ones, agents still crashed or clogged or hit by a disk fault that stops them,
    /// one per link still clogged) are at most [`Scenario::f_max`], agent 0 (the session
    /// opener's host) is up, no partition is left in effect, every round partition ends
    /// (`until_ms`), and `network.drop < 1`.
    pub fn default_liveness(&self) -> bool {
        let end = Timeline::replay(&self.faults);
        let faulty = u64::from(self.byzantine.count) + end.down_agents() + end.clogged_links.len() as u64;
        let cut_for_ever = self.round_partitions.iter().any(|p| p.until_ms.is_none());
        // Agent 0's node hosts the session opener: down for good, no session is opened again.
        let opener_down = end.crashed.contains(&0) || end.disk_stopped.contains(&0);
        faulty <= u64::from(self.f_max())
            && !end.partitioned
            && !cut_for_ever
            && !opener_down
            && self.network.drop < 1.0
    }

    /// What holds from the run's last fault (GST) on: whether every agent is up with every
    /// link open (none crashed, paused, clogged or stopped by its disk, no link clogged, no
    /// partition), and the slowest fsync in effect (`storage.sync_ms`, or a `slow-disk` left on).
    pub fn after_gst(&self) -> AfterGst {
        let end = Timeline::replay(&self.faults);
        let slowest = end.slow_disks.values().copied().max().unwrap_or(0);
        AfterGst {
            all_up: end.down_agents() == 0 && end.clogged_links.is_empty() && !end.partitioned,
            sync_ms: self.storage.sync_ms.max(slowest),
        }
    }

    /// The configuration audit, with the design's weights of the cycled specialisations and
    /// `f = byzantine.count` when positive, else `f_max`.
    pub fn audit(&self) -> Audit {
        let n = self.agents.count as usize;
        let weights_milli = (0..n).map(|i| AgentSpecialization::cycled(i).default_weight_milli()).collect();
        let f = if self.byzantine.count > 0 { self.byzantine.count } else { self.f_max() };
        let input =
            AuditInput { weights_milli, threshold: self.engine_config().threshold, byzantine: Some(u64::from(f)) };
        // A parsed scenario has 1 ≤ n and f ≤ n, so this only fails on hand-edited fields.
        quorum::audit(&input).unwrap_or_else(|e| Audit {
            n: n as u64,
            f: u64::from(f),
            quorum: 0,
            threshold_count: 0,
            findings: vec![Finding { severity: Severity::Error, code: "invalid-committee", message: e.to_string() }],
        })
    }
}
