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

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
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
use toml::de::{DeTable, DeValue, Deserializer};
use toml::Spanned;

/// Most agents a scenario may have (active plus spares).
pub const MAX_AGENTS: u32 = 256;
/// Most vote sessions per run.
pub const MAX_SESSIONS: u64 = 100_000;
/// Most candidates per session.
pub const MAX_CANDIDATES: u32 = 256;
/// Most scenarios one `[sweep]` may expand to.
pub const MAX_SWEEP_COMBINATIONS: usize = 4_096;
/// The invariants `expect.invariant` may name (the oracle's names).
pub const INVARIANTS: [&str; 6] =
    ["agreement", "integrity", "external-validity", "unanimity-validity", "threshold", "liveness"];

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
    /// Timed faults, sorted by `at_ms` (stable: equal times keep file order).
    pub faults: Vec<Fault>,
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
    source: Arc<str>,
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

/// How Byzantine agents behave: consensus-core's strategies, by their kebab-case names.
pub use consensus_core::adversary::Strategy as ByzantineStrategy;

/// `[byzantine]`: how many agents are Byzantine, which, and how they behave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a [byzantine] table with count, strategy and agents")]
pub struct Byzantine {
    /// Byzantine agents, at most `agents.count` (default 0).
    pub count: u32,
    /// Their strategy (default `silent`).
    pub strategy: ByzantineStrategy,
    /// Which agents, by index; `None` means drawn from the seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<u32>>,
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
    /// With `safety = false`: the invariant that must be violated (one of [`INVARIANTS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invariant: Option<String>,
}

impl Default for Expect {
    fn default() -> Self {
        Expect { safety: true, liveness: None, liveness_bound_ms: 30_000, invariant: None }
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
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError::whole_file(path, format!("cannot read the scenario file: {e}")))?;
    parse(&text, path)
}

/// Parses scenario text; `path` names the file in errors and gives the default name. A
/// `[sweep]` is expanded once here so that every combination is known to be valid.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let scenario = build(text, path).map_err(|problem| problem.locate(text, path))?;
    if !scenario.sweep.is_empty() {
        scenario.expand()?;
    }
    Ok(scenario)
}

/// The scenario files named by `paths`: files as given, directories replaced by their `*.toml`
/// files sorted by name (not recursive).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut found = Vec::new();
    for path in paths {
        if !path.is_dir() {
            if !path.is_file() {
                return Err(ScenarioError::whole_file(path, "no such scenario file or directory".to_owned()));
            }
            found.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| ScenarioError::whole_file(path, format!("cannot list the directory: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| ScenarioError::whole_file(path, format!("cannot list the directory: {e}")))?;
            let file = entry.path();
            if file.is_file() && file.extension().is_some_and(|ext| ext == "toml") {
                files.push(file);
            }
        }
        if files.is_empty() {
            return Err(ScenarioError::whole_file(path, "the directory holds no *.toml scenario files".to_owned()));
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        found.extend(files);
    }
    Ok(found)
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
            pipeline: self.workload.concurrency,
            mutation: p.mutation,
            ..ProtocolConfig::default()
        }
    }

    /// The evaluator profile of `spec`: the seed default with the file's overrides.
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
    /// (Byzantine ones, agents still crashed or clogged, one per link still clogged) are at most
    /// [`Scenario::f_max`], no partition is left in effect, and `network.drop < 1`.
    pub fn default_liveness(&self) -> bool {
        let end = Timeline::replay(&self.faults);
        let faulty = u64::from(self.byzantine.count) + end.down_agents() + end.clogged_links.len() as u64;
        faulty <= u64::from(self.f_max()) && !end.partitioned && self.network.drop < 1.0
    }

    /// The configuration audit, with the seed weights of the cycled specialisations and
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

    /// The scenarios of the `[sweep]`: the cartesian product of its axes (keys in sorted order,
    /// the last varying fastest), each with its `(key, value)` labels. Each is the file with
    /// those keys overridden, validated, without a sweep, named `name[key=value,...]`. Without
    /// a sweep: the scenario itself with no labels. Works from the file's text, so fields
    /// edited after parsing are not carried over.
    pub fn expand(&self) -> Result<Vec<(SweepLabels, Scenario)>, ScenarioError> {
        if self.sweep.is_empty() {
            return Ok(vec![(Vec::new(), self.clone())]);
        }
        let fail = |problem: Problem| problem.locate(&self.source, &self.path);
        let mut base: toml::Table = toml::from_str(&self.source).map_err(|e| fail(Problem::toml(&e)))?;
        base.remove("sweep");
        let axes: Vec<(&String, &Vec<toml::Value>)> = self.sweep.iter().collect();
        let mut total: usize = 1;
        for (key, values) in &axes {
            if let Some(message) = check_sweep_key(key) {
                return Err(fail(Problem::at(sweep_path(key, None), message)));
            }
            if values.is_empty() {
                let message = format!("sweep \"{key}\" has no values: expected a non-empty array");
                return Err(fail(Problem::at(sweep_path(key, None), message)));
            }
            total = total.saturating_mul(values.len());
        }
        if total > MAX_SWEEP_COMBINATIONS {
            let message = format!(
                "the sweep has {total} combinations, more than {MAX_SWEEP_COMBINATIONS}: use fewer values per axis"
            );
            return Err(fail(Problem::at(vec![Seg::key("sweep")], message)));
        }
        let mut out = Vec::with_capacity(total);
        for combination in 0..total {
            let mut picks = Vec::with_capacity(axes.len());
            let mut rest = combination;
            for (key, values) in axes.iter().rev() {
                let index = rest % values.len();
                // Every axis was checked to be non-empty above, so the value exists.
                if let Some(value) = values.get(index) {
                    picks.push((key.as_str(), index, value));
                }
                rest /= values.len();
            }
            picks.reverse();
            out.push(self.combination(&base, &picks).map_err(fail)?);
        }
        Ok(out)
    }

    /// One sweep combination: `picks` are (key, value index, value).
    fn combination(
        &self,
        base: &toml::Table,
        picks: &[(&str, usize, &toml::Value)],
    ) -> Result<(SweepLabels, Scenario), Problem> {
        let labels: SweepLabels = picks.iter().map(|(key, _, value)| ((*key).to_owned(), label(value))).collect();
        let rendered_labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut table = base.clone();
        for (key, index, value) in picks {
            set_dotted(&mut table, key, (*value).clone()).map_err(|message| {
                Problem::at(sweep_path(key, Some(*index)), format!("sweep \"{key}\" cannot be applied: {message}"))
            })?;
        }
        let name = format!("{}[{}]", self.name, rendered_labels.join(","));
        table.insert("name".to_owned(), toml::Value::String(name));
        let text = toml::to_string(&table)
            .map_err(|e| Problem::at(vec![Seg::key("sweep")], format!("the swept scenario cannot be written: {e}")))?;
        let mut scenario = match build(&text, &self.path) {
            Ok(scenario) => scenario,
            Err(problem) => {
                let (_, message, path) = problem.resolve(&text);
                let (key, index) = picks
                    .iter()
                    .find(|(key, _, _)| related(key, &path))
                    .or_else(|| picks.first())
                    .map_or(("sweep", 0), |(key, index, _)| (*key, *index));
                let message = format!(
                    "sweep \"{key}\" (with {}) gives an invalid scenario: {message}",
                    rendered_labels.join(", ")
                );
                return Err(Problem::at(sweep_path(key, Some(index)), message));
            }
        };
        scenario.source = self.source.clone();
        Ok((labels, scenario))
    }
}

