//! `timely-proposal`: after GST an honest proposer proposes by the point the design says it
//! does (docs/protocol.md L14–L21): it never lets the propose timeout of its own round expire
//! (L56–L57, its nil prevote) later than the latest moment its legitimate wait can last.
//!
//! The wait it may legitimately make for session s, and why each term is there (the bound
//! `W(s)`, counted from `t_open`, when the opener first sent `Open(s)`):
//!
//! - **the spec and its round**: `Open` reaches every agent within one hop `h` (the drawn
//!   latency's maximum plus the Pareto tail's cap, plus two fsyncs: an agent's signed messages
//!   leave only once its log is durable, and one sync may be under way when it asks);
//! - **the votes** (L5–L8, L16): every honest agent evaluates when the session starts there
//!   (≤ `t_open + h`), its evaluator answers within the slowest profile's latency `e`, and its
//!   signed vote reaches the proposer one hop later; with at most f Byzantine agents the honest
//!   votes alone are ≥ q. Byzantine votes may be missing or break unanimity (L17), so the
//!   proposer may wait for `VoteCollection` (L3, `t0 + vote_collect_ms`, `t0 ≤ t_open + h`);
//! - **the threshold** (L16b–L16c, L18): while its votes are missing and do not reach the
//!   threshold (or, with the fallback on, decide nothing) it waits for the session deadline
//!   (`opened_ms + deadline_ms ≤ t_open + deadline_ms`), and then proposes at once (the
//!   `Deadline` timer runs TryPropose; a round started later proposes at its start, L12).
//!
//! So `W(s) = max(t_open + h + e + h, t_open + h + vote_collect_ms, t_open + deadline_ms)`,
//! and `W(s) = t_open + h + e + h` in a run without Byzantine agents: every member's vote then
//! arrives, and with all n votes the proposer proposes at once (L16's first case), neither
//! vote collection nor the threshold wait (L16b, L17) applies; but with the fallback on, a
//! proposer whose n votes decide nothing still waits for the deadline to propose a fallback
//! value (L18, the `L18-wait` of `try_propose`), so there `W(s)` keeps the deadline term.
//! (Without that term the validation's first false alarm: explore --seed 1 run 4982.)
//! After `W(s)` every condition of L16 holds at the proposer, so if it is still in the propose
//! step of its round there (it only leaves it by proposing or by the timeout), it proposes at
//! once; a nil prevote from the propose timeout decided after `W(s)` without a proposal of that
//! round is a proposer that waited past the design's point. The nil prevote is seen when it
//! leaves, up to two fsyncs after it was decided, so it is judged at `t − 2·sync > W(s)`.
//!
//! Judged only where every term above holds (else the session is not judged): the scenario
//! promises liveness, at most f_max Byzantine agents, no loss (`network.drop = 0`: a lost vote
//! is re-sent only at timeouts, L63, with no bound), from GST on every agent up and every link
//! open (none crashed, paused, clogged or stopped by a disk fault, no link clogged, no
//! partition: a vote held there breaks "every honest vote arrives"), fsyncs no slower than the
//! hop's (a `slow-disk` left on counts in `h`), crashes only where a crash keeps every write (`storage.crash = keep`: a restarted
//! agent that lost its log may start a later session late while it catches up, and its round 0
//! and vote collection with it), `Open(s)` sent after GST (the run's last fault) and after every
//! honest agent decided every earlier session (so every honest agent holds the session's
//! registry epoch and starts it on `Open`, none is behind the pipeline).
//!
//! Why not a bound on the decision time: the rounds in progress when `W(s)` passes depend on
//! when each round's timeouts fired, which the network's draws decide, so a sound bound on the
//! decision must allow for a round whose proposer cannot use `W(s)` and for the re-proposal of
//! an older polka, which takes it past a proposer that costs one round. The proposer's own
//! step is exact: it either proposed or timed out, and the oracle sees both leave it.

