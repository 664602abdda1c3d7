//! Scenario generation: run `index` of master seed `m` is a pure function of (envelope, m,
//! index). Every generated scenario is written as ordinary scenario TOML (only the keys that
//! differ from the defaults) and parsed by [`scenario::parse`], so it is a valid scenario file
//! by construction and can be written out and run with `bftsim run`.
//!
//! Modes (`[modes]` weights, assigned by index so the split is exact and needs no state):
//! - **swarm** (Groce et al., ISSTA 2012): every fault family of the envelope, each switched
//!   off with probability `swarm.off`, so families that suppress bugs (constant loss hides an
//!   equivocation split) are absent in some runs;
//! - **twins** (Bano et al., OPODIS 2021): one Byzantine agent runs as two honest copies under
//!   one key; the partition of every early round of every session places the copies apart
//!   (a partition also cuts the decision certificates of its round). Committees of the first
//!   `twins.sizes` entry are enumerated in session 0 (twin position × one partition per
//!   round), other sessions and sizes sampled;
//! - **byzzfuzz** (Winter et al., OOPSLA 2023): one Byzantine agent runs the honest code and
//!   its messages of c chosen rounds are mutated for a random subset of receivers; d chosen
//!   rounds are partitioned at random.

use std::collections::BTreeSet;
use std::path::Path;

use consensus_core::quorum::Severity;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use consensus_core::adversary::Strategy;

use super::envelope::{Envelope, Span};
use crate::scenario::{self, Behaviour, Scenario, ScenarioError, TamperAction};
use crate::seeds::{derive, Stream};

mod disks;
mod draft;
mod far_behind;
mod lag;
mod partitions;
#[cfg(test)]
pub(crate) use far_behind::{catch_up_bound, Backlog};
mod quiet;
mod split_locks;
use partitions::{groups_value, random_groups, round_partition, twin_partitions};
mod full_power;
pub mod guided;

/// The `full-power` behaviour.
const FULL_POWER: Behaviour = Behaviour::Core(Strategy::FullPower);

/// How a run was generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Swarm testing over the whole envelope.
    Swarm,
    /// Twins.
    Twins,
    /// ByzzFuzz.
    ByzzFuzz,
    /// Guided (`--guided`): derived from a corpus entry by mutating its scenario
    /// ([`guided`]); never drawn by [`Generator::mode_of`].
    Guided,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 4] = [Mode::Swarm, Mode::Twins, Mode::ByzzFuzz, Mode::Guided];

    /// The name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Swarm => "swarm",
            Mode::Twins => "twins",
            Mode::ByzzFuzz => "byzzfuzz",
            Mode::Guided => "guided",
        }
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One generated run.
#[derive(Clone, Debug)]
pub struct Generated {
    /// Its index in the master seed's sequence.
    pub index: u64,
    /// How it was generated.
    pub mode: Mode,
    /// The scenario.
    pub scenario: Scenario,
    /// The simulator seed.
    pub seed: u64,
    /// The envelope features this run exercises (for the coverage table).
    pub features: Vec<String>,
    /// The scenario as a file.
    pub text: String,
    /// What its liveness bound was computed from (a guided mutation recomputes it).
    pub(crate) bound: Bound,
    /// For a guided run: the corpus run it was derived from and the mutations applied.
    pub parent: Option<(u64, Vec<&'static str>)>,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Generator {
    envelope: Envelope,
    master: u64,
    only: Option<Mode>,
    mutation: String,
}

impl Generator {
    /// Runs of `master` within `envelope`; `only` restricts to one mode; `mutation` (a
    /// `protocol.mutation` name, `none` for the correct protocol) is set in every scenario.
    pub fn new(envelope: Envelope, master: u64, only: Option<Mode>, mutation: &str) -> Generator {
        Generator { envelope, master, only, mutation: mutation.to_owned() }
    }