/// Dotted sweep keys may not be empty or address the sweep itself or the name; keys inside
/// arrays are refused when the value is applied (`set_dotted`).
fn check_sweep_key(key: &str) -> Option<String> {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Some(format!("sweep key \"{key}\" has an empty segment: expected keys like \"network.drop\""));
    }
    if matches!(segments.first(), Some(&"sweep") | Some(&"name")) {
        return Some(format!("sweep key \"{key}\" cannot be swept: sweep any key except name and sweep.*"));
    }
    None
}

fn sweep_path(key: &str, index: Option<usize>) -> Vec<Seg> {
    let mut path = vec![Seg::key("sweep"), Seg::key(key)];
    path.extend(index.map(Seg::Index));
    path
}

/// Whether an error at `path` concerns the dotted sweep `key` (either is a prefix of the other).
fn related(key: &str, path: &[Seg]) -> bool {
    !path.is_empty() && key.split('.').zip(path).all(|(segment, seg)| *seg == Seg::key(segment))
}

/// A sweep value as a label: strings without quotes, everything else as TOML.
fn label(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sets `a.b.c = value` in `table`, creating missing tables.
fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut segments: Vec<&str> = key.split('.').collect();
    let last = segments.pop().ok_or_else(|| "empty key".to_owned())?;
    let mut current = table;
    let mut walked = Vec::new();
    for segment in segments {
        walked.push(segment);
        let entry = current.entry(segment.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("{} is not a table", walked.join("."))),
        };
    }
    current.insert(last.to_owned(), value);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The file model and its validation.

/// The file as written: the public sections, plus faults in their flat form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a scenario file")]
struct ScenarioFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    agents: Agents,
    #[serde(default)]
    protocol: Protocol,
    #[serde(default)]
    workload: Workload,
    #[serde(default)]
    evaluator: Evaluators,
    #[serde(default)]
    byzantine: Byzantine,
    #[serde(default)]
    network: Network,
    #[serde(default)]
    faults: Vec<FaultEntry>,
    #[serde(default)]
    expect: Expect,
    #[serde(default)]
    sweep: BTreeMap<String, Vec<toml::Value>>,
}

/// A `[[faults]]` entry as written: every kind's fields, each optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[faults]] table with at_ms, kind and the kind's fields")]
struct FaultEntry {
    at_ms: u64,
    kind: FaultKind,
    groups: Option<Vec<Vec<u32>>>,
    one_way: Option<bool>,
    agent: Option<u32>,
    link: Option<[u32; 2]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum FaultKind {
    Partition,
    Heal,
    Crash,
    Restart,
    Clog,
    Unclog,
}

impl FaultKind {
    fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Heal => "heal",
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::Clog => "clog",
            FaultKind::Unclog => "unclog",
        }
    }

    /// The fields this kind takes besides `at_ms` and `kind`.
    fn fields(self) -> &'static [&'static str] {
        match self {
            FaultKind::Partition => &["groups", "one_way"],
            FaultKind::Heal => &[],
            FaultKind::Crash | FaultKind::Restart => &["agent"],
            FaultKind::Clog | FaultKind::Unclog => &["agent", "link"],
        }
    }
}

fn build(text: &str, path: &Path) -> Result<Scenario, Problem> {
    let doc = DeTable::parse(text).map_err(|e| Problem::syntax(&e))?;
    let file = ScenarioFile::deserialize(Deserializer::from(doc)).map_err(|e| Problem::toml(&e))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    file.validate(stem, path, text)
}

impl ScenarioFile {
    fn validate(self, stem: String, path: &Path, text: &str) -> Result<Scenario, Problem> {
        let name = match self.name {
            Some(name) => {
                check_name(&name)?;
                name
            }
            None if stem.is_empty() => "scenario".to_owned(),
            None => stem,
        };
        check_agents(&self.agents)?;
        check_protocol(&self.protocol, &self.agents)?;
        check_workload(&self.workload)?;
        check_evaluators(&self.evaluator)?;
        check_byzantine(&self.byzantine, &self.agents)?;
        check_network(&self.network)?;
        let faults = check_faults(self.faults, &self.agents)?;
        check_expect(&self.expect)?;
        Ok(Scenario {
            name,
            description: self.description,
            agents: self.agents,
            protocol: self.protocol,
            workload: self.workload,
            evaluator: self.evaluator,
            byzantine: self.byzantine,
            network: self.network,
            faults,
            expect: self.expect,
            sweep: self.sweep,
            path: path.to_path_buf(),
            source: Arc::from(text),
        })
    }
}

fn check_name(name: &str) -> Result<(), Problem> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        let message = format!(
            "name = {name:?} is not usable: expected a non-empty name on one line (or omit it to use the file name)"
        );
        return Err(Problem::at(vec![Seg::key("name")], message));
    }
    Ok(())
}

fn check_agents(agents: &Agents) -> Result<(), Problem> {
    within(u64::from(agents.count), 1, u64::from(MAX_AGENTS), &["agents", "count"], "agents")?;
    if agents.count.saturating_add(agents.spares) > MAX_AGENTS {
        let message = format!(
            "agents.spares = {} with agents.count = {} makes {} agents: expected at most {MAX_AGENTS} in all",
            agents.spares,
            agents.count,
            u64::from(agents.count) + u64::from(agents.spares)
        );
        return Err(Problem::at(path(&["agents", "spares"]), message));
    }
    Ok(())
}

fn check_protocol(p: &Protocol, agents: &Agents) -> Result<(), Problem> {
    if Ratio::from_f64(p.threshold).is_none() {
        let message = format!(
            "protocol.threshold = {} is not a threshold: expected a number above 0.0 and at most 1.0 (at least 0.000001), e.g. 0.66",
            p.threshold
        );
        return Err(Problem::at(path(&["protocol", "threshold"]), message));
    }
    probability(p.detector_threshold, &["protocol", "detector_threshold"])?;
    at_least(p.deadline_ms, 1, &["protocol", "deadline_ms"], "milliseconds")?;
    at_least(p.detector_window as u64, 1, &["protocol", "detector_window"], "votes")?;
    at_least(u64::from(p.exclude_after), 1, &["protocol", "exclude_after"], "offences")?;
    at_least(p.timeout_propose_ms, 1, &["protocol", "timeout_propose_ms"], "milliseconds")?;
    at_least(p.timeout_prevote_ms, 1, &["protocol", "timeout_prevote_ms"], "milliseconds")?;
    at_least(p.timeout_precommit_ms, 1, &["protocol", "timeout_precommit_ms"], "milliseconds")?;
    at_least(p.retransmit_ms, 1, &["protocol", "retransmit_ms"], "milliseconds")?;
    if p.replace && agents.spares == 0 {
        let message = "protocol.replace = true but agents.spares = 0: replacements activate spare agents, so set agents.spares ≥ 1 or replace = false".to_owned();
        return Err(Problem::at(path(&["protocol", "replace"]), message));
    }
    Ok(())
}

fn check_workload(w: &Workload) -> Result<(), Problem> {
    within(w.sessions, 1, MAX_SESSIONS, &["workload", "sessions"], "sessions")?;
    within(u64::from(w.candidates), 1, u64::from(MAX_CANDIDATES), &["workload", "candidates"], "candidates")?;
    at_least(w.concurrency, 1, &["workload", "concurrency"], "sessions")?;
    if !(0.0..=1.0).contains(&w.quality_gap) {
        let message = format!(
            "workload.quality_gap = {} is not a quality difference: expected a number between 0.0 and 1.0",
            w.quality_gap
        );
        return Err(Problem::at(path(&["workload", "quality_gap"]), message));
    }
    Ok(())
}

