//! V1–V8 of docs/protocol.md: whether a proposed value is valid, and `outcome(mode, votes)`
//! (V5–V6) that every agent recomputes.

use std::collections::BTreeMap;

use crate::aggregate::aggregate_borrowed;
use crate::config::{EngineConfig, FallbackPolicy};
use crate::conflict::Guards;
use crate::policies::fallback_consensus;
use crate::registry::{Registry, SessionRecord};
use crate::types::{AgentId, ConsensusError, Decision, SessionId};
use crate::wire;

use super::super::coverage::Point;
use super::super::messages::{AgreedOutcome, ProposalMode, ProposalValue, SignedSpec, SignedVote, ValueId};
use super::{Committee, Ctx, SessionMachine};

impl SessionMachine {
    /// V1–V8, cached per value (except a fallback refused only for being early).
    pub(super) fn is_valid(&mut self, id: ValueId, ctx: &Ctx<'_>) -> bool {
        if let Some(v) = self.validity.get(&id) {
            return *v;
        }
        let Some(value) = self.values.get(&id) else { return false };
        let mut outcome = |mode| known_outcome(&mut self.outcomes, id, mode, value, ctx).0.clone();
        let (valid, cacheable) = validate(value, &self.committee, self.session, &self.votes, ctx, &mut outcome);
        if cacheable {
            self.validity.insert(id, valid);
        }
        valid
    }
}

/// V1–V8, each check's outcome counted (protocol coverage) as it is decided. Returns (valid,
/// whether the answer may be cached).
fn validate(
    value: &ProposalValue,
    committee: &Committee,
    session: SessionId,
    verified: &BTreeMap<AgentId, SignedVote>,
    ctx: &Ctx<'_>,
    outcome: &mut dyn FnMut(ProposalMode) -> AgreedOutcome,
) -> (bool, bool) {
    let check = |held: bool, pass: Point, fail: Point| {
        ctx.cover(Point::check(held, pass, fail));
        held
    };
    // V1: the value is for session s and carries the client's signed spec of it.
    let spec_ok = value.session == session
        && value.spec.spec.session == session
        && ctx.verifier.verify(ctx.protocol.client, &wire::spec_signing_bytes(&value.spec.spec), &value.spec.signature);
    if !check(spec_ok, Point::V1Pass, Point::V1Fail) {
        return (false, true);
    }
    // V2: ≥ q votes from distinct committee members, ascending, all for session s.
    let votes_ok = value.votes.len() >= committee.vote_q
        && value.votes.windows(2).all(|w| w[0].vote.agent < w[1].vote.agent)
        && value.votes.iter().all(|v| v.vote.session == session && committee.contains(v.vote.agent));
    if !check(votes_ok, Point::V2Pass, Point::V2Fail) {
        return (false, true);
    }
    // V3: each signed by its agent. A vote identical to one received (and verified) directly
    // needs no second check.
    let signed = value.votes.iter().all(|v| {
        verified.get(&v.vote.agent) == Some(v)
            || ctx.verify(v.vote.agent, &wire::vote_signing_bytes(&v.vote), &v.signature)
    });
    if !check(signed, Point::V3Pass, Point::V3Fail) {
        return (false, true);
    }
    let normal = outcome(ProposalMode::Normal);
    match value.mode {
        ProposalMode::Normal => {
            // V4–V5: the claimed outcome is the engine's aggregate.
            let claimed = check(normal == value.outcome, Point::V5Pass, Point::V5Fail);
            (check(claimed, Point::V4Pass, Point::V4Fail), true)
        }
        ProposalMode::Fallback => {
            // V7: only with the policy on and when the engine does not decide.
            let allowed = ctx.engine.fallback == FallbackPolicy::SimpleMajority
                && !matches!(normal, AgreedOutcome::Decided { .. });
            if !check(allowed, Point::V7Pass, Point::V7Fail) {
                return (false, true);
            }
            // V8: past the deadline (a clock check: refused now, it may pass later).
            let past = ctx.now >= value.spec.spec.opened_ms.saturating_add(ctx.engine.deadline_ms);
            if !check(past, Point::V8Pass, Point::V8Fail) {
                return (false, false);
            }
            // V4, V6: the claimed outcome is the fallback's.
            let claimed = check(outcome(ProposalMode::Fallback) == value.outcome, Point::V6Pass, Point::V6Fail);
            (check(claimed, Point::V4Pass, Point::V4Fail), true)
        }
    }
}

