//! `summary.json`: the type is `reports::summary` (the report reads what `bftsim run` writes
//! with the same code); here what the simulator adds from a scenario: its settings, its
//! network condition and fault families.

pub use reports::summary::{Failure, FaultSetting, ScenarioSettings, ScenarioSummary, Summary};
use serde::Serialize;

use crate::scenario::{ClogTarget, FaultAction, Scenario};

/// What `scenario` sets, as the report shows it next to the scenario.
pub fn settings(scenario: &Scenario) -> ScenarioSettings {
    let network = &scenario.network;
    let tail = network.tail.map_or_else(String::new, |t| {
        format!("{} scale {} ms, shape {}, max {} ms", name(&t.kind), t.scale_ms, t.shape, t.max_ms)
    });
    let mut faults: Vec<FaultSetting> = scenario.faults.iter().map(|f| fault_setting(f.at_ms, &f.action)).collect();
    faults.sort_by_key(|f| f.at_ms);
    ScenarioSettings {
        description: scenario.description.lines().next().unwrap_or_default().trim().to_owned(),
        agents: scenario.agents.count,
        byzantine: scenario.byzantine.count,
        strategy: name(&scenario.byzantine.strategy),
        threshold: scenario.protocol.threshold,
        deadline_ms: scenario.protocol.deadline_ms,
        fallback: name(&scenario.protocol.fallback),
        detector: name(&scenario.protocol.detector),
        mutation: name(&scenario.protocol.mutation),
        sessions: scenario.workload.sessions,
        candidates: scenario.workload.candidates,
        concurrency: scenario.workload.concurrency,
        drop: network.drop,
        duplicate: network.duplicate,
        latency_ms: network.latency_ms,
        tail,
        faults,
    }
}

/// The harshest network condition of `scenario`, by the report's names
/// (`reports::aggregate::NETWORK_CONDITIONS`): partition (timed or by round), crash and
/// restart, clogs, latency tail, message loss, duplicates, else none. Recorded in every run
/// record, so that generated runs (each with its own faults) are placed by their own.
pub fn network_condition(scenario: &Scenario) -> &'static str {
    let has = |kind: fn(&FaultAction) -> bool| scenario.faults.iter().any(|f| kind(&f.action));
    let conditions = reports::aggregate::NETWORK_CONDITIONS;
    if has(|a| matches!(a, FaultAction::Partition { .. })) || !scenario.round_partitions.is_empty() {
        conditions[6]
    } else if has(|a| matches!(a, FaultAction::Crash { .. })) {
        conditions[5]
    } else if has(|a| matches!(a, FaultAction::Clog { .. } | FaultAction::Pause { .. })) {
        conditions[4]
    } else if scenario.network.tail.is_some() {
        conditions[3]
    } else if scenario.network.drop > 0.0 {
        conditions[2]
    } else if scenario.network.duplicate > 0.0 {
        conditions[1]
    } else {
        conditions[0]
    }
}

/// The fault families `scenario` has, in the order of `reports::aggregate::FAMILIES`, then one
/// `byzantine: NAME` per Byzantine behaviour: what the report's per-family table groups runs by.
pub fn families(scenario: &Scenario) -> Vec<String> {
    let has = |kind: fn(&FaultAction) -> bool| scenario.faults.iter().any(|f| kind(&f.action));
    let defaults = crate::scenario::Protocol::default();
    let p = &scenario.protocol;
    let present = [
        scenario.network.drop > 0.0,
        scenario.network.duplicate > 0.0,
        scenario.network.tail.is_some(),
        // Above the default prevote timeout: rounds time out before their messages arrive.
        scenario.network.latency_ms[1] > defaults.timeout_prevote_ms,
        has(|a| matches!(a, FaultAction::Partition { .. })),
        has(|a| matches!(a, FaultAction::Crash { .. })),
        has(|a| matches!(a, FaultAction::Clog { .. } | FaultAction::Pause { .. })),
        !scenario.round_partitions.is_empty(),
        !scenario.tamper.is_empty(),
        p.timeout_propose_ms < defaults.timeout_propose_ms || p.timeout_delta_ms < defaults.timeout_delta_ms,
    ];
    let mut out: Vec<String> = reports::aggregate::FAMILIES
        .iter()
        .zip(present)
        .filter(|(_, on)| *on)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    if scenario.byzantine.count > 0 {
        out.extend(scenario.byzantine.behaviours().into_iter().map(|b| format!("byzantine: {}", b.name())));
    }
    out
}

fn fault_setting(at_ms: u64, action: &FaultAction) -> FaultSetting {
    let clog = |target: &ClogTarget| target.to_string();
    let (kind, target) = match action {
        FaultAction::Partition { groups, one_way } => {
            let groups: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
            let direction = if *one_way { " (one way: only from the first group)" } else { "" };
            ("partition", format!("groups {}{direction}", groups.join(" | ")))
        }
        FaultAction::Heal => ("heal", String::new()),
        FaultAction::Crash { agent } => ("crash", format!("agent {agent}")),
        FaultAction::Restart { agent } => ("restart", format!("agent {agent}")),
        FaultAction::Clog { target } => ("clog", clog(target)),
        FaultAction::Unclog { target } => ("unclog", clog(target)),
        FaultAction::Pause { agent } => ("pause", format!("agent {agent}")),
        FaultAction::Resume { agent } => ("resume", format!("agent {agent}")),
        FaultAction::FlipBit { agent } => ("flip-bit", format!("agent {agent}")),
        FaultAction::FailSync { agent } => ("fail-sync", format!("agent {agent}")),
        FaultAction::DiskFull { agent } => ("disk-full", format!("agent {agent}")),
        FaultAction::SlowDisk { agent, sync_ms } => ("slow-disk", format!("agent {agent}, {sync_ms} ms per fsync")),
    };
    FaultSetting { at_ms, kind: kind.to_owned(), target }
}

/// The name a value serialises to: the kebab-case name the scenario file uses.
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        crate::scenario::parse(text, std::path::Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A run is placed by its harshest network condition and counted under every fault family
    /// it has, its Byzantine behaviours last.
    #[test]
    fn network_condition_and_families_name_what_the_scenario_has() {
        let quiet = scenario("[network]\nlatency_ms = [1, 20]\n");
        assert_eq!((network_condition(&quiet), families(&quiet)), ("no network faults", Vec::new()));
        let text = "[network]\ndrop = 0.1\nduplicate = 0.2\n[byzantine]\ncount = 1\nstrategy = \"equivocate\"\n\
                    [[faults]]\nat_ms = 100\nkind = \"clog\"\nagent = 1\n[[faults]]\nat_ms = 200\nkind = \"crash\"\nagent = 2\n";
        let harsh = scenario(text);
        assert_eq!(network_condition(&harsh), "crash and restart", "a crash is harsher than clogs and loss");
        assert_eq!(
            families(&harsh),
            ["message loss", "duplicates", "crash and restart", "clogs", "byzantine: equivocate"].map(String::from)
        );
        for condition in [network_condition(&quiet), network_condition(&harsh)] {
            assert!(reports::aggregate::NETWORK_CONDITIONS.contains(&condition));
        }
    }
}
