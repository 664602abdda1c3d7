//! The "quiet after restart" shape (`[faults] quiet_restart`): one agent, any one (honest or
//! Byzantine, agent 0 with the session opener included), crashes before GST and restarts
//! late, past the time the workload most likely took. It comes back behind every peer, with
//! no new session coming and, for the sessions it never saw, nothing of its own to re-send
//! (L62, L70 need a session it knows): only its `Sync` at restart (L74–L75) and the status
//! tick (L76–L77) bring it the certificates it missed, and `catch-up` judges that it decides
//! them. Whatever the run's crashes lose (`[storage] crash`, drawn by the storage family) this
//! crash loses too. Drawn from the run's own `explore-quiet` stream, so every other draw of
//! the run is what it was without it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::{Table, Value};

use super::{int, Draft, Generator, Mode};
use crate::seeds::{derive, Stream};

/// The restart comes this many ms per session after GST, drawn from this range: above what a
/// session takes in most runs (a few hundred ms at low latency, seconds with the tail and
/// short timeouts), so most restarts happen after the last decision.
const PER_SESSION_MS: [u64; 2] = [500, 2_000];

impl Generator {
    /// With probability `faults.quiet_restart`, in swarm and ByzzFuzz runs (a Twins run's
    /// copies share one identity and its partitions place them), a crash of one agent after
    /// every fault the run already has for it and before GST, and its restart late; GST moves
    /// to the restart, which is now the run's last fault, so that the liveness bounds (time and
    /// rounds) are counted from it: an honest agent down past the old GST may have kept the
    /// others below a quorum until then.
    pub(super) fn quiet_restart(&self, index: u64, mode: Mode, d: &mut Draft) {
        if mode == Mode::Twins {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(derive(self.master, Stream::ExploreQuiet, index));
        if !rng.gen_bool(self.envelope.faults.quiet_restart) {
            return;
        }
        let agent = rng.gen_range(0..d.agents.max(1));
        // After the agent's other faults: a restart of an earlier window must not end this one.
        let after = d.faults.iter().filter(|(_, t)| agent_of(t) == Some(agent)).map(|(at, _)| at + 1).max();
        let after = after.unwrap_or(0);
        let gst = d.gst_ms.max(after + 1);
        let crash = rng.gen_range(after..gst);
        let [low, high] = PER_SESSION_MS;
        let restart = gst.saturating_add(d.sessions.max(1).saturating_mul(rng.gen_range(low..=high)));
        crash_and_restart(d, agent, crash, restart);
        d.features.insert("faults:quiet-restart".into());
    }
}

/// The agent a fault table is about, if any.
pub(super) fn agent_of(t: &Table) -> Option<u32> {
    t.get("agent").and_then(Value::as_integer).and_then(|a| u32::try_from(a).ok())
}

/// `agent` crashes at `crash` and restarts at `restart`, the run's last fault: GST moves there.
pub(super) fn crash_and_restart(d: &mut Draft, agent: u32, crash: u64, restart: u64) {
    for (at, kind) in [(crash, "crash"), (restart, "restart")] {
        let mut t = Table::new();
        t.insert("kind".into(), Value::String(kind.into()));
        t.insert("agent".into(), int(u64::from(agent)));
        d.faults.push((at, t));
    }
    d.gst_ms = restart;
}

#[cfg(test)]
mod tests {
    use crate::explore::envelope::Envelope;
    use crate::explore::generate::{Generator, Mode};
    use crate::scenario::FaultAction;

    /// Every quiet restart is the run's last fault, after the agent's crash, and the liveness
    /// bound is counted from it; with the probability at 0 no run changes.
    #[test]
    fn a_quiet_restart_is_the_last_fault_and_the_bounds_count_from_it() {
        let mut e = Envelope::default();
        // The far-behind family skips quiet-restart runs and would change the others.
        e.far_behind.share = 0.0;
        e.faults.quiet_restart = 1.0;
        // A round lag crashes agents at GST, after the restart.
        e.faults.round_lag = 0.0;
        let on = Generator::new(e.clone(), 3, None, "none");
        e.faults.quiet_restart = 0.0;
        let off = Generator::new(e, 3, None, "none");
        let (mut quiet, mut twins) = (0, 0);
        for i in 0..120 {
            let run = on.generate(i).unwrap_or_else(|err| panic!("run {i}: {err}"));
            let plain = off.generate(i).unwrap_or_else(|err| panic!("run {i}: {err}"));
            if run.mode == Mode::Twins {
                twins += 1;
                assert_eq!(run.text, plain.text, "run {i}: Twins runs get none");
                continue;
            }
            quiet += 1;
            let s = &run.scenario;
            let last = s.faults.last().unwrap_or_else(|| panic!("run {i}: no fault"));
            let FaultAction::Restart { agent } = last.action else { panic!("run {i}: last is {:?}", last.action) };
            assert_eq!(last.at_ms, s.last_fault_ms(), "run {i}");
            let crash = s.faults.iter().rposition(|f| f.action == FaultAction::Crash { agent });
            let crash = crash.unwrap_or_else(|| panic!("run {i}: no crash of {agent}"));
            let between = &s.faults[crash + 1..s.faults.len() - 1];
            assert!(
                !between.iter().any(|f| f.action == FaultAction::Restart { agent }),
                "run {i}: another restart ends the quiet window"
            );
            assert!(s.expect.liveness_bound_ms > last.at_ms, "run {i}: the bound counts from the restart");
            assert!(run.features.iter().any(|f| f == "faults:quiet-restart"), "run {i}");
            // Only the faults and the bounds differ.
            assert_eq!(s.agents, plain.scenario.agents, "run {i}");
            assert_eq!(s.workload, plain.scenario.workload, "run {i}");
        }
        assert!(quiet > 50 && twins > 20, "{quiet} {twins}");
    }
}
