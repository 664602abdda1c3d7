//! The storage family of a generated run (`[storage]` of the envelope): what a crash keeps of
//! unsynced writes, disk faults before GST, and small `keep_decided` values. Drawn from the
//! run's own `explore-storage` stream, so turning the family on or off changes nothing else
//! of the run. Log compaction (snapshots, and restarts that restore them) is drawn from a
//! stream of its own, `explore-compaction`, so that adding it changed no other draw.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::{draw, draw32, int, set, Draft, Generator, Mode};
use crate::explore::envelope::DiskKind;
use crate::scenario::CrashLoss;
use crate::seeds::{derive, Stream};

/// The smallest `storage.compact_log_bytes` a scenario accepts.
const MIN_COMPACT_LOG_BYTES: u64 = 1_024;

impl Generator {
    /// Small `keep_decided` in any mode; in swarm runs with the storage family on, a crash
    /// loss mode and disk faults.
    pub(super) fn disks(&self, index: u64, mode: Mode, d: &mut Draft) {
        let s = &self.envelope.storage;
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreStorage, index));
        if rng.gen_bool(s.small_keep_decided) {
            set(&mut d.table, "protocol.keep_decided", int(draw(&mut rng, s.keep_decided).max(1)));
            d.features.insert("protocol:small-keep-decided".into());
        }
        self.compaction(index, d);
        if mode != Mode::Swarm || rng.gen_bool(self.envelope.swarm.off) {
            return;
        }
        d.features.insert("family:storage".into());
        let loss = *CrashLoss::ALL.choose(&mut rng).unwrap_or(&CrashLoss::Any);
        set(&mut d.table, "storage.crash", Value::String(loss.name().into()));
        d.features.insert(format!("storage:crash-{}", loss.name()));
        let n = d.agents.max(1);
        let f_max = (n - 1) / 3;
        let mut stopped: Vec<u32> = Vec::new();
        for _ in 0..draw32(&mut rng, s.faults) {
            let mut kind = *s.kinds.choose(&mut rng).unwrap_or(&DiskKind::SlowDisk);
            // Agent 0 hosts the opener: a fault that stops it would stop the client path.
            let candidates: Vec<u32> = (1..n).filter(|a| !stopped.contains(a)).collect();
            if kind.stops_agent() && (d.byzantine_count + stopped.len() as u32 >= f_max || candidates.is_empty()) {
                kind = DiskKind::SlowDisk;
            }
            let agent =
                if kind.stops_agent() { *candidates.choose(&mut rng).unwrap_or(&1) } else { rng.gen_range(0..n) };
            if kind.stops_agent() {
                stopped.push(agent);
            }
            self.disk_fault(&mut rng, d, kind, agent);
            d.features.insert(format!("disk:{}", kind.name()));
        }
    }

    /// In any mode, with probability `small_compact_log`: agents compact their logs into a
    /// snapshot once they exceed `compact_log_bytes` (as `bftsim-node` does), so the run takes
    /// snapshots and its restarts restore them (`Agent::snapshot`, `Agent::restore`).
    fn compaction(&self, index: u64, d: &mut Draft) {
        let s = &self.envelope.storage;
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreCompaction, index));
        if rng.gen_bool(s.small_compact_log) {
            let bytes = draw(&mut rng, s.compact_log_bytes).max(MIN_COMPACT_LOG_BYTES);
            set(&mut d.table, "storage.compact_log_bytes", int(bytes));
            d.features.insert("storage:compact-log".into());
        }
    }

    fn disk_fault(&self, rng: &mut ChaCha8Rng, d: &mut Draft, kind: DiskKind, agent: u32) {
        let gst = d.gst_ms.max(4);
        let fault = |at: u64, kind: &str, extra: Option<(&str, u64)>| {
            let mut t = Table::new();
            t.insert("kind".into(), Value::String(kind.into()));
            t.insert("agent".into(), int(u64::from(agent)));
            if let Some((key, value)) = extra {
                t.insert(key.into(), int(value));
            }
            (at, t)
        };
        match kind {
            DiskKind::FlipBit => {
                // Damage a synced record, then restart the agent on it: before the agent's
                // restart if the run already crashes it, else in a crash window of its own.
                match restart_of(d, agent) {
                    Some(restart) => d.faults.push(fault(rng.gen_range(0..restart.max(1)), "flip-bit", None)),
                    None => {
                        let flip = rng.gen_range(gst / 4..gst - 2);
                        let crash = rng.gen_range(flip + 1..gst - 1);
                        let restart = rng.gen_range(crash + 1..=gst);
                        d.faults.push(fault(flip, "flip-bit", None));
                        d.faults.push(fault(crash, "crash", None));
                        d.faults.push(fault(restart, "restart", None));
                    }
                }
            }
            DiskKind::FailSync | DiskKind::DiskFull => d.faults.push(fault(rng.gen_range(0..gst), kind.name(), None)),
            DiskKind::SlowDisk => {
                let start = rng.gen_range(0..gst);
                let end = rng.gen_range(start + 1..=gst);
                let sync_ms = draw(rng, self.envelope.storage.sync_ms);
                d.faults.push(fault(start, "slow-disk", Some(("sync_ms", sync_ms))));
                d.faults.push(fault(end, "slow-disk", Some(("sync_ms", 0))));
            }
        }
    }
}

