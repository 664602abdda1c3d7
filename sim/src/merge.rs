//! Shards and `bftsim merge`: one sweep split over many machines, and the shards' outputs
//! combined into one result set.
//!
//! `bftsim run --shard I/N` runs the jobs whose index in the run's job list (scenario files in
//! the order given, directories in name order, sweep points in expansion order, then seeds) is
//! `I` modulo `N`, and records the shard in `summary.json` ([`SummaryFile::shard`]). The job
//! list depends only on the arguments, so shards `0/N … N−1/N` of the same command are disjoint
//! and together cover the whole run.
//!
//! [`merge`] reads the shards' `summary.json` files (the scenario list, paths, sweep parameters
//! and expectations), streams their `runs.jsonl` files line by line to index every run by
//! (scenario, seed), and writes one `runs.jsonl` sorted by (scenario order, seed) with the
//! records copied byte for byte, and a `summary.json` rebuilt from those records. The result is
//! the same as the unsharded run's: the same runs, the same numbers, and the same reproduce
//! commands.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::results::RunRecord;
use crate::summary::{ScenarioSummary, Summary};

/// The slice `index` of `count` equal slices of a run's job list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Shard {
    /// Which slice, `0 ≤ index < count`.
    pub index: u64,
    /// How many slices.
    pub count: u64,
}

impl Shard {
    /// Whether job number `job` of the run belongs to this shard.
    pub fn contains(self, job: usize) -> bool {
        job as u64 % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 ≤ I < N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let usage = || format!("expected I/N with 0 ≤ I < N, e.g. 0/4 (got {s:?})");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let index: u64 = i.trim().parse().map_err(|_| usage())?;
        let count: u64 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 {
            return Err(format!("the shard count must be at least 1 (got {s:?}): expected I/N with 0 ≤ I < N"));
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the shard count {count}: shards of {count} are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }
}

/// `summary.json` as written by `bftsim run` and `bftsim merge`: the [`Summary`], plus the
/// shard it covers (sharded runs) or the directories it was merged from (merges).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SummaryFile {
    /// The summary.
    #[serde(flatten)]
    pub summary: Summary,
    /// `bftsim run --shard I/N`: which shard of the job list this covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// `bftsim merge`: the directories merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// The run was stopped (Ctrl-C, SIGTERM) before every job ran: `summary.runs` counts the
    /// finished runs and the verdicts cover only them. `bftsim run ... --resume` completes it.
    #[serde(default)]
    pub interrupted: bool,
}

/// The exact command that replays one run: the same text as `Job::reproduce_command`. The
/// path and each `--set` are quoted for a POSIX shell when they hold anything it would split.
pub fn reproduce_command(path: &str, seed: u64, params: &BTreeMap<String, String>) -> String {
    let mut cmd = format!("bftsim reproduce {} --seed {seed}", shell_quote(path));
    for (k, v) in params {
        cmd.push_str(&format!(" --set {}", shell_quote(&format!("{k}={v}"))));
    }
    cmd
}

/// `word` quoted for a POSIX shell when it holds anything but safe characters.
pub use reports::replay::shell_quote;

/// Why a merge failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what `bftsim run` writes.
    #[error("{}: {message}", path.display())]
    Malformed {
        /// The file (with the line for runs.jsonl).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The inputs do not fit together.
    #[error("{0}")]
    Inconsistent(String),
}

/// What a merge wrote.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The merged `runs.jsonl`.
    pub runs_path: PathBuf,
    /// The merged `summary.json`.
    pub summary_path: PathBuf,
    /// The rebuilt summary.
    pub summary: Summary,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MergeError + '_ {
    move |source| MergeError::Io { path: path.to_path_buf(), source }
}

/// The identity of one run in a `runs.jsonl` line (the other fields are not parsed here).
#[derive(Deserialize)]
struct RunKey {
    scenario: String,
    seed: u64,
}

/// Where one run's line is: input, byte offset, length (without the newline).
struct Entry {
    scenario: usize,
    seed: u64,
    input: usize,
    offset: u64,
    len: usize,
}

