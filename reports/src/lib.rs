//! Fault-tolerance reports for bftsim result sets.
//!
//! [`generate`] reads a result directory written by `bftsim run` (`runs.jsonl`, one run record
//! per line, and `summary.json` when present) or `bftsim explore` (`explore.json` and the
//! space-time diagrams it names) and writes:
//!
//! - `report.html`: one self-contained page (figures inline as SVG `data:` URIs, inline style,
//!   a Content-Security-Policy that forbids any network load), with a table of contents; its
//!   first screen answers "does the vote hold, where does it break, what do I replay";
//! - `report.md`: the same text and tables, figures referenced as `figures/STEM.png`;
//! - `figures/STEM.svg` and `figures/STEM.png` for every figure drawn, and `figures/STEM.svg`
//!   for every space-time diagram shown.
//!
//! Data flow: [`model`], [`summary`] and [`explore`] parse → [`aggregate`] and [`sweep`] group and count →
//! `content` builds a [`doc::Document`] and the [`figures`] it shows → `figures` draws them
//! with plotters → `html` and `markdown` render the document. [`spacetime`] draws one run as a
//! space-time diagram (pure SVG); [`humanize`] turns the oracle's violation details into words.
//!
//! [`model`] defines the run record itself ([`model::RunRecord`]); `sim` depends on this crate
//! and re-exports it, so the simulator writes and the report reads one type.

pub mod aggregate;
mod content;
pub mod coverage;
pub mod doc;
pub mod explore;
pub mod figures;
mod html;
pub mod humanize;
mod markdown;
pub mod model;
pub mod replay;
pub mod spacetime;
pub mod summary;
pub mod sweep;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The design's default latency service-level target (consensus-core's `metrics::SLA_MS`); each
/// scenario's own SLA is its session deadline, [`model::RunRecord::deadline_ms`].
pub const SLA_MS: u64 = 500;

/// What to put in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportOptions {
    /// The page title.
    pub title: String,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { title: "bftsim fault-tolerance report".to_owned() }
    }
}

/// The files a report consists of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportOutput {
    /// `report.html`.
    pub html: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// Every `.svg` and `.png` written, in figure order (SVG then PNG).
    pub figures: Vec<PathBuf>,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An input file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An output file or directory could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line of `runs.jsonl` is not a run record.
    #[error("{}:{line}: not a run record: {source}", path.display())]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error (its column is within the line).
        source: serde_json::Error,
    },
    /// A JSON file bftsim wrote (`summary.json`, `explore.json`) is not what it should be.
    #[error("{}:{line}:{column}: not a bftsim {what}: {source}", path.display())]
    BadJson {
        /// The file.
        path: PathBuf,
        /// What it should be (`summary.json`, `explore.json`).
        what: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Plotters failed to draw a figure.
    #[error("cannot draw {}: {message}", path.display())]
    Figure {
        /// The figure file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Reads the JSON file `path` (a `what`: `summary.json`, `explore.json`) when it exists.
fn read_json_if_exists<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Option<T>, ReportError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReportError::Read { path: path.to_path_buf(), source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|source| ReportError::BadJson {
        path: path.to_path_buf(),
        what,
        line: source.line(),
        column: source.column(),
        source,
    })
}

/// Reads `input_dir/runs.jsonl` (and `input_dir/summary.json` if present) and writes
/// `out_dir/report.html`, `out_dir/report.md` and `out_dir/figures/*.{svg,png}`.
pub fn generate(input_dir: &Path, out_dir: &Path, options: &ReportOptions) -> Result<ReportOutput, ReportError> {
    let exploration = explore::read(&input_dir.join("explore.json"))?.map(|summary| {
        let diagrams = summary
            .findings
            .iter()
            .filter_map(|f| Some((f.id.clone(), fs::read_to_string(input_dir.join(f.diagram.as_ref()?)).ok()?)))
            .collect();
        content::Exploration { summary, diagrams }
    });
    let runs_path = input_dir.join("runs.jsonl");
    // An exploration's directory may hold no runs.jsonl: its report is the Exploration section.
    let runs = if exploration.is_some() && !runs_path.exists() { Vec::new() } else { model::read_runs(&runs_path)? };
    let summary = summary::read_summary(&input_dir.join("summary.json"))?;
    let mut data = aggregate::Dataset::new(&runs, summary.as_ref());
    data.source = replay::Source::of(input_dir, exploration.as_ref().map(|e| &e.summary));
    let content::Built { doc: document, figures: figure_specs, images } =
        content::build(&data, &options.title, exploration.as_ref());

    let figures_dir = out_dir.join("figures");
    fs::create_dir_all(&figures_dir).map_err(|source| ReportError::Write { path: figures_dir.clone(), source })?;
    if !figure_specs.is_empty() {
        figures::register_font()?;
    }
    let mut svgs = BTreeMap::new();
    let mut files = Vec::with_capacity(figure_specs.len() * 2);
    for spec in &figure_specs {
        let rendered = figures::render(spec, &figures_dir)?;
        files.push(rendered.svg_path);
        files.push(rendered.png_path);
        svgs.insert(spec.stem.clone(), rendered.svg);
    }
    for (stem, svg) in images {
        let path = figures_dir.join(format!("{stem}.svg"));
        write(&path, &svg)?;
        files.push(path);
        svgs.insert(stem, svg);
    }
    debug_assert_eq!(document.figures().count(), svgs.len(), "every figure block has a figure");

    let html = out_dir.join("report.html");
    write(&html, &html::render(&document, &options.title, &svgs))?;
    let markdown = out_dir.join("report.md");
    write(&markdown, &markdown::render(&document))?;
    Ok(ReportOutput { html, markdown, figures: files })
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    fs::write(path, text).map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sla_matches_the_engine() {
        assert_eq!(SLA_MS, consensus_core::metrics::SLA_MS);
    }

    #[test]
    fn default_title() {
        assert_eq!(ReportOptions::default().title, "bftsim fault-tolerance report");
    }
}
