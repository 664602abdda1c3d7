//! The shrinker's changes, one function per axis of a scenario (faults, Byzantine agents,
//! latency, round rules, the mix, bounds, storage, full power), and the helpers that keep a
//! changed scenario consistent (faults within the committee, restarts after crashes,
//! behaviours that an agent still has).

use super::*;

/// Every fault removed: all of them, then halves, quarters, … down to one at a time (restarts and
/// crashes kept consistent with what is left).
pub(super) fn fault_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    let n = s.faults.len();
    let mut chunk = n;
    while chunk >= 1 {
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let mut c = s.clone();
            c.faults = s.faults[..start].iter().chain(&s.faults[end..]).cloned().collect();
            c.faults = consistent(c.faults);
            let what = if end - start == 1 {
                format!("removed faults[{start}] ({})", describe(&s.faults[start]))
            } else {
                format!("removed faults[{start}..{end}]")
            };
            out.push((what, c));
            start = end;
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2).min(chunk - 1);
    }
}

/// `byzantine.count` lowered (0, half, one less); an explicit agent list is cut to match, and
/// with one fewer listed agent each of them is tried as the honest one.
pub(super) fn byzantine_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    for v in lower(u64::from(s.byzantine.count), 0) {
        let Ok(v) = u32::try_from(v) else { continue };
        let mut c = s.clone();
        c.byzantine.count = v;
        match &s.byzantine.agents {
            // One fewer listed agent: try leaving out each of them.
            Some(list) if v > 0 && v + 1 == s.byzantine.count => {
                for (i, gone) in list.iter().enumerate() {
                    let mut c = c.clone();
                    let mut kept = list.clone();
                    kept.remove(i);
                    c.byzantine.agents = Some(kept);
                    out.push((format!("byzantine.count {} → {v} (agent {gone} honest)", s.byzantine.count), c));
                }
                continue;
            }
            Some(list) if v > 0 => c.byzantine.agents = Some(list[..v as usize].to_vec()),
            _ => c.byzantine.agents = None,
        }
        out.push((format!("byzantine.count {} → {v}", s.byzantine.count), c));
    }
}

/// The latency's upper bound halved, then 10 ms less (one unit of the size).
pub(super) fn latency_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    // Half the upper bound, then 10 ms less (one unit of the size).
    let [min, max] = s.network.latency_ms;
    let half = (max / 2).max(1);
    let mut bounds = vec![half];
    if max > 10 && max - 10 > half {
        bounds.push(max - 10);
    }
    for bound in bounds.into_iter().filter(|&b| b < max) {
        let mut c = s.clone();
        c.network.latency_ms = [min.min(bound), bound];
        out.push((format!("network.latency_ms [{min}, {max}] → {:?}", c.network.latency_ms), c));
    }
}

/// Every round rule removed at once, then each one alone.
pub(super) fn rule_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    let total = s.round_partitions.len() + s.tamper.len();
    if total > 1 {
        let mut c = s.clone();
        c.round_partitions.clear();
        c.tamper.clear();
        out.push(("removed every round rule".to_owned(), c));
    }
    for i in 0..s.round_partitions.len() {
        let mut c = s.clone();
        c.round_partitions.remove(i);
        out.push((format!("removed round_partitions[{i}]"), c));
    }
    for i in 0..s.tamper.len() {
        let mut c = s.clone();
        c.tamper.remove(i);
        out.push((format!("removed tamper[{i}] ({})", s.tamper[i].action.name()), c));
    }
}

/// Each behaviour of a mix alone, as the only strategy.
pub(super) fn mix_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    let mut seen = Vec::new();
    for b in s.byzantine.strategies.iter().flatten() {
        if seen.contains(b) {
            continue;
        }
        seen.push(*b);
        let mut c = s.clone();
        c.byzantine.strategies = None;
        c.byzantine.strategy = *b;
        out.push((format!("byzantine.strategies → strategy = {b}"), c));
    }
}

