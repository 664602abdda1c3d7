//! The semantic checks of a parsed scenario file: every value in range, every agent index
//! present, crash/restart in order; and the fault timeline replayed to the end of a run.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::{AgentSpecialization, Ratio};

use super::problem::*;
use super::raw::*;
use super::*;

pub(super) fn check_name(name: &str) -> Result<(), Problem> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        let message = format!(
            "name = {name:?} is not usable: expected a non-empty name on one line (or omit it to use the file name)"
        );
        return Err(Problem::at(vec![Seg::key("name")], message));
    }
    Ok(())
}

pub(super) fn check_agents(agents: &Agents) -> Result<(), Problem> {
    within(u64::from(agents.count), 1, u64::from(MAX_AGENTS), &["agents", "count"], "agents")?;
    if agents.count.saturating_add(agents.spares) > MAX_AGENTS {
        let message = format!(
            "agents.spares = {} with agents.count = {} makes {} agents: expected at most {MAX_AGENTS} in all",
            agents.spares,
            agents.count,
            u64::from(agents.count) + u64::from(agents.spares)
        );
        return Err(Problem::at(path(&["agents", "spares"]), message));
    }
    Ok(())
}

pub(super) fn check_protocol(p: &Protocol, agents: &Agents) -> Result<(), Problem> {
    if Ratio::from_f64(p.threshold).is_none() {
        let message = format!(
            "protocol.threshold = {} is not a threshold: expected a number above 0.0 and at most 1.0 (at least 0.000001), e.g. 0.66",
            p.threshold
        );
        return Err(Problem::at(path(&["protocol", "threshold"]), message));
    }
    probability(p.detector_threshold, &["protocol", "detector_threshold"])?;
    at_least(p.deadline_ms, 1, &["protocol", "deadline_ms"], "milliseconds")?;
    at_least(p.detector_window as u64, 1, &["protocol", "detector_window"], "votes")?;
    at_least(u64::from(p.exclude_after), 1, &["protocol", "exclude_after"], "offences")?;
    at_least(p.timeout_propose_ms, 1, &["protocol", "timeout_propose_ms"], "milliseconds")?;
    at_least(p.timeout_prevote_ms, 1, &["protocol", "timeout_prevote_ms"], "milliseconds")?;
    at_least(p.timeout_precommit_ms, 1, &["protocol", "timeout_precommit_ms"], "milliseconds")?;
    at_least(p.retransmit_ms, 1, &["protocol", "retransmit_ms"], "milliseconds")?;
    at_least(p.keep_decided, 1, &["protocol", "keep_decided"], "sessions")?;
    if p.replace && agents.spares == 0 {
        let message = "protocol.replace = true but agents.spares = 0: replacements activate spare agents, so set agents.spares ≥ 1 or replace = false".to_owned();
        return Err(Problem::at(path(&["protocol", "replace"]), message));
    }
    Ok(())
}

pub(super) fn check_workload(w: &Workload) -> Result<(), Problem> {
    within(w.sessions, 1, MAX_SESSIONS, &["workload", "sessions"], "sessions")?;
    within(u64::from(w.candidates), 1, u64::from(MAX_CANDIDATES), &["workload", "candidates"], "candidates")?;
    at_least(w.concurrency, 1, &["workload", "concurrency"], "sessions")?;
    if !(0.0..=1.0).contains(&w.quality_gap) {
        let message = format!(
            "workload.quality_gap = {} is not a quality difference: expected a number between 0.0 and 1.0",
            w.quality_gap
        );
        return Err(Problem::at(path(&["workload", "quality_gap"]), message));
    }
    Ok(())
}

pub(super) fn check_evaluators(e: &Evaluators) -> Result<(), Problem> {
    for spec in AgentSpecialization::CYCLE {
        let Some(profile) = e.spec(spec) else { continue };
        let name = spec.name();
        if let Some(noise) = profile.noise {
            probability(noise, &["evaluator", name, "noise"])?;
        }
        if let Some(latency) = profile.latency_ms {
            ascending(latency, &["evaluator", name, "latency_ms"])?;
        }
        if let Some([min, max]) = profile.confidence {
            for (i, value) in [min, max].into_iter().enumerate() {
                if !(0.0..=1.0).contains(&value) {
                    let message = format!(
                        "evaluator.{name}.confidence[{i}] = {value} is not a confidence: expected a number between 0.0 and 1.0"
                    );
                    return Err(Problem::at(
                        vec![Seg::key("evaluator"), Seg::key(name), Seg::key("confidence"), Seg::Index(i)],
                        message,
                    ));
                }
            }
            if min > max {
                let message = format!(
                    "evaluator.{name}.confidence = [{min}, {max}] is upside down: expected [min, max] with min ≤ max, e.g. [{max}, {min}]"
                );
                return Err(Problem::at(path(&["evaluator", name, "confidence"]), message));
            }
        }
    }
    Ok(())
}

