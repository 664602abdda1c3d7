//! Charts of runs: outcomes per scenario and per seed, latency, agreement.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    category_label, cdf, empty_note, headroom, histogram, int_label, label_font, legend, truncate, Drawn, Mark, BLUE,
    MESH, ORANGE, OUTCOME_COLORS, RED, VERMILLION,
};
use crate::aggregate::OUTCOME_CATEGORIES;

/// Height of the legend strip above a chart.
const LEGEND_PX: u32 = 52;

/// One scenario's row of the overview chart.
#[derive(Clone, Debug, Default)]
pub struct OverviewRow {
    /// Scenario name.
    pub label: String,
    /// Sessions by outcome category, summed over runs.
    pub counts: [u64; 6],
    /// Sessions decided by the fallback.
    pub fallback: u64,
    /// Runs.
    pub runs: u64,
    /// Runs with a violation.
    pub violation_runs: u64,
}

/// Every scenario's sessions by outcome.
#[derive(Clone, Debug, Default)]
pub struct OverviewData {
    /// Rows, drawn top to bottom.
    pub rows: Vec<OverviewRow>,
}

/// One scenario's sessions by outcome, per seed.
#[derive(Clone, Debug, Default)]
pub struct OutcomeData {
    /// Seeds, in bar order.
    pub seeds: Vec<u64>,
    /// Sessions by outcome category, per seed.
    pub counts: Vec<[u64; 6]>,
    /// Fallback decisions per seed.
    pub fallback: Vec<u64>,
    /// Whether the run of that seed violated an invariant.
    pub violation: Vec<bool>,
}

/// One scenario's per-run latency percentiles.
#[derive(Clone, Debug, Default)]
pub struct LatencyData {
    /// Per-run medians.
    pub p50: Vec<u64>,
    /// Per-run 95th percentiles.
    pub p95: Vec<u64>,
    /// Per-run 99th percentiles.
    pub p99: Vec<u64>,
    /// The SLA line.
    pub sla_ms: u64,
}

/// One scenario's per-run agreement rates, in `[0, 1]`.
#[derive(Clone, Debug, Default)]
pub struct AgreementData {
    /// Rates.
    pub rates: Vec<f64>,
}

fn outcome_legend() -> Vec<(&'static str, Mark)> {
    let mut items: Vec<(&str, Mark)> =
        OUTCOME_CATEGORIES.iter().zip(OUTCOME_COLORS).map(|(name, color)| (*name, Mark::Box(color))).collect();
    items.push(("of the decided: by timeout fallback", Mark::Outline(BLACK)));
    items
}

/// Horizontal 100 % bars: each scenario's sessions by outcome.
pub fn overview<DB: DrawingBackend>(data: &OverviewData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (top, body) = root.split_vertically(LEGEND_PX);
    legend(&top, &outcome_legend())?;
    if data.rows.is_empty() {
        return empty_note(&body, "no runs");
    }
    let n = data.rows.len();
    let labels: Vec<String> = data.rows.iter().rev().map(|r| truncate(&r.label, 60)).collect();
    let label_px = labels.iter().map(|l| l.chars().count()).max().unwrap_or(10).clamp(10, 60) as u32 * 7 + 10;
    let mut chart = ChartBuilder::on(&body)
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..135.0_f64, -0.5..(n as f64 - 0.5))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(2 * n + 2)
        .y_label_formatter(&|v| category_label(&labels, *v))
        .x_labels(14)
        .x_label_formatter(&|v| if *v <= 100.0 + 1e-9 { format!("{v:.0}%") } else { String::new() })
        .x_desc("share of the scenario's sessions (all seeds together)")
        .label_style(label_font(12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    let beyond = Rectangle::new([(100.3, -0.5), (135.0, n as f64 - 0.5)], WHITE.filled());
    chart.draw_series([beyond])?;
    for (i, row) in data.rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let total = row.counts.iter().fold(0_u64, |a, b| a.saturating_add(*b));
        let pct = |x: u64| if total == 0 { 0.0 } else { x as f64 * 100.0 / total as f64 };
        let mut left = 0.0;
        for (count, color) in row.counts.iter().zip(OUTCOME_COLORS) {
            let right = left + pct(*count);
            if *count > 0 {
                chart.draw_series([Rectangle::new([(left, y - 0.38), (right, y + 0.38)], color.filled())])?;
            }
            left = right;
        }
        if row.fallback > 0 {
            let outline = Rectangle::new([(0.0, y - 0.2), (pct(row.fallback), y + 0.2)], BLACK.stroke_width(2));
            chart.draw_series([outline])?;
        }
        let note = match (total, row.violation_runs) {
            (0, _) => "no sessions".to_owned(),
            (_, 0) => String::new(),
            (_, v) => format!("{v}/{} runs violated", row.runs),
        };
        let style = label_font(12).color(&RED).pos(Pos::new(HPos::Left, VPos::Center));
        chart.draw_series([Text::new(note, (101.0, y), style)])?;
    }
    Ok(())
}

