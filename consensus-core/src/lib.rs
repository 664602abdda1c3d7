//! # consensus-core
//!
//! A Byzantine-fault-tolerant voting engine for teams of specialised agents (retriever,
//! analyzer, validator, reranker, monitor) that score candidate answers to a query and must
//! agree on one. It implements the design document ("the design") section by section:
//!
//! | design | module |
//! |---|---|
//! | 2.1–2.2 fault-tolerance math | [`quorum`] |
//! | 3.2 agents, votes, results | [`types`], [`registry`] |
//! | 3.2 Byzantine detection | [`detection`] |
//! | 3.2 / 4.2 weighting, threshold, conflict resolution | [`aggregate`], [`conflict`] |
//! | 5.2 early decision, vote cache, timeout fallback | [`policies`] |
//! | 6.1 metrics and alerts | [`metrics`] |
//!
//! Everything here is pure and deterministic: no I/O, no clock (time is an argument), no
//! ambient randomness, no hash-map iteration. Quantities are fixed-point integers
//! ([`fixed`]), so results do not depend on vote order or platform.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

pub mod adversary;
pub mod aggregate;
pub mod canonical;
pub mod config;
pub mod conflict;
pub mod detection;
pub mod evaluator;
pub mod fixed;
pub mod metrics;
pub mod policies;
pub mod protocol;
pub mod quorum;
pub mod registry;
pub mod runner;
pub mod sign;
pub mod types;
pub mod wire;

pub use config::EngineConfig;
pub use fixed::{Ppm, Ratio};
pub use types::*;
