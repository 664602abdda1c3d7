//! The bounded full-power Byzantine agent of the model: every message its own key and the
//! honest messages it saw allow, bounded to the checked rounds and values.
//!
//! The Byzantine agents see every honest message at once (honest broadcasts reach them
//! first: the adversary's best case). From what they saw they may send, to any honest agent
//! at any moment:
//! - their own vote for each candidate (so two different votes: equivocation, L9);
//! - a prevote and a precommit of each checked round for nil and for every value they know
//!   (equivocation across values included);
//! - as the proposer of a checked round: a proposal of every value they know, with valid round
//!   −1, and with each earlier valid round for which the prevotes they hold (seen honest ones
//!   and their own) make a polka certificate;
//! - as a proposer, three invalid values that each break one validity check: too few votes
//!   (V2), a vote whose signature does not match (V3), a claimed outcome that is not the
//!   aggregate (V4).
//!
//! The values they know: every value of an honest proposal or certificate they saw, and, when
//! they propose some checked round, the fresh values they can build: the votes they saw (one
//! per honest agent) with each choice of their own votes, in every vote set of exactly q
//! voters and the set of all of them, each with its true aggregate.
//!
//! Left out, and why: relaying honest messages (every honest message is already in flight to
//! every honest agent, in every order), commit certificates (they carry only proposals and
//! precommits that reach the honest agents anyway), malformed frames (decoding is not the
//! state machine's: a frame that does not decode becomes `Input::Malformed`, which the agent
//! only counts), messages of other sessions or rounds beyond the bound.

use std::collections::BTreeMap;
use std::sync::Arc;

use consensus_core::protocol::messages::{
    AgreedOutcome, Message, Proposal, ProposalMode, ProposalValue, Round, RoundVote, SignedVote, ValueId, VoteKind,
};
use consensus_core::protocol::{recompute, Committee};
use consensus_core::sign::Signer;
use consensus_core::wire;
use consensus_core::{AgentId, Ppm};

use super::state::Msg;
use super::{ByzantineMode, Setup};

/// Everything the Byzantine agents may send after seeing `seen` (ascending by bytes).
pub fn injections(setup: &Setup, seen: &[Arc<Msg>]) -> Vec<Arc<Msg>> {
    if setup.config.byzantine_mode == ByzantineMode::Silent || setup.byzantine.is_empty() {
        return Vec::new();
    }
    let committee = Committee::of(&setup.registry, setup.protocol.mutation);
    let rounds = setup.config.rounds;
    let proposes: Vec<(AgentId, Round)> = (0..rounds)
        .filter_map(|r| committee.proposer(setup.session, r).filter(|p| setup.is_byzantine(*p)).map(|p| (p, r)))
        .collect();
    let mut values: BTreeMap<ValueId, ProposalValue> = BTreeMap::new();
    let mut honest_votes: BTreeMap<AgentId, SignedVote> = BTreeMap::new();
    let mut prevotes: BTreeMap<(Round, ValueId), BTreeMap<AgentId, RoundVote>> = BTreeMap::new();
    for m in seen {
        match &m.message {
            Message::Proposal(p) => {
                values.insert(ValueId::of(&p.value), p.value.clone());
            }
            Message::Commit(c) => {
                values.insert(ValueId::of(&c.proposal.value), c.proposal.value.clone());
            }
            Message::Vote(v) if !setup.is_byzantine(v.vote.agent) => {
                honest_votes.entry(v.vote.agent).or_insert_with(|| v.clone());
            }
            Message::RoundVote(v) if v.kind == VoteKind::Prevote && v.session == setup.session => {
                if let Some(id) = v.value {
                    prevotes.entry((v.round, id)).or_default().insert(v.agent, v.clone());
                }
            }
            _ => {}
        }
    }
    let mut invalid = Vec::new();
    if !proposes.is_empty() {
        let fresh = fresh_values(setup, &honest_votes, committee.vote_q);
        if let Some(first) = fresh.first() {
            invalid = invalid_values(setup, first, committee.vote_q);
        }
        for v in fresh {
            values.insert(ValueId::of(&v), v);
        }
    }
    let mut out = Vec::new();
    for &b in &setup.byzantine {
        for c in 0..setup.config.candidates {
            let vote = setup.vote(b, c);
            let signature = setup.keys.agents[b.0 as usize].sign(&wire::vote_signing_bytes(&vote));
            out.push(Msg::new(b, Message::Vote(SignedVote { vote, signature })));
        }
        let ids: Vec<Option<ValueId>> = std::iter::once(None).chain(values.keys().copied().map(Some)).collect();
        for r in 0..rounds {
            for kind in [VoteKind::Prevote, VoteKind::Precommit] {
                for id in &ids {
                    out.push(Msg::new(b, Message::RoundVote(round_vote(setup, b, kind, r, *id))));
                }
            }
        }
    }
    for &(b, r) in &proposes {
        for (id, value) in &values {
            out.push(Msg::new(b, Message::Proposal(Box::new(proposal(setup, b, r, None, value.clone(), Vec::new())))));
            for vr in 0..r {
                let mut signers = prevotes.get(&(vr, *id)).cloned().unwrap_or_default();
                for &own in &setup.byzantine {
                    signers.insert(own, round_vote(setup, own, VoteKind::Prevote, vr, Some(*id)));
                }
                if signers.len() >= committee.q {
                    let polka: Vec<RoundVote> = signers.into_values().take(committee.q).collect();
                    let p = proposal(setup, b, r, Some(vr), value.clone(), polka);
                    out.push(Msg::new(b, Message::Proposal(Box::new(p))));
                }
            }
        }
        for value in &invalid {
            out.push(Msg::new(b, Message::Proposal(Box::new(proposal(setup, b, r, None, value.clone(), Vec::new())))));
        }
    }
    out
}

