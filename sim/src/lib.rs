//! bftsim: the deterministic fault-injection simulator for consensus-core.

pub mod coverage;
pub mod influence;
pub mod merge;
pub mod model;
pub mod oracle;
pub mod results;
pub mod scenario;
pub mod schemas;
pub mod seeds;
pub mod shrink;
pub mod summary;
pub mod trace;
pub mod words;

/// The same scenario with its protocol mutation removed (the control of a mutation test).
pub fn protocol_mutation_off(scenario: &scenario::Scenario) -> scenario::Scenario {
    let mut s = scenario.clone();
    s.protocol.mutation = consensus_core::protocol::Mutation::None;
    s.expect.safety = true;
    s.expect.invariant = None;
    s
}

#[cfg(madsim)]
pub mod exec;
#[cfg(madsim)]
pub mod explore;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod world;