    /// The mode of run `index` and its index among the runs of that mode.
    pub fn mode_of(&self, index: u64) -> (Mode, u64) {
        if let Some(mode) = self.only {
            return (mode, index);
        }
        let m = self.envelope.modes;
        let weights = [(Mode::Swarm, m.swarm), (Mode::Twins, m.twins), (Mode::ByzzFuzz, m.byzzfuzz)];
        let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum::<u64>().max(1);
        let (round, mut slot) = (index / total, index % total);
        for (mode, w) in weights {
            let w = u64::from(w);
            if slot < w {
                return (mode, round * w + slot);
            }
            slot -= w;
        }
        (Mode::Swarm, index)
    }

    /// Run `index`.
    pub fn generate(&self, index: u64) -> Result<Generated, ScenarioError> {
        let (mode, k) = self.mode_of(index);
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::Explore, index));
        // The full-power agent's draws: a stream of their own, so that every other draw of the
        // run is what it was without them.
        let mut fp = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreFullPower, index));
        let mut draft = Draft::default();
        match mode {
            Mode::Swarm => self.swarm(&mut rng, &mut fp, &mut draft),
            Mode::Twins => self.twins(&mut rng, &mut fp, &mut draft, k),
            Mode::ByzzFuzz => self.byzzfuzz(&mut rng, &mut fp, &mut draft),
            // Not drawn by `mode_of`: `--mode guided` is refused by the command line, and a
            // guided run without a corpus is a swarm run.
            Mode::Guided => self.swarm(&mut rng, &mut fp, &mut draft),
        }
        self.full_power_knobs(&mut fp, &mut draft);
        self.timeouts(index, &mut draft);
        self.disks(index, mode, &mut draft);
        self.quiet_restart(index, mode, &mut draft);
        self.round_lag(index, mode, &mut draft);
        self.far_behind(index, mode, &mut draft);
        self.split_locks(index, mode, &mut draft);
        self.finish(&mut rng, &mut draft);
        if let Some(faults) = draft.faults_value() {
            draft.table.insert("faults".into(), faults);
        }
        let bound = draft.bound();
        let mut table = draft.table;
        table.insert("name".into(), Value::String(format!("explore-{}", mode.name())));
        let description = format!("generated run {index} of master seed {} ({})", self.master, mode.name());
        table.insert("description".into(), Value::String(description));
        if self.mutation != "none" {
            set(&mut table, "protocol.mutation", Value::String(self.mutation.clone()));
        }
        let path = format!("explore-{}-{index}.toml", self.master);
        // toml writes plain keys first, then tables, then arrays of tables.
        let text = toml::to_string(&table).map_err(|e| ScenarioError {
            file: path.clone().into(),
            line: 0,
            column: 0,
            message: format!("the generated scenario cannot be written as TOML: {e}"),
        })?;
        let scenario = scenario::parse(&text, Path::new(&path))?;
        let seed = derive(self.master, Stream::ExploreSeed, index);
        let mut features = draft.features;
        features.insert(format!("mode:{}", mode.name()));
        Ok(Generated {
            index,
            mode,
            scenario,
            seed,
            features: features.into_iter().collect(),
            text,
            bound,
            parent: None,
        })
    }

    fn swarm(&self, rng: &mut ChaCha8Rng, fp: &mut ChaCha8Rng, d: &mut Draft) {
        let e = &self.envelope;
        let on = |rng: &mut ChaCha8Rng| !rng.gen_bool(e.swarm.off);
        let families = ["loss", "latency-high", "tail", "duplicates", "partitions", "crashes", "clogs", "byzantine"];
        let families: BTreeSet<&str> = families.into_iter().filter(|_| on(rng)).collect();
        let concurrency = on(rng);
        let protocol = on(rng);
        let n = pick_size(rng, &e.committee.sizes);
        d.agents(n);
        if families.contains("byzantine") {
            let f_max = (n - 1) / 3;
            let b = if rng.gen_bool(e.committee.beyond_f_max) || f_max == 0 {
                rng.gen_range(f_max + 1..=(f_max + 2).min(n))
            } else if rng.gen_bool(0.5) {
                f_max
            } else {
                rng.gen_range(1..=f_max)
            };
            let behaviours = self.behaviours(rng, fp, b);
            d.byzantine(rng, n, &behaviours);
        }
        let high = families.contains("latency-high");
        d.network(rng, e, families.contains("loss"), high, families.contains("tail"), families.contains("duplicates"));
        let gst = draw(rng, e.faults.gst_ms);
        d.gst_ms = gst;
        if families.contains("partitions") {
            let k = draw32(rng, e.faults.partitions);
            d.partitions(rng, n, gst, k, e.faults.one_way);
        }
        if families.contains("crashes") {
            let k = draw32(rng, e.faults.crashes);
            d.crashes(rng, n, gst, k);
        }
        if families.contains("clogs") {
            let k = draw32(rng, e.faults.clogs);
            d.clogs(rng, n, gst, k);
        }
        d.workload(rng, e, concurrency);
        if protocol {
            self.protocol(rng, d, n);
        }
        d.features.extend(families.iter().map(|f| format!("family:{f}")));
        if concurrency {
            d.features.insert("family:concurrency".into());
        }
        if protocol {
            d.features.insert("family:protocol-options".into());
        }
    }

    fn twins(&self, rng: &mut ChaCha8Rng, fp: &mut ChaCha8Rng, d: &mut Draft, k: u64) {
        let e = &self.envelope;
        let sizes = if e.twins.sizes.is_empty() { vec![4] } else { e.twins.sizes.clone() };
        // Even runs enumerate the first size; odd ones sample the rest.
        let enumerate = k % 2 == 0;
        let n = if enumerate { sizes[0] } else { *sizes.choose(rng).unwrap_or(&4) }.max(2);
        let rounds = if enumerate { e.twins.rounds[1] } else { draw32(rng, e.twins.rounds) }.max(1);
        let partitions = twin_partitions(n, e.twins.groups);
        // Walk the product space (twin position × a partition per round) in a scrambled but
        // complete order, so the first runs do not all start with the same partitions.
        let total = u64::from(n).saturating_mul((partitions.len().max(1) as u64).saturating_pow(rounds)).max(1);
        let mut code = scramble(k / 2 % total, total);
        let twin = if enumerate { (code % u64::from(n)) as u32 } else { rng.gen_range(0..n) };
        code /= u64::from(n);
        d.agents(n);
        d.gst_ms = draw(rng, e.faults.gst_ms);
        set(&mut d.table, "byzantine.count", int(1));
        set(&mut d.table, "byzantine.strategy", Value::String("twin".into()));
        set(&mut d.table, "byzantine.agents", Value::Array(vec![int(u64::from(twin))]));
        d.features.insert("behaviour:twin".into());
        self.twin_with_full_power(fp, d, n, twin);
        // As many sessions as the envelope's workload allows: every session gets partitions.
        let sessions = draw(rng, e.workload.sessions).max(1);
        let mut rules = Vec::new();
        for round in 0..rounds {
            let choice = if enumerate && !partitions.is_empty() {
                let c = (code % partitions.len() as u64) as usize;
                code /= partitions.len() as u64;
                c
            } else {
                rng.gen_range(0..partitions.len().max(1))
            };
            let Some(groups) = partitions.get(choice) else { continue };
            rules.push(round_partition(0, round, groups, twin, d.gst_ms));
        }
        // Later sessions: the same rounds, each partition sampled (the enumeration is session 0's).
        for session in 1..sessions {
            for round in 0..rounds {
                let Some(groups) = partitions.get(rng.gen_range(0..partitions.len().max(1))) else { continue };
                rules.push(round_partition(session, round, groups, twin, d.gst_ms));
            }
        }
        d.table.insert("round_partitions".into(), Value::Array(rules));
        let latency_max = rng.gen_range(10..=120u64);
        set(&mut d.table, "network.latency_ms", Value::Array(vec![int(1), int(latency_max)]));
        d.latency_max_ms = latency_max;
        set(&mut d.table, "workload.sessions", int(sessions));
        d.sessions = sessions;
        close_candidates(rng, d);
        lossy(rng, d, 0.5);
        d.features.insert(format!("twins:rounds={rounds}"));
        if enumerate {
            d.features.insert(format!("twins:enumerated-n{n}"));
        }
    }

    fn byzzfuzz(&self, rng: &mut ChaCha8Rng, fp: &mut ChaCha8Rng, d: &mut Draft) {
        let e = &self.envelope;
        let sizes: Vec<u32> = e.committee.sizes.iter().copied().filter(|n| (4..=10).contains(n)).collect();
        let n = if sizes.is_empty() { 4 } else { pick_size(rng, &sizes) };
        d.agents(n);
        let f_max = ((n - 1) / 3).max(1);
        let b = rng.gen_range(1..=f_max);
        let mut behaviours = vec![Behaviour::Honest];
        behaviours.extend(self.behaviours(rng, fp, b - 1));
        let agents = d.byzantine(rng, n, &behaviours);
        let fuzzed = agents[0];
        let sessions = rng.gen_range(1..=6u64);
        set(&mut d.table, "workload.sessions", int(sessions));
        d.sessions = sessions;
        close_candidates(rng, d);
        let c = draw32(rng, e.byzzfuzz.c);
        let mut tamper = Vec::new();
        for _ in 0..c {
            let mut others: Vec<u32> = (0..n).filter(|a| *a != fuzzed).collect();
            others.shuffle(rng);
            let take = rng.gen_range(1..=others.len().max(1));
            let mut to: Vec<u32> = others.into_iter().take(take).collect();
            to.sort_unstable();
            let action = *TamperAction::ALL.choose(rng).unwrap_or(&TamperAction::Omit);
            let mut rule = Table::new();
            rule.insert("agent".into(), int(u64::from(fuzzed)));
            rule.insert("session".into(), int(rng.gen_range(0..sessions)));
            rule.insert("round".into(), int(u64::from(rng.gen_range(0..=e.byzzfuzz.max_round))));
            rule.insert("to".into(), Value::Array(to.into_iter().map(|a| int(u64::from(a))).collect()));
            rule.insert("action".into(), Value::String(action.name().into()));
            d.features.insert(format!("tamper:{}", action.name()));
            tamper.push(Value::Table(rule));
        }
        let dd = draw32(rng, e.byzzfuzz.d);
        d.gst_ms = draw(rng, e.faults.gst_ms);
        let mut partitions = Vec::new();
        for _ in 0..dd {
            let groups = random_groups(rng, n, 2);
            let mut rule = Table::new();
            rule.insert("session".into(), int(rng.gen_range(0..sessions)));
            rule.insert("round".into(), int(u64::from(rng.gen_range(0..=e.byzzfuzz.max_round))));
            rule.insert("groups".into(), groups_value(&groups));
            rule.insert("until_ms".into(), int(d.gst_ms));
            partitions.push(Value::Table(rule));
        }
        d.features.insert(format!("byzzfuzz:c={c},d={dd}"));
        if !tamper.is_empty() {
            d.table.insert("tamper".into(), Value::Array(tamper));
        }
        if !partitions.is_empty() {
            d.table.insert("round_partitions".into(), Value::Array(partitions));
        }
        let latency_min = rng.gen_range(0..=20u64);
        let latency_max = rng.gen_range(latency_min.max(19) + 1..=200);
        set(&mut d.table, "network.latency_ms", Value::Array(vec![int(latency_min), int(latency_max)]));
        d.latency_max_ms = latency_max;
        lossy(rng, d, 0.6);
    }

    /// `b` behaviours from the envelope: one shared with probability `byzantine.same`; then each
    /// replaced by `full-power` with probability `full_power.share`, drawn from `fp`.
    fn behaviours(&self, rng: &mut ChaCha8Rng, fp: &mut ChaCha8Rng, b: u32) -> Vec<Behaviour> {
        let list = &self.envelope.byzantine.behaviours;
        let pick = |rng: &mut ChaCha8Rng| *list.choose(rng).unwrap_or(&Behaviour::Honest);
        let drawn = if rng.gen_bool(self.envelope.byzantine.same) {
            let one = pick(rng);
            vec![one; b as usize]
        } else {
            (0..b).map(|_| pick(rng)).collect()
        };
        let share = self.envelope.full_power.share;
        drawn.into_iter().map(|x| if fp.gen_bool(share) { FULL_POWER } else { x }).collect()
    }

    fn protocol(&self, rng: &mut ChaCha8Rng, d: &mut Draft, n: u32) {
        let p = &self.envelope.protocol;
        if let Some(detector) = p.detectors.choose(rng) {
            set(&mut d.table, "protocol.detector", Value::try_from(detector).unwrap_or(Value::String("none".into())));
        }
        if let Some(fallback) = p.fallbacks.choose(rng) {
            set(&mut d.table, "protocol.fallback", Value::try_from(fallback).unwrap_or(Value::String("none".into())));
        }
        let b = d.byzantine_count.max(1);
        let accepted: Vec<f64> =
            p.thresholds.iter().copied().filter(|t| threshold_accepted(n, b.min((n - 1) / 3), *t)).collect();
        if let Some(t) = accepted.choose(rng) {
            set(&mut d.table, "protocol.threshold", Value::Float(*t));
        }
        set(&mut d.table, "protocol.early_unanimous", Value::Boolean(rng.gen_bool(p.early_unanimous)));
    }

    /// With probability `protocol.short_timeouts`, scales the round timeouts down (their own
    /// random stream, so that every other draw of run `index` stays as it was).
    fn timeouts(&self, index: u64, d: &mut Draft) {
        let p = &self.envelope.protocol;
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreTimeouts, index));
        if !rng.gen_bool(p.short_timeouts) {
            return;
        }
        let [low, high] = p.timeout_scale;
        let scale = round2(rng.gen_range(low..=high));
        let scaled = |ms: u64| ((ms as f64 * scale).round() as u64).max(1);
        let base = Timeouts::default();
        let t = Timeouts { propose: scaled(base.propose), vote: scaled(base.vote), delta: scaled(base.delta) };
        set(&mut d.table, "protocol.timeout_propose_ms", int(t.propose));
        set(&mut d.table, "protocol.timeout_prevote_ms", int(t.vote));
        set(&mut d.table, "protocol.timeout_precommit_ms", int(t.vote));
        set(&mut d.table, "protocol.timeout_delta_ms", int(t.delta));
        d.timeouts = Some(t);
        d.features.insert("protocol:short-timeouts".into());
    }

    /// Workload defaults where a mode set none, and the liveness bound.
    fn finish(&self, rng: &mut ChaCha8Rng, d: &mut Draft) {
        if d.sessions == 0 {
            d.workload(rng, &self.envelope, false);
        }
        if d.latency_max_ms == 0 {
            d.latency_max_ms = 10;
        }
        let latency = d.latency_max_ms.saturating_add(d.tail_max_ms);
        d.features.insert(latency_feature(latency).into());
        let bound = d.bound();
        self.expect(&bound, &mut d.table);
    }

    /// `expect.liveness_bound_ms` and `expect.liveness_rounds` of a run drawn with `b`.
    fn expect(&self, b: &Bound, table: &mut Table) {
        let (d, latency) = (b, b.latency_max_ms.saturating_add(b.tail_max_ms));
        // Rounds until the timeouts (prevote 50 ms + 50 ms per round by default) outgrow two
        // message delays, and the time the timeouts of those rounds add up to (propose 200,
        // prevote and precommit 50, each + 50 per round by default).
        let t = d.timeouts.unwrap_or_default();
        let rounds = (2 * latency).div_ceil(t.delta) + 2;
        let rounds_ms = (t.propose + 2 * t.vote) * rounds + 3 * t.delta * rounds * rounds / 2;
        let per_session = self.envelope.liveness.per_session_ms.saturating_add(rounds_ms);
        let bound = d.gst_ms.saturating_add(d.sessions.max(1).saturating_mul(per_session));
        set(table, "expect.liveness_bound_ms", int(bound.max(30_000)));
        set(table, "expect.liveness_rounds", int(liveness_rounds(t, d.gst_ms, rounds, d.agents)));
    }
}

