//! consensus-core integration tests: the seed's own tests (section 7.1) against this engine,
//! and property tests of aggregation and quorum math.

mod harness;
mod properties;
mod runner;
mod seed;
mod support;