pub(super) fn check_byzantine(b: &Byzantine, agents: &Agents) -> Result<(), Problem> {
    if b.count > agents.count {
        let message = format!(
            "byzantine.count = {} is more than agents.count = {}: expected at most {} Byzantine agents (lower byzantine.count or raise agents.count)",
            b.count, agents.count, agents.count
        );
        return Err(Problem::at(path(&["byzantine", "count"]), message));
    }
    check_full_power(&b.full_power)?;
    let Some(list) = &b.agents else { return Ok(()) };
    if list.len() != b.count as usize {
        let message = format!(
            "byzantine.agents lists {} agents but byzantine.count = {}: expected exactly byzantine.count indices",
            list.len(),
            b.count
        );
        return Err(Problem::at(path(&["byzantine", "agents"]), message));
    }
    let mut seen = BTreeSet::new();
    for (i, &agent) in list.iter().enumerate() {
        let at = vec![Seg::key("byzantine"), Seg::key("agents"), Seg::Index(i)];
        agent_index(agent, agents, at.clone(), &format!("byzantine.agents[{i}]"))?;
        if !seen.insert(agent) {
            return Err(Problem::at(
                at,
                format!("byzantine.agents lists agent {agent} twice: expected distinct indices"),
            ));
        }
    }
    Ok(())
}

fn check_full_power(k: &FullPowerKnobs) -> Result<(), Problem> {
    probability(k.rate, &["byzantine", "full_power", "rate"])?;
    if !(1..=16).contains(&k.actions_per_input) {
        let message = format!(
            "byzantine.full_power.actions_per_input = {} is out of range: expected 1 to 16 actions of one family per input",
            k.actions_per_input
        );
        return Err(Problem::at(path(&["byzantine", "full_power", "actions_per_input"]), message));
    }
    for (i, family) in k.families.iter().enumerate() {
        if k.families[..i].contains(family) {
            let at = vec![Seg::key("byzantine"), Seg::key("full_power"), Seg::key("families"), Seg::Index(i)];
            let message = format!(
                "byzantine.full_power.families lists `{}` twice: expected each family at most once",
                family.name()
            );
            return Err(Problem::at(at, message));
        }
    }
    Ok(())
}

pub(super) fn check_network(n: &Network) -> Result<(), Problem> {
    probability(n.drop, &["network", "drop"])?;
    probability(n.duplicate, &["network", "duplicate"])?;
    ascending(n.latency_ms, &["network", "latency_ms"])?;
    let Some(tail) = &n.tail else { return Ok(()) };
    if !(tail.shape.is_finite() && tail.shape > 0.0) {
        let message =
            format!("network.tail.shape = {} is not a Pareto shape: expected a number above 0, e.g. 1.5", tail.shape);
        return Err(Problem::at(path(&["network", "tail", "shape"]), message));
    }
    at_least(tail.scale_ms, 1, &["network", "tail", "scale_ms"], "milliseconds")?;
    if tail.max_ms < tail.scale_ms {
        let message = format!(
            "network.tail.max_ms = {} is below scale_ms = {}: expected a cap of at least the scale",
            tail.max_ms, tail.scale_ms
        );
        return Err(Problem::at(path(&["network", "tail", "max_ms"]), message));
    }
    Ok(())
}

/// The slowest fsync a scenario may ask for (`storage.sync_ms`, `slow-disk`), ms.
pub(super) const MAX_SYNC_MS: u64 = 10_000;

pub(super) fn check_storage(s: &Storage) -> Result<(), Problem> {
    if let Some(bytes) = s.compact_log_bytes {
        at_least(bytes, 1_024, &["storage", "compact_log_bytes"], "bytes")?;
    }
    within(s.sync_ms, 0, MAX_SYNC_MS, &["storage", "sync_ms"], "milliseconds per fsync")
}

