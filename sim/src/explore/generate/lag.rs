//! The "round lag" shape (`[faults] round_lag`): one agent, the laggard, is left rounds behind
//! the others in session 0 at GST, and f others go silent at GST, so that the session needs the
//! laggard to join the others' round. Until GST every round the timeouts can reach by then is
//! cut (`[[round_partitions]]`, until GST) between the laggard with that round's proposer and
//! everyone else: the others, still a quorum, see no proposal, prevote and precommit nil and
//! climb round after round, while the laggard never holds a quorum of any round and stays in
//! round 0. At GST up to f of the others (never agent 0, which hosts the session opener, nor an
//! agent with a fault of its own or a Byzantine one) crash for good, as many as the fault
//! budget left by the Byzantine agents allows. What the protocol promises then: the laggard
//! holds round votes of the others' round from f + 1 of them and starts it at once (L54–L55),
//! which `round-skip` judges at its next vote; without it the laggard climbs through its own
//! timeouts and the L68–L69 answers, which the liveness bounds allow. Swarm runs only (Twins
//! and ByzzFuzz place round partitions of their own); drawn from the run's own `explore-lag`
//! stream, so every other draw of the run is what it was without it.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::{int, reached_by, Draft, Generator, Mode};
use crate::seeds::{derive, Stream};

impl Generator {
    /// With probability `faults.round_lag`, in swarm runs whose committee stays a quorum
    /// without two agents (n − 2 ≥ q), the round lag of session 0 (module doc).
    pub(super) fn round_lag(&self, index: u64, mode: Mode, d: &mut Draft) {
        if mode != Mode::Swarm {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreLag, index));
        if !rng.gen_bool(self.envelope.faults.round_lag) {
            return;
        }
        let n = d.agents;
        let f = u64::from(n.saturating_sub(1) / 3);
        let q = consensus_core::quorum::quorum(u64::from(n), f).unwrap_or(u64::from(n));
        if u64::from(n) < q + 2 {
            return;
        }
        let byzantine = byzantine_agents(&d.table);
        let honest: Vec<u32> = (0..n).filter(|a| !byzantine.contains(a)).collect();
        let Some(&laggard) = honest.choose(&mut rng) else { return };
        let gst = d.gst_ms;
        let rounds = reached_by(d.timeouts.unwrap_or_default(), gst);
        let mut rules = Vec::new();
        for round in 0..rounds {
            // proposer(0, r) = the (0 + r) mod n-th member: session 0's committee is 0..n.
            let proposer = u32::try_from(round % u64::from(n)).unwrap_or(0);
            let cut: BTreeSet<u32> = [laggard, proposer].into();
            let rest: Vec<u32> = (0..n).filter(|a| !cut.contains(a)).collect();
            let group = |g: Vec<u32>| Value::Array(g.into_iter().map(|a| int(u64::from(a))).collect());
            let mut t = Table::new();
            t.insert("session".into(), int(0));
            t.insert("round".into(), int(round));
            t.insert("groups".into(), Value::Array(vec![group(cut.into_iter().collect()), group(rest)]));
            t.insert("until_ms".into(), int(gst));
            rules.push(Value::Table(t));
        }
        d.table.insert("round_partitions".into(), Value::Array(rules));
        let faulted: BTreeSet<u32> = d.faults.iter().filter_map(|(_, t)| super::quiet::agent_of(t)).collect();
        let mut silent: Vec<u32> =
            (1..n).filter(|a| *a != laggard && !faulted.contains(a) && !byzantine.contains(a)).collect();
        silent.shuffle(&mut rng);
        let budget = f.saturating_sub(byzantine.len() as u64).saturating_sub(down_for_good(&d.faults).len() as u64);
        for agent in silent.into_iter().take(usize::try_from(budget).unwrap_or(0)) {
            let mut t = Table::new();
            t.insert("kind".into(), Value::String("crash".into()));
            t.insert("agent".into(), int(u64::from(agent)));
            d.faults.push((gst, t));
        }
        d.features.insert("faults:round-lag".into());
    }
}

