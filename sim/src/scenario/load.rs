//! Reading scenario files: the file model as written, parsing into a [`Scenario`], and the
//! error positions (`file:line:column`) of everything that can be wrong with a file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, Deserializer};
use toml::Spanned;

use super::validate::*;
use super::*;

pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ScenarioError::whole_file(path, format!("cannot read the scenario file: {e}")))?;
    parse(&text, path)
}

/// Parses scenario text; `path` names the file in errors and gives the default name. A
/// `[sweep]` is expanded once here so that every combination is known to be valid.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let scenario = build(text, path).map_err(|problem| problem.locate(text, path))?;
    if !scenario.sweep.is_empty() {
        scenario.expand()?;
    }
    Ok(scenario)
}

/// The scenario files named by `paths`: files as given, directories replaced by their `*.toml`
/// files sorted by name (not recursive).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut found = Vec::new();
    for path in paths {
        if !path.is_dir() {
            if !path.is_file() {
                return Err(ScenarioError::whole_file(path, "no such scenario file or directory".to_owned()));
            }
            found.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .map_err(|e| ScenarioError::whole_file(path, format!("cannot list the directory: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| ScenarioError::whole_file(path, format!("cannot list the directory: {e}")))?;
            let file = entry.path();
            if file.is_file() && file.extension().is_some_and(|ext| ext == "toml") {
                files.push(file);
            }
        }
        if files.is_empty() {
            return Err(ScenarioError::whole_file(path, "the directory holds no *.toml scenario files".to_owned()));
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        found.extend(files);
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------------------
// The file model and its validation.

/// The file as written: the public sections, plus faults in their flat form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a scenario file")]
pub(super) struct ScenarioFile {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) agents: Agents,
    #[serde(default)]
    pub(super) protocol: Protocol,
    #[serde(default)]
    pub(super) workload: Workload,
    #[serde(default)]
    pub(super) evaluator: Evaluators,
    #[serde(default)]
    pub(super) byzantine: Byzantine,
    #[serde(default)]
    pub(super) network: Network,
    #[serde(default)]
    pub(super) storage: Storage,
    #[serde(default)]
    pub(super) faults: Vec<FaultEntry>,
    #[serde(default)]
    pub(super) round_partitions: Vec<RoundPartition>,
    #[serde(default)]
    pub(super) tamper: Vec<Tamper>,
    #[serde(default)]
    pub(super) expect: Expect,
    #[serde(default)]
    pub(super) sweep: BTreeMap<String, Vec<toml::Value>>,
}

/// A `[[faults]]` entry as written: every kind's fields, each optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[faults]] table with at_ms, kind and the kind's fields")]
pub(super) struct FaultEntry {
    pub(super) at_ms: u64,
    pub(super) kind: FaultKind,
    pub(super) groups: Option<Vec<Vec<u32>>>,
    pub(super) one_way: Option<bool>,
    pub(super) agent: Option<u32>,
    pub(super) link: Option<[u32; 2]>,
    pub(super) sync_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum FaultKind {
    Partition,
    Heal,
    Crash,
    Restart,
    Clog,
    Unclog,
    Pause,
    Resume,
    FlipBit,
    FailSync,
    DiskFull,
    SlowDisk,
}

impl FaultKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Heal => "heal",
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::Clog => "clog",
            FaultKind::Unclog => "unclog",
            FaultKind::Pause => "pause",
            FaultKind::Resume => "resume",
            FaultKind::FlipBit => "flip-bit",
            FaultKind::FailSync => "fail-sync",
            FaultKind::DiskFull => "disk-full",
            FaultKind::SlowDisk => "slow-disk",
        }
    }

    /// The fields this kind takes besides `at_ms` and `kind`.
    pub(super) fn fields(self) -> &'static [&'static str] {
        match self {
            FaultKind::Partition => &["groups", "one_way"],
            FaultKind::Heal => &[],
            FaultKind::Crash | FaultKind::Restart | FaultKind::Pause | FaultKind::Resume => &["agent"],
            FaultKind::FlipBit | FaultKind::FailSync | FaultKind::DiskFull => &["agent"],
            FaultKind::SlowDisk => &["agent", "sync_ms"],
            FaultKind::Clog | FaultKind::Unclog => &["agent", "link"],
        }
    }
}

pub(super) fn build(text: &str, path: &Path) -> Result<Scenario, Problem> {
    let doc = DeTable::parse(text).map_err(|e| Problem::syntax(&e))?;
    let file = ScenarioFile::deserialize(Deserializer::from(doc)).map_err(|e| Problem::toml(&e))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    file.validate(stem, path, text)
}

impl ScenarioFile {
    pub(super) fn validate(self, stem: String, path: &Path, text: &str) -> Result<Scenario, Problem> {
        let name = match self.name {
            Some(name) => {
                check_name(&name)?;
                name
            }
            None if stem.is_empty() => "scenario".to_owned(),
            None => stem,
        };
        check_agents(&self.agents)?;
        check_protocol(&self.protocol, &self.agents)?;
        check_workload(&self.workload)?;
        check_evaluators(&self.evaluator)?;
        check_byzantine(&self.byzantine, &self.agents)?;
        check_network(&self.network)?;
        check_storage(&self.storage)?;
        let faults = check_faults(self.faults, &self.agents)?;
        check_expect(&self.expect)?;
        check_round_partitions(&self.round_partitions, &self.byzantine, &self.agents, &self.workload)?;
        check_tamper(&self.tamper, &self.byzantine, &self.agents, &self.workload)?;
        Ok(Scenario {
            name,
            description: self.description,
            agents: self.agents,
            protocol: self.protocol,
            workload: self.workload,
            evaluator: self.evaluator,
            byzantine: self.byzantine,
            network: self.network,
            storage: self.storage,
            faults,
            round_partitions: self.round_partitions,
            tamper: self.tamper,
            expect: self.expect,
            sweep: self.sweep,
            path: path.to_path_buf(),
            source: Arc::from(text),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Error positions.

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