fn round_vote(setup: &Setup, b: AgentId, kind: VoteKind, round: Round, value: Option<ValueId>) -> RoundVote {
    let bytes = wire::round_vote_signing_bytes(kind, setup.session, round, value);
    let signature = setup.keys.agents[b.0 as usize].sign(&bytes);
    RoundVote { kind, session: setup.session, round, value, agent: b, signature }
}

fn proposal(
    setup: &Setup,
    b: AgentId,
    round: Round,
    valid_round: Option<Round>,
    value: ProposalValue,
    polka: Vec<RoundVote>,
) -> Proposal {
    let signature = setup.keys.agents[b.0 as usize].sign(&wire::proposal_signing_bytes(&value, round, valid_round));
    Proposal { round, valid_round, value, proposer: b, signature, polka }
}

/// The fresh values the Byzantine proposers can build: the honest votes seen, with each
/// choice of the Byzantine agents' own votes, in every vote set of exactly `q` voters and the
/// set of all voters, each claiming its true aggregate (V4 holds).
fn fresh_values(setup: &Setup, honest: &BTreeMap<AgentId, SignedVote>, q: usize) -> Vec<ProposalValue> {
    let choices = setup.config.candidates.checked_pow(setup.byzantine.len() as u32).unwrap_or(1);
    let mut out: BTreeMap<ValueId, ProposalValue> = BTreeMap::new();
    for mut k in 0..choices {
        let mut all: Vec<SignedVote> = honest.values().cloned().collect();
        for &b in &setup.byzantine {
            let vote = setup.vote(b, k % setup.config.candidates);
            k /= setup.config.candidates;
            let signature = setup.keys.agents[b.0 as usize].sign(&wire::vote_signing_bytes(&vote));
            all.push(SignedVote { vote, signature });
        }
        all.sort_by_key(|v| v.vote.agent);
        if all.len() < q {
            continue;
        }
        let mut sets: Vec<Vec<SignedVote>> = subsets(all.len(), q)
            .into_iter()
            .map(|picked| picked.into_iter().map(|i| all[i].clone()).collect())
            .collect();
        sets.push(all.clone());
        for votes in sets {
            let (outcome, _) = recompute(ProposalMode::Normal, &setup.open, &votes, &setup.registry, &setup.engine);
            let value = ProposalValue {
                session: setup.session,
                spec: setup.open.clone(),
                mode: ProposalMode::Normal,
                votes,
                outcome,
            };
            out.insert(ValueId::of(&value), value);
        }
    }
    out.into_values().collect()
}

/// Three values that each break one check of `valid(v)`: q − 1 votes (V2), a vote altered
/// after it was signed (V3), a claimed outcome that is not the aggregate (V4).
fn invalid_values(setup: &Setup, base: &ProposalValue, q: usize) -> Vec<ProposalValue> {
    let mut out = Vec::new();
    let mut short = base.clone();
    short.votes.truncate(q.saturating_sub(1));
    out.push(short);
    let mut forged = base.clone();
    if let Some(v) = forged.votes.first_mut() {
        v.vote.confidence = Ppm::saturating(u64::from(v.vote.confidence.raw().saturating_sub(1)));
    }
    out.push(forged);
    let mut wrong = base.clone();
    wrong.outcome = match &base.outcome {
        AgreedOutcome::NoDecision { achieved } => {
            AgreedOutcome::NoDecision { achieved: Ppm::saturating(u64::from(achieved.raw() / 2)) }
        }
        _ => AgreedOutcome::NoDecision { achieved: Ppm::saturating(0) },
    };
    let _ = setup;
    out.push(wrong);
    out
}

/// Every `k`-subset of `0..n`, ascending.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if n < k {
        return Vec::new();
    }
    let mut with_last: Vec<Vec<usize>> = subsets(n - 1, k - 1);
    for s in &mut with_last {
        s.push(n - 1);
    }
    let mut out = subsets(n - 1, k);
    out.extend(with_last);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_every_choice() {
        assert_eq!(subsets(3, 2), vec![vec![0, 1], vec![0, 2], vec![1, 2]]);
        assert_eq!(subsets(4, 3).len(), 4);
        assert!(subsets(2, 3).is_empty());
    }
}
