//! The oracle: named invariants, checked at the step where each can first fail.
//!
//! | invariant | checked when | meaning |
//! |---|---|---|
//! | `agreement` | an honest agent decides | no two honest agents decide different values (vote set and outcome: the value id) for one session; decisions without a value (the local-fallback mutation) are compared by outcome |
//! | `integrity` | an honest agent decides | an honest agent decides a session at most once |
//! | `external-validity` | an honest agent decides | the decision carries ≥ q distinct, correctly signed, session-bound votes of the session's committee, and its outcome is the engine's aggregate of them |
//! | `unanimity-validity` | an honest agent decides | if every honest agent that voted accepted candidate X, a decided candidate is X |
//! | `threshold` | an honest agent decides | a `threshold` / `early-unanimous` decision has agreement ≥ the configured threshold |
//! | `liveness` | the run ends, if the scenario promises it | every honest agent that is up decided every session by the bound |
//!
//! Beyond f_max Byzantine agents not everything is promised ([`Promises`]): agreement only
//! while the Byzantine agents are fewer than the quorum intersection `2q − n`, unanimity
//! validity and liveness not at all. The invariants not promised are not checked.
//!
//! The oracle keeps its own reference registry, applying each session's first decision in
//! session order exactly as agents do, so external validity is re-checked against the same
//! epoch the agents used, independently of any agent's state.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::{
    recompute, AgreedOutcome, Committee, DecisionRecord, Mutation, ProposalMode, ProtocolConfig, Round, ValueId,
};
use consensus_core::registry::{Registry, SessionRecord};
use consensus_core::sign::{SimKeyring, Verifier};
use consensus_core::types::{AgentVote, ConsensusMethod, VoteValue};
use consensus_core::{wire, AgentId, CandidateId, EngineConfig, SessionId, TimeMs};

/// Registry epochs kept for checking late decisions.
const EPOCHS_KEPT: u64 = 64;

/// Invariant names, as reported.
pub mod names {
    /// No two honest agents decide differently.
    pub const AGREEMENT: &str = "agreement";
    /// No honest agent decides twice.
    pub const INTEGRITY: &str = "integrity";
    /// Decisions are the aggregate of ≥ q certified votes.
    pub const EXTERNAL_VALIDITY: &str = "external-validity";
    /// Unanimous honest votes decide their candidate.
    pub const UNANIMITY_VALIDITY: &str = "unanimity-validity";
    /// Threshold decisions reach the threshold.
    pub const THRESHOLD: &str = "threshold";
    /// Every honest agent decides every session in time.
    pub const LIVENESS: &str = "liveness";
    /// All of them.
    pub const ALL: [&str; 6] = [AGREEMENT, INTEGRITY, EXTERNAL_VALIDITY, UNANIMITY_VALIDITY, THRESHOLD, LIVENESS];
}

/// Which invariants a run promises (the others always hold by construction or are promised
/// whatever the Byzantine count: integrity, external validity, threshold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promises {
    /// Agreement: the Byzantine agents are fewer than `2q − n` (every two quorums share an
    /// honest agent).
    pub agreement: bool,
    /// Unanimity validity: at most f_max Byzantine agents.
    pub unanimity_validity: bool,
}

impl Promises {
    /// What a committee of `n` with `byzantine` faulty agents promises.
    pub fn of(n: u64, byzantine: u64) -> Promises {
        let f_max = n.saturating_sub(1) / 3;
        let q = consensus_core::quorum::quorum(n, f_max).unwrap_or(n);
        let intersection = (2 * q).saturating_sub(n);
        Promises { agreement: byzantine < intersection, unanimity_validity: byzantine <= f_max }
    }
}

/// The first violation of a run (defined with the run record, in `reports::model`).
pub use reports::model::Violation;

/// One honest decision as the oracle saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenDecision {
    /// The decided value's id (`None` for the local-fallback mutation).
    pub value: Option<ValueId>,
    /// The round decided in (`None` for the local-fallback mutation).
    pub round: Option<Round>,
    /// The outcome.
    pub outcome: AgreedOutcome,
    /// The mode.
    pub mode: ProposalMode,
    /// When.
    pub at_ms: TimeMs,
}

/// The oracle of one run.
pub struct Oracle {
    keyring: SimKeyring,
    engine: EngineConfig,
    protocol: ProtocolConfig,
    honest: BTreeSet<AgentId>,
    registry: Registry,
    applied: u64,
    epochs: BTreeMap<u64, Registry>,
    first: BTreeMap<SessionId, DecisionRecord>,
    /// Sessions whose first decision passed the external-validity check. That check depends
    /// only on the decision's spec, mode, votes and outcome and on the session's epoch, so a
    /// later decision equal to the first in those passes it too and is not recomputed.
    externally_valid: BTreeSet<SessionId>,
    decisions: BTreeMap<SessionId, BTreeMap<AgentId, SeenDecision>>,
    honest_votes: BTreeMap<SessionId, BTreeMap<AgentId, Option<CandidateId>>>,
    violation: Option<Violation>,
    promises: Promises,
}

