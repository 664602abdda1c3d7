//! The oracle: named invariants, checked at the step where each can first fail.
//!
//! | invariant | checked when | meaning |
//! |---|---|---|
//! | `agreement` | an honest agent decides | no two honest agents decide different values (vote set and outcome: the value id) for one session; decisions without a value (the local-fallback mutation) are compared by outcome |
//! | `integrity` | an honest agent decides | an honest agent decides a session at most once |
//! | `external-validity` | an honest agent decides | the decision's spec is the client's signed spec of the session (one the client opened it with), and it carries ≥ q distinct, correctly signed, session-bound votes of the session's committee, and its outcome is the engine's aggregate of them; signatures are verified over the oracle's own encoding of the signing format ([`signing`]), never `wire`'s |
//! | `unanimity-validity` | an honest agent decides | if every honest agent that voted accepted candidate X, a decided candidate is X |
//! | `support-validity` | an honest agent decides | a decided candidate has ≥ f + 1 accepting votes (distinct agents) in the certified vote set, f = f_max of the session's committee, so at least one honest supporter (docs/protocol.md V9–V10) |
//! | `threshold` | an honest agent decides | a `threshold` / `early-unanimous` decision has agreement ≥ the configured threshold |
//! | `liveness` | the run ends, if the scenario promises it | every honest agent that is up decided every session by the bound |
//! | `influence-bound` | the honest votes of a decided session are all in | a candidate other than the best that the Byzantine agents made the decision has an honest margin of at most [`influence_bound`] (docs/protocol.md, "What a Byzantine proposer can still do") |
//! | `acknowledged-durable` | the opener acknowledges a session or restarts, an honest agent decides | an acknowledged session is never lost and its id never reused for another query |
//! | `no-equivocation-across-restarts` | an honest agent's own signed message leaves it | it never signs two different messages for one (session, round, kind), across restarts |
//! | `corruption-detected` | an agent restarts on a disk the simulator damaged | a damaged record is refused or cut, never replayed as whole |
//! | `catch-up` | every step, if the scenario promises liveness | a restarted honest agent decides every session an honest agent decided, within `expect.catch_up_ms` |
//! | `honest-proposal-valid` | an honest proposer's proposal leaves it, if agreement is promised | the proposal carries its proposer's signature and the value passes V1–V7 against the session's registry epoch ([`proposal`]), signatures verified over [`signing`] |
//! | `timely-proposal` | an honest proposer's nil prevote leaves it, in the judged class ([`timely`]) | after GST an honest proposer does not let its round's propose timeout expire without proposing later than the design's wait for votes, vote collection and the deadline allows |
//! | `evidence-sound` | an honest agent emits evidence ([`evidence`]) | it never convicts an honest agent; the two votes or round votes it carries are of one signer, session (round, kind), differ, and are both validly signed (signing bytes the oracle encodes itself); two different validly signed proposals of the convicted proposer for the round were delivered |
//! | `equivocation-detected` | an honest agent's next input after a delivery, in the judged class ([`evidence`]) | an honest agent delivered two conflicting validly signed votes (L9), round votes of one (round, kind) (L32) or proposals of one round (L22) of a committee member emits evidence for them |
//! | `round-skip` | an honest agent's first round vote in a new round leaves it | it does not vote in a new round r while it certainly kept votes of one later round from f + 1 honest agents (L54–L55 start that round first; [`skip`]) |
//! | `lock-respected` | an honest agent's first prevote for a value in a round leaves it, if agreement is promised ([`locks`]) | an agent locked on another value (its own precommit) prevotes it only for a proposal of the round with a valid round vr ≥ its lock round and q prevotes for (vr, id(v)) it holds (L22–L28) |
//! | `valid-value` | an honest proposer's first proposal of a round leaves it, if agreement is promised ([`locks`]) | a re-proposal's valid round is below the round and at least the proposer's lock round, and its polka certificate holds q signed prevotes of distinct members for it; a locked proposer re-proposes (L15, L39–L41) |
//! | `step-justified` | an honest agent's first nil precommit of a round or first fresh proposal leaves it ([`steps`]) | a nil precommit has q nil prevotes of the round held (L44–L45) or q prevotes held for `timeout_prevote(r)` (L34–L35, L58–L59, L75); a fresh proposal with fewer than n votes has ≥ q, is unanimous before vote collection ends (L16–L17) and a decision by the threshold before the deadline (L16b–L16c) |
//! | `step-timely` | an honest agent's first precommit of a round leaves it ([`steps`]) | once it is in the prevote step holding q honest prevotes for nil (L44–L45) or for its own prevote's value (L36–L40), it precommits in that step |
//! | `sync-serve-rate` | an honest agent's answer to a `Sync` leaves it ([`rates`]) | it serves one asker at most 8 batches per retransmit interval and never a repeat of the last `Sync(next)` served it within the interval (L72–L73, L78: the amplification bound against a flooding peer) |
//! | `sync-requests` | every step of an honest agent ([`asks`]) | the `Sync`s it sends are those L70–L71, L76 and L80 send: a status tick asks the next member in turn for what it lacks, a session whose spec it lost is asked of the committee's members in turn, a chase asks for the next batch once the last is applied, again after Δ, then the next member, and stops after 3 intervals without progress |
//!
//! The durability invariants live in [`durability`]; an agent that restarts may decide again a
//! session whose decision its lost unsynced log tail forgot (the same value: agreement still
//! checks it), which is not an `integrity` violation.
//!
//! Beyond f_max Byzantine agents not everything is promised ([`Promises`]): agreement only
//! while the Byzantine agents are fewer than the quorum intersection `2q − n`, unanimity
//! validity and liveness not at all. The invariants not promised are not checked.
//!
//! Byzantine influence (a measurement, [`crate::influence`]): at a session's first honest
//! decision the oracle also runs the engine on the honest agents' own votes alone (against the
//! same registry epoch) and keeps that [`Verdict`]; a session whose decision differs from it
//! was changed by the Byzantine agents ([`Oracle::influenced`]). Its bound is an invariant.
//!
//! The oracle keeps its own reference registry, applying each session's first decision in
//! session order exactly as agents do, so external validity is re-checked against the same
//! epoch the agents used, independently of any agent's state.

