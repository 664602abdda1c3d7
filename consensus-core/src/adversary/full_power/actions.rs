//! One action of each family: what to send (`build` assembles the parts), about which session
//! and round, to whom. Choices lean toward the honest agents' present: the session of the
//! input, the round its inner honest agent is in, the values voted for in it, the rounds in
//! which this agent is the proposer, the current round's proposer as a recipient.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::build;
use super::memory::{Memory, SessionView};
use super::{index, pick, Env};
use crate::protocol::messages::SignedSpec;
use crate::protocol::{Commit, Message, Output, Proposal, Round, ValueId, VoteKind};
use crate::types::{AgentId, SessionId};

/// Who gets a message.
pub(super) enum To {
    /// Every peer (a broadcast).
    All,
    /// These agents only.
    Only(Vec<AgentId>),
}

/// Pushes `message` to `to`.
pub(super) fn emit(out: &mut Vec<Output>, to: &To, message: Message) {
    match to {
        To::All => out.push(Output::Broadcast(message)),
        To::Only(list) => {
            for a in list {
                out.push(Output::Send { to: *a, message: message.clone() });
            }
        }
    }
}

/// Everyone, a random subset, one peer, only the current proposer, or all but it.
pub(super) fn recipients(rng: &mut ChaCha8Rng, env: &Env<'_>, session: SessionId, round: Round) -> To {
    let proposer = env.committee.proposer(session, round).filter(|p| *p != env.me);
    match rng.gen_range(0..10) {
        0..=3 => To::All,
        4..=6 => To::Only(subset(rng, env.peers)),
        7 => To::Only(pick(rng, env.peers).copied().into_iter().collect()),
        8 => To::Only(proposer.map_or_else(|| subset(rng, env.peers), |p| vec![p])),
        _ => To::Only(env.peers.iter().copied().filter(|a| Some(*a) != proposer).collect()),
    }
}

/// Each peer with probability one half, at least one (when there is one).
fn subset(rng: &mut ChaCha8Rng, peers: &[AgentId]) -> Vec<AgentId> {
    let mut chosen: Vec<AgentId> = peers.iter().copied().filter(|_| rng.gen_bool(0.5)).collect();
    if chosen.is_empty() {
        chosen.extend(pick(rng, peers).copied());
    }
    chosen
}

/// The peers split in two at random (for the two sides of an equivocation).
pub(super) fn halves(rng: &mut ChaCha8Rng, env: &Env<'_>) -> (To, To) {
    let mut peers = env.peers.to_vec();
    peers.shuffle(rng);
    let cut = index(rng, peers.len().saturating_add(1));
    let second = peers.split_off(cut);
    (To::Only(peers), To::Only(second))
}

/// The session to act on: mostly the input's; another remembered one, an applied one, or one
/// the client has not opened yet, sometimes.
pub(super) fn session(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &Memory) -> SessionId {
    match rng.gen_range(0..20) {
        0..=14 => env.session,
        15..=17 => pick(rng, &memory.sessions()).copied().unwrap_or(env.session),
        18 => SessionId(env.applied.saturating_sub(1)),
        _ => SessionId(env.session.0.saturating_add(rng.gen_range(1..=3))),
    }
}

/// The round the honest agents are in for `session` (its inner agent's), or the input's.
pub(super) fn current(env: &Env<'_>, view: Option<&SessionView>, session: SessionId) -> Round {
    match view {
        Some(v) => v.round,
        None if session == env.session => env.round,
        None => 0,
    }
}

/// A round: the current one mostly, the next, the previous, the highest seen, a few ahead, or
/// far in the future.
fn round(rng: &mut ChaCha8Rng, now: Round, view: Option<&SessionView>) -> Round {
    match rng.gen_range(0..20) {
        0..=8 => now,
        9..=11 => now.saturating_add(1),
        12..=13 => now.saturating_sub(1),
        14 => rng.gen_range(0..=now),
        15..=16 => view.map_or(now, |v| v.highest_seen),
        17..=18 => now.saturating_add(rng.gen_range(2..=6)),
        _ if rng.gen_bool(0.5) => now.saturating_add(rng.gen_range(7..=1_000)),
        _ => u32::MAX - rng.gen_range(0..4),
    }
}

