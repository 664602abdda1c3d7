//! The commands a report prints to replay a run. Every one runs as printed from the directory
//! `bftsim report` was run in (the repository root, typically): scenario files are named as
//! `bftsim run` was given them (`summary.json`), and an exploration's files under the result
//! directory as the report was given it.
//!
//! A run of `bftsim explore` has no scenario file of its own unless one was written: every
//! failing run's is (`DIR/runs/<index>.toml`), and a finding's shrunk one
//! (`DIR/findings/<id>.toml`). For any other generated run the command is the two-step form
//! that writes the file first with `bftsim explore … --emit INDEX`. A run whose scenario file
//! is not recorded (a `runs.jsonl` without `summary.json`) gets no command, never a
//! placeholder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::explore::ExploreSummary;
use crate::model::RunRecord;
use crate::summary::ScenarioSummary;

/// Where the runs of a report come from: what a replay command needs besides the record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    /// The result directory as the report was given it; commands name its files through it.
    pub dir: PathBuf,
    /// `bftsim explore` options besides the master seed that regenerate its runs with
    /// `--emit`: `--mutation`, `--mode`, `--envelope` (empty without an exploration).
    pub emit_options: String,
    /// Generated runs (by index) whose scenario file `DIR/runs/<index>.toml` exists.
    pub files: BTreeSet<u64>,
    /// Whether `DIR/runs/` exists (older explorations did not write it).
    pub runs_dir: bool,
}

impl Source {
    /// The source of the result directory `dir`, with its exploration if any.
    pub fn of(dir: &Path, exploration: Option<&ExploreSummary>) -> Source {
        let runs = dir.join("runs");
        let files = std::fs::read_dir(&runs)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".toml")?.parse::<u64>().ok())
                    .collect()
            })
            .unwrap_or_default();
        Source {
            dir: dir.to_path_buf(),
            emit_options: exploration.map(emit_options).unwrap_or_default(),
            files,
            runs_dir: runs.is_dir(),
        }
    }

    /// A path under the result directory, as a command names it.
    pub fn path(&self, relative: &str) -> String {
        shell_quote(&self.dir.join(relative).display().to_string())
    }

    /// The command that replays `run` of the scenario `summary` describes, or `None` when its
    /// scenario file is not recorded.
    pub fn command(&self, summary: Option<&ScenarioSummary>, run: &RunRecord) -> Option<String> {
        if let Some(generated) = Generated::of(run) {
            return Some(self.generated(&generated, run.seed));
        }
        reproduce_command(summary, &run.params, run.seed)
    }

    /// `bftsim reproduce DIR/runs/I.toml --seed S`, first writing the file with `--emit` when
    /// the exploration did not.
    fn generated(&self, g: &Generated, seed: u64) -> String {
        let file = self.path(&format!("runs/{}.toml", g.index));
        let replay = format!("bftsim reproduce {file} --seed {seed}");
        if self.files.contains(&g.index) {
            return replay;
        }
        let mkdir = if self.runs_dir { String::new() } else { format!("mkdir -p {} && ", self.path("runs")) };
        format!(
            "{mkdir}bftsim explore --seed {}{} --emit {} > {file} && {replay}",
            g.master_seed, self.emit_options, g.index
        )
    }
}

/// `--mutation X --mode M --envelope FILE` as the exploration was run (each only when not the
/// default), with a leading space.
fn emit_options(e: &ExploreSummary) -> String {
    let mut options = String::new();
    if !e.mutation.is_empty() && e.mutation != "none" {
        options.push_str(&format!(" --mutation {}", shell_quote(&e.mutation)));
    }
    if let Some(mode) = &e.only_mode {
        options.push_str(&format!(" --mode {}", shell_quote(mode)));
    }
    if !e.envelope.is_empty() && e.envelope != "default" {
        options.push_str(&format!(" --envelope {}", shell_quote(&e.envelope)));
    }
    options
}

/// Where a run of `bftsim explore` comes from (its record's `explore.*` parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generated {
    /// The master seed.
    pub master_seed: u64,
    /// The run's index in the master seed's sequence.
    pub index: u64,
}

impl Generated {
    /// The generated run `run` is, if it is one.
    pub fn of(run: &RunRecord) -> Option<Generated> {
        let number = |key: &str| run.params.get(key)?.parse::<u64>().ok();
        Some(Generated { master_seed: number("explore.master_seed")?, index: number("explore.index")? })
    }
}