/// Stacked bars: one per seed, sessions by outcome; fallback outlined; violations marked.
pub fn outcomes<DB: DrawingBackend>(data: &OutcomeData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (top, body) = root.split_vertically(LEGEND_PX);
    let mut items = outcome_legend();
    items.push(("the run violated an invariant", Mark::Triangle(RED)));
    legend(&top, &items)?;
    if data.seeds.is_empty() {
        return empty_note(&body, "no runs");
    }
    let n = data.seeds.len();
    let tallest = data.counts.iter().map(|c| c.iter().fold(0_u64, |a, b| a.saturating_add(*b))).max().unwrap_or(0);
    let y_max = headroom(tallest as f64 * 1.06, 1.0);
    let labels: Vec<String> = data.seeds.iter().map(u64::to_string).collect();
    let mut chart = ChartBuilder::on(&body)
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.clamp(1, 16))
        .x_label_formatter(&|v| category_label(&labels, *v))
        .x_desc("seed (one bar per run)")
        .y_desc("sessions")
        .y_label_formatter(&int_label)
        .label_style(label_font(12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    let half = if n > 60 { 0.5 } else { 0.4 };
    for (i, counts) in data.counts.iter().enumerate() {
        let x = i as f64;
        let mut bottom = 0.0;
        for (count, color) in counts.iter().zip(OUTCOME_COLORS) {
            let height = bottom + *count as f64;
            if *count > 0 {
                chart.draw_series([Rectangle::new([(x - half, bottom), (x + half, height)], color.filled())])?;
            }
            bottom = height;
        }
        let fallback = data.fallback.get(i).copied().unwrap_or(0);
        if fallback > 0 {
            let outline =
                Rectangle::new([(x - half / 2.0, 0.0), (x + half / 2.0, fallback as f64)], BLACK.stroke_width(2));
            chart.draw_series([outline])?;
        }
        if data.violation.get(i).copied().unwrap_or(false) {
            chart.draw_series([TriangleMarker::new((x, bottom + y_max * 0.03), 6, RED.filled())])?;
        }
    }
    Ok(())
}

/// Left: histogram of per-run p50 and p99; right: CDF of per-run p50/p95/p99; SLA line on both.
pub fn latency<DB: DrawingBackend>(data: &LatencyData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (top, body) = root.split_vertically(LEGEND_PX - 18);
    let sla_label = format!("SLA: {} ms", data.sla_ms);
    legend(
        &top,
        &[
            ("p50 (median) of a run", Mark::Box(BLUE)),
            ("p95 of a run", Mark::Line(ORANGE)),
            ("p99 of a run", Mark::Box(VERMILLION)),
            (&sla_label, Mark::Dashed(RED)),
        ],
    )?;
    if data.p99.is_empty() {
        return empty_note(&body, "no run decided anything: no latency to show");
    }
    let largest = data.p99.iter().chain(&data.p50).chain(&data.p95).copied().max().unwrap_or(0);
    let x_max = headroom(largest as f64, data.sla_ms as f64 * 1.1);
    let (width, _) = body.dim_in_pixel();
    let (left, right) = body.split_horizontally(width / 2);
    latency_histogram(data, x_max, &left)?;
    latency_cdf(data, x_max, &right)
}

fn latency_histogram<DB: DrawingBackend>(data: &LatencyData, x_max: f64, area: &DrawingArea<DB, Shift>) -> Drawn {
    const BINS: usize = 20;
    let as_f64 = |v: &[u64]| v.iter().map(|x| *x as f64).collect::<Vec<_>>();
    let p50 = histogram(&as_f64(&data.p50), x_max, BINS);
    let p99 = histogram(&as_f64(&data.p99), x_max, BINS);
    let tallest = p50.iter().chain(&p99).copied().max().unwrap_or(0);
    let y_max = headroom(tallest as f64, 1.0);
    let mut chart = ChartBuilder::on(area)
        .caption("how many runs had each latency", label_font(14))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("runs")
        .x_label_formatter(&int_label)
        .y_label_formatter(&int_label)
        .label_style(label_font(12))
        .x_labels(6)
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    let bin = x_max / BINS as f64;
    for (k, (a, b)) in p50.iter().zip(&p99).enumerate() {
        let x = k as f64 * bin;
        chart.draw_series([
            Rectangle::new([(x + bin * 0.05, 0.0), (x + bin * 0.5, *a as f64)], BLUE.filled()),
            Rectangle::new([(x + bin * 0.5, 0.0), (x + bin * 0.95, *b as f64)], VERMILLION.filled()),
        ])?;
    }
    let sla = data.sla_ms as f64;
    chart.draw_series(DashedLineSeries::new([(sla, 0.0), (sla, y_max)], 6, 4, RED.stroke_width(2)))?;
    Ok(())
}

fn latency_cdf<DB: DrawingBackend>(data: &LatencyData, x_max: f64, area: &DrawingArea<DB, Shift>) -> Drawn {
    let mut chart = ChartBuilder::on(area)
        .caption("share of runs at or below a latency (CDF)", label_font(14))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("share of runs")
        .x_label_formatter(&int_label)
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .label_style(label_font(12))
        .x_labels(6)
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    // p99 wide and underneath, so that a p95 curve equal to it (few sessions per run) stays visible.
    for (values, color, width) in [(&data.p99, VERMILLION, 4), (&data.p95, ORANGE, 2), (&data.p50, BLUE, 2)] {
        let mut points = cdf(values);
        if let Some(&(x, _)) = points.last() {
            points.push((x.max(x_max), 1.0));
        }
        chart.draw_series(LineSeries::new(points, color.stroke_width(width)))?;
    }
    let sla = data.sla_ms as f64;
    chart.draw_series(DashedLineSeries::new([(sla, 0.0), (sla, 1.05)], 6, 4, RED.stroke_width(2)))?;
    Ok(())
}

/// Histogram of per-run agreement rates: 20 bins from a round lower bound (at most 90 %) to 100 %.
pub fn agreement<DB: DrawingBackend>(data: &AgreementData, root: &DrawingArea<DB, Shift>) -> Drawn {
    if data.rates.is_empty() {
        return empty_note(root, "no run decided any session: no agreement rate to show");
    }
    const BINS: usize = 20;
    let lo = agreement_floor(&data.rates);
    let shifted: Vec<f64> = data.rates.iter().map(|r| r * 100.0 - lo).collect();
    let counts = histogram(&shifted, 100.0 - lo, BINS);
    let y_max = headroom(counts.iter().copied().max().unwrap_or(0) as f64, 1.0);
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..100.0_f64, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("agreement rate: mean share of agents that voted for the decided outcome")
        .y_desc("runs")
        .x_label_formatter(&|v| format!("{v:.0}%"))
        .y_label_formatter(&int_label)
        .label_style(label_font(12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    let width = (100.0 - lo) / BINS as f64;
    chart.draw_series(counts.iter().enumerate().map(|(k, c)| {
        let x = lo + k as f64 * width;
        Rectangle::new([(x + width * 0.08, 0.0), (x + width * 0.92, *c as f64)], BLUE.filled())
    }))?;
    Ok(())
}

/// The x-axis start of the agreement histogram, in percent: the lowest rate rounded down to a
/// multiple of 10, at most 90 (so the axis spans at least 10 points) and at least 0.
pub fn agreement_floor(rates: &[f64]) -> f64 {
    let lowest = rates.iter().copied().filter(|r| r.is_finite()).fold(1.0_f64, f64::min);
    ((lowest * 10.0).floor() * 10.0).clamp(0.0, 90.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_axis_starts_at_a_round_floor() {
        assert_eq!(agreement_floor(&[1.0, 0.97]), 90.0);
        assert_eq!(agreement_floor(&[0.66, 1.0]), 60.0);
        assert_eq!(agreement_floor(&[1.0]), 90.0);
        assert_eq!(agreement_floor(&[-0.5, f64::NAN]), 0.0);
    }
}
