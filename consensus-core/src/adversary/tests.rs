//! The scripted strategies, one test each (the full-power agent is tested in `full_power`).

use std::collections::BTreeMap;

use super::scripted::{best_rated, collusion_target, conflicting_vote, ATTACK_CONFIDENCE, ATTACK_SCORE};
use super::*;
use crate::aggregate::{aggregate, SessionInput};
use crate::protocol::messages::SessionSpec;
use crate::protocol::{Message, ProtocolConfig, RoundVote, Timer, TimerKind, VoteKind};
use crate::sign::{sim_committee, Keys, SimKeyring, SimSigner};
use crate::types::AgentSpecialization;

const N: u32 = 5;
type Keyset = Keys<SimSigner, SimKeyring>;
type Byz = Byzantine<SimSigner, SimKeyring>;

fn ppm(raw: u64) -> Ppm {
    Ppm::saturating(raw)
}

/// Every session up to 63 is validated against the initial registry, so tests can open
/// sessions out of order without deciding the earlier ones.
fn protocol() -> ProtocolConfig {
    ProtocolConfig { pipeline: 64, ..ProtocolConfig::default() }
}

fn honest(keys: &Keyset, i: u32) -> Agent<SimSigner, SimKeyring> {
    let engine = EngineConfig::default();
    let registry = Registry::seed_committee(N, &engine);
    Agent::new(keys.agents[i as usize].clone(), keys.keyring.clone(), registry, engine, protocol())
}

fn byzantine(keys: &Keyset, i: u32, strategy: Strategy, collusion_key: u64) -> Byz {
    let peers = (0..N).map(AgentId).collect();
    let signer = keys.agents[i as usize].clone();
    Byzantine::new(honest(keys, i), signer, strategy, peers, EngineConfig::default(), 99, collusion_key)
}

fn open(keys: &Keyset, session: u64, opened_ms: TimeMs) -> Input {
    let spec = SessionSpec {
        session: SessionId(session),
        query: format!("query {session}"),
        candidates: vec![CandidateId(0), CandidateId(1), CandidateId(2)],
        opened_ms,
    };
    let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
    Input::Receive { from: AgentId::CLIENT, message: Message::Open(SignedSpec { spec, signature }) }
}

/// An honest, consistent vote: accepts the best of `scores` (candidates 0, 1, 2).
fn vote(agent: u32, session: u64, scores: [u64; 3]) -> AgentVote {
    let scores: BTreeMap<CandidateId, Ppm> = (0..3).map(|c| (CandidateId(c), ppm(scores[c as usize]))).collect();
    let best = best_rated(&scores).unwrap_or_default();
    let score = scores.get(&best).copied().unwrap_or(Ppm::ZERO);
    let spec = AgentSpecialization::cycled(agent as usize);
    let mut v = AgentVote::accept(AgentId(agent), spec, SessionId(session), best, score, ppm(950_000));
    v.scores = scores;
    v
}

const HONEST: [u64; 3] = [900_000, 500_000, 200_000];

fn signed(keys: &Keyset, v: AgentVote) -> Input {
    let signature = keys.agents[v.agent.0 as usize].sign(&wire::vote_signing_bytes(&v));
    Input::Receive { from: v.agent, message: Message::Vote(SignedVote { vote: v, signature }) }
}

fn feed(node: &mut impl Node, now: TimeMs, inputs: Vec<Input>) -> Vec<Output> {
    let mut out = Vec::new();
    for input in inputs {
        node.handle(now, input, &mut out);
    }
    out
}

fn broadcast_votes(out: &[Output]) -> Vec<SignedVote> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::Vote(v)) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

fn proposals(out: &[Output]) -> Vec<Proposal> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(Message::Proposal(p)) => Some((**p).clone()),
            _ => None,
        })
        .collect()
}

fn verifies(keys: &Keyset, v: &SignedVote) -> bool {
    keys.keyring.verify(v.vote.agent, &wire::vote_signing_bytes(&v.vote), &v.signature)
}

