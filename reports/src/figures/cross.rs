//! Charts across scenarios: Byzantine detection, accuracy and liveness against the number of
//! Byzantine agents, and parameter sweeps.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    category_label, empty_note, headroom, int_label, label_font, legend, truncate, Drawn, Mark, BLUE, GREEN, GREY,
    MESH, ORANGE, RED, VERMILLION,
};
use crate::aggregate::DetectionGroup;
use crate::sweep::{Grid, Line};

/// Byzantine detection per strategy/detector group.
#[derive(Clone, Debug, Default)]
pub struct DetectionData {
    /// The groups, drawn top to bottom.
    pub groups: Vec<DetectionGroup>,
}

/// One scenario's point on the accuracy/liveness chart.
#[derive(Clone, Debug, Default)]
pub struct ByzantinePoint {
    /// Mean Byzantine share f/n per run.
    pub share: f64,
    /// Correct sessions over sessions.
    pub accuracy: f64,
    /// `1 − undecided / sessions`.
    pub liveness: f64,
    /// A deliberately broken (mutation) scenario: drawn, not pooled.
    pub mutation: bool,
}

/// Accuracy and liveness against the Byzantine share f/n.
#[derive(Clone, Debug, Default)]
pub struct ByzantineData {
    /// One point per scenario.
    pub scenarios: Vec<ByzantinePoint>,
    /// Pooled over the runs of non-mutation scenarios: (f/n, accuracy, liveness).
    pub pooled: Vec<(f64, f64, f64)>,
}

/// What a heatmap shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeatMetric {
    /// Decided sessions over sessions.
    Success,
    /// Median over runs of the run's p99 latency; cells above their SLA are outlined.
    P99,
}

/// A two-axis sweep drawn as a heatmap.
#[derive(Clone, Debug)]
pub struct HeatmapData {
    /// The grid.
    pub grid: Grid,
    /// The value shown.
    pub metric: HeatMetric,
}

/// A one-axis sweep drawn as lines (the SLA of each point dashed).
#[derive(Clone, Debug)]
pub struct SweepLineData {
    /// The points.
    pub line: Line,
}

/// Horizontal grouped bars per group: Byzantine agents, those caught, honest agents flagged.
pub fn detection<DB: DrawingBackend>(data: &DetectionData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (top, body) = root.split_vertically(34);
    legend(
        &top,
        &[
            ("Byzantine agents per run", Mark::Box(GREY)),
            ("Byzantine agents caught per run", Mark::Box(GREEN)),
            ("honest agents wrongly flagged per run", Mark::Box(VERMILLION)),
        ],
    )?;
    if data.groups.is_empty() {
        return empty_note(&body, "no Byzantine or flagged agents in any run");
    }
    let n = data.groups.len();
    let per_run = |x: u64, runs: u64| if runs == 0 { 0.0 } else { x as f64 / runs as f64 };
    let rows: Vec<[f64; 3]> = data
        .groups
        .iter()
        .map(|g| [per_run(g.byzantine, g.runs), per_run(g.caught, g.runs), per_run(g.wrongly_flagged, g.runs)])
        .collect();
    let x_max = headroom(rows.iter().flatten().copied().fold(0.0, f64::max), 1.0);
    let labels: Vec<String> = data.groups.iter().rev().map(|g| truncate(&g.label, 64)).collect();
    let label_px = labels.iter().map(|l| l.chars().count()).max().unwrap_or(10).clamp(10, 64) as u32 * 7 + 10;
    let mut chart = ChartBuilder::on(&body)
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..x_max, -0.5..(n as f64 - 0.5))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(2 * n + 2)
        .y_label_formatter(&|v| category_label(&labels, *v))
        .x_desc("agents per run (mean over the group's runs)")
        .label_style(label_font(12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    for (i, values) in rows.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        for (k, (value, color)) in values.iter().zip([GREY, GREEN, VERMILLION]).enumerate() {
            let y0 = y + 0.39 - k as f64 * 0.26;
            chart.draw_series([Rectangle::new([(0.0, y0 - 0.25), (*value, y0)], color.filled())])?;
        }
    }
    Ok(())
}

/// Two panels (accuracy, liveness) against the Byzantine share f/n, with the n ≥ 3f + 1 bound.
pub fn byzantine<DB: DrawingBackend>(data: &ByzantineData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (top, body) = root.split_vertically(34);
    legend(
        &top,
        &[
            ("one scenario", Mark::Circle(BLUE)),
            ("deliberately broken (mutation) scenario", Mark::Cross(ORANGE)),
            ("all runs of the other scenarios pooled", Mark::Line(BLACK)),
            ("f = n/3: beyond it, n ≥ 3f + 1 fails", Mark::Dashed(RED)),
        ],
    )?;
    if data.scenarios.is_empty() {
        return empty_note(&body, "no runs");
    }
    let (width, _) = body.dim_in_pixel();
    let (left, right) = body.split_horizontally(width / 2);
    let accuracy: Vec<_> = data.scenarios.iter().map(|p| (p.share, p.accuracy, p.mutation)).collect();
    let pooled: Vec<_> = data.pooled.iter().map(|(b, a, _)| (*b, *a)).collect();
    rate_panel(&left, "accuracy: sessions decided correctly", &accuracy, &pooled)?;
    let liveness: Vec<_> = data.scenarios.iter().map(|p| (p.share, p.liveness, p.mutation)).collect();
    let pooled: Vec<_> = data.pooled.iter().map(|(b, _, l)| (*b, *l)).collect();
    rate_panel(&right, "liveness: sessions that ended (not undecided)", &liveness, &pooled)
}