use consensus_core::config::FallbackPolicy;
use consensus_core::protocol::{Committee, Round};
use consensus_core::types::AgentSpecialization;
use consensus_core::{AgentId, SessionId, TimeMs};

use super::{durability, names, Oracle};
use crate::scenario::{CrashLoss, FaultAction, Scenario};

/// The terms of `W(s)` for one run, when the run is in the judged class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelyBound {
    /// GST: the run's last fault.
    pub gst_ms: TimeMs,
    /// One hop: maximum latency plus tail, plus two fsyncs.
    pub hop_ms: TimeMs,
    /// The slowest evaluator's latency.
    pub eval_ms: TimeMs,
    /// `vote_collect_ms`.
    pub vote_collect_ms: TimeMs,
    /// The engine's session deadline.
    pub deadline_ms: TimeMs,
    /// One fsync (the nil prevote leaves at most two after it was decided).
    pub sync_ms: TimeMs,
    /// No Byzantine agent: every committee member's vote arrives, so the proposer holds all n
    /// and proposes at once (L16's first case; L16b and L17 apply only with votes missing),
    /// unless `fallback` holds it to the deadline.
    pub all_honest: bool,
    /// The fallback policy is on: a proposer whose votes decide nothing waits for the deadline
    /// to propose a fallback value, even with all n votes (L18, `L18-wait`).
    pub fallback: bool,
}

impl TimelyBound {
    /// The run's bound, or `None` when the run is outside the judged class (module doc).
    pub fn of(scenario: &Scenario, byzantine: u64) -> Option<TimelyBound> {
        let crashes = scenario.faults.iter().any(|f| matches!(f.action, FaultAction::Crash { .. }));
        let after = scenario.after_gst();
        let judged = scenario.promises_liveness()
            && byzantine <= u64::from(scenario.f_max())
            && scenario.network.drop == 0.0
            && after.all_up
            && (!crashes || scenario.storage.crash == CrashLoss::Keep);
        if !judged {
            return None;
        }
        let [_, latency_max] = scenario.network.latency_ms;
        let tail = scenario.network.tail.map_or(0, |t| t.max_ms);
        let sync_ms = after.sync_ms;
        let eval_ms =
            AgentSpecialization::CYCLE.iter().map(|s| scenario.evaluator_profile(*s).latency_ms.1).max().unwrap_or(0);
        let protocol = scenario.protocol_config();
        Some(TimelyBound {
            gst_ms: scenario.last_fault_ms(),
            // + 1: a frame is delivered no sooner than 1 ms (the world's latency floor).
            hop_ms: latency_max.max(1).saturating_add(tail).saturating_add(2 * sync_ms).saturating_add(1),
            eval_ms,
            vote_collect_ms: protocol.vote_collect_ms,
            deadline_ms: scenario.engine_config().deadline_ms,
            sync_ms,
            all_honest: byzantine == 0,
            fallback: scenario.engine_config().fallback == FallbackPolicy::SimpleMajority,
        })
    }

    /// `W(s)` for a session first opened at `opened_ms`.
    pub fn wait_ends(&self, opened_ms: TimeMs) -> TimeMs {
        let h = self.hop_ms;
        let votes = opened_ms.saturating_add(h).saturating_add(self.eval_ms).saturating_add(h);
        let deadline = opened_ms.saturating_add(self.deadline_ms);
        if self.all_honest {
            return if self.fallback { votes.max(deadline) } else { votes };
        }
        let collection = opened_ms.saturating_add(h).saturating_add(self.vote_collect_ms);
        votes.max(collection).max(deadline)
    }
}

/// What the oracle keeps for `timely-proposal`.
#[derive(Default)]
pub(super) struct Timely {
    /// The run's bound, when judged.
    pub bound: Option<TimelyBound>,
    /// Judged sessions: when `Open` was first sent.
    pub opened: std::collections::BTreeMap<SessionId, TimeMs>,
}

impl Oracle {
    /// Checks `timely-proposal` for the run's terms `bound` (`None`: not judged).
    pub fn with_timely(mut self, bound: Option<TimelyBound>) -> Oracle {
        self.timely.bound = bound;
        self
    }

