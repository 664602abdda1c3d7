//! The fault task: at each fault's time it applies the fault to the disks (a crash loses what
//! `[storage] crash` says, disk faults damage, fail, fill or slow a disk) and to the network
//! (the verbs of `world::faults`), records it, and kills or restarts the node.

use std::collections::BTreeMap;

use consensus_core::runner::Clock;
use consensus_core::AgentId;

use super::client::{opener_down, SharedPort};
use super::disk::Disks;
use super::{Shared, SimClock};
use crate::scenario::{CrashLoss, Fault, FaultAction, Scenario};
use crate::seeds::{RunSeeds, Stream};
use crate::world::World;

/// What the fault task needs of the disks: every agent's disk, what a crash keeps of unsynced
/// writes, the run's seeds (its draws come from `crash_loss` and `flip_bit`, by fault index),
/// and the opener's port (agent 0's node hosts it).
pub(super) struct DiskFaults {
    pub disks: Disks,
    pub crash: CrashLoss,
    pub seeds: RunSeeds,
    pub port: SharedPort,
}

impl DiskFaults {
    /// The disk side of `fault` (the `index`-th fault of the run): a crash loses unsynced
    /// writes (and takes agent 0's opener down), disk faults damage, fail, fill or slow the
    /// disk. Describes what happened.
    fn apply(&self, index: u64, fault: &FaultAction, world: &Shared) -> Option<String> {
        match fault {
            FaultAction::Crash { agent } => {
                if *agent == 0 {
                    opener_down(&self.port, world, false);
                }
                Some(self.disks.crash(
                    AgentId(*agent),
                    self.crash,
                    self.seeds.of(&self.seeds.crash_loss, Stream::CrashLoss, index),
                ))
            }
            FaultAction::FlipBit { agent } => {
                Some(self.disks.flip_bit(AgentId(*agent), self.seeds.of(&self.seeds.flip_bit, Stream::FlipBit, index)))
            }
            other => {
                let agent = other.disk_agent()?;
                self.disks.fault(AgentId(agent), other);
                None
            }
        }
    }
}

pub(super) fn spawn_faults(
    scenario: &Scenario,
    world: Shared,
    clock: SimClock,
    nodes: BTreeMap<AgentId, madsim::runtime::NodeHandle>,
    net_node: &madsim::runtime::NodeHandle,
    disks: DiskFaults,
) -> madsim::task::JoinHandle<()> {
    let faults = scenario.faults.clone();
    net_node.spawn(async move {
        let handle = madsim::runtime::Handle::current();
        for (index, fault) in faults.into_iter().enumerate() {
            clock.sleep_until(fault.at_ms).await;
            let now = clock.now_ms();
            // The disk first (no await in between: the node cannot write meanwhile), then the
            // world; killing or restarting a node runs its code synchronously, never under the
            // lock.
            let disk = disks.apply(index as u64, &fault.action, &world);
            {
                let Ok(mut w) = world.lock() else { return };
                let (mut detail, agent) = apply_fault(&fault, &mut w);
                if let Some(disk) = disk {
                    detail = format!("{detail}: {disk}");
                }
                tracing::info!("fault at {now} ms: {detail}");
                w.record_fault(now, detail, agent);
                w.release_unclogged(now);
            }
            match &fault.action {
                FaultAction::Crash { agent } => {
                    if let Some(node) = nodes.get(&AgentId(*agent)) {
                        handle.kill(node.id());
                    }
                }
                FaultAction::Restart { agent } => {
                    if let Some(node) = nodes.get(&AgentId(*agent)) {
                        handle.restart(node.id());
                    }
                }
                _ => {}
            }
        }
    })
}

/// The network side of `fault`: its description and the agent it is about.
fn apply_fault(fault: &Fault, w: &mut World) -> (String, Option<AgentId>) {
    let on = |agent: &u32| Some(AgentId(*agent));
    match &fault.action {
        FaultAction::Partition { groups, one_way } => {
            let groups = groups.iter().map(|g| g.iter().map(|i| AgentId(*i)).collect()).collect();
            (w.partition(groups, *one_way), None)
        }
        FaultAction::Heal => (w.heal(), None),
        FaultAction::Crash { agent } => (w.crash(AgentId(*agent)), on(agent)),
        FaultAction::Restart { agent } => (format!("restart {}", AgentId(*agent)), on(agent)),
        FaultAction::Clog { target } => (w.clog(*target), None),
        FaultAction::Unclog { target } => (w.unclog(*target), None),
        FaultAction::Pause { agent } => (w.pause(AgentId(*agent)), None),
        FaultAction::Resume { agent } => (w.resume(AgentId(*agent)), None),
        FaultAction::FlipBit { agent } => (format!("flip a bit on the disk of {}", AgentId(*agent)), on(agent)),
        FaultAction::FailSync { agent } => (format!("the next fsync of {} fails", AgentId(*agent)), on(agent)),
        FaultAction::DiskFull { agent } => (format!("the disk of {} is full", AgentId(*agent)), on(agent)),
        FaultAction::SlowDisk { agent, sync_ms } => {
            (format!("every fsync of {} takes {sync_ms} ms", AgentId(*agent)), on(agent))
        }
    }
}
