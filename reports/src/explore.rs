//! `explore.json`: what `bftsim explore` found, read for the report's Exploration section.
//!
//! `bftsim explore` searches the fault space around a scenario envelope with many generated
//! runs (swarm testing, twins, ByzzFuzz-style message mutations), shrinks every distinct
//! failure and writes `OUT/explore.json`:
//!
//! ```json
//! { "master_seed": 7, "runs": 20000, "jobs": 2, "elapsed_ms": 61000,
//!   "envelope": "scenarios/envelope.toml", "mutation": "none",
//!   "modes": { "swarm": 12000, "twins": 4000, "byzzfuzz": 4000 },
//!   "coverage": [ { "feature": "partition", "runs": 5100, "violations": 3 } ],
//!   "findings": [ { "id": "F1", "invariant": "agreement", "location": "protocol::session L22",
//!                   "first_run": 1834, "hits": 3, "scenario": "findings/F1.min.toml", "seed": 88,
//!                   "reproduce": "bftsim reproduce out/findings/F1.min.toml --seed 88",
//!                   "size_before": 41, "size_after": 9, "lines": 23,
//!                   "diagram": "findings/F1.svg", "detail": "agents 0 and 2 decided …" } ],
//!   "interrupted": false }
//! ```
//!
//! Paths (`scenario`, `diagram`) are relative to `OUT`. Every field is required except
//! `diagram`; unknown fields are ignored, so the explorer may write more.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use consensus_core::protocol::coverage::{Point, VERSION};

use crate::coverage::CoverageRecord;
use crate::model::{RunRecord, WrongByCause};
use crate::ReportError;

/// The whole of `explore.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExploreSummary {
    /// The seed every run's seed was derived from.
    pub master_seed: u64,
    /// Runs made.
    pub runs: u64,
    /// Worker threads.
    pub jobs: u32,
    /// Wall-clock time of the exploration.
    pub elapsed_ms: u64,
    /// The envelope scenario file explored around.
    pub envelope: String,
    /// The protocol mutation explored (`none` for the real protocol).
    pub mutation: String,
    /// Runs per generation mode.
    pub modes: Modes,
    /// Runs and violations per feature of the envelope.
    pub coverage: Vec<Coverage>,
    /// Distinct failures found, each shrunk.
    pub findings: Vec<Finding>,
    /// Whether the exploration was stopped before its budget.
    pub interrupted: bool,
    /// With a mutation: failing runs that also fail without it (failures of the protocol
    /// itself, not findings of the mutation).
    #[serde(default)]
    pub control_failures: u64,
    /// The shard explored (`I/N`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The run budget (`--runs`, of each shard); absent when only time limited the runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// The only mode explored (`--mode`), if one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_mode: Option<String>,
    /// A fingerprint of the envelope's contents (16 hex digits), so that shards explored with
    /// different envelopes under one name are told apart; empty in files written before it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub envelope_fingerprint: String,
    /// Decision quality by generation mode over the runs within the tolerance (at most f_max
    /// Byzantine agents): wrong decisions by cause and by honest margin. Empty in files written
    /// before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<ModeQuality>,
    /// Whether the exploration stopped at its first finding (`--until-found`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_found: bool,
    /// The protocol coverage of all runs together (docs/coverage.md): points reached by family,
    /// those never reached, and the curve of points over runs. Absent in files written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_coverage: Option<ProtocolCoverage>,
}

/// The cumulative protocol coverage of an exploration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ProtocolCoverage {
    /// The version of the point table the names refer to.
    pub version: u32,
    /// Runs whose coverage was read.
    pub runs: u64,
    /// Runs without a readable coverage record (none recorded, or another table version).
    pub unreadable: u64,
    /// Points reached by at least one run.
    pub reached: u64,
    /// Points in the table.
    pub total: u64,
    /// Reached and total by family, in [`crate::coverage::FAMILIES`] order.
    pub families: Vec<FamilyCoverage>,
    /// Every point no run reached, in table order.
    pub never_reached: Vec<String>,
    /// Runs that reached each point, every point of the table listed, in table order.
    pub points: Vec<PointRuns>,
    /// The curve of points over runs (in run order): one entry per run that reached a point no
    /// earlier run reached, with the points reached so far.
    pub curve: Vec<CurvePoint>,
}