    /// The opener sent `Open(session)` for the first time at `now`: the session is judged when
    /// that is after GST and every honest agent decided every earlier session.
    pub fn on_open(&mut self, session: SessionId, now: TimeMs) {
        let Some(bound) = self.timely.bound else { return };
        let all_decided =
            |s: u64| self.decisions.get(&SessionId(s)).is_some_and(|d| self.honest.iter().all(|a| d.contains_key(a)));
        if now >= bound.gst_ms && (0..session.0).all(all_decided) {
            self.timely.opened.entry(session).or_insert(now);
        }
    }

    /// An honest agent's own signed message left it: a nil prevote of a round it proposes in,
    /// without its proposal, past `W(s)`, violates `timely-proposal`.
    pub(super) fn check_timely(&mut self, agent: AgentId, signed: &durability::Signed, step: u64, now: TimeMs) {
        let (session, kind, round) = signed.key;
        if kind != durability::PREVOTE || signed.what != durability::What::RoundVote(None) {
            return;
        }
        let (Some(bound), Some(opened)) = (self.timely.bound, self.timely.opened.get(&session).copied()) else {
            return;
        };
        // Its first send only: a re-sent nil prevote (L63) was decided when it first left.
        if self.durable.has_signed(agent, signed.key) {
            return;
        }
        let wait_ends = bound.wait_ends(opened);
        // Decided at most two fsyncs before it left; timers fire on whole milliseconds, so a
        // propose timeout and the Deadline timer due in the same millisecond run in either
        // order: + 1.
        if now.saturating_sub(2 * bound.sync_ms) <= wait_ends.saturating_add(1) {
            return;
        }
        if self.proposer_of(session, round) != Some(agent)
            || self.durable.has_signed(agent, (session, durability::PROPOSAL, round))
        {
            return;
        }
        let detail = format!(
            "{agent}, honest, is the proposer of round {round} of {session} and let its propose timeout expire at \
             {now} ms (nil prevote) without proposing, although every condition of L16 holds by {wait_ends} ms: \
             Open sent at {opened} ms (after GST {} ms), one hop ≤ {} ms, votes in by + {} ms evaluation + a hop, \
             vote collection {} ms, deadline {} ms",
            bound.gst_ms, bound.hop_ms, bound.eval_ms, bound.vote_collect_ms, bound.deadline_ms
        );
        self.violate(names::TIMELY_PROPOSAL, step, now, detail);
    }

