//! Guided exploration (`bftsim explore --guided`): a corpus of runs that reached protocol
//! coverage no earlier run reached (docs/coverage.md), and new runs derived from corpus entries
//! by mutating their scenario (Mallory's and ModelFuzz's feedback, on the points of
//! consensus-core's coverage table).
//!
//! Reproducibility: runs come in generations of [`Corpus::generation`] runs; generation g is
//! derived from the corpus as it stood after generation g − 1, whose runs were added in run
//! order, so the same master seed gives the same runs whatever the number of jobs. In
//! generation 0, and in every run whose slot is not guided ([`Generator::guided_slot`]), run
//! `index` is the ordinary run of that index.
//!
//! A mutation changes the parameters (committee size, sessions, timeouts, `keep_decided`,
//! loss, latency, duplicates), the faults (a partition, crash or clog window added, a window
//! removed whole, a fault moved between its neighbours, the crash-loss mode) or the adversary
//! (a Byzantine behaviour swapped, the full-power agent's knobs, a Twins round partition, a
//! ByzzFuzz tamper rule's round or action); every guided run has a simulator seed of its own,
//! so the adversaries' random streams differ too. The liveness bound is recomputed from what
//! the mutations changed, with the ordinary runs' formula, so a slower mutated world is judged
//! by a bound for it.

use consensus_core::protocol::coverage::Point;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::{draw, int, round2, set, twin_partitions, Bound, Draft, Generated, Generator};
use super::{round_partition, Mode, Timeouts};
use crate::scenario::{self, Behaviour, CrashLoss, ScenarioError, TamperAction};
use crate::seeds::{derive, Stream};

/// Runs per generation by default.
pub const GENERATION: u64 = 250;

/// The mutations, by name (also the `guided:<name>` features of the coverage table).
const MUTATIONS: [&str; 16] = [
    "committee",
    "sessions",
    "timeouts",
    "keep-decided",
    "protocol-options",
    "loss",
    "latency",
    "duplicates",
    "add-partition",
    "add-crash",
    "add-clog",
    "remove-window",
    "shift-fault",
    "crash-loss",
    "behaviour",
    "adversary-knobs",
];

/// One corpus entry: a run that reached something new.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The run.
    pub generated: Generated,
    /// The points it reached.
    pub points: Vec<Point>,
}

/// The corpus, and how many of the runs added so far reached each point.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// Runs per generation.
    pub generation: u64,
    /// The entries, in the order they were added (run order).
    pub entries: Vec<Entry>,
    /// Per point, the runs that reached it.
    counts: [u64; Point::COUNT],
}

impl Corpus {
    /// An empty corpus with generations of `generation` runs (at least 1).
    pub fn new(generation: u64) -> Corpus {
        Corpus { generation: generation.max(1), entries: Vec::new(), counts: [0; Point::COUNT] }
    }

    /// Adds one generation's runs, sorted here by run index: a run that reached a point no
    /// earlier run reached becomes an entry; every run's points are counted. Returns how many
    /// entries were added.
    pub fn add(&mut self, mut runs: Vec<(Generated, Vec<Point>)>) -> usize {
        runs.sort_by_key(|(g, _)| g.index);
        let before = self.entries.len();
        for (generated, points) in runs {
            let new = points.iter().any(|p| self.counts[p.index()] == 0);
            for p in &points {
                self.counts[p.index()] += 1;
            }
            if new {
                self.entries.push(Entry { generated, points });
            }
        }
        self.entries.len() - before
    }

    /// An entry drawn with weight the rarity of its points: the sum over them of one over the
    /// runs that reached each, so entries that reached what few runs reach are mutated most.
    fn pick(&self, rng: &mut ChaCha8Rng) -> Option<&Entry> {
        let weight = |e: &Entry| e.points.iter().map(|p| 1.0 / self.counts[p.index()].max(1) as f64).sum::<f64>();
        let total: f64 = self.entries.iter().map(weight).sum();
        if self.entries.is_empty() || total <= 0.0 {
            return self.entries.first();
        }
        let mut x = rng.gen_range(0.0..total);
        for e in &self.entries {
            let w = weight(e);
            if x < w {
                return Some(e);
            }
            x -= w;
        }
        self.entries.last()
    }
}