/// The liveness bound back to its default and the round bound removed (for a safety
/// violation only: it does not depend on when the run would have ended).
pub(super) fn bound_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    let default = crate::scenario::Expect::default().liveness_bound_ms;
    if s.expect.liveness_bound_ms > default {
        let mut c = s.clone();
        c.expect.liveness_bound_ms = default;
        out.push((format!("expect.liveness_bound_ms {} → {default}", s.expect.liveness_bound_ms), c));
    }
    if let Some(rounds) = s.expect.liveness_rounds {
        let mut c = s.clone();
        c.expect.liveness_rounds = None;
        out.push((format!("expect.liveness_rounds {rounds} removed"), c));
    }
}

/// `[storage]` back to its defaults, whole and field by field: a finding whose crash mode, fsync
/// time or compaction size does not matter (no crash left, say) does not keep them.
pub(super) fn storage_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    let default = Storage::default();
    if s.storage == default {
        return;
    }
    let mut c = s.clone();
    c.storage = default;
    out.push(("removed [storage]".to_owned(), c));
    if s.storage.crash != default.crash {
        let mut c = s.clone();
        c.storage.crash = default.crash;
        out.push((format!("storage.crash {} → {}", s.storage.crash.name(), default.crash.name()), c));
    }
    if s.storage.sync_ms != default.sync_ms {
        let mut c = s.clone();
        c.storage.sync_ms = default.sync_ms;
        out.push((format!("storage.sync_ms {} → {}", s.storage.sync_ms, default.sync_ms), c));
    }
    if s.storage.compact_log_bytes.is_some() {
        let mut c = s.clone();
        c.storage.compact_log_bytes = None;
        out.push(("removed storage.compact_log_bytes".to_owned(), c));
    }
}

/// How many `[storage]` settings differ from their defaults.
pub(super) fn storage_size(s: &Scenario) -> u64 {
    let d = Storage::default();
    u64::from(s.storage.crash != d.crash)
        + u64::from(s.storage.sync_ms != d.sync_ms)
        + u64::from(s.storage.compact_log_bytes.is_some())
}

/// The `full-power` knobs lowered: each family switched off, then the rate (0, half, one
/// hundredth less), then the actions per input (1, half, one less). A finding shrinks to the
/// families and the rate it needs.
pub(super) fn full_power_candidates(s: &Scenario, out: &mut Vec<(String, Scenario)>) {
    let k = &s.byzantine.full_power;
    for (i, family) in k.families.iter().enumerate() {
        let mut c = s.clone();
        c.byzantine.full_power.families.remove(i);
        out.push((format!("byzantine.full_power: family {} off", family.name()), c));
    }
    for rate in lower_probability(k.rate) {
        let mut c = s.clone();
        c.byzantine.full_power.rate = rate;
        out.push((format!("byzantine.full_power.rate {} → {rate}", k.rate), c));
    }
    for v in lower(u64::from(k.actions_per_input), 1) {
        let Ok(v) = u32::try_from(v) else { continue };
        let mut c = s.clone();
        c.byzantine.full_power.actions_per_input = v;
        out.push((format!("byzantine.full_power.actions_per_input {} → {v}", k.actions_per_input), c));
    }
}

/// Forgets the behaviours no agent has: with `byzantine.count = 0` the whole `[byzantine]`
/// table goes back to its default (no strategy, mix or agent list left to name a behaviour
/// nobody runs), a mix longer than the count is cut to it, and the `full-power` knobs go back
/// to their defaults when no agent runs it. None of this changes a run: the Byzantine agent of
/// rank `r < count` has the mix's behaviour `r` either way.
pub(super) fn forget_unused_behaviours(s: &mut Scenario) {
    if s.byzantine.count == 0 {
        s.byzantine = Byzantine::default();
        return;
    }
    if let Some(mix) = &mut s.byzantine.strategies {
        mix.truncate(s.byzantine.count as usize);
    }
    if !uses_full_power(s) {
        s.byzantine.full_power = FullPowerKnobs::default();
    }
}

