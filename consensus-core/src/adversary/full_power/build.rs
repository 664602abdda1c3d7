//! Assembling messages from parts: vote sets, values, polka certificates, commit certificates,
//! and signing with the agent's own key. Each assembly draws what kind of set to build: most are
//! what an honest agent could have built (so that runs reach the checks past validation), the
//! rest break one rule of V1–V8 or L26–L27 / L52–L53 at a time.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::memory::SessionView;
use super::{index, pick, Env};
use crate::adversary::{accept_for, fake_outcome};
use crate::fixed::Ppm;
use crate::protocol::messages::SignedSpec;
use crate::protocol::{
    recompute, AgreedOutcome, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SignedVote, ValueId, VoteKind,
};
use crate::sign::Signature;
use crate::types::{AgentId, AgentSpecialization, AgentVote, CandidateId, SessionId};
use crate::wire;

/// A round vote signed with the agent's own key (for `agent`, which is not always itself: a
/// vote claimed for another agent or an id outside the committee does not verify).
pub(super) fn round_vote(
    env: &Env<'_>,
    kind: VoteKind,
    session: SessionId,
    round: Round,
    value: Option<ValueId>,
    agent: AgentId,
) -> RoundVote {
    let signature = env.signer.sign(&wire::round_vote_signing_bytes(kind, session, round, value));
    RoundVote { kind, session, round, value, agent, signature }
}

/// A proposal signed with the agent's own key, claimed for `proposer`.
pub(super) fn proposal(
    env: &Env<'_>,
    value: ProposalValue,
    round: Round,
    valid_round: Option<Round>,
    proposer: AgentId,
    polka: Vec<RoundVote>,
) -> Proposal {
    let id = ValueId::of(&value);
    let signature = env.signer.sign(&wire::proposal_id_signing_bytes(value.session, round, valid_round, id));
    Proposal { round, valid_round, value, proposer, signature, polka }
}

/// A session vote signed with the agent's own key.
pub(super) fn signed_vote(env: &Env<'_>, vote: AgentVote) -> SignedVote {
    let signature = env.signer.sign(&wire::vote_signing_bytes(&vote));
    SignedVote { vote, signature }
}

/// An id outside the committee, or another member's (never a key it holds).
pub(super) fn claimed_agent(rng: &mut ChaCha8Rng, env: &Env<'_>) -> AgentId {
    let others: Vec<AgentId> = env.committee.members.iter().copied().filter(|a| *a != env.me).collect();
    match (rng.gen_range(0..3), pick(rng, &others)) {
        (0, Some(other)) => *other,
        (1, _) => AgentId(u32::MAX - rng.gen_range(1..=3)),
        _ => AgentId(env.committee.members.len() as u32 + rng.gen_range(0..3)),
    }
}

/// Its own vote for `session`: an `Accept` of a candidate of `spec` (or, rarely, one outside
/// it) with consistent scores, a random score and confidence; inconsistent scores sometimes.
pub(super) fn own_vote(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    session: SessionId,
    spec: Option<&SignedSpec>,
) -> AgentVote {
    let candidates: Vec<CandidateId> = spec.map(|s| s.spec.candidates.clone()).unwrap_or_default();
    let candidate = match pick(rng, &candidates) {
        Some(c) if rng.gen_range(0..10) > 0 => *c,
        _ => CandidateId(rng.gen_range(0..8)),
    };
    let specialization =
        env.registry.get(env.me).map_or_else(|| AgentSpecialization::cycled(env.me.0 as usize), |r| r.specialization);
    let score = Ppm::saturating(rng.gen_range(300_000..=1_000_000));
    let confidence = Ppm::saturating(rng.gen_range(500_000..=1_000_000));
    let mut vote = AgentVote::accept(env.me, specialization, session, candidate, score, confidence);
    vote.timestamp_ms = env.now;
    for c in &candidates {
        vote.scores.insert(*c, Ppm::saturating(rng.gen_range(0..=1_000_000)));
    }
    if rng.gen_range(0..8) == 0 {
        vote.scores.insert(candidate, Ppm::ZERO); // inconsistent: the engine rejects it
        return vote;
    }
    accept_for(vote, candidate, score, confidence)
}