fn check_evaluators(e: &Evaluators) -> Result<(), Problem> {
    for spec in AgentSpecialization::CYCLE {
        let Some(profile) = e.spec(spec) else { continue };
        let name = spec.name();
        if let Some(noise) = profile.noise {
            probability(noise, &["evaluator", name, "noise"])?;
        }
        if let Some(latency) = profile.latency_ms {
            ascending(latency, &["evaluator", name, "latency_ms"])?;
        }
        if let Some([min, max]) = profile.confidence {
            for (i, value) in [min, max].into_iter().enumerate() {
                if !(0.0..=1.0).contains(&value) {
                    let message = format!(
                        "evaluator.{name}.confidence[{i}] = {value} is not a confidence: expected a number between 0.0 and 1.0"
                    );
                    return Err(Problem::at(
                        vec![Seg::key("evaluator"), Seg::key(name), Seg::key("confidence"), Seg::Index(i)],
                        message,
                    ));
                }
            }
            if min > max {
                let message = format!(
                    "evaluator.{name}.confidence = [{min}, {max}] is upside down: expected [min, max] with min ≤ max, e.g. [{max}, {min}]"
                );
                return Err(Problem::at(path(&["evaluator", name, "confidence"]), message));
            }
        }
    }
    Ok(())
}

fn check_byzantine(b: &Byzantine, agents: &Agents) -> Result<(), Problem> {
    if b.count > agents.count {
        let message = format!(
            "byzantine.count = {} is more than agents.count = {}: expected at most {} Byzantine agents (lower byzantine.count or raise agents.count)",
            b.count, agents.count, agents.count
        );
        return Err(Problem::at(path(&["byzantine", "count"]), message));
    }
    let Some(list) = &b.agents else { return Ok(()) };
    if list.len() != b.count as usize {
        let message = format!(
            "byzantine.agents lists {} agents but byzantine.count = {}: expected exactly byzantine.count indices",
            list.len(),
            b.count
        );
        return Err(Problem::at(path(&["byzantine", "agents"]), message));
    }
    let mut seen = BTreeSet::new();
    for (i, &agent) in list.iter().enumerate() {
        let at = vec![Seg::key("byzantine"), Seg::key("agents"), Seg::Index(i)];
        agent_index(agent, agents, at.clone(), &format!("byzantine.agents[{i}]"))?;
        if !seen.insert(agent) {
            return Err(Problem::at(
                at,
                format!("byzantine.agents lists agent {agent} twice: expected distinct indices"),
            ));
        }
    }
    Ok(())
}

fn check_network(n: &Network) -> Result<(), Problem> {
    probability(n.drop, &["network", "drop"])?;
    probability(n.duplicate, &["network", "duplicate"])?;
    ascending(n.latency_ms, &["network", "latency_ms"])?;
    let Some(tail) = &n.tail else { return Ok(()) };
    if !(tail.shape.is_finite() && tail.shape > 0.0) {
        let message =
            format!("network.tail.shape = {} is not a Pareto shape: expected a number above 0, e.g. 1.5", tail.shape);
        return Err(Problem::at(path(&["network", "tail", "shape"]), message));
    }
    at_least(tail.scale_ms, 1, &["network", "tail", "scale_ms"], "milliseconds")?;
    if tail.max_ms < tail.scale_ms {
        let message = format!(
            "network.tail.max_ms = {} is below scale_ms = {}: expected a cap of at least the scale",
            tail.max_ms, tail.scale_ms
        );
        return Err(Problem::at(path(&["network", "tail", "max_ms"]), message));
    }
    Ok(())
}

fn check_expect(e: &Expect) -> Result<(), Problem> {
    at_least(e.liveness_bound_ms, 1, &["expect", "liveness_bound_ms"], "milliseconds")?;
    let Some(invariant) = &e.invariant else { return Ok(()) };
    if e.safety {
        let message =
            "expect.invariant names the invariant that must be violated, so it needs expect.safety = false".to_owned();
        return Err(Problem::at(path(&["expect", "invariant"]), message));
    }
    if !INVARIANTS.contains(&invariant.as_str()) {
        let message =
            format!("expect.invariant = {invariant:?} is not an invariant: expected one of {}", INVARIANTS.join(", "));
        return Err(Problem::at(path(&["expect", "invariant"]), message));
    }
    Ok(())
}

/// Converts every entry, then sorts by time (stable) and checks crash/restart order.
fn check_faults(entries: Vec<FaultEntry>, agents: &Agents) -> Result<Vec<Fault>, Problem> {
    let mut faults = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        faults.push((index, fault(entry, index, agents)?));
    }
    faults.sort_by_key(|(_, fault)| fault.at_ms);
    let mut crashed = BTreeSet::new();
    for (index, fault) in &faults {
        let at = vec![Seg::key("faults"), Seg::Index(*index), Seg::key("agent")];
        match fault.action {
            FaultAction::Crash { agent } if !crashed.insert(agent) => {
                let message = format!(
                    "faults[{index}] crashes agent {agent} at {} ms, but it is already crashed then: restart it first",
                    fault.at_ms
                );
                return Err(Problem::at(at, message));
            }
            FaultAction::Restart { agent } if !crashed.remove(&agent) => {
                let message = format!("faults[{index}] restarts agent {agent} at {} ms, but it is not crashed then: expected a crash of agent {agent} earlier", fault.at_ms);
                return Err(Problem::at(at, message));
            }
            _ => {}
        }
    }
    Ok(faults.into_iter().map(|(_, fault)| fault).collect())
}

