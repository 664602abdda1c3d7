//! The `replay` family: signatures it has seen, reused on content they do not sign, and vote
//! sets that count one voter twice. It never signs with a key it does not hold: every foreign
//! signature it sends is a copy of one it received, now attached to another message.
//!
//! | action | what it sends |
//! |---|---|
//! | spec replay | a value (proposed in a round it proposes, or as an `Open`) whose client-signed spec is another session's as it is, another session's renamed to this session (same signature), this session's with another session's signature, or this session's with the query or candidates changed (same signature) |
//! | vote recombination | a value whose vote set holds honest agents' signatures on votes they did not cast (another candidate or confidence, or one of their votes of another session moved to this one), with the outcome those votes give; or such votes relayed |
//! | duplicated voter | a value whose vote set reaches the quorum with one voter twice (the same signed vote twice, two votes of one voter it saw, or two of its own), fewer distinct voters than the quorum, with the outcome those votes give |
//! | round-vote recombination | prevotes and precommits of other agents with another value, round or kind under the same signature; a re-proposal whose polka certificate is made of prevotes for other values relabelled to the proposed one |
//! | proposal recombination | another proposer's proposal with its signature on another value, round or valid round, in that proposer's name |
//!
//! With correct code every one is refused (a signature that does not verify over the message's
//! signing bytes, a spec that is not the client's of the session, V2's distinct voters); with
//! signing bytes that do not cover the whole message, or a check that is weakened, honest
//! agents accept them and the oracle (which verifies with its own encoding) sees the decision.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::actions::{current, emit, fresh_value, my_round, others, recipients, session, To};
use super::build;
use super::memory::{Memory, SessionView};
use super::{index, pick, Env};
use crate::adversary::accept_for;
use crate::fixed::Ppm;
use crate::protocol::messages::SignedSpec;
use crate::protocol::{
    recompute, Message, Output, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SignedVote, ValueId, VoteKind,
};
use crate::types::{CandidateId, SessionId};

/// One `replay` action (the module documentation: one row each).
pub(super) fn replay(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &mut Memory, out: &mut Vec<Output>) {
    let s = session(rng, env, memory);
    let now = current(env, memory.view(s), s);
    // Values are proposed in a round it proposes mostly: honest agents consider only those.
    let r = match my_round(env, s, now) {
        Some(mine) if rng.gen_range(0..10) < 8 => mine,
        _ => now,
    };
    let to = if rng.gen_range(0..10) < 6 { To::All } else { recipients(rng, env, s, now) };
    match rng.gen_range(0..20) {
        0..=4 => spec_replay(rng, env, memory, s, r, &to, out),
        5..=8 => {
            let Some(votes) = recombined_set(rng, env, memory, s) else { return };
            propose_votes(rng, env, memory, s, r, votes, &to, out);
        }
        9..=12 => {
            let Some(votes) = duplicated_voter(rng, env, memory.view(s), s) else { return };
            propose_votes(rng, env, memory, s, r, votes, &to, out);
        }
        13 => {
            let Some(votes) = recombined_set(rng, env, memory, s) else { return };
            let recombined: Vec<&SignedVote> = votes.iter().filter(|v| !is_held(memory, v)).collect();
            for v in recombined.into_iter().take(3) {
                emit(out, &to, Message::Vote(v.clone()));
            }
        }
        14..=15 => {
            let Some(view) = memory.view(s) else { return };
            for _ in 0..rng.gen_range(1..=3) {
                if let Some(v) = recombined_round_vote(rng, env, view) {
                    emit(out, &to, Message::RoundVote(v));
                }
            }
        }
        16..=17 => relabelled_polka(rng, env, memory, s, r, &to, out),
        _ => recombined_proposal(rng, env, memory, s, r, &to, out),
    }
}

/// Whether `vote` is one it received as it is (not a recombination).
fn is_held(memory: &Memory, vote: &SignedVote) -> bool {
    memory.view(vote.vote.session).is_some_and(|v| v.votes.contains(vote))
}

/// The client-signed specs it saw, of every session.
fn specs(memory: &Memory) -> Vec<SignedSpec> {
    memory.sessions().into_iter().filter_map(|s| memory.view(s)?.spec.clone()).collect()
}

