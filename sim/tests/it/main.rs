//! sim integration tests: the simulator finds every deliberately broken protocol variant and
//! nothing without it, replays are deterministic whatever the thread count, regressions stay
//! fixed, runs record their protocol coverage, and the `bftsim` command line behaves as
//! documented.
#![cfg(madsim)]

mod cli;
mod coverage;
mod determinism;
mod explore;
mod interrupt;
mod model;
mod model_replay;
mod mutations;
mod regressions;
mod replay;
mod schemas;
mod shard;
mod shrink;

use std::path::PathBuf;

/// The workspace's `scenarios/` directory.
pub fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}
