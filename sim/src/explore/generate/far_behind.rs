//! The "far behind" shape (`[far_behind]`): in a small swarm committee that stays live without
//! one more agent, an honest agent (never agent 0, the opener's host) crashes early and stays
//! down while many sessions (`[far_behind] sessions`, 50 to 300) are decided, then restarts
//! when the workload is most likely over. It comes back hundreds of sessions behind every peer
//! (often beyond their `keep_decided`, so the archive serves, L78), with nothing new coming:
//! only the catch-up lines bring it what it missed (L74–L75 at restart, L76 status ticks, L79
//! and the L80 chase, L72–L73 and L78 answers). `catch-up` judges it against a bound derived
//! from the rate the protocol promises for that backlog ([`catch_up_bound`]) instead of the
//! flat 10 s, so that a catch-up running at a fraction of that rate, or stalling on one peer,
//! is a finding. Drawn from the run's own `explore-far-behind` stream, after every other
//! family, so every other draw of the run is what it was without it. With probability
//! `[far_behind] unreachable_peer` one honest peer (never agent 0) and the agent cannot reach each
//! other from just before the restart on (a clogged link): the restart's request, a status tick
//! or a chase's rotation may pick it, and only the turn (L76) and the chase's give-up (L80)
//! take the agent past it; it counts as one more faulty peer in the bound.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::{draw, draw_f, int, round2, set, Draft, Generator, Mode};
use crate::seeds::{derive, Stream};
use consensus_core::protocol::{ProtocolConfig, STATUS_EVERY_RETRANSMITS};

/// Disk faults that stop an agent for good (it then answers nobody).
const STOPPING: [&str; 3] = ["fail-sync", "disk-full", "flip-bit"];

/// The slack on the batch term of [`catch_up_bound`], as a fraction (3/2): the loss
/// allowance is an expectation, not a maximum.
const SLACK: [u64; 2] = [3, 2];

/// What the catch-up bound of a far-behind run is computed from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Backlog {
    /// Sessions the agent may have missed (the run's sessions).
    pub sessions: u64,
    /// Peers that answer nothing (Byzantine or stopped by a disk fault).
    pub faulty_peers: u64,
    /// One hop at most (the latency's maximum; the family draws no tail).
    pub hop_ms: u64,
    /// Loss probability.
    pub drop: f64,
}

/// The catch-up bound `T` of a far-behind run: the time within which a restarted honest
/// agent decides every session an honest agent decided, counted from the latest of its restart
/// (the run's last fault) and the session's first decision. With Δ the retransmit interval,
/// b = `sync_batch`, h one hop, d = 2h a round trip, k the faulty peers, p the loss:
///
/// - **start** `S = (k + 1) · 5Δ + d` (+ `2 · 5Δ` with loss): at restart it asks the next
///   member in turn at once (L75), and each status tick (every 5Δ, L76) the next; within k + 1
///   of them an honest peer has answered with a batch and how far it is (L72–L73, L79), and
///   the chase begins (L80); with loss, a lost request or answer costs the next tick;
/// - **per batch** `c = d + Δ/8` (+ `Δ · min(1, 2(b + 2)p)` with loss): the chase asks the next
///   batch as soon as the last one is applied (L80), one round trip; a peer serves one asker
///   at most 8 batches per Δ (L78), and the chase asks again one Δ after a refused request,
///   so 8 batches take at most 8d + Δ; with loss, a batch (its request, its b certificates and
///   the L79 reply) is incomplete with probability at most (b + 2)p, and the chase re-asks one
///   Δ later (twice the expectation, capped at one Δ per batch);
/// - `T = S + ⌈M / b⌉ · c · 3/2` for a backlog of M sessions.
///
/// Why it is safe for the correct protocol: nothing in the catch-up path waits for a round
/// timeout or a vote (certificates prove themselves, L52–L53), so with no peer lying about how
/// far it is (the family draws no `full-power` agent, the only one that sends made-up `Sync`s)
/// every term is a protocol rule's own wait; the 3/2 on the batch term covers loss bursts
/// beyond twice the expected per-batch loss. The L76 status tick alone (one batch per 5Δ) or one
/// batch per Δ per peer (the serving window misapplied) is several times slower than `c` when
/// d is small, so such a catch-up overruns `T` once the backlog is a few hundred sessions.
pub(crate) fn catch_up_bound(b: Backlog) -> u64 {
    let p = ProtocolConfig::default();
    let (delta, batch) = (p.retransmit_ms, p.sync_batch.max(1));
    let tick = delta * STATUS_EVERY_RETRANSMITS;
    let round_trip = 2 * b.hop_ms;
    let lossy = b.drop > 0.0;
    let start = (b.faulty_peers + 1) * tick + round_trip + if lossy { 2 * tick } else { 0 };
    let loss_ms = if lossy { (delta as f64 * (2.0 * (batch + 2) as f64 * b.drop).min(1.0)).ceil() as u64 } else { 0 };
    let per_batch = round_trip + delta.div_ceil(8) + loss_ms;
    let batches = b.sessions.div_ceil(batch);
    start + (batches * per_batch * SLACK[0]).div_ceil(SLACK[1])
}