/// One family's share of the points.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FamilyCoverage {
    /// The family ([`crate::coverage::family`]).
    pub family: String,
    /// Its points reached.
    pub reached: u64,
    /// Its points.
    pub total: u64,
}

/// How many runs reached one point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PointRuns {
    /// The point's name.
    pub point: String,
    /// Runs that reached it.
    pub runs: u64,
}

/// A step of the coverage curve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CurvePoint {
    /// Runs made up to and including the one that reached something new.
    pub runs: u64,
    /// Points reached by those runs.
    pub reached: u64,
}

impl ProtocolCoverage {
    /// The coverage of runs given as (run index, coverage record); the order of the input does
    /// not matter (the curve follows run indices).
    pub fn of_runs<'r>(runs: impl IntoIterator<Item = (u64, Option<&'r CoverageRecord>)>) -> ProtocolCoverage {
        let mut runs: Vec<(u64, Option<&CoverageRecord>)> = runs.into_iter().collect();
        runs.sort_by_key(|(index, _)| *index);
        let mut counts = [0u64; Point::COUNT];
        let (mut reached, mut unreadable, mut curve) = (0u64, 0u64, Vec::new());
        for (made, (_, record)) in runs.iter().enumerate() {
            let Some(points) = record.and_then(|r| r.points().ok()) else {
                unreadable += 1;
                continue;
            };
            let before = reached;
            for p in points {
                if counts[p.index()] == 0 {
                    reached += 1;
                }
                counts[p.index()] += 1;
            }
            if reached > before {
                curve.push(CurvePoint { runs: made as u64 + 1, reached });
            }
        }
        let families = crate::coverage::FAMILIES
            .iter()
            .map(|family| {
                let of: Vec<&Point> = Point::ALL.iter().filter(|p| crate::coverage::family(**p) == *family).collect();
                let reached = of.iter().filter(|p| counts[p.index()] > 0).count() as u64;
                FamilyCoverage { family: (*family).to_owned(), reached, total: of.len() as u64 }
            })
            .collect();
        ProtocolCoverage {
            version: VERSION,
            runs: runs.len() as u64 - unreadable,
            unreadable,
            reached,
            total: Point::COUNT as u64,
            families,
            never_reached: Point::ALL.iter().filter(|p| counts[p.index()] == 0).map(|p| p.name().to_owned()).collect(),
            points: Point::ALL
                .iter()
                .map(|p| PointRuns { point: p.name().to_owned(), runs: counts[p.index()] })
                .collect(),
            curve,
        }
    }
}

/// Decision quality of one generation mode, over its runs within the tolerance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ModeQuality {
    /// `swarm`, `twins` or `byzzfuzz`.
    pub mode: String,
    /// Runs within the tolerance.
    pub runs: u64,
    /// Their sessions.
    pub sessions: u64,
    /// Decided for the best candidate.
    pub correct: u64,
    /// Decided for another candidate.
    pub wrong: u64,
    /// Sessions whose outcome the Byzantine agents changed ([`crate::model::RunRecord::influenced`]).
    pub influenced: u64,
    /// The wrong decisions by cause and by honest margin.
    pub wrong_by_cause: WrongByCause,
}

impl ModeQuality {
    /// Folds in one run.
    pub fn add(&mut self, run: &RunRecord) {
        self.runs = self.runs.saturating_add(1);
        self.sessions = self.sessions.saturating_add(run.counts.sessions);
        self.correct = self.correct.saturating_add(run.counts.correct.min(run.counts.decided));
        self.wrong = self.wrong.saturating_add(run.wrong());
        self.influenced = self.influenced.saturating_add(run.counts.influenced);
        self.wrong_by_cause.merge(&run.wrong_by_cause);
    }