/// When the run restarts `agent` (its crash family's window), if it does.
fn restart_of(d: &Draft, agent: u32) -> Option<u64> {
    d.faults.iter().find_map(|(at, t)| {
        let restart = t.get("kind").and_then(Value::as_str) == Some("restart");
        let this = t.get("agent").and_then(Value::as_integer) == Some(i64::from(agent));
        (restart && this).then_some(*at)
    })
}

#[cfg(test)]
mod tests {
    use crate::explore::envelope::Envelope;
    use crate::explore::generate::Generator;
    use crate::scenario::FaultAction;

    /// Log compaction is drawn from its own stream: with it off, every run is the same but for
    /// `storage.compact_log_bytes`; with it on, about `small_compact_log` of the runs compact,
    /// at sizes within the span.
    #[test]
    fn compaction_is_drawn_on_its_own_stream() {
        let on = Envelope::default();
        let mut off = Envelope::default();
        off.storage.small_compact_log = 0.0;
        let (g_on, g_off) = (Generator::new(on.clone(), 3, None, "none"), Generator::new(off, 3, None, "none"));
        let mut compacting = 0;
        for i in 0..400 {
            let (a, b) = (g_on.generate(i).expect("generates"), g_off.generate(i).expect("generates"));
            let mut without = a.scenario.clone();
            without.storage.compact_log_bytes = None;
            without.source.clone_from(&b.scenario.source);
            assert_eq!(without, b.scenario, "run {i}: only the compaction differs");
            assert_eq!(a.seed, b.seed, "run {i}");
            assert_eq!(b.scenario.storage.compact_log_bytes, None, "run {i}");
            if let Some(bytes) = a.scenario.storage.compact_log_bytes {
                compacting += 1;
                let [lo, hi] = on.storage.compact_log_bytes;
                assert!((lo..=hi).contains(&bytes), "run {i}: {bytes}");
                assert!(a.features.iter().any(|f| f == "storage:compact-log"), "run {i}");
            }
        }
        assert!((60..=140).contains(&compacting), "{compacting} of 400 runs compact (p = 0.25)");
    }

    /// The measurement behind docs/exploration.md: of the first `COMPACTION_RUNS` (default
    /// 2,000) runs of master seed 1 with the default envelope, how many compact their logs
    /// (a `compact` trace event) and how many restart from a snapshot. Release:
    /// `cargo test --release -p sim --lib compaction_happens -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn compaction_happens_in_explored_runs() {
        use crate::run::{run, RunOptions};
        let runs = std::env::var("COMPACTION_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
        let g = Generator::new(Envelope::default(), 1, None, "none");
        let (mut drawn, mut compacted, mut restored, mut failed) = (0, 0, 0, 0);
        for i in 0..runs {
            let generated = g.generate(i).expect("generates");
            if generated.scenario.storage.compact_log_bytes.is_none() {
                continue;
            }
            drawn += 1;
            let out = run(&generated.scenario, generated.seed, Default::default(), RunOptions { trace: true });
            compacted += u32::from(out.trace.iter().any(|e| e.kind == "compact"));
            restored +=
                u32::from(out.trace.iter().any(|e| e.kind == "fault" && e.detail.contains("restored its snapshot")));
            failed += u32::from(!out.record.violations.is_empty());
        }
        println!(
            "COMPACTION of {runs} runs: {drawn} drew compaction, {compacted} compacted, {restored} restored a snapshot, {failed} with a violation"
        );
        assert!(compacted > 0 && restored > 0, "compaction and restore never happened");
        assert_eq!(failed, 0);
    }

    /// The family draws every disk fault kind, keeps stopped agents within f_max, never stops
    /// agent 0, and restarts every agent whose log it damages.
    #[test]
    fn disk_faults_stay_in_the_budget_and_flips_are_restarted() {
        let mut e = Envelope::default();
        e.swarm.off = 0.0;
        let g = Generator::new(e, 5, Some(super::Mode::Swarm), "none");
        let mut kinds: Vec<std::mem::Discriminant<FaultAction>> = Vec::new();
        for i in 0..300 {
            let run = g.generate(i).unwrap_or_else(|err| panic!("run {i}: {err}"));
            let s = &run.scenario;
            let stopped = s.disk_stopped_agents();
            assert!(!stopped.contains(&0), "run {i}: agent 0 hosts the opener");
            assert!(stopped.len() as u32 + s.byzantine.count <= s.f_max().max(s.byzantine.count), "run {i}");
            for (k, f) in s.faults.iter().enumerate() {
                kinds.push(std::mem::discriminant(&f.action));
                if let FaultAction::FlipBit { agent } = f.action {
                    let restarted = s.faults[k..].iter().any(|r| r.action == FaultAction::Restart { agent });
                    assert!(restarted, "run {i}: agent {agent}'s damaged log is read at a restart");
                }
            }
        }
        let wanted = [
            FaultAction::FlipBit { agent: 0 },
            FaultAction::FailSync { agent: 0 },
            FaultAction::DiskFull { agent: 0 },
            FaultAction::SlowDisk { agent: 0, sync_ms: 0 },
        ];
        for w in wanted {
            assert!(kinds.contains(&std::mem::discriminant(&w)), "{w:?} never drawn");
        }
    }
}
