//! The network model: loss, latency, long tails, duplicates and partitions, and the random
//! streams every frame's fate is drawn from (a counter-based hash per link and session).

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::AgentId;

/// Long-tail latency: a Pareto draw added to the uniform base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tail {
    /// Pareto scale, ms.
    pub scale_ms: f64,
    /// Pareto shape (smaller is heavier).
    pub shape: f64,
    /// Cap, ms.
    pub max_ms: f64,
}

/// The network model.
#[derive(Clone, Debug, PartialEq)]
pub struct NetModel {
    /// Loss probability per frame.
    pub drop: f64,
    /// Uniform latency range, inclusive.
    pub latency_ms: (u64, u64),
    /// Optional long tail.
    pub tail: Option<Tail>,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
}

/// A partition: frames between different groups are lost (only from the first group to the
/// others when one-way). Agents in no group, and the client, are unaffected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The groups.
    pub groups: Vec<BTreeSet<AgentId>>,
    /// Only traffic leaving the first group is cut.
    pub one_way: bool,
}

impl Partition {
    fn group_of(&self, agent: AgentId) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&agent))
    }

    /// Whether a frame from → to is cut.
    pub fn cuts(&self, from: AgentId, to: AgentId) -> bool {
        match (self.group_of(from), self.group_of(to)) {
            (Some(a), Some(b)) if a != b => !self.one_way || a == 0,
            _ => false,
        }
    }
}

/// What happens to one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Lost, and why.
    Dropped(&'static str),
    /// Delivered after this latency, and once more after the second one if duplicated.
    Deliver(u64, Option<u64>),
    /// Held by a clog until it is lifted.
    Held,
}

/// Why a random number is drawn for a frame: each purpose has its own draw, so a draw that a
/// scenario does not need (no loss, no tail) does not shift the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(super) enum Purpose {
    Loss = 1,
    Duplicate,
    Latency,
    Tail,
    DuplicateLatency,
    DuplicateTail,
    Order,
    DuplicateOrder,
    ReleaseLatency,
    ReleaseTail,
    ReleaseOrder,
}

/// Where a frame sits in the network's random streams: the stream of its (sender, recipient,
/// session) and its position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameDraws {
    stream: u64,
    index: u64,
}

impl FrameDraws {
    /// A uniform 64-bit number for `purpose`.
    pub(super) fn u64(self, purpose: Purpose) -> u64 {
        mix(mix(self.stream ^ self.index) ^ (purpose as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// True with probability `p`.
    pub(super) fn chance(self, purpose: Purpose, p: f64) -> bool {
        p > 0.0 && unit(self.u64(purpose)) < p
    }
}

/// splitmix64's finaliser: a bijection of u64 that mixes every input bit into every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The top 53 bits as a number in [0, 1).
pub(super) fn unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A number in `lo..=hi` (Lemire's multiply-shift; the bias is below 2^-50 for our ranges).
pub(super) fn in_range(x: u64, lo: u64, hi: u64) -> u64 {
    let span = u128::from(hi - lo) + 1;
    lo + ((u128::from(x) * span) >> 64) as u64
}

/// The network's random streams: one per (sender, recipient, session), and one per link for
/// frames of no session (`Sync`). The n-th frame on a stream draws `mix(stream, n, purpose)`,
/// a counter-based hash rather than a sequential generator, so each draw depends on nothing but
/// its frame's place in its own stream.
#[derive(Debug)]
pub struct Streams {
    seed: u64,
    /// ((from, to) as one word, session) → (stream key, frames so far). Only looked up, never
    /// iterated.
    next: BTreeMap<(u64, Option<u64>), (u64, u64)>,
}

impl Streams {
    /// The streams of a run's network seed.
    pub fn new(seed: u64) -> Streams {
        Streams { seed, next: BTreeMap::new() }
    }

    /// The draws of the next frame from → to of `session`.
    pub fn next_frame(&mut self, from: AgentId, to: AgentId, session: Option<u64>) -> FrameDraws {
        let seed = self.seed;
        let link_key = (u64::from(from.0) << 32) | u64::from(to.0);
        let (stream, count) = self.next.entry((link_key, session)).or_insert_with(|| {
            let link = mix(mix(mix(seed) ^ u64::from(from.0)) ^ u64::from(to.0));
            let key = match session {
                Some(s) => mix(mix(link ^ 1) ^ s),
                None => mix(link ^ 2),
            };
            (key, 0)
        });
        let draws = FrameDraws { stream: *stream, index: *count };
        *count += 1;
        draws
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_draws_depend_only_on_its_link_session_and_position() {
        let (a, b, c) = (AgentId(0), AgentId(1), AgentId(2));
        let mut one = Streams::new(7);
        let mut other = Streams::new(7);
        // `other` also carries session 1 and another link's frames in between: session 2's
        // frames on a → b draw the same numbers as without them.
        let first: Vec<_> = (0..5).map(|_| one.next_frame(a, b, Some(2))).collect();
        let mut second = Vec::new();
        for _ in 0..5 {
            other.next_frame(a, b, Some(1));
            other.next_frame(c, b, Some(2));
            second.push(other.next_frame(a, b, Some(2)));
        }
        assert_eq!(first, second);
        assert_ne!(first[0], first[1], "consecutive frames draw differently");
        assert_ne!(one.next_frame(b, a, Some(2)), first[0], "each direction has its own stream");
        assert_ne!(one.next_frame(a, b, None), first[0], "frames of no session have their own stream");
        assert_ne!(Streams::new(8).next_frame(a, b, Some(2)), first[0], "another seed, other draws");
    }

    #[test]
    fn draws_follow_the_configured_rates_and_ranges() {
        let mut streams = Streams::new(1);
        let n = 20_000;
        let draws: Vec<_> =
            (0..n).map(|i| streams.next_frame(AgentId(i % 3), AgentId(3), Some(u64::from(i % 7)))).collect();
        let lost = draws.iter().filter(|d| d.chance(Purpose::Loss, 0.2)).count();
        assert!((3_600..4_400).contains(&lost), "20% loss: {lost} of {n}");
        assert_eq!(draws.iter().filter(|d| d.chance(Purpose::Loss, 0.0)).count(), 0);
        let latencies: Vec<u64> = draws.iter().map(|d| in_range(d.u64(Purpose::Latency), 1, 10)).collect();
        assert!(latencies.iter().all(|l| (1..=10).contains(l)));
        for l in 1..=10 {
            let k = latencies.iter().filter(|x| **x == l).count();
            assert!((1_700..2_300).contains(&k), "latency {l} ms drawn {k} times of {n}");
        }
        // Purposes are independent draws of one frame.
        let same = draws.iter().filter(|d| d.u64(Purpose::Latency) == d.u64(Purpose::Order)).count();
        assert_eq!(same, 0);
    }

    #[test]
    fn partitions_cut_between_groups_only() {
        let p = Partition {
            groups: vec![[AgentId(0), AgentId(1)].into(), [AgentId(2), AgentId(3)].into()],
            one_way: false,
        };
        assert!(p.cuts(AgentId(0), AgentId(2)));
        assert!(p.cuts(AgentId(3), AgentId(1)));
        assert!(!p.cuts(AgentId(0), AgentId(1)));
        assert!(!p.cuts(AgentId::CLIENT, AgentId(2)));
        assert!(!p.cuts(AgentId(4), AgentId(2)), "agents in no group are unaffected");
        let one_way = Partition { one_way: true, ..p };
        assert!(one_way.cuts(AgentId(0), AgentId(2)));
        assert!(!one_way.cuts(AgentId(2), AgentId(0)));
    }
}
