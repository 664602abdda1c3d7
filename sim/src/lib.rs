//! bftsim: the deterministic fault-injection simulator for consensus-core.

pub mod oracle;
pub mod results;
pub mod scenario;
pub mod summary;
pub mod trace;

#[cfg(madsim)]
pub mod exec;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod world;