impl Generator {
    /// Whether run `index` of a guided exploration is derived from the corpus: half the runs
    /// of every generation after the first, drawn from the index alone.
    pub fn guided_slot(&self, index: u64, generation: u64) -> bool {
        index >= generation.max(1) && derive(self.master, Stream::ExploreGuidedSlot, index) % 2 == 0
    }

    /// Run `index` of a guided exploration with `corpus` as it stood after the previous
    /// generation: a mutation of a corpus entry in a guided slot, else the ordinary run.
    pub fn generate_guided(&self, index: u64, corpus: &Corpus) -> Result<Generated, ScenarioError> {
        if !self.guided_slot(index, corpus.generation) {
            return self.generate(index);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreGuided, index));
        let Some(parent) = corpus.pick(&mut rng) else { return self.generate(index) };
        let parent = &parent.generated;
        // A mutation may not fit the scenario (a partition naming agents the committee lost):
        // then another is drawn; after a few tries the parent runs again with a seed of its own.
        for _ in 0..8 {
            let mut table: Table = toml::from_str(&parent.text).map_err(|e| self.invalid(index, e.to_string()))?;
            let mut bound = parent.bound;
            let count = rng.gen_range(1..=3);
            let mut applied = Vec::new();
            for _ in 0..count {
                let name = MUTATIONS.choose(&mut rng).copied().unwrap_or("loss");
                if self.mutate(&mut rng, name, &mut table, &mut bound) {
                    applied.push(name);
                }
            }
            if applied.is_empty() {
                continue;
            }
            if let Ok(g) = self.finish_guided(index, parent, table, bound, applied) {
                return Ok(g);
            }
        }
        let table: Table = toml::from_str(&parent.text).map_err(|e| self.invalid(index, e.to_string()))?;
        self.finish_guided(index, parent, table, parent.bound, vec!["reseed"])
    }

    fn invalid(&self, index: u64, message: String) -> ScenarioError {
        let file = format!("explore-{}-{index}.toml", self.master).into();
        ScenarioError { file, line: 0, column: 0, message: format!("guided run: {message}") }
    }

    fn finish_guided(
        &self,
        index: u64,
        parent: &Generated,
        mut table: Table,
        bound: Bound,
        applied: Vec<&'static str>,
    ) -> Result<Generated, ScenarioError> {
        self.expect(&bound, &mut table);
        table.insert("name".into(), Value::String("explore-guided".into()));
        let description = format!(
            "generated run {index} of master seed {} (guided: run {} with {})",
            self.master,
            parent.index,
            applied.join(", ")
        );
        table.insert("description".into(), Value::String(description));
        let path = format!("explore-{}-{index}.toml", self.master);
        let text = toml::to_string(&table).map_err(|e| self.invalid(index, e.to_string()))?;
        let scenario = scenario::parse(&text, std::path::Path::new(&path))?;
        let mut features: Vec<String> =
            parent.features.iter().filter(|f| !f.starts_with("mode:") && !f.starts_with("guided:")).cloned().collect();
        features.push("mode:guided".into());
        features.extend(applied.iter().map(|m| format!("guided:{m}")));
        features.sort();
        features.dedup();
        Ok(Generated {
            index,
            mode: Mode::Guided,
            scenario,
            seed: derive(self.master, Stream::ExploreSeed, index),
            features,
            text,
            bound,
            parent: Some((parent.index, applied)),
        })
    }

    /// Applies mutation `name`; false when it does not apply to this scenario.
    fn mutate(&self, rng: &mut ChaCha8Rng, name: &str, t: &mut Table, b: &mut Bound) -> bool {
        let e = &self.envelope;
        let n = b.agents.max(1);
        match name {
            "committee" => {
                let sizes: Vec<u32> = e.committee.sizes.iter().copied().filter(|s| *s != n).collect();
                let Some(size) = sizes.choose(rng).copied() else { return false };
                b.agents = size;
                set(t, "agents.count", int(u64::from(size)));
            }
            "sessions" => {
                let sessions = draw(rng, e.workload.sessions).max(1);
                b.sessions = sessions;
                set(t, "workload.sessions", int(sessions));
                for key in ["round_partitions", "tamper"] {
                    retain(t, key, |rule| {
                        rule.get("session").and_then(Value::as_integer).unwrap_or(0) < sessions as i64
                    });
                }
            }
            "timeouts" => mutate_timeouts(rng, e.protocol.timeout_scale, t, b),
            "keep-decided" => set(t, "protocol.keep_decided", int(draw(rng, e.storage.keep_decided).max(1))),
            "protocol-options" => return self.protocol_options(rng, t, n),
            "loss" => set(t, "network.drop", Value::Float(round2(super::draw_f(rng, e.network.drop)))),
            "duplicates" => set(t, "network.duplicate", Value::Float(round2(super::draw_f(rng, e.network.duplicate)))),
            "latency" => {
                let max = draw(rng, e.network.latency_max_ms).max(2);
                let min = rng.gen_range(0..max);
                b.latency_max_ms = max;
                set(t, "network.latency_ms", Value::Array(vec![int(min), int(max)]));
            }
            "add-partition" | "add-crash" | "add-clog" => {
                if b.gst_ms == 0 {
                    b.gst_ms = draw(rng, e.faults.gst_ms).max(1);
                }
                let mut d = Draft { agents: n, ..Draft::default() };
                match name {
                    "add-partition" => d.partitions(rng, n, b.gst_ms, 1, e.faults.one_way),
                    "add-crash" => d.crashes(rng, n, b.gst_ms, 1),
                    _ => d.clogs(rng, n, b.gst_ms, 1),
                }
                let Some(Value::Array(added)) = d.faults_value() else { return false };
                return with_faults(t, |faults| {
                    faults.extend(added);
                    sort_faults(faults);
                    true
                });
            }
            "remove-window" => return with_faults(t, |faults| remove_window(rng, faults)),
            "shift-fault" => return with_faults(t, |faults| shift_fault(rng, faults)),
            "crash-loss" => {
                let loss = CrashLoss::ALL.choose(rng).copied().unwrap_or(CrashLoss::Any);
                set(t, "storage.crash", Value::String(loss.name().into()));
            }
            "behaviour" => return self.swap_behaviour(rng, t),
            _ => return self.adversary_knobs(rng, t, n),
        }
        true
    }

    /// The detector, the fallback policy or the threshold (one the audit accepts for this
    /// committee) redrawn from the envelope: what the V6–V8 fallback checks and V12–V13 need.
    fn protocol_options(&self, rng: &mut ChaCha8Rng, t: &mut Table, n: u32) -> bool {
        let p = &self.envelope.protocol;
        match rng.gen_range(0..3) {
            0 => match p.fallbacks.choose(rng).and_then(|f| Value::try_from(f).ok()) {
                Some(v) => set(t, "protocol.fallback", v),
                None => return false,
            },
            1 => match p.detectors.choose(rng).and_then(|d| Value::try_from(d).ok()) {
                Some(v) => set(t, "protocol.detector", v),
                None => return false,
            },
            _ => {
                let b = t.get("byzantine").and_then(|b| b.get("count")).and_then(Value::as_integer).unwrap_or(0);
                let f = u32::try_from(b).unwrap_or(0).max(1).min(n.saturating_sub(1) / 3);
                let accepted: Vec<f64> =
                    p.thresholds.iter().copied().filter(|x| super::threshold_accepted(n, f, *x)).collect();
                let Some(threshold) = accepted.choose(rng) else { return false };
                set(t, "protocol.threshold", Value::Float(*threshold));
            }
        }
        true
    }

    /// One non-twin Byzantine behaviour replaced by another of the envelope (or full-power).
    fn swap_behaviour(&self, rng: &mut ChaCha8Rng, t: &mut Table) -> bool {
        let Some(Value::Table(byz)) = t.get_mut("byzantine") else { return false };
        let mut names: Vec<String> = match (byz.get("strategies"), byz.get("strategy"), byz.get("count")) {
            (Some(Value::Array(list)), _, _) => list.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
            (None, Some(Value::String(one)), Some(Value::Integer(c))) => vec![one.clone(); (*c).max(0) as usize],
            _ => return false,
        };
        let swappable: Vec<usize> = (0..names.len()).filter(|i| names[*i] != Behaviour::Twin.name()).collect();
        let Some(i) = swappable.choose(rng).copied() else { return false };
        let mut pool: Vec<&str> = self.envelope.byzantine.behaviours.iter().map(|b| b.name()).collect();
        pool.push(super::FULL_POWER.name());
        pool.retain(|b| *b != Behaviour::Twin.name());
        let Some(new) = pool.choose(rng) else { return false };
        names[i] = (*new).to_owned();
        byz.remove("strategy");
        byz.insert("strategies".into(), Value::Array(names.into_iter().map(Value::String).collect()));
        true
    }

    /// The adversary's choices: the full-power knobs, a Twins round partition redrawn, or a
    /// ByzzFuzz tamper rule's round or action.
    fn adversary_knobs(&self, rng: &mut ChaCha8Rng, t: &mut Table, n: u32) -> bool {
        let text = toml::to_string(&t.get("byzantine")).unwrap_or_default();
        let mut options = Vec::new();
        if text.contains(super::FULL_POWER.name()) {
            options.push(0);
        }
        if t.contains_key("round_partitions") && text.contains(Behaviour::Twin.name()) {
            options.push(1);
        }
        if t.contains_key("tamper") {
            options.push(2);
        }
        match options.choose(rng) {
            Some(0) => {
                let mut d = Draft { table: std::mem::take(t), ..Draft::default() };
                d.features.insert(format!("behaviour:{}", super::FULL_POWER.name()));
                self.full_power_knobs(rng, &mut d);
                *t = d.table;
            }
            Some(1) => {
                let twin = t
                    .get("byzantine")
                    .and_then(|b| b.get("agents"))
                    .and_then(Value::as_array)
                    .and_then(|a| twin_of(t, a))
                    .unwrap_or(0);
                let partitions = twin_partitions(n, self.envelope.twins.groups);
                let Some(Value::Array(rules)) = t.get_mut("round_partitions") else { return false };
                let Some(Value::Table(rule)) = rules.choose_mut(rng) else { return false };
                let Some(groups) = partitions.choose(rng) else { return false };
                let get = |k: &str| rule.get(k).and_then(Value::as_integer).unwrap_or(0).max(0) as u64;
                let (session, round, until) = (get("session"), get("round") as u32, get("until_ms"));
                if let Value::Table(new) = round_partition(session, round, groups, twin, until) {
                    *rule = new;
                }
            }
            Some(2) => {
                let max_round = self.envelope.byzzfuzz.max_round;
                let Some(Value::Array(rules)) = t.get_mut("tamper") else { return false };
                let Some(Value::Table(rule)) = rules.choose_mut(rng) else { return false };
                if rng.gen_bool(0.5) {
                    rule.insert("round".into(), int(u64::from(rng.gen_range(0..=max_round))));
                } else {
                    let action = TamperAction::ALL.choose(rng).copied().unwrap_or(TamperAction::Omit);
                    rule.insert("action".into(), Value::String(action.name().into()));
                }
            }
            _ => return false,
        }
        true
    }
}