    /// Adds another mode's (or shard's) counts.
    pub fn merge(&mut self, other: &ModeQuality) {
        self.runs = self.runs.saturating_add(other.runs);
        self.sessions = self.sessions.saturating_add(other.sessions);
        self.correct = self.correct.saturating_add(other.correct);
        self.wrong = self.wrong.saturating_add(other.wrong);
        self.influenced = self.influenced.saturating_add(other.influenced);
        self.wrong_by_cause.merge(&other.wrong_by_cause);
    }

    /// Every mode's counts together, as one row named `all`.
    pub fn total(rows: &[ModeQuality]) -> ModeQuality {
        let mut all = ModeQuality { mode: "all".to_owned(), ..ModeQuality::default() };
        for row in rows {
            all.merge(row);
        }
        all
    }
}

/// Runs per generation mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Modes {
    /// Swarm testing: random subsets of the envelope's features.
    pub swarm: u64,
    /// Twins: Byzantine agents as copies of honest ones with the same key.
    pub twins: u64,
    /// ByzzFuzz: message mutations and network partitions by round.
    pub byzzfuzz: u64,
    /// Guided: derived from a corpus run that reached new protocol coverage (`--guided`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub guided: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// How often one feature of the envelope was exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Coverage {
    /// The feature (a fault kind, a strategy, a network condition…).
    pub feature: String,
    /// Runs that had it.
    pub runs: u64,
    /// Of those, runs with a violation.
    pub violations: u64,
}

/// One distinct failure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// `<invariant>-<mode>-<run index>`, also the file stem under `findings/`.
    pub id: String,
    /// The invariant violated.
    pub invariant: String,
    /// Where in the protocol or engine it broke.
    pub location: String,
    /// Runs explored until the first run with it, that run included (its index in the master
    /// seed's sequence plus one, also across shards).
    pub first_run: u64,
    /// Runs that hit it.
    pub hits: u64,
    /// The shrunk scenario file, relative to `OUT`.
    pub scenario: String,
    /// The seed that replays it.
    pub seed: u64,
    /// The command that replays it.
    pub reproduce: String,
    /// Size of the failing scenario before shrinking (faults + agents + sessions …).
    pub size_before: u64,
    /// Size after shrinking.
    pub size_after: u64,
    /// Lines of the shrunk scenario file.
    pub lines: u64,
    /// The space-time diagram of the shrunk run, an SVG relative to `OUT`.
    #[serde(default)]
    pub diagram: Option<String>,
    /// The trace hash of the shrunk run: what `reproduce` prints when it replays it. Empty in
    /// files written before it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_hash: String,
    /// What happened, in words.
    pub detail: String,
}

impl ExploreSummary {
    /// Runs per second of wall-clock time (0 when no time was recorded).
    pub fn runs_per_second(&self) -> f64 {
        if self.elapsed_ms == 0 {
            0.0
        } else {
            self.runs as f64 * 1000.0 / self.elapsed_ms as f64
        }
    }
}