/// [`outcome_of`] of value `id` (`value`) under `mode`, from `memo` or computed once into it.
pub(super) fn known_outcome<'m>(
    memo: &'m mut BTreeMap<(ValueId, ProposalMode), (AgreedOutcome, SessionRecord)>,
    id: ValueId,
    mode: ProposalMode,
    value: &ProposalValue,
    ctx: &Ctx<'_>,
) -> &'m (AgreedOutcome, SessionRecord) {
    memo.entry((id, mode)).or_insert_with(|| outcome_of(mode, &value.spec, &value.votes, ctx))
}

/// `outcome(mode, votes)` of docs/protocol.md V5–V6, with what the registry learns from it.
pub(super) fn outcome_of(
    mode: ProposalMode,
    spec: &SignedSpec,
    votes: &[SignedVote],
    ctx: &Ctx<'_>,
) -> (AgreedOutcome, SessionRecord) {
    let (outcome, record, guards) = recompute_guarded(mode, spec, votes, ctx.registry, ctx.engine);
    // What V10–V13 did in the engine (protocol coverage).
    let outcomes = [
        (guards.support, Point::V10Pass, Point::V10Fail),
        (guards.tie, Point::V11Pass, Point::V11Fail),
        (guards.minority, Point::V12Pass, Point::V12Fail),
        (guards.retally, Point::V13Pass, Point::V13Fail),
    ];
    for (held, pass, fail) in outcomes {
        if let Some(held) = held {
            ctx.cover(Point::check(held, pass, fail));
        }
    }
    (outcome, record)
}

/// `outcome(mode, votes)` of docs/protocol.md V5–V6 against an explicit registry epoch, with
/// what the registry learns from it. The simulator's oracle calls it to re-check decisions.
pub fn recompute(
    mode: ProposalMode,
    spec: &SignedSpec,
    votes: &[SignedVote],
    registry: &Registry,
    engine: &EngineConfig,
) -> (AgreedOutcome, SessionRecord) {
    let (outcome, record, _) = recompute_guarded(mode, spec, votes, registry, engine);
    (outcome, record)
}

/// [`recompute`], with what the validity guards V10–V13 did in the engine.
pub(super) fn recompute_guarded(
    mode: ProposalMode,
    spec: &SignedSpec,
    votes: &[SignedVote],
    registry: &Registry,
    engine: &EngineConfig,
) -> (AgreedOutcome, SessionRecord, Guards) {
    let plain = votes.iter().map(|v| &v.vote);
    let aggregation = aggregate_borrowed(spec.spec.session, &spec.spec.candidates, plain, registry, engine);
    let mut record = aggregation.record;
    let outcome = match mode {
        ProposalMode::Normal => match aggregation.outcome {
            Ok(Decision::Decided(r)) => AgreedOutcome::Decided {
                chosen: r.chosen,
                method: r.method,
                agreement: r.agreement_rate,
                byzantine: r.byzantine,
            },
            Ok(Decision::Escalated(e)) => AgreedOutcome::Escalated { action: e.action, byzantine: e.byzantine },
            Err(ConsensusError::InsufficientAgreement { achieved, .. }) => AgreedOutcome::NoDecision { achieved },
            Err(_) => AgreedOutcome::NoDecision { achieved: crate::Ppm::ZERO },
        },
        ProposalMode::Fallback => {
            match fallback_consensus(spec.spec.session, &votes.iter().map(|v| v.vote.clone()).collect::<Vec<_>>()) {
                Ok(r) => AgreedOutcome::Decided {
                    chosen: r.chosen,
                    method: r.method,
                    agreement: r.agreement_rate,
                    byzantine: r.byzantine,
                },
                Err(ConsensusError::NoMajority { largest_group, .. }) => {
                    AgreedOutcome::NoDecision { achieved: largest_group }
                }
                Err(_) => AgreedOutcome::NoDecision { achieved: crate::Ppm::ZERO },
            }
        }
    };
    record.chosen = outcome.chosen();
    (outcome, record, aggregation.guards)
}