/// The twin's agent index: the one of `agents` whose strategy is `twin`.
fn twin_of(t: &Table, agents: &[Value]) -> Option<u32> {
    let byz = t.get("byzantine")?;
    let position = match byz.get("strategies").and_then(Value::as_array) {
        Some(list) => list.iter().position(|s| s.as_str() == Some(Behaviour::Twin.name()))?,
        None => 0,
    };
    agents.get(position)?.as_integer().and_then(|a| u32::try_from(a).ok())
}

/// Short timeouts (scaled as the ordinary runs scale them) or the defaults back.
fn mutate_timeouts(rng: &mut ChaCha8Rng, [low, high]: [f64; 2], t: &mut Table, b: &mut Bound) {
    let keys = ["timeout_propose_ms", "timeout_prevote_ms", "timeout_precommit_ms", "timeout_delta_ms"];
    if b.timeouts.is_some() && rng.gen_bool(0.5) {
        if let Some(Value::Table(p)) = t.get_mut("protocol") {
            for key in keys {
                p.remove(key);
            }
        }
        b.timeouts = None;
        return;
    }
    let scale = round2(if high > low { rng.gen_range(low..=high) } else { low });
    let scaled = |ms: u64| ((ms as f64 * scale).round() as u64).max(1);
    let base = Timeouts::default();
    let new = Timeouts { propose: scaled(base.propose), vote: scaled(base.vote), delta: scaled(base.delta) };
    for (key, value) in keys.iter().zip([new.propose, new.vote, new.vote, new.delta]) {
        set(t, &format!("protocol.{key}"), int(value));
    }
    b.timeouts = Some(new);
}

