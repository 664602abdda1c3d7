//! Error positions: a [`Problem`] found in a scenario file, at a span of its text or at a key
//! path, and how it becomes `file:line:column: message` with the fix.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::*;

/// One segment of a key path: `faults[2].agent` is `faults`, `2`, `agent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub(super) fn key(key: &str) -> Seg {
        Seg::Key(key.to_owned())
    }
}

pub(super) fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::key(k)).collect()
}

pub(super) fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) if k.contains('.') => out.push_str(&format!(".\"{k}\"")),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// An error before it has a position: at a span of the text, or at a key path.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) at: At,
    pub(super) message: String,
}

#[derive(Debug)]
pub(super) enum At {
    /// A span from the TOML parser or deserialiser; `syntax` when the text did not parse.
    Span { span: Range<usize>, syntax: bool },
    /// A key path of the document.
    Path(Vec<Seg>),
}

impl Problem {
    pub(super) fn at(path: Vec<Seg>, message: String) -> Problem {
        Problem { at: At::Path(path), message }
    }

    pub(super) fn syntax(e: &toml::de::Error) -> Problem {
        Problem { at: At::Span { span: e.span().unwrap_or(0..0), syntax: true }, message: e.message().to_owned() }
    }

    pub(super) fn toml(e: &toml::de::Error) -> Problem {
        Problem { at: At::Span { span: e.span().unwrap_or(0..0), syntax: false }, message: e.message().to_owned() }
    }

    /// The span, the full message, and the key path of the problem in `text`.
    pub(super) fn resolve(self, text: &str) -> (Range<usize>, String, Vec<Seg>) {
        let doc = DeTable::parse(text).ok();
        match self.at {
            At::Span { span, syntax: true } => {
                (span, format!("TOML syntax error: {}; see https://toml.io for the syntax", self.message), Vec::new())
            }
            At::Span { span, syntax: false } => {
                let path = doc.as_ref().map(|d| path_at_span(d, &span)).unwrap_or_default();
                let message = explain(&self.message, &path);
                (span, message, path)
            }
            At::Path(path) => {
                let span = doc.as_ref().map(|d| span_of_path(d, &path)).unwrap_or(0..0);
                (span, self.message, path)
            }
        }
    }

    pub(super) fn locate(self, text: &str, file: &Path) -> ScenarioError {
        let (span, message, _) = self.resolve(text);
        let (line, column) = line_column(text, span.start);
        ScenarioError { file: file.to_path_buf(), line, column, message }
    }
}

/// A deserialiser message with the key it concerns and a hint at the fix.
pub(super) fn explain(message: &str, path: &[Seg]) -> String {
    let key = render_path(path);
    let message = message
        .replace("expected u64", "expected a whole number ≥ 0")
        .replace("expected u32", "expected a whole number ≥ 0")
        .replace("expected usize", "expected a whole number ≥ 0")
        .replace("expected f64", "expected a number");
    let hint = if message.starts_with("unknown field") {
        "; remove the key or correct its spelling"
    } else if message.starts_with("unknown variant") {
        "; use one of the names listed"
    } else if message.starts_with("missing field") {
        "; add it"
    } else if message.starts_with("invalid type: map") && key.starts_with("sweep") {
        "; quote dotted sweep keys: \"network.drop\" = [0.0, 0.1]"
    } else {
        ""
    };
    if key.is_empty() {
        format!("{message}{hint}")
    } else {
        format!("{key}: {message}{hint}")
    }
}

/// The span of the value at `path`, or of its deepest existing ancestor (a key the file omits
/// is reported at the table that would hold it; an omitted table at the start of the file).
pub(super) fn span_of_path(doc: &Spanned<DeTable<'_>>, path: &[Seg]) -> Range<usize> {
    let mut best = 0..0;
    let mut current: Option<&DeValue<'_>> = None;
    for seg in path {
        let next = match (current, seg) {
            (None, Seg::Key(k)) => doc.get_ref().get(k.as_str()),
            (Some(value), Seg::Key(k)) => value.get(k.as_str()),
            (Some(value), Seg::Index(i)) => value.get(*i),
            (None, Seg::Index(_)) => None,
        };
        let Some(next) = next else { break };
        best = next.span();
        current = Some(next.get_ref());
    }
    best
}

/// The key path of the key or value at `span`: the innermost match wins.
pub(super) fn path_at_span(doc: &Spanned<DeTable<'_>>, span: &Range<usize>) -> Vec<Seg> {
    let mut best: Option<(usize, Vec<Seg>)> = None;
    let mut prefix = Vec::new();
    walk_table(doc.get_ref(), span, &mut prefix, &mut best);
    best.map(|(_, path)| path).unwrap_or_default()
}

pub(super) fn walk_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    prefix: &mut Vec<Seg>,
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    for (key, value) in table.iter() {
        prefix.push(Seg::Key(key.get_ref().to_string()));
        consider(&key.span(), span, prefix, best);
        walk_value(value, span, prefix, best);
        prefix.pop();
    }
}

pub(super) fn walk_value(
    value: &Spanned<DeValue<'_>>,
    span: &Range<usize>,
    prefix: &mut Vec<Seg>,
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    consider(&value.span(), span, prefix, best);
    match value.get_ref() {
        DeValue::Table(table) => walk_table(table, span, prefix, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                walk_value(item, span, prefix, best);
                prefix.pop();
            }
        }
        _ => {}
    }
}

pub(super) fn consider(
    candidate: &Range<usize>,
    span: &Range<usize>,
    prefix: &[Seg],
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    let contains = candidate.start <= span.start && span.end <= candidate.end;
    let width = candidate.end - candidate.start;
    if contains && best.as_ref().is_none_or(|(w, _)| width <= *w) {
        *best = Some((width, prefix.to_vec()));
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}