/// The liveness bound in rounds: the rounds an honest agent can reach by `gst_ms`, plus the
/// `rounds` after which the timeouts outlast the latency, plus `2n + 4` for faulty proposers and
/// lost messages. An honest agent enters round r + 1 only when its precommit timeout of round r
/// expires (L46–L47, L60–L61) or when f + 1 agents, so an honest one, sent messages of a later
/// round (L54–L55), so the first honest agent to enter round r waited at least the precommit
/// timeouts of rounds 0..r: growing timeouts reach few rounds by GST, constant ones (the
/// `constant-timeouts` mutation) race past the bound, which ends such a stalled run early.
fn liveness_rounds(t: Timeouts, gst_ms: u64, rounds: u64, n: u32) -> u64 {
    reached_by(t, gst_ms) + rounds + 2 * u64::from(n) + 4
}

/// The rounds an honest agent can reach by `gst_ms`: the first to enter round r waited the
/// precommit timeouts of rounds 0..r ([`liveness_rounds`]).
fn reached_by(t: Timeouts, gst_ms: u64) -> u64 {
    let (mut reached, mut waited) = (0u64, 0u64);
    while waited <= gst_ms {
        waited = waited.saturating_add(t.vote.saturating_add(t.delta.saturating_mul(reached)).max(1));
        reached += 1;
    }
    reached
}

