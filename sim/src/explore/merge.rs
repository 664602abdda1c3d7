//! Merging the output directories of `bftsim explore --shard I/N` (or of whole explorations of
//! one master seed): runs.jsonl in run order, explore.json summed (decision quality by mode
//! too), findings files and the failing runs' scenario files (`runs/<index>.toml`) copied.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{Coverage, ExploreError, ExploreSummary};
use crate::merge::Shard;

/// Whether `dir` holds the output of `bftsim explore`.
pub fn is_exploration(dir: &Path) -> bool {
    dir.join("explore.json").is_file()
}

/// Merges the explorations in `inputs` into `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<ExploreSummary, ExploreError> {
    let mut summaries = Vec::new();
    for dir in inputs {
        let path = dir.join("explore.json");
        let text = fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let s: ExploreSummary = serde_json::from_str(&text)
            .map_err(|e| ExploreError::Io(format!("{}: not a bftsim explore.json: {e}", path.display())))?;
        summaries.push(s);
    }
    let Some(first) = summaries.first().cloned() else {
        return Err(ExploreError::Io("nothing to merge: name at least one output directory".into()));
    };
    check_one_exploration(inputs, &summaries)?;
    fs::create_dir_all(out.join("findings")).map_err(|e| io(out, e))?;
    fs::create_dir_all(out.join("runs")).map_err(|e| io(out, e))?;
    for dir in inputs {
        copy_generated(&dir.join("runs"), &out.join("runs"))?;
    }
    // runs.jsonl, in run order.
    let mut lines: Vec<(u64, String)> = Vec::new();
    let mut protocol: Vec<(u64, Option<reports::coverage::CoverageRecord>)> = Vec::new();
    for dir in inputs {
        let path = dir.join("runs.jsonl");
        let text = fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let value = serde_json::from_str::<serde_json::Value>(line).ok();
            let index = value
                .as_ref()
                .and_then(|v| v["params"]["explore.index"].as_str().and_then(|i| i.parse().ok()))
                .unwrap_or(u64::MAX);
            let coverage = value.and_then(|mut v| serde_json::from_value(v["coverage"].take()).ok());
            protocol.push((index, coverage));
            lines.push((index, line.to_owned()));
        }
    }
    lines.sort();
    let runs_path = out.join("runs.jsonl");
    let body: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    fs::write(&runs_path, body).map_err(|e| io(&runs_path, e))?;
    let mut merged = ExploreSummary { shard: None, findings: Vec::new(), coverage: Vec::new(), ..first.clone() };
    // Recounted from the merged runs, so the curve follows the run order of the whole sequence.
    merged.protocol_coverage =
        Some(reports::explore::ProtocolCoverage::of_runs(protocol.iter().map(|(k, c)| (*k, c.as_ref()))));
    merged.runs = 0;
    merged.modes = Default::default();
    merged.control_failures = 0;
    merged.quality = Vec::new();
    let mut quality: BTreeMap<String, super::ModeQuality> = BTreeMap::new();
    let mut coverage: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut findings = BTreeMap::new();
    for (dir, s) in inputs.iter().zip(&summaries) {
        merged.runs += s.runs;
        merged.modes.swarm += s.modes.swarm;
        merged.modes.twins += s.modes.twins;
        merged.modes.byzzfuzz += s.modes.byzzfuzz;
        merged.modes.guided += s.modes.guided;
        merged.control_failures += s.control_failures;
        merged.elapsed_ms = merged.elapsed_ms.max(s.elapsed_ms);
        merged.jobs = merged.jobs.max(s.jobs);
        merged.interrupted |= s.interrupted;
        for q in &s.quality {
            quality
                .entry(q.mode.clone())
                .or_insert_with(|| super::ModeQuality { mode: q.mode.clone(), ..Default::default() })
                .merge(q);
        }
        for c in &s.coverage {
            let e = coverage.entry(c.feature.clone()).or_default();
            e.0 += c.runs;
            e.1 += c.violations;
        }
        for f in &s.findings {
            let key = (f.invariant.clone(), f.location.clone());
            let entry = findings.entry(key).or_insert_with(|| (f.clone(), 0, dir));
            entry.1 += f.hits;
            if f.first_run < entry.0.first_run {
                (entry.0, entry.2) = (f.clone(), dir);
            }
        }
    }
    merged.quality = super::generate::Mode::ALL.iter().filter_map(|m| quality.remove(m.name())).collect();
    merged.coverage =
        coverage.into_iter().map(|(feature, (runs, violations))| Coverage { feature, runs, violations }).collect();
    let mut list = Vec::new();
    for (f, hits, dir) in findings.into_values() {
        copy_finding(dir, out, &f)?;
        // The files were copied: replay them from here.
        let path = crate::merge::shell_quote(&out.join(&f.scenario).display().to_string());
        let reproduce = format!("bftsim reproduce {path} --seed {}", f.seed);
        list.push(super::Finding { hits, reproduce, ..f });
    }
    list.sort_by_key(|f| f.first_run);
    merged.findings = list;
    let json = serde_json::to_string_pretty(&merged).map_err(|e| ExploreError::Io(e.to_string()))?;
    let path = out.join("explore.json");
    fs::write(&path, json).map_err(|e| io(&path, e))?;
    Ok(merged)
}

