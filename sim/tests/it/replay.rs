//! Every command bftsim prints runs as printed: the reports of a `bftsim run` (a sweep and a
//! planted mutation among its scenarios), of a `bftsim explore` that finds a planted mutation,
//! and of a merged sharded exploration, and what the commands themselves printed (the CLI lines
//! of run, explore and merge, `explore.json`, the `# Replay:` header of every scenario file they
//! wrote). Each `bftsim …` command is run by a shell from the repository root (where the runs
//! and the reports were made, with relative paths as a user types them) and must replay the
//! trace hash of the run it names: the run's record in runs.jsonl, or the shrunk finding's in
//! explore.json. No command holds a `<…>` placeholder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root, where every command runs.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch directory under the root's `target/`, named relative to the root (as a user would).
fn scratch(name: &str) -> PathBuf {
    let relative = PathBuf::from(format!("target/it-replay-{}/{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(root().join(&relative));
    relative
}

/// `bftsim ARGS` from the root; its stdout and stderr (the command must succeed or find what it
/// looks for).
fn bftsim(args: &[&str]) -> String {
    crate::bftsim_in(&root(), args)
}

/// The `<…>` placeholders of `text` (`<explore-twins.toml>`, `<index>`), HTML tags left out.
fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices('<') {
        let rest = &text[at + 1..];
        let Some(end) = rest.find('>') else { continue };
        let inner = &rest[..end];
        let word = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let tag = ["a", "br", "sup", "sub", "p", "div", "span", "svg", "g", "title", "details", "summary"];
        if word && !tag.contains(&inner) {
            found.push(format!("<{inner}>"));
        }
    }
    found
}

/// Every replay command in plain text (CLI output, file headers, JSON strings): from each
/// `bftsim ` to the end of its line or code span, when it replays a run.
fn printed(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("bftsim ") {
            let span = &rest[at..];
            let end = span.find(['`', '"']).unwrap_or(span.len());
            let command = span[..end].trim_end_matches(['.', ' ']);
            if command.contains("bftsim reproduce ") {
                found.push(command.to_owned());
            }
            rest = &span[end..];
        }
    }
    found
}

/// What the exploration in `dir` wrote besides the report: `explore.json`'s replay commands and
/// the `# Replay:` headers of its scenario files (findings and failing runs).
fn written_commands(dir: &Path) -> Vec<String> {
    let mut text = std::fs::read_to_string(root().join(dir).join("explore.json")).unwrap_or_default();
    for sub in ["findings", "runs"] {
        let entries = std::fs::read_dir(root().join(dir).join(sub)).into_iter().flatten().flatten();
        for entry in entries.filter(|e| e.path().extension().is_some_and(|x| x == "toml")) {
            let file = std::fs::read_to_string(entry.path()).unwrap_or_default();
            text.extend(file.lines().filter(|l| l.starts_with("# Replay: ")).map(|l| format!("{l}\n")));
        }
    }
    printed(&text)
}

