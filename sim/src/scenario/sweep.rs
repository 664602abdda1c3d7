//! `[sweep]`: a scenario file with axes expands into the cartesian product of its points.

use super::load::*;
use super::problem::*;
use super::*;

impl Scenario {
    /// The scenarios of the `[sweep]`: the cartesian product of its axes (keys in sorted order,
    /// the last varying fastest), each with its `(key, value)` labels. Each is the file with
    /// those keys overridden, validated, without a sweep, named `name[key=value,...]`. Without
    /// a sweep: the scenario itself with no labels. Works from the file's text, so fields
    /// edited after parsing are not carried over.
    pub fn expand(&self) -> Result<Vec<(SweepLabels, Scenario)>, ScenarioError> {
        if self.sweep.is_empty() {
            return Ok(vec![(Vec::new(), self.clone())]);
        }
        let fail = |problem: Problem| problem.locate(&self.source, &self.path);
        let mut base: toml::Table = toml::from_str(&self.source).map_err(|e| fail(Problem::toml(&e)))?;
        base.remove("sweep");
        let axes: Vec<(&String, &Vec<toml::Value>)> = self.sweep.iter().collect();
        let mut total: usize = 1;
        for (key, values) in &axes {
            if let Some(message) = check_sweep_key(key) {
                return Err(fail(Problem::at(sweep_path(key, None), message)));
            }
            if values.is_empty() {
                let message = format!("sweep \"{key}\" has no values: expected a non-empty array");
                return Err(fail(Problem::at(sweep_path(key, None), message)));
            }
            total = total.saturating_mul(values.len());
        }
        if total > MAX_SWEEP_COMBINATIONS {
            let message = format!(
                "the sweep has {total} combinations, more than {MAX_SWEEP_COMBINATIONS}: use fewer values per axis"
            );
            return Err(fail(Problem::at(vec![Seg::key("sweep")], message)));
        }
        let mut out = Vec::with_capacity(total);
        for combination in 0..total {
            let mut picks = Vec::with_capacity(axes.len());
            let mut rest = combination;
            for (key, values) in axes.iter().rev() {
                let index = rest % values.len();
                // Every axis was checked to be non-empty above, so the value exists.
                if let Some(value) = values.get(index) {
                    picks.push((key.as_str(), index, value));
                }
                rest /= values.len();
            }
            picks.reverse();
            out.push(self.combination(&base, &picks).map_err(fail)?);
        }
        Ok(out)
    }

    /// One sweep combination: `picks` are (key, value index, value).
    fn combination(
        &self,
        base: &toml::Table,
        picks: &[(&str, usize, &toml::Value)],
    ) -> Result<(SweepLabels, Scenario), Problem> {
        let labels: SweepLabels = picks.iter().map(|(key, _, value)| ((*key).to_owned(), label(value))).collect();
        let rendered_labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut table = base.clone();
        for (key, index, value) in picks {
            set_dotted(&mut table, key, (*value).clone()).map_err(|message| {
                Problem::at(sweep_path(key, Some(*index)), format!("sweep \"{key}\" cannot be applied: {message}"))
            })?;
        }
        let name = format!("{}[{}]", self.name, rendered_labels.join(","));
        table.insert("name".to_owned(), toml::Value::String(name));
        let text = toml::to_string(&table)
            .map_err(|e| Problem::at(vec![Seg::key("sweep")], format!("the swept scenario cannot be written: {e}")))?;
        let mut scenario = match build(&text, &self.path) {
            Ok(scenario) => scenario,
            Err(problem) => {
                let (_, message, path) = problem.resolve(&text);
                let (key, index) = picks
                    .iter()
                    .find(|(key, _, _)| related(key, &path))
                    .or_else(|| picks.first())
                    .map_or(("sweep", 0), |(key, index, _)| (*key, *index));
                let message = format!(
                    "sweep \"{key}\" (with {}) gives an invalid scenario: {message}",
                    rendered_labels.join(", ")
                );
                return Err(Problem::at(sweep_path(key, Some(index)), message));
            }
        };
        scenario.source = self.source.clone();
        Ok((labels, scenario))
    }
}

/// Dotted sweep keys may not be empty or address the sweep itself or the name; keys inside
/// arrays are refused when the value is applied (`set_dotted`).
pub(super) fn check_sweep_key(key: &str) -> Option<String> {
    let segments: Vec<&str> = key.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Some(format!("sweep key \"{key}\" has an empty segment: expected keys like \"network.drop\""));
    }
    if matches!(segments.first(), Some(&"sweep") | Some(&"name")) {
        return Some(format!("sweep key \"{key}\" cannot be swept: sweep any key except name and sweep.*"));
    }
    None
}

pub(super) fn sweep_path(key: &str, index: Option<usize>) -> Vec<Seg> {
    let mut path = vec![Seg::key("sweep"), Seg::key(key)];
    path.extend(index.map(Seg::Index));
    path
}

/// Whether an error at `path` concerns the dotted sweep `key` (either is a prefix of the other).
pub(super) fn related(key: &str, path: &[Seg]) -> bool {
    !path.is_empty() && key.split('.').zip(path).all(|(segment, seg)| *seg == Seg::key(segment))
}

/// A sweep value as a label: strings without quotes, everything else as TOML.
pub(super) fn label(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sets `a.b.c = value` in `table`, creating missing tables.
pub(super) fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut segments: Vec<&str> = key.split('.').collect();
    let last = segments.pop().ok_or_else(|| "empty key".to_owned())?;
    let mut current = table;
    let mut walked = Vec::new();
    for segment in segments {
        walked.push(segment);
        let entry = current.entry(segment.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("{} is not a table", walked.join("."))),
        };
    }
    current.insert(last.to_owned(), value);
    Ok(())
}