/// The first round from `from` on in which this agent is the proposer.
pub(super) fn my_round(env: &Env<'_>, session: SessionId, from: Round) -> Option<Round> {
    let n = env.committee.members.len() as u32;
    (0..n).map(|k| from.saturating_add(k)).find(|r| env.committee.proposer(session, *r) == Some(env.me))
}

/// A value id for a round vote: nil, one voted for or proposed in the round (what the honest
/// agents are doing), one of another round or session, one of its own values, one never
/// proposed.
fn value_id(
    rng: &mut ChaCha8Rng,
    view: Option<&SessionView>,
    others: &[&SessionView],
    round: Round,
) -> Option<ValueId> {
    let here = view.map(|v| v.values_voted(round)).unwrap_or_default();
    let known = view.map(SessionView::value_ids).unwrap_or_default();
    let foreign: Vec<ValueId> = others.iter().flat_map(|v| v.value_ids()).collect();
    let own: Vec<ValueId> = view.into_iter().flat_map(|v| v.own_values.iter().map(|(_, id)| *id)).collect();
    let chosen = match rng.gen_range(0..20) {
        0..=4 => return None,
        5..=11 => pick(rng, &here),
        12..=14 => pick(rng, &known),
        15..=16 => pick(rng, &foreign),
        17 => pick(rng, &own),
        _ => return Some(build::unknown_id(rng)),
    };
    chosen.copied().or_else(|| here.first().copied())
}

/// The other sessions' views.
pub(super) fn others(memory: &Memory, session: SessionId) -> Vec<&SessionView> {
    memory.sessions().into_iter().filter(|s| *s != session).filter_map(|s| memory.view(s)).collect()
}

/// A spec to build a value of `session` with: its own, or (rarely) another session's.
fn spec_for(rng: &mut ChaCha8Rng, memory: &Memory, session: SessionId) -> Option<SignedSpec> {
    let own = memory.view(session).and_then(|v| v.spec.clone());
    let other = || memory.sessions().into_iter().filter_map(|s| memory.view(s)?.spec.clone()).next();
    match own {
        Some(spec) if rng.gen_range(0..30) > 0 => Some(spec),
        own => other().or(own),
    }
}

/// A fresh value of `session` assembled from what it saw, kept among its own values.
pub(super) fn fresh_value(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    memory: &mut Memory,
    session: SessionId,
) -> Option<crate::protocol::ProposalValue> {
    let spec = spec_for(rng, memory, session)?;
    let votes = {
        let others = others(memory, session);
        build::vote_set(rng, env, memory.view(session), &others, session, Some(&spec))
    };
    let value = build::value(rng, env, session, spec, votes);
    memory.keep_own_value(&value, ValueId::of(&value));
    Some(value)
}

