//! Findings: failing runs grouped by (invariant, where), each group's first run shrunk and
//! written as a self-contained scenario file with its reproduce command, its trace and a
//! space-time diagram.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ExploreConfig, ExploreError, Failure, Finding};
use crate::run::{run, RunOptions};
use crate::scenario::{self, Scenario};
use crate::shrink::{self, ShrinkOptions};

/// Groups, shrinks and writes the findings of `failures` (in run order).
pub(super) fn process(
    config: &ExploreConfig,
    out: &Path,
    failures: &[Failure],
    stop: &AtomicBool,
) -> Result<Vec<Finding>, ExploreError> {
    let mut groups: BTreeMap<(String, String), (usize, u64)> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    for (i, f) in failures.iter().enumerate() {
        let key = (f.invariant.clone(), location(f));
        let entry = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            (i, 0)
        });
        entry.1 += 1;
    }
    let dir = out.join("findings");
    if !order.is_empty() {
        fs::create_dir_all(&dir).map_err(|e| ExploreError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut findings = Vec::new();
    for key in order.into_iter().take(config.max_findings) {
        let Some(&(first, hits)) = groups.get(&key) else { continue };
        let Some(failure) = failures.get(first) else { continue };
        let shrink_runs = if stop.load(Ordering::Relaxed) { 1 } else { config.shrink_runs };
        findings.push(write_finding(config, out, failure, key.1, hits, shrink_runs)?);
    }
    Ok(findings)
}

fn location(f: &Failure) -> String {
    format!("{} / {}", f.generated.mode.name(), f.generated.scenario.byzantine.label())
}

fn write_finding(
    config: &ExploreConfig,
    out: &Path,
    failure: &Failure,
    location: String,
    hits: u64,
    shrink_runs: usize,
) -> Result<Finding, ExploreError> {
    let g = &failure.generated;
    let id = format!("{}-{}-{}", failure.invariant, g.mode.name(), g.index);
    let relative = format!("findings/{id}.toml");
    let path = out.join(&relative);
    let seed = g.seed;
    let original = g.scenario.clone();
    let shrunk = shrink::shrink(
        &original,
        ShrinkOptions { max_runs: shrink_runs.max(1) },
        |candidate| shrink::violation_at(candidate, seed),
        |_| {},
    )
    .ok();
    // Keep the shrunk scenario only if it fails the same way read back from its file.
    let mut chosen = shrunk
        .as_ref()
        .filter(|s| s.invariant == failure.invariant)
        .map(|s| s.scenario.clone())
        .filter(|s| replays(s, &path, seed, &failure.invariant))
        .unwrap_or(original);
    chosen.name = id.clone();
    chosen.description = String::new();
    let reproduce =
        format!("bftsim reproduce {} --seed {seed}", crate::merge::shell_quote(&path.display().to_string()));
    let header = format!(
        "# Found by `bftsim explore` (run {} of master seed {}, {}), shrunk: violates `{}`. The run before\n\
         # shrinking: `{}`.\n# Replay: {reproduce}\n",
        g.index,
        config.master,
        g.mode.name(),
        failure.invariant,
        super::emit_command(config, g.index)
    );
    let text = format!("{header}{}", chosen.to_minimal_toml());
    fs::write(&path, &text).map_err(|e| ExploreError::Io(format!("cannot write {}: {e}", path.display())))?;
    let traced = run(&chosen, seed, BTreeMap::new(), RunOptions { trace: true });
    let detail = traced.record.violations.first().map_or_else(|| failure.detail.clone(), |v| v.detail.clone());
    let trace_path = out.join(format!("findings/{id}.trace.jsonl"));
    let lines: Vec<String> = traced.trace.iter().filter_map(|e| serde_json::to_string(e).ok()).collect();
    let trace_text = lines.join("\n") + "\n";
    fs::write(&trace_path, &trace_text)
        .map_err(|e| ExploreError::Io(format!("cannot write {}: {e}", trace_path.display())))?;
    let diagram_relative = format!("findings/{id}.svg");
    let diagram_path = out.join(&diagram_relative);
    let svg = diagram(&trace_text, &id, &failure.invariant, &detail, &traced.trace);
    fs::write(&diagram_path, svg)
        .map_err(|e| ExploreError::Io(format!("cannot write {}: {e}", diagram_path.display())))?;
    Ok(Finding {
        id,
        invariant: failure.invariant.clone(),
        location,
        first_run: g.index + 1,
        hits,
        scenario: relative,
        seed,
        reproduce,
        size_before: shrink::size(&g.scenario),
        size_after: shrink::size(&chosen),
        lines: text.lines().count() as u64,
        diagram: Some(diagram_relative),
        detail,
        trace_hash: traced.record.trace_hash,
    })
}

/// The space-time diagram of a finding's run: the session the violation names, from its
/// opening to the violation (at most 4 s of it, so a stalled session stays readable).
fn diagram(trace_text: &str, id: &str, invariant: &str, detail: &str, trace: &[crate::trace::TraceEvent]) -> String {
    let mut d = reports::spacetime::from_trace_jsonl(trace_text, id);
    let session = detail
        .split("session-")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok());
    let opened = session.and_then(|s| trace.iter().find(|e| e.kind == "open" && e.session == Some(s)));
    let start = opened.map_or(0, |e| e.time_ms);
    let end = trace.iter().rev().find(|e| e.kind == "violation").map_or(start + 4_000, |e| e.time_ms);
    d.session = session;
    d.window_ms = Some((start, end.clamp(start + 1, start + 4_000)));
    // The violation's own words are drawn (wrapped) above the lanes; the title names it.
    d.title = format!("Finding {id}: {invariant} violated");
    reports::spacetime::render_svg(&d)
}

/// Whether `s`, written as a minimal file and read back, still violates `invariant` at `seed`.
fn replays(s: &Scenario, path: &Path, seed: u64, invariant: &str) -> bool {
    let Ok(back) = scenario::parse(&s.to_minimal_toml(), path) else { return false };
    shrink::violation_at(&back, seed).as_deref() == Some(invariant)
}