/// An I/O error on `path`.
fn io(path: &Path, e: std::io::Error) -> ExploreError {
    ExploreError::Io(format!("{}: {e}", path.display()))
}

/// Copies a kept finding's files (scenario, trace, diagram) from the shard `dir` that found it
/// first; the scenario's replay line names the copy.
fn copy_finding(dir: &Path, out: &Path, f: &super::Finding) -> Result<(), ExploreError> {
    let files = [Some(f.scenario.clone()), Some(format!("findings/{}.trace.jsonl", f.id)), f.diagram.clone()];
    for file in files.into_iter().flatten() {
        let (from, to) = (dir.join(&file), out.join(&file));
        if !from.is_file() {
            continue;
        }
        if file.ends_with(".toml") {
            let text = fs::read_to_string(&from).map_err(|e| io(&from, e))?;
            let text = text.replace(&from.display().to_string(), &to.display().to_string());
            fs::write(&to, text).map_err(|e| io(&to, e))?;
        } else {
            fs::copy(&from, &to).map_err(|e| io(&from, e))?;
        }
    }
    Ok(())
}

/// Copies every `<index>.toml` of a shard's `runs/` (the failing runs' scenario files) into
/// the merged one, its replay line naming the copy; a shard without `runs/` (written before
/// it existed) has none to copy.
fn copy_generated(from: &Path, to: &Path) -> Result<(), ExploreError> {
    let Ok(entries) = fs::read_dir(from) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().filter(|_| path.extension().is_some_and(|e| e == "toml")) else { continue };
        let io = |e: std::io::Error| ExploreError::Io(format!("{}: {e}", path.display()));
        let copy = to.join(name);
        let text = fs::read_to_string(&path).map_err(io)?;
        let text = text.replace(&path.display().to_string(), &copy.display().to_string());
        fs::write(&copy, text).map_err(|e| ExploreError::Io(format!("{}: {e}", copy.display())))?;
    }
    Ok(())
}

/// What makes explorations the same one, as `(option, value)`: the values must be equal for
/// the runs of several directories to belong together.
fn settings(s: &ExploreSummary) -> Vec<(&'static str, String)> {
    let envelope = if s.envelope_fingerprint.is_empty() {
        s.envelope.clone()
    } else {
        format!("{} (fingerprint {})", s.envelope, s.envelope_fingerprint)
    };
    let shards = match s.shard.as_deref().map(str::parse::<Shard>) {
        Some(Ok(shard)) => format!("shards of {}", shard.count),
        Some(Err(_)) => format!("shard {:?}", s.shard),
        None => "not sharded".to_owned(),
    };
    vec![
        ("--seed", s.master_seed.to_string()),
        ("--mutation", s.mutation.clone()),
        ("--runs", s.budget.map_or_else(|| "no run budget".to_owned(), |r| r.to_string())),
        ("--mode", s.only_mode.clone().unwrap_or_else(|| "every mode".to_owned())),
        ("--shard", shards),
        ("--envelope", envelope),
    ]
}