/// `proposals`: fresh values, re-proposals of a polka it saw with their certificate, relays,
/// re-signed copies, another proposer's name, equivocations.
pub(super) fn proposals(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &mut Memory, out: &mut Vec<Output>) {
    let s = session(rng, env, memory);
    let now = current(env, memory.view(s), s);
    let r = match my_round(env, s, now) {
        Some(mine) if rng.gen_range(0..10) < 6 => mine,
        _ => round(rng, now, memory.view(s)),
    };
    let to = recipients(rng, env, s, now);
    let seen: Vec<Proposal> =
        memory.view(s).map(|v| v.proposals.iter().map(|(p, _)| p.clone()).collect()).unwrap_or_default();
    match rng.gen_range(0..20) {
        0..=6 => {
            let Some(value) = fresh_value(rng, env, memory, s) else { return };
            let valid_round = (r > 0 && rng.gen_range(0..10) == 0).then(|| rng.gen_range(0..r));
            emit(
                out,
                &to,
                Message::Proposal(Box::new(build::proposal(env, value, r, valid_round, env.me, Vec::new()))),
            );
        }
        7..=12 => repropose(rng, env, memory, s, r, &to, out),
        13..=14 => {
            if let Some(p) = pick(rng, &seen) {
                emit(out, &to, Message::Proposal(Box::new(p.clone())));
            }
        }
        15..=16 => {
            // A seen value re-signed as its own, for round r, with another valid round.
            let Some(p) = pick(rng, &seen).cloned() else { return };
            let valid_round = match rng.gen_range(0..3) {
                0 => None,
                1 => p.valid_round,
                _ => r.checked_sub(1),
            };
            let polka = if valid_round == p.valid_round { p.polka } else { Vec::new() };
            emit(out, &to, Message::Proposal(Box::new(build::proposal(env, p.value, r, valid_round, env.me, polka))));
        }
        17 => {
            // In the round's proposer's name, signed with its own key.
            let claimed =
                env.committee.proposer(s, r).filter(|p| *p != env.me).unwrap_or_else(|| build::claimed_agent(rng, env));
            let value = match pick(rng, &seen) {
                Some(p) => p.value.clone(),
                None => match fresh_value(rng, env, memory, s) {
                    Some(v) => v,
                    None => return,
                },
            };
            emit(out, &to, Message::Proposal(Box::new(build::proposal(env, value, r, None, claimed, Vec::new()))));
        }
        _ => {
            // Two values for one round, to the two halves of its peers.
            let (a, b) = halves(rng, env);
            for side in [a, b] {
                let Some(value) = fresh_value(rng, env, memory, s) else { return };
                emit(out, &side, Message::Proposal(Box::new(build::proposal(env, value, r, None, env.me, Vec::new()))));
            }
        }
    }
}

/// A re-proposal of a value with a polka it saw (the oldest, the newest, or any; those it can
/// complete to a quorum with its own prevote first), justified by that polka's round and its
/// certificate: what an honest agent locked in a later round must refuse (L28). When it saw
/// agents lock later than a polka on another value (their precommits), it leans toward that
/// polka and toward sending the re-proposal to those agents only: the situation in which a
/// broken lock check (L28) lets two values be decided.
pub(super) fn repropose(
    rng: &mut ChaCha8Rng,
    env: &Env<'_>,
    memory: &Memory,
    session: SessionId,
    round: Round,
    to: &To,
    out: &mut Vec<Output>,
) {
    let Some(view) = memory.view(session) else { return };
    let polkas = view.polkas();
    let full: Vec<(Round, ValueId, usize)> =
        polkas.iter().copied().filter(|(_, _, n)| n + 1 >= env.committee.q).collect();
    let contested: Vec<(Round, ValueId, usize)> = {
        let locked = |(vr, id, _): &&(Round, ValueId, usize)| !view.locked_above(*vr, *id, env.me).is_empty();
        let full_contested: Vec<_> = full.iter().filter(locked).copied().collect();
        if full_contested.is_empty() {
            polkas.iter().filter(locked).copied().collect()
        } else {
            full_contested
        }
    };
    let from = if !contested.is_empty() && rng.gen_range(0..10) < 7 {
        &contested
    } else if !full.is_empty() && rng.gen_range(0..10) < 7 {
        &full
    } else {
        &polkas
    };
    let chosen = match rng.gen_range(0..10) {
        0..=3 => from.first(),
        4..=6 => from.last(),
        _ => pick(rng, from),
    };
    let (valid_round, id) = match chosen {
        Some((vr, id, _)) => (*vr, *id),
        None => {
            // No prevotes for a known value: any known value, with a valid round it never had.
            let ids = view.value_ids();
            let Some(id) = pick(rng, &ids) else { return };
            (index(rng, round as usize) as Round, *id)
        }
    };
    let round = if round > valid_round {
        round
    } else {
        my_round(env, session, valid_round.saturating_add(1)).unwrap_or(valid_round.saturating_add(1))
    };
    let Some(value) = view.value(id).cloned() else { return };
    let polka = build::polka(rng, env, Some(view), &others(memory, session), session, valid_round, id);
    // Sometimes a claimed valid round that is not below the proposal's round (L27: nil prevote).
    let claimed = if rng.gen_range(0..10) == 0 { round.saturating_add(index(rng, 2) as Round) } else { valid_round };
    let p = build::proposal(env, value, round, Some(claimed), env.me, polka);
    let lockers = view.locked_above(valid_round, id, env.me);
    let to = if !lockers.is_empty() && rng.gen_range(0..10) < 7 { &To::Only(lockers) } else { to };
    emit(out, to, Message::Proposal(Box::new(p)));
}

