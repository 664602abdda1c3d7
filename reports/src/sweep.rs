//! Parameter sweeps: the sweep points of one base scenario laid out over their axes.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::aggregate::{Scenario, Totals};

/// The sweep points sharing one base name.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The base scenario name.
    pub base: String,
    /// Axis names, in order.
    pub axes: Vec<String>,
    /// Runs per sweep point (smallest and largest).
    pub runs_min: u64,
    /// Largest runs per sweep point.
    pub runs_max: u64,
    /// The layout.
    pub shape: Shape,
}

/// How a sweep is drawn.
#[derive(Clone, Debug)]
pub enum Shape {
    /// One axis: one value per point.
    Line(Line),
    /// Two or more axes: a grid over the first two.
    Grid(Grid),
}

/// A one-axis sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The axis.
    pub axis: String,
    /// Axis values, ordered (numerically when they are all numbers).
    pub values: Vec<String>,
    /// One cell per value.
    pub cells: Vec<Cell>,
}

/// A grid over two axes; `cells[y][x]`, `None` where the sweep has no point.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Horizontal axis.
    pub x_axis: String,
    /// Vertical axis.
    pub y_axis: String,
    /// Horizontal values, ordered.
    pub xs: Vec<String>,
    /// Vertical values, ordered.
    pub ys: Vec<String>,
    /// Cells by row (y) then column (x).
    pub cells: Vec<Vec<Option<Cell>>>,
    /// Further axes whose points were pooled into each cell.
    pub pooled_axes: Vec<String>,
}

/// What one sweep point (or pooled set of points) did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    /// Runs.
    pub runs: u64,
    /// Decided sessions over all sessions.
    pub success: f64,
    /// Median over runs of the run's p99 latency; `None` when no run decided anything.
    pub p99_ms: Option<u64>,
    /// The SLA of the point (its scenarios' deadline; the largest when pooled points differ).
    pub deadline_ms: u64,
}