/// A vote set for `session` from what it saw (see the module documentation), with the
/// committee's true quorum `q` as the line between enough and too few.
pub(super) fn vote_set(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    view: Option<&SessionView>,
    others: &[&SessionView],
    session: SessionId,
    spec: Option<&SignedSpec>,
) -> Vec<SignedVote> {
    let pool = held_votes(view, session);
    let q = env.committee.vote_q;
    let fresh_own = |rng: &mut ChaCha8Rng| signed_vote(env, own_vote(rng, env, session, spec));
    let mut set = pool.clone();
    match rng.gen_range(0..20) {
        0..=7 => {} // everything held, as an honest proposer
        8..=10 => {
            // A subset: cherry-picked, or too few.
            let keep = rng.gen_range(q.saturating_sub(1).min(set.len())..=set.len());
            set.shuffle(rng);
            set.truncate(keep);
            set.sort_by_key(|v| v.vote.agent);
        }
        11..=13 => {
            // Its own vote replaced by a fresh one for any candidate (valid: it may vote anything).
            set.retain(|v| v.vote.agent != env.me);
            set.push(fresh_own(rng));
            set.sort_by_key(|v| v.vote.agent);
        }
        14 => {
            // A superset: a vote of another session.
            let foreign: Vec<&SignedVote> = others.iter().flat_map(|v| v.votes.iter()).collect();
            if let Some(v) = pick(rng, &foreign) {
                set.push((*v).clone());
                set.sort_by_key(|v| v.vote.agent);
            }
        }
        15 => {
            // A duplicate.
            if let Some(v) = pick(rng, &pool).cloned() {
                set.push(v);
                set.sort_by_key(|v| v.vote.agent);
            }
        }
        16 => set.reverse(), // out of order
        17 => {
            // Two of its own votes (an equivocation inside the set).
            set.push(fresh_own(rng));
            set.sort_by_key(|v| v.vote.agent);
        }
        _ => {
            // Its own vote under an id it has no key for.
            let mut vote = own_vote(rng, env, session, spec);
            vote.agent = claimed_agent(rng, env);
            set.push(signed_vote(env, vote));
            set.sort_by_key(|v| v.vote.agent);
        }
    }
    set
}

/// The votes of `session` it holds, one per agent (the first it saw), ascending: what an honest
/// proposer holds (L16a).
pub(super) fn held_votes(view: Option<&SessionView>, session: SessionId) -> Vec<SignedVote> {
    let mut pool: Vec<SignedVote> = Vec::new();
    for v in view.into_iter().flat_map(|v| v.votes.iter()).filter(|v| v.vote.session == session) {
        if !pool.iter().any(|p| p.vote.agent == v.vote.agent) {
            pool.push(v.clone());
        }
    }
    pool.sort_by_key(|v| v.vote.agent);
    pool
}

/// A value of `session` carrying `votes`: mostly the outcome every validator recomputes (V4),
/// sometimes one that disagrees with the votes; the fallback mode sometimes (valid only past
/// the deadline, with the fallback policy on and no normal decision, V6–V8).
pub(super) fn value(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    session: SessionId,
    spec: SignedSpec,
    votes: Vec<SignedVote>,
) -> ProposalValue {
    let mode = if rng.gen_range(0..8) == 0 { ProposalMode::Fallback } else { ProposalMode::Normal };
    let (honest, _) = recompute(mode, &spec, &votes, env.registry, env.engine);
    let outcome = match rng.gen_range(0..10) {
        0 => fake_outcome(&honest, &spec.spec.candidates),
        1 => {
            let other = if mode == ProposalMode::Normal { ProposalMode::Fallback } else { ProposalMode::Normal };
            recompute(other, &spec, &votes, env.registry, env.engine).0
        }
        2 if rng.gen_bool(0.5) => AgreedOutcome::NoDecision { achieved: Ppm::saturating(rng.gen_range(0..=1_000_000)) },
        _ => honest,
    };
    let session = if rng.gen_range(0..40) == 0 { SessionId(session.0.wrapping_add(1)) } else { session };
    ProposalValue { session, spec, mode, votes, outcome }
}

