//! The scenarios: those that missed their expectations (or, without `summary.json`, broke an
//! invariant) in full: settings, fault timeline, SLA, what to replay, figures; every other
//! scenario as one line of a table.

use std::collections::BTreeMap;

use super::{expectation, median_p99, outcome_sentence, pct, seeds_phrase, verdict, Builder};
use crate::aggregate::{network_condition, run_outcome_counts, Scenario};
use crate::doc::{code, strong, text, Block, Inline, Table};
use crate::figures::{AgreementData, LatencyData, OutcomeData, Plot};
use crate::humanize;
use crate::model::RunRecord;
use crate::summary::ScenarioSettings;

/// The anchor of the table of scenarios shown as one line.
pub const PASSED_ANCHOR: &str = "scenarios-in-brief";

/// Runs listed per kind in a scenario's replay table.
const REPLAY_PER_KIND: usize = 3;

/// Whether a scenario gets a section of its own: it missed its expectations, or (without a
/// verdict in `summary.json`) it broke an invariant without expecting to.
pub fn in_full(s: &Scenario<'_>) -> bool {
    match s.summary.map(|x| x.passed) {
        Some(passed) => !passed,
        None => s.totals.violation_runs > 0 && !s.expects_violation(),
    }
}

impl Builder<'_, '_> {
    pub(super) fn scenarios(&mut self) {
        let data = self.data;
        let (full, brief): (Vec<&Scenario<'_>>, Vec<&Scenario<'_>>) = data.scenarios.iter().partition(|s| in_full(s));
        if !full.is_empty() {
            self.doc.heading(2, "scenarios", "Scenarios that need attention");
            self.doc.para(vec![text(
                "Every scenario that missed the expectations written in its file (or, without summary.json, broke an \
                 invariant): its settings and faults, its SLA, the runs to replay, and what happened seed by seed.",
            )]);
            for scenario in full {
                self.scenario(scenario);
            }
        }
        self.brief_table(&brief);
    }