/// Merges the outputs of `bftsim run` in `inputs` (typically its shards) into `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    if inputs.is_empty() {
        return Err(MergeError::Inconsistent("nothing to merge: name at least one output directory".into()));
    }
    let files = read_summaries(inputs)?;
    check_shards(inputs, &files)?;
    let (seeds, seed_start) = same_seeds(inputs, &files)?;
    let scenarios = scenario_list(inputs, &files)?;
    let entries = index_runs(inputs, &files, &scenarios)?;
    if files.iter().all(|f| f.shard.is_some()) {
        let expected = (scenarios.len() as u64).saturating_mul(seeds);
        if entries.len() as u64 != expected {
            return Err(MergeError::Inconsistent(format!(
                "the shards hold {} runs, but {} scenario(s) × {seeds} seeds make {expected}",
                entries.len(),
                scenarios.len()
            )));
        }
    }
    fs::create_dir_all(out).map_err(io_error(out))?;
    refuse_overwriting_an_input(inputs, out)?;
    let (runs_path, summaries) = copy_runs(inputs, out, &entries, scenarios)?;
    let summary = Summary {
        seeds,
        seed_start,
        runs: entries.len() as u64,
        passed: summaries.iter().all(|s| s.passed),
        scenarios: summaries,
    };
    let file = SummaryFile {
        summary: summary.clone(),
        shard: None,
        merged_from: inputs.iter().map(|d| d.display().to_string()).collect(),
        interrupted: false,
    };
    let summary_path = out.join("summary.json");
    let json = serde_json::to_string_pretty(&file)
        .map_err(|e| MergeError::Malformed { path: summary_path.clone(), message: e.to_string() })?;
    fs::write(&summary_path, json).map_err(io_error(&summary_path))?;
    Ok(Merged { runs_path, summary_path, summary })
}

/// Every input's `summary.json`; an interrupted run is refused.
fn read_summaries(inputs: &[PathBuf]) -> Result<Vec<SummaryFile>, MergeError> {
    let files = inputs
        .iter()
        .map(|dir| {
            let path = dir.join("summary.json");
            let text = fs::read_to_string(&path).map_err(|source| MergeError::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    source.kind(),
                    format!("{source} (is {} the --out directory of a finished bftsim run?)", dir.display()),
                ),
            })?;
            serde_json::from_str::<SummaryFile>(&text)
                .map_err(|e| MergeError::Malformed { path, message: format!("not a bftsim summary.json: {e}") })
        })
        .collect::<Result<Vec<SummaryFile>, MergeError>>()?;
    if let Some((dir, _)) = inputs.iter().zip(&files).find(|(_, f)| f.interrupted) {
        return Err(MergeError::Inconsistent(format!(
            "{} holds an interrupted run: finish it first with the same `bftsim run` command and --resume",
            dir.display()
        )));
    }
    Ok(files)
}

/// The seeds (count, first) every input ran: they must be the same command's.
fn same_seeds(inputs: &[PathBuf], files: &[SummaryFile]) -> Result<(u64, u64), MergeError> {
    let (seeds, seed_start) = (files[0].summary.seeds, files[0].summary.seed_start);
    for (dir, file) in inputs.iter().zip(files) {
        if (file.summary.seeds, file.summary.seed_start) != (seeds, seed_start) {
            return Err(MergeError::Inconsistent(format!(
                "{} ran seeds {}..{} but {} ran seeds {}..{}: merge only outputs of the same command",
                dir.display(),
                file.summary.seed_start,
                file.summary.seed_start.saturating_add(file.summary.seeds),
                inputs[0].display(),
                seed_start,
                seed_start.saturating_add(seeds)
            )));
        }
    }
    Ok((seeds, seed_start))
}

/// Pass 1: every run of every input's `runs.jsonl` (streamed), sorted by (scenario order,
/// seed); a run in two inputs, or a count that differs from the input's summary, is refused.
fn index_runs(
    inputs: &[PathBuf],
    files: &[SummaryFile],
    scenarios: &[ScenarioSummary],
) -> Result<Vec<Entry>, MergeError> {
    let index: BTreeMap<&str, usize> = scenarios.iter().enumerate().map(|(i, s)| (s.scenario.as_str(), i)).collect();
    let mut entries = Vec::new();
    for (input, dir) in inputs.iter().enumerate() {
        let path = dir.join("runs.jsonl");
        let mut reader = BufReader::new(File::open(&path).map_err(io_error(&path))?);
        let mut line = String::new();
        let (mut offset, mut number, mut runs) = (0u64, 0u64, 0u64);
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(io_error(&path))?;
            if read == 0 {
                break;
            }
            number += 1;
            let content = line.trim_end_matches(['\n', '\r']);
            if !content.trim().is_empty() {
                let malformed = |message: String| MergeError::Malformed {
                    path: PathBuf::from(format!("{}:{number}", path.display())),
                    message,
                };
                let key: RunKey =
                    serde_json::from_str(content).map_err(|e| malformed(format!("not a run record: {e}")))?;
                let scenario = *index.get(key.scenario.as_str()).ok_or_else(|| {
                    malformed(format!("scenario {:?} is not in any summary.json being merged", key.scenario))
                })?;
                entries.push(Entry { scenario, seed: key.seed, input, offset, len: content.len() });
                runs += 1;
            }
            offset += read as u64;
        }
        if runs != files[input].summary.runs {
            return Err(MergeError::Inconsistent(format!(
                "{} holds {runs} runs but {} says {}: was the run interrupted or the file changed?",
                path.display(),
                dir.join("summary.json").display(),
                files[input].summary.runs
            )));
        }
    }
    entries.sort_by_key(|e| (e.scenario, e.seed));
    for pair in entries.windows(2) {
        if (pair[0].scenario, pair[0].seed) == (pair[1].scenario, pair[1].seed) {
            return Err(MergeError::Inconsistent(format!(
                "{} seed {} is in both {} and {}: merge each shard once",
                scenarios[pair[0].scenario].scenario,
                pair[0].seed,
                inputs[pair[0].input].display(),
                inputs[pair[1].input].display()
            )));
        }
    }
    Ok(entries)
}

