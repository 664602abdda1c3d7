//! `bftsim explore`: search the fault space instead of the seeds of hand-written scenarios.

pub mod envelope;
pub mod generate;