/// `round-votes`: prevotes and precommits for any (round, value or nil), equivocations, relays,
/// votes claimed for ids it has no key for.
pub(super) fn round_votes(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &Memory, out: &mut Vec<Output>) {
    let s = session(rng, env, memory);
    let view = memory.view(s);
    let others = others(memory, s);
    let now = current(env, view, s);
    let r = round(rng, now, view);
    let kind = if rng.gen_bool(0.5) { VoteKind::Prevote } else { VoteKind::Precommit };
    let to = recipients(rng, env, s, now);
    match rng.gen_range(0..20) {
        0..=11 => {
            let value = value_id(rng, view, &others, r);
            emit(out, &to, Message::RoundVote(build::round_vote(env, kind, s, r, value, env.me)));
        }
        12..=14 => {
            let first = value_id(rng, view, &others, r);
            let second = match value_id(rng, view, &others, r) {
                v if v != first => v,
                _ if first.is_some() => None,
                _ => Some(build::unknown_id(rng)),
            };
            let (a, b) = halves(rng, env);
            emit(out, &a, Message::RoundVote(build::round_vote(env, kind, s, r, first, env.me)));
            emit(out, &b, Message::RoundVote(build::round_vote(env, kind, s, r, second, env.me)));
        }
        15..=16 => {
            let held: Vec<_> =
                view.into_iter().flat_map(|v| v.round_votes.iter()).filter(|v| v.agent != env.me).collect();
            for _ in 0..rng.gen_range(1..=4) {
                if let Some(v) = pick(rng, &held) {
                    emit(out, &to, Message::RoundVote((*v).clone()));
                }
            }
        }
        17 => {
            let value = value_id(rng, view, &others, r);
            let claimed = build::claimed_agent(rng, env);
            emit(out, &to, Message::RoundVote(build::round_vote(env, kind, s, r, value, claimed)));
        }
        _ => {
            // Prevote and precommit for one value: helps a polka and a decision along.
            let value = value_id(rng, view, &others, r);
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                emit(out, &to, Message::RoundVote(build::round_vote(env, kind, s, r, value, env.me)));
            }
        }
    }
}

/// `votes`: its own session vote for any candidate (and a second one: equivocation), for other
/// sessions, under ids it has no key for; relays of others' votes, old sessions' included.
pub(super) fn votes(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &Memory, out: &mut Vec<Output>) {
    let s = session(rng, env, memory);
    let spec = memory.view(s).and_then(|v| v.spec.as_ref());
    let to = recipients(rng, env, s, current(env, memory.view(s), s));
    let own = |rng: &mut ChaCha8Rng, session: SessionId| build::own_vote(rng, env, session, spec);
    match rng.gen_range(0..20) {
        0..=7 => emit(out, &to, Message::Vote(build::signed_vote(env, own(rng, s)))),
        8..=9 => {
            let (a, b) = halves(rng, env);
            emit(out, &a, Message::Vote(build::signed_vote(env, own(rng, s))));
            emit(out, &b, Message::Vote(build::signed_vote(env, own(rng, s))));
        }
        10..=12 => {
            let held: Vec<_> = memory
                .sessions()
                .into_iter()
                .filter_map(|x| memory.view(x))
                .flat_map(|v| v.votes.iter())
                .filter(|v| v.vote.agent != env.me)
                .collect();
            if let Some(v) = pick(rng, &held) {
                emit(out, &to, Message::Vote((*v).clone()));
            }
        }
        13..=14 => {
            let other = SessionId(s.0.wrapping_add(rng.gen_range(1..=3)).wrapping_sub(rng.gen_range(0..=4)));
            emit(out, &to, Message::Vote(build::signed_vote(env, own(rng, other))));
        }
        15..=16 => {
            let mut vote = own(rng, s);
            vote.agent = build::claimed_agent(rng, env);
            emit(out, &to, Message::Vote(build::signed_vote(env, vote)));
        }
        _ => {
            let mut signed = build::signed_vote(env, own(rng, s));
            signed.signature = build::junk_signature(rng);
            emit(out, &to, Message::Vote(signed));
        }
    }
}

