//! Seed derivation: every random stream of a run, and of an exploration, is derived here from
//! one u64 seed and a named [`Stream`], so the streams are independent (a new draw in one does
//! not shift another) and their names live in one place.
//!
//! A run computes its seeds once, when it starts ([`RunSeeds::new`]), and hands each part of
//! the run the seeds it draws from; nothing else derives from the run's seed. The stream labels
//! are hashed with the seed: renaming one changes the trace of every run that draws from it.

use crate::trace::Fnv;

/// A named random stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Which agents are Byzantine (when the scenario does not list them).
    Byzantine,
    /// The workload's ground truth: each session's best candidate and qualities.
    Workload,
    /// The committee's signing keys.
    Keys,
    /// The network model's draws (latency, drops, duplicates).
    Network,
    /// The colluding Byzantine agents' shared choices.
    Collusion,
    /// Agent `i`'s evaluator.
    Evaluator,
    /// The second copy of twin `i`'s evaluator.
    TwinEvaluator,
    /// Byzantine agent `i`'s own choices.
    ByzantineNode,
    /// What the `i`-th fault, a crash, loses of unsynced writes.
    CrashLoss,
    /// Which bit the `i`-th fault, a bit flip, flips.
    FlipBit,
    /// The explorer: scenario `i` of a master seed.
    Explore,
    /// The explorer: scenario `i`'s full-power Byzantine knobs.
    ExploreFullPower,
    /// The explorer: the run seed of scenario `i`.
    ExploreSeed,
    /// The explorer: scenario `i`'s timeouts.
    ExploreTimeouts,
    /// The explorer: scenario `i`'s storage faults.
    ExploreStorage,
    /// The explorer: scenario `i`'s quiet restart.
    ExploreQuiet,
    /// The explorer: scenario `i`'s log compaction.
    ExploreCompaction,
    /// The explorer: scenario `i`'s round lag.
    ExploreLag,
    /// The explorer: scenario `i`'s far-behind restart.
    ExploreFarBehind,
    /// The explorer: scenario `i`'s split locks.
    ExploreSplitLocks,
    /// The explorer's guided mode: whether slot `i` is guided.
    ExploreGuidedSlot,
    /// The explorer's guided mode: scenario `i`'s mutations.
    ExploreGuided,
}

impl Stream {
    /// The label hashed with the seed (fixed: the traces of every run depend on it).
    pub const fn label(self) -> &'static str {
        match self {
            Stream::Byzantine => "byzantine",
            Stream::Workload => "workload",
            Stream::Keys => "keys",
            Stream::Network => "network",
            Stream::Collusion => "collusion",
            Stream::Evaluator => "evaluator",
            Stream::TwinEvaluator => "twin-evaluator",
            Stream::ByzantineNode => "byzantine-node",
            Stream::CrashLoss => "crash-loss",
            Stream::FlipBit => "flip-bit",
            Stream::Explore => "explore",
            Stream::ExploreFullPower => "explore-full-power",
            Stream::ExploreSeed => "explore-seed",
            Stream::ExploreTimeouts => "explore-timeouts",
            Stream::ExploreStorage => "explore-storage",
            Stream::ExploreQuiet => "explore-quiet",
            Stream::ExploreCompaction => "explore-compaction",
            Stream::ExploreLag => "explore-lag",
            Stream::ExploreFarBehind => "explore-far-behind",
            Stream::ExploreSplitLocks => "explore-split-locks",
            Stream::ExploreGuidedSlot => "explore-guided-slot",
            Stream::ExploreGuided => "explore-guided",
        }
    }
}

/// The seed of the `index`-th member of `stream` under `seed`: a stable hash (FNV-1a) of the
/// three, the same on every platform and Rust version.
pub fn derive(seed: u64, stream: Stream, index: u64) -> u64 {
    derive_labelled(seed, stream.label(), index)
}

