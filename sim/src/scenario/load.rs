//! Reading scenario files: finding them, parsing one into the file model (raw.rs) and
//! validating it into a [`Scenario`] (validate.rs); errors carry their positions (problem.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::de::{DeTable, Deserializer};

use super::problem::*;
use super::raw::*;
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