/// The engine counts the vote: no `InconsistentScores` or other rejection.
fn counted(v: &AgentVote) -> bool {
    let engine = EngineConfig::default();
    let candidates = [CandidateId(0), CandidateId(1), CandidateId(2)];
    let votes = [v.clone()];
    let input = SessionInput { session: v.session, candidates: &candidates, votes: &votes };
    aggregate(&input, &Registry::seed_committee(N, &engine), &engine).rejected.is_empty()
}

/// The one vote the node broadcast after its own vote of `session` arrived.
fn own_vote(node: &mut Byz, keys: &Keyset, session: u64, scores: [u64; 3]) -> SignedVote {
    let agent = node.id().0;
    let out = feed(node, 10, vec![open(keys, session, 0), Input::LocalVote(vote(agent, session, scores))]);
    let votes = broadcast_votes(&out);
    assert_eq!(votes.len(), 1, "{out:?}");
    votes[0].clone()
}

#[test]
fn names_match_serde_and_round_trip() {
    for s in Strategy::ALL {
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", s.name()));
        assert_eq!(Strategy::from_name(s.name()), Some(s));
    }
    assert_eq!(Strategy::from_name("honest"), None);
}

#[test]
fn silent_outputs_nothing() {
    let keys = sim_committee(1, N);
    let mut node = byzantine(&keys, 0, Strategy::Silent, 0);
    let timer = Timer { session: SessionId(0), round: 0, kind: TimerKind::Propose };
    let inputs = vec![
        open(&keys, 0, 0),
        Input::LocalVote(vote(0, 0, HONEST)),
        signed(&keys, vote(1, 0, HONEST)),
        Input::Timeout(timer),
    ];
    assert!(feed(&mut node, 300, inputs).is_empty());
}

#[test]
fn vote_worst_votes_for_the_worst_candidate_consistently() {
    let keys = sim_committee(2, N);
    let mut node = byzantine(&keys, 0, Strategy::VoteWorst, 0);
    let v = own_vote(&mut node, &keys, 0, HONEST);
    assert!(verifies(&keys, &v));
    assert_eq!(v.vote.candidate, CandidateId(2));
    assert_eq!(v.vote.value.accept_score(), Some(ATTACK_SCORE));
    assert_eq!(v.vote.confidence, ATTACK_CONFIDENCE);
    assert!(v.vote.scores.iter().all(|(c, s)| *c == CandidateId(2) || *s < ATTACK_SCORE));
    assert!(counted(&v.vote));
}

#[test]
fn random_is_consistent_and_deterministic() {
    let keys = sim_committee(3, N);
    let mut a = byzantine(&keys, 1, Strategy::Random, 0);
    let mut b = byzantine(&keys, 1, Strategy::Random, 0);
    for session in 0..8 {
        let va = own_vote(&mut a, &keys, session, HONEST);
        assert_eq!(va, own_vote(&mut b, &keys, session, HONEST));
        let score = va.vote.value.accept_score().unwrap_or(Ppm::ZERO);
        assert!(score.raw() >= 500_000 && va.vote.confidence.raw() >= 500_000);
        assert!(counted(&va.vote) && verifies(&keys, &va));
    }
}

#[test]
fn inflate_confidence_keeps_the_choice() {
    let keys = sim_committee(4, N);
    let mut node = byzantine(&keys, 2, Strategy::InflateConfidence, 0);
    let v = own_vote(&mut node, &keys, 0, HONEST);
    assert_eq!((v.vote.candidate, v.vote.confidence), (CandidateId(0), Ppm::ONE));
    assert_eq!(v.vote.value.accept_score(), Some(Ppm::ONE));
    assert!(counted(&v.vote));
}