/// The agents the draft's faults leave down at the end: stopped by a disk fault (`flip-bit`:
/// its restart refuses the damaged log; `fail-sync`, `disk-full`) or crashed last.
fn down_for_good(faults: &[(u64, Table)]) -> BTreeSet<u32> {
    let mut sorted: Vec<&(u64, Table)> = faults.iter().collect();
    sorted.sort_by_key(|(at, _)| *at);
    let mut down = BTreeSet::new();
    let mut stopped = BTreeSet::new();
    for (_, t) in sorted {
        let Some(agent) = super::quiet::agent_of(t) else { continue };
        match t.get("kind").and_then(Value::as_str) {
            Some("crash") => {
                down.insert(agent);
            }
            Some("restart") => {
                down.remove(&agent);
            }
            Some("flip-bit" | "fail-sync" | "disk-full") => {
                stopped.insert(agent);
            }
            _ => {}
        }
    }
    down.union(&stopped).copied().collect()
}

/// The Byzantine agents a draft names (`byzantine.agents`).
pub(super) fn byzantine_agents(table: &Table) -> BTreeSet<u32> {
    let agents = table.get("byzantine").and_then(|b| b.get("agents")).and_then(Value::as_array);
    agents.into_iter().flatten().filter_map(Value::as_integer).filter_map(|a| u32::try_from(a).ok()).collect()
}

#[cfg(test)]
mod tests {
    use crate::explore::envelope::Envelope;
    use crate::explore::generate::{Generator, Mode};
    use crate::scenario::FaultAction;

    /// With the shape on, a swarm run of a large enough committee cuts the laggard and each
    /// round's proposer from the others in session 0 until GST and crashes at most f minus the
    /// Byzantine agents at GST (never agent 0, the laggard or an agent with other faults); with
    /// the probability at 0 nothing changes, and the shape changes nothing but those keys.
    #[test]
    fn a_round_lag_cuts_every_round_until_gst_and_silences_the_budget_left() {
        let mut e = Envelope::default();
        // The far-behind family is drawn after the round lag and never beside it: off here, so
        // that the runs the lag leaves alone are the same with it off.
        e.far_behind.share = 0.0;
        // So is the split-locks shape (it takes runs the lag leaves alone).
        e.faults.split_locks = 0.0;
        e.faults.round_lag = 1.0;
        let on = Generator::new(e.clone(), 5, None, "none");
        e.faults.round_lag = 0.0;
        let off = Generator::new(e, 5, None, "none");
        let mut lagged = 0;
        for i in 0..300 {
            let run = on.generate(i).unwrap_or_else(|err| panic!("run {i}: {err}"));
            let plain = off.generate(i).unwrap_or_else(|err| panic!("run {i}: {err}"));
            let shaped = run.features.iter().any(|f| f == "faults:round-lag");
            if !shaped {
                assert_eq!(run.text, plain.text, "run {i}");
                continue;
            }
            lagged += 1;
            assert_eq!(run.mode, Mode::Swarm, "run {i}");
            let s = &run.scenario;
            assert_eq!(s.agents, plain.scenario.agents, "run {i}");
            assert_eq!(s.workload, plain.scenario.workload, "run {i}");
            let gst = s.last_fault_ms().max(plain.scenario.last_fault_ms());
            assert!(!s.round_partitions.is_empty(), "run {i}");
            let n = s.agents.count;
            for (r, rule) in s.round_partitions.iter().enumerate() {
                assert_eq!((rule.session, rule.round, rule.until_ms), (0, r as u32, Some(gst)), "run {i}");
                let proposer = r as u32 % n;
                assert!(rule.groups[0].len() <= 2 && rule.groups[0].iter().any(|m| m.agent == proposer), "run {i}");
                assert_eq!(rule.groups[0].len() + rule.groups[1].len(), n as usize, "run {i}");
            }
            let crashes: Vec<u32> = s.faults[plain.scenario.faults.len()..]
                .iter()
                .map(|f| match f.action {
                    FaultAction::Crash { agent } => agent,
                    ref other => panic!("run {i}: {other:?}"),
                })
                .collect();
            let f = (n - 1) / 3;
            let down = plain.scenario.faults.iter().filter(|f| {
                matches!(
                    f.action,
                    FaultAction::FlipBit { .. } | FaultAction::FailSync { .. } | FaultAction::DiskFull { .. }
                )
            });
            let budget = f.saturating_sub(s.byzantine.count).saturating_sub(down.count() as u32);
            assert!(crashes.len() as u32 <= budget, "run {i}: {crashes:?}");
            if !crashes.is_empty() {
                assert!(s.promises_liveness(), "run {i}: the crashes stay within the budget");
            }
            assert!(!crashes.contains(&0), "run {i}");
        }
        assert!(lagged > 20, "{lagged}");
    }
}
