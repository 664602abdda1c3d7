//! consensus-core integration tests: the design's own tests (section 7.1) against this engine,
//! and property tests of aggregation and quorum math.

mod design;
mod guards;
mod harness;
mod properties;
mod runner;
mod support;