fn fault(entry: FaultEntry, index: usize, agents: &Agents) -> Result<Fault, Problem> {
    let kind = entry.kind;
    let key = |field: &str| vec![Seg::key("faults"), Seg::Index(index), Seg::key(field)];
    let present = [
        ("groups", entry.groups.is_some()),
        ("one_way", entry.one_way.is_some()),
        ("agent", entry.agent.is_some()),
        ("link", entry.link.is_some()),
    ];
    for (field, is_present) in present {
        if is_present && !kind.fields().contains(&field) {
            let takes = match kind.fields() {
                [] => "no other keys".to_owned(),
                fields => fields.join(", "),
            };
            let message = format!(
                "faults[{index}].{field} is not a key of a {} fault: it takes at_ms, kind and {takes}",
                kind.name()
            );
            return Err(Problem::at(key(field), message));
        }
    }
    let missing =
        |what: &str| Problem::at(key("kind"), format!("faults[{index}] is a {} fault and needs {what}", kind.name()));
    let agent =
        |agent: u32| agent_index(agent, agents, key("agent"), &format!("faults[{index}].agent")).map(|()| agent);
    let action = match kind {
        FaultKind::Partition => {
            let groups =
                entry.groups.ok_or_else(|| missing("groups = [[...], [...]], at least two groups of agent indices"))?;
            check_groups(&groups, index, agents)?;
            FaultAction::Partition { groups, one_way: entry.one_way.unwrap_or(false) }
        }
        FaultKind::Heal => FaultAction::Heal,
        FaultKind::Crash => {
            FaultAction::Crash { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::Restart => {
            FaultAction::Restart { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::Clog | FaultKind::Unclog => {
            let target = match (entry.agent, entry.link) {
                (Some(a), None) => ClogTarget::Agent(agent(a)?),
                (None, Some(link)) => ClogTarget::Link(check_link(link, index, agents)?),
                (Some(_), Some(_)) => {
                    let message =
                        format!("faults[{index}] has both agent and link: a {} takes exactly one of them", kind.name());
                    return Err(Problem::at(key("link"), message));
                }
                (None, None) => return Err(missing("either agent = <index> or link = [a, b]")),
            };
            if kind == FaultKind::Clog {
                FaultAction::Clog { target }
            } else {
                FaultAction::Unclog { target }
            }
        }
    };
    Ok(Fault { at_ms: entry.at_ms, action })
}

fn check_groups(groups: &[Vec<u32>], index: usize, agents: &Agents) -> Result<(), Problem> {
    let at = |rest: &[Seg]| {
        let mut p = vec![Seg::key("faults"), Seg::Index(index), Seg::key("groups")];
        p.extend_from_slice(rest);
        p
    };
    if groups.len() < 2 {
        let message = format!(
            "faults[{index}].groups has {} group(s): a partition needs at least two groups, e.g. [[0, 1], [2, 3, 4]]",
            groups.len()
        );
        return Err(Problem::at(at(&[]), message));
    }
    let mut seen = BTreeSet::new();
    for (g, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(Problem::at(
                at(&[Seg::Index(g)]),
                format!("faults[{index}].groups[{g}] is empty: expected at least one agent index"),
            ));
        }
        for (j, &agent) in group.iter().enumerate() {
            let here = at(&[Seg::Index(g), Seg::Index(j)]);
            agent_index(agent, agents, here.clone(), &format!("faults[{index}].groups[{g}][{j}]"))?;
            if !seen.insert(agent) {
                let message = format!("agent {agent} is in two groups of faults[{index}]: expected disjoint groups");
                return Err(Problem::at(here, message));
            }
        }
    }
    Ok(())
}

fn check_link(link: [u32; 2], index: usize, agents: &Agents) -> Result<[u32; 2], Problem> {
    for (i, agent) in link.into_iter().enumerate() {
        let at = vec![Seg::key("faults"), Seg::Index(index), Seg::key("link"), Seg::Index(i)];
        agent_index(agent, agents, at, &format!("faults[{index}].link[{i}]"))?;
    }
    if link[0] == link[1] {
        let at = vec![Seg::key("faults"), Seg::Index(index), Seg::key("link")];
        return Err(Problem::at(
            at,
            format!(
                "faults[{index}].link = [{0}, {0}] joins an agent to itself: expected two different agents",
                link[0]
            ),
        ));
    }
    Ok(link)
}

fn agent_index(agent: u32, agents: &Agents, at: Vec<Seg>, key: &str) -> Result<(), Problem> {
    if agent >= agents.count {
        let message = format!(
            "{key} = {agent} is not an agent: expected an index from 0 to {} (agents.count = {})",
            agents.count.saturating_sub(1),
            agents.count
        );
        return Err(Problem::at(at, message));
    }
    Ok(())
}

fn probability(value: f64, key: &[&str]) -> Result<(), Problem> {
    if (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    let message = format!("{} = {value} is not a probability: expected a number between 0.0 and 1.0", key.join("."));
    Err(Problem::at(path(key), message))
}

fn ascending([min, max]: [u64; 2], key: &[&str]) -> Result<(), Problem> {
    if min <= max {
        return Ok(());
    }
    let message = format!(
        "{} = [{min}, {max}] is upside down: expected [min, max] with min ≤ max, e.g. [{max}, {min}]",
        key.join(".")
    );
    Err(Problem::at(path(key), message))
}

fn at_least(value: u64, min: u64, key: &[&str], unit: &str) -> Result<(), Problem> {
    if value >= min {
        return Ok(());
    }
    Err(Problem::at(path(key), format!("{} = {value} is too small: expected at least {min} {unit}", key.join("."))))
}

fn within(value: u64, min: u64, max: u64, key: &[&str], unit: &str) -> Result<(), Problem> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(Problem::at(path(key), format!("{} = {value} is out of range: expected {min} to {max} {unit}", key.join("."))))
}

/// Replays the faults to the end of the run.
#[derive(Default)]
struct Timeline {
    crashed: BTreeSet<u32>,
    clogged_agents: BTreeSet<u32>,
    clogged_links: BTreeSet<[u32; 2]>,
    partitioned: bool,
}

impl Timeline {
    fn replay(faults: &[Fault]) -> Timeline {
        let mut t = Timeline::default();
        for fault in faults {
            match &fault.action {
                FaultAction::Partition { .. } => t.partitioned = true,
                FaultAction::Heal => t.partitioned = false,
                FaultAction::Crash { agent } => {
                    t.crashed.insert(*agent);
                }
                FaultAction::Restart { agent } => {
                    t.crashed.remove(agent);
                }
                FaultAction::Clog { target: ClogTarget::Agent(a) } => {
                    t.clogged_agents.insert(*a);
                }
                FaultAction::Unclog { target: ClogTarget::Agent(a) } => {
                    t.clogged_agents.remove(a);
                }
                FaultAction::Clog { target: ClogTarget::Link([a, b]) } => {
                    t.clogged_links.insert([*a.min(b), *a.max(b)]);
                }
                FaultAction::Unclog { target: ClogTarget::Link([a, b]) } => {
                    t.clogged_links.remove(&[*a.min(b), *a.max(b)]);
                }
            }
        }
        t
    }

    fn down_agents(&self) -> u64 {
        self.crashed.union(&self.clogged_agents).count() as u64
    }
}

// ---------------------------------------------------------------------------------------------
// Error positions.

/// One segment of a key path: `faults[2].agent` is `faults`, `2`, `agent`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn key(key: &str) -> Seg {
        Seg::Key(key.to_owned())
    }
}

fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::key(k)).collect()
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) if k.contains('.') => out.push_str(&format!(".\"{k}\"")),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// An error before it has a position: at a span of the text, or at a key path.
#[derive(Debug)]
struct Problem {
    at: At,
    message: String,
}

#[derive(Debug)]
enum At {
    /// A span from the TOML parser or deserialiser; `syntax` when the text did not parse.
    Span { span: Range<usize>, syntax: bool },
    /// A key path of the document.
    Path(Vec<Seg>),
}

impl Problem {
    fn at(path: Vec<Seg>, message: String) -> Problem {
        Problem { at: At::Path(path), message }
    }

    fn syntax(e: &toml::de::Error) -> Problem {
        Problem { at: At::Span { span: e.span().unwrap_or(0..0), syntax: true }, message: e.message().to_owned() }
    }

    fn toml(e: &toml::de::Error) -> Problem {
        Problem { at: At::Span { span: e.span().unwrap_or(0..0), syntax: false }, message: e.message().to_owned() }
    }

    /// The span, the full message, and the key path of the problem in `text`.
    fn resolve(self, text: &str) -> (Range<usize>, String, Vec<Seg>) {
        let doc = DeTable::parse(text).ok();
        match self.at {
            At::Span { span, syntax: true } => {
                (span, format!("TOML syntax error: {}; see https://toml.io for the syntax", self.message), Vec::new())
            }
            At::Span { span, syntax: false } => {
                let path = doc.as_ref().map(|d| path_at_span(d, &span)).unwrap_or_default();
                let message = explain(&self.message, &path);
                (span, message, path)
            }
            At::Path(path) => {
                let span = doc.as_ref().map(|d| span_of_path(d, &path)).unwrap_or(0..0);
                (span, self.message, path)
            }
        }
    }

    fn locate(self, text: &str, file: &Path) -> ScenarioError {
        let (span, message, _) = self.resolve(text);
        let (line, column) = line_column(text, span.start);
        ScenarioError { file: file.to_path_buf(), line, column, message }
    }
}