use std::collections::{BTreeMap, BTreeSet};

use consensus_core::protocol::messages::{SessionSpec, SignedSpec};
use consensus_core::protocol::{
    recompute, AgreedOutcome, Committee, DecisionRecord, Message, Mutation, Output, ProposalMode, ProtocolConfig,
    Round, RoundVote, ValueId,
};
use consensus_core::registry::{Registry, SessionRecord};
use consensus_core::sign::SimKeyring;
use consensus_core::types::{AgentVote, ConsensusMethod, VoteValue};
use consensus_core::{AgentId, CandidateId, EngineConfig, SessionId, TimeMs};

pub mod asks;
mod decide;
pub mod durability;
mod evidence;
mod locks;
mod proposal;
pub mod rates;
pub mod signing;
mod skip;
mod steps;
pub mod timely;
pub use crate::influence::Verdict;
use crate::influence::{fallback_bound, influence_bound, margin, HonestReference};
use crate::words;

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
    /// A wrong decision the Byzantine agents caused has an honest margin within the bound.
    pub const INFLUENCE_BOUND: &str = "influence-bound";
    /// An honest proposer's value passes V1–V7.
    pub const HONEST_PROPOSAL_VALID: &str = "honest-proposal-valid";
    /// An honest proposer proposes by the design's point after GST.
    pub const TIMELY_PROPOSAL: &str = "timely-proposal";
    /// Evidence an honest agent emits convicts a Byzantine agent of a real equivocation.
    pub const EVIDENCE_SOUND: &str = "evidence-sound";
    /// An honest agent delivered an equivocation emits evidence for it.
    pub const EQUIVOCATION_DETECTED: &str = "equivocation-detected";
    /// An honest agent holding votes of a later round from f + 1 agents starts it (L54–L55).
    pub const ROUND_SKIP: &str = "round-skip";
    /// An honest agent serves a peer's `Sync`s within the protocol's rate.
    pub const SYNC_SERVE_RATE: &str = "sync-serve-rate";
    /// An honest agent asks for certificates whom and when L70–L71, L76 and L80 say.
    pub const SYNC_REQUESTS: &str = "sync-requests";
    /// An honest agent's prevote respects its lock (L22–L28).
    pub const LOCK_RESPECTED: &str = "lock-respected";
    /// An honest proposer re-proposes its valid value with its polka certificate (L15).
    pub const VALID_VALUE: &str = "valid-value";
    /// An honest agent's nil precommits and fresh proposals are allowed when it signs them
    /// (L16–L17, L16b, L34–L35, L44–L45, L58–L59, L75).
    pub const STEP_JUSTIFIED: &str = "step-justified";
    /// An honest agent in the prevote step holding q prevotes for nil or its own prevote's
    /// value precommits in that step (L36–L40, L44–L45).
    pub const STEP_TIMELY: &str = "step-timely";
    /// All of them.
    pub const ALL: [&str; 23] = [
        AGREEMENT,
        INTEGRITY,
        EXTERNAL_VALIDITY,
        UNANIMITY_VALIDITY,
        SUPPORT_VALIDITY,
        THRESHOLD,
        LIVENESS,
        INFLUENCE_BOUND,
        ACKNOWLEDGED_DURABLE,
        NO_EQUIVOCATION_ACROSS_RESTARTS,
        CORRUPTION_DETECTED,
        CATCH_UP,
        HONEST_PROPOSAL_VALID,
        TIMELY_PROPOSAL,
        EVIDENCE_SOUND,
        EQUIVOCATION_DETECTED,
        ROUND_SKIP,
        SYNC_SERVE_RATE,
        SYNC_REQUESTS,
        LOCK_RESPECTED,
        VALID_VALUE,
        STEP_JUSTIFIED,
        STEP_TIMELY,
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
    /// The influence bound: at most f_max Byzantine agents.
    pub influence_bound: bool,
    /// A restarted opener still holds every acknowledged session not decided
    /// (`acknowledged-durable`, its "lost" part): at most f_max Byzantine agents, because the
    /// client counts a session decided once f + 1 agents send it a certificate, so f + 1
    /// Byzantine agents can make it forget one. An acknowledged id is never reused in any run.
    pub opener_keeps_pending: bool,
}

