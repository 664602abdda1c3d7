//! The "split locks" shape (`[faults] split_locks`): two polkas for different values in two
//! rounds of session 0, each seen by only a few agents, and then a re-proposal of the older one
//! that reaches the agents locked on the newer one: the one situation in which L28's
//! `lockedRound ≤ vr` decides what an honest agent prevotes (docs/protocol.md L22–L28, L36–L43).
//! Without it, generated runs see two polkas for different values in one session rarely (see
//! docs/exploration.md, "Split locks"), and an agent locked on the newer never receives the
//! older.
//!
//! Every cut is a `[[round_partitions]]` rule of session 0 that cuts two agents (or one agent from
//! the rest) for the messages of one round until GST, so that who sees which prevotes is set per
//! round, whatever the timing; q is the session's quorum, H the honest agents, k = |H| − q ≥ 1:
//!
//! - round 0: its proposer (agent 0) is cut from everyone: no proposal, a nil round;
//! - round 1 (proposer 1 proposes v): the prevoters V₁ are q honest agents (agent 0 never: it
//!   joins round 1 late), the others are cut from the proposer and prevote nil. The lockers
//!   L₁ ⊆ V₁ (the proposer and up to k − 1 more) see every prevote of V₁ and lock v; the rest of V₁
//!   is cut in pairs (one path of three when odd), so each sees q − 1 or q − 2 prevotes for v and
//!   the nil prevotes: q prevotes in all, not q for v. No one decides, every agent times out;
//! - round 2 (proposer 2, not a locker, proposes a fresh w): the same with V₂ = q honest agents
//!   outside L₁ (L₁, locked on v, is cut from the proposer: it must not see w's polka, or L43
//!   would make w its valid value) and lockers L₂ ⊆ V₂ (the proposer and up to k − 1 more);
//! - rounds 3 to R − 1: each proposer is cut from everyone (nil rounds), R the first round whose
//!   proposer is in L₁;
//! - round R: no cut. Its proposer holds v valid in round 1 and not w's polka, so it re-proposes
//!   (v, 1) with the certificate (L15): the agents of L₂, locked on (2, w), must prevote nil (L28:
//!   1 < 2), everyone else prevotes v, and v is decided.
//!
//! `lock-respected` judges the L₂ agents' prevote of round R, and `valid-value` the
//! re-proposal. GST moves past the time round R takes at the slowest (every timeout of rounds 0
//! to R, twice, and four worst-case latencies per round), so the cuts hold while the rounds
//! run. Swarm runs only, without a round lag or a far-behind agent (they cut or crash agents of
//! session 0 of their own) or a quiet restart (which must stay the run's last fault, after GST), agents 1 and 2 honest and k ≥ 1; drawn from the run's own
//! `explore-split-locks` stream, so every other draw of the run is what it was without it.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::{int, Draft, Generator, Mode};
use crate::seeds::{derive, Stream};

/// One cut of the shape: `groups` in `round` of session 0.
struct Cut {
    round: u64,
    groups: Vec<Vec<u32>>,
}

fn pair(round: u64, a: u32, b: u32) -> Cut {
    Cut { round, groups: vec![vec![a], vec![b]] }
}

/// A split round proposed by `proposer`: every agent not in V = `voters` is cut from the
/// proposer, `unaware` from every locker, and the non-lockers of V in pairs (a path of three
/// when odd), so that each misses one or two prevotes for the value.
fn split_cuts(round: u64, n: u32, proposer: u32, voters: &[u32], lockers: &[u32], unaware: u32) -> Vec<Cut> {
    let others: Vec<u32> = voters.iter().copied().filter(|a| !lockers.contains(a)).collect();
    let mut cuts: Vec<Cut> = (0..n).filter(|a| !voters.contains(a)).map(|a| pair(round, proposer, a)).collect();
    cuts.extend(lockers.iter().filter(|l| **l != proposer).map(|l| pair(round, unaware, *l)));
    for two in others.chunks(2) {
        if let [a, b] = two {
            cuts.push(pair(round, *a, *b));
        }
    }
    if others.len() % 2 == 1 && others.len() >= 3 {
        let last = others.len() - 1;
        cuts.push(pair(round, others[last - 1], others[last]));
    }
    cuts
}