/// Every `bftsim …` command of a Markdown report: code spans and lines of code blocks.
fn commands(markdown: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            found.extend(line.trim().starts_with("bftsim ").then(|| line.trim().to_owned()));
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            // Odd pieces are inside a code span; table cells escape `|`.
            let command = span.replace("\\|", "|");
            let runnable = i % 2 == 1 && (command.starts_with("bftsim ") || command.starts_with("mkdir -p "));
            if runnable && command.contains(" --seed ") {
                found.push(command);
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The trace hashes a replay may show: (scenario name, seed) → hash, from runs.jsonl and the
/// findings of explore.json.
fn expected_hashes(dir: &Path) -> BTreeMap<(String, u64), String> {
    let mut hashes = BTreeMap::new();
    let runs = std::fs::read_to_string(root().join(dir).join("runs.jsonl")).unwrap_or_default();
    for line in runs.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let key = (r["scenario"].as_str().unwrap_or_default().to_owned(), r["seed"].as_u64().unwrap_or(u64::MAX));
        hashes.insert(key, r["trace_hash"].as_str().unwrap_or_default().to_owned());
    }
    let explore = std::fs::read_to_string(root().join(dir).join("explore.json")).unwrap_or_default();
    if let Ok(e) = serde_json::from_str::<serde_json::Value>(&explore) {
        for f in e["findings"].as_array().into_iter().flatten() {
            let key = (f["id"].as_str().unwrap_or_default().to_owned(), f["seed"].as_u64().unwrap_or(u64::MAX));
            hashes.insert(key, f["trace_hash"].as_str().unwrap_or_default().to_owned());
        }
    }
    hashes
}

/// Writes the report of `dir`, runs every command it prints from the root, with those `also`
/// printed by the commands that made `dir`, and checks each replays the trace hash of the run
/// it names. Returns the report's commands.
fn replay_every_command(dir: &Path, also: &[String]) -> Vec<String> {
    bftsim(&["report", &dir.display().to_string()]);
    let markdown = std::fs::read_to_string(root().join(dir).join("report.md")).unwrap_or_default();
    assert_eq!(placeholders(&markdown), Vec::<String>::new(), "placeholders in {}/report.md", dir.display());
    let commands = commands(&markdown);
    assert!(!commands.is_empty(), "{} prints no command", dir.display());
    let mut all: Vec<String> = commands.iter().chain(also).cloned().collect();
    all.sort();
    all.dedup();
    let hashes = expected_hashes(dir);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_bftsim")).parent().map(Path::to_path_buf).unwrap_or_default();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for command in &all {
        assert!(!command.contains('<'), "a placeholder in {command}");
        let output = Command::new("sh")
            .args(["-c", &format!("{command} --limit 0")])
            .env("PATH", &path)
            .current_dir(root())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let replayed = stdout.lines().find_map(|l| l.strip_prefix("trace_hash ")).unwrap_or_else(|| {
            panic!("{command}: no trace hash\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr))
        });
        // `NAME seed SEED: …` names the run replayed.
        let (name, seed) = stdout
            .lines()
            .find_map(|l| {
                let (name, rest) = l.split_once(" seed ")?;
                let seed = rest.split(':').next()?.parse::<u64>().ok()?;
                Some((name.to_owned(), seed))
            })
            .unwrap_or_else(|| panic!("{command}: which run?\n{stdout}"));
        let expected =
            hashes.get(&(name.clone(), seed)).unwrap_or_else(|| panic!("{command}: no record of {name} seed {seed}"));
        assert_eq!(replayed, expected, "{command} replays another run");
    }
    commands
}

#[test]
fn every_command_of_a_run_report_replays_its_run() {
    let out = scratch("run");
    let out_arg = out.display().to_string();
    let cli = bftsim(&[
        "run",
        "scenarios/baseline.toml",
        "scenarios/mut-quorum-one-short.toml",
        "scenarios/sweep-drop-byzantine.toml",
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--quiet",
        "--out",
        &out_arg,
    ]);
    assert_eq!(placeholders(&cli), Vec::<String>::new(), "{cli}");
    let cli = printed(&cli);
    assert!(cli.iter().any(|c| c.contains("scenarios/mut-quorum-one-short.toml")), "the failing seed: {cli:?}");
    let commands = replay_every_command(&out, &cli);
    assert!(commands.iter().any(|c| c.contains("scenarios/mut-quorum-one-short.toml")), "{commands:?}");
    assert!(commands.iter().any(|c| c.contains("--set")), "a sweep point: {commands:?}");
    let _ = std::fs::remove_dir_all(root().join(&out));
}

#[test]
fn every_command_of_an_exploration_report_replays_its_run() {
    let out = scratch("explore");
    let out_arg = out.display().to_string();
    let envelope = "sim/tests/it/small-envelope.toml";
    let common = ["--envelope", envelope, "--mutation", "quorum-one-short", "--jobs", "2"];
    let mut args = vec!["explore", "--seed", "1", "--runs", "10", "--shrink-runs", "20", "--max-findings", "1"];
    args.extend(common);
    args.extend(["--out", &out_arg]);
    // Not quiet: the line of each first failing run carries its replay command.
    let text = bftsim(&args);
    assert_eq!(placeholders(&text), Vec::<String>::new(), "{text}");
    let mut cli = printed(&text);
    assert!(cli.iter().any(|c| c.contains("/runs/")), "the failing run's line: {cli:?}");
    assert!(cli.iter().any(|c| c.contains("/findings/")), "the finding's line: {cli:?}");
    cli.extend(written_commands(&out));
    let commands = replay_every_command(&out, &cli);
    assert!(commands.iter().any(|c| c.contains("/findings/")), "the finding: {commands:?}");
    assert!(commands.iter().any(|c| c.contains("/runs/") && !c.contains("--emit")), "a failing run: {commands:?}");
    let first_screen = std::fs::read_to_string(root().join(&out).join("report.md")).unwrap_or_default();
    let first_screen: String = first_screen.lines().take(12).collect::<Vec<_>>().join("\n");
    assert!(first_screen.contains("the planted mutation `quorum-one-short`"), "{first_screen}");
    assert!(first_screen.contains("The checker found the planted bug"), "{first_screen}");
    assert!(!first_screen.contains("The vote broke"), "{first_screen}");

    // The same exploration in two shards, merged.
    let shards: Vec<String> = (0..2).map(|i| scratch(&format!("shard-{i}")).display().to_string()).collect();
    for (i, shard) in shards.iter().enumerate() {
        let index = format!("{i}/2");
        let mut args = vec!["explore", "--seed", "1", "--runs", "5", "--shrink-runs", "20", "--max-findings", "1"];
        args.extend(common);
        args.extend(["--quiet", "--shard", &index, "--out", shard]);
        bftsim(&args);
    }
    let merged = scratch("merged");
    let merged_arg = merged.display().to_string();
    let text = bftsim(&["merge", &shards[0], &shards[1], "--out", &merged_arg]);
    assert_eq!(placeholders(&text), Vec::<String>::new(), "{text}");
    let mut cli = printed(&text);
    assert!(cli.iter().any(|c| c.contains(&format!("{merged_arg}/findings/"))), "the merged copy: {cli:?}");
    cli.extend(written_commands(&merged));
    let commands = replay_every_command(&merged, &cli);
    assert!(commands.iter().any(|c| c.contains("--emit")), "a run without a file of its own: {commands:?}");
    for dir in [out, merged].into_iter().chain(shards.iter().map(PathBuf::from)) {
        let _ = std::fs::remove_dir_all(root().join(dir));
    }
}

/// The checks above can fail: a placeholder is found, an HTML anchor is not; a replay command is
/// taken from a line up to its code span's end.
#[test]
fn placeholders_and_printed_commands_are_recognised() {
    let line = "`bftsim reproduce <explore-twins.toml> --seed 1` <a id=\"top\"></a> <br>";
    assert_eq!(placeholders(line), vec!["<explore-twins.toml>".to_owned()]);
    let text = "run 4: agreement\n  replay: bftsim reproduce out/runs/4.toml --seed 9\nsee `bftsim explore --emit 4`.";
    assert_eq!(printed(text), vec!["bftsim reproduce out/runs/4.toml --seed 9".to_owned()]);
}