fn rate_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    points: &[(f64, f64, bool)],
    pooled: &[(f64, f64)],
) -> Drawn {
    let widest = points.iter().map(|p| p.0).filter(|x| x.is_finite()).fold(0.0, f64::max);
    let x_max = (widest + 0.05).clamp(0.45, 1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, label_font(14))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.02..x_max, 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_desc("Byzantine share f/n (Byzantine agents over agents in the run)")
        .x_labels(12)
        .x_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .label_style(label_font(12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    let bound = [(1.0 / 3.0, 0.0), (1.0 / 3.0, 1.05)];
    chart.draw_series(DashedLineSeries::new(bound, 6, 4, RED.stroke_width(2)))?;
    for (i, (x, y, mutation)) in points.iter().enumerate() {
        let jitter = ((i % 7) as f64 - 3.0) * 0.004;
        if *mutation {
            chart.draw_series([Cross::new((x + jitter, *y), 5, ORANGE.stroke_width(2))])?;
        } else {
            chart.draw_series([Circle::new((x + jitter, *y), 5, BLUE.stroke_width(2))])?;
        }
    }
    chart.draw_series(LineSeries::new(pooled.iter().copied(), BLACK.stroke_width(2)))?;
    chart.draw_series(pooled.iter().map(|p| Circle::new(*p, 4, BLACK.filled())))?;
    Ok(())
}

/// A heatmap over two sweep axes, the value written in each cell.
pub fn heatmap<DB: DrawingBackend>(data: &HeatmapData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let grid = &data.grid;
    let (top, body) = root.split_vertically(34);
    let p99_max = grid.cells.iter().flatten().flatten().filter_map(|c| c.p99_ms).max().unwrap_or(0);
    let scale_max = match data.metric {
        HeatMetric::Success => 1.0,
        HeatMetric::P99 => p99_max.max(1) as f64,
    };
    match data.metric {
        HeatMetric::Success => legend(
            &top,
            &[
                ("0% decided", Mark::Box(success_color(0.0))),
                ("50%", Mark::Box(success_color(0.5))),
                ("100%", Mark::Box(success_color(1.0))),
            ],
        )?,
        HeatMetric::P99 => legend(
            &top,
            &[
                ("fast", Mark::Box(latency_color(0.0))),
                ("slow", Mark::Box(latency_color(1.0))),
                ("red border: above the SLA", Mark::Outline(RED)),
                ("grey: no decision to time", Mark::Box(GREY)),
            ],
        )?,
    }
    let (nx, ny) = (grid.xs.len(), grid.ys.len());
    if nx == 0 || ny == 0 {
        return empty_note(&body, "no sweep points");
    }
    let mut chart = ChartBuilder::on(&body)
        .margin(8)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..(nx as f64 - 0.5), -0.5..(ny as f64 - 0.5))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * nx + 2)
        .y_labels(2 * ny + 2)
        .x_label_formatter(&|v| category_label(&grid.xs, *v))
        .y_label_formatter(&|v| category_label(&grid.ys, *v))
        .x_desc(grid.x_axis.as_str())
        .y_desc(grid.y_axis.as_str())
        .label_style(label_font(13))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    for (yi, row) in grid.cells.iter().enumerate() {
        for (xi, cell) in row.iter().enumerate() {
            let (x, y) = (xi as f64, yi as f64);
            let (fill, text, over_sla) = heat_cell(cell.as_ref(), data.metric, scale_max);
            chart.draw_series([Rectangle::new([(x - 0.48, y - 0.48), (x + 0.48, y + 0.48)], fill.filled())])?;
            if over_sla {
                chart
                    .draw_series([Rectangle::new([(x - 0.46, y - 0.46), (x + 0.46, y + 0.46)], RED.stroke_width(3))])?;
            }
            let ink = if luminance(fill) < 0.45 { WHITE } else { BLACK };
            let style = label_font(15).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
            chart.draw_series([Text::new(text, (x, y), style)])?;
        }
    }
    Ok(())
}

fn heat_cell(cell: Option<&crate::sweep::Cell>, metric: HeatMetric, scale_max: f64) -> (RGBColor, String, bool) {
    let Some(cell) = cell else {
        return (RGBColor(0xEE, 0xEE, 0xEE), "no runs".to_owned(), false);
    };
    match metric {
        HeatMetric::Success => (success_color(cell.success), format!("{:.0}%", cell.success * 100.0), false),
        HeatMetric::P99 => match cell.p99_ms {
            None => (GREY, "none".to_owned(), false),
            Some(ms) => (latency_color(ms as f64 / scale_max), format!("{ms} ms"), ms > cell.deadline_ms),
        },
    }
}