#[test]
fn colluders_pick_the_same_target_and_never_their_best() {
    let keys = sim_committee(5, N);
    let mut a = byzantine(&keys, 1, Strategy::Collude, 7);
    let mut b = byzantine(&keys, 3, Strategy::Collude, 7);
    let mut targets = Vec::new();
    for session in 0..12 {
        let va = own_vote(&mut a, &keys, session, HONEST);
        let vb = own_vote(&mut b, &keys, session, [850_000, 450_000, 300_000]);
        assert_eq!(va.vote.candidate, vb.vote.candidate, "session {session}");
        assert_ne!(va.vote.candidate, CandidateId(0), "the target is never the own best");
        assert!(counted(&va.vote) && counted(&vb.vote));
        targets.push(va.vote.candidate);
    }
    assert!(targets.contains(&CandidateId(1)) && targets.contains(&CandidateId(2)), "{targets:?}");
}

#[test]
fn adaptive_stays_under_the_threshold_and_attacks_close_targets() {
    let keys = sim_committee(6, N);
    let mut node = byzantine(&keys, 4, Strategy::Adaptive, 11);
    let scores = [900_000, 700_000, 200_000];
    let honest_scores = vote(4, 0, scores).scores;
    let (mut attacked, mut held_back) = (false, false);
    for session in 0..16 {
        let v = own_vote(&mut node, &keys, session, scores);
        let deviation = v.vote.scores.iter().map(|(c, s)| s.abs_diff(honest_scores[c]).raw()).max();
        assert!(deviation.unwrap_or(0) < 300_000, "{:?}", v.vote.scores);
        assert!(counted(&v.vote));
        match collusion_target(11, SessionId(session), &honest_scores) {
            // 0.7 + 0.25 beats 0.9: the target wins.
            Some(CandidateId(1)) => attacked |= v.vote.candidate == CandidateId(1),
            // 0.2 + 0.25 does not: the honest best stays.
            _ => held_back |= v.vote.candidate == CandidateId(0),
        }
    }
    assert!(attacked && held_back);
}

#[test]
fn delay_to_deadline_releases_the_vote_50ms_before_the_deadline() {
    let keys = sim_committee(7, N);
    let mut node = byzantine(&keys, 1, Strategy::DelayToDeadline, 0);
    let retransmit = Input::Timeout(Timer { session: SessionId(0), round: 0, kind: TimerKind::Retransmit });
    let out = feed(&mut node, 20, vec![open(&keys, 0, 0), Input::LocalVote(vote(1, 0, HONEST))]);
    assert!(broadcast_votes(&out).is_empty());
    for now in [100, 300, 449] {
        assert!(broadcast_votes(&feed(&mut node, now, vec![retransmit.clone()])).is_empty(), "at {now}");
    }
    let released = broadcast_votes(&feed(&mut node, 450, vec![retransmit]));
    assert!(!released.is_empty());
    assert!(released.iter().all(|v| v.vote.candidate == CandidateId(0) && verifies(&keys, v)));
}

#[test]
fn equivocate_sends_conflicting_signed_votes_and_round_votes() {
    let keys = sim_committee(8, N);
    let mut node = byzantine(&keys, 0, Strategy::Equivocate, 0);
    let out = feed(&mut node, 10, vec![open(&keys, 0, 0), Input::LocalVote(vote(0, 0, HONEST))]);
    assert!(broadcast_votes(&out).is_empty());
    let sent: BTreeMap<AgentId, SignedVote> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { to, message: Message::Vote(v) } => Some((*to, v.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sent.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4].map(AgentId));
    assert_eq!((sent[&AgentId(1)].vote.candidate, sent[&AgentId(2)].vote.candidate), (CandidateId(0), CandidateId(0)));
    assert_eq!(sent[&AgentId(3)], sent[&AgentId(4)]);
    assert_ne!(sent[&AgentId(3)].vote.candidate, CandidateId(0));
    assert!(sent.values().all(|v| verifies(&keys, v) && counted(&v.vote)));
    // The propose timeout's nil prevote: nil to the first half, a value to the second.
    let timer = Timer { session: SessionId(0), round: 0, kind: TimerKind::Propose };
    let out = feed(&mut node, 200, vec![Input::Timeout(timer)]);
    let prevotes: Vec<(AgentId, RoundVote)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { to, message: Message::RoundVote(v) } if v.kind == VoteKind::Prevote => {
                Some((*to, v.clone()))
            }
            _ => None,
        })
        .collect();
    let values: Vec<bool> = prevotes.iter().map(|(_, v)| v.value.is_some()).collect();
    assert_eq!(values, [false, false, true, true]);
    for (_, v) in &prevotes {
        let bytes = wire::round_vote_signing_bytes(v.kind, v.session, v.round, v.value);
        assert!(keys.keyring.verify(AgentId(0), &bytes, &v.signature));
    }
}