/// A polka certificate for (`valid_round`, `id`): the prevotes it saw for them, one per signer,
/// with its own prevote added (it may sign any), honest-looking mostly; sometimes too few, with
/// round votes of other rounds, values, kinds or sessions (`others`) mixed in, duplicated, or
/// empty.
pub(super) fn polka(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    view: Option<&SessionView>,
    others: &[&SessionView],
    session: SessionId,
    valid_round: Round,
    id: ValueId,
) -> Vec<RoundVote> {
    let mut votes = view.map(|v| v.one_per_signer(valid_round, VoteKind::Prevote, Some(id))).unwrap_or_default();
    if rng.gen_range(0..10) < 8 && !votes.iter().any(|v| v.agent == env.me) {
        votes.push(round_vote(env, VoteKind::Prevote, session, valid_round, Some(id), env.me));
        votes.sort_by_key(|v| v.agent);
    }
    let q = env.committee.q;
    match rng.gen_range(0..20) {
        0..=12 => {}
        13..=14 => votes.truncate(index(rng, q.min(votes.len().max(1)))),
        15..=16 => {
            // Parts of other rounds, values, kinds or sessions.
            let foreign: Vec<&RoundVote> = view
                .into_iter()
                .flat_map(|v| v.round_votes.iter())
                .filter(|v| v.round != valid_round || v.value != Some(id) || v.kind != VoteKind::Prevote)
                .chain(others.iter().flat_map(|o| o.round_votes.iter()))
                .collect();
            for _ in 0..rng.gen_range(1..=3) {
                if let Some(v) = pick(rng, &foreign) {
                    votes.push((*v).clone());
                }
            }
        }
        17..=18 => {
            if let Some(v) = votes.first().cloned() {
                votes.push(v);
            }
        }
        _ => votes.clear(),
    }
    votes
}

/// Precommits for a commit certificate of `id` in `round`: those it saw (one per signer) and
/// its own, mostly; sometimes too few, mixed with other rounds, values or sessions, duplicated,
/// or for another value than the proposal's (a proposal that does not match).
pub(super) fn precommits(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    view: Option<&SessionView>,
    others: &[&SessionView],
    session: SessionId,
    round: Round,
    id: ValueId,
) -> Vec<RoundVote> {
    let mut target = Some(id);
    if rng.gen_range(0..12) == 0 {
        // Precommits of another value of the round (the proposal then does not match).
        let ids: Vec<ValueId> = view.map(|v| v.values_voted(round)).unwrap_or_default();
        target = pick(rng, &ids).copied().or(target);
    }
    let mut votes = view.map(|v| v.one_per_signer(round, VoteKind::Precommit, target)).unwrap_or_default();
    if rng.gen_range(0..10) < 8 && !votes.iter().any(|v| v.agent == env.me) {
        votes.push(round_vote(env, VoteKind::Precommit, session, round, target, env.me));
        votes.sort_by_key(|v| v.agent);
    }
    match rng.gen_range(0..20) {
        0..=12 => {}
        13..=14 => votes.truncate(index(rng, env.committee.q.min(votes.len().max(1)))),
        15 => {
            // A precommit of another round or session.
            let foreign: Vec<&RoundVote> = view
                .into_iter()
                .chain(others.iter().copied())
                .flat_map(|v| v.round_votes.iter())
                .filter(|v| v.kind == VoteKind::Precommit && (v.round != round || v.session != session))
                .collect();
            if let Some(v) = pick(rng, &foreign) {
                votes.push((*v).clone());
            }
        }
        16..=17 => {
            if let Some(v) = votes.last().cloned() {
                votes.push(v);
            }
        }
        18 => votes.reverse(),
        _ => {
            // Prevotes where precommits belong.
            let prevotes = view.map(|v| v.one_per_signer(round, VoteKind::Prevote, target)).unwrap_or_default();
            votes.extend(prevotes);
        }
    }
    votes
}

/// A value id nobody proposed.
pub(super) fn unknown_id(rng: &mut ChaCha8Rng) -> ValueId {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes[..]);
    ValueId(bytes)
}

/// A signature that is nobody's.
pub(super) fn junk_signature(rng: &mut ChaCha8Rng) -> Signature {
    let mut bytes = [0u8; 64];
    rng.fill(&mut bytes[..]);
    Signature(bytes)
}
