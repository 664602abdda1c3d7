//! Figures: data to draw, and drawing it twice, as SVG and as PNG, with plotters.
//!
//! Every chart is a function generic over the plotters backend, so the SVG and the PNG of a
//! figure come from the same code. Text in the PNG is drawn with the embedded DejaVu Sans (no
//! system font is read at run time); the SVG names `sans-serif` and lets the viewer pick one.

mod cross;
mod envelope;
mod png;
mod runs;

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use ab_glyph::FontRef;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use cross::{ByzantineData, ByzantinePoint, DetectionData, HeatMetric, HeatmapData, SweepLineData};
pub use envelope::{EnvelopeCell, EnvelopeData};
pub use runs::{AgreementData, LatencyData, OutcomeData, OverviewData, OverviewRow};

use crate::ReportError;
use png::PngBackend;

/// DejaVu Sans 2.37 (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The font family every chart asks for.
const FONT: &str = "sans-serif";

/// One figure: file stem, pixel size and what to draw.
#[derive(Clone, Debug)]
pub struct Figure {
    /// File name without extension (unique within a report).
    pub stem: String,
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// The chart.
    pub plot: Plot,
}

/// The kinds of chart.
#[derive(Clone, Debug)]
pub enum Plot {
    /// Sessions by outcome, one bar per scenario.
    Overview(OverviewData),
    /// Sessions by outcome, one bar per seed of a scenario.
    Outcomes(OutcomeData),
    /// Latency histogram and CDF.
    Latency(LatencyData),
    /// Agreement-rate histogram.
    Agreement(AgreementData),
    /// Byzantine agents caught vs honest agents flagged.
    Detection(DetectionData),
    /// Accuracy and liveness against the number of Byzantine agents.
    Byzantine(ByzantineData),
    /// A two-axis sweep.
    Heatmap(HeatmapData),
    /// A one-axis sweep.
    SweepLine(SweepLineData),
    /// Outcome by Byzantine tolerance and network condition.
    Envelope(EnvelopeData),
}

/// The files written for a figure.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The SVG text (also written to `svg_path`).
    pub svg: String,
    /// The SVG file.
    pub svg_path: PathBuf,
    /// The PNG file.
    pub png_path: PathBuf,
}

/// A drawing failure, as text (plotters' errors are generic over the backend).
#[derive(Debug)]
pub struct DrawError(pub String);

impl<E: Display> From<E> for DrawError {
    fn from(error: E) -> Self {
        DrawError(error.to_string())
    }
}

/// Result of a drawing function.
pub type Drawn = Result<(), DrawError>;

/// Makes the embedded font available to plotters; call before drawing anything.
pub fn register_font() -> Result<(), ReportError> {
    plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).map_err(|_| ReportError::Figure {
        path: PathBuf::from("assets/DejaVuSans.ttf"),
        message: "invalid font".into(),
    })
}

/// Draws `figure` into `dir` as `STEM.svg` and `STEM.png`.
pub fn render(figure: &Figure, dir: &Path) -> Result<Rendered, ReportError> {
    let svg_path = dir.join(format!("{}.svg", figure.stem));
    let png_path = dir.join(format!("{}.png", figure.stem));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, figure.size).into_drawing_area();
        draw(figure, &root).map_err(|e| figure_error(&svg_path, e))?;
        root.present().map_err(|e| figure_error(&svg_path, e.into()))?;
    }
    fs::write(&svg_path, &svg).map_err(|source| ReportError::Write { path: svg_path.clone(), source })?;
    {
        let font = FontRef::try_from_slice(FONT_BYTES).map_err(|e| figure_error(&png_path, e.into()))?;
        let root = PngBackend::new(BitMapBackend::new(&png_path, figure.size), font).into_drawing_area();
        draw(figure, &root).map_err(|e| figure_error(&png_path, e))?;
        root.present().map_err(|e| figure_error(&png_path, e.into()))?;
    }
    Ok(Rendered { svg, svg_path, png_path })
}