/// Changes the `faults` array with `change` (absent: empty; left empty: removed); returns what
/// `change` returned.
fn with_faults(t: &mut Table, change: impl FnOnce(&mut Vec<Value>) -> bool) -> bool {
    let mut faults = match t.remove("faults") {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    let changed = change(&mut faults);
    if !faults.is_empty() {
        t.insert("faults".into(), Value::Array(faults));
    }
    changed
}

/// Keeps the rules of array `key` that `keep` accepts.
fn retain(t: &mut Table, key: &str, keep: impl Fn(&Table) -> bool) {
    if let Some(Value::Array(rules)) = t.get_mut(key) {
        rules.retain(|r| r.as_table().is_some_and(&keep));
        if rules.is_empty() {
            t.remove(key);
        }
    }
}

fn at_ms(fault: &Value) -> i64 {
    fault.get("at_ms").and_then(Value::as_integer).unwrap_or(0)
}

fn kind(fault: &Value) -> &str {
    fault.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// Stable by time, as the ordinary runs write them (a window's end never precedes its start).
fn sort_faults(faults: &mut [Value]) {
    faults.sort_by_key(at_ms);
}

/// Removes a partition, crash or clog window whole (its start and the end that closes it), so
/// that no partition, crash or clog outlasts the run's GST.
fn remove_window(rng: &mut ChaCha8Rng, faults: &mut Vec<Value>) -> bool {
    let ends = |start: &Value, end: &Value| match kind(start) {
        "partition" => kind(end) == "heal",
        "crash" => kind(end) == "restart" && end.get("agent") == start.get("agent"),
        "clog" => {
            kind(end) == "unclog" && end.get("agent") == start.get("agent") && end.get("link") == start.get("link")
        }
        _ => false,
    };
    let starts: Vec<usize> = (0..faults.len())
        .filter(|i| ["partition", "crash", "clog"].contains(&kind(&faults[*i])))
        .filter(|i| faults[i + 1..].iter().any(|e| ends(&faults[*i], e)))
        .collect();
    let Some(start) = starts.choose(rng).copied() else { return false };
    let Some(end) = (start + 1..faults.len()).find(|j| ends(&faults[start], &faults[*j])) else { return false };
    faults.remove(end);
    faults.remove(start);
    true
}

/// Moves one fault in time between its neighbours, so the order of the faults (every window's
/// end after its start) stays as it was.
fn shift_fault(rng: &mut ChaCha8Rng, faults: &mut [Value]) -> bool {
    if faults.is_empty() {
        return false;
    }
    let i = rng.gen_range(0..faults.len());
    let low = if i == 0 { 0 } else { at_ms(&faults[i - 1]) };
    let high = faults.get(i + 1).map_or(at_ms(&faults[i]), at_ms);
    if high <= low {
        return false;
    }
    let at = rng.gen_range(low..=high);
    if let Some(t) = faults[i].as_table_mut() {
        t.insert("at_ms".into(), Value::Integer(at));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::Envelope;
    use super::*;

    fn corpus_of(g: &Generator, runs: &[(u64, &[Point])]) -> (Corpus, usize) {
        let mut corpus = Corpus::new(10);
        let added = corpus.add(runs.iter().map(|(i, p)| (g.generate(*i).expect("run"), p.to_vec())).collect());
        (corpus, added)
    }

    /// A run enters the corpus only with a point no earlier run (in run order) reached.
    #[test]
    fn the_corpus_grows_only_on_new_coverage() {
        let g = Generator::new(Envelope::default(), 3, None, "none");
        let runs: [(u64, &[Point]); 4] =
            [(2, &[Point::L1, Point::V3Fail]), (0, &[Point::L1]), (1, &[Point::L1, Point::L5]), (3, &[Point::L5])];
        let (mut corpus, added) = corpus_of(&g, &runs);
        assert_eq!(added, 3);
        let entries: Vec<u64> = corpus.entries.iter().map(|e| e.generated.index).collect();
        assert_eq!(entries, vec![0, 1, 2], "run 3's only point, L5, run 1 reached before it");
        assert_eq!(corpus.add(vec![(g.generate(4).expect("run"), vec![Point::L1, Point::L5])]), 0);
        assert_eq!(corpus.add(vec![(g.generate(5).expect("run"), vec![Point::V3Fail])]), 0);
        assert_eq!(corpus.add(vec![(g.generate(6).expect("run"), vec![Point::L1, Point::V5Pass])]), 1);
        assert_eq!(corpus.add(vec![(g.generate(7).expect("run"), vec![])]), 0);
        assert_eq!(corpus.counts[Point::L1.index()], 5);
    }

    /// Guided runs are valid scenarios, a pure function of (master, index, corpus), derived
    /// from a corpus entry in guided slots only, with a liveness bound of their own.
    #[test]
    fn guided_runs_are_valid_and_deterministic() {
        let g = Generator::new(Envelope::default(), 9, None, "none");
        let base: Vec<(u64, &[Point])> = (0..10).map(|i| (i, std::slice::from_ref(&Point::ALL[i as usize]))).collect();
        let (corpus, _) = corpus_of(&g, &base);
        let mut guided = 0;
        for i in 10..200 {
            let a = g.generate_guided(i, &corpus).unwrap_or_else(|e| panic!("run {i}: {e}"));
            let b = g.generate_guided(i, &corpus).expect("again");
            assert_eq!((&a.text, a.seed), (&b.text, b.seed), "run {i}");
            assert_eq!(a.mode == Mode::Guided, g.guided_slot(i, corpus.generation), "run {i}");
            if a.mode == Mode::Guided {
                guided += 1;
                let (parent, applied) = a.parent.clone().expect("a parent");
                assert!(parent < 10 && !applied.is_empty(), "run {i}");
                assert!(a.scenario.expect.liveness_bound_ms >= 30_000);
            } else {
                assert_eq!(a.text, g.generate(i).expect("ordinary").text);
            }
        }
        assert!((60..=130).contains(&guided), "{guided} guided runs of 190");
    }

    #[test]
    fn removing_a_window_removes_its_start_and_end() {
        let mut t: Table = toml::from_str(
            "[[faults]]\nat_ms = 1\nkind = \"crash\"\nagent = 1\n[[faults]]\nat_ms = 2\nkind = \"partition\"\ngroups = [[0], [1]]\n\
             [[faults]]\nat_ms = 3\nkind = \"restart\"\nagent = 1\n[[faults]]\nat_ms = 4\nkind = \"heal\"\n",
        )
        .expect("toml");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(with_faults(&mut t, |f| remove_window(&mut rng, f)));
        let kinds: Vec<String> = t["faults"].as_array().expect("left").iter().map(|f| kind(f).to_owned()).collect();
        assert!(kinds == ["partition", "heal"] || kinds == ["crash", "restart"], "{kinds:?}");
        assert!(with_faults(&mut t, |f| remove_window(&mut rng, f)));
        assert!(!t.contains_key("faults"), "an emptied list is removed");
        assert!(!with_faults(&mut t, |f| remove_window(&mut rng, f)));
        let mut one = vec![Value::Table(toml::from_str("at_ms = 0\nkind = \"heal\"").expect("toml"))];
        assert!(!shift_fault(&mut rng, &mut one), "a lone fault at 0 has no room to move");
        one[0].as_table_mut().expect("table").insert("at_ms".into(), Value::Integer(5));
        assert!(shift_fault(&mut rng, &mut one) && at_ms(&one[0]) <= 5, "only earlier, not past where it was");
    }
}
