//! The oracle: named invariants, checked at the step where each can first fail.
//!
//! | invariant | checked when | meaning |
//! |---|---|---|
//! | `agreement` | an honest agent decides | no two honest agents decide different values (vote set and outcome: the value id) for one session; decisions without a value (the local-fallback mutation) are compared by outcome |
//! | `integrity` | an honest agent decides | an honest agent decides a session at most once |
//! | `external-validity` | an honest agent decides | the decision carries ≥ q distinct, correctly signed, session-bound votes of the session's committee, and its outcome is the engine's aggregate of them |
//! | `unanimity-validity` | an honest agent decides | if every honest agent that voted accepted candidate X, a decided candidate is X |
//! | `support-validity` | an honest agent decides | a decided candidate has ≥ f + 1 accepting votes (distinct agents) in the certified vote set, f = f_max of the session's committee, so at least one honest supporter (docs/protocol.md V9–V10) |
//! | `threshold` | an honest agent decides | a `threshold` / `early-unanimous` decision has agreement ≥ the configured threshold |
//! | `liveness` | the run ends, if the scenario promises it | every honest agent that is up decided every session by the bound |
//! | `acknowledged-durable` | the opener acknowledges a session or restarts, an honest agent decides | an acknowledged session is never lost and its id never reused for another query |
//! | `no-equivocation-across-restarts` | an honest agent's own signed message leaves it | it never signs two different messages for one (session, round, kind), across restarts |
//! | `corruption-detected` | an agent restarts on a disk the simulator damaged | a damaged record is refused or cut, never replayed as whole |
//! | `catch-up` | every step, if the scenario promises liveness | a restarted honest agent decides every session an honest agent decided, within `expect.catch_up_ms` |
//!
//! The durability invariants live in [`durability`]; an agent that restarts may decide again a
//! session whose decision its lost unsynced log tail forgot (the same value: agreement still
//! checks it), which is not an `integrity` violation.
//!
//! Beyond f_max Byzantine agents not everything is promised ([`Promises`]): agreement only
//! while the Byzantine agents are fewer than the quorum intersection `2q − n`, unanimity
//! validity and liveness not at all. The invariants not promised are not checked.
//!
//! Byzantine influence (not an invariant, a measurement): at a session's first honest
//! decision the oracle also runs the engine on the honest agents' own votes alone (those cast
//! so far, against the same registry epoch) and keeps that [`Verdict`]; a session whose
//! decision differs from it was changed by the Byzantine agents ([`Oracle::influenced`]).
//!
//! The oracle keeps its own reference registry, applying each session's first decision in
//! session order exactly as agents do, so external validity is re-checked against the same
//! epoch the agents used, independently of any agent's state.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::aggregate::{aggregate, SessionInput};
use consensus_core::policies::fallback_consensus;
use consensus_core::protocol::{
    recompute, AgreedOutcome, Committee, DecisionRecord, Mutation, ProposalMode, ProtocolConfig, Round, ValueId,
};
use consensus_core::registry::{Registry, SessionRecord};
use consensus_core::sign::{SimKeyring, Verifier};
use consensus_core::types::{AgentVote, ConsensusMethod, Decision, VoteValue};
use consensus_core::{wire, AgentId, CandidateId, EngineConfig, SessionId, TimeMs};

pub mod durability;

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
    /// A decided candidate has f + 1 accepting votes in its certified vote set.
    pub const SUPPORT_VALIDITY: &str = "support-validity";
    /// Threshold decisions reach the threshold.
    pub const THRESHOLD: &str = "threshold";
    /// Every honest agent decides every session in time.
    pub const LIVENESS: &str = "liveness";
    /// An acknowledged session is never lost and its id never reused.
    pub const ACKNOWLEDGED_DURABLE: &str = "acknowledged-durable";
    /// An honest agent never signs two different messages for one (session, round, kind).
    pub const NO_EQUIVOCATION_ACROSS_RESTARTS: &str = "no-equivocation-across-restarts";
    /// A damaged log record is detected, never silently replayed.
    pub const CORRUPTION_DETECTED: &str = "corruption-detected";
    /// A restarted agent catches up within the bound.
    pub const CATCH_UP: &str = "catch-up";
    /// All of them.
    pub const ALL: [&str; 11] = [
        AGREEMENT,
        INTEGRITY,
        EXTERNAL_VALIDITY,
        UNANIMITY_VALIDITY,
        SUPPORT_VALIDITY,
        THRESHOLD,
        LIVENESS,
        ACKNOWLEDGED_DURABLE,
        NO_EQUIVOCATION_ACROSS_RESTARTS,
        CORRUPTION_DETECTED,
        CATCH_UP,
    ];
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

