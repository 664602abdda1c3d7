//! The JSON Schemas of bftsim's output files (`docs/schemas/`), derived from the Rust types
//! that write them: `runs.jsonl` lines ([`crate::results::RunRecord`]), `summary.json`
//! ([`crate::merge::SummaryFile`]), `explore.json` (`reports::explore::ExploreSummary`) and
//! trace lines ([`crate::trace::TraceEvent`]).
//!
//! Derived rather than written by hand, so that a field added to a type is in its schema the
//! same day; the contract is the writer's (`for_serialize`): a field is `required` when it is
//! always written, and a field's description is its doc comment. The readers are more lenient
//! than the schemas (every field has a default there, for files written by older versions).
//! The sim integration test `schemas` checks that `docs/schemas/` holds exactly these and that
//! real output of `bftsim run`, `explore` and `reproduce --trace` validates against them.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

/// One schema file of `docs/schemas/`.
pub struct SchemaFile {
    /// The file name, e.g. `runs.schema.json`.
    pub name: &'static str,
    /// The schema.
    pub schema: Value,
}

/// Every schema, in the order docs/cli.md lists them.
pub fn schemas() -> Vec<SchemaFile> {
    vec![
        file::<crate::results::RunRecord>(
            "runs.schema.json",
            "bftsim runs.jsonl line",
            "One run of `bftsim run` (one JSON object per line of runs.jsonl).",
        ),
        file::<crate::merge::SummaryFile>(
            "summary.schema.json",
            "bftsim summary.json",
            "What `bftsim run` (or `bftsim merge`) did per scenario, with the shard or the merged directories.",
        ),
        file::<reports::explore::ExploreSummary>(
            "explore.schema.json",
            "bftsim explore.json",
            "What `bftsim explore` found: runs per mode, coverage, the shrunk findings.",
        ),
        file::<crate::trace::TraceEvent>(
            "trace-event.schema.json",
            "bftsim trace event",
            "One event of a run (one JSON object per line of `bftsim reproduce --trace FILE`).",
        ),
    ]
}

fn file<T: JsonSchema>(name: &'static str, title: &str, description: &str) -> SchemaFile {
    let mut schema = SchemaSettings::draft2020_12().for_serialize().into_generator().into_root_schema_for::<T>();
    schema.insert("title".into(), Value::from(title));
    schema.insert("description".into(), Value::from(description));
    SchemaFile { name, schema: schema.to_value() }
}
