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

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `scenarios/` directory.
pub fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Runs the built `bftsim ARGS` in `dir`; it must succeed or find what it looks for (exit 0 or
/// 1). Returns its stdout followed by its stderr.
pub fn bftsim_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bftsim"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(matches!(output.status.code(), Some(0 | 1)), "bftsim {args:?}: {stderr}");
    format!("{}{stderr}", String::from_utf8_lossy(&output.stdout))
}