impl Generator {
    /// With probability `far_behind.share`, in swarm runs of at most `far_behind.max_agents`
    /// agents without a `full-power` agent, a quiet restart or a round lag (which spends the
    /// fault budget on crashes for good), where the committee stays live
    /// with one more agent down (Byzantine and stopped agents + 1 ≤ f_max): the far-behind
    /// shape (module doc). GST moves to the restart, the run's last fault.
    pub(super) fn far_behind(&self, index: u64, mode: Mode, d: &mut Draft) {
        let e = &self.envelope.far_behind;
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreFarBehind, index));
        if mode != Mode::Swarm || !rng.gen_bool(e.share) {
            return;
        }
        let n = d.agents;
        if n > e.max_agents
            || d.features.contains("faults:quiet-restart")
            || d.features.contains("behaviour:full-power")
            || d.features.contains("faults:round-lag")
        {
            return;
        }
        let byzantine = listed(&d.table, "byzantine", "agents");
        let mut stopped: Vec<u32> = d
            .faults
            .iter()
            .filter(|(_, t)| t.get("kind").and_then(Value::as_str).is_some_and(|k| STOPPING.contains(&k)))
            .filter_map(|(_, t)| agent_of(t))
            .collect();
        stopped.sort_unstable();
        stopped.dedup();
        let faulty = (byzantine.len() + stopped.len()) as u32;
        let f_max = n.saturating_sub(1) / 3;
        if faulty + 1 > f_max {
            return;
        }
        let candidates: Vec<u32> = (1..n).filter(|a| !byzantine.contains(a) && !stopped.contains(a)).collect();
        if candidates.is_empty() {
            return;
        }
        let agent = candidates[rng.gen_range(0..candidates.len())];
        let sessions = draw(&mut rng, e.sessions).max(1);
        set(&mut d.table, "workload.sessions", int(sessions));
        d.sessions = sessions;
        // A fast, tail-free network, lossy or not: the bound is about the protocol's pace.
        let max = draw(&mut rng, e.latency_max_ms).max(1);
        let min = rng.gen_range(0..max);
        set(&mut d.table, "network.latency_ms", Value::Array(vec![int(min), int(max)]));
        d.latency_max_ms = max;
        d.tail_max_ms = 0;
        let drop = if rng.gen_bool(e.lossy) { round2(draw_f(&mut rng, e.drop)) } else { 0.0 };
        if let Some(network) = d.table.get_mut("network").and_then(Value::as_table_mut) {
            network.remove("tail");
            network.remove("drop");
        }
        if drop > 0.0 {
            set(&mut d.table, "network.drop", Value::Float(drop));
        }
        if rng.gen_bool(e.small_keep_decided) {
            let keep = draw(&mut rng, self.envelope.storage.keep_decided).max(1);
            set(&mut d.table, "protocol.keep_decided", int(keep));
        }
        // Down from early on, after the agent's other faults, until the workload is over.
        let after = d.faults.iter().filter(|(_, t)| agent_of(t) == Some(agent)).map(|(at, _)| at + 1).max();
        let crash = after.unwrap_or(0) + rng.gen_range(0..=200);
        let restart = d.gst_ms.max(crash + 1) + sessions * draw(&mut rng, e.per_session_ms);
        super::quiet::crash_and_restart(d, agent, crash, restart);
        // One honest peer out of the agent's reach for its whole catch-up (drawn after the rest,
        // so a run without it draws what it drew before): one more peer that answers nothing.
        let mut faulty_peers = u64::from(faulty);
        if rng.gen_bool(e.unreachable_peer) {
            let peers: Vec<u32> = candidates.iter().copied().filter(|a| *a != agent).collect();
            if !peers.is_empty() {
                let peer = peers[rng.gen_range(0..peers.len())];
                let mut t = Table::new();
                t.insert("kind".into(), Value::String("clog".into()));
                t.insert("link".into(), Value::Array(vec![int(u64::from(agent)), int(u64::from(peer))]));
                d.faults.push((restart - 1, t));
                faulty_peers += 1;
                d.features.insert("far-behind:unreachable-peer".into());
            }
        }
        let backlog = Backlog { sessions, faulty_peers, hop_ms: max, drop };
        set(&mut d.table, "expect.catch_up_ms", int(catch_up_bound(backlog)));
        d.features.insert("faults:far-behind".into());
        if drop > 0.0 {
            d.features.insert("far-behind:lossy".into());
        }
    }
}

