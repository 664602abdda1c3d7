//! What one run produces: the record written as one line of `runs.jsonl`.
//!
//! The types live in the `reports` crate (`reports::model`), which reads them back; they are
//! re-exported here so that the simulator and the report share one definition.

pub use reports::model::{
    LatencySummary, MarginCount, MessageCounts, RunOutcome, RunRecord, SessionCounts, Violation, WrongByCause,
    WrongCause, DEFAULT_DEADLINE_MS,
};
