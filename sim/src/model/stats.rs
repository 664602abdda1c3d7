//! Where the states come from: per BFS level, the successors by kind, the new states, and how
//! many of them differ only in the in-flight messages or in what the Byzantine agents saw
//! (docs/model.md, "Where the states come from"). Measurement only: nothing here changes the
//! search.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::state::{Label, State, Succ};

/// One level of the search.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LevelStats {
    /// Depth of the states expanded.
    pub depth: u32,
    /// States expanded at this depth.
    pub expanded: u64,
    /// Successors computed, by kind: deliveries.
    pub deliveries: u64,
    /// Timer firings among the successors.
    pub fires: u64,
    /// Byzantine injections among the successors.
    pub injections: u64,
    /// Successors whose step was silent (a block's middle follows).
    pub silent: u64,
    /// Successors the lazy reduction left out.
    pub lazy_pruned: u64,
    /// Expanded middles where the lazy reduction left out every step (pruned dead ends).
    pub dead_ends: u64,
    /// New distinct states at depth + 1.
    pub new_states: u64,
    /// Of which a block's middle (an owner).
    pub new_middles: u64,
    /// Distinct new states once the in-flight messages are ignored.
    pub without_net: u64,
    /// Distinct new states once the in-flight messages and the Byzantine agents' knowledge are ignored.
    pub agents_only: u64,
    /// Distinct honest agents' snapshots seen so far (all levels), per agent id.
    pub local_states: Vec<u64>,
}

/// Collects [`LevelStats`] while the search runs.
#[derive(Default)]
pub struct Stats {
    /// The levels finished so far.
    pub levels: Vec<LevelStats>,
    current: LevelStats,
    without_net: HashSet<u64>,
    agents_only: HashSet<u64>,
    locals: Vec<HashSet<usize>>,
}

impl Stats {
    /// Counts the successors of one expanded state.
    pub fn expanded(&mut self, succs: &[Succ], pruned: u64, dead_end: bool) {
        self.current.expanded += 1;
        self.current.lazy_pruned += pruned;
        self.current.dead_ends += u64::from(dead_end);
        for s in succs {
            match s.label {
                Label::Deliver { .. } => self.current.deliveries += 1,
                Label::Fire { .. } => self.current.fires += 1,
                Label::Inject { .. } => self.current.injections += 1,
                Label::Init(_) => {}
            }
            self.current.silent += u64::from(s.silent);
        }
    }

    /// Counts a new distinct state (its parts interned: equal parts have equal addresses).
    pub fn new_state(&mut self, state: &State) {
        self.current.new_states += 1;
        self.current.new_middles += u64::from(state.owner.is_some());
        let mut agents = std::collections::hash_map::DefaultHasher::new();
        for a in &state.agents {
            (Arc::as_ptr(a) as *const u8 as usize).hash(&mut agents);
        }
        state.now.hash(&mut agents);
        state.timers.hash(&mut agents);
        state.owner.hash(&mut agents);
        let mut with_seen = agents.clone();
        for m in &state.seen {
            (Arc::as_ptr(m) as usize).hash(&mut with_seen);
        }
        // Only the counts are kept: the order of these sets never matters.
        self.agents_only.insert(agents.finish());
        self.without_net.insert(with_seen.finish());
        if self.locals.len() < state.agents.len() {
            self.locals.resize_with(state.agents.len(), HashSet::new);
        }
        for (i, a) in state.agents.iter().enumerate() {
            self.locals[i].insert(Arc::as_ptr(a) as *const u8 as usize);
        }
    }

    /// Ends the level being expanded (levels are numbered from 0), if it expanded anything.
    pub fn finish_level(&mut self) {
        if self.current.expanded == 0 && self.current.new_states == 0 {
            return;
        }
        let mut level = std::mem::take(&mut self.current);
        level.depth = self.levels.len() as u32;
        level.without_net = self.without_net.len() as u64;
        level.agents_only = self.agents_only.len() as u64;
        level.local_states = self.locals.iter().map(|s| s.len() as u64).collect();
        self.without_net.clear();
        self.agents_only.clear();
        self.levels.push(level);
    }
}

/// One level as a line of the progress output.
pub fn describe(l: &LevelStats) -> String {
    format!(
        "level {}: expanded {}, successors {} deliver / {} fire / {} inject ({} silent), {} pruned, {} dead ends; \
         new {} ({} middles), \
         {} without net, {} agents only; local states per agent {:?}",
        l.depth,
        l.expanded,
        l.deliveries,
        l.fires,
        l.injections,
        l.silent,
        l.lazy_pruned,
        l.dead_ends,
        l.new_states,
        l.new_middles,
        l.without_net,
        l.agents_only,
        l.local_states
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::History;

    fn state(agents: Vec<Arc<[u8]>>, owner: Option<consensus_core::AgentId>) -> State {
        State {
            now: vec![0; agents.len()],
            timers: vec![Vec::new(); agents.len()],
            agents,
            net: Vec::new(),
            seen: Vec::new(),
            history: Arc::new(History::default()),
            owner,
            pruned: None,
        }
    }

    #[test]
    fn a_level_counts_new_states_their_projections_and_local_states() {
        let (a, b): (Arc<[u8]>, Arc<[u8]>) = (Arc::from(vec![1u8]), Arc::from(vec![2u8]));
        let mut stats = Stats::default();
        stats.new_state(&state(vec![a.clone(), b.clone()], None));
        stats.new_state(&state(vec![a.clone(), b.clone()], None));
        stats.new_state(&state(vec![a.clone(), a.clone()], Some(consensus_core::AgentId(1))));
        stats.finish_level();
        stats.finish_level();
        assert_eq!(stats.levels.len(), 1, "an empty level is not recorded");
        let l = &stats.levels[0];
        assert_eq!((l.depth, l.new_states, l.new_middles), (0, 3, 1));
        assert_eq!(l.agents_only, 2, "two states share their agents' parts");
        assert_eq!(l.local_states, vec![1, 2]);
        assert!(describe(l).starts_with("level 0"));
    }
}