/// A deserialiser message with the key it concerns and a hint at the fix.
fn explain(message: &str, path: &[Seg]) -> String {
    let key = render_path(path);
    let message = message
        .replace("expected u64", "expected a whole number ≥ 0")
        .replace("expected u32", "expected a whole number ≥ 0")
        .replace("expected usize", "expected a whole number ≥ 0")
        .replace("expected f64", "expected a number");
    let hint = if message.starts_with("unknown field") {
        "; remove the key or correct its spelling"
    } else if message.starts_with("unknown variant") {
        "; use one of the names listed"
    } else if message.starts_with("missing field") {
        "; add it"
    } else if message.starts_with("invalid type: map") && key.starts_with("sweep") {
        "; quote dotted sweep keys: \"network.drop\" = [0.0, 0.1]"
    } else {
        ""
    };
    if key.is_empty() {
        format!("{message}{hint}")
    } else {
        format!("{key}: {message}{hint}")
    }
}

/// The span of the value at `path`, or of its deepest existing ancestor (a key the file omits
/// is reported at the table that would hold it; an omitted table at the start of the file).
fn span_of_path(doc: &Spanned<DeTable<'_>>, path: &[Seg]) -> Range<usize> {
    let mut best = 0..0;
    let mut current: Option<&DeValue<'_>> = None;
    for seg in path {
        let next = match (current, seg) {
            (None, Seg::Key(k)) => doc.get_ref().get(k.as_str()),
            (Some(value), Seg::Key(k)) => value.get(k.as_str()),
            (Some(value), Seg::Index(i)) => value.get(*i),
            (None, Seg::Index(_)) => None,
        };
        let Some(next) = next else { break };
        best = next.span();
        current = Some(next.get_ref());
    }
    best
}

/// The key path of the key or value at `span`: the innermost match wins.
fn path_at_span(doc: &Spanned<DeTable<'_>>, span: &Range<usize>) -> Vec<Seg> {
    let mut best: Option<(usize, Vec<Seg>)> = None;
    let mut prefix = Vec::new();
    walk_table(doc.get_ref(), span, &mut prefix, &mut best);
    best.map(|(_, path)| path).unwrap_or_default()
}