/// A spec for `session` that the client did not sign as it is, carrying a client signature it
/// saw: another session's spec unchanged, another session's renamed, this session's under
/// another session's signature, or this session's with the query or candidates changed.
pub(super) fn forged_spec(rng: &mut ChaCha8Rng, memory: &Memory, session: SessionId) -> Option<SignedSpec> {
    let all = specs(memory);
    let own = all.iter().find(|x| x.spec.session == session).cloned();
    let foreign: Vec<&SignedSpec> = all.iter().filter(|x| x.spec.session != session).collect();
    let other = pick(rng, &foreign).map(|x| (*x).clone());
    match (rng.gen_range(0..4), other, own) {
        (0, Some(other), _) => Some(other),
        (1, Some(mut other), own) => {
            other.spec.session = session;
            if let Some(own) = own {
                other.spec.opened_ms = own.spec.opened_ms;
            }
            Some(other)
        }
        (2, Some(other), Some(mut own)) => {
            own.signature = other.signature;
            Some(own)
        }
        (_, other, Some(mut own)) => {
            let spec = &mut own.spec;
            match rng.gen_range(0..3) {
                0 => spec.query.push_str(" (amended)"),
                1 if spec.candidates.len() > 1 => {
                    let at = index(rng, spec.candidates.len());
                    spec.candidates.remove(at);
                }
                _ => {
                    let next = spec.candidates.last().map_or(0, |c| c.0.saturating_add(1));
                    spec.candidates.push(CandidateId(next));
                }
            }
            if let Some(other) = other.filter(|_| rng.gen_bool(0.25)) {
                own.signature = other.signature;
            }
            Some(own)
        }
        (_, other, None) => other,
    }
}

/// A value of `session` with `spec` and `votes` whose claimed outcome is the one the votes give
/// (V4 holds: only the replayed signature is wrong).
fn value_of(env: &Env<'_>, session: SessionId, spec: SignedSpec, votes: Vec<SignedVote>) -> ProposalValue {
    let outcome = recompute(ProposalMode::Normal, &spec, &votes, env.registry, env.engine).0;
    ProposalValue { session, spec, mode: ProposalMode::Normal, votes, outcome }
}

/// Its own proposal of `value` for round `round`, kept among its own values (so the other
/// families may vote for it, certify it or re-propose it).
fn propose(env: &Env<'_>, memory: &mut Memory, round: Round, value: ProposalValue, to: &To, out: &mut Vec<Output>) {
    memory.keep_own_value(&value, ValueId::of(&value));
    let p = build::proposal(env, value, round, None, env.me, Vec::new());
    emit(out, to, Message::Proposal(Box::new(p)));
}

/// Spec replay: a value with a forged spec (the held votes of the session, its own added when
/// missing), proposed; or the forged spec sent as the client's `Open`.
fn spec_replay(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    memory: &mut Memory,
    s: SessionId,
    r: Round,
    to: &To,
    out: &mut Vec<Output>,
) {
    let Some(spec) = forged_spec(rng, memory, s) else { return };
    if rng.gen_range(0..5) == 0 {
        emit(out, to, Message::Open(spec));
        return;
    }
    let mut votes = build::held_votes(memory.view(s), s);
    if !votes.iter().any(|v| v.vote.agent == env.me) {
        votes.push(build::signed_vote(env, build::own_vote(rng, env, s, Some(&spec))));
        votes.sort_by_key(|v| v.vote.agent);
    }
    let value = value_of(env, s, spec, votes);
    propose(env, memory, r, value, to, out);
}

/// The value of `votes` with the session's own spec, proposed.
#[allow(clippy::too_many_arguments)]
fn propose_votes(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    memory: &mut Memory,
    s: SessionId,
    r: Round,
    votes: Vec<SignedVote>,
    to: &To,
    out: &mut Vec<Output>,
) {
    let Some(spec) = memory.view(s).and_then(|v| v.spec.clone()) else { return };
    let value = value_of(env, s, spec, votes);
    if rng.gen_range(0..10) == 0 {
        // With a polka-less valid round too (L26 waits; L28 is never reached).
        let p = build::proposal(env, value, r, r.checked_sub(1), env.me, Vec::new());
        emit(out, to, Message::Proposal(Box::new(p)));
        return;
    }
    propose(env, memory, r, value, to, out);
}