/// [`derive`] by the stream's label (the label is part of the hash: renaming one changes every
/// seed of its stream).
fn derive_labelled(seed: u64, label: &str, index: u64) -> u64 {
    let mut h = Fnv::default();
    h.u64(seed);
    h.bytes(label.as_bytes());
    h.u64(index);
    h.finish()
}

/// Every seed one run draws from, computed once when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSeeds {
    /// The run's seed itself (the madsim runtime's, and the one the record names).
    pub run: u64,
    /// [`Stream::Byzantine`].
    pub byzantine: u64,
    /// [`Stream::Workload`].
    pub workload: u64,
    /// [`Stream::Keys`].
    pub keys: u64,
    /// [`Stream::Network`].
    pub network: u64,
    /// [`Stream::Collusion`].
    pub collusion: u64,
    /// [`Stream::Evaluator`], by agent.
    pub evaluators: Vec<u64>,
    /// [`Stream::TwinEvaluator`], by agent.
    pub twin_evaluators: Vec<u64>,
    /// [`Stream::ByzantineNode`], by agent.
    pub byzantine_nodes: Vec<u64>,
    /// [`Stream::CrashLoss`], by fault index.
    pub crash_loss: Vec<u64>,
    /// [`Stream::FlipBit`], by fault index.
    pub flip_bit: Vec<u64>,
}

impl RunSeeds {
    /// The seeds of a run with `seed`, `agents` agents and `faults` scheduled faults.
    pub fn new(seed: u64, agents: u32, faults: usize) -> RunSeeds {
        let per_agent = |stream| (0..agents).map(|i| derive(seed, stream, u64::from(i))).collect();
        let per_fault = |stream| (0..faults as u64).map(|i| derive(seed, stream, i)).collect();
        RunSeeds {
            run: seed,
            byzantine: derive(seed, Stream::Byzantine, 0),
            workload: derive(seed, Stream::Workload, 0),
            keys: derive(seed, Stream::Keys, 0),
            network: derive(seed, Stream::Network, 0),
            collusion: derive(seed, Stream::Collusion, 0),
            evaluators: per_agent(Stream::Evaluator),
            twin_evaluators: per_agent(Stream::TwinEvaluator),
            byzantine_nodes: per_agent(Stream::ByzantineNode),
            crash_loss: per_fault(Stream::CrashLoss),
            flip_bit: per_fault(Stream::FlipBit),
        }
    }

    /// Agent `i`'s seed in `seeds` (a stream by agent); past the end, derived afresh (never
    /// happens for an agent of the run).
    pub fn of(&self, seeds: &[u64], stream: Stream, i: u64) -> u64 {
        usize::try_from(i).ok().and_then(|i| seeds.get(i)).copied().unwrap_or_else(|| derive(self.run, stream, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_stable() {
        assert_ne!(derive(1, Stream::Network, 0), derive(1, Stream::Network, 1));
        assert_ne!(derive(1, Stream::Network, 0), derive(2, Stream::Network, 0));
        assert_ne!(derive(1, Stream::Network, 0), derive(1, Stream::Keys, 0));
        // The hash of (seed, label, index) as FNV-1a over the seed's and index's little-endian
        // bytes around the label: fixed, since every run's trace depends on it.
        let mut h = Fnv::default();
        h.u64(7);
        h.bytes(b"evaluator");
        h.u64(3);
        assert_eq!(derive(7, Stream::Evaluator, 3), h.finish());
    }

    #[test]
    fn run_seeds_are_the_streams_members() {
        let seeds = RunSeeds::new(42, 4, 2);
        assert_eq!(seeds.keys, derive(42, Stream::Keys, 0));
        assert_eq!(seeds.evaluators.len(), 4);
        assert_eq!(seeds.evaluators[3], derive(42, Stream::Evaluator, 3));
        assert_eq!(seeds.crash_loss[1], derive(42, Stream::CrashLoss, 1));
        assert_eq!(seeds.of(&seeds.flip_bit, Stream::FlipBit, 5), derive(42, Stream::FlipBit, 5));
    }
}