pub(super) fn check_expect(e: &Expect) -> Result<(), Problem> {
    at_least(e.liveness_bound_ms, 1, &["expect", "liveness_bound_ms"], "milliseconds")?;
    at_least(e.catch_up_ms, 1, &["expect", "catch_up_ms"], "milliseconds")?;
    if let Some(rounds) = e.liveness_rounds {
        at_least(rounds, 1, &["expect", "liveness_rounds"], "rounds")?;
    }
    let Some(invariant) = &e.invariant else { return Ok(()) };
    if e.safety {
        let message =
            "expect.invariant names the invariant that must be violated, so it needs expect.safety = false".to_owned();
        return Err(Problem::at(path(&["expect", "invariant"]), message));
    }
    if !INVARIANTS.contains(&invariant.as_str()) {
        let message =
            format!("expect.invariant = {invariant:?} is not an invariant: expected one of {}", INVARIANTS.join(", "));
        return Err(Problem::at(path(&["expect", "invariant"]), message));
    }
    Ok(())
}

/// Converts every entry, then sorts by time (stable) and checks crash/restart order.
pub(super) fn check_faults(entries: Vec<FaultEntry>, agents: &Agents) -> Result<Vec<Fault>, Problem> {
    let mut faults = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        faults.push((index, fault(entry, index, agents)?));
    }
    faults.sort_by_key(|(_, fault)| fault.at_ms);
    let mut crashed = BTreeSet::new();
    for (index, fault) in &faults {
        let at = vec![Seg::key("faults"), Seg::Index(*index), Seg::key("agent")];
        match fault.action {
            FaultAction::Crash { agent } if !crashed.insert(agent) => {
                let message = format!(
                    "faults[{index}] crashes agent {agent} at {} ms, but it is already crashed then: restart it first",
                    fault.at_ms
                );
                return Err(Problem::at(at, message));
            }
            FaultAction::Restart { agent } if !crashed.remove(&agent) => {
                let message = format!("faults[{index}] restarts agent {agent} at {} ms, but it is not crashed then: expected a crash of agent {agent} earlier", fault.at_ms);
                return Err(Problem::at(at, message));
            }
            _ => {}
        }
    }
    Ok(faults.into_iter().map(|(_, fault)| fault).collect())
}