impl Promises {
    /// What a committee of `n` with `byzantine` faulty agents promises.
    pub fn of(n: u64, byzantine: u64) -> Promises {
        let f_max = n.saturating_sub(1) / 3;
        let q = consensus_core::quorum::quorum(n, f_max).unwrap_or(n);
        let intersection = (2 * q).saturating_sub(n);
        let within = byzantine <= f_max;
        Promises {
            agreement: byzantine < intersection,
            unanimity_validity: within,
            influence_bound: within,
            opener_keeps_pending: within,
        }
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

/// A wrong decision the Byzantine agents caused beyond the influence bound.
struct BeyondBound {
    best: CandidateId,
    margin: i64,
    bound: u64,
    n: u64,
    b: u64,
    outcome: String,
}

/// An honest agent's own vote, as the oracle keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HonestVote {
    /// The candidate it accepted (at any confidence), for unanimity validity.
    accepted: Option<CandidateId>,
    /// The candidate it supports (an accept at or above its confidence threshold, as the
    /// engine counts it), for the honest margin.
    supports: Option<CandidateId>,
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
    honest_votes: BTreeMap<SessionId, BTreeMap<AgentId, HonestVote>>,
    /// The engine's verdict on the honest votes alone, per decided session; `None` in runs
    /// without Byzantine agents (there is nothing to influence).
    reference: Option<HonestReference>,
    /// The best candidate per session (the ground truth), for the influence bound.
    best: BTreeMap<SessionId, CandidateId>,
    violation: Option<Violation>,
    promises: Promises,
    /// `expect.liveness_rounds`, when the run promises liveness.
    liveness_rounds: Option<u64>,
    /// The durability invariants.
    durable: durability::DurableChecks,
    /// Honest proposals already judged by `honest-proposal-valid`.
    proposals_checked: BTreeSet<proposal::Checked>,
    /// `timely-proposal`'s terms and judged sessions.
    timely: timely::Timely,
    /// `evidence-sound` and `equivocation-detected`.
    evidence: evidence::EvidenceChecks,
    /// Every specification the client signed and sent, per session ([`Oracle::on_client_spec`]).
    client_specs: BTreeMap<SessionId, Vec<SessionSpec>>,
    /// The run reports the client's specs: a decided spec must be one of them.
    client_specs_reported: bool,
    /// What `round-skip` saw delivered and voted.
    skip: skip::RoundSkip,
    /// `sync-serve-rate`'s state.
    rates: rates::ServeRates,
    /// `sync-requests`' state.
    asks: asks::Requests,
    /// The active agents, while they never changed (`sync-requests` judges the turn only then).
    active: Option<Vec<AgentId>>,
    /// Per honest agent, its peers in turn (the active agents but itself and the client).
    peers: BTreeMap<AgentId, Vec<AgentId>>,
    /// What `lock-respected` and `valid-value` know of locks, proposals and prevotes.
    locks: locks::Locks,
    /// What `step-justified` and `step-timely` saw delivered and sent.
    steps: steps::Steps,
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
        let byzantine = registry.active().filter(|r| !honest.contains(&r.id)).count() as u64;
        let reference = (byzantine > 0).then(|| HonestReference::new(engine, honest.len()));
        let active = registry.active().map(|a| a.id).collect();
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
            reference,
            best: BTreeMap::new(),
            violation: None,
            promises: Promises {
                agreement: true,
                unanimity_validity: true,
                influence_bound: true,
                opener_keeps_pending: true,
            },
            liveness_rounds: None,
            durable: durability::DurableChecks::default(),
            proposals_checked: BTreeSet::new(),
            timely: timely::Timely::default(),
            rates: rates::ServeRates::default(),
            asks: asks::Requests::default(),
            active: Some(active),
            peers: BTreeMap::new(),
            skip: skip::RoundSkip::default(),
            locks: locks::Locks::default(),
            steps: steps::Steps::default(),
            evidence: evidence::EvidenceChecks::default(),
            client_specs: BTreeMap::new(),
            client_specs_reported: false,
        }
    }

    /// The client signed and sends `spec` (an `Open`, first or again): a decided value's spec
    /// must be one of these for its session (`external-validity`). Once called, every decision
    /// is held to it.
    pub fn on_client_spec(&mut self, spec: &SignedSpec) {
        self.client_specs_reported = true;
        let specs = self.client_specs.entry(spec.spec.session).or_default();
        if !specs.contains(&spec.spec) {
            specs.push(spec.spec.clone());
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
        if !self.promises.opener_keeps_pending {
            return;
        }
        let decided = |s: SessionId| self.first.contains_key(&s);
        let found = self.durable.on_opener_restart(pending, decided);
        self.found(found, step, now);
    }

    /// An honest agent's own signed message left it (`no-equivocation-across-restarts`).
    pub fn on_signed(&mut self, agent: AgentId, signed: durability::Signed, step: u64, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        self.check_timely(agent, &signed, step, now);
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
        self.evidence.on_down(agent);
        self.round_skip_on_restart(agent);
        self.steps_on_restart(agent);
        self.locks_on_restart(agent);
        self.rates.on_restart(agent);
        self.asks.on_restart(agent);
    }

    /// One step of an honest agent: its input and outputs (`sync-requests`, [`asks`]).
    pub fn on_agent_step(
        &mut self,
        agent: AgentId,
        input: asks::StepInput,
        outputs: &[Output],
        step: u64,
        now: TimeMs,
    ) {
        if !self.honest.contains(&agent) {
            return;
        }
        let client = self.protocol.client;
        let peers = match &self.active {
            Some(active) => Some(
                self.peers
                    .entry(agent)
                    .or_insert_with(|| active.iter().copied().filter(|a| *a != agent && *a != client).collect()),
            ),
            None => None,
        };
        let others = match input {
            asks::StepInput::Retransmit(session)
                if outputs
                    .iter()
                    .any(|o| matches!(o, Output::Send { message: Message::Sync { next }, .. } if *next == session)) =>
            {
                let epoch = session.0.saturating_add(1).saturating_sub(self.protocol.pipeline.max(1));
                self.epochs.get(&epoch).map(|r| {
                    Committee::of(r, self.protocol.mutation).members.into_iter().filter(|a| *a != agent).collect()
                })
            }
            _ => None,
        };
        let decided: Vec<u64> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Decide(record) => Some(record.session.0),
                _ => None,
            })
            .collect();
        let view = asks::StepView {
            peers: peers.map(|p| p.as_slice()),
            others,
            interval_ms: self.protocol.retransmit_ms,
            batch: self.protocol.sync_batch,
        };
        if let Some(detail) = self.asks.on_step(agent, input, outputs, &decided, now, &view) {
            self.violate(names::SYNC_REQUESTS, step, now, detail);
        }
    }

    /// An honest agent handled a `Sync` from a peer (`sync-serve-rate`): `seen.answered` when
    /// certificates or `Pruned` went back to the peer in that step.
    pub fn on_sync(&mut self, seen: rates::SyncSeen, step: u64, now: TimeMs) {
        if !self.honest.contains(&seen.agent) || seen.from == seen.agent || seen.from == self.protocol.client {
            return;
        }
        if let Some(detail) = self.rates.on_sync(seen, now, self.protocol.retransmit_ms) {
            self.violate(names::SYNC_SERVE_RATE, step, now, detail);
        }
    }

    /// `agent` crashed or stopped.
    pub fn on_down(&mut self, agent: AgentId) {
        self.durable.on_down(agent);
        self.evidence.on_down(agent);
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

    /// The best candidate of each session (the run's ground truth), for the influence bound.
    pub fn with_best(mut self, best: BTreeMap<SessionId, CandidateId>) -> Oracle {
        self.best = best;
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

    /// An honest agent's own vote (for unanimity validity, the honest margin and the honest
    /// reference), at trace `step`.
    pub fn on_local_vote(&mut self, agent: AgentId, vote: &AgentVote, step: u64, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        let accepted = matches!(vote.value, VoteValue::Accept { .. }).then_some(vote.candidate);
        let threshold = self.registry.get(agent).map(|r| r.confidence_threshold);
        let supports = accepted.filter(|_| threshold.is_some_and(|t| vote.confidence >= t));
        self.honest_votes.entry(vote.session).or_default().insert(agent, HonestVote { accepted, supports });
        let settled = self.reference.as_mut().is_some_and(|r| r.on_vote(agent, vote));
        if settled {
            self.check_influence_bound(vote.session, step, now);
        }
    }

    /// The engine's verdict on the honest agents' votes alone, for a decided session of a run
    /// with Byzantine agents.
    pub fn honest_reference(&self, session: SessionId) -> Option<Verdict> {
        self.reference.as_ref()?.verdict(session)
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

    /// The honest margin of `session`'s decision for `chosen`: honest votes supporting the best
    /// candidate minus those supporting `chosen` ([`crate::influence::margin`]). `None` when
    /// the best candidate is not known.
    /// Only the votes of the session's committee count (a quarantined agent's vote cannot be
    /// in a vote set), when its epoch is still kept.
    pub fn honest_margin(&self, session: SessionId, chosen: CandidateId) -> Option<i64> {
        let best = *self.best.get(&session)?;
        let members = self.epochs.get(&self.epoch_of(session)).map(|r| Committee::of(r, Mutation::None).members);
        let in_committee = |a: &AgentId| members.as_ref().is_none_or(|m| m.contains(a));
        let votes = self.honest_votes.get(&session).into_iter().flatten();
        Some(margin(votes.filter(|(a, _)| in_committee(a)).map(|(_, v)| v.supports), best, chosen))
    }

    /// Computes the references still waiting for honest votes (at the end of a run, at trace
    /// `step`: crashed or slow honest agents never voted), with the votes cast.
    pub fn settle(&mut self, step: u64, now: TimeMs) {
        let settled = self.reference.as_mut().map(HonestReference::settle_all).unwrap_or_default();
        for session in settled {
            self.check_influence_bound(session, step, now);
        }
    }

    /// The invariant `influence-bound`, once `session`'s reference is settled: a decision for
    /// a candidate other than the best that the Byzantine agents caused (the honest votes alone
    /// give another verdict) has an honest margin of at most [`influence_bound`]. Checked only
    /// within f_max and when agreement counts agents (the bound is on vote counts).
    fn check_influence_bound(&mut self, session: SessionId, step: u64, now: TimeMs) {
        let counts = self.reference.as_ref().is_some_and(HonestReference::counts_agents);
        if !self.promises.influence_bound || !counts {
            return;
        }
        let Some(beyond) = self.beyond_bound(session) else { return };
        let detail = format!(
            "{session} was decided for {} although {} more honest agents supported the best candidate {}: the \
             Byzantine agents ({} of {} agents) changed the outcome beyond the bound of {} honest votes",
            beyond.outcome, beyond.margin, beyond.best.0, beyond.b, beyond.n, beyond.bound
        );
        self.violate(names::INFLUENCE_BOUND, step, now, detail);
    }

    /// Whether `session`'s decision is a wrong decision the Byzantine agents caused with an
    /// honest margin above [`influence_bound`] (whatever the run promises).
    pub fn beyond_influence_bound(&self, session: SessionId) -> bool {
        self.beyond_bound(session).is_some()
    }

    /// The influence bound of `session`'s decision, if it is a wrong decision the Byzantine
    /// agents caused beyond it. Minority overrules are not bounded in votes (the design lets a
    /// strong minority with stronger evidence win), so they are never beyond it.
    fn beyond_bound(&self, session: SessionId) -> Option<BeyondBound> {
        if self.influenced(session) != Some(true) {
            return None;
        }
        let first = self.first.get(&session)?;
        let AgreedOutcome::Decided { chosen, method, .. } = &first.outcome else { return None };
        let best = self.best.get(&session).copied().filter(|b| b != chosen)?;
        let registry = self.epochs.get(&self.epoch_of(session))?;
        let members = Committee::of(registry, Mutation::None).members;
        let n = members.len() as u64;
        let b = members.iter().filter(|a| !self.honest.contains(a)).count() as u64;
        // The honest votes that can be in a vote set: those of this session's committee.
        let votes = self.honest_votes.get(&session)?;
        let active = votes.iter().filter(|(a, _)| members.contains(a)).map(|(_, v)| *v);
        let (margin, bound) = match method {
            ConsensusMethod::MinorityOverrule => return None,
            ConsensusMethod::TimeoutFallback => {
                (margin(active.map(|v| v.accepted), best, *chosen), fallback_bound(n, b))
            }
            _ => (margin(active.map(|v| v.supports), best, *chosen), influence_bound(n, b)),
        };
        (margin > bound as i64).then(|| BeyondBound {
            best,
            margin,
            bound,
            n,
            b,
            outcome: words::outcome(&first.outcome),
        })
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
            if self.active.as_ref().is_some_and(|a| !a.iter().copied().eq(self.registry.active().map(|r| r.id))) {
                self.active = None;
                self.peers.clear();
            }
            self.applied += 1;
            self.epochs.insert(self.applied, self.registry.clone());
            // Late deciders of recent sessions are still checked against their epoch.
            let keep_from = self.applied.saturating_sub(self.protocol.pipeline.max(1).max(EPOCHS_KEPT));
            self.epochs = self.epochs.split_off(&keep_from);
        }
    }

    /// An honest agent sent its own round vote of `round` in `session`, so it is in that round
    /// (or was): liveness in rounds (`expect.liveness_rounds`).
    /// Also judges `round-skip` ([`skip`]).
    pub fn on_own_round_vote(&mut self, agent: AgentId, vote: &RoundVote, step: u64, now: TimeMs) {
        if !self.honest.contains(&agent) {
            return;
        }
        self.steps_on_own_vote(agent, vote, step, now);
        self.round_skip_on_own_vote(agent, vote, step, now);
        self.locks_on_own_vote(agent, vote, step, now);
        let (session, round) = (vote.session, vote.round);
        self.evidence.on_own_round_vote(agent, session, round);
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

#[cfg(test)]
mod tests;
