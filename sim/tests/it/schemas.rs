//! The JSON Schemas of docs/schemas/ are the ones the output types give (`sim::schemas`), and
//! real output validates against them: runs.jsonl and summary.json of a `bftsim run` (a safe
//! scenario, a Byzantine one and a mutation that fails), explore.json of a `bftsim explore` that
//! finds and shrinks a planted mutation, and the trace of a twins run that ends in a violation.
//! The check closes every object of the schemas (no property but those described), so a field
//! written but missing from its schema fails here; and no string in that output is Rust Debug
//! text (`Name { field: … }`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Set to regenerate docs/schemas/ from the types.
const WRITE: &str = "BFTSIM_WRITE_SCHEMAS";

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas")
}

fn text_of(file: &sim::schemas::SchemaFile) -> String {
    format!("{}\n", serde_json::to_string_pretty(&file.schema).unwrap_or_default())
}

#[test]
fn the_schemas_in_docs_are_the_ones_the_types_give() {
    for file in sim::schemas::schemas() {
        let path = docs().join(file.name);
        let want = text_of(&file);
        if std::env::var_os(WRITE).is_some() {
            std::fs::create_dir_all(docs()).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is not the schema the types give: run `{WRITE}=1 cargo test -p sim --test it schemas` and commit it",
            path.display()
        );
    }
}

/// `schema` with every object closed: `additionalProperties: false` wherever properties are
/// listed and nothing else is said about the others.
fn closed(mut schema: Value) -> Value {
    fn close(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(close);
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut schema);
    schema
}

fn validator(name: &str) -> jsonschema::Validator {
    let file = sim::schemas::schemas().into_iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no {name}"));
    jsonschema::validator_for(&closed(file.schema)).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

/// Checks `instance` (from `what`) against `validator`, and that none of its strings is Debug text.
fn check(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> =
        validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} does not match its schema:\n{}", errors.join("\n"));
    let mut strings = Vec::new();
    collect_strings(instance, &mut strings);
    for s in strings {
        assert!(!debug_text(s), "{what} holds Rust Debug text: {s}");
    }
}

fn collect_strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

/// Whether `s` holds a Debug struct (`Decided { chosen: … }`): a capitalised name, then ` { `.
pub fn debug_text(s: &str) -> bool {
    s.match_indices(" { ").any(|(at, _)| {
        let name = s[..at].rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or("");
        name.starts_with(|c: char| c.is_ascii_uppercase())
    })
}

fn bftsim(dir: &Path, args: &[&str]) {
    crate::bftsim_in(dir, args);
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()))).collect()
}

#[test]
fn real_output_matches_the_schemas() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("bftsim-it-schemas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = out.join("run");
    let run_args = ["run", "--seeds", "3", "--jobs", "2", "--quiet", "--out"];
    let scenarios =
        ["scenarios/baseline.toml", "scenarios/mut-proposal-not-reset.toml", "scenarios/byz-equivocate.toml"];
    let mut args: Vec<&str> = run_args.to_vec();
    let run_dir = run.display().to_string();
    args.push(&run_dir);
    args.extend(scenarios);
    bftsim(&root, &args);
    let records = lines(&run.join("runs.jsonl"));
    assert_eq!(records.len(), 9);
    let runs = validator("runs.schema.json");
    for (i, record) in records.iter().enumerate() {
        check(&runs, record, &format!("runs.jsonl line {}", i + 1));
    }
    let mut unknown = records[0].clone();
    unknown["not_in_the_schema"] = Value::Bool(true);
    assert!(!runs.is_valid(&unknown), "the check sees a field its schema does not describe");
    let summary = read_json(&run.join("summary.json"));
    assert!(summary["scenarios"][1]["failures"].as_array().is_some_and(|f| !f.is_empty()), "the mutation fails");
    check(&validator("summary.schema.json"), &summary, "summary.json");

    let explore = out.join("explore");
    let envelope = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/small-envelope.toml");
    let (envelope, explore_dir) = (envelope.display().to_string(), explore.display().to_string());
    let explore_args = ["explore", "--seed", "5", "--runs", "12", "--jobs", "2", "--quiet", "--shrink-runs", "40"];
    let mut args: Vec<&str> = explore_args.to_vec();
    args.extend(["--max-findings", "1", "--mutation", "skip-signature-check", "--envelope", &envelope]);
    args.extend(["--out", &explore_dir]);
    bftsim(&root, &args);
    let summary = read_json(&explore.join("explore.json"));
    assert!(summary["findings"].as_array().is_some_and(|f| !f.is_empty()), "the planted mutation is found");
    check(&validator("explore.schema.json"), &summary, "explore.json");
    for (i, record) in lines(&explore.join("runs.jsonl")).iter().enumerate() {
        check(&runs, record, &format!("explore runs.jsonl line {}", i + 1));
    }

    // A twins run that breaks agreement (seed 5 of the bundled mutation): both copies' events,
    // decisions and the violation.
    let trace = out.join("trace.jsonl");
    let trace_path = trace.display().to_string();
    bftsim(&root, &["reproduce", "scenarios/mut-no-locking.toml", "--seed", "5", "--trace", &trace_path]);
    let events = lines(&trace);
    let has = |kind: &str| events.iter().any(|e| e["kind"] == kind);
    assert!(has("decide") && has("violation") && events.iter().any(|e| e["copy"] == 1), "a twins run that fails");
    let event = validator("trace-event.schema.json");
    for (i, e) in events.iter().enumerate() {
        check(&event, e, &format!("trace line {}", i + 1));
    }
}

#[test]
fn debug_text_is_told_from_sentences() {
    assert!(debug_text("Decided { chosen: CandidateId(2), method: Threshold }"));
    assert!(debug_text("decide: Escalate { reason: Tie }"));
    assert!(!debug_text("agent 2 decided candidate 1 by threshold"));
    assert!(!debug_text("groups { 0, 1 }"));
}