/// `vote`'s signature on other content of the same voter: an `Accept` of another candidate,
/// another confidence, or the vote moved to `session`.
pub(super) fn recombined_vote(
    rng: &mut ChaCha8Rng,
    vote: &SignedVote,
    candidates: &[CandidateId],
    session: SessionId,
) -> SignedVote {
    let mut v = vote.vote.clone();
    let choice = if v.session != session { 2 } else { rng.gen_range(0..2) };
    match choice {
        0 => {
            let others: Vec<CandidateId> = candidates.iter().copied().filter(|c| *c != v.candidate).collect();
            let candidate = pick(rng, &others).copied().unwrap_or(CandidateId(v.candidate.0.wrapping_add(1)));
            let score = Ppm::saturating(rng.gen_range(500_000..=1_000_000));
            let confidence = v.confidence;
            v = accept_for(v, candidate, score, confidence);
        }
        1 => {
            let c = v.confidence.raw();
            v.confidence = Ppm::saturating(u64::from(if c > 0 { c - 1 } else { 1 }));
        }
        _ => v.session = session,
    }
    SignedVote { vote: v, signature: vote.signature }
}

/// The held votes of `s` with one or more other agents' votes replaced by recombinations of
/// their signatures (a vote of theirs of this session on other content, or one of another
/// session moved here); `None` without a vote of another agent.
fn recombined_set(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &Memory, s: SessionId) -> Option<Vec<SignedVote>> {
    let view = memory.view(s);
    let candidates: Vec<CandidateId> =
        view.and_then(|v| v.spec.as_ref()).map(|x| x.spec.candidates.clone()).unwrap_or_default();
    let mut set = build::held_votes(view, s);
    let foreign: Vec<SignedVote> = others(memory, s)
        .iter()
        .flat_map(|v| v.votes.iter())
        .filter(|v| v.vote.agent != env.me && v.vote.session != s)
        .cloned()
        .collect();
    let slots: Vec<usize> = (0..set.len()).filter(|i| set[*i].vote.agent != env.me).collect();
    if slots.is_empty() && foreign.is_empty() {
        return None;
    }
    let times = rng.gen_range(1..=2);
    for _ in 0..times {
        let from_other_session = !foreign.is_empty() && (slots.is_empty() || rng.gen_range(0..4) == 0);
        if from_other_session {
            let Some(v) = pick(rng, &foreign) else { break };
            let moved = recombined_vote(rng, v, &candidates, s);
            // In place of the voter's vote of this session (indices stay valid), else added.
            match set.iter_mut().find(|x| x.vote.agent == moved.vote.agent) {
                Some(slot) => *slot = moved,
                None => set.push(moved),
            }
        } else if let Some(i) = pick(rng, &slots).copied() {
            let Some(old) = set.get(i).cloned() else { break };
            let changed = recombined_vote(rng, &old, &candidates, s);
            if let Some(slot) = set.get_mut(i) {
                *slot = changed;
            }
        }
    }
    set.sort_by_key(|v| v.vote.agent);
    Some(set)
}

/// A vote set of `s` of at least the vote quorum with fewer distinct voters: the held votes
/// (sometimes cut to one short of the quorum), filled with a voter counted twice (the same
/// signed vote again, a second vote of that voter it saw, or a second vote of its own); `None`
/// without any vote or spec.
pub(super) fn duplicated_voter(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    view: Option<&SessionView>,
    s: SessionId,
) -> Option<Vec<SignedVote>> {
    let spec = view.and_then(|v| v.spec.as_ref());
    let mut set = build::held_votes(view, s);
    let q = env.committee.vote_q;
    if rng.gen_bool(0.7) && set.len() >= q {
        set.shuffle(rng);
        set.truncate(q.saturating_sub(1).max(1));
    }
    let all: Vec<&SignedVote> = view.into_iter().flat_map(|v| v.votes.iter()).filter(|v| v.vote.session == s).collect();
    let extra = q.saturating_sub(set.len()).max(1);
    for _ in 0..extra {
        let twice = match rng.gen_range(0..3) {
            0 => {
                // A second vote of a voter in the set (an equivocation it saw), else the same again.
                let seconds: Vec<&SignedVote> = all
                    .iter()
                    .copied()
                    .filter(|v| set.iter().any(|x| x.vote.agent == v.vote.agent) && !set.contains(*v))
                    .collect();
                pick(rng, &seconds).map(|v| (*v).clone()).or_else(|| pick(rng, &set).cloned())
            }
            1 => {
                // Two votes of its own (the first one too when the set has none).
                if !set.iter().any(|v| v.vote.agent == env.me) {
                    set.push(build::signed_vote(env, build::own_vote(rng, env, s, spec)));
                }
                Some(build::signed_vote(env, build::own_vote(rng, env, s, spec)))
            }
            _ => pick(rng, &set).cloned(),
        };
        match twice {
            Some(v) => set.push(v),
            None => return None,
        }
    }
    set.sort_by_key(|v| v.vote.agent);
    Some(set)
}

