//! The partitions of Twins and ByzzFuzz runs: every placement of a twin's two copies apart, one
//! round's partition rule, random groups.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::int;

/// Every way to split `n` agents plus twin 0's second copy (element `n`) into 2 to `groups`
/// non-empty groups with the twin's copies apart; the twin is element 0 before relabelling.
pub(super) fn twin_partitions(n: u32, groups: u32) -> Vec<Vec<Vec<u32>>> {
    let elements = n as usize + 1;
    let mut out = Vec::new();
    let mut assignment = vec![0usize; elements];
    // Restricted growth strings enumerate set partitions without repeats.
    fn walk(i: usize, max: usize, limit: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<Vec<u32>>>) {
        if i == a.len() {
            let k = max + 1;
            if k >= 2 && a[0] != a[a.len() - 1] {
                let mut groups = vec![Vec::new(); k];
                for (element, g) in a.iter().enumerate() {
                    groups[*g].push(element as u32);
                }
                out.push(groups);
            }
            return;
        }
        for g in 0..=(max + 1).min(limit - 1) {
            a[i] = g;
            walk(i + 1, max.max(g), limit, a, out);
        }
    }
    if elements >= 2 {
        walk(1, 0, groups as usize, &mut assignment, &mut out);
    }
    out
}

/// A round partition of session `session`, round `round`, from a twin partition whose element
/// 0 is the twin, elements 1..n the other agents in order, and element n the twin's copy.
pub(super) fn round_partition(session: u64, round: u32, groups: &[Vec<u32>], twin: u32, until_ms: u64) -> Value {
    let n = groups.iter().map(|g| g.len()).sum::<usize>() as u32 - 1;
    // Relabel: element 0 → the twin; element e in 1..n → the e-th other agent; n → "twin'".
    let others: Vec<u32> = (0..n).filter(|a| *a != twin).collect();
    let node = |e: u32| -> Value {
        if e == 0 {
            int(u64::from(twin))
        } else if e == n {
            Value::String(format!("{twin}'"))
        } else {
            int(u64::from(others[(e - 1) as usize]))
        }
    };
    let mut t = Table::new();
    t.insert("session".into(), int(session));
    t.insert("round".into(), int(u64::from(round)));
    t.insert(
        "groups".into(),
        Value::Array(groups.iter().map(|g| Value::Array(g.iter().map(|e| node(*e)).collect())).collect()),
    );
    t.insert("until_ms".into(), int(until_ms));
    Value::Table(t)
}

/// A random split of agents `0..n` into `k` non-empty groups (fewer when `n < k`).
pub(super) fn random_groups(rng: &mut ChaCha8Rng, n: u32, k: u32) -> Vec<Vec<u32>> {
    let mut agents: Vec<u32> = (0..n).collect();
    agents.shuffle(rng);
    let k = k.min(n).max(1) as usize;
    let mut cuts: Vec<usize> = (1..n as usize).collect();
    cuts.shuffle(rng);
    let mut cuts: Vec<usize> = cuts.into_iter().take(k - 1).collect();
    cuts.sort_unstable();
    let mut groups = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([n as usize]) {
        let mut g = agents[start..cut].to_vec();
        g.sort_unstable();
        groups.push(g);
        start = cut;
    }
    groups
}

pub(super) fn groups_value(groups: &[Vec<u32>]) -> Value {
    Value::Array(groups.iter().map(|g| Value::Array(g.iter().map(|a| int(u64::from(*a))).collect())).collect())
}