/// `certificates`: commits assembled from the precommits it saw, with a matching proposal or
/// not, or relays of real ones; to peers or to the client.
pub(super) fn certificates(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &mut Memory, out: &mut Vec<Output>) {
    let s = session(rng, env, memory);
    let now = current(env, memory.view(s), s);
    let to = if rng.gen_range(0..5) == 0 { To::Only(vec![env.client]) } else { recipients(rng, env, s, now) };
    let held: Vec<Commit> =
        memory.sessions().into_iter().filter_map(|x| memory.view(x)).flat_map(|v| v.commits.iter().cloned()).collect();
    if rng.gen_range(0..10) < 2 {
        if let Some(c) = pick(rng, &held) {
            emit(out, &to, Message::Commit(Box::new(c.clone())));
        }
        return;
    }
    let seen: Vec<Proposal> =
        memory.view(s).map(|v| v.proposals.iter().map(|(p, _)| p.clone()).collect()).unwrap_or_default();
    let proposal = match rng.gen_range(0..10) {
        0..=5 if !seen.is_empty() => pick(rng, &seen).cloned(),
        9 => {
            let foreign: Vec<Proposal> =
                others(memory, s).iter().flat_map(|v| v.proposals.iter().map(|(p, _)| p.clone())).collect();
            pick(rng, &foreign).cloned()
        }
        _ => fresh_value(rng, env, memory, s).map(|value| build::proposal(env, value, now, None, env.me, Vec::new())),
    };
    let Some(proposal) = proposal else { return };
    let id = ValueId::of(&proposal.value);
    let view = memory.view(s);
    // The round with the most precommits for the value, or the proposal's.
    let round = view
        .and_then(|v| {
            let rounds: Vec<Round> = v
                .round_votes
                .iter()
                .filter(|x| x.value == Some(id) && x.kind == VoteKind::Precommit)
                .map(|x| x.round)
                .collect();
            rounds.iter().copied().max_by_key(|r| rounds.iter().filter(|x| *x == r).count())
        })
        .unwrap_or(proposal.round);
    let others = others(memory, s);
    let precommits = build::precommits(rng, env, view, &others, s, round, id);
    emit(out, &to, Message::Commit(Box::new(Commit { proposal, precommits })));
}

/// `sync`: `Sync` with any `next`, `Pruned` with any `below` (unsigned: a false claim that
/// the archive no longer keeps older certificates, L81), and the client's `Open`s re-sent to
/// anyone.
pub(super) fn sync(rng: &mut ChaCha8Rng, env: &Env<'_>, memory: &Memory, out: &mut Vec<Output>) {
    let s = session(rng, env, memory);
    let to = recipients(rng, env, s, current(env, memory.view(s), s));
    if rng.gen_range(0..10) < 7 {
        let a = env.applied;
        let choices = [
            0,
            a.saturating_sub(1),
            a,
            a.saturating_add(1),
            s.0,
            s.0.saturating_add(1),
            a.saturating_add(16),
            a.saturating_add(1_000),
            u64::MAX,
        ];
        let next = SessionId(pick(rng, &choices).copied().unwrap_or(a));
        let message = if rng.gen_range(0..4) == 0 { Message::Pruned { below: next } } else { Message::Sync { next } };
        emit(out, &to, message);
        return;
    }
    let specs: Vec<SignedSpec> = memory.sessions().into_iter().filter_map(|x| memory.view(x)?.spec.clone()).collect();
    let own = memory.view(s).and_then(|v| v.spec.clone());
    let spec = match own {
        Some(spec) if rng.gen_range(0..4) > 0 => Some(spec),
        _ => pick(rng, &specs).cloned(),
    };
    if let Some(spec) = spec {
        emit(out, &to, Message::Open(spec));
    }
}