/// Pass 2: copies the runs' lines in `entries`' order into `out/runs.jsonl`, byte for byte,
/// and folds them into the scenarios' summaries.
fn copy_runs(
    inputs: &[PathBuf],
    out: &Path,
    entries: &[Entry],
    mut summaries: Vec<ScenarioSummary>,
) -> Result<(PathBuf, Vec<ScenarioSummary>), MergeError> {
    let runs_path = out.join("runs.jsonl");
    let mut writer = BufWriter::new(File::create(&runs_path).map_err(io_error(&runs_path))?);
    let mut readers = Vec::new();
    for dir in inputs {
        let path = dir.join("runs.jsonl");
        readers.push((BufReader::new(File::open(&path).map_err(io_error(&path))?), 0u64, path));
    }
    let mut buffer = Vec::new();
    for entry in entries {
        let (reader, position, path) = &mut readers[entry.input];
        let delta = i64::try_from(entry.offset).unwrap_or(i64::MAX) - i64::try_from(*position).unwrap_or(i64::MAX);
        reader.seek_relative(delta).map_err(io_error(path))?;
        buffer.resize(entry.len, 0);
        reader.read_exact(&mut buffer).map_err(io_error(path))?;
        *position = entry.offset + entry.len as u64;
        let record: RunRecord = serde_json::from_slice(&buffer).map_err(|e| MergeError::Malformed {
            path: path.clone(),
            message: format!("the run at byte {} is not a run record: {e}", entry.offset),
        })?;
        writer.write_all(&buffer).and_then(|()| writer.write_all(b"\n")).map_err(io_error(&runs_path))?;
        let summary = &mut summaries[entry.scenario];
        let (file, params) = (summary.path.clone(), summary.params.clone());
        summary.add(&record, || reproduce_command(&file, record.seed, &params));
    }
    writer.flush().map_err(io_error(&runs_path))?;
    for s in &mut summaries {
        s.finish();
    }
    Ok((runs_path, summaries))
}