fn figure_error(path: &Path, error: DrawError) -> ReportError {
    ReportError::Figure { path: path.to_path_buf(), message: error.0 }
}

fn draw<DB: DrawingBackend>(figure: &Figure, root: &DrawingArea<DB, Shift>) -> Drawn {
    root.fill(&WHITE)?;
    match &figure.plot {
        Plot::Overview(d) => runs::overview(d, root),
        Plot::Outcomes(d) => runs::outcomes(d, root),
        Plot::Latency(d) => runs::latency(d, root),
        Plot::Agreement(d) => runs::agreement(d, root),
        Plot::Detection(d) => cross::detection(d, root),
        Plot::Byzantine(d) => cross::byzantine(d, root),
        Plot::Heatmap(d) => cross::heatmap(d, root),
        Plot::SweepLine(d) => cross::sweep_line(d, root),
        Plot::Envelope(d) => envelope::envelope(d, root),
    }
}

/// Colours (Okabe–Ito, readable with colour-blindness), one per outcome category of
/// [`crate::aggregate::OUTCOME_CATEGORIES`].
pub const OUTCOME_COLORS: [RGBColor; 6] = [
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xA0, 0xA0, 0xA0),
    RGBColor(0xCC, 0x79, 0xA7),
];
/// Blue.
pub const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
/// Orange.
pub const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
/// Vermillion.
pub const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
/// Green.
pub const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
/// Grey.
pub const GREY: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Grid lines.
pub const MESH: RGBColor = RGBColor(0xE2, 0xE2, 0xE2);
/// Red of violations and the SLA line.
pub const RED: RGBColor = RGBColor(0xCC, 0x00, 0x00);

/// How a legend entry is drawn.
#[derive(Clone, Copy, Debug)]
pub enum Mark {
    /// A filled square.
    Box(RGBColor),
    /// An outlined square.
    Outline(RGBColor),
    /// A line.
    Line(RGBColor),
    /// A dashed line.
    Dashed(RGBColor),
    /// A triangle marker.
    Triangle(RGBColor),
    /// A hollow circle.
    Circle(RGBColor),
    /// A cross.
    Cross(RGBColor),
}

/// Text style of labels.
pub fn label_font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
}

/// Draws legend entries left to right (wrapping) across `area`, starting at its top left.
pub fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[(&str, Mark)]) -> Drawn {
    let style = label_font(13).pos(Pos::new(HPos::Left, VPos::Center));
    let (width, _) = area.dim_in_pixel();
    let (mut x, mut y) = (10_i32, 10_i32);
    for (text, mark) in items {
        let (text_w, _) = area.estimate_text_size(text, &style)?;
        let item_w = 22 + i32::try_from(text_w).unwrap_or(i32::MAX / 4) + 18;
        if x > 10 && x + item_w > i32::try_from(width).unwrap_or(i32::MAX) {
            x = 10;
            y += 20;
        }
        draw_mark(area, *mark, (x, y))?;
        area.draw(&Text::new(text.to_string(), (x + 22, y), style.clone()))?;
        x += item_w;
    }
    Ok(())
}

fn draw_mark<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, mark: Mark, (x, y): (i32, i32)) -> Drawn {
    match mark {
        Mark::Box(c) => area.draw(&Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.filled()))?,
        Mark::Outline(c) => area.draw(&Rectangle::new([(x, y - 6), (x + 16, y + 6)], c.stroke_width(2)))?,
        Mark::Line(c) => area.draw(&PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)))?,
        Mark::Dashed(c) => {
            area.draw(&PathElement::new(vec![(x, y), (x + 6, y)], c.stroke_width(2)))?;
            area.draw(&PathElement::new(vec![(x + 10, y), (x + 16, y)], c.stroke_width(2)))?;
        }
        Mark::Triangle(c) => area.draw(&TriangleMarker::new((x + 8, y), 6, c.filled()))?,
        Mark::Circle(c) => area.draw(&Circle::new((x + 8, y), 5, c.stroke_width(2)))?,
        Mark::Cross(c) => area.draw(&Cross::new((x + 8, y), 5, c.stroke_width(2)))?,
    }
    Ok(())
}