impl Cell {
    fn of(points: &[&Scenario<'_>]) -> Cell {
        let runs = points.iter().flat_map(|p| p.runs.iter().copied());
        let totals = Totals::of(runs.clone());
        let mut p99s: Vec<u64> = runs.filter(|r| r.latency_ms.is_recorded()).map(|r| r.latency_ms.p99).collect();
        p99s.sort_unstable();
        let p99_ms = if p99s.is_empty() { None } else { Some(p99s[(p99s.len() - 1) / 2]) };
        let deadline_ms = points.iter().map(|p| p.deadline_ms()).max().unwrap_or(crate::model::DEFAULT_DEADLINE_MS);
        Cell { runs: totals.runs, success: totals.success(), p99_ms, deadline_ms }
    }
}

/// The sweeps among `scenarios`: scenarios with parameters, grouped by base name.
pub fn sweeps(scenarios: &[Scenario<'_>]) -> Vec<Sweep> {
    let mut groups: BTreeMap<&str, Vec<&Scenario<'_>>> = BTreeMap::new();
    for scenario in scenarios.iter().filter(|s| !s.params.is_empty()) {
        groups.entry(scenario.base.as_str()).or_default().push(scenario);
    }
    groups.into_iter().filter_map(|(base, points)| sweep(base, &points)).collect()
}

fn sweep(base: &str, points: &[&Scenario<'_>]) -> Option<Sweep> {
    let axes: Vec<String> =
        points.iter().flat_map(|p| p.params.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let runs = points.iter().map(|p| p.runs.len() as u64);
    let (runs_min, runs_max) = (runs.clone().min().unwrap_or(0), runs.max().unwrap_or(0));
    let shape = match axes.as_slice() {
        [] => return None,
        [axis] => Shape::Line(line(axis, points)),
        [x, y, rest @ ..] => Shape::Grid(grid(x, y, rest, points)),
    };
    Some(Sweep { base: base.to_owned(), axes, runs_min, runs_max, shape })
}

fn line(axis: &str, points: &[&Scenario<'_>]) -> Line {
    let values = axis_values(axis, points);
    let cells = values
        .iter()
        .map(|v| {
            let at: Vec<_> = points.iter().copied().filter(|p| p.params.get(axis) == Some(v)).collect();
            Cell::of(&at)
        })
        .collect();
    Line { axis: axis.to_owned(), values, cells }
}

/// The grid of `points` over axes `x` and `y`, pooling every other axis.
pub fn grid(x: &str, y: &str, rest: &[String], points: &[&Scenario<'_>]) -> Grid {
    let xs = axis_values(x, points);
    let ys = axis_values(y, points);
    let cells = ys
        .iter()
        .map(|yv| {
            xs.iter()
                .map(|xv| {
                    let at: Vec<_> = points
                        .iter()
                        .copied()
                        .filter(|p| p.params.get(x) == Some(xv) && p.params.get(y) == Some(yv))
                        .collect();
                    if at.is_empty() {
                        None
                    } else {
                        Some(Cell::of(&at))
                    }
                })
                .collect()
        })
        .collect();
    Grid { x_axis: x.to_owned(), y_axis: y.to_owned(), xs, ys, cells, pooled_axes: rest.to_vec() }
}

/// The distinct values of `axis`, numerically ordered when every value is a number.
fn axis_values(axis: &str, points: &[&Scenario<'_>]) -> Vec<String> {
    let mut values: Vec<String> =
        points.iter().filter_map(|p| p.params.get(axis).cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    if values.iter().all(|v| v.parse::<f64>().is_ok()) {
        values.sort_by(|a, b| {
            let (a, b) = (a.parse::<f64>().unwrap_or(0.0), b.parse::<f64>().unwrap_or(0.0));
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        });
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Dataset;
    use crate::model::{LatencySummary, RunRecord, SessionCounts};

    fn point(params: &[(&str, &str)], seed: u64, decided: u64, p99: u64) -> RunRecord {
        let label: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        RunRecord {
            scenario: format!("sw[{}]", label.join(",")),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            seed,
            counts: SessionCounts { sessions: 4, decided, ..SessionCounts::default() },
            latency_ms: LatencySummary { p50: 1, p95: 1, p99, max: p99 },
            ..RunRecord::default()
        }
    }

    #[test]
    fn heatmap_grid_from_params() {
        let runs = [
            point(&[("count", "0"), ("drop", "0.1")], 0, 4, 100),
            point(&[("count", "0"), ("drop", "0.1")], 1, 2, 300),
            point(&[("count", "0"), ("drop", "0.05")], 0, 4, 50),
            point(&[("count", "10"), ("drop", "0.05")], 0, 0, 0),
            point(&[("count", "2"), ("drop", "0.05")], 0, 1, 70),
        ];
        let data = Dataset::new(&runs, None);
        let sweeps = sweeps(&data.scenarios);
        assert_eq!(sweeps.len(), 1);
        assert_eq!(sweeps[0].axes, ["count", "drop"]);
        assert_eq!((sweeps[0].runs_min, sweeps[0].runs_max), (1, 2));
        let Shape::Grid(g) = &sweeps[0].shape else { panic!("two axes make a grid") };
        assert_eq!(g.xs, ["0", "2", "10"], "numeric order, not lexicographic");
        assert_eq!(g.ys, ["0.05", "0.1"]);
        let cell = g.cells[1][0].as_ref().unwrap();
        assert_eq!((cell.runs, cell.success, cell.p99_ms), (2, 0.75, Some(100)));
        assert_eq!(g.cells[0][2].as_ref().unwrap().p99_ms, None, "no decisions, no latency");
        assert!(g.cells[1][1].is_none() && g.cells[1][2].is_none(), "missing points stay empty");
    }

    #[test]
    fn one_axis_is_a_line_and_extra_axes_are_pooled() {
        let runs = [point(&[("mode", "b")], 0, 4, 10), point(&[("mode", "a")], 0, 2, 20)];
        let data = Dataset::new(&runs, None);
        let Shape::Line(line) = &sweeps(&data.scenarios)[0].shape else { panic!("one axis makes a line") };
        assert_eq!(line.values, ["a", "b"]);
        assert_eq!(line.cells[0].success, 0.5);

        let runs = [
            point(&[("a", "1"), ("b", "1"), ("c", "x")], 0, 4, 10),
            point(&[("a", "1"), ("b", "1"), ("c", "y")], 0, 0, 0),
        ];
        let data = Dataset::new(&runs, None);
        let Shape::Grid(g) = &sweeps(&data.scenarios)[0].shape else { panic!("three axes make a grid") };
        assert_eq!(g.pooled_axes, ["c"]);
        assert_eq!(g.cells[0][0].as_ref().unwrap().runs, 2);
    }

    #[test]
    fn scenarios_without_params_are_not_sweeps() {
        let runs = [RunRecord { scenario: "plain".into(), ..RunRecord::default() }];
        assert!(sweeps(&Dataset::new(&runs, None).scenarios).is_empty());
    }
}