/// Whether a record's parameters are a sweep point's (not an exploration's bookkeeping).
pub fn is_sweep_point(run: &RunRecord) -> bool {
    !run.params.is_empty() && Generated::of(run).is_none()
}

/// The replay command of `seed`: the one `summary.json` lists for it, else
/// `bftsim reproduce PATH --seed SEED --set k=v …` with the scenario file from `summary.json`;
/// `None` when the file is not recorded.
pub fn reproduce_command(
    summary: Option<&ScenarioSummary>,
    params: &BTreeMap<String, String>,
    seed: u64,
) -> Option<String> {
    if let Some(failure) = summary.and_then(|s| s.failures.iter().find(|f| f.seed == seed && !f.reproduce.is_empty())) {
        return Some(failure.reproduce.clone());
    }
    let path = shell_quote(summary.map(|s| s.path.as_str()).filter(|p| !p.is_empty())?);
    let mut command = format!("bftsim reproduce {path} --seed {seed}");
    for (key, value) in params {
        command.push_str(" --set ");
        command.push_str(&shell_quote(&format!("{key}={value}")));
    }
    Some(command)
}

/// What a report shows instead of a command for a run whose scenario file is not recorded.
pub const NO_COMMAND: &str = "no command: the scenario file is not recorded (runs.jsonl without summary.json)";

/// Quotes `word` for a POSIX shell when it holds anything but safe characters.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Failure;

    fn generated(index: &str) -> RunRecord {
        let params = [("explore.master_seed", "4242"), ("explore.index", index), ("explore.mode", "twins")];
        RunRecord {
            seed: 9,
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..RunRecord::default()
        }
    }

    #[test]
    fn run_commands_come_from_the_summary_and_never_hold_a_placeholder() {
        let mut params = BTreeMap::new();
        params.insert("network.drop".to_owned(), "0.1".to_owned());
        params.insert("byzantine.count".to_owned(), "2".to_owned());
        let mut summary =
            ScenarioSummary::new("sw[..]".into(), "scenarios/sw.toml".into(), BTreeMap::new(), true, None);
        summary.failures =
            vec![Failure { seed: 7, reproduce: "bftsim reproduce given --seed 7".into(), ..Default::default() }];
        assert_eq!(reproduce_command(Some(&summary), &params, 7).as_deref(), Some("bftsim reproduce given --seed 7"));
        assert_eq!(
            reproduce_command(Some(&summary), &params, 12).as_deref(),
            Some("bftsim reproduce scenarios/sw.toml --seed 12 --set byzantine.count=2 --set network.drop=0.1")
        );
        assert_eq!(reproduce_command(None, &BTreeMap::new(), 3), None, "no file, no command");
        params.insert("workload.name".into(), "a b's".into());
        let cmd = reproduce_command(Some(&summary), &params, 1).unwrap_or_default();
        assert!(cmd.ends_with(r"--set 'workload.name=a b'\''s'"), "{cmd}");
    }

    #[test]
    fn generated_runs_replay_their_file_or_write_it_first() {
        let exploration = ExploreSummary {
            mutation: "no-locking".into(),
            only_mode: Some("twins".into()),
            envelope: "my envelope.toml".into(),
            ..ExploreSummary::default()
        };
        let mut source =
            Source { dir: "out/x".into(), runs_dir: true, ..Source::of(Path::new("/nonexistent"), Some(&exploration)) };
        source.files.insert(5);
        assert_eq!(
            source.command(None, &generated("5")).as_deref(),
            Some("bftsim reproduce out/x/runs/5.toml --seed 9")
        );
        assert_eq!(
            source.command(None, &generated("6")).as_deref(),
            Some(
                "bftsim explore --seed 4242 --mutation no-locking --mode twins --envelope 'my envelope.toml' --emit 6 \
                 > out/x/runs/6.toml && bftsim reproduce out/x/runs/6.toml --seed 9"
            )
        );
        source.runs_dir = false;
        let cmd = source.command(None, &generated("6")).unwrap_or_default();
        assert!(cmd.starts_with("mkdir -p out/x/runs && bftsim explore"), "{cmd}");
        assert!(!is_sweep_point(&generated("1")));
        let sweep = RunRecord { params: [("a".to_owned(), "1".to_owned())].into(), ..RunRecord::default() };
        assert!(is_sweep_point(&sweep));
    }
}