fn walk_table(table: &DeTable<'_>, span: &Range<usize>, prefix: &mut Vec<Seg>, best: &mut Option<(usize, Vec<Seg>)>) {
    for (key, value) in table.iter() {
        prefix.push(Seg::Key(key.get_ref().to_string()));
        consider(&key.span(), span, prefix, best);
        walk_value(value, span, prefix, best);
        prefix.pop();
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    prefix: &mut Vec<Seg>,
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    consider(&value.span(), span, prefix, best);
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, span, prefix, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                walk_value(item, span, prefix, best);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn consider(candidate: &Range<usize>, span: &Range<usize>, prefix: &[Seg], best: &mut Option<(usize, Vec<Seg>)>) {
    let contains = candidate.start <= span.start && span.end <= candidate.end;
    let width = candidate.end - candidate.start;
    if contains && best.as_ref().is_none_or(|(w, _)| width <= *w) {
        *best = Some((width, prefix.to_vec()));
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"name = "one-equivocator"            # defaults to the file stem
description = "..."
[agents]
count = 5                           # specializations cycle retriever, analyzer, validator, reranker, monitor
[protocol]
threshold = 0.66
deadline_ms = 500
fallback = "none"                   # none | simple-majority
detector = "mean-deviation"         # mean-deviation | median-mad | none
mutation = "none"                   # none | quorum-one-short | no-locking | skip-signature-check | local-timeout-fallback
[workload]
sessions = 10                       # vote sessions per run
candidates = 3
[byzantine]
count = 1                           # which agents: drawn from the seed
strategy = "equivocate"
[network]
drop = 0.05
latency_ms = [1, 50]
[[faults]]
at_ms = 100
kind = "crash"                      # partition | heal | crash | restart | clog | unclog
agent = 2
[[faults]]
at_ms = 600
kind = "partition"
groups = [[0, 1], [2, 3, 4]]
[[faults]]
at_ms = 1200
kind = "heal"
[expect]
safety = true                       # false: the scenario passes only if a violation is found
liveness = true                     # true: every honest agent must decide every session
"#;

    fn ok(text: &str) -> Scenario {
        parse(text, Path::new("scenarios/x.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> ScenarioError {
        match parse(text, Path::new("scenarios/x.toml")) {
            Ok(s) => panic!("expected an error, parsed {s:?}"),
            Err(e) => e,
        }
    }

    fn suite_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
    }

    #[test]
    fn every_bundled_scenario_loads_and_validates() {
        let files = discover(&[suite_dir()]).unwrap_or_else(|e| panic!("{e}"));
        assert!(files.len() >= 22, "only {} bundled scenarios", files.len());
        let names: Vec<String> =
            files.iter().filter_map(|f| f.file_stem()).map(|s| s.to_string_lossy().into_owned()).collect();
        let required = [
            "baseline",
            "byz-silent",
            "byz-vote-worst",
            "byz-random",
            "byz-equivocate",
            "byz-inflate-confidence",
            "byz-delay-to-deadline",
            "byz-collude",
            "byz-adaptive",
            "byz-bad-proposer",
            "byz-replay",
            "byz-forge",
            "net-drops",
            "net-latency-tail",
            "partition-heal",
            "crash-restart",
            "two-byzantine-of-five",
            "n4-fmax",
            "n7-fmax",
            "n10-fmax",
            "n31-fmax",
            "seed-fallback",
            "mut-quorum-one-short",
            "mut-no-locking",
            "mut-skip-signature-check",
            "mut-local-timeout-fallback",
            "sweep-drop-byzantine",
        ];
        for name in required {
            assert!(names.iter().any(|n| n == name), "scenarios/{name}.toml is missing");
        }
        for file in &files {
            let s = load(file).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.description.is_empty() && !s.description.contains('\n'), "{}: one-line description", s.name);
            assert!(s.workload.sessions <= 20, "{}: keep the suite fast", s.name);
            assert_eq!(
                s.expect.safety,
                s.protocol.mutation == Mutation::None,
                "{}: mutations expect a violation",
                s.name
            );
            if s.protocol.mutation != Mutation::None {
                assert!(s.expect.invariant.is_some(), "{}: name the invariant", s.name);
            }
            for (_, expanded) in s.expand().unwrap_or_else(|e| panic!("{e}")) {
                assert!(expanded.sweep.is_empty());
            }
        }
    }

    #[test]
    fn bundled_scenarios_say_what_they_exercise() {
        let load_named = |name: &str| load(&suite_dir().join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"));
        for strategy in ByzantineStrategy::ALL {
            let s = load_named(&format!("byz-{strategy}"));
            assert_eq!(s.byzantine.strategy, strategy);
            assert!(s.promises_liveness(), "{}", s.name);
        }
        let collude = load_named("byz-collude");
        assert_eq!((collude.agents.count, collude.byzantine.count), (7, 2));
        let halted = load_named("two-byzantine-of-five");
        assert!(halted.expect.safety && !halted.promises_liveness());
        assert!(!halted.audit().is_sound());
        for (n, f) in [(4, 1), (7, 2), (10, 3), (31, 10)] {
            let s = load_named(&format!("n{n}-fmax"));
            assert_eq!((s.agents.count, s.byzantine.count, s.f_max()), (n, f, f));
            // Counted per agent the committee is sound; by weight 66% is not for every n (n = 7).
            let audit = s.audit();
            let count_errors =
                audit.findings.iter().filter(|f| f.severity == Severity::Error && f.code.starts_with("count-")).count();
            assert_eq!(count_errors, 0, "{audit}");
        }
        let fallback = load_named("seed-fallback");
        assert_eq!(fallback.protocol.fallback, FallbackPolicy::SimpleMajority);
        assert!(fallback.faults.iter().any(|f| f.at_ms > fallback.protocol.deadline_ms + 100));
        for (name, mutation, invariant) in [
            ("mut-quorum-one-short", Mutation::QuorumOneShort, "agreement"),
            ("mut-no-locking", Mutation::NoLocking, "agreement"),
            ("mut-skip-signature-check", Mutation::SkipSignatureCheck, "external-validity"),
            ("mut-local-timeout-fallback", Mutation::LocalTimeoutFallback, "agreement"),
        ] {
            let s = load_named(name);
            assert_eq!(s.protocol.mutation, mutation);
            assert_eq!(s.expect.invariant.as_deref(), Some(invariant));
        }
        assert_eq!(load_named("mut-skip-signature-check").byzantine.strategy, ByzantineStrategy::Forge);
    }

    #[test]
    fn the_issue_example_parses() {
        let s = ok(ISSUE_EXAMPLE);
        assert_eq!(s.name, "one-equivocator");
        assert_eq!(s.agents.count, 5);
        assert_eq!(s.byzantine.strategy, ByzantineStrategy::Equivocate);
        assert_eq!(s.network.drop, 0.05);
        assert_eq!(s.network.latency_ms, [1, 50]);
        assert_eq!(s.faults.len(), 3);
        assert_eq!(s.faults[0].action, FaultAction::Crash { agent: 2 });
        assert_eq!(
            s.faults[1].action,
            FaultAction::Partition { groups: vec![vec![0, 1], vec![2, 3, 4]], one_way: false }
        );
        assert_eq!(s.faults[2], Fault { at_ms: 1200, action: FaultAction::Heal });
        assert!(s.expect.safety && s.promises_liveness());
    }

    /// (text, line, column, substrings of the message)
    type Case = (&'static str, usize, usize, &'static [&'static str]);

    #[test]
    fn invalid_files_point_at_the_offending_value() {
        let cases: &[Case] = &[
            (
                "[network]\ndrop = 1.7\n",
                2,
                8,
                &["network.drop = 1.7 is not a probability: expected a number between 0.0 and 1.0"],
            ),
            ("[network]\nlatency_ms = [50, 1]\n", 2, 14, &["network.latency_ms = [50, 1] is upside down", "min ≤ max"]),
            (
                "[agents]\ncount = 5\n[byzantine]\ncount = 6\n",
                4,
                9,
                &["byzantine.count = 6 is more than agents.count = 5", "at most 5"],
            ),
            ("[byzantine]\ncount = 6\n", 2, 9, &["agents.count = 5"]),
            (
                "[network]\ndorp = 0.1\n",
                2,
                1,
                &["network.dorp: unknown field `dorp`", "`drop`", "`latency_ms`", "`tail`", "`duplicate`", "spelling"],
            ),
            (
                "[byzantine]\ncount = 1\nstrategy = \"vote-wurst\"\n",
                3,
                12,
                &["byzantine.strategy: unknown variant `vote-wurst`", "`vote-worst`", "`forge`"],
            ),
            (
                "[[faults]]\nat_ms = 100\nkind = \"crash\"\nagent = 7\n",
                4,
                9,
                &["faults[0].agent = 7 is not an agent: expected an index from 0 to 4"],
            ),
            ("[network\ndrop = 0.1\n", 1, 9, &["TOML syntax error", "unclosed table"]),
            ("drop = 0.1\n", 1, 1, &["unknown field `drop`", "`network`"]),
            ("[network]\ndrop = \"high\"\n", 2, 8, &["network.drop: invalid type: string \"high\""]),
            ("[agents]\ncount = 0\n", 2, 9, &["agents.count = 0 is out of range: expected 1 to 256"]),
            ("[protocol]\nthreshold = 0.0\n", 2, 13, &["protocol.threshold = 0 is not a threshold"]),
            ("[protocol]\nthreshold = nan\n", 2, 13, &["protocol.threshold = NaN"]),
            ("[protocol]\nreplace = true\n", 2, 11, &["agents.spares = 0"]),
            ("[protocol]\nmutation = \"no-locks\"\n", 2, 12, &["unknown variant `no-locks`", "`no-locking`"]),
            ("[workload]\nsessions = 100001\n", 2, 12, &["workload.sessions = 100001 is out of range"]),
            ("[workload]\nquality_gap = -0.1\n", 2, 15, &["workload.quality_gap = -0.1"]),
            ("[evaluator.monitor]\nconfidence = [0.9, 0.7]\n", 2, 14, &["evaluator.monitor.confidence = [0.9, 0.7] is upside down"]),
            ("[evaluator.monitor]\nconfidence = [0.5, 1.2]\n", 2, 20, &["evaluator.monitor.confidence[1] = 1.2"]),
            ("[evaluator.critic]\nnoise = 0.1\n", 1, 12, &["evaluator.critic: unknown field `critic`", "`retriever`"]),
            ("[byzantine]\ncount = 2\nagents = [1]\n", 3, 10, &["byzantine.agents lists 1 agents but byzantine.count = 2"]),
            ("[byzantine]\ncount = 2\nagents = [1, 1]\n", 3, 14, &["lists agent 1 twice"]),
            ("[byzantine]\ncount = 1\nagents = [5]\n", 3, 11, &["byzantine.agents[0] = 5 is not an agent"]),
            ("[network]\ntail = { kind = \"pareto\", shape = 0.0 }\n", 2, 35, &["network.tail.shape = 0 is not a Pareto shape"]),
            ("[network]\ntail = { kind = \"pareto\", scale_ms = 50, max_ms = 10 }\n", 2, 51, &["network.tail.max_ms = 10 is below scale_ms = 50"]),
            ("[network]\ntail = { scale_ms = 5 }\n", 2, 8, &["network.tail: missing field `kind`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"crsh\"\n", 3, 8, &["faults[0].kind: unknown variant `crsh`", "`partition`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"crash\"\nagnt = 2\n", 4, 1, &["faults[0].agnt: unknown field `agnt`", "`agent`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"heal\"\nagent = 2\n", 4, 9, &["faults[0].agent is not a key of a heal fault", "no other keys"]),
            ("[[faults]]\nkind = \"heal\"\n", 1, 1, &["missing field `at_ms`"]),
            ("[[faults]]\nat_ms = 1\nkind = \"crash\"\n", 3, 8, &["faults[0] is a crash fault and needs agent = <index>"]),
            ("[[faults]]\nat_ms = 1\nkind = \"clog\"\nagent = 1\nlink = [0, 1]\n", 5, 8, &["both agent and link"]),
            ("[[faults]]\nat_ms = 1\nkind = \"clog\"\nlink = [2, 2]\n", 4, 8, &["joins an agent to itself"]),
            ("[[faults]]\nat_ms = 1\nkind = \"partition\"\ngroups = [[0, 1]]\n", 4, 10, &["at least two groups"]),
            ("[[faults]]\nat_ms = 1\nkind = \"partition\"\ngroups = [[0, 1], [1, 2]]\n", 4, 20, &["agent 1 is in two groups"]),
            ("[[faults]]\nat_ms = 1\nkind = \"partition\"\ngroups = [[0], []]\n", 4, 16, &["faults[0].groups[1] is empty"]),
            (
                "[[faults]]\nat_ms = 900\nkind = \"restart\"\nagent = 1\n[[faults]]\nat_ms = 1000\nkind = \"crash\"\nagent = 1\n",
                4,
                9,
                &["faults[0] restarts agent 1 at 900 ms, but it is not crashed then"],
            ),
            ("[expect]\ninvariant = \"agreement\"\n", 2, 13, &["needs expect.safety = false"]),
            ("[expect]\nsafety = false\ninvariant = \"agrement\"\n", 3, 13, &["not an invariant", "external-validity"]),
            ("name = \"\"\n", 1, 8, &["name = \"\" is not usable"]),
        ];
        for (text, line, column, needles) in cases {
            let e = err(text);
            assert_eq!((e.line, e.column), (*line, *column), "{text:?} → {e}");
            for needle in *needles {
                assert!(e.message.contains(needle), "{text:?}: {:?} lacks {needle:?}", e.message);
            }
            assert_eq!(e.to_string(), format!("scenarios/x.toml:{line}:{column}: {}", e.message));
        }
    }

    #[test]
    fn defaults_and_the_file_stem() {
        let s = parse("", Path::new("some/dir/my-scenario.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.name, "my-scenario");
        assert_eq!(s.description, "");
        assert_eq!(s.agents, Agents { count: 5, spares: 0 });
        assert_eq!(s.protocol, Protocol::default());
        assert_eq!(s.workload, Workload { sessions: 10, candidates: 3, concurrency: 1, quality_gap: 0.3 });
        assert_eq!(s.byzantine, Byzantine { count: 0, strategy: ByzantineStrategy::Silent, agents: None });
        assert_eq!(s.network, Network { drop: 0.0, latency_ms: [1, 10], tail: None, duplicate: 0.0 });
        assert_eq!(s.expect, Expect { safety: true, liveness: None, liveness_bound_ms: 30_000, invariant: None });
        assert!(s.faults.is_empty() && s.sweep.is_empty());
        assert!(s.promises_liveness());
        let tail = ok("[network]\ntail = { kind = \"pareto\" }\n").network.tail;
        assert_eq!(tail, Some(LatencyTail { kind: TailKind::Pareto, scale_ms: 5, shape: 1.5, max_ms: 2_000 }));
    }

    #[test]
    fn liveness_default_follows_the_fault_assumption() {
        let cases = [
            ("", true),
            ("[byzantine]\ncount = 1\n", true),
            ("[byzantine]\ncount = 2\n", false),
            ("[agents]\ncount = 7\n[byzantine]\ncount = 2\n", true),
            ("[[faults]]\nat_ms = 5\nkind = \"partition\"\ngroups = [[0], [1]]\n", false),
            ("[[faults]]\nat_ms = 5\nkind = \"partition\"\ngroups = [[0], [1]]\n[[faults]]\nat_ms = 9\nkind = \"heal\"\n", true),
            // A heal written before the partition but happening earlier does not count.
            ("[[faults]]\nat_ms = 1\nkind = \"heal\"\n[[faults]]\nat_ms = 5\nkind = \"partition\"\ngroups = [[0], [1]]\n", false),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 0\n", false),
            ("[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 0\n", true),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 0\n[[faults]]\nat_ms = 6\nkind = \"restart\"\nagent = 0\n", true),
            ("[byzantine]\ncount = 1\n[[faults]]\nat_ms = 5\nkind = \"clog\"\nlink = [0, 1]\n", false),
            ("[network]\ndrop = 1.0\n", false),
            ("[byzantine]\ncount = 2\n[expect]\nliveness = true\n", true),
            ("[expect]\nliveness = false\n", false),
        ];
        for (text, live) in cases {
            assert_eq!(ok(text).promises_liveness(), live, "{text:?}");
        }
    }

    #[test]
    fn faults_are_sorted_stably_by_time() {
        let s = ok("[[faults]]\nat_ms = 900\nkind = \"heal\"\n\
                    [[faults]]\nat_ms = 100\nkind = \"clog\"\nagent = 3\n\
                    [[faults]]\nat_ms = 100\nkind = \"crash\"\nagent = 1\n\
                    [[faults]]\nat_ms = 50\nkind = \"unclog\"\nlink = [4, 0]\n");
        let order: Vec<(u64, &FaultAction)> = s.faults.iter().map(|f| (f.at_ms, &f.action)).collect();
        assert_eq!(
            order,
            vec![
                (50, &FaultAction::Unclog { target: ClogTarget::Link([4, 0]) }),
                (100, &FaultAction::Clog { target: ClogTarget::Agent(3) }),
                (100, &FaultAction::Crash { agent: 1 }),
                (900, &FaultAction::Heal),
            ]
        );
    }

    const SWEEP: &str = "[byzantine]\nstrategy = \"silent\"\n[sweep]\n\"byzantine.count\" = [0, 1, 2]\n\"network.drop\" = [0.0, 0.05, 0.1, 0.2]\n";

    #[test]
    fn sweep_expands_to_the_cartesian_product() {
        let s = parse(SWEEP, Path::new("scenarios/sweep.toml")).unwrap_or_else(|e| panic!("{e}"));
        let runs = s.expand().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(runs.len(), 12);
        let (labels, first) = &runs[0];
        assert_eq!(
            labels,
            &vec![("byzantine.count".to_owned(), "0".to_owned()), ("network.drop".to_owned(), "0.0".to_owned())]
        );
        assert_eq!(first.name, "sweep[byzantine.count=0,network.drop=0.0]");
        let (labels, sixth) = &runs[5];
        assert_eq!(labels[0].1, "1");
        assert_eq!(labels[1].1, "0.05");
        assert_eq!(sixth.name, "sweep[byzantine.count=1,network.drop=0.05]");
        assert_eq!((sixth.byzantine.count, sixth.network.drop), (1, 0.05));
        assert_eq!(sixth.byzantine.strategy, ByzantineStrategy::Silent);
        for (labels, run) in &runs {
            assert!(run.sweep.is_empty());
            assert_eq!(run.path, Path::new("scenarios/sweep.toml"));
            assert_eq!(run.promises_liveness(), run.byzantine.count <= 1, "{labels:?}");
            let again = run.expand().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again.len(), 1);
            assert!(again[0].0.is_empty());
        }
        let drops: Vec<f64> = runs.iter().map(|(_, r)| r.network.drop).collect();
        assert_eq!(drops[..4], [0.0, 0.05, 0.1, 0.2]);
        let bundled = load(&suite_dir().join("sweep-drop-byzantine.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bundled.expand().map(|r| r.len()).unwrap_or(0), 12);
        assert_eq!(ok("").expand().map(|r| r.len()).unwrap_or(0), 1);
    }

    #[test]
    fn invalid_sweep_values_name_the_sweep_key() {
        let cases: &[Case] = &[
            (
                "[sweep]\n\"network.drop\" = [0.1, 1.7]\n",
                2,
                24,
                &["sweep \"network.drop\"", "network.drop = 1.7 is not a probability"],
            ),
            (
                "[sweep]\n\"agents.count\" = [5, 4]\n\"byzantine.count\" = [2, 6]\n",
                3,
                25,
                &["sweep \"byzantine.count\"", "agents.count=5, byzantine.count=6", "byzantine.count = 6 is more than"],
            ),
            ("[sweep]\n\"netwrk.drop\" = [0.1]\n", 2, 18, &["sweep \"netwrk.drop\"", "unknown field `netwrk`"]),
            (
                "[sweep]\n\"byzantine.strategy\" = [\"silent\", \"lie\"]\n",
                2,
                35,
                &["sweep \"byzantine.strategy\"", "unknown variant `lie`"],
            ),
            ("[sweep]\n\"network.drop\" = []\n", 2, 18, &["sweep \"network.drop\" has no values"]),
            ("[sweep]\n\"name\" = [\"a\"]\n", 2, 10, &["cannot be swept"]),
            ("[sweep]\n\"network.drop.x\" = [1]\n", 2, 21, &["network.drop: invalid type: map, expected a number"]),
            ("[network]\ndrop = 0.1\n[sweep]\n\"network.drop.x\" = [1]\n", 4, 21, &["network.drop is not a table"]),
            ("[sweep]\nnetwork.drop = [0.1]\n", 2, 1, &["sweep.network", "quote dotted sweep keys"]),
        ];
        for (text, line, column, needles) in cases {
            let e = err(text);
            assert_eq!((e.line, e.column), (*line, *column), "{text:?} → {e}");
            for needle in *needles {
                assert!(e.message.contains(needle), "{text:?}: {:?} lacks {needle:?}", e.message);
            }
        }
    }

    #[test]
    fn engine_and_protocol_configs_follow_the_file() {
        let s = ok("[agents]\ncount = 7\nspares = 2\n\
                    [protocol]\nthreshold = 0.75\ndeadline_ms = 800\nfallback = \"simple-majority\"\n\
                    detector = \"median-mad\"\nmutation = \"no-locking\"\nagreement_basis = \"weight\"\n\
                    conflict_policy = \"escalate\"\ndetector_threshold = 0.25\ndetector_window = 40\n\
                    exclude_after = 2\nquarantine_sessions = 4\nreplace = true\nearly_unanimous = false\n\
                    vote_collect_ms = 120\ntimeout_propose_ms = 300\ntimeout_prevote_ms = 60\n\
                    timeout_precommit_ms = 70\ntimeout_delta_ms = 25\nretransmit_ms = 90\n\
                    [workload]\nconcurrency = 3\n");
        let e = s.engine_config();
        assert_eq!(e.threshold, Ratio::new(3, 4).unwrap_or(Ratio::HALF));
        assert_eq!(e.deadline_ms, 800);
        assert_eq!(e.fallback, FallbackPolicy::SimpleMajority);
        assert_eq!(
            e.detector,
            DetectorConfig { kind: DetectorKind::MedianMad, threshold: Ppm::saturating(250_000), window: 40 }
        );
        assert_eq!(e.quarantine, QuarantineConfig { sessions: 4, exclude_after: 2, min_active: 7, replace: true });
        assert_eq!(e.agreement_basis, AgreementBasis::Weight);
        assert_eq!(e.conflict_policy, ConflictPolicy::Escalate);
        assert!(!e.early_unanimous);
        assert_eq!(e.cache, EngineConfig::default().cache);
        let p = s.protocol_config();
        assert_eq!(
            (p.vote_collect_ms, p.timeout_propose_ms, p.timeout_prevote_ms, p.timeout_precommit_ms),
            (120, 300, 60, 70)
        );
        assert_eq!((p.timeout_delta_ms, p.retransmit_ms, p.pipeline, p.mutation), (25, 90, 3, Mutation::NoLocking));
        assert_eq!(p.client, ProtocolConfig::default().client);

        let d = ok("");
        let engine = d.engine_config();
        assert_eq!(engine.threshold, Ratio::SEED_THRESHOLD);
        assert_eq!(engine.detector, EngineConfig::default().detector);
        assert_eq!(d.protocol_config(), ProtocolConfig::default());
        let audit = d.audit();
        assert_eq!((audit.n, audit.f, audit.quorum), (5, 1, 4));
        assert!(audit.is_sound(), "{audit}");
    }

    #[test]
    fn evaluator_overrides_keep_the_other_seed_defaults() {
        let s = ok(
            "[evaluator.monitor]\nnoise = 0.25\n[evaluator.retriever]\nlatency_ms = [1, 2]\nconfidence = [0.5, 0.6]\n",
        );
        let monitor = s.evaluator_profile(AgentSpecialization::Monitor);
        let seed_monitor = EvaluatorProfile::seed_default(AgentSpecialization::Monitor);
        assert_eq!(monitor.noise, Ppm::saturating(250_000));
        assert_eq!((monitor.latency_ms, monitor.confidence), (seed_monitor.latency_ms, seed_monitor.confidence));
        let retriever = s.evaluator_profile(AgentSpecialization::Retriever);
        assert_eq!(retriever.latency_ms, (1, 2));
        assert_eq!(retriever.confidence, (Ppm::saturating(500_000), Ppm::saturating(600_000)));
        assert_eq!(retriever.noise, EvaluatorProfile::seed_default(AgentSpecialization::Retriever).noise);
        for spec in [AgentSpecialization::Analyzer, AgentSpecialization::Validator, AgentSpecialization::Reranker] {
            assert_eq!(s.evaluator_profile(spec), EvaluatorProfile::seed_default(spec));
        }
    }

    #[test]
    fn a_scenario_written_back_reads_the_same() {
        for file in discover(&[suite_dir()]).unwrap_or_else(|e| panic!("{e}")) {
            let s = load(&file).unwrap_or_else(|e| panic!("{e}"));
            let text = toml::to_string(&s).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let back = parse(&text, &file).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(toml::to_string(&back).ok(), Some(text), "{}", s.name);
        }
    }

    #[test]
    fn the_examples_in_the_reference_parse() {
        let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scenarios.md");
        let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let blocks: Vec<&str> = text.split("```toml\n").skip(1).filter_map(|rest| rest.split("```").next()).collect();
        assert!(blocks.len() >= 2, "docs/scenarios.md has no toml examples");
        for block in blocks {
            let s = parse(block, Path::new("docs/example.toml")).unwrap_or_else(|e| panic!("{e}\n{block}"));
            assert!(s.expand().is_ok());
        }
    }

    #[test]
    fn discover_sorts_directories_and_reports_missing_paths() {
        let files = discover(&[suite_dir()]).unwrap_or_else(|e| panic!("{e}"));
        let mut sorted = files.clone();
        sorted.sort();
        assert_eq!(files, sorted);
        let single = suite_dir().join("baseline.toml");
        assert_eq!(discover(std::slice::from_ref(&single)).ok(), Some(vec![single]));
        let missing = PathBuf::from("no/such/scenario.toml");
        let e = discover(std::slice::from_ref(&missing)).err().unwrap_or_else(|| panic!("missing path accepted"));
        assert_eq!(e.to_string(), "no/such/scenario.toml: no such scenario file or directory");
        assert!(load(&missing).is_err());
    }

    #[test]
    fn no_input_panics_and_every_error_has_a_position() {
        // Every prefix of a full file, and every single-byte corruption of its key characters.
        let text = ISSUE_EXAMPLE;
        let mut inputs: Vec<String> =
            (0..=text.len()).filter(|&i| text.is_char_boundary(i)).map(|i| text[..i].to_owned()).collect();
        for (i, c) in text.char_indices().filter(|(_, c)| matches!(c, '=' | '[' | ']' | '"' | ',' | '0'..='9')) {
            for replacement in ["", "x", "-", "9"] {
                inputs.push(format!("{}{replacement}{}", &text[..i], &text[i + c.len_utf8()..]));
            }
        }
        for input in inputs {
            if let Err(e) = parse(&input, Path::new("f.toml")) {
                assert!(e.line >= 1 && e.column >= 1, "{e}");
                assert!(!e.message.is_empty());
            }
        }
    }
}