/// Vermillion (0) through yellow (0.5) to green (1).
pub(super) fn success_color(value: f64) -> RGBColor {
    let v = if value.is_finite() { value.clamp(0.0, 1.0) } else { 0.0 };
    if v < 0.5 {
        mix((0xD5, 0x5E, 0x00), (0xF0, 0xE4, 0x42), v * 2.0)
    } else {
        mix((0xF0, 0xE4, 0x42), (0x00, 0x9E, 0x73), (v - 0.5) * 2.0)
    }
}

/// Light cream (0) to dark brown (1).
fn latency_color(fraction: f64) -> RGBColor {
    let f = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 1.0 };
    mix((0xFF, 0xF7, 0xE0), (0x7F, 0x27, 0x04), f)
}

fn mix(a: (u8, u8, u8), b: (u8, u8, u8), t: f64) -> RGBColor {
    let lerp = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round().clamp(0.0, 255.0) as u8;
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

pub(super) fn luminance(c: RGBColor) -> f64 {
    (0.2126 * f64::from(c.0) + 0.7152 * f64::from(c.1) + 0.0722 * f64::from(c.2)) / 255.0
}

/// Two panels over one sweep axis: success rate and p99 latency (with the SLA line).
pub fn sweep_line<DB: DrawingBackend>(data: &SweepLineData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let line = &data.line;
    if line.values.is_empty() {
        return empty_note(root, "no sweep points");
    }
    let (width, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(width / 2);
    let n = line.values.len();
    let success: Vec<(f64, f64)> = line.cells.iter().enumerate().map(|(i, c)| (i as f64, c.success)).collect();
    let mut chart = ChartBuilder::on(&left)
        .caption("success: sessions decided", label_font(14))
        .margin(8)
        .x_label_area_size(44)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..1.05)?;
    chart
        .configure_mesh()
        .x_labels(2 * n + 2)
        .x_label_formatter(&|v| category_label(&line.values, *v))
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .x_desc(line.axis.as_str())
        .label_style(label_font(12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    chart.draw_series(LineSeries::new(success.iter().copied(), GREEN.stroke_width(2)))?;
    chart.draw_series(success.iter().map(|p| Circle::new(*p, 4, GREEN.filled())))?;

    let p99: Vec<(f64, f64)> =
        line.cells.iter().enumerate().filter_map(|(i, c)| c.p99_ms.map(|ms| (i as f64, ms as f64))).collect();
    let slas: Vec<(f64, f64)> = line.cells.iter().enumerate().map(|(i, c)| (i as f64, c.deadline_ms as f64)).collect();
    let sla_max = slas.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_max = headroom(p99.iter().map(|p| p.1).fold(0.0, f64::max), sla_max * 1.1);
    let mut chart = ChartBuilder::on(&right)
        .caption("p99 latency (median over runs)", label_font(14))
        .margin(8)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_labels(2 * n + 2)
        .x_label_formatter(&|v| category_label(&line.values, *v))
        .x_desc(line.axis.as_str())
        .y_desc("ms")
        .y_label_formatter(&int_label)
        .label_style(label_font(12))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    chart.draw_series(LineSeries::new(p99.iter().copied(), VERMILLION.stroke_width(2)))?;
    chart.draw_series(p99.iter().map(|p| Circle::new(*p, 4, VERMILLION.filled())))?;
    // The SLA of each point, as a step line (flat when every point has the same deadline).
    let mut steps = Vec::with_capacity(2 * slas.len());
    for (i, sla) in &slas {
        steps.extend([(i - 0.5, *sla), (i + 0.5, *sla)]);
    }
    chart.draw_series(DashedLineSeries::new(steps, 6, 4, RED.stroke_width(2)))?;
    if let Some((_, first)) = slas.first() {
        let label = format!("SLA {first:.0} ms");
        chart.draw_series([Text::new(label, (-0.45, *first), label_font(12).color(&RED))])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_scales_are_total() {
        assert_eq!(success_color(0.0), RGBColor(0xD5, 0x5E, 0x00));
        assert_eq!(success_color(1.0), RGBColor(0x00, 0x9E, 0x73));
        assert_eq!(success_color(f64::NAN), success_color(0.0));
        assert_eq!(latency_color(2.0), latency_color(1.0));
        assert!(luminance(latency_color(1.0)) < 0.45 && luminance(latency_color(0.0)) > 0.45);
    }

    #[test]
    fn heat_cells_mark_the_sla() {
        let mut cell = crate::sweep::Cell { runs: 3, success: 0.5, p99_ms: Some(700), deadline_ms: 500 };
        let (_, text, over) = heat_cell(Some(&cell), HeatMetric::P99, 700.0);
        assert_eq!((text.as_str(), over), ("700 ms", true));
        cell.deadline_ms = 1000;
        assert!(!heat_cell(Some(&cell), HeatMetric::P99, 700.0).2, "each cell has its own SLA");
        let (_, text, _) = heat_cell(Some(&cell), HeatMetric::Success, 1.0);
        assert_eq!(text, "50%");
        assert_eq!(heat_cell(None, HeatMetric::Success, 1.0).1, "no runs");
    }
}