/// Either no input is a shard, or all are shards of the same N, each shard exactly once.
fn check_shards(inputs: &[PathBuf], files: &[SummaryFile]) -> Result<(), MergeError> {
    let sharded: Vec<(&PathBuf, Shard)> =
        inputs.iter().zip(files).filter_map(|(d, f)| f.shard.map(|s| (d, s))).collect();
    if sharded.is_empty() {
        return Ok(());
    }
    if sharded.len() != inputs.len() {
        let whole = inputs.iter().zip(files).find(|(_, f)| f.shard.is_none()).map(|(d, _)| d.display().to_string());
        return Err(MergeError::Inconsistent(format!(
            "{} is a whole run but {} is shard {}: merge either shards of one run or whole runs",
            whole.unwrap_or_default(),
            sharded[0].0.display(),
            sharded[0].1
        )));
    }
    let count = sharded[0].1.count;
    let mut seen: BTreeMap<u64, &PathBuf> = BTreeMap::new();
    for (dir, shard) in &sharded {
        if shard.count != count {
            return Err(MergeError::Inconsistent(format!(
                "{} is shard {shard} but {} is shard {}: all shards must split the run the same way",
                dir.display(),
                sharded[0].0.display(),
                sharded[0].1
            )));
        }
        if let Some(other) = seen.insert(shard.index, dir) {
            return Err(MergeError::Inconsistent(format!(
                "{} and {} are both shard {shard}: merge each shard once",
                other.display(),
                dir.display()
            )));
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !seen.contains_key(i)).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        return Err(MergeError::Inconsistent(format!(
            "shard(s) {} missing: the merged result would not be the whole run",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The scenarios of all inputs, in order of first appearance, as empty summaries; the same
/// scenario must have the same file, parameters and expectations everywhere.
fn scenario_list(inputs: &[PathBuf], files: &[SummaryFile]) -> Result<Vec<ScenarioSummary>, MergeError> {
    let mut list: Vec<ScenarioSummary> = Vec::new();
    let mut first_in: BTreeMap<String, (usize, &PathBuf)> = BTreeMap::new();
    for (dir, file) in inputs.iter().zip(files) {
        for s in &file.summary.scenarios {
            let fresh = ScenarioSummary::new(
                s.scenario.clone(),
                s.path.clone(),
                s.params.clone(),
                s.expect_safety,
                s.expect_invariant.clone(),
            );
            let fresh = match &s.settings {
                Some(settings) => fresh.with_settings(settings.clone()),
                None => fresh,
            };
            match first_in.get(&s.scenario) {
                None => {
                    first_in.insert(s.scenario.clone(), (list.len(), dir));
                    list.push(fresh);
                }
                Some(&(i, other)) => {
                    let known = &list[i];
                    let same = (&known.path, &known.params, known.expect_safety, &known.expect_invariant)
                        == (&fresh.path, &fresh.params, fresh.expect_safety, &fresh.expect_invariant);
                    if !same {
                        return Err(MergeError::Inconsistent(format!(
                            "scenario {} differs between {} and {} (file, sweep parameters or [expect]): merge only outputs of the same scenario files",
                            s.scenario,
                            other.display(),
                            dir.display()
                        )));
                    }
                }
            }
        }
    }
    Ok(list)
}

fn refuse_overwriting_an_input(inputs: &[PathBuf], out: &Path) -> Result<(), MergeError> {
    let out_canonical = fs::canonicalize(out).map_err(io_error(out))?;
    for dir in inputs {
        if fs::canonicalize(dir).ok().as_deref() == Some(out_canonical.as_path()) {
            return Err(MergeError::Inconsistent(format!(
                "--out {} is one of the directories being merged: choose a new directory",
                out.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{RunOutcome, RunRecord, SessionCounts};

    #[test]
    fn shards_parse_and_partition_the_jobs() {
        assert_eq!("2/5".parse(), Ok(Shard { index: 2, count: 5 }));
        assert_eq!("0/1".parse(), Ok(Shard { index: 0, count: 1 }));
        for bad in ["5/5", "6/5", "0/0", "1", "a/2", "-1/2", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        for job in 0..20 {
            assert_eq!(shards.iter().filter(|s| s.contains(job)).count(), 1);
        }
        assert_eq!(Shard { index: 1, count: 4 }.to_string(), "1/4");
    }

    #[test]
    fn reproduce_commands_name_the_sweep_point() {
        let params: BTreeMap<String, String> =
            [("network.drop".to_owned(), "0.1".to_owned()), ("byzantine.count".to_owned(), "1".to_owned())].into();
        assert_eq!(
            reproduce_command("scenarios/s.toml", 7, &params),
            "bftsim reproduce scenarios/s.toml --seed 7 --set byzantine.count=1 --set network.drop=0.1"
        );
        let spaced: BTreeMap<String, String> = [("workload.name".to_owned(), "a b".to_owned())].into();
        assert_eq!(
            reproduce_command("my scenarios/s.toml", 1, &spaced),
            "bftsim reproduce 'my scenarios/s.toml' --seed 1 --set 'workload.name=a b'"
        );
    }

    fn record(scenario: &str, seed: u64, violation: bool) -> RunRecord {
        RunRecord {
            scenario: scenario.into(),
            params: BTreeMap::new(),
            seed,
            outcome: if violation { RunOutcome::Violation } else { RunOutcome::Ok },
            violations: if violation {
                vec![crate::oracle::Violation {
                    invariant: "agreement".into(),
                    step: 1,
                    time_ms: 2,
                    detail: "x".into(),
                }]
            } else {
                vec![]
            },
            counts: SessionCounts { sessions: 2, decided: 2, correct: 1, ..SessionCounts::default() },
            latency_ms: crate::results::LatencySummary { p50: seed, p95: seed, p99: seed, max: seed },
            trace_hash: format!("h{scenario}{seed}"),
            deadline_ms: 500,
            agents: 5,
            sessions_over_sla: Some(0),
            ..RunRecord::default()
        }
    }

    /// Writes a run output the way `bftsim run` does; records in the given (completion) order.
    fn write_output(dir: &Path, shard: Option<Shard>, records: &[RunRecord], names: &[&str], seeds: u64) {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
        let mut summaries: Vec<ScenarioSummary> = names
            .iter()
            .map(|n| ScenarioSummary::new((*n).into(), format!("scenarios/{n}.toml"), BTreeMap::new(), true, None))
            .collect();
        let mut lines = String::new();
        for r in records {
            lines.push_str(&serde_json::to_string(r).unwrap_or_default());
            lines.push('\n');
            let s = summaries.iter_mut().find(|s| s.scenario == r.scenario).unwrap_or_else(|| panic!());
            let path = s.path.clone();
            s.add(r, || reproduce_command(&path, r.seed, &BTreeMap::new()));
        }
        summaries.iter_mut().for_each(ScenarioSummary::finish);
        let summary = Summary {
            seeds,
            seed_start: 0,
            runs: records.len() as u64,
            passed: summaries.iter().all(|s| s.passed),
            scenarios: summaries,
        };
        let file = SummaryFile { summary, shard, merged_from: vec![], interrupted: false };
        fs::write(dir.join("runs.jsonl"), lines).unwrap_or_else(|e| panic!("{e}"));
        fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&file).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bftsim-merge-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn merged_shards_equal_the_whole_run() {
        let root = tempdir("equal");
        let names = ["a", "b"];
        let all: Vec<RunRecord> =
            names.iter().flat_map(|n| (0..5).map(move |seed| record(n, seed, *n == "b" && seed % 2 == 1))).collect();
        write_output(&root.join("whole"), None, &all, &names, 5);
        let mut dirs = Vec::new();
        for index in 0..3 {
            let shard = Shard { index, count: 3 };
            // Completion order is not job order: reverse it.
            let mut mine: Vec<RunRecord> =
                all.iter().enumerate().filter(|(i, _)| shard.contains(*i)).map(|(_, r)| r.clone()).collect();
            mine.reverse();
            let dir = root.join(format!("shard-{index}"));
            write_output(&dir, Some(shard), &mine, &names, 5);
            dirs.push(dir);
        }
        dirs.reverse();
        let merged = merge(&dirs, &root.join("merged")).unwrap_or_else(|e| panic!("{e}"));
        let whole: SummaryFile =
            serde_json::from_str(&fs::read_to_string(root.join("whole/summary.json")).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        // (Compared as JSON: the in-memory summaries also hold the per-run medians' inputs.)
        let json = |s: &Summary| serde_json::to_value(s).unwrap_or_default();
        assert_eq!(json(&merged.summary), json(&whole.summary));
        let back: SummaryFile = serde_json::from_str(&fs::read_to_string(&merged.summary_path).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.summary, whole.summary);
        assert_eq!((back.shard, back.merged_from.len()), (None, 3));
        assert_eq!(
            fs::read_to_string(&merged.runs_path).unwrap_or_default(),
            fs::read_to_string(root.join("whole/runs.jsonl")).unwrap_or_default(),
            "sorted by (scenario order, seed), byte for byte"
        );
        assert_eq!(merged.summary.scenarios[1].failures[0].reproduce, "bftsim reproduce scenarios/b.toml --seed 1");

        // Incomplete, duplicated or mixed inputs are refused.
        let err = |dirs: &[PathBuf]| merge(dirs, &root.join("bad")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(&dirs[..2]).contains("shard(s) 0/3 missing"), "{}", err(&dirs[..2]));
        let twice = [dirs[0].clone(), dirs[0].clone(), dirs[1].clone(), dirs[2].clone()];
        assert!(err(&twice).contains("are both shard 2/3"), "{}", err(&twice));
        let mixed = [root.join("whole"), dirs[0].clone()];
        assert!(err(&mixed).contains("whole run"), "{}", err(&mixed));
        assert!(err(&[root.join("nothing")]).contains("summary.json"));
        let onto_input = merge(&dirs, &dirs[0]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(onto_input.contains("one of the directories being merged"), "{onto_input}");
        // Whole runs of the same seeds are merged as they are (duplicates refused).
        assert!(err(&[root.join("whole"), root.join("whole")]).contains("is in both"));
        let _ = fs::remove_dir_all(&root);
    }
}
