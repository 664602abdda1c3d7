//! bftsim-node integration tests: real processes on 127.0.0.1, one cluster at a time, every
//! test bounded by a timeout and every process killed when its test ends.

mod admission;
mod answers;
mod byzantine;
mod catchup;
mod checks;
mod crash;
mod decisions;
mod durability;
mod evaluators;
mod frames;
mod harness;
mod https;
mod hygiene;
mod metrics;
mod openapi;