#[test]
fn forged_votes_claim_other_agents_and_fail_verification() {
    let keys = sim_committee(9, N);
    let mut node = byzantine(&keys, 2, Strategy::Forge, 0);
    let out = feed(&mut node, 10, vec![open(&keys, 0, 0), Input::LocalVote(vote(2, 0, HONEST))]);
    let votes = broadcast_votes(&out);
    let (own, forged): (Vec<_>, Vec<_>) = votes.into_iter().partition(|v| v.vote.agent == AgentId(2));
    assert_eq!(own.len(), 1);
    assert!(verifies(&keys, &own[0]) && own[0].vote.candidate == CandidateId(0));
    let claimed: Vec<AgentId> = forged.iter().map(|v| v.vote.agent).collect();
    assert_eq!(claimed, [0, 1, 3, 4].map(AgentId));
    for v in &forged {
        assert!(!verifies(&keys, v), "a forgery for {} verified", v.vote.agent);
        assert_eq!(v.vote.candidate, CandidateId(2));
        assert_eq!(v.vote.specialization, AgentSpecialization::cycled(v.vote.agent.0 as usize));
    }
}

#[test]
fn replay_resends_old_session_votes_and_a_relabelled_copy() {
    let keys = sim_committee(10, N);
    let mut node = byzantine(&keys, 0, Strategy::Replay, 0);
    let old = [vote(1, 0, HONEST), vote(2, 0, HONEST)];
    let mut inputs = vec![open(&keys, 0, 0)];
    inputs.extend(old.iter().map(|v| signed(&keys, v.clone())));
    inputs.push(signed(&keys, old[0].clone())); // a retransmission is remembered once
    feed(&mut node, 10, inputs);
    let out = feed(&mut node, 600, vec![open(&keys, 1, 600), Input::LocalVote(vote(0, 1, HONEST))]);
    let votes = broadcast_votes(&out);
    assert_eq!(votes.len(), 4, "own vote, two replays, one relabelled copy: {votes:?}");
    assert_eq!(votes[0].vote.agent, AgentId(0));
    assert_eq!([votes[1].vote.clone(), votes[2].vote.clone()], old);
    assert!(votes[1..3].iter().all(|v| verifies(&keys, v)));
    assert_eq!((votes[3].vote.agent, votes[3].vote.session), (AgentId(2), SessionId(1)));
    assert!(!verifies(&keys, &votes[3]));
}

/// Runs session `s` on `node` (agent 0, the proposer of round 0 when `s` is a multiple of
/// 5): four other votes (not unanimous, so it waits for all five) and its own.
fn propose(node: &mut impl Node, keys: &Keyset, s: u64) -> Vec<Output> {
    let mut inputs = vec![open(keys, s, 0)];
    inputs.extend((1..4).map(|a| signed(keys, vote(a, s, HONEST))));
    inputs.push(signed(keys, vote(4, s, [400_000, 800_000, 200_000])));
    inputs.push(Input::LocalVote(vote(0, s, HONEST)));
    feed(node, 10, inputs)
}