/// Two or three candidates of nearly equal quality, so that honest votes split and proposals
/// built from different vote sets decide differently: what lets a lost lock show as a
/// disagreement rather than two decisions of the same outcome.
fn close_candidates(rng: &mut ChaCha8Rng, d: &mut Draft) {
    set(&mut d.table, "workload.candidates", int(rng.gen_range(2..=3u64)));
    set(&mut d.table, "workload.quality_gap", Value::Float(round2(rng.gen_range(0.0..=0.08))));
    d.features.insert("workload:close-candidates".into());
}

/// With probability `p`, 5% to 25% loss: lost prevotes and precommits are what leave agents
/// with different views of a round.
fn lossy(rng: &mut ChaCha8Rng, d: &mut Draft, p: f64) {
    if rng.gen_bool(p) {
        set(&mut d.table, "network.drop", Value::Float(round2(rng.gen_range(0.05..=0.25))));
        d.features.insert("family:loss".into());
    }
}

/// A bijection of `0..total`: `x ↦ (a·x + c) mod total` with `a` coprime to `total`.
fn scramble(x: u64, total: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut a = (total / 2 + 1) | 1;
    while gcd(a, total) != 1 {
        a += 2;
    }
    ((u128::from(a) * u128::from(x) + 7) % u128::from(total)) as u64
}

