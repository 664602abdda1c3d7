//! Sections across scenarios: Byzantine agents, sweeps, the design's metrics and alerts.

use std::collections::BTreeSet;

use super::{pct, seeds_phrase, Builder};
use crate::aggregate::{self, ratio, Scenario};
use crate::doc::{code, text, Block, Inline, Table};
use crate::figures::{ByzantineData, ByzantinePoint, DetectionData, HeatMetric, HeatmapData, Plot, SweepLineData};
use crate::sweep::{self, Cell, Shape, Sweep};

impl<'d, 'a> Builder<'d, 'a> {
    pub(super) fn across(&mut self) {
        self.doc.heading(2, "across", "Across scenarios");
        self.byzantine_curve();
        self.detection();
        self.families();
    }

    fn byzantine_curve(&mut self) {
        self.doc.heading(3, "byzantine-share", "Accuracy and liveness against the Byzantine share");
        let scenarios = &self.data.scenarios;
        let with_settings = |s: &'d Scenario<'a>| s.runs.iter().map(move |r| (*r, s.settings()));
        let points: Vec<ByzantinePoint> = scenarios
            .iter()
            .filter_map(|s| {
                let shares: Vec<f64> = with_settings(s)
                    .filter_map(|(r, set)| {
                        Some(r.byzantine.len() as f64 / f64::from(aggregate::committee_size(r, set)?))
                    })
                    .collect();
                (!shares.is_empty()).then(|| ByzantinePoint {
                    share: shares.iter().sum::<f64>() / shares.len() as f64,
                    accuracy: s.totals.accuracy(),
                    liveness: s.totals.liveness(),
                    mutation: s.expects_violation(),
                })
            })
            .collect();
        let unplaced = scenarios.len() - points.len();
        let pooled_totals =
            aggregate::by_byzantine_share(scenarios.iter().filter(|s| !s.expects_violation()).flat_map(with_settings));
        let pooled: Vec<(f64, f64, f64)> =
            pooled_totals.iter().map(|(b, t)| (*b as f64 / 1000.0, t.accuracy(), t.liveness())).collect();
        let mutations = points.iter().filter(|p| p.mutation).count();
        let mut explanation = vec![text(format!(
            "Left: accuracy, the share of sessions decided for the correct candidate. Right: liveness, the share \
             of sessions that ended at all (decided, escalated or agreed \"no decision\") rather than staying \
             undecided. Across: the Byzantine share f/n, Byzantine agents over all agents of the run, so \
             committees of different sizes compare; the red dashed line is f = n/3, beyond which n ≥ 3f + 1 fails \
             and the protocol promises nothing. Each circle is one scenario over all its runs ({}), spread slightly \
             sideways so circles do not hide each other; the black line pools every run with that share.",
            seeds_phrase(scenarios.iter().flat_map(|s| s.runs.iter().copied()))
        ))];
        if mutations > 0 {
            explanation.push(text(format!(
                " The {mutations} deliberately broken (mutation) scenarios are drawn as crosses and left out of the \
                 pooled line."
            )));
        }
        if unplaced > 0 {
            explanation.push(text(format!(
                " {unplaced} scenarios are not shown: their records do not say how many agents they had."
            )));
        }
        self.figure(
            "byzantine-accuracy-liveness",
            "Accuracy and liveness vs the Byzantine share",
            explanation,
            (1100, 420),
            Plot::Byzantine(ByzantineData { scenarios: points, pooled }),
        );
        let rows = pooled_totals
            .iter()
            .map(|(b, t)| {
                vec![
                    text(format!("{:.1}%", *b as f64 / 10.0)),
                    text(t.runs.to_string()),
                    text(t.counts.sessions.to_string()),
                    text(pct(t.counts.correct, t.counts.sessions)),
                    text(pct(t.counts.sessions.saturating_sub(t.counts.undecided), t.counts.sessions)),
                ]
            })
            .collect();
        let header = ["Byzantine share f/n", "runs", "sessions", "accuracy", "liveness"];
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric: vec![true; 5], rows }));
    }

    fn detection(&mut self) {
        self.doc.heading(3, "detection", "Byzantine detection");
        let runs = self
            .data
            .scenarios
            .iter()
            .flat_map(|s| s.runs.iter().map(move |r| (*r, s.summary.and_then(|x| x.settings.as_ref()))));
        let groups = aggregate::detection_groups(runs);
        let covered: u64 = groups.iter().map(|g| g.runs).sum();
        let explanation = vec![text(format!(
            "For each Byzantine strategy and detector (or each scenario, where the runs record neither), the mean \
             number per run of Byzantine agents (grey), of those the engine flagged (green: caught) and of honest \
             agents it flagged by mistake (red). A perfect detector has the green bar as long as the grey one and \
             no red bar. Groups with neither Byzantine nor flagged agents are left out; the {} groups shown cover \
             {covered} runs.",
            groups.len()
        ))];
        let height = 34 + 60 + 40 * groups.len().max(1) as u32;
        let rows = groups
            .iter()
            .map(|g| {
                vec![
                    text(g.label.as_str()),
                    text(g.runs.to_string()),
                    text(g.byzantine.to_string()),
                    text(g.caught.to_string()),
                    text(pct(g.caught, g.byzantine)),
                    text(g.wrongly_flagged.to_string()),
                    text(format!("{:.2}", ratio(g.wrongly_flagged, g.runs))),
                ]
            })
            .collect();
        self.figure(
            "byzantine-detection",
            "Byzantine agents caught vs honest agents wrongly flagged",
            explanation,
            (1100, height),
            Plot::Detection(DetectionData { groups }),
        );
        let header = [
            "strategy / detector (or scenario)",
            "runs",
            "Byzantine agents (sum over runs)",
            "caught",
            "caught share",
            "honest wrongly flagged",
            "wrongly flagged per run",
        ];
        let numeric = vec![false, true, true, true, true, true, true];
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows }));
    }

    pub(super) fn sweeps(&mut self) {
        self.doc.heading(2, "sweeps", "Parameter sweeps");
        let sweeps = sweep::sweeps(&self.data.scenarios);
        if sweeps.is_empty() {
            self.doc.para(vec![
                text("No sweep in this result set. A sweep is a scenario file with a "),
                code("[sweep]"),
                text(" table: every combination of its axes' values runs as its own scenario, and its runs carry the values in "),
                code("params"),
                text("."),
            ]);
            return;
        }
        for sweep in &sweeps {
            self.sweep(sweep);
        }
    }

    fn sweep(&mut self, sweep: &Sweep) {
        self.doc.heading(3, &format!("sweep-{}", sweep.base), format!("Sweep {}", sweep.base));
        let runs = if sweep.runs_min == sweep.runs_max {
            format!("{} seeds", sweep.runs_min)
        } else {
            format!("{} to {} seeds", sweep.runs_min, sweep.runs_max)
        };
        let mut intro = vec![code(sweep.base.as_str()), text(" varies ")];
        push_joined(&mut intro, sweep.axes.iter().map(|a| code(a.as_str())), " and ");
        intro.push(text(format!("; each combination (sweep point) ran {runs}.")));
        self.doc.para(intro);
        match &sweep.shape {
            Shape::Line(line) => {
                let explanation = vec![text(format!(
                    "Left: the share of sessions decided at each value of {axis}. Right: the p99 latency (the \
                     median over the point's runs of each run's 99th-percentile decision latency), with the \
                     SLA (each point's session deadline) dashed. Each point covers {runs}.",
                    axis = line.axis
                ))];
                let stem = format!("sweep-{}-lines", sweep.base);
                let plot = Plot::SweepLine(SweepLineData { line: line.clone() });
                self.figure(
                    &stem,
                    &format!("Sweep {}: success and p99 latency", sweep.base),
                    explanation,
                    (1100, 400),
                    plot,
                );
                let rows =
                    line.values.iter().zip(&line.cells).map(|(v, c)| cell_row(vec![code(v.as_str())], c)).collect();
                self.sweep_table(vec![line.axis.clone()], rows);
            }
            Shape::Grid(grid) => {
                let pooled = if grid.pooled_axes.is_empty() {
                    String::new()
                } else {
                    format!(" Values are pooled over {}.", grid.pooled_axes.join(", "))
                };
                let size = (200 + 140 * grid.xs.len() as u32).clamp(600, 1100);
                let size = (size, (130 + 70 * grid.ys.len() as u32).clamp(320, 900));
                let explanation = vec![text(format!(
                    "Each cell is one combination of {x} (across) and {y} (up); its colour and number give the share \
                     of its sessions that were decided, over all its runs ({runs} each).{pooled}",
                    x = grid.x_axis,
                    y = grid.y_axis
                ))];
                let plot = Plot::Heatmap(HeatmapData { grid: grid.clone(), metric: HeatMetric::Success });
                self.figure(
                    &format!("sweep-{}-success", sweep.base),
                    &format!("Sweep {}: success rate", sweep.base),
                    explanation,
                    size,
                    plot,
                );
                let explanation = vec![text(format!(
                    "The same grid, coloured by p99 latency: the median over the point's runs of each run's \
                     99th-percentile decision latency. Cells above their SLA (the point's session deadline) have a red \
                     border; grey cells \
                     decided nothing, so there is no latency to show.{pooled}"
                ))];
                let plot = Plot::Heatmap(HeatmapData { grid: grid.clone(), metric: HeatMetric::P99 });
                self.figure(
                    &format!("sweep-{}-p99", sweep.base),
                    &format!("Sweep {}: p99 latency", sweep.base),
                    explanation,
                    size,
                    plot,
                );
                let mut rows = Vec::new();
                for (y, row) in grid.ys.iter().zip(&grid.cells) {
                    for (x, cell) in grid.xs.iter().zip(row) {
                        if let Some(cell) = cell {
                            rows.push(cell_row(vec![code(x.as_str()), code(y.as_str())], cell));
                        }
                    }
                }
                self.sweep_table(vec![grid.x_axis.clone(), grid.y_axis.clone()], rows);
            }
        }
    }

    fn sweep_table(&mut self, mut header: Vec<String>, rows: Vec<Vec<Inline>>) {
        let mut numeric = vec![false; header.len()];
        header.extend(["runs".into(), "success (decided)".into(), "p99 latency, median of runs".into()]);
        numeric.extend([true, true, true]);
        self.doc.push(Block::Table(Table { header, numeric, rows }));
    }

    pub(super) fn metrics(&mut self) {
        self.doc.heading(2, "metrics", "The design's monitoring metrics");
        self.doc.para(vec![text(
            "The engine's own monitoring (the design's ConsensusMetrics, section 6.1) computed at the end of each run, averaged \
             over the scenario's runs. Times are in milliseconds. Timeout rate: sessions that timed out. Success \
             rate: sessions decided (fallback included). Agreement: mean agreement of decided sessions. Byzantine \
             detection rate: flagged votes over all votes. Active, quarantined and excluded: agents whose votes \
             count, agents temporarily excluded, agents permanently excluded. Performance variance: variance of \
             the agents' accuracy multipliers (0 = all equal, at most 0.25).",
        )]);
        let header = [
            "scenario",
            "runs",
            "avg time",
            "p95 time",
            "p99 time",
            "timeout rate",
            "success rate",
            "avg agreement",
            "Byzantine detection rate",
            "active",
            "quarantined",
            "excluded",
            "performance variance",
        ];
        let ppm = |v: f64| format!("{:.1}%", v / 1e4);
        let rows = self
            .data
            .scenarios
            .iter()
            .map(|s| {
                let m = aggregate::average_metrics(&s.runs);
                vec![
                    self.scenario_link(&s.name),
                    text(s.runs.len().to_string()),
                    text(format!("{:.0}", m.average_consensus_time_ms)),
                    text(format!("{:.0}", m.p95_consensus_time_ms)),
                    text(format!("{:.0}", m.p99_consensus_time_ms)),
                    text(ppm(m.timeout_rate)),
                    text(ppm(m.consensus_success_rate)),
                    text(ppm(m.average_agreement_rate)),
                    text(ppm(m.byzantine_detection_rate)),
                    text(format!("{:.1}", m.active_agents)),
                    text(format!("{:.1}", m.quarantined_agents)),
                    text(format!("{:.1}", m.excluded_agents)),
                    text(format!("{:.4}", m.agent_performance_variance / 1e6)),
                ]
            })
            .collect();
        let mut numeric = vec![true; header.len()];
        numeric[0] = false;
        self.doc.push(Block::Table(Table { header: header.map(String::from).to_vec(), numeric, rows }));
    }

    pub(super) fn alerts(&mut self) {
        self.doc.heading(2, "alerts", "Alerts that fired");
        let titles: BTreeSet<String> =
            self.data.scenarios.iter().flat_map(|s| s.runs.iter().flat_map(|r| r.alerts.iter().cloned())).collect();
        self.doc.para(vec![text(
            "The design's monitoring raises alerts from a run's metrics with its thresholds: High Consensus \
             Timeout Rate (over 5% of sessions timed out), Consensus SLA Violation (p99 latency over the scenario's \
             session deadline, the design's 500 ms by default), \
             High Byzantine Detection Rate (over 10% of votes flagged) and Low Consensus Success Rate (under 95% \
             decided). Each cell counts the runs of the scenario in which the alert fired.",
        )]);
        if titles.is_empty() {
            self.doc.para(vec![text("No alert fired in any run.")]);
            return;
        }
        let mut header = vec!["scenario".to_owned(), "runs".to_owned()];
        header.extend(titles.iter().cloned());
        let rows = self
            .data
            .scenarios
            .iter()
            .filter_map(|s| {
                let counts = aggregate::alert_counts(&s.runs);
                if counts.is_empty() {
                    return None;
                }
                let mut row = vec![self.scenario_link(&s.name), text(s.runs.len().to_string())];
                row.extend(titles.iter().map(|t| text(counts.get(t).copied().unwrap_or(0).to_string())));
                Some(row)
            })
            .collect();
        let mut numeric = vec![true; header.len()];
        numeric[0] = false;
        self.doc.para(vec![text("Scenarios in which no alert fired are not listed.")]);
        self.doc.push(Block::Table(Table { header, numeric, rows }));
    }
}

fn cell_row(mut row: Vec<Inline>, cell: &Cell) -> Vec<Inline> {
    row.push(text(cell.runs.to_string()));
    row.push(text(format!("{:.1}%", cell.success * 100.0)));
    row.push(text(cell.p99_ms.map_or_else(|| "–".to_owned(), |ms| format!("{ms} ms"))));
    row
}

fn push_joined(out: &mut Vec<Inline>, items: impl Iterator<Item = Inline>, separator: &str) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(text(separator));
        }
        out.push(item);
    }
}
