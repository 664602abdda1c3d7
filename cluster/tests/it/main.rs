//! bftsim-cluster's integration tests: bundled scenarios against real `bftsim-node` processes.
//!
//! They need the `bftsim-node` binary of the same profile (`cargo test --workspace` builds it;
//! alone: `cargo build -p node && cargo test -p cluster`).

mod real;