/// Label of a categorical axis whose category `i` is centred on `i` (range `-0.5..n-0.5`):
/// the label for key points on an integer, nothing between.
pub fn category_label(labels: &[String], value: f64) -> String {
    let rounded = value.round();
    if (value - rounded).abs() > 1e-6 || rounded < 0.0 {
        return String::new();
    }
    labels.get(rounded as usize).cloned().unwrap_or_default()
}

/// An axis label for integer key points only (counts, milliseconds).
pub fn int_label(value: &f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        String::new()
    }
}

/// `text` cut to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Counts `values` in `bins` equal bins over `[0, hi]`; values at or above `hi` go to the last.
pub fn histogram(values: &[f64], hi: f64, bins: usize) -> Vec<u64> {
    let mut counts = vec![0_u64; bins.max(1)];
    let last = counts.len() - 1;
    for &v in values {
        let index = if hi > 0.0 && v.is_finite() { ((v.max(0.0) / hi) * counts.len() as f64) as usize } else { 0 };
        counts[index.min(last)] += 1;
    }
    counts
}

/// The empirical CDF of `values` as step points `(value, fraction ≤ value)`.
pub fn cdf(values: &[u64]) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as f64;
    let mut points = Vec::with_capacity(sorted.len() * 2);
    for (i, &v) in sorted.iter().enumerate() {
        points.push((v as f64, i as f64 / n));
        points.push((v as f64, (i + 1) as f64 / n));
    }
    points
}

/// An axis upper bound a bit above `max` (at least `floor`), so bars do not touch the frame.
pub fn headroom(max: f64, floor: f64) -> f64 {
    let top = max.max(floor);
    if !(top.is_finite() && top > 0.0) {
        return 1.0;
    }
    let padded = top * 1.08;
    if padded.is_finite() {
        padded
    } else {
        top
    }
}

/// Draws a short "nothing to show" note in `area`.
pub fn empty_note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str) -> Drawn {
    let (w, h) = area.dim_in_pixel();
    let style = label_font(15).pos(Pos::new(HPos::Center, VPos::Center)).color(&GREY);
    let at = (i32::try_from(w / 2).unwrap_or(0), i32::try_from(h / 2).unwrap_or(0));
    area.draw(&Text::new(text.to_owned(), at, style))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_everything_once() {
        let counts = histogram(&[0.0, 1.0, 4.99, 5.0, 9.99, 10.0, 1e300, -3.0, f64::NAN], 10.0, 2);
        assert_eq!(counts, vec![5, 4]);
        assert_eq!(histogram(&[1.0], 0.0, 0), vec![1], "degenerate ranges still count");
    }

    #[test]
    fn cdf_steps_reach_one() {
        let points = cdf(&[30, 10, 20, 20]);
        assert_eq!(points.first(), Some(&(10.0, 0.0)));
        assert_eq!(points.last(), Some(&(30.0, 1.0)));
        assert_eq!(points[3], (20.0, 0.5));
        assert!(cdf(&[]).is_empty());
    }

    #[test]
    fn category_labels_only_on_integers() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(category_label(&labels, 1.0), "b");
        assert_eq!(category_label(&labels, 0.5), "");
        assert_eq!(category_label(&labels, -1.0), "");
        assert_eq!(category_label(&labels, 2.0), "");
    }

    #[test]
    fn truncation_and_headroom() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(headroom(0.0, 0.0), 1.0);
        assert_eq!(headroom(f64::MAX, 1.0), f64::MAX);
        assert_eq!(headroom(f64::NAN, 0.0), 1.0);
        assert!((headroom(100.0, 1.0) - 108.0).abs() < 1e-9);
    }
}