fn latency_feature(latency: u64) -> &'static str {
    match latency {
        0..=50 => "latency:below-prevote-timeout",
        51..=200 => "latency:above-prevote-timeout",
        _ => "latency:above-propose-timeout",
    }
}

/// Whether the audit accepts `threshold` for `n` agents and `f` Byzantine ones.
fn threshold_accepted(n: u32, f: u32, threshold: f64) -> bool {
    let Some(ratio) = consensus_core::Ratio::from_f64(threshold) else { return false };
    let weights_milli =
        (0..n as usize).map(|i| consensus_core::AgentSpecialization::cycled(i).default_weight_milli()).collect();
    let input = consensus_core::quorum::AuditInput { weights_milli, threshold: ratio, byzantine: Some(u64::from(f)) };
    consensus_core::quorum::audit(&input).is_ok_and(|a| a.findings.iter().all(|f| f.severity != Severity::Error))
}

/// The scenario being drawn, as TOML, and what the liveness bound needs to know.
#[derive(Default)]
struct Draft {
    table: Table,
    features: BTreeSet<String>,
    gst_ms: u64,
    agents: u32,
    sessions: u64,
    latency_max_ms: u64,
    tail_max_ms: u64,
    byzantine_count: u32,
    faults: Vec<(u64, Table)>,
    timeouts: Option<Timeouts>,
}