impl Oracle {
    /// An oracle for a committee starting from `registry`.
    pub fn new(
        keyring: SimKeyring,
        registry: Registry,
        engine: EngineConfig,
        protocol: ProtocolConfig,
        honest: BTreeSet<AgentId>,
    ) -> Oracle {
        let mut epochs = BTreeMap::new();
        epochs.insert(0, registry.clone());
        Oracle {
            keyring,
            engine,
            protocol,
            honest,
            registry,
            applied: 0,
            epochs,
            first: BTreeMap::new(),
            externally_valid: BTreeSet::new(),
            decisions: BTreeMap::new(),
            honest_votes: BTreeMap::new(),
            violation: None,
            promises: Promises { agreement: true, unanimity_validity: true },
        }
    }

    /// Checks only what `promises` promises.
    pub fn with_promises(mut self, promises: Promises) -> Oracle {
        self.promises = promises;
        self
    }

    /// The first violation, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Honest decisions by session.
    pub fn decisions(&self) -> &BTreeMap<SessionId, BTreeMap<AgentId, SeenDecision>> {
        &self.decisions
    }

    /// Whether `agent` is honest in this run.
    pub fn is_honest(&self, agent: AgentId) -> bool {
        self.honest.contains(&agent)
    }

    /// The reference registry after every session applied so far.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn violate(&mut self, invariant: &str, step: u64, time_ms: TimeMs, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { invariant: invariant.to_owned(), step, time_ms, detail });
        }
    }

    /// An honest agent's own vote (for unanimity validity).
    pub fn on_local_vote(&mut self, agent: AgentId, vote: &AgentVote) {
        if !self.honest.contains(&agent) {
            return;
        }
        let accepted = matches!(vote.value, VoteValue::Accept { .. }).then_some(vote.candidate);
        self.honest_votes.entry(vote.session).or_default().insert(agent, accepted);
    }

    /// Checks every decision-time invariant for one decision.
    pub fn on_decide(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        let session = record.session;
        let seen = SeenDecision {
            value: record.value,
            round: record.round,
            outcome: record.outcome.clone(),
            mode: record.mode,
            at_ms: now,
        };
        let previous = self.decisions.entry(session).or_default().insert(agent, seen);
        if previous.is_some() {
            self.violate(names::INTEGRITY, step, now, format!("{agent} decided {session} a second time"));
        }
        if self.promises.agreement {
            self.check_agreement(agent, record, step, now);
        }
        self.check_external_validity(agent, record, step, now);
        if self.promises.unanimity_validity {
            self.check_unanimity(agent, record, step, now);
        }
        self.check_threshold(agent, record, step, now);
        if let std::collections::btree_map::Entry::Vacant(first) = self.first.entry(session) {
            first.insert(record.clone());
            self.advance();
        }
    }

    /// Agreement is on the decided value (docs/protocol.md: Tendermint's agreement): two
    /// honest decisions of different values violate it even when their outcomes coincide,
    /// since different certified vote sets were decided. A decision without a value (the
    /// local-fallback mutation) is compared by outcome.
    fn check_agreement(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        let Some(others) = self.decisions.get(&record.session) else { return };
        let differs = |d: &SeenDecision| match (d.value, record.value) {
            (Some(a), Some(b)) => a != b,
            _ => d.outcome != record.outcome,
        };
        let conflict = others.iter().find(|(a, d)| **a != agent && differs(d));
        if let Some((other, d)) = conflict {
            let detail = format!(
                "{agent} decided {} in {} but {other} decided {}",
                describe(record.value, record.round, &record.outcome),
                record.session,
                describe(d.value, d.round, &d.outcome)
            );
            self.violate(names::AGREEMENT, step, now, detail);
        }
    }

    fn check_external_validity(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        if record.value.is_none() {
            // The local-fallback mutation decides without a certified value: agreement judges it.
            return;
        }
        let session = record.session;
        let same_as_first = |f: &DecisionRecord| {
            f.mode == record.mode && f.outcome == record.outcome && f.spec == record.spec && f.votes == record.votes
        };
        if self.externally_valid.contains(&session) && self.first.get(&session).is_some_and(same_as_first) {
            return;
        }
        let Some(registry) = self.epochs.get(&self.epoch_of(session)) else { return };
        let committee = Committee::of(registry, Mutation::None);
        let mut voters = BTreeSet::new();
        let mut problem = None;
        for v in &record.votes {
            let signed = self.keyring.verify(v.vote.agent, &wire::vote_signing_bytes(&v.vote), &v.signature);
            if v.vote.session != session || !committee.contains(v.vote.agent) || !signed {
                problem = Some(format!(
                    "the vote of {} is not a correctly signed vote of this session's committee",
                    v.vote.agent
                ));
                break;
            }
            voters.insert(v.vote.agent);
        }
        if problem.is_none() && voters.len() < committee.vote_q {
            problem = Some(format!("only {} distinct voters, the quorum is {}", voters.len(), committee.vote_q));
        }
        if problem.is_none() {
            let (outcome, _) = recompute(record.mode, &record.spec, &record.votes, registry, &self.engine);
            if outcome != record.outcome {
                problem = Some(format!(
                    "it claims {:?} but its {} votes aggregate to {:?}",
                    record.outcome,
                    record.votes.len(),
                    outcome
                ));
            }
        }
        match problem {
            Some(problem) => {
                self.violate(names::EXTERNAL_VALIDITY, step, now, format!("{agent} decided {session}: {problem}"))
            }
            None if !self.first.contains_key(&session) => {
                self.externally_valid.insert(session);
            }
            None => {}
        }
    }

    fn epoch_of(&self, session: SessionId) -> u64 {
        session.0.saturating_add(1).saturating_sub(self.protocol.pipeline.max(1))
    }

    fn check_unanimity(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        let Some(chosen) = record.outcome.chosen() else { return };
        let Some(votes) = self.honest_votes.get(&record.session) else { return };
        let mut choices = votes.values();
        let Some(Some(first)) = choices.next() else { return };
        if choices.all(|c| *c == Some(*first)) && chosen != *first {
            let detail = format!(
                "every honest agent that voted ({}) accepted {first} in {} but {agent} decided {chosen}",
                votes.len(),
                record.session
            );
            self.violate(names::UNANIMITY_VALIDITY, step, now, detail);
        }
    }

    fn check_threshold(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        if let AgreedOutcome::Decided { method, agreement, .. } = &record.outcome {
            let by_threshold = matches!(method, ConsensusMethod::Threshold | ConsensusMethod::EarlyUnanimous);
            let t = self.engine.threshold;
            if by_threshold && !t.reached(u128::from(agreement.raw()), 1_000_000) {
                let detail =
                    format!("{agent} decided {} by {method:?} with agreement {agreement} < {t}", record.session);
                self.violate(names::THRESHOLD, step, now, detail);
            }
        }
    }

    /// Applies first decisions to the reference registry in session order, as agents do.
    fn advance(&mut self) {
        while let Some(record) = self.first.get(&SessionId(self.applied)) {
            let registry_record = match self.epochs.get(&self.epoch_of(record.session)) {
                Some(registry) if record.value.is_some() => {
                    recompute(record.mode, &record.spec, &record.votes, registry, &self.engine).1
                }
                _ => SessionRecord { chosen: record.outcome.chosen(), ..SessionRecord::default() },
            };
            self.registry.apply(&registry_record, &self.engine);
            self.applied += 1;
            self.epochs.insert(self.applied, self.registry.clone());
            // Late deciders of recent sessions are still checked against their epoch.
            let keep_from = self.applied.saturating_sub(self.protocol.pipeline.max(1).max(EPOCHS_KEPT));
            self.epochs = self.epochs.split_off(&keep_from);
        }
    }

    /// Liveness at the end of a run: every honest agent in `up` decided every session in
    /// `0..sessions` by `bound_ms`.
    pub fn check_liveness(&mut self, up: &BTreeSet<AgentId>, sessions: u64, bound_ms: TimeMs, step: u64, now: TimeMs) {
        for s in 0..sessions {
            let session = SessionId(s);
            let decided = self.decisions.get(&session);
            for agent in self.honest.intersection(up) {
                let in_time = decided.and_then(|d| d.get(agent)).is_some_and(|d| d.at_ms <= bound_ms);
                if !in_time {
                    let detail = format!("{agent} did not decide {session} by {bound_ms} ms");
                    self.violate(names::LIVENESS, step, now, detail);
                    return;
                }
            }
        }
    }
}