    fn brief_table(&mut self, brief: &[&Scenario<'_>]) {
        if brief.is_empty() {
            return;
        }
        self.doc.heading(2, PASSED_ANCHOR, "Scenarios in brief");
        self.doc.para(vec![text(
            "Every other scenario, one line each: what it sets, how its sessions ended, the share decided after its \
             SLA (the scenario's session deadline), and its verdict.",
        )]);
        let header = [
            "scenario",
            "settings",
            "runs",
            "decided correct",
            "undecided",
            "over the SLA",
            "p99 latency, median of runs",
            "runs with a violation",
            "expected",
            "verdict",
        ];
        let rows = brief
            .iter()
            .map(|s| {
                let t = &s.totals;
                vec![
                    code(s.name.as_str()),
                    text(settings_line(s)),
                    text(t.runs.to_string()),
                    text(pct(t.counts.correct, t.counts.sessions)),
                    text(pct(t.counts.undecided, t.counts.sessions)),
                    text(over_sla_cell(s)),
                    text(median_p99(&s.runs)),
                    text(t.violation_runs.to_string()),
                    text(expectation(s)),
                    text(verdict(s)),
                ]
            })
            .collect();
        let numeric = vec![false, false, true, true, true, true, true, true, false, false];
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows }));
    }

    fn scenario(&mut self, s: &Scenario<'_>) {
        let anchor = self.anchors.get(&s.name).cloned().unwrap_or_else(|| s.name.clone());
        self.doc.heading(3, &anchor, s.name.as_str());
        self.doc.para(self.scenario_intro(s));
        self.settings(s);
        self.sla(s);
        self.scenario_replays(s);
        let n = s.runs.len();
        let seeds = seeds_phrase(s.runs.iter().copied());

        let outcomes = OutcomeData {
            seeds: s.runs.iter().map(|r| r.seed).collect(),
            counts: s.runs.iter().map(|r| run_outcome_counts(r)).collect(),
            fallback: s.runs.iter().map(|r| r.counts.fallback).collect(),
            violation: s.runs.iter().map(|r| !r.violations.is_empty()).collect(),
        };
        let explanation = vec![text(format!(
            "Each bar is one run ({n} runs, {seeds}): its sessions stacked by how they ended. A black outline marks \
             the sessions decided by the timeout fallback (part of the decided colours, not extra); a red triangle \
             marks a run that violated an invariant."
        ))];
        self.figure(
            &format!("{}-outcomes", s.name),
            "Outcome of every session, per seed",
            explanation,
            (1100, 400),
            Plot::Outcomes(outcomes),
        );

        let latencies = s.latencies();
        let explanation = vec![text(format!(
            "Each run summarises its decision latencies (from a session's start to an honest agent's decision) by \
             percentiles. Left: how many runs had each p50 (blue) and p99 (red) value. Right: for each latency, the \
             share of runs whose p50, p95 or p99 was at most that. The dashed red line is the scenario's SLA, \
             its {} ms session deadline. {} of {n} runs ({seeds}) decided something and are shown.",
            s.deadline_ms(),
            latencies.len()
        ))];
        let latency = LatencyData {
            p50: latencies.iter().map(|l| l.p50).collect(),
            p95: latencies.iter().map(|l| l.p95).collect(),
            p99: latencies.iter().map(|l| l.p99).collect(),
            sla_ms: s.deadline_ms(),
        };
        self.figure(
            &format!("{}-latency", s.name),
            "Decision latency: histogram and CDF",
            explanation,
            (1100, 380),
            Plot::Latency(latency),
        );

        let rates = s.agreement_rates();
        let explanation = vec![text(format!(
            "How unanimous the decisions were: each run's mean share of agents that voted for the decided outcome, \
             counted in 20 equal bins (100% = every agent agreed; the axis starts at the lowest rate rounded down). {} of {n} runs ({seeds}) decided at least one session \
             and are shown.",
            rates.len()
        ))];
        self.figure(
            &format!("{}-agreement", s.name),
            "Agreement rate per run",
            explanation,
            (1100, 300),
            Plot::Agreement(AgreementData { rates }),
        );
    }

    fn settings(&mut self, s: &Scenario<'_>) {
        let Some(set) = s.settings() else {
            self.doc.para(vec![text("The summary does not record this scenario's settings; see its file.")]);
            return;
        };
        let mut items: Vec<Vec<Inline>> = Vec::new();
        if !set.description.is_empty() {
            items.push(vec![strong("What it is: "), text(set.description.as_str())]);
        }
        let byzantine = match set.byzantine {
            0 => "none".to_owned(),
            f => format!("{f} ({})", set.strategy),
        };
        items.push(vec![
            strong("Agents: "),
            text(format!(
                "{} (tolerates f_max = {}); Byzantine: {byzantine}",
                set.agents,
                crate::aggregate::f_max(set.agents)
            )),
        ]);
        items.push(vec![
            strong("Protocol: "),
            text(format!(
                "threshold {:.0}%, session deadline (the SLA) {} ms, fallback {}, detector {}, mutation {}",
                set.threshold * 100.0,
                set.deadline_ms,
                set.fallback,
                set.detector,
                set.mutation
            )),
        ]);
        items.push(vec![
            strong("Workload: "),
            text(format!(
                "{} sessions of {} candidates, at most {} at a time",
                set.sessions, set.candidates, set.concurrency
            )),
        ]);
        items.push(vec![strong("Network: "), text(network_line(set))]);
        if !s.params.is_empty() {
            let params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            items.push(vec![strong("Sweep point: "), code(params.join(", "))]);
        }
        self.doc.push(Block::List(items));
        if !set.faults.is_empty() {
            self.doc.para(vec![strong("Fault timeline"), text(" (simulated time):")]);
            let faults = set
                .faults
                .iter()
                .map(|f| {
                    let target = if f.target.is_empty() { String::new() } else { format!(" {}", f.target) };
                    vec![text(format!("{} ms: ", f.at_ms)), strong(f.kind.as_str()), text(target)]
                })
                .collect();
            self.doc.push(Block::List(faults));
        }
    }

    fn sla(&mut self, s: &Scenario<'_>) {
        let t = &s.totals;
        let over = match t.over_sla_share() {
            Some(share) => format!(
                "{:.1}% of its sessions ({} of {}) were decided later than that (first honest decision).",
                share * 100.0,
                t.over_sla,
                t.over_sla_of
            ),
            None => "Its records do not say how many sessions were decided later than that.".to_owned(),
        };
        self.doc.para(vec![
            strong("SLA: "),
            text(format!(
                "{} ms, the scenario's session deadline. {over} Median over runs of the p99 latency: {}.",
                s.deadline_ms(),
                median_p99(&s.runs)
            )),
        ]);
    }

    fn scenario_replays(&mut self, s: &Scenario<'_>) {
        let mut rows: Vec<Vec<Inline>> = Vec::new();
        let source = &self.data.source;
        let mut add = |what: &str, run: &RunRecord, detail: String| {
            rows.push(vec![
                text(what),
                text(run.seed.to_string()),
                text(detail),
                super::command_cell(source.command(s.summary, run)),
            ]);
        };
        for run in s.runs.iter().filter(|r| !r.violations.is_empty()).take(REPLAY_PER_KIND) {
            for v in &run.violations {
                let detail = format!("at {} ms (step {}): {}", v.time_ms, v.step, humanize::detail(&v.detail));
                add(&format!("{} violated", v.invariant), run, detail);
            }
        }
        let mut wrong: Vec<&RunRecord> =
            s.runs.iter().copied().filter(|r| r.wrong() + r.counts.escalated + r.counts.undecided > 0).collect();
        wrong.sort_by_key(|r| (std::cmp::Reverse(r.wrong() + r.counts.escalated + r.counts.undecided), r.seed));
        for run in wrong.into_iter().take(REPLAY_PER_KIND) {
            let detail = format!(
                "of {} sessions: {} decided wrong, {} escalated, {} undecided",
                run.counts.sessions,
                run.wrong(),
                run.counts.escalated,
                run.counts.undecided
            );
            add("wrong, escalated or undecided", run, detail);
        }
        let mut slow: Vec<&RunRecord> = s.runs.iter().copied().filter(|r| r.latency_ms.is_recorded()).collect();
        slow.sort_by_key(|r| (std::cmp::Reverse(r.latency_ms.max), r.seed));
        for run in slow.into_iter().take(REPLAY_PER_KIND) {
            let detail = format!(
                "slowest decision {} ms, p99 {} ms, SLA {} ms",
                run.latency_ms.max, run.latency_ms.p99, run.deadline_ms
            );
            add("slowest", run, detail);
        }
        if rows.is_empty() {
            return;
        }
        self.doc.para(vec![
            strong("Runs to replay"),
            text(" (the first violations, the most wrong, escalated or undecided sessions, the slowest):"),
        ]);
        let header = ["what", "seed", "what happened", "reproduce"];
        let numeric = vec![false, true, false, false];
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows }));
    }

    fn scenario_intro(&self, s: &Scenario<'_>) -> Vec<Inline> {
        let t = &s.totals;
        let mut intro = Vec::new();
        if let Some(path) = s.summary.map(|x| x.path.as_str()).filter(|p| !p.is_empty()) {
            intro.extend([text("File "), code(path), text(". ")]);
        }
        if !s.params.is_empty() {
            let params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            intro.extend([text("Sweep point "), code(params.join(", ")), text(". ")]);
        }
        intro.push(text(format!(
            "{} runs ({}), {} sessions: {}",
            t.runs,
            seeds_phrase(s.runs.iter().copied()),
            t.counts.sessions,
            outcome_sentence(t)
        )));
        if t.violation_runs > 0 {
            let mut by_invariant: BTreeMap<&str, u64> = BTreeMap::new();
            for v in s.runs.iter().flat_map(|r| r.violations.iter()) {
                *by_invariant.entry(v.invariant.as_str()).or_default() += 1;
            }
            let list: Vec<String> = by_invariant.iter().map(|(k, c)| format!("{k} ×{c}")).collect();
            intro.push(text(format!(" {} runs violated an invariant ({}).", t.violation_runs, list.join(", "))));
        } else {
            intro.push(text(" No run violated an invariant."));
        }
        if s.summary.is_some() {
            intro.extend([
                text(" Expected: "),
                strong(expectation(s)),
                text("; verdict: "),
                strong(verdict(s)),
                text("."),
            ]);
        }
        intro
    }
}