pub(super) fn fault(entry: FaultEntry, index: usize, agents: &Agents) -> Result<Fault, Problem> {
    let kind = entry.kind;
    let key = |field: &str| vec![Seg::key("faults"), Seg::Index(index), Seg::key(field)];
    let present = [
        ("groups", entry.groups.is_some()),
        ("one_way", entry.one_way.is_some()),
        ("agent", entry.agent.is_some()),
        ("link", entry.link.is_some()),
        ("sync_ms", entry.sync_ms.is_some()),
    ];
    for (field, is_present) in present {
        if is_present && !kind.fields().contains(&field) {
            let takes = match kind.fields() {
                [] => "no other keys".to_owned(),
                fields => fields.join(", "),
            };
            let message = format!(
                "faults[{index}].{field} is not a key of a {} fault: it takes at_ms, kind and {takes}",
                kind.name()
            );
            return Err(Problem::at(key(field), message));
        }
    }
    let missing =
        |what: &str| Problem::at(key("kind"), format!("faults[{index}] is a {} fault and needs {what}", kind.name()));
    let agent =
        |agent: u32| agent_index(agent, agents, key("agent"), &format!("faults[{index}].agent")).map(|()| agent);
    let action = match kind {
        FaultKind::Partition => {
            let groups =
                entry.groups.ok_or_else(|| missing("groups = [[...], [...]], at least two groups of agent indices"))?;
            check_groups(&groups, index, agents)?;
            FaultAction::Partition { groups, one_way: entry.one_way.unwrap_or(false) }
        }
        FaultKind::Heal => FaultAction::Heal,
        FaultKind::Crash => {
            FaultAction::Crash { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::Restart => {
            FaultAction::Restart { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::Clog | FaultKind::Unclog => {
            let target = match (entry.agent, entry.link) {
                (Some(a), None) => ClogTarget::Agent(agent(a)?),
                (None, Some(link)) => ClogTarget::Link(check_link(link, index, agents)?),
                (Some(_), Some(_)) => {
                    let message =
                        format!("faults[{index}] has both agent and link: a {} takes exactly one of them", kind.name());
                    return Err(Problem::at(key("link"), message));
                }
                (None, None) => return Err(missing("either agent = <index> or link = [a, b]")),
            };
            if kind == FaultKind::Clog {
                FaultAction::Clog { target }
            } else {
                FaultAction::Unclog { target }
            }
        }
        FaultKind::Pause => {
            FaultAction::Pause { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::Resume => {
            FaultAction::Resume { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::FlipBit => {
            FaultAction::FlipBit { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::FailSync => {
            FaultAction::FailSync { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::DiskFull => {
            FaultAction::DiskFull { agent: agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)? }
        }
        FaultKind::SlowDisk => {
            let agent = agent(entry.agent.ok_or_else(|| missing("agent = <index>"))?)?;
            let sync_ms = entry.sync_ms.ok_or_else(|| missing("sync_ms = <milliseconds per fsync> (0: at once)"))?;
            if sync_ms > MAX_SYNC_MS {
                let message = format!(
                    "faults[{index}].sync_ms = {sync_ms} is out of range: expected 0 to {MAX_SYNC_MS} milliseconds per fsync"
                );
                return Err(Problem::at(key("sync_ms"), message));
            }
            FaultAction::SlowDisk { agent, sync_ms }
        }
    };
    Ok(Fault { at_ms: entry.at_ms, action })
}

pub(super) fn check_groups(groups: &[Vec<u32>], index: usize, agents: &Agents) -> Result<(), Problem> {
    let at = |rest: &[Seg]| {
        let mut p = vec![Seg::key("faults"), Seg::Index(index), Seg::key("groups")];
        p.extend_from_slice(rest);
        p
    };
    if groups.len() < 2 {
        let message = format!(
            "faults[{index}].groups has {} group(s): a partition needs at least two groups, e.g. [[0, 1], [2, 3, 4]]",
            groups.len()
        );
        return Err(Problem::at(at(&[]), message));
    }
    let mut seen = BTreeSet::new();
    for (g, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(Problem::at(
                at(&[Seg::Index(g)]),
                format!("faults[{index}].groups[{g}] is empty: expected at least one agent index"),
            ));
        }
        for (j, &agent) in group.iter().enumerate() {
            let here = at(&[Seg::Index(g), Seg::Index(j)]);
            agent_index(agent, agents, here.clone(), &format!("faults[{index}].groups[{g}][{j}]"))?;
            if !seen.insert(agent) {
                let message = format!("agent {agent} is in two groups of faults[{index}]: expected disjoint groups");
                return Err(Problem::at(here, message));
            }
        }
    }
    Ok(())
}

pub(super) fn check_link(link: [u32; 2], index: usize, agents: &Agents) -> Result<[u32; 2], Problem> {
    for (i, agent) in link.into_iter().enumerate() {
        let at = vec![Seg::key("faults"), Seg::Index(index), Seg::key("link"), Seg::Index(i)];
        agent_index(agent, agents, at, &format!("faults[{index}].link[{i}]"))?;
    }
    if link[0] == link[1] {
        let at = vec![Seg::key("faults"), Seg::Index(index), Seg::key("link")];
        return Err(Problem::at(
            at,
            format!(
                "faults[{index}].link = [{0}, {0}] joins an agent to itself: expected two different agents",
                link[0]
            ),
        ));
    }
    Ok(link)
}

pub(super) fn agent_index(agent: u32, agents: &Agents, at: Vec<Seg>, key: &str) -> Result<(), Problem> {
    if agent >= agents.count {
        let message = format!(
            "{key} = {agent} is not an agent: expected an index from 0 to {} (agents.count = {})",
            agents.count.saturating_sub(1),
            agents.count
        );
        return Err(Problem::at(at, message));
    }
    Ok(())
}

pub(super) fn probability(value: f64, key: &[&str]) -> Result<(), Problem> {
    if (0.0..=1.0).contains(&value) {
        return Ok(());
    }
    let message = format!("{} = {value} is not a probability: expected a number between 0.0 and 1.0", key.join("."));
    Err(Problem::at(path(key), message))
}

pub(super) fn ascending([min, max]: [u64; 2], key: &[&str]) -> Result<(), Problem> {
    if min <= max {
        return Ok(());
    }
    let message = format!(
        "{} = [{min}, {max}] is upside down: expected [min, max] with min ≤ max, e.g. [{max}, {min}]",
        key.join(".")
    );
    Err(Problem::at(path(key), message))
}

pub(super) fn at_least(value: u64, min: u64, key: &[&str], unit: &str) -> Result<(), Problem> {
    if value >= min {
        return Ok(());
    }
    Err(Problem::at(path(key), format!("{} = {value} is too small: expected at least {min} {unit}", key.join("."))))
}

pub(super) fn within(value: u64, min: u64, max: u64, key: &[&str], unit: &str) -> Result<(), Problem> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(Problem::at(path(key), format!("{} = {value} is out of range: expected {min} to {max} {unit}", key.join("."))))
}

/// Replays the faults to the end of the run.
#[derive(Default)]
pub(super) struct Timeline {
    pub(super) crashed: BTreeSet<u32>,
    pub(super) clogged_agents: BTreeSet<u32>,
    pub(super) clogged_links: BTreeSet<[u32; 2]>,
    pub(super) partitioned: bool,
    /// Agents a disk fault leaves unable to continue (for the rest of the run, whatever
    /// restarts follow: counted as faulty).
    pub(super) disk_stopped: BTreeSet<u32>,
    /// Agents whose every fsync takes this long (a `slow-disk` left on, above 0).
    pub(super) slow_disks: BTreeMap<u32, u64>,
}

impl Timeline {
    pub(super) fn replay(faults: &[Fault]) -> Timeline {
        let mut t = Timeline::default();
        for fault in faults {
            match &fault.action {
                FaultAction::Partition { .. } => t.partitioned = true,
                FaultAction::Heal => t.partitioned = false,
                FaultAction::Crash { agent } => {
                    t.crashed.insert(*agent);
                }
                FaultAction::Restart { agent } => {
                    t.crashed.remove(agent);
                }
                FaultAction::Clog { target: ClogTarget::Agent(a) } => {
                    t.clogged_agents.insert(*a);
                }
                FaultAction::Unclog { target: ClogTarget::Agent(a) } => {
                    t.clogged_agents.remove(a);
                }
                FaultAction::Clog { target: ClogTarget::Link([a, b]) } => {
                    t.clogged_links.insert([*a.min(b), *a.max(b)]);
                }
                FaultAction::Unclog { target: ClogTarget::Link([a, b]) } => {
                    t.clogged_links.remove(&[*a.min(b), *a.max(b)]);
                }
                FaultAction::FlipBit { agent } | FaultAction::FailSync { agent } | FaultAction::DiskFull { agent } => {
                    t.disk_stopped.insert(*agent);
                }
                // A paused agent is as good as clogged for the faults at the end of the run.
                FaultAction::Pause { agent } => {
                    t.clogged_agents.insert(*agent);
                }
                FaultAction::Resume { agent } => {
                    t.clogged_agents.remove(agent);
                }
                FaultAction::SlowDisk { agent, sync_ms: 0 } => {
                    t.slow_disks.remove(agent);
                }
                FaultAction::SlowDisk { agent, sync_ms } => {
                    t.slow_disks.insert(*agent, *sync_ms);
                }
            }
        }
        t
    }

    /// Agents that end the run crashed, clogged or stopped by a disk fault.
    pub(super) fn down_agents(&self) -> u64 {
        let down: BTreeSet<&u32> = self.crashed.iter().chain(&self.clogged_agents).chain(&self.disk_stopped).collect();
        down.len() as u64
    }
}

/// The Byzantine agents a rule may name: the explicit `byzantine.agents` list, with the
/// behaviour of each.
fn named_byzantine(b: &Byzantine) -> Option<Vec<(u32, Behaviour)>> {
    let mut list = b.agents.clone()?;
    list.sort_unstable();
    Some(list.into_iter().enumerate().map(|(rank, a)| (a, b.behaviour(rank))).collect())
}

/// `session` (of the rule `what`, at `path`) is one of the run's `workload.sessions`.
fn session_of_run(session: u64, w: &Workload, what: &str, path: Vec<Seg>) -> Result<(), Problem> {
    if session < w.sessions {
        return Ok(());
    }
    let message = format!(
        "{what}.session = {session} is not a session of the run: expected 0 to {} (workload.sessions = {})",
        w.sessions.saturating_sub(1),
        w.sessions
    );
    Err(Problem::at(path, message))
}

pub(super) fn check_round_partitions(
    rules: &[RoundPartition],
    b: &Byzantine,
    agents: &Agents,
    w: &Workload,
) -> Result<(), Problem> {
    let twins: Vec<u32> = named_byzantine(b)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, x)| *x == Behaviour::Twin)
        .map(|(a, _)| a)
        .collect();
    for (index, rule) in rules.iter().enumerate() {
        let at = |rest: &[Seg]| {
            let mut p = vec![Seg::key("round_partitions"), Seg::Index(index)];
            p.extend_from_slice(rest);
            p
        };
        session_of_run(rule.session, w, &format!("round_partitions[{index}]"), at(&[Seg::key("session")]))?;
        if rule.groups.len() < 2 {
            let message = format!(
                "round_partitions[{index}].groups has {} group(s): a partition needs at least two groups, e.g. [[0, 1], [2, 3]]",
                rule.groups.len()
            );
            return Err(Problem::at(at(&[Seg::key("groups")]), message));
        }
        let mut seen = BTreeSet::new();
        for (g, group) in rule.groups.iter().enumerate() {
            if group.is_empty() {
                let message = format!("round_partitions[{index}].groups[{g}] is empty: expected at least one node");
                return Err(Problem::at(at(&[Seg::key("groups"), Seg::Index(g)]), message));
            }
            for (j, node) in group.iter().enumerate() {
                let here = at(&[Seg::key("groups"), Seg::Index(g), Seg::Index(j)]);
                agent_index(node.agent, agents, here.clone(), &format!("round_partitions[{index}].groups[{g}][{j}]"))?;
                if node.copy > 0 && !twins.contains(&node.agent) {
                    let message = format!(
                        "round_partitions[{index}].groups[{g}][{j}] = \"{node}\" names the second copy of agent {}, which is not a twin: list it in byzantine.agents with the behaviour \"twin\", or write {}",
                        node.agent, node.agent
                    );
                    return Err(Problem::at(here, message));
                }
                if !seen.insert(*node) {
                    let message =
                        format!("node {node} is in two groups of round_partitions[{index}]: expected disjoint groups");
                    return Err(Problem::at(here, message));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn check_tamper(rules: &[Tamper], b: &Byzantine, agents: &Agents, w: &Workload) -> Result<(), Problem> {
    let named = named_byzantine(b);
    for (index, rule) in rules.iter().enumerate() {
        let at = |key: &str| vec![Seg::key("tamper"), Seg::Index(index), Seg::key(key)];
        let Some(named) = &named else {
            let message = format!(
                "tamper[{index}] needs the Byzantine agents named: set byzantine.agents (agent {} among them)",
                rule.agent
            );
            return Err(Problem::at(at("agent"), message));
        };
        if !named.iter().any(|(a, _)| *a == rule.agent) {
            let list: Vec<String> = named.iter().map(|(a, _)| a.to_string()).collect();
            let message = format!(
                "tamper[{index}].agent = {} is not Byzantine: expected one of byzantine.agents = [{}]",
                rule.agent,
                list.join(", ")
            );
            return Err(Problem::at(at("agent"), message));
        }
        session_of_run(rule.session, w, &format!("tamper[{index}]"), at("session"))?;
        if rule.to.is_empty() {
            let message = format!("tamper[{index}].to is empty: expected the receivers, e.g. [0, 2]");
            return Err(Problem::at(at("to"), message));
        }
        for (j, &to) in rule.to.iter().enumerate() {
            let mut here = at("to");
            here.push(Seg::Index(j));
            agent_index(to, agents, here, &format!("tamper[{index}].to[{j}]"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;

    const BASE: &str = r#"
[agents]
count = 4
[workload]
sessions = 2
[byzantine]
count = 1
agents = [3]
strategy = "twin"
"#;

    fn error(extra: &str) -> String {
        match parse(&format!("{BASE}{extra}"), Path::new("x.toml")) {
            Ok(_) => panic!("expected an error for {extra}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn rules_must_name_a_session_of_the_run() {
        let partition = "[[round_partitions]]\nsession = 2\nround = 0\ngroups = [[0, 1], [2, 3]]\nuntil_ms = 100\n";
        let e = error(partition);
        assert!(
            e.contains(
                "round_partitions[0].session = 2 is not a session of the run: expected 0 to 1 (workload.sessions = 2)"
            ),
            "{e}"
        );
        let tamper = "[[tamper]]\nagent = 3\nsession = 5\nround = 0\nto = [0]\naction = \"omit\"\n";
        let e = error(tamper);
        assert!(e.contains("tamper[0].session = 5 is not a session of the run: expected 0 to 1"), "{e}");
        let fine = "[[tamper]]\nagent = 3\nsession = 1\nround = 0\nto = [0]\naction = \"omit\"\n";
        assert!(parse(&format!("{BASE}{fine}"), Path::new("x.toml")).is_ok());
    }
}