/// What a run's liveness bound is computed from.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Bound {
    gst_ms: u64,
    agents: u32,
    sessions: u64,
    latency_max_ms: u64,
    tail_max_ms: u64,
    timeouts: Option<Timeouts>,
}

/// A run's round timeouts: propose, prevote and precommit of round 0, growth per round
/// (milliseconds).
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    propose: u64,
    vote: u64,
    delta: u64,
}

/// The protocol's defaults (prevote and precommit are equal there).
impl Default for Timeouts {
    fn default() -> Self {
        let p = consensus_core::protocol::ProtocolConfig::default();
        Timeouts { propose: p.timeout_propose_ms, vote: p.timeout_prevote_ms, delta: p.timeout_delta_ms }
    }
}

/// Draws a committee size with weight 1/size.
fn pick_size(rng: &mut ChaCha8Rng, sizes: &[u32]) -> u32 {
    let total: f64 = sizes.iter().map(|n| 1.0 / f64::from((*n).max(1))).sum();
    let mut x = rng.gen_range(0.0..total.max(f64::MIN_POSITIVE));
    for n in sizes {
        let w = 1.0 / f64::from((*n).max(1));
        if x < w {
            return *n;
        }
        x -= w;
    }
    sizes.last().copied().unwrap_or(4)
}