/// `5 agents, 1 Byzantine (equivocate); message loss; SLA 500 ms`.
fn settings_line(s: &Scenario<'_>) -> String {
    let condition = network_condition(s.settings(), &s.params);
    match s.settings() {
        Some(set) => {
            let byzantine = match set.byzantine {
                0 => String::new(),
                f => format!(", {f} Byzantine ({})", set.strategy),
            };
            let mutation = if set.mutation.is_empty() || set.mutation == "none" {
                String::new()
            } else {
                format!(", mutation {}", set.mutation)
            };
            format!("{} agents{byzantine}{mutation}; {condition}; SLA {} ms", set.agents, s.deadline_ms())
        }
        None => {
            let agents = s.runs.first().and_then(|r| crate::aggregate::committee_size(r, None));
            let agents = agents.map(|n| format!("{n} agents; ")).unwrap_or_default();
            format!("{agents}{condition}; SLA {} ms", s.deadline_ms())
        }
    }
}

fn over_sla_cell(s: &Scenario<'_>) -> String {
    let t = &s.totals;
    match t.over_sla_share() {
        Some(share) => format!("{:.1}% (SLA {} ms)", share * 100.0, s.deadline_ms()),
        None => "–".to_owned(),
    }
}

fn network_line(set: &ScenarioSettings) -> String {
    let mut parts = vec![format!("latency {}–{} ms", set.latency_ms[0], set.latency_ms[1])];
    if !set.tail.is_empty() {
        parts.push(format!("tail {}", set.tail));
    }
    if set.drop > 0.0 {
        parts.push(format!("drop {}%", set.drop * 100.0));
    }
    if set.duplicate > 0.0 {
        parts.push(format!("duplicates {}%", set.duplicate * 100.0));
    }
    parts.join(", ")
}