/// Reads `path` (`OUT/explore.json`) when it exists.
pub fn read(path: &Path) -> Result<Option<ExploreSummary>, ReportError> {
    crate::read_json_if_exists(path, "explore.json")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// The example of the module documentation, verbatim.
    const EXAMPLE: &str = r#"{ "master_seed": 7, "runs": 20000, "jobs": 2, "elapsed_ms": 61000,
  "envelope": "scenarios/envelope.toml", "mutation": "none",
  "modes": { "swarm": 12000, "twins": 4000, "byzzfuzz": 4000 },
  "coverage": [ { "feature": "partition", "runs": 5100, "violations": 3 } ],
  "findings": [ { "id": "F1", "invariant": "agreement", "location": "protocol::session L22",
                  "first_run": 1834, "hits": 3, "scenario": "findings/F1.min.toml", "seed": 88,
                  "reproduce": "bftsim reproduce out/findings/F1.min.toml --seed 88",
                  "size_before": 41, "size_after": 9, "lines": 23,
                  "diagram": "findings/F1.svg", "detail": "agents 0 and 2 decided differently" } ],
  "interrupted": false }"#;

    #[test]
    fn the_documented_example_parses_and_round_trips() {
        let e: ExploreSummary = serde_json::from_str(EXAMPLE).expect("example");
        assert_eq!((e.master_seed, e.runs, e.jobs, e.modes.twins), (7, 20_000, 2, 4_000));
        assert_eq!(e.findings[0].diagram.as_deref(), Some("findings/F1.svg"));
        assert!((e.runs_per_second() - 327.868).abs() < 1e-3);
        let back: ExploreSummary = serde_json::from_str(&serde_json::to_string(&e).expect("json")).expect("back");
        assert_eq!(back, e);
    }

    #[test]
    fn diagram_is_optional_and_other_fields_are_not() {
        let without = EXAMPLE.replace(r#""diagram": "findings/F1.svg", "#, "");
        let e: ExploreSummary = serde_json::from_str(&without).expect("no diagram");
        assert_eq!(e.findings[0].diagram, None);
        let missing = EXAMPLE.replace(r#""interrupted": false"#, r#""extra": 1"#);
        let err = serde_json::from_str::<ExploreSummary>(&missing).expect_err("interrupted is required");
        assert!(err.to_string().contains("interrupted"), "{err}");
        assert_eq!(ExploreSummary::default().runs_per_second(), 0.0);
    }

    /// Cumulative coverage over a few runs given out of order: counts, families, the
    /// never-reached list and the curve in run order; a run without a record is counted apart.
    #[test]
    fn protocol_coverage_adds_runs_in_index_order() {
        use consensus_core::protocol::coverage::Coverage as Points;
        let record = |points: &[Point]| {
            let c = Points::default();
            points.iter().for_each(|p| c.record(*p));
            CoverageRecord::of(&c)
        };
        let (a, b, c) = (record(&[Point::L1, Point::V3Fail]), record(&[Point::L1]), record(&[Point::Ahead0]));
        let pc = ProtocolCoverage::of_runs([(2, Some(&c)), (0, Some(&a)), (1, Some(&b)), (3, None)]);
        assert_eq!((pc.runs, pc.unreadable, pc.reached, pc.total), (3, 1, 3, Point::COUNT as u64));
        assert_eq!(pc.curve, vec![CurvePoint { runs: 1, reached: 2 }, CurvePoint { runs: 3, reached: 3 }]);
        assert_eq!(pc.points[Point::L1.index()], PointRuns { point: "L1".into(), runs: 2 });
        assert_eq!(pc.never_reached.len(), Point::COUNT - 3);
        assert!(!pc.never_reached.iter().any(|n| n == "L1" || n == "V3-fail" || n == "ahead-0"));
        assert!(pc.never_reached.iter().any(|n| n == "V3-pass"));
        let fam = |f: &str| pc.families.iter().find(|x| x.family == f).map(|x| x.reached);
        assert_eq!(
            (fam("rules"), fam("V-checks fail"), fam("V-checks pass"), fam("abstract states")),
            (Some(1), Some(1), Some(0), Some(1))
        );
        assert_eq!(pc.families.iter().map(|f| f.total).sum::<u64>(), Point::COUNT as u64);
    }

    #[test]
    fn a_missing_file_is_no_exploration_and_a_bad_one_is_named() {
        let dir = std::env::temp_dir().join(format!("bftsim-explore-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        assert_eq!(read(&dir.join("explore.json")).expect("missing is fine"), None);
        fs::write(dir.join("explore.json"), "{\n \"runs\": \"many\"\n}").expect("write");
        let err = read(&dir.join("explore.json")).expect_err("bad");
        assert!(err.to_string().contains("explore.json:2:"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}