    /// The proposer of `session`'s `round` in the committee of its registry epoch.
    fn proposer_of(&self, session: SessionId, round: Round) -> Option<AgentId> {
        let registry = self.epochs.get(&self.epoch_of(session))?;
        Committee::of(registry, self.protocol.mutation).proposer(session, round)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use consensus_core::protocol::{AgreedOutcome, ProposalMode, ProtocolConfig};
    use consensus_core::registry::Registry;
    use consensus_core::sign::{sim_committee, Signature};
    use consensus_core::{EngineConfig, SessionId};

    use super::*;
    use crate::oracle::durability::{Signed, What, PREVOTE, PROPOSAL};
    use crate::oracle::SeenDecision;

    const BOUND: TimelyBound = TimelyBound {
        gst_ms: 1_000,
        hop_ms: 31,
        eval_ms: 150,
        vote_collect_ms: 150,
        deadline_ms: 500,
        sync_ms: 5,
        all_honest: false,
        fallback: false,
    };

    fn oracle() -> Oracle {
        let engine = EngineConfig::default();
        let keys = sim_committee(1, 4);
        let registry = Registry::seed_committee(4, &engine);
        let honest = (0..4).map(AgentId).collect();
        Oracle::new(keys.keyring, registry, engine, ProtocolConfig::default(), honest).with_timely(Some(BOUND))
    }

    fn signed(session: u64, kind: u8, round: u32, value: Option<u64>, byte: u8) -> Signed {
        let what = if kind == PROPOSAL { What::Proposal(None) } else { What::RoundVote(value) };
        Signed { key: (SessionId(session), kind, round), signature: Signature([byte; 64]), what }
    }

    fn decided(o: &mut Oracle, session: u64, agents: &[u32]) {
        for a in agents {
            let seen = SeenDecision {
                value: None,
                round: Some(0),
                outcome: AgreedOutcome::NoDecision { achieved: consensus_core::Ppm::ZERO },
                mode: ProposalMode::Normal,
                at_ms: 1,
            };
            o.decisions.entry(SessionId(session)).or_default().insert(AgentId(*a), seen);
        }
    }

    /// W(s) is the latest of the votes, vote collection and the deadline.
    #[test]
    fn the_wait_ends_at_the_latest_of_votes_collection_and_deadline() {
        assert_eq!(BOUND.wait_ends(2_000), 2_500, "the deadline");
        let slow = TimelyBound { eval_ms: 600, ..BOUND };
        assert_eq!(slow.wait_ends(2_000), 2_000 + 31 + 600 + 31, "the votes");
        let long = TimelyBound { vote_collect_ms: 900, ..BOUND };
        assert_eq!(long.wait_ends(2_000), 2_000 + 31 + 900, "vote collection");
        let honest = TimelyBound { all_honest: true, ..long };
        assert_eq!(honest.wait_ends(2_000), 2_000 + 31 + 150 + 31, "all n votes: no wait for more");
        let fallback = TimelyBound { fallback: true, ..honest };
        assert_eq!(fallback.wait_ends(2_000), 2_500, "n votes deciding nothing wait for the fallback (L18)");
    }

    /// One row: (what, session opened at, earlier session decided by every honest agent,
    /// sender is the round's proposer, it proposed, prevote value, sent at, re-sent, fires).
    #[test]
    fn a_proposer_timing_out_past_the_wait_is_flagged_and_nothing_else() {
        type Row = (&'static str, u64, bool, bool, bool, Option<u64>, u64, bool, bool);
        // W = 2,500; judged from W + 1 + 2 syncs = 2,511 on.
        let rows: [Row; 10] = [
            ("late: nil prevote long after the deadline", 2_000, true, true, false, None, 2_800, false, true),
            ("exactly at the bound", 2_000, true, true, false, None, 2_511, false, false),
            ("one past the bound", 2_000, true, true, false, None, 2_512, false, true),
            ("before the wait ends", 2_000, true, true, false, None, 2_300, false, false),
            ("it proposed in that round", 2_000, true, true, true, None, 2_800, false, false),
            ("not the round's proposer", 2_000, true, false, false, None, 2_800, false, false),
            ("a prevote for a value", 2_000, true, true, false, Some(7), 2_800, false, false),
            ("opened before GST", 900, true, true, false, None, 2_800, false, false),
            ("an earlier session undecided when opened", 2_000, false, true, false, None, 2_800, false, false),
            ("a re-sent nil prevote decided in time", 2_000, true, true, false, None, 2_800, true, false),
        ];
        for (what, opened, earlier, proposer, proposed, value, at, resent, fires) in rows {
            let mut o = oracle();
            decided(&mut o, 0, if earlier { &[0, 1, 2, 3] } else { &[0, 1, 2] });
            let (session, round) = (SessionId(1), 2);
            // Session 1's epoch (the registry after session 0), as the oracle keeps it.
            o.epochs.insert(1, o.registry.clone());
            o.on_open(session, opened);
            let p = o.proposer_of(session, round).unwrap_or_else(|| panic!("{what}: no proposer"));
            let agent = if proposer { p } else { AgentId((p.0 + 1) % 4) };
            if proposed {
                o.on_signed(agent, signed(1, PROPOSAL, round, None, 1), 1, opened + 600);
            }
            if resent {
                o.on_signed(agent, signed(1, PREVOTE, round, value, 2), 2, opened + 100);
            }
            o.on_signed(agent, signed(1, PREVOTE, round, value, 2), 3, at);
            let v = o.violation();
            assert_eq!(v.is_some(), fires, "{what}: {v:?}");
            if let Some(v) = v {
                assert_eq!(v.invariant, names::TIMELY_PROPOSAL, "{what}");
                assert!(v.detail.contains(&format!("round {round} of session-1")), "{what}: {}", v.detail);
                assert!(v.detail.contains("by 2500 ms"), "{what}: {}", v.detail);
            }
        }
    }

    /// The class: beyond f_max, with loss, or with a crash that may lose writes, nothing is
    /// judged; a clean run is, with its terms read from the scenario.
    #[test]
    fn only_runs_in_the_class_are_judged() {
        let scenario = |storage: &str, extra: &str| {
            let text = format!(
                "[agents]\ncount = 4\n[network]\ndrop = 0.0\nlatency_ms = [1, 20]\n[storage]\nsync_ms = 2\n{storage}{extra}"
            );
            crate::scenario::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
        };
        let clean = TimelyBound::of(&scenario("", ""), 1).unwrap_or_else(|| panic!("a clean run is judged"));
        assert_eq!(clean.hop_ms, 20 + 2 * 2 + 1);
        assert_eq!((clean.gst_ms, clean.sync_ms, clean.all_honest), (0, 2, false));
        assert!(TimelyBound::of(&scenario("", ""), 0).is_some_and(|b| b.all_honest));
        assert_eq!(TimelyBound::of(&scenario("", ""), 2), None, "2 Byzantine of 4: beyond f_max");
        let lossy = "[agents]\ncount = 4\n[network]\ndrop = 0.1\nlatency_ms = [1, 20]\n";
        let lossy = crate::scenario::parse(lossy, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(TimelyBound::of(&lossy, 0), None, "loss");
        let crash = "[[faults]]\nat_ms = 10\nkind = \"crash\"\nagent = 1\n[[faults]]\nat_ms = 20\nkind = \"restart\"\nagent = 1\n";
        assert_eq!(TimelyBound::of(&scenario("", crash), 0), None, "a crash that may lose writes");
        let kept = TimelyBound::of(&scenario("crash = \"keep\"\n", crash), 0);
        assert!(kept.is_some_and(|b| b.gst_ms == 20), "{kept:?}");
        // Something still in effect from GST on: a vote held there may never arrive.
        let fault = |body: &str| format!("[[faults]]\nat_ms = 100\n{body}\n");
        for (left_on, why) in [
            ("kind = \"clog\"\nlink = [1, 2]", "a link clogged for good"),
            ("kind = \"clog\"\nagent = 2", "an agent clogged for good"),
            ("kind = \"pause\"\nagent = 2", "an agent paused for good"),
            ("kind = \"partition\"\ngroups = [[0, 1, 2], [3]]", "a partition never healed"),
        ] {
            let liveness = "[expect]\nliveness = true\n";
            assert_eq!(TimelyBound::of(&scenario("", &format!("{liveness}{}", fault(left_on))), 0), None, "{why}");
        }
        let released =
            format!("{}{}", fault("kind = \"clog\"\nlink = [1, 2]"), fault("kind = \"unclog\"\nlink = [1, 2]"));
        assert!(TimelyBound::of(&scenario("", &released), 0).is_some(), "a clog released by GST");
        // A slow disk left on slows every hop of its agent: `h` counts it.
        let slow = TimelyBound::of(&scenario("", &fault("kind = \"slow-disk\"\nagent = 1\nsync_ms = 300")), 0);
        assert_eq!(slow.map(|b| (b.sync_ms, b.hop_ms)), Some((300, 20 + 2 * 300 + 1)));
        let reset = format!(
            "{}{}",
            fault("kind = \"slow-disk\"\nagent = 1\nsync_ms = 300"),
            fault("kind = \"slow-disk\"\nagent = 1\nsync_ms = 0")
        );
        assert_eq!(TimelyBound::of(&scenario("", &reset), 0).map(|b| b.sync_ms), Some(2));
    }
}