fn draw(rng: &mut ChaCha8Rng, [lo, hi]: Span<u64>) -> u64 {
    rng.gen_range(lo.min(hi)..=hi.max(lo))
}

fn draw32(rng: &mut ChaCha8Rng, [lo, hi]: Span<u32>) -> u32 {
    rng.gen_range(lo.min(hi)..=hi.max(lo))
}

fn draw_f(rng: &mut ChaCha8Rng, [lo, hi]: Span<f64>) -> f64 {
    if hi > lo {
        rng.gen_range(lo..=hi)
    } else {
        lo
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn int(x: u64) -> Value {
    Value::Integer(i64::try_from(x).unwrap_or(i64::MAX))
}

/// Sets `a.b = value`, creating the table `a`.
fn set(table: &mut Table, key: &str, value: Value) {
    let mut parts = key.splitn(2, '.');
    let (Some(head), rest) = (parts.next(), parts.next()) else { return };
    match rest {
        None => {
            table.insert(head.to_owned(), value);
        }
        Some(rest) => {
            let entry = table.entry(head.to_owned()).or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(inner) = entry {
                set(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_split_by_weight_without_state() {
        let g = Generator::new(Envelope::default(), 1, None, "none");
        let modes: Vec<Mode> = (0..10).map(|i| g.mode_of(i).0).collect();
        assert_eq!(modes.iter().filter(|m| **m == Mode::Swarm).count(), 4);
        assert_eq!(modes.iter().filter(|m| **m == Mode::Twins).count(), 4);
        assert_eq!(g.mode_of(16), (Mode::Twins, 6), "the third twins run of the second block");
    }

    #[test]
    fn scramble_is_a_bijection() {
        for total in [1u64, 2, 8, 12, 100, 243] {
            let mut seen: Vec<u64> = (0..total).map(|x| scramble(x, total)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..total).collect::<Vec<_>>(), "total {total}");
        }
    }

    #[test]
    fn twin_partitions_keep_the_copies_apart() {
        let p = twin_partitions(4, 2);
        assert!(!p.is_empty());
        for groups in &p {
            assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 5);
            let of = |e: u32| groups.iter().position(|g| g.contains(&e));
            assert_ne!(of(0), of(4));
        }
        // 2 groups, 0 and 4 apart: the 3 others each go either way: 2^3 = 8.
        assert_eq!(p.len(), 8);
        assert!(twin_partitions(4, 3).len() > p.len());
    }

    /// Short timeouts come from their own stream: turning them on changes a run's timeouts
    /// (and its liveness bound) and nothing else.
    #[test]
    fn short_timeouts_change_only_the_timeouts() {
        let (mut plain, mut short) = (Envelope::default(), Envelope::default());
        (plain.protocol.short_timeouts, short.protocol.short_timeouts) = (0.0, 1.0);
        // The round lag's rounds are those the timeouts reach by GST.
        (plain.faults.round_lag, short.faults.round_lag) = (0.0, 0.0);
        // So do the split-locks shape's cuts (until the time its rounds take).
        (plain.faults.split_locks, short.faults.split_locks) = (0.0, 0.0);
        let (plain, scaled) = (Generator::new(plain, 3, None, "none"), Generator::new(short, 3, None, "none"));
        for i in 0..50 {
            let (a, b) = (plain.generate(i).unwrap(), scaled.generate(i).unwrap());
            let timeouts = |g: &Generated| {
                let p = &g.scenario.protocol;
                (p.timeout_propose_ms, p.timeout_prevote_ms, p.timeout_precommit_ms, p.timeout_delta_ms)
            };
            assert_eq!(timeouts(&a), (200, 50, 50, 50), "run {i}");
            let (propose, prevote, precommit, delta) = timeouts(&b);
            assert!((40..=120).contains(&propose) && (10..=30).contains(&prevote), "run {i}: {propose} {prevote}");
            assert_eq!((prevote, precommit), (delta, delta));
            assert!(b.scenario.expect.liveness_bound_ms >= 30_000);
            let keep = |g: &Generated| {
                let kept = |l: &&str| !["timeout", "liveness_", "[protocol]"].iter().any(|k| l.contains(k));
                g.text.lines().filter(|l| !l.is_empty()).filter(kept).collect::<Vec<_>>().join("\n")
            };
            assert_eq!(keep(&a), keep(&b), "run {i}");
            assert_eq!(a.seed, b.seed);
        }
    }

    /// The round bound covers the rounds growing timeouts can reach by GST: the precommit
    /// timeouts of all rounds before it add up to more than GST.
    #[test]
    fn the_liveness_round_bound_covers_the_rounds_reachable_by_gst() {
        let t = Timeouts::default();
        assert_eq!((t.propose, t.vote, t.delta), (200, 50, 50));
        // 50 + 100 + ... + 650 = 4550 > 4000 ≥ 50 + ... + 600 = 3900: 13 rounds by GST.
        assert_eq!(liveness_rounds(t, 4_000, 10, 4), 13 + 10 + 12);
        assert_eq!(liveness_rounds(t, 0, 10, 4), 1 + 10 + 12);
        for (gst, vote, delta) in [(200, 10, 10), (4_000, 10, 10), (1_000, 30, 30), (3_000, 50, 50)] {
            let t = Timeouts { propose: 4 * vote, vote, delta };
            let reached = liveness_rounds(t, gst, 0, 0) - 4;
            let waited = |rounds: u64| (0..rounds).map(|r| vote + delta * r).sum::<u64>();
            assert!(waited(reached) > gst && waited(reached - 1) <= gst, "{gst} {vote}: {reached}");
        }
    }

    #[test]
    fn every_generated_scenario_is_valid_and_deterministic() {
        let g = Generator::new(Envelope::default(), 7, None, "none");
        for i in 0..300 {
            let a = g.generate(i).unwrap_or_else(|e| panic!("run {i}: {e}"));
            let b = g.generate(i).unwrap();
            assert_eq!((a.text.as_str(), a.seed), (b.text.as_str(), b.seed));
            let again = scenario::parse(&a.text, Path::new("x.toml")).unwrap();
            assert_eq!(again.agents, a.scenario.agents);
        }
    }
}