/// A decision for a violation's detail: value id (short hex), round and outcome.
fn describe(value: Option<ValueId>, round: Option<Round>, outcome: &AgreedOutcome) -> String {
    let value = value.map_or_else(|| "no value".to_owned(), |v| format!("value {:016x}", v.short()));
    let round = round.map_or_else(|| "without a round".to_owned(), |r| format!("in round {r}"));
    format!("{value} {round} ({outcome:?})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus_core::protocol::messages::{SessionSpec, SignedSpec};
    use consensus_core::sign::{sim_committee, Signature};
    use consensus_core::Ppm;

    fn oracle(n: u32) -> Oracle {
        let engine = EngineConfig::default();
        let keys = sim_committee(1, n);
        let registry = Registry::seed_committee(n, &engine);
        let honest = (0..n).map(AgentId).collect();
        Oracle::new(keys.keyring, registry, engine, ProtocolConfig::default(), honest)
    }

    fn chose(candidate: u32) -> AgreedOutcome {
        AgreedOutcome::Decided {
            chosen: CandidateId(candidate),
            method: ConsensusMethod::Threshold,
            agreement: Ppm::ONE,
            byzantine: Vec::new(),
        }
    }

    fn record(value: Option<u8>, round: Option<Round>, outcome: AgreedOutcome) -> DecisionRecord {
        let spec = SessionSpec {
            session: SessionId(3),
            query: "q".into(),
            candidates: vec![CandidateId(0), CandidateId(1)],
            opened_ms: 0,
        };
        DecisionRecord {
            session: SessionId(3),
            round,
            value: value.map(|b| ValueId([b; 32])),
            outcome,
            mode: ProposalMode::Normal,
            votes: Vec::new(),
            spec: SignedSpec { spec, signature: Signature::ZERO },
            at_ms: 10,
        }
    }

    /// Agent `agent`'s decision as the oracle keeps it, then the agreement check of `next` by
    /// agent 1 (only that check: these records carry no votes, so external validity would
    /// fail them first).
    fn agreement_after(first: &DecisionRecord, next: &DecisionRecord) -> Option<Violation> {
        let mut o = oracle(4);
        for (agent, r) in [(AgentId(0), first), (AgentId(1), next)] {
            let seen = SeenDecision {
                value: r.value,
                round: r.round,
                outcome: r.outcome.clone(),
                mode: r.mode,
                at_ms: r.at_ms,
            };
            o.decisions.entry(r.session).or_default().insert(agent, seen);
        }
        o.check_agreement(AgentId(1), next, 7, 10);
        o.violation().cloned()
    }

    #[test]
    fn agreement_flags_different_values_with_the_same_outcome() {
        let a = record(Some(0xab), Some(0), chose(1));
        let b = record(Some(0xcd), Some(2), chose(1));
        let v = agreement_after(&a, &b).expect("two values decided: a safety violation");
        assert_eq!(v.invariant, names::AGREEMENT);
        assert_eq!(v.step, 7);
        for part in ["value abababababababab in round 0", "value cdcdcdcdcdcdcdcd in round 2", "CandidateId(1)"] {
            assert!(v.detail.contains(part), "{part:?} missing from {:?}", v.detail);
        }
    }

    #[test]
    fn agreement_accepts_one_value_decided_in_different_rounds() {
        // Tendermint's agreement is on the value: deciding it in two rounds is fine.
        let a = record(Some(0xab), Some(0), chose(1));
        let b = record(Some(0xab), Some(1), chose(1));
        assert_eq!(agreement_after(&a, &b), None);
    }

    #[test]
    fn agreement_without_values_compares_outcomes() {
        // The local-fallback mutation decides without a value.
        let same = agreement_after(&record(None, None, chose(0)), &record(None, None, chose(0)));
        assert_eq!(same, None);
        let v = agreement_after(&record(None, None, chose(0)), &record(None, None, chose(1)))
            .expect("different outcomes without values");
        assert!(v.detail.contains("no value without a round"), "{}", v.detail);
        // One side with a value, the other without: outcomes decide.
        assert_eq!(agreement_after(&record(Some(1), Some(0), chose(0)), &record(None, None, chose(0))), None);
        assert!(agreement_after(&record(Some(1), Some(0), chose(0)), &record(None, None, chose(1))).is_some());
    }

    #[test]
    fn promises_follow_quorum_arithmetic() {
        // n = 5: q = 4, 2q − n = 3: agreement holds with up to 2 Byzantine agents.
        assert_eq!(Promises::of(5, 1), Promises { agreement: true, unanimity_validity: true });
        assert_eq!(Promises::of(5, 2), Promises { agreement: true, unanimity_validity: false });
        assert_eq!(Promises::of(5, 3), Promises { agreement: false, unanimity_validity: false });
        // n = 4: q = 3, 2q − n = 2.
        assert_eq!(Promises::of(4, 1), Promises { agreement: true, unanimity_validity: true });
        assert_eq!(Promises::of(4, 2), Promises { agreement: false, unanimity_validity: false });
    }
}