impl Generator {
    /// With probability `faults.split_locks`, in swarm runs that allow it, the split-locks shape
    /// of session 0 (module doc).
    pub(super) fn split_locks(&self, index: u64, mode: Mode, d: &mut Draft) {
        if mode != Mode::Swarm
            || d.table.contains_key("round_partitions")
            || d.features.contains("faults:far-behind")
            || d.features.contains("faults:round-lag")
            || d.features.contains("faults:quiet-restart")
        {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreSplitLocks, index));
        if !rng.gen_bool(self.envelope.faults.split_locks) {
            return;
        }
        let n = d.agents;
        let f = u64::from(n.saturating_sub(1) / 3);
        let q = usize::try_from(consensus_core::quorum::quorum(u64::from(n), f).unwrap_or(u64::from(n))).unwrap_or(0);
        let byzantine = super::lag::byzantine_agents(&d.table);
        let honest: Vec<u32> = (0..n).filter(|a| !byzantine.contains(a)).collect();
        let k = honest.len().saturating_sub(q);
        if k < 2 || n < 6 || (0..4).any(|a| byzantine.contains(&a)) {
            return;
        }
        // Lockers: the proposer (and agent 3 in round 1) and extras, at most k in all, leaving at
        // least two non-lockers in V.
        let extras = |rng: &mut ChaCha8Rng, fixed: usize| {
            let most = k.saturating_sub(fixed).min(q.saturating_sub(fixed + 2));
            rng.gen_range(0..=most)
        };
        // Round 1: V₁ = {1, 3} and q − 2 honest agents other than 0 and 2; L₁ ∋ 1, 3.
        let mut pool: Vec<u32> = honest.iter().copied().filter(|a| *a > 3).collect();
        pool.shuffle(&mut rng);
        let v1: Vec<u32> = [1, 3].into_iter().chain(pool.iter().copied().take(q - 2)).collect();
        let mut l1 = vec![1, 3];
        let more = extras(&mut rng, 2);
        l1.extend(v1.iter().copied().filter(|a| *a > 3).take(more));
        // Round 2: V₂ = 2 and q − 1 honest agents outside L₁; L₂ ∋ 2.
        let mut pool2: Vec<u32> = honest.iter().copied().filter(|a| *a != 2 && !l1.contains(a)).collect();
        pool2.shuffle(&mut rng);
        let v2: Vec<u32> = [2].into_iter().chain(pool2.iter().copied().take(q - 1)).collect();
        let mut l2 = vec![2];
        let more = extras(&mut rng, 1);
        l2.extend(v2.iter().copied().filter(|a| *a != 2).take(more));
        if v1.len() < q || v2.len() < q {
            return;
        }
        // Round 0: agent 0, its proposer, hears and is heard by agent 2 alone (the proposers of
        // rounds 1 and 2 then hold different vote sets, so different values).
        let mut cuts = vec![Cut { round: 0, groups: vec![vec![0], (1..n).filter(|a| *a != 2).collect()] }];
        cuts.extend(split_cuts(1, n, 1, &v1, &l1, 2));
        cuts.extend(split_cuts(2, n, 2, &v2, &l2, 3));
        // The cuts hold until the slowest agent is past round 3.
        let t = d.timeouts.unwrap_or_default();
        let latency = d.latency_max_ms.max(d.tail_max_ms).max(1);
        let rounds: u64 = (0..=3u64)
            .map(|r| {
                let grown = t.delta.saturating_mul(r);
                2 * (t.propose + 2 * t.vote + 3 * grown) + 4 * latency
            })
            .sum();
        let gst = d.gst_ms.max(rounds.saturating_add(1_000));
        d.gst_ms = gst;
        let group = |g: &[u32]| Value::Array(g.iter().map(|a| int(u64::from(*a))).collect());
        let rules: Vec<Value> = cuts
            .iter()
            .map(|c| {
                let mut t = Table::new();
                t.insert("session".into(), int(0));
                t.insert("round".into(), int(c.round));
                t.insert("groups".into(), Value::Array(c.groups.iter().map(|g| group(g)).collect()));
                t.insert("until_ms".into(), int(gst));
                Value::Table(t)
            })
            .collect();
        d.table.insert("round_partitions".into(), Value::Array(rules));
        d.features.insert("faults:split-locks".into());
    }
}
