//! One section per scenario: what it is, how its sessions ended, its latency and agreement.

use std::collections::BTreeMap;

use super::{expectation, outcome_sentence, seeds_phrase, verdict, Builder};
use crate::aggregate::{run_outcome_counts, Scenario};
use crate::doc::{code, strong, text, Inline};
use crate::figures::{AgreementData, LatencyData, OutcomeData, Plot};
use crate::SLA_MS;

impl Builder<'_, '_> {
    pub(super) fn scenarios(&mut self) {
        self.doc.heading(2, "scenarios", "Scenario by scenario");
        self.doc.para(vec![text(
            "One section per scenario, in alphabetical order: what happened to its sessions seed by seed, how fast \
             decisions came and how unanimous they were.",
        )]);
        let data = self.data;
        for scenario in &data.scenarios {
            self.scenario(scenario);
        }
    }

    fn scenario(&mut self, s: &Scenario<'_>) {
        let anchor = self.anchors.get(&s.name).cloned().unwrap_or_else(|| s.name.clone());
        self.doc.heading(3, &anchor, s.name.as_str());
        self.doc.para(self.scenario_intro(s));
        let n = s.runs.len();
        let seeds = seeds_phrase(s.runs.iter().copied());

        let outcomes = OutcomeData {
            seeds: s.runs.iter().map(|r| r.seed).collect(),
            counts: s.runs.iter().map(|r| run_outcome_counts(r)).collect(),
            fallback: s.runs.iter().map(|r| r.fallback).collect(),
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
             share of runs whose p50, p95 or p99 was at most that. The dashed red line is the {SLA_MS} ms SLA. {} of \
             {n} runs ({seeds}) decided something and are shown.",
            latencies.len()
        ))];
        let latency = LatencyData {
            p50: latencies.iter().map(|l| l.p50).collect(),
            p95: latencies.iter().map(|l| l.p95).collect(),
            p99: latencies.iter().map(|l| l.p99).collect(),
            sla_ms: SLA_MS,
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
            t.sessions,
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