/// The agent a fault table is about, if any.
fn agent_of(t: &Table) -> Option<u32> {
    t.get("agent").and_then(Value::as_integer).and_then(|a| u32::try_from(a).ok())
}

/// The agents listed at `section.key` of the draft's table.
fn listed(table: &Table, section: &str, key: &str) -> Vec<u32> {
    let list = table.get(section).and_then(|s| s.get(key)).and_then(Value::as_array);
    list.into_iter().flatten().filter_map(Value::as_integer).filter_map(|a| u32::try_from(a).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::{catch_up_bound, Backlog};
    use crate::explore::envelope::Envelope;
    use crate::explore::generate::{Generator, Mode};
    use crate::scenario::{ClogTarget, FaultAction};

    /// The bound's terms: with no loss and no faulty peer, 300 sessions at 10 ms a hop are one
    /// status tick, a round trip and 19 batches of 33 ms with the slack; each faulty peer costs a tick.
    #[test]
    fn the_bound_follows_its_formula() {
        let clean = Backlog { sessions: 300, faulty_peers: 0, hop_ms: 10, drop: 0.0 };
        assert_eq!(catch_up_bound(clean), 500 + 20 + (19 * 33 * 3_u64).div_ceil(2));
        assert_eq!(catch_up_bound(Backlog { faulty_peers: 1, ..clean }), catch_up_bound(clean) + 500);
        let lossy = Backlog { drop: 0.05, ..clean };
        assert_eq!(catch_up_bound(lossy), 1_500 + 20 + (19 * 133 * 3_u64).div_ceil(2));
        // One batch per retransmit interval (100 ms) takes longer than the bound.
        assert!(catch_up_bound(clean) < 19 * 100);
    }

    /// Far-behind runs: swarm only, small committees that stay live without the agent, an
    /// honest agent other than 0 down for the whole workload, the restart the last fault, the
    /// bound in the scenario; every other run is the run without the family.
    #[test]
    fn far_behind_runs_restart_last_with_their_own_bound() {
        let mut e = Envelope::default();
        e.far_behind.share = 1.0;
        let on = Generator::new(e.clone(), 7, None, "none");
        e.far_behind.share = 0.0;
        let off = Generator::new(e.clone(), 7, None, "none");
        let (mut far, mut unreachable) = (0, 0);
        for i in 0..200 {
            let run = on.generate(i).unwrap_or_else(|err| panic!("run {i}: {err}"));
            let plain = off.generate(i).unwrap_or_else(|err| panic!("run {i}: {err}"));
            if !run.features.iter().any(|f| f == "faults:far-behind") {
                assert_eq!(run.text, plain.text, "run {i}: only far-behind runs change");
                continue;
            }
            far += 1;
            let s = &run.scenario;
            assert_eq!(run.mode, Mode::Swarm, "run {i}");
            assert!(s.agents.count <= e.far_behind.max_agents, "run {i}");
            let sessions = s.workload.sessions;
            assert!((e.far_behind.sessions[0]..=e.far_behind.sessions[1]).contains(&sessions), "run {i}");
            let last = s.faults.last().unwrap_or_else(|| panic!("run {i}: no fault"));
            let FaultAction::Restart { agent } = last.action else { panic!("run {i}: last is {:?}", last.action) };
            assert_ne!(agent, 0, "run {i}: agent 0 hosts the opener");
            assert!(!s.byzantine.agents.iter().flatten().any(|b| *b == agent), "run {i}: the agent is honest");
            assert!(s.promises_liveness(), "run {i}");
            assert!(s.expect.catch_up_ms < 10_000, "run {i}: {}", s.expect.catch_up_ms);
            assert!(s.network.tail.is_none(), "run {i}");
            if run.features.iter().any(|f| f == "far-behind:unreachable-peer") {
                unreachable += 1;
                let clogs: Vec<_> = s
                    .faults
                    .iter()
                    .filter_map(|f| match f.action {
                        FaultAction::Clog { target: ClogTarget::Link([a, b]) } => Some((f.at_ms, a, b)),
                        _ => None,
                    })
                    .collect();
                let (at, a, peer) = *clogs.last().unwrap_or_else(|| panic!("run {i}: no clogged link"));
                assert_eq!((a, at), (agent, last.at_ms - 1), "run {i}: the agent's link, just before its restart");
                assert!(peer != 0 && peer != agent, "run {i}: {peer}");
                assert!(!s.byzantine.agents.iter().flatten().any(|b| *b == peer), "run {i}: the peer is honest");
                assert!(!s.faults.iter().any(|f| f.at_ms > at && matches!(f.action, FaultAction::Unclog { .. })));
            }
        }
        assert!(far > 10, "{far}");
        assert!(unreachable > 3 && unreachable < far, "{unreachable} of {far}");
    }
}
