//! The arguments that name one run's scenario and sweep point, shared by `bftsim reproduce`
//! and `bftsim shrink` (flattened into both), and the lookup of that sweep point.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use sim::scenario::{self, Scenario, SweepLabels};

use super::CliError;

/// A scenario file, a seed and a sweep point.
#[derive(Args)]
pub(super) struct PointArgs {
    /// The scenario file (for `reproduce`, also a `bftsim model` schedule: docs/model.md).
    pub(super) scenario: PathBuf,
    /// The seed (shrink keeps it fixed); required for a scenario, a model schedule has none.
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Sweep point: `key=value` (repeat for each axis).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(super) set: Vec<String>,
}

impl PointArgs {
    /// The scenario at the sweep point `--set` names; `command` names the subcommand in the
    /// list of points a sweep without `--set` prints.
    pub(super) fn load(&self, command: &str) -> Result<(SweepLabels, Scenario), CliError> {
        sweep_point(&self.scenario, &self.set, self.seed()?, command)
    }

    /// The seed, which a scenario needs.
    pub(super) fn seed(&self) -> Result<u64, CliError> {
        self.seed
            .ok_or_else(|| CliError::Usage(format!("{}: give the run's seed with --seed N", self.scenario.display())))
    }
}

/// The scenario at `path`, at the sweep point `set` names (`key=value` for each axis). A
/// sweep without `--set` is a usage error that lists the points as `bftsim COMMAND` lines.
fn sweep_point(path: &Path, set: &[String], seed: u64, command: &str) -> Result<(SweepLabels, Scenario), CliError> {
    let scenario = scenario::load(path)?;
    let points = scenario.expand()?;
    if set.is_empty() && points.len() > 1 {
        let labels: Vec<SweepLabels> = points.into_iter().map(|(labels, _)| labels).collect();
        return Err(CliError::Usage(list_points(path, seed, command, &labels)));
    }
    let mut wanted = BTreeMap::new();
    for kv in set {
        let (k, v) = kv.split_once('=').ok_or_else(|| CliError::Usage(format!("--set {kv}: expected KEY=VALUE")))?;
        wanted.insert(k.to_owned(), v.to_owned());
    }
    points.into_iter().find(|(labels, _)| labels.iter().cloned().collect::<BTreeMap<_, _>>() == wanted).ok_or_else(
        || {
            let asked: Vec<String> = wanted.iter().map(|(k, v)| format!("{k}={v}")).collect();
            CliError::Usage(format!("no sweep point of {} matches {}", path.display(), asked.join(", ")))
        },
    )
}

/// The sweep points of `path` and how to pick one, for `--set` left out.
fn list_points(path: &Path, seed: u64, command: &str, points: &[sim::scenario::SweepLabels]) -> String {
    let mut text = format!(
        "{} is a sweep of {} points: pick one with --set KEY=VALUE for each axis, e.g.\n",
        path.display(),
        points.len()
    );
    for labels in points {
        let params: BTreeMap<String, String> = labels.iter().cloned().collect();
        let reproduce = sim::merge::reproduce_command(&path.display().to_string(), seed, &params);
        text.push_str(&format!("  {}\n", reproduce.replacen("bftsim reproduce", &format!("bftsim {command}"), 1)));
    }
    text.trim_end().to_owned()
}
