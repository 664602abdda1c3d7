//! Merging the output directories of `bftsim explore --shard I/N` (or of whole explorations of
//! one master seed): runs.jsonl in run order, explore.json summed, findings files copied.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{Coverage, ExploreError, ExploreSummary};

/// Whether `dir` holds the output of `bftsim explore`.
pub fn is_exploration(dir: &Path) -> bool {
    dir.join("explore.json").is_file()
}

/// Merges the explorations in `inputs` into `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<ExploreSummary, ExploreError> {
    let io = |path: &Path, e: std::io::Error| ExploreError::Io(format!("{}: {e}", path.display()));
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
    for (dir, s) in inputs.iter().zip(&summaries) {
        if (s.master_seed, &s.mutation, &s.envelope) != (first.master_seed, &first.mutation, &first.envelope) {
            return Err(ExploreError::Io(format!(
                "{} explored master seed {} ({}, envelope {}) but {} explored {} ({}, envelope {}): merge only shards of one exploration",
                dir.display(),
                s.master_seed,
                s.mutation,
                s.envelope,
                inputs[0].display(),
                first.master_seed,
                first.mutation,
                first.envelope
            )));
        }
    }
    fs::create_dir_all(out.join("findings")).map_err(|e| io(out, e))?;
    // runs.jsonl, in run order.
    let mut lines: Vec<(u64, String)> = Vec::new();
    for dir in inputs {
        let path = dir.join("runs.jsonl");
        let text = fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let index = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["params"]["explore.index"].as_str().and_then(|i| i.parse().ok()))
                .unwrap_or(u64::MAX);
            lines.push((index, line.to_owned()));
        }
    }
    lines.sort();
    let runs_path = out.join("runs.jsonl");
    let body: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    fs::write(&runs_path, body).map_err(|e| io(&runs_path, e))?;
    let mut merged = ExploreSummary { shard: None, findings: Vec::new(), coverage: Vec::new(), ..first.clone() };
    merged.runs = 0;
    merged.modes = Default::default();
    merged.control_failures = 0;
    let mut coverage: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut findings = BTreeMap::new();
    for (dir, s) in inputs.iter().zip(&summaries) {
        merged.runs += s.runs;
        merged.modes.swarm += s.modes.swarm;
        merged.modes.twins += s.modes.twins;
        merged.modes.byzzfuzz += s.modes.byzzfuzz;
        merged.control_failures += s.control_failures;
        merged.elapsed_ms = merged.elapsed_ms.max(s.elapsed_ms);
        merged.jobs = merged.jobs.max(s.jobs);
        merged.interrupted |= s.interrupted;
        for c in &s.coverage {
            let e = coverage.entry(c.feature.clone()).or_default();
            e.0 += c.runs;
            e.1 += c.violations;
        }
        for f in &s.findings {
            for file in [Some(f.scenario.clone()), Some(format!("findings/{}.trace.jsonl", f.id)), f.diagram.clone()]
                .into_iter()
                .flatten()
            {
                let from = dir.join(&file);
                if from.is_file() {
                    fs::copy(&from, out.join(&file)).map_err(|e| io(&from, e))?;
                }
            }
            let key = (f.invariant.clone(), f.location.clone());
            let entry = findings.entry(key).or_insert_with(|| (f.clone(), 0));
            entry.1 += f.hits;
            if f.first_run < entry.0.first_run {
                entry.0 = f.clone();
            }
        }
    }
    merged.coverage =
        coverage.into_iter().map(|(feature, (runs, violations))| Coverage { feature, runs, violations }).collect();
    let mut list: Vec<_> = findings
        .into_values()
        .map(|(f, hits)| {
            // The files were copied: replay them from here.
            let reproduce = format!("bftsim reproduce {} --seed {}", out.join(&f.scenario).display(), f.seed);
            super::Finding { hits, reproduce, ..f }
        })
        .collect();
    list.sort_by_key(|f| f.first_run);
    merged.findings = list;
    let json = serde_json::to_string_pretty(&merged).map_err(|e| ExploreError::Io(e.to_string()))?;
    let path = out.join("explore.json");
    fs::write(&path, json).map_err(|e| io(&path, e))?;
    Ok(merged)
}