/// Another agent's prevote or precommit of the session with its signature on another value,
/// round, kind or session.
pub(super) fn recombined_round_vote(rng: &mut ChaCha8Rng, env: &Env<'_>, view: &SessionView) -> Option<RoundVote> {
    let seen: Vec<&RoundVote> = view.round_votes.iter().filter(|v| v.agent != env.me).collect();
    let mut v = (*pick(rng, &seen)?).clone();
    match rng.gen_range(0..4) {
        0 => {
            let ids: Vec<ValueId> = view.value_ids().into_iter().filter(|id| Some(*id) != v.value).collect();
            v.value = match (pick(rng, &ids), v.value) {
                (Some(id), _) if rng.gen_range(0..4) > 0 => Some(*id),
                (_, Some(_)) => None,
                (_, None) => Some(build::unknown_id(rng)),
            };
        }
        1 => v.round = if v.round > 0 && rng.gen_bool(0.5) { v.round - 1 } else { v.round.saturating_add(1) },
        2 => {
            v.kind = match v.kind {
                VoteKind::Prevote => VoteKind::Precommit,
                VoteKind::Precommit => VoteKind::Prevote,
            }
        }
        _ => v.session = SessionId(v.session.0.wrapping_add(1)),
    }
    Some(v)
}

/// A re-proposal of a value it knows with a valid round below `r` (one of the eight before it,
/// the one with the most prevotes it saw) whose polka certificate is
/// made of other agents' prevotes of that round for anything (other values, nil), relabelled to
/// the value under their signatures, and its own prevote.
fn relabelled_polka(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    memory: &mut Memory,
    s: SessionId,
    r: Round,
    to: &To,
    out: &mut Vec<Output>,
) {
    if r == 0 {
        return;
    }
    let value = match memory.view(s).map(|v| v.value_ids()).unwrap_or_default() {
        ids if !ids.is_empty() && rng.gen_range(0..3) > 0 => {
            let Some(id) = pick(rng, &ids).copied() else { return };
            memory.view(s).and_then(|v| v.value(id)).cloned()
        }
        _ => fresh_value(rng, env, memory, s),
    };
    let Some(value) = value else { return };
    let Some(view) = memory.view(s) else { return };
    let id = ValueId::of(&value);
    // The round below r with the most prevotes of other agents.
    let rounds: Vec<Round> = (r.saturating_sub(8)..r).collect();
    let count = |vr: Round| view.round_votes_of(vr, VoteKind::Prevote).filter(|v| v.agent != env.me).count();
    let Some(vr) = rounds.iter().copied().max_by_key(|vr| (count(*vr), *vr)) else { return };
    let mut polka: Vec<RoundVote> = Vec::new();
    for v in view.round_votes_of(vr, VoteKind::Prevote).filter(|v| v.agent != env.me) {
        if !polka.iter().any(|x| x.agent == v.agent) {
            let mut relabelled = v.clone();
            relabelled.value = Some(id);
            polka.push(relabelled);
        }
    }
    polka.push(build::round_vote(env, VoteKind::Prevote, s, vr, Some(id), env.me));
    polka.sort_by_key(|v| v.agent);
    polka.dedup_by_key(|v| v.agent);
    let p = build::proposal(env, value, r, Some(vr), env.me, polka);
    emit(out, to, Message::Proposal(Box::new(p)));
}

/// Another proposer's proposal with its signature on another value, round, or valid round, in
/// that proposer's name.
fn recombined_proposal(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    memory: &mut Memory,
    s: SessionId,
    r: Round,
    to: &To,
    out: &mut Vec<Output>,
) {
    let seen: Vec<Proposal> = memory
        .view(s)
        .map(|v| v.proposals.iter().filter(|(p, _)| p.proposer != env.me).map(|(p, _)| p.clone()).collect())
        .unwrap_or_default();
    let Some(mut p) = pick(rng, &seen).cloned() else { return };
    match rng.gen_range(0..3) {
        0 => {
            let other = seen.iter().map(|x| &x.value).find(|v| **v != p.value).cloned();
            let value = match other {
                Some(v) if rng.gen_bool(0.5) => Some(v),
                _ => fresh_value(rng, env, memory, s),
            };
            let Some(value) = value else { return };
            p.value = value;
        }
        1 => p.round = if p.round == r { r.saturating_add(1) } else { r },
        _ => {
            p.valid_round = match p.valid_round {
                Some(_) => None,
                None => p.round.checked_sub(1),
            };
        }
    }
    emit(out, to, Message::Proposal(Box::new(p)));
}
