//! The fault-tolerance envelope: how sessions ended by Byzantine tolerance (columns) and
//! network condition (rows), over every scenario that runs the real protocol.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{category_label, empty_note, label_font, legend, Drawn, Mark, MESH};

/// One cell: the runs of every scenario with that tolerance and network condition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvelopeCell {
    /// Scenarios (sweep points) pooled.
    pub scenarios: u64,
    /// Runs.
    pub runs: u64,
    /// Runs with an invariant violation.
    pub violation_runs: u64,
    /// Sessions decided for the best candidate, over all sessions.
    pub correct: f64,
    /// Sessions still undecided at the end, over all sessions.
    pub undecided: f64,
}

/// The grid; `cells[row][column]`, `None` where no scenario falls.
#[derive(Clone, Debug, Default)]
pub struct EnvelopeData {
    /// Column labels (Byzantine tolerance categories).
    pub columns: Vec<String>,
    /// Row labels (network conditions).
    pub rows: Vec<String>,
    /// Cells by row then column.
    pub cells: Vec<Vec<Option<EnvelopeCell>>>,
}

/// Red: a violation; grey: safe but mostly undecided (halted); otherwise green through yellow
/// to orange by the share decided correctly.
const BROKEN: RGBColor = RGBColor(0xB2, 0x18, 0x2B);
/// Safe but mostly undecided.
const HALTED: RGBColor = RGBColor(0xBB, 0xBB, 0xBB);

/// The fill and the lines of text of a cell.
pub fn envelope_cell(cell: &EnvelopeCell) -> (RGBColor, [String; 3]) {
    let fill = if cell.violation_runs > 0 {
        BROKEN
    } else if cell.undecided > 0.5 {
        HALTED
    } else {
        super::cross::success_color(cell.correct)
    };
    let verdict = if cell.violation_runs > 0 {
        format!("BROKEN: {} of {} runs", cell.violation_runs, cell.runs)
    } else {
        format!("safe in {} runs", cell.runs)
    };
    let outcome = if cell.undecided > 0.0 {
        format!("{:.0}% correct, {:.0}% undecided", cell.correct * 100.0, cell.undecided * 100.0)
    } else {
        format!("{:.0}% correct", cell.correct * 100.0)
    };
    let scenarios = if cell.scenarios == 1 { "1 scenario".to_owned() } else { format!("{} scenarios", cell.scenarios) };
    (fill, [verdict, outcome, scenarios])
}

/// Draws the grid with a verdict and the share decided correctly in every cell.
pub fn envelope<DB: DrawingBackend>(data: &EnvelopeData, root: &DrawingArea<DB, Shift>) -> Drawn {
    let (top, body) = root.split_vertically(34);
    legend(
        &top,
        &[
            ("an invariant was violated", Mark::Box(BROKEN)),
            ("safe, all decided correctly", Mark::Box(super::cross::success_color(1.0))),
            ("safe, half decided correctly", Mark::Box(super::cross::success_color(0.5))),
            ("safe, none decided correctly", Mark::Box(super::cross::success_color(0.0))),
            ("safe, mostly undecided (halted)", Mark::Box(HALTED)),
        ],
    )?;
    let (nx, ny) = (data.columns.len(), data.rows.len());
    if nx == 0 || ny == 0 {
        return empty_note(&body, "no scenario of the real protocol");
    }
    let label_px = data.rows.iter().map(|r| r.chars().count()).max().unwrap_or(10).clamp(10, 40) as u32 * 9 + 30;
    let rows: Vec<String> = data.rows.iter().rev().cloned().collect();
    let mut chart = ChartBuilder::on(&body)
        .margin(8)
        .x_label_area_size(48)
        .y_label_area_size(label_px)
        .build_cartesian_2d(-0.5..(nx as f64 - 0.5), -0.5..(ny as f64 - 0.5))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * nx + 2)
        .y_labels(2 * ny + 2)
        .x_label_formatter(&|v| category_label(&data.columns, *v))
        .y_label_formatter(&|v| category_label(&rows, *v))
        .x_desc("Byzantine agents f against f_max = ⌊(n − 1)/3⌋, the most n agents tolerate")
        .y_desc("network condition")
        .label_style(label_font(15))
        .light_line_style(TRANSPARENT)
        .bold_line_style(MESH)
        .draw()?;
    for (yi, row) in data.cells.iter().enumerate() {
        let y = (ny - 1 - yi) as f64;
        for (xi, cell) in row.iter().enumerate() {
            let x = xi as f64;
            let Some(cell) = cell else {
                chart.draw_series([Rectangle::new(
                    [(x - 0.48, y - 0.45), (x + 0.48, y + 0.45)],
                    RGBColor(0xF4, 0xF4, 0xF4).filled(),
                )])?;
                continue;
            };
            let (fill, lines) = envelope_cell(cell);
            chart.draw_series([Rectangle::new([(x - 0.48, y - 0.45), (x + 0.48, y + 0.45)], fill.filled())])?;
            let ink = if super::cross::luminance(fill) < 0.45 { WHITE } else { BLACK };
            for (k, line) in lines.iter().enumerate() {
                let size = if k == 0 { 17 } else { 15 };
                let style = label_font(size).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                chart.draw_series([Text::new(line.clone(), (x, y + 0.22 - 0.22 * k as f64), style)])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_say_broken_or_safe() {
        let cell = EnvelopeCell { scenarios: 2, runs: 40, violation_runs: 3, correct: 0.9, undecided: 0.05 };
        let (fill, lines) = envelope_cell(&cell);
        assert_eq!(fill, BROKEN);
        assert_eq!(lines, ["BROKEN: 3 of 40 runs", "90% correct, 5% undecided", "2 scenarios"]);
        let safe = EnvelopeCell { scenarios: 1, runs: 20, violation_runs: 0, correct: 1.0, undecided: 0.0 };
        let (fill, lines) = envelope_cell(&safe);
        assert!(fill != BROKEN && fill != HALTED);
        let halted = EnvelopeCell { undecided: 0.9, correct: 0.0, ..safe.clone() };
        assert_eq!(envelope_cell(&halted).0, HALTED);
        assert_eq!(lines, ["safe in 20 runs", "100% correct", "1 scenario"]);
    }
}