/// What honest agent 1 prevotes on `p`.
fn honest_prevote(keys: &Keyset, p: &Proposal) -> Option<Option<ValueId>> {
    let mut agent = honest(keys, 1);
    let message = Message::Proposal(Box::new(p.clone()));
    let out =
        feed(&mut agent, 20, vec![open(keys, p.value.session.0, 0), Input::Receive { from: AgentId(0), message }]);
    out.iter().find_map(|o| match o {
        Output::Broadcast(Message::RoundVote(v)) if v.kind == VoteKind::Prevote => Some(v.value),
        _ => None,
    })
}

fn recomputed(p: &Proposal) -> AgreedOutcome {
    let registry = Registry::seed_committee(N, &EngineConfig::default());
    outcome_of(p.value.mode, &p.value.spec, &p.value.votes, &registry, &EngineConfig::default())
}

#[test]
fn bad_proposer_withholds_its_proposal() {
    let keys = sim_committee(11, N);
    assert_eq!(BadProposerMode::for_session(SessionId(0)), BadProposerMode::Withhold);
    let mut control = honest(&keys, 0);
    assert_eq!(proposals(&propose(&mut control, &keys, 0)).len(), 1, "an honest agent 0 proposes");
    let mut node = byzantine(&keys, 0, Strategy::BadProposer, 0);
    assert!(proposals(&propose(&mut node, &keys, 0)).is_empty());
}

#[test]
fn bad_proposer_invalid_aggregate_is_rejected() {
    let keys = sim_committee(12, N);
    assert_eq!(BadProposerMode::for_session(SessionId(10)), BadProposerMode::InvalidAggregate);
    let mut node = byzantine(&keys, 0, Strategy::BadProposer, 0);
    let p = proposals(&propose(&mut node, &keys, 10));
    assert_eq!(p.len(), 1);
    assert_ne!(p[0].value.outcome, recomputed(&p[0]));
    assert_eq!(honest_prevote(&keys, &p[0]), Some(None), "honest agents prevote nil");
}

#[test]
fn bad_proposer_cherry_picks_a_valid_proposal() {
    let keys = sim_committee(13, N);
    assert_eq!(BadProposerMode::for_session(SessionId(5)), BadProposerMode::CherryPick);
    let mut control = honest(&keys, 0);
    let honest_p = proposals(&propose(&mut control, &keys, 5));
    let chosen = honest_p.first().and_then(|p| p.value.outcome.chosen());
    assert_eq!(chosen, Some(CandidateId(0)));
    let mut node = byzantine(&keys, 0, Strategy::BadProposer, 0);
    let p = proposals(&propose(&mut node, &keys, 5));
    assert_eq!(p.len(), 1);
    let voters: Vec<u32> = p[0].value.votes.iter().map(|v| v.vote.agent.0).collect();
    assert_eq!(voters, [0, 1, 2, 4], "agent 3, the highest supporter of candidate 0, is left out");
    assert_eq!(p[0].value.outcome, recomputed(&p[0]));
    assert_eq!(honest_prevote(&keys, &p[0]), Some(Some(ValueId::of(&p[0].value))), "the proposal is valid");
}

#[test]
fn helpers_keep_votes_consistent_and_outcomes_different() {
    let v = vote(0, 0, HONEST);
    let c = conflicting_vote(&v);
    assert_ne!(c, v);
    assert!(counted(&c));
    let mut lone =
        AgentVote::accept(AgentId(0), AgentSpecialization::Retriever, SessionId(0), CandidateId(0), ppm(1), Ppm::ONE);
    lone.scores.insert(CandidateId(0), ppm(1));
    assert_ne!(conflicting_vote(&lone), lone);
    let candidates = [CandidateId(0), CandidateId(1)];
    let decided = AgreedOutcome::Decided {
        chosen: CandidateId(0),
        method: ConsensusMethod::Threshold,
        agreement: Ppm::ONE,
        byzantine: Vec::new(),
    };
    for actual in [decided, AgreedOutcome::NoDecision { achieved: Ppm::HALF }] {
        for cands in [&candidates[..], &candidates[..1], &[]] {
            assert_ne!(fake_outcome(&actual, cands), actual);
        }
    }
}