/// Refuses to merge directories that are not shards of one exploration: a different master
/// seed, mutation, run budget, mode, shard count or envelope (by fingerprint where both
/// recorded one, else by name), or one shard twice. The error names every setting that differs.
fn check_one_exploration(inputs: &[PathBuf], summaries: &[ExploreSummary]) -> Result<(), ExploreError> {
    let (Some(first_dir), Some(first)) = (inputs.first(), summaries.first()) else { return Ok(()) };
    let reference = settings(first);
    for (dir, s) in inputs.iter().zip(summaries).skip(1) {
        let differ: Vec<String> = settings(s)
            .into_iter()
            .zip(&reference)
            .filter(|((key, value), (_, expected))| {
                let envelope_by_fingerprint = *key == "--envelope"
                    && !s.envelope_fingerprint.is_empty()
                    && !first.envelope_fingerprint.is_empty();
                if envelope_by_fingerprint {
                    s.envelope_fingerprint != first.envelope_fingerprint
                } else {
                    value != expected
                }
            })
            .map(|((key, value), (_, expected))| format!("{key}: {value} here, {expected} in {}", first_dir.display()))
            .collect();
        if !differ.is_empty() {
            return Err(ExploreError::Io(format!(
                "{} is not a shard of the exploration in {}: {}. Merge only the shards of one exploration (the same --seed, --mutation, --runs, --mode, --envelope and shard count)",
                dir.display(),
                first_dir.display(),
                differ.join("; ")
            )));
        }
    }
    let mut seen: BTreeMap<&str, &PathBuf> = BTreeMap::new();
    for (dir, s) in inputs.iter().zip(summaries) {
        if let Some(shard) = s.shard.as_deref() {
            if let Some(before) = seen.insert(shard, dir) {
                return Err(ExploreError::Io(format!(
                    "shard {shard} is given twice ({} and {}): give each shard once",
                    before.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: u64, runs: u64) -> ExploreSummary {
        ExploreSummary {
            master_seed: 3,
            runs,
            envelope: "default".into(),
            envelope_fingerprint: "00112233aabbccdd".into(),
            mutation: "no-locking".into(),
            budget: Some(runs),
            shard: Some(format!("{index}/2")),
            ..ExploreSummary::default()
        }
    }

    fn write(dir: &Path, s: &ExploreSummary) {
        fs::create_dir_all(dir).expect("create");
        fs::write(dir.join("explore.json"), serde_json::to_string(s).expect("json")).expect("write");
        fs::write(dir.join("runs.jsonl"), "").expect("write");
    }

    /// Merges the two summaries written as shard directories; the error text if refused.
    fn merge_two(name: &str, a: &ExploreSummary, b: &ExploreSummary) -> Result<ExploreSummary, String> {
        let root = std::env::temp_dir().join(format!("bftsim-merge-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dirs = [root.join("a"), root.join("b")];
        write(&dirs[0], a);
        write(&dirs[1], b);
        let result = merge(&dirs, &root.join("out")).map_err(|e| e.to_string());
        let _ = fs::remove_dir_all(&root);
        result
    }

    #[test]
    fn shards_of_one_exploration_merge() {
        let merged = merge_two("same", &shard(0, 10), &shard(1, 10)).expect("the two shards of one exploration");
        assert_eq!((merged.runs, merged.shard.as_deref()), (20, None));
    }

    #[test]
    fn shards_of_different_explorations_are_refused_naming_what_differs() {
        let e = merge_two("runs", &shard(0, 10), &shard(1, 20)).expect_err("different --runs");
        assert!(e.contains("--runs: 20 here, 10 in"), "{e}");
        assert!(!e.contains("--seed:") && !e.contains("--envelope:"), "only --runs differs: {e}");

        let mut other = shard(1, 10);
        other.master_seed = 4;
        other.envelope_fingerprint = "ffffffffffffffff".into();
        let e = merge_two("seed-envelope", &shard(0, 10), &other).expect_err("different seed and envelope");
        assert!(e.contains("--seed: 4 here, 3 in"), "{e}");
        assert!(e.contains("--envelope: default (fingerprint ffffffffffffffff) here"), "{e}");
        assert!(!e.contains("--runs:"), "{e}");

        let mut other = shard(1, 10);
        other.shard = Some("1/3".into());
        other.only_mode = Some("twins".into());
        let e = merge_two("count-mode", &shard(0, 10), &other).expect_err("different shard count and mode");
        assert!(e.contains("--shard: shards of 3 here, shards of 2 in"), "{e}");
        assert!(e.contains("--mode: twins here, every mode in"), "{e}");
    }

    #[test]
    fn a_shard_given_twice_is_refused() {
        let e = merge_two("twice", &shard(1, 10), &shard(1, 10)).expect_err("shard 1/2 twice");
        assert!(e.contains("shard 1/2 is given twice"), "{e}");
    }

    #[test]
    fn envelopes_without_a_fingerprint_compare_by_name() {
        let mut a = shard(0, 10);
        let mut b = shard(1, 10);
        a.envelope_fingerprint.clear();
        b.envelope_fingerprint.clear();
        assert!(merge_two("names-same", &a, &b).is_ok());
        b.envelope = "mine.toml".into();
        let e = merge_two("names-differ", &a, &b).expect_err("different envelope files");
        assert!(e.contains("--envelope: mine.toml here, default in"), "{e}");
    }
}
