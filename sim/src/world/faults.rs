//! The fault verbs: what a partition, a heal, a crash, a clog and an unclog do to the network
//! (the run's fault task calls them at each fault's time; `run::faults`). Each returns the
//! fault's description for the trace.

use std::collections::BTreeSet;

use consensus_core::AgentId;

use super::{Partition, World};
use crate::scenario::ClogTarget;

impl World {
    /// Cuts the network between `groups` (only from earlier to later groups if `one_way`).
    pub fn partition(&mut self, groups: Vec<BTreeSet<AgentId>>, one_way: bool) -> String {
        let sides: Vec<String> =
            groups.iter().map(|g| g.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")).collect();
        let detail = format!("partition {}{}", sides.join(" | "), if one_way { " (one-way)" } else { "" });
        self.partition = Some(Partition { groups, one_way });
        detail
    }

    /// Ends the partition.
    pub fn heal(&mut self) -> String {
        self.partition = None;
        "heal".to_owned()
    }

    /// Takes `agent`'s node off the network: it receives nothing until it restarts (the node
    /// itself is killed by the caller, once the world is unlocked).
    pub fn crash(&mut self, agent: AgentId) -> String {
        self.up.remove(&agent);
        self.inboxes.remove(&agent);
        self.oracle.on_down(agent);
        format!("crash {agent}")
    }

    /// Holds every frame `target` matches until it is unclogged.
    pub fn clog(&mut self, target: ClogTarget) -> String {
        self.clogs.insert(target);
        format!("clog {target}")
    }

    /// Lifts a clog (the caller releases what it held: [`World::release_unclogged`]).
    pub fn unclog(&mut self, target: ClogTarget) -> String {
        self.clogs.remove(&target);
        format!("unclog {target}")
    }
}