/// The value candidates for an integer field: `min`, half, one less (each below `current`).
pub(super) fn lower(current: u64, min: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for v in [min, current / 2, current.saturating_sub(1)] {
        if v >= min && v < current && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The value candidates for a probability: 0, half, and one hundredth less, each rounded down
/// to a hundredth.
pub(super) fn lower_probability(p: f64) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    if p > 0.0 {
        let hundredths = (p * 100.0).round();
        for v in [0.0, (p * 50.0).floor() / 100.0, (hundredths - 1.0).max(0.0) / 100.0] {
            if v < p && !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// The fault with agents `≥ count` removed from it, or `None` when nothing of it is left.
pub(super) fn within_committee(fault: Fault, count: u32) -> Option<Fault> {
    let exists = |a: &u32| *a < count;
    let action = match fault.action {
        FaultAction::Partition { groups, one_way } => {
            let groups: Vec<Vec<u32>> = groups
                .into_iter()
                .map(|g| g.into_iter().filter(exists).collect::<Vec<u32>>())
                .filter(|g| !g.is_empty())
                .collect();
            if groups.len() < 2 {
                return None;
            }
            FaultAction::Partition { groups, one_way }
        }
        FaultAction::Crash { agent } if !exists(&agent) => return None,
        FaultAction::Restart { agent } if !exists(&agent) => return None,
        FaultAction::Pause { agent } | FaultAction::Resume { agent } if !exists(&agent) => return None,
        ref disk if disk.disk_agent().is_some_and(|a| !exists(&a)) => return None,
        FaultAction::Clog { target } | FaultAction::Unclog { target } if !target_exists(target, count) => {
            return None;
        }
        action => action,
    };
    Some(Fault { at_ms: fault.at_ms, action })
}

pub(super) fn target_exists(target: ClogTarget, count: u32) -> bool {
    match target {
        ClogTarget::Agent(a) => a < count,
        ClogTarget::Link([a, b]) => a < count && b < count,
    }
}

/// Drops restarts of agents that are not crashed at that time and crashes of agents that
/// already are (left behind when the matching fault went), keeping the time order.
pub(super) fn consistent(faults: Vec<Fault>) -> Vec<Fault> {
    let mut crashed = BTreeSet::new();
    faults
        .into_iter()
        .filter(|f| match f.action {
            FaultAction::Crash { agent } => crashed.insert(agent),
            FaultAction::Restart { agent } => crashed.remove(&agent),
            _ => true,
        })
        .collect()
}

pub(super) fn describe(fault: &Fault) -> String {
    let what = match &fault.action {
        FaultAction::Partition { groups, one_way: false } => format!("partition {groups:?}"),
        FaultAction::Partition { groups, one_way: true } => format!("one-way partition {groups:?}"),
        FaultAction::Heal => "heal".to_owned(),
        FaultAction::Crash { agent } => format!("crash agent {agent}"),
        FaultAction::Restart { agent } => format!("restart agent {agent}"),
        FaultAction::Clog { target } => format!("clog {target}"),
        FaultAction::Unclog { target } => format!("unclog {target}"),
        FaultAction::Pause { agent } => format!("pause agent {agent}"),
        FaultAction::Resume { agent } => format!("resume agent {agent}"),
        FaultAction::FlipBit { agent } => format!("flip a bit in agent {agent}'s log"),
        FaultAction::FailSync { agent } => format!("fail agent {agent}'s next fsync"),
        FaultAction::DiskFull { agent } => format!("fill agent {agent}'s disk"),
        FaultAction::SlowDisk { agent, sync_ms } => format!("agent {agent}'s fsyncs take {sync_ms} ms"),
    };
    format!("{what} at {} ms", fault.at_ms)
}
