//! Each run records the protocol coverage of its honest agents (docs/coverage.md): the same
//! for the same seed, readable back as point names after a trip through `runs.jsonl`.

use consensus_core::adversary::{Byzantine, Strategy};
use consensus_core::protocol::coverage::Point;
use consensus_core::protocol::{Agent, Node, ProtocolConfig};
use consensus_core::registry::Registry;
use consensus_core::sign::sim_committee;
use consensus_core::{AgentId, EngineConfig};
use sim::results::RunRecord;
use sim::run::{run, RunOptions};
use sim::scenario;

use crate::scenarios;

fn record(file: &str, seed: u64) -> RunRecord {
    let s = scenario::load(&scenarios().join(file)).unwrap_or_else(|e| panic!("{e}"));
    run(&s, seed, Default::default(), RunOptions::default()).record
}

fn points(r: &RunRecord) -> Vec<Point> {
    let coverage = r.coverage.as_ref().unwrap_or_else(|| panic!("{} seed {}: no coverage", r.scenario, r.seed));
    coverage.points().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_run_records_its_coverage_the_same_for_the_same_seed() {
    let first = record("baseline.toml", 3);
    let again = record("baseline.toml", 3);
    assert_eq!(first.coverage, again.coverage);
    let reached = points(&first);
    for p in [Point::L1, Point::L5, Point::L8, Point::L23, Point::L39, Point::L50, Point::V3Pass, Point::Ahead0] {
        assert!(reached.contains(&p), "baseline seed 3 did not reach {}", p.name());
    }
    let line = serde_json::to_string(&first).unwrap_or_default();
    let back: RunRecord = serde_json::from_str(&line).unwrap_or_default();
    assert_eq!(back.coverage, first.coverage);
    let names = back.coverage.as_ref().map(|c| c.names()).unwrap_or_else(|| Ok(Vec::new()));
    assert_eq!(names, Ok(reached.iter().map(|p| p.name()).collect()));
}

/// An agent that waited in an old round (the regression's bug) voted behind the others, so its
/// peers' votes were rounds ahead of it.
#[test]
fn rounds_ahead_of_the_slowest_honest_agent_are_recorded() {
    let reached = points(&record("regressions/lagging-round.toml", 89));
    assert!(reached.contains(&Point::Ahead0));
    assert!(
        [Point::Ahead1, Point::Ahead2, Point::Ahead3Plus].iter().any(|p| reached.contains(p)),
        "{:?}",
        reached.iter().map(|p| p.name()).collect::<Vec<_>>()
    );
}

/// Coverage is about what honest agents did: a Byzantine wrapper reports none, the agent it
/// wraps does.
#[test]
fn a_byzantine_node_reports_no_coverage() {
    let keys = sim_committee(1, 4);
    let engine = EngineConfig::default();
    let agent = || {
        let registry = Registry::seed_committee(4, &engine);
        Agent::new(keys.agents[0].clone(), keys.keyring.clone(), registry, engine, ProtocolConfig::default())
    };
    assert!(Node::coverage(&agent()).is_some());
    let peers = (1..4).map(AgentId).collect();
    let byzantine = Byzantine::new(agent(), keys.agents[0].clone(), Strategy::Silent, peers, engine, 1, 2);
    assert!(byzantine.coverage().is_none());
}