/// What a session came to, coarsely: a candidate, or none (escalated or agreed "no decision").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Decided for this candidate.
    Decided(CandidateId),
    /// Escalated or no decision.
    Unresolved,
}

impl Verdict {
    /// The verdict of an agreed outcome.
    pub fn of(outcome: &AgreedOutcome) -> Verdict {
        outcome.chosen().map_or(Verdict::Unresolved, Verdict::Decided)
    }
}

/// What a session's honest-votes reference needs once its honest votes are in.
struct Pending {
    registry: Registry,
    candidates: Vec<CandidateId>,
    mode: ProposalMode,
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
    /// The honest agents' own votes, per session, until the session's first decision.
    honest_ballots: BTreeMap<SessionId, BTreeMap<AgentId, AgentVote>>,
    /// Per decided session: the engine's verdict on the honest votes alone (runs with
    /// Byzantine agents only).
    references: BTreeMap<SessionId, Verdict>,
    /// Decided sessions whose reference waits for honest votes.
    pending: BTreeMap<SessionId, Pending>,
    /// Whether the committee has Byzantine agents (else there is nothing to influence).
    faulty: bool,
    violation: Option<Violation>,
    promises: Promises,
    /// `expect.liveness_rounds`, when the run promises liveness.
    liveness_rounds: Option<u64>,
    /// The durability invariants.
    durable: durability::DurableChecks,
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
        let faulty = registry.active().any(|r| !honest.contains(&r.id));
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
            honest_ballots: BTreeMap::new(),
            references: BTreeMap::new(),
            pending: BTreeMap::new(),
            faulty,
            violation: None,
            promises: Promises { agreement: true, unanimity_validity: true },
            liveness_rounds: None,
            durable: durability::DurableChecks::default(),
        }
    }

    /// Checks `catch-up` with `(expect.catch_up_ms, the run's last fault)`, when the run
    /// promises liveness.
    pub fn with_catch_up(mut self, catch_up: Option<(TimeMs, TimeMs)>) -> Oracle {
        self.durable = std::mem::take(&mut self.durable).with_catch_up(catch_up);
        self
    }

    fn found(&mut self, found: Option<durability::Found>, step: u64, now: TimeMs) {
        if let Some((invariant, detail)) = found {
            self.violate(invariant, step, now, detail);
        }
    }

    /// The opener acknowledged `session` for `query` (`acknowledged-durable`).
    pub fn on_acknowledged(&mut self, session: SessionId, query: &str, step: u64, now: TimeMs) {
        let found = self.durable.on_acknowledged(session, query);
        self.found(found, step, now);
    }

    /// Acknowledged sessions and their queries.
    pub fn acknowledged(&self) -> &BTreeMap<SessionId, String> {
        self.durable.acknowledged()
    }

    /// The opener restarted holding the sessions `pending` says (`acknowledged-durable`).
    pub fn on_opener_restart(&mut self, pending: impl Fn(SessionId) -> bool, step: u64, now: TimeMs) {
        let decided = |s: SessionId| self.first.contains_key(&s);
        let found = self.durable.on_opener_restart(pending, decided);
        self.found(found, step, now);
    }

    /// An honest agent's own signed message left it (`no-equivocation-across-restarts`).
    pub fn on_signed(&mut self, agent: AgentId, signed: durability::Signed, step: u64, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        let found = self.durable.on_signed(agent, signed);
        self.found(found, step, now);
    }

    /// `agent` restarted with what its log held at `now`.
    pub fn on_restart(&mut self, agent: AgentId, now: TimeMs) {
        let undecided: Vec<(SessionId, TimeMs)> = self
            .decisions
            .iter()
            .filter(|(_, d)| !d.contains_key(&agent))
            .filter_map(|(s, d)| d.values().map(|x| x.at_ms).min().map(|t| (*s, t)))
            .collect();
        let honest = self.honest.contains(&agent);
        self.durable.on_restart(agent, now, honest, &undecided);
    }

    /// `agent` crashed or stopped.
    pub fn on_down(&mut self, agent: AgentId) {
        self.durable.on_down(agent);
    }

    /// A violation of `invariant` found by the simulator around the oracle (a damaged record
    /// replayed: `corruption-detected`).
    pub fn report(&mut self, invariant: &'static str, step: u64, now: TimeMs, detail: String) {
        self.violate(invariant, step, now, detail);
    }

    /// `catch-up`, at every step: an obligation past its deadline.
    pub fn check_catch_up(&mut self, step: u64, now: TimeMs) {
        let found = self.durable.overdue(now);
        self.found(found, step, now);
    }

    /// Checks liveness in rounds as well: an honest agent that enters round `rounds` of a
    /// session it has not decided violates it (`expect.liveness_rounds`).
    pub fn with_liveness_rounds(mut self, rounds: Option<u64>) -> Oracle {
        self.liveness_rounds = rounds;
        self
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
        if self.faulty && !self.references.contains_key(&vote.session) {
            self.honest_ballots.entry(vote.session).or_default().insert(agent, vote.clone());
            if self.pending.contains_key(&vote.session) {
                self.settle_if_complete(vote.session);
            }
        }
    }

    /// The engine's verdict on the honest agents' votes alone, for a decided session of a run
    /// with Byzantine agents.
    pub fn honest_reference(&self, session: SessionId) -> Option<Verdict> {
        self.references.get(&session).copied()
    }

    /// Whether the Byzantine agents changed `session`'s outcome (after [`Oracle::settle`] for
    /// sessions some honest agent never voted in; sessions with fewer than q honest votes are
    /// not judged): its first honest decision
    /// (another candidate, or a candidate where the honest votes give none, or the reverse)
    /// differs from the engine's verdict on the honest votes alone. `None` for undecided
    /// sessions and runs without Byzantine agents.
    pub fn influenced(&self, session: SessionId) -> Option<bool> {
        let reference = self.honest_reference(session)?;
        let first = self.first.get(&session)?;
        Some(Verdict::of(&first.outcome) != reference)
    }

    /// At a session's first decision: its reference is computed once every honest agent has
    /// voted (at once if they all have, else when the last honest vote comes in, or at
    /// [`Oracle::settle`]), against the session's epoch, kept until then.
    fn start_reference(&mut self, record: &DecisionRecord) {
        let Some(registry) = self.epochs.get(&self.epoch_of(record.session)) else { return };
        let pending =
            Pending { registry: registry.clone(), candidates: record.spec.spec.candidates.clone(), mode: record.mode };
        self.pending.insert(record.session, pending);
        self.settle_if_complete(record.session);
    }

    fn settle_if_complete(&mut self, session: SessionId) {
        let voted = self.honest_ballots.get(&session).map_or(0, BTreeMap::len);
        if voted >= self.honest.len() {
            self.settle_session(session);
        }
    }

    /// Computes the references still waiting for honest votes (at the end of a run: crashed or
    /// slow honest agents never voted), with the votes cast.
    pub fn settle(&mut self) {
        let sessions: Vec<SessionId> = self.pending.keys().copied().collect();
        for session in sessions {
            self.settle_session(session);
        }
    }

    /// The engine on the honest votes of `session`, the way the protocol would decide them:
    /// normal mode, then the fallback when the decision was a fallback one.
    fn settle_session(&mut self, session: SessionId) {
        let Some(pending) = self.pending.remove(&session) else { return };
        let ballots = self.honest_ballots.remove(&session).unwrap_or_default();
        let votes: Vec<AgentVote> = ballots.into_values().collect();
        // Fewer than q honest votes (honest agents crashed, or still evaluating when the run
        // ended): the honest votes alone say nothing yet, so the session is not judged.
        let active = pending.registry.active().count() as u64;
        let q = consensus_core::quorum::quorum_for(active).unwrap_or(u64::MAX);
        if (votes.len() as u64) < q {
            return;
        }
        let input = SessionInput { session, candidates: &pending.candidates, votes: &votes };
        let mut verdict = match aggregate(&input, &pending.registry, &self.engine).outcome {
            Ok(Decision::Decided(r)) => Verdict::Decided(r.chosen),
            _ => Verdict::Unresolved,
        };
        if verdict == Verdict::Unresolved && pending.mode == ProposalMode::Fallback {
            if let Ok(r) = fallback_consensus(session, &votes) {
                verdict = Verdict::Decided(r.chosen);
            }
        }
        self.references.insert(session, verdict);
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
        // Deciding again after a restart whose log lost the first decision is not a second
        // decision (agreement still compares the values).
        if previous.is_some_and(|p| !self.durable.restarted_after(agent, p.at_ms)) {
            self.violate(names::INTEGRITY, step, now, format!("{agent} decided {session} a second time"));
        }
        let first = !self.first.contains_key(&session);
        let found = self.durable.on_decide(agent, session, &record.spec.spec.query, first, now);
        self.found(found, step, now);
        if self.promises.agreement {
            self.check_agreement(agent, record, step, now);
        }
        self.check_external_validity(agent, record, step, now);
        if self.promises.unanimity_validity {
            self.check_unanimity(agent, record, step, now);
        }
        self.check_threshold(agent, record, step, now);
        self.check_support(agent, record, step, now);
        if let std::collections::btree_map::Entry::Vacant(first) = self.first.entry(session) {
            first.insert(record.clone());
            if self.faulty {
                self.start_reference(record);
            }
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

    /// V9–V10: a decided candidate has at least f + 1 accepting votes from distinct agents in
    /// the certified vote set (f = f_max of the session's committee), so one is honest.
    fn check_support(&mut self, agent: AgentId, record: &DecisionRecord, step: u64, now: TimeMs) {
        let Some(chosen) = record.outcome.chosen() else { return };
        if record.value.is_none() {
            // The local-fallback mutation decides without a certified vote set.
            return;
        }
        let Some(registry) = self.epochs.get(&self.epoch_of(record.session)) else { return };
        let n = Committee::of(registry, Mutation::None).members.len() as u64;
        let f = consensus_core::quorum::f_max(n);
        let supporters: BTreeSet<AgentId> = record
            .votes
            .iter()
            .filter(|v| v.vote.candidate == chosen && matches!(v.vote.value, VoteValue::Accept { .. }))
            .map(|v| v.vote.agent)
            .collect();
        if (supporters.len() as u64) <= f {
            let detail = format!(
                "{agent} decided {chosen} in {} with {} accepting vote(s) of {} in its vote set; f + 1 = {} needed",
                record.session,
                supporters.len(),
                record.votes.len(),
                f + 1
            );
            self.violate(names::SUPPORT_VALIDITY, step, now, detail);
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

    /// An honest agent sent its own round vote of `round` in `session`, so it is in that round
    /// (or was): liveness in rounds (`expect.liveness_rounds`).
    pub fn on_own_round_vote(&mut self, agent: AgentId, session: SessionId, round: Round, step: u64, now: TimeMs) {
        let Some(bound) = self.liveness_rounds else { return };
        if u64::from(round) < bound || !self.honest.contains(&agent) {
            return;
        }
        if self.decisions.get(&session).is_some_and(|d| d.contains_key(&agent)) {
            return;
        }
        let detail =
            format!("{agent} entered round {round} of {session} without deciding it (liveness bound {bound} rounds)");
        self.violate(names::LIVENESS, step, now, detail);
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
    use consensus_core::protocol::messages::{SessionSpec, SignedSpec, SignedVote, ValueId};
    use consensus_core::sign::{sim_committee, Signature, Signer};
    use consensus_core::{AgentSpecialization, Ppm};

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
    fn liveness_in_rounds_fails_an_honest_undecided_agent_at_the_bound_round() {
        let session = SessionId(3);
        let mut honest = oracle(4).with_liveness_rounds(Some(5));
        honest.honest.remove(&AgentId(2));
        honest.on_own_round_vote(AgentId(0), session, 4, 1, 100);
        assert_eq!(honest.violation(), None, "round 4 is below the bound of 5 rounds");
        honest.on_own_round_vote(AgentId(2), session, 9, 2, 110);
        assert_eq!(honest.violation(), None, "a Byzantine agent's rounds prove nothing");
        let seen =
            SeenDecision { value: None, round: Some(1), outcome: chose(0), mode: ProposalMode::Normal, at_ms: 5 };
        honest.decisions.entry(session).or_default().insert(AgentId(1), seen);
        honest.on_own_round_vote(AgentId(1), session, 7, 3, 120);
        assert_eq!(honest.violation(), None, "agent 1 decided the session");
        honest.on_own_round_vote(AgentId(0), session, 5, 4, 130);
        let v = honest.violation().expect("agent 0 entered round 5 undecided");
        assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::LIVENESS, 4, 130));
        assert!(v.detail.contains("round 5 of session-3"), "{}", v.detail);

        let mut off = oracle(4);
        off.on_own_round_vote(AgentId(0), session, 1_000, 1, 100);
        assert_eq!(off.violation(), None, "no round bound unless the scenario sets one");
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

    /// A decision of session 0 for candidate 1 by a committee of 7 (f = 2), whose vote set
    /// holds `for_one` accepting votes for candidate 1 and accepts of candidate 0 otherwise.
    fn decision(for_one: u32) -> (Oracle, DecisionRecord) {
        let engine = EngineConfig::default();
        let keys = sim_committee(7, 7);
        let registry = Registry::seed_committee(7, &engine);
        let session = SessionId(0);
        let votes = (0..7u32)
            .map(|i| {
                let candidate = CandidateId(u32::from(i >= 7 - for_one));
                let vote = AgentVote::accept(
                    AgentId(i),
                    AgentSpecialization::cycled(i as usize),
                    session,
                    candidate,
                    Ppm::saturating(900_000),
                    Ppm::saturating(950_000),
                );
                let signature = keys.agents[i as usize].sign(&wire::vote_signing_bytes(&vote));
                SignedVote { vote, signature }
            })
            .collect();
        let spec =
            SessionSpec { session, query: "q".into(), candidates: vec![CandidateId(0), CandidateId(1)], opened_ms: 0 };
        let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
        let record = DecisionRecord {
            session,
            round: Some(0),
            value: Some(ValueId([0; 32])),
            outcome: AgreedOutcome::Decided {
                chosen: CandidateId(1),
                method: ConsensusMethod::MinorityOverrule,
                agreement: Ppm::saturating(285_714),
                byzantine: Vec::new(),
            },
            mode: ProposalMode::Normal,
            votes,
            spec: SignedSpec { spec, signature },
            at_ms: 10,
        };
        let honest = (0..7).map(AgentId).collect();
        (Oracle::new(keys.keyring, registry, engine, ProtocolConfig::default(), honest), record)
    }

    /// The support-validity checker can fail: a decision carried by f = 2 accepting votes (the
    /// design's minority overrule by two colluders of seven) is reported, f + 1 = 3 is not.
    #[test]
    fn support_validity_reports_a_candidate_carried_by_f_votes() {
        let (mut oracle, record) = decision(2);
        oracle.check_support(AgentId(0), &record, 5, 10);
        let v = oracle.violation().unwrap_or_else(|| panic!("no violation"));
        assert_eq!(v.invariant, names::SUPPORT_VALIDITY);
        assert!(v.detail.contains("2 accepting vote(s) of 7"), "{}", v.detail);
        let (mut oracle, record) = decision(3);
        oracle.check_support(AgentId(0), &record, 5, 10);
        assert_eq!(oracle.violation(), None);
        // Through on_decide the external-validity check comes first: the claimed overrule is
        // not what the engine computes from these votes.
        let (mut oracle, record) = decision(2);
        oracle.on_decide(AgentId(0), &record, 5, 10);
        assert_eq!(oracle.violation().map(|v| v.invariant.as_str()), Some(names::EXTERNAL_VALIDITY));
    }

    #[test]
    fn influence_compares_the_decision_with_the_honest_votes_alone() {
        // Agents 5 and 6 Byzantine; the honest votes (0..5) accept candidate 0 unanimously.
        let (oracle, mut record) = decision(2);
        let honest: BTreeSet<AgentId> = (0..5).map(AgentId).collect();
        let mut oracle =
            Oracle::new(oracle.keyring.clone(), oracle.registry.clone(), oracle.engine, oracle.protocol, honest);
        for v in &record.votes {
            oracle.on_local_vote(v.vote.agent, &v.vote);
        }
        // The decision claims candidate 1: influenced.
        record.outcome = AgreedOutcome::Decided {
            chosen: CandidateId(1),
            method: ConsensusMethod::Threshold,
            agreement: Ppm::ONE,
            byzantine: Vec::new(),
        };
        oracle.on_decide(AgentId(0), &record, 1, 10);
        // Every honest agent had voted: settled at once.
        assert_eq!(oracle.honest_reference(SessionId(0)), Some(Verdict::Decided(CandidateId(0))));
        assert_eq!(oracle.influenced(SessionId(0)), Some(true));
        assert_eq!(oracle.influenced(SessionId(1)), None);
        // Without Byzantine agents nothing is measured.
        let (mut oracle, record) = decision(0);
        for v in &record.votes {
            oracle.on_local_vote(v.vote.agent, &v.vote);
        }
        oracle.on_decide(AgentId(0), &record, 1, 10);
        assert_eq!(oracle.influenced(SessionId(0)), None);
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
