//! The oracle's unit tests: each invariant's checker can fail, on constructed decisions.

use super::*;
use consensus_core::protocol::messages::{
    Commit, Proposal, ProposalValue, SessionSpec, SignedSpec, SignedVote, ValueId,
};
use consensus_core::protocol::{Message, VoteKind};
use consensus_core::sign::{sim_committee, Signature, Signer};
use consensus_core::wire;
use consensus_core::{AgentSpecialization, Ppm};

fn oracle(n: u32) -> Oracle {
    let engine = EngineConfig::default();
    let keys = sim_committee(1, n);
    let registry = Registry::seed_committee(n, &engine);
    let honest = (0..n).map(AgentId).collect();
    Oracle::new(keys.keyring, registry, engine, ProtocolConfig::default(), honest)
}

/// A nil prevote of `agent`, with a signature of its own (the oracle compares signatures with
/// what the signer sent, it does not check them).
fn prevote(session: SessionId, round: Round, agent: u32) -> RoundVote {
    vote(VoteKind::Prevote, session, round, agent)
}

fn vote(kind: VoteKind, session: SessionId, round: Round, agent: u32) -> RoundVote {
    let signature = Signature([u8::try_from(agent).unwrap_or(0xff); 64]);
    RoundVote { kind, session, round, value: None, agent: AgentId(agent), signature }
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
        let seen =
            SeenDecision { value: r.value, round: r.round, outcome: r.outcome.clone(), mode: r.mode, at_ms: r.at_ms };
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
    for part in ["value abababababababab in round 0", "value cdcdcdcdcdcdcdcd in round 2", "(candidate 1 (by threshold"]
    {
        assert!(v.detail.contains(part), "{part:?} missing from {:?}", v.detail);
    }
}

#[test]
fn liveness_in_rounds_fails_an_honest_undecided_agent_at_the_bound_round() {
    let session = SessionId(3);
    let mut honest = oracle(4).with_liveness_rounds(Some(5));
    honest.honest.remove(&AgentId(2));
    honest.on_own_round_vote(AgentId(0), &prevote(session, 4, 0), 1, 100);
    assert_eq!(honest.violation(), None, "round 4 is below the bound of 5 rounds");
    honest.on_own_round_vote(AgentId(2), &prevote(session, 9, 2), 2, 110);
    assert_eq!(honest.violation(), None, "a Byzantine agent's rounds prove nothing");
    let seen = SeenDecision { value: None, round: Some(1), outcome: chose(0), mode: ProposalMode::Normal, at_ms: 5 };
    honest.decisions.entry(session).or_default().insert(AgentId(1), seen);
    honest.on_own_round_vote(AgentId(1), &prevote(session, 7, 1), 3, 120);
    assert_eq!(honest.violation(), None, "agent 1 decided the session");
    honest.on_own_round_vote(AgentId(0), &prevote(session, 5, 0), 4, 130);
    let v = honest.violation().expect("agent 0 entered round 5 undecided");
    assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::LIVENESS, 4, 130));
    assert!(v.detail.contains("round 5 of session-3"), "{}", v.detail);

    let mut off = oracle(4);
    off.on_own_round_vote(AgentId(0), &prevote(session, 1_000, 0), 1, 100);
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
        oracle.on_local_vote(v.vote.agent, &v.vote, 0, 0);
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
        oracle.on_local_vote(v.vote.agent, &v.vote, 0, 0);
    }
    oracle.on_decide(AgentId(0), &record, 1, 10);
    assert_eq!(oracle.influenced(SessionId(0)), None);
}

/// The oracle of `decision(for_one)` with agent 6 Byzantine and candidate 0 the best, fed
/// every honest vote, then told that the session was decided by `method` for candidate 1
/// (bypassing the decision-time checks: no valid vote set of this committee decides so,
/// which is what the bound says).
fn decided_for_one(for_one: u32, method: ConsensusMethod) -> Oracle {
    let (oracle, mut record) = decision(for_one);
    let honest: BTreeSet<AgentId> = (0..6).map(AgentId).collect();
    let mut oracle =
        Oracle::new(oracle.keyring.clone(), oracle.registry.clone(), oracle.engine, oracle.protocol, honest)
            .with_promises(Promises::of(7, 1))
            .with_best([(SessionId(0), CandidateId(0))].into());
    for v in record.votes.iter().filter(|v| v.vote.agent != AgentId(6)) {
        oracle.on_local_vote(v.vote.agent, &v.vote, 0, 0);
    }
    record.outcome =
        AgreedOutcome::Decided { chosen: CandidateId(1), method, agreement: Ppm::ONE, byzantine: Vec::new() };
    oracle.first.insert(SessionId(0), record.clone());
    oracle.start_reference(&record, 9, 20);
    oracle
}

/// The influence-bound checker can fail: one Byzantine agent of 7 (bound 1 + 2 + 2 = 5)
/// cannot have turned six honest supporters of the best candidate (margin 6) into a
/// decision for another; a margin of 2 is within the bound, and a minority overrule is not
/// bounded in votes.
#[test]
fn influence_bound_reports_a_wrong_decision_beyond_the_honest_margin() {
    let beyond = decided_for_one(1, ConsensusMethod::Threshold);
    assert_eq!(beyond.influenced(SessionId(0)), Some(true));
    assert_eq!(beyond.honest_margin(SessionId(0), CandidateId(1)), Some(6));
    let v = beyond.violation().unwrap_or_else(|| panic!("margin 6 > bound 5: a violation"));
    assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::INFLUENCE_BOUND, 9, 20));
    assert!(v.detail.contains("6 more honest agents") && v.detail.contains("bound of 5"), "{}", v.detail);
    assert!(!v.detail.contains('{'), "in words: {}", v.detail);
    assert!(beyond.beyond_influence_bound(SessionId(0)));

    let within = decided_for_one(3, ConsensusMethod::Threshold);
    assert_eq!(within.influenced(SessionId(0)), Some(true), "the honest votes alone decide candidate 0");
    assert_eq!(within.honest_margin(SessionId(0), CandidateId(1)), Some(2));
    assert_eq!(within.violation(), None);
    assert!(!within.beyond_influence_bound(SessionId(0)));

    let overrule = decided_for_one(1, ConsensusMethod::MinorityOverrule);
    assert_eq!(overrule.violation(), None, "the design lets strong evidence overrule a majority");
}

#[test]
fn promises_follow_quorum_arithmetic() {
    // n = 5: q = 4, 2q − n = 3: agreement holds with up to 2 Byzantine agents.
    let all = Promises { agreement: true, unanimity_validity: true, influence_bound: true, opener_keeps_pending: true };
    let agreement_only =
        Promises { agreement: true, unanimity_validity: false, influence_bound: false, opener_keeps_pending: false };
    let none = Promises { agreement: false, ..agreement_only };
    assert_eq!(Promises::of(5, 1), all);
    assert_eq!(Promises::of(5, 2), agreement_only);
    assert_eq!(Promises::of(5, 3), none);
    // n = 4: q = 3, 2q − n = 2.
    assert_eq!(Promises::of(4, 1), all);
    assert_eq!(Promises::of(4, 2), none);
}

/// A proposal of session 0, round 0, by agent 0, of `decision(0)`'s votes with the outcome the
/// engine computes from them (a valid value), and the oracle that judges it.
fn honest_proposal() -> (Oracle, Proposal) {
    let (oracle, record) = decision(0);
    let outcome = recompute(ProposalMode::Normal, &record.spec, &record.votes, &oracle.registry, &oracle.engine).0;
    let value = ProposalValue {
        session: record.session,
        spec: record.spec,
        mode: ProposalMode::Normal,
        votes: record.votes,
        outcome,
    };
    let signature = sim_committee(7, 7).agents[0].sign(&wire::proposal_signing_bytes(&value, 0, None));
    let proposal = Proposal { round: 0, valid_round: None, value, proposer: AgentId(0), signature, polka: vec![] };
    (oracle, proposal)
}

/// The honest-proposal-valid checker fails on each V-check an honest proposer's value can
/// break, and judges only an honest agent's own proposals.
#[test]
fn honest_proposal_valid_reports_each_broken_check() {
    type Breaks = fn(&mut Proposal);
    let table: [(&str, Breaks, Option<&str>); 11] = [
        ("valid", |_| {}, None),
        ("unsigned proposal", |p| p.signature = Signature::ZERO, Some("its signature does not verify")),
        ("signature of another valid round", |p| p.valid_round = Some(0), Some("its signature does not verify")),
        ("another session's spec", |p| p.value.spec.spec.session = SessionId(1), Some("V1: its spec names session-1")),
        ("too few votes", |p| p.value.votes.truncate(4), Some("V2: 4 votes, the quorum is 5")),
        ("descending", |p| p.value.votes.reverse(), Some("V2: its votes are not from distinct agents")),
        ("duplicate voter", |p| p.value.votes[1] = p.value.votes[0].clone(), Some("V2: its votes are not")),
        ("forged vote", |p| p.value.votes[2].signature = Signature::ZERO, Some("V3: the vote of agent-2")),
        ("wrong tally", |p| p.value.outcome = chose(1), Some("V4: it claims candidate 1")),
        ("early fallback", |p| p.value.mode = ProposalMode::Fallback, Some("V7: a fallback value")),
        ("unsigned spec", |p| p.value.spec.signature = Signature::ZERO, Some("V1: its spec")),
    ];
    for (name, breaks, expected) in table {
        let (mut oracle, mut proposal) = honest_proposal();
        breaks(&mut proposal);
        oracle.on_proposal_sent(AgentId(0), &proposal, 4, 30);
        match (oracle.violation(), expected) {
            (None, None) => {}
            (Some(v), Some(part)) => {
                assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::HONEST_PROPOSAL_VALID, 4, 30), "{name}");
                assert!(v.detail.contains(part), "{name}: {part:?} missing from {:?}", v.detail);
                assert!(v.detail.contains("agent-0, honest, proposed in round 0 of session-0"), "{}", v.detail);
            }
            (got, expected) => panic!("{name}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn honest_proposal_valid_judges_only_honest_proposers_own_proposals() {
    let (oracle, mut proposal) = honest_proposal();
    proposal.value.votes.truncate(4);
    // Relayed by another agent: not agent 1's proposal.
    let mut relayed = Oracle::new(
        oracle.keyring.clone(),
        oracle.registry.clone(),
        oracle.engine,
        oracle.protocol,
        oracle.honest.clone(),
    );
    relayed.on_proposal_sent(AgentId(1), &proposal, 1, 1);
    assert_eq!(relayed.violation(), None);
    // A Byzantine proposer may propose anything.
    let honest: BTreeSet<AgentId> = (1..7).map(AgentId).collect();
    let mut byzantine =
        Oracle::new(oracle.keyring.clone(), oracle.registry.clone(), oracle.engine, oracle.protocol, honest);
    byzantine.on_proposal_sent(AgentId(0), &proposal, 1, 1);
    assert_eq!(byzantine.violation(), None);
    // Beyond 2q − n Byzantine agents honest epochs may differ: not judged.
    let mut unpromised = Oracle::new(
        oracle.keyring.clone(),
        oracle.registry.clone(),
        oracle.engine,
        oracle.protocol,
        oracle.honest.clone(),
    )
    .with_promises(Promises::of(7, 3));
    unpromised.on_proposal_sent(AgentId(0), &proposal, 1, 1);
    assert_eq!(unpromised.violation(), None);
    // Judged once per (session, round): a later copy of a valid proposal is not re-judged.
    let (mut once, valid) = honest_proposal();
    once.on_proposal_sent(AgentId(0), &valid, 1, 1);
    once.on_proposal_sent(AgentId(0), &proposal, 2, 2);
    assert_eq!(once.violation(), None);
}

// ---- evidence-sound and equivocation-detected ----

type SimKeys = consensus_core::sign::Keys<consensus_core::sign::SimSigner, SimKeyring>;

/// n = 4, agents 0–2 honest, agent 3 Byzantine; the committee's keys.
fn evidence_oracle() -> (Oracle, SimKeys) {
    let engine = EngineConfig::default();
    let keys = sim_committee(1, 4);
    let registry = Registry::seed_committee(4, &engine);
    let honest = (0..3).map(AgentId).collect();
    (Oracle::new(keys.keyring.clone(), registry, engine, ProtocolConfig::default(), honest), keys)
}

/// `agent`'s vote in session 0 for `candidate`, signed by it.
fn session_vote(keys: &SimKeys, agent: u32, candidate: u32) -> SignedVote {
    let vote = AgentVote::accept(
        AgentId(agent),
        AgentSpecialization::Monitor,
        SessionId(0),
        CandidateId(candidate),
        Ppm::saturating(900_000),
        Ppm::saturating(900_000),
    );
    let signature = keys.agents[agent as usize].sign(&wire::vote_signing_bytes(&vote));
    SignedVote { vote, signature }
}

/// `agent`'s prevote in session 0, `round`, for `value` (a byte of the id) or nil, signed by it.
fn signed_prevote(keys: &SimKeys, agent: u32, round: Round, value: Option<u8>) -> consensus_core::protocol::RoundVote {
    use consensus_core::protocol::VoteKind;
    let value = value.map(|b| ValueId([b; 32]));
    let bytes = wire::round_vote_signing_bytes(VoteKind::Prevote, SessionId(0), round, value);
    let signature = keys.agents[agent as usize].sign(&bytes);
    consensus_core::protocol::RoundVote {
        kind: VoteKind::Prevote,
        session: SessionId(0),
        round,
        value,
        agent: AgentId(agent),
        signature,
    }
}

/// The round of session 0 that `agent` proposes in (n = 4).
fn round_proposed_by(o: &Oracle, agent: u32) -> Round {
    let committee = Committee::of(&o.registry, Mutation::None);
    (0..8).find(|r| committee.proposer(SessionId(0), *r) == Some(AgentId(agent))).expect("every agent proposes")
}

/// A proposal of session 0 by `agent` in `round` whose value's query is `query`, signed by it.
fn signed_proposal(keys: &SimKeys, agent: u32, round: Round, query: &str) -> Proposal {
    let spec =
        SessionSpec { session: SessionId(0), query: query.into(), candidates: vec![CandidateId(0)], opened_ms: 0 };
    let signature = keys.client.sign(&wire::spec_signing_bytes(&spec));
    let value = ProposalValue {
        session: SessionId(0),
        spec: SignedSpec { spec, signature },
        mode: ProposalMode::Normal,
        votes: vec![],
        outcome: AgreedOutcome::NoDecision { achieved: Ppm::ZERO },
    };
    let signature = keys.agents[agent as usize].sign(&wire::proposal_signing_bytes(&value, round, None));
    Proposal { round, valid_round: None, value, proposer: AgentId(agent), signature, polka: vec![] }
}

/// `evidence-sound` passes real evidence of the Byzantine agent and fails evidence that
/// convicts an honest agent, carries a forged or a non-conflicting message, or names
/// conflicting proposals never delivered.
#[test]
fn evidence_sound_fails_on_wrong_evidence_only() {
    use consensus_core::protocol::Evidence;
    let (_, keys) = evidence_oracle();
    let boxed = |v: SignedVote| Box::new(v);
    let votes = |a: SignedVote, b: SignedVote| Evidence::ConflictingVotes { first: boxed(a), second: boxed(b) };
    let round_votes = |a, b| Evidence::ConflictingRoundVotes { first: Box::new(a), second: Box::new(b) };
    let mut forged = session_vote(&keys, 3, 1);
    forged.signature = keys.agents[0].sign(&wire::vote_signing_bytes(&forged.vote));
    let mut other_session = session_vote(&keys, 3, 1);
    other_session.vote.session = SessionId(1);
    other_session.signature = keys.agents[3].sign(&wire::vote_signing_bytes(&other_session.vote));
    let mut forged_prevote = signed_prevote(&keys, 3, 0, Some(2));
    forged_prevote.signature = Signature::ZERO;
    let table: Vec<(&str, Evidence, Option<&str>)> = vec![
        ("two votes", votes(session_vote(&keys, 3, 0), session_vote(&keys, 3, 1)), None),
        ("two prevotes", round_votes(signed_prevote(&keys, 3, 0, Some(1)), signed_prevote(&keys, 3, 0, None)), None),
        ("an honest voter", votes(session_vote(&keys, 1, 0), session_vote(&keys, 1, 1)), Some("agent-1 is honest")),
        ("the same vote", votes(session_vote(&keys, 3, 0), session_vote(&keys, 3, 0)), Some("the same")),
        ("a forged vote", votes(session_vote(&keys, 3, 0), forged), Some("a vote is not signed by agent-3")),
        ("two sessions", votes(session_vote(&keys, 3, 0), other_session), Some("not of one signer and session")),
        (
            "two rounds",
            round_votes(signed_prevote(&keys, 3, 0, Some(1)), signed_prevote(&keys, 3, 1, Some(2))),
            Some("not of one signer, session, round"),
        ),
        (
            "one value",
            round_votes(signed_prevote(&keys, 3, 0, Some(1)), signed_prevote(&keys, 3, 0, Some(1))),
            Some("same value"),
        ),
        (
            "a forged prevote",
            round_votes(signed_prevote(&keys, 3, 0, Some(1)), forged_prevote),
            Some("a round vote is not signed"),
        ),
        (
            "proposals never delivered",
            Evidence::ConflictingProposals { proposer: AgentId(3), session: SessionId(0), round: 3 },
            Some("no two different proposals of round 3"),
        ),
        (
            "an honest proposer",
            Evidence::ConflictingProposals { proposer: AgentId(0), session: SessionId(0), round: 0 },
            Some("agent-0 is honest"),
        ),
    ];
    for (name, e, expected) in table {
        let (mut o, _) = evidence_oracle();
        o.on_evidence(AgentId(1), &e, 5, 40);
        match (o.violation(), expected) {
            (None, None) => {}
            (Some(v), Some(part)) => {
                assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::EVIDENCE_SOUND, 5, 40), "{name}");
                assert!(v.detail.contains(part), "{name}: {part:?} missing from {:?}", v.detail);
                assert!(v.detail.contains("agent-1, honest, emitted evidence convicting"), "{}", v.detail);
            }
            (got, expected) => panic!("{name}: expected {expected:?}, got {got:?}"),
        }
        // A Byzantine agent's evidence is not judged.
        let (mut o, _) = evidence_oracle();
        let e = Evidence::ConflictingProposals { proposer: AgentId(0), session: SessionId(0), round: 0 };
        o.on_evidence(AgentId(3), &e, 5, 40);
        assert_eq!(o.violation(), None, "{name}");
    }
    // Conflicting proposals are sound once two different validly signed ones were delivered.
    let (mut o, keys) = evidence_oracle();
    let r = round_proposed_by(&o, 3);
    let e = Evidence::ConflictingProposals { proposer: AgentId(3), session: SessionId(0), round: r };
    let mut unsigned = signed_proposal(&keys, 3, r, "b");
    unsigned.signature = Signature::ZERO;
    for (p, to) in [(signed_proposal(&keys, 3, r, "a"), 0), (signed_proposal(&keys, 3, r, "a"), 2), (unsigned, 1)] {
        o.on_deliver(AgentId(to), &Message::Proposal(Box::new(p)), 1);
    }
    o.on_evidence(AgentId(1), &e, 5, 40);
    assert_eq!(o.violation().map(|v| v.invariant.as_str()), Some(names::EVIDENCE_SOUND), "one signed proposal only");
    let (mut o, _) = evidence_oracle();
    for (p, to) in [(signed_proposal(&keys, 3, r, "a"), 0), (signed_proposal(&keys, 3, r, "b"), 3)] {
        o.on_deliver(AgentId(to), &Message::Proposal(Box::new(p)), 1);
    }
    o.on_evidence(AgentId(1), &e, 5, 40);
    assert_eq!(o.violation(), None, "two signed proposals were delivered (to anyone)");
}

/// Agent 1 is delivered `a` then `b` (steps 1, 2), emits `evidence` if any, and its next input
/// comes at step 3: the violation, if any.
fn after_two(
    prepare: impl FnOnce(&mut Oracle),
    a: Message,
    b: Message,
    evidence: Option<consensus_core::protocol::Evidence>,
) -> Option<Violation> {
    let (mut o, _) = evidence_oracle();
    prepare(&mut o);
    let me = AgentId(1);
    o.on_input(me, 1, 10);
    o.on_deliver(me, &a, 1);
    o.on_input(me, 2, 20);
    o.on_deliver(me, &b, 2);
    if let Some(e) = evidence {
        o.on_evidence(me, &e, 2, 20);
    }
    assert_eq!(o.violation(), None, "judged only at the next input");
    o.on_input(me, 3, 30);
    o.violation().cloned()
}

/// `equivocation-detected` fails an honest agent delivered two conflicting messages of a
/// committee member that emits no evidence, and is quiet with evidence or outside its class.
#[test]
fn equivocation_detected_owes_evidence_for_conflicts_delivered() {
    use consensus_core::protocol::{Evidence, Message as M};
    let (o, keys) = evidence_oracle();
    let r = round_proposed_by(&o, 3);
    let vote = |c| M::Vote(session_vote(&keys, 3, c));
    let pv = |round, v| M::RoundVote(signed_prevote(&keys, 3, round, v));
    let prop = |round, q| M::Proposal(Box::new(signed_proposal(&keys, 3, round, q)));
    let votes_evidence = Evidence::ConflictingVotes {
        first: Box::new(session_vote(&keys, 3, 0)),
        second: Box::new(session_vote(&keys, 3, 1)),
    };
    let nothing = |_: &mut Oracle| {};
    // Missing evidence: each kind.
    for (name, a, b, part) in [
        ("votes", vote(0), vote(1), "two conflicting votes of agent-3 in session-0"),
        ("prevotes", pv(0, Some(1)), pv(0, None), "two conflicting prevotes of round 0 of agent-3"),
        ("proposals", prop(r, "a"), prop(r, "b"), "two conflicting proposals of round"),
    ] {
        let v = after_two(nothing, a, b, None).unwrap_or_else(|| panic!("{name}: no evidence emitted"));
        assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::EQUIVOCATION_DETECTED, 3, 30), "{name}");
        assert!(v.detail.contains(part), "{name}: {part:?} missing from {:?}", v.detail);
    }
    // With the evidence: quiet (also when it came before, e.g. from a carried vote).
    assert_eq!(after_two(nothing, vote(0), vote(1), Some(votes_evidence.clone())), None);
    let proposals = Evidence::ConflictingProposals { proposer: AgentId(3), session: SessionId(0), round: r };
    assert_eq!(after_two(nothing, prop(r, "a"), prop(r, "b"), Some(proposals)), None);
    let early = |o: &mut Oracle| o.on_evidence(AgentId(1), &votes_evidence, 0, 0);
    assert_eq!(after_two(early, vote(0), vote(1), None), None, "evidence emitted earlier");
    // Evidence about another subject does not discharge it.
    let other = Evidence::ConflictingRoundVotes {
        first: Box::new(signed_prevote(&keys, 3, 0, Some(1))),
        second: Box::new(signed_prevote(&keys, 3, 0, None)),
    };
    assert!(after_two(nothing, vote(0), vote(1), Some(other)).is_some(), "prevote evidence for votes");
    // Outside the class: quiet.
    assert_eq!(after_two(nothing, vote(0), vote(0), None), None, "the same vote twice");
    let relayed = {
        let mut p = signed_proposal(&keys, 3, r, "a");
        p.polka.push(signed_prevote(&keys, 3, 0, Some(1)));
        M::Proposal(Box::new(p))
    };
    assert_eq!(after_two(nothing, prop(r, "a"), relayed, None), None, "another (unsigned) polka certificate");
    assert_eq!(after_two(nothing, pv(0, Some(1)), pv(1, None), None), None, "two rounds");
    assert_eq!(after_two(nothing, pv(2, Some(1)), pv(2, None), None), None, "round 2 may be beyond the keeper's bound");
    let in_round_1 = |o: &mut Oracle| {
        rounds_entered_by_timeouts(o, SessionId(0));
        o.on_own_round_vote(AgentId(1), &prevote(SessionId(0), 1, 1), 0, 0);
    };
    assert!(after_two(in_round_1, pv(2, Some(1)), pv(2, None), None).is_some(), "round 2 from round 1 is kept");
    let down = |o: &mut Oracle| o.on_down(AgentId(1));
    assert_eq!(after_two(down, vote(0), vote(1), None), None, "an agent that was down");
    let decided = |o: &mut Oracle| o.evidence.on_decided(AgentId(1), SessionId(0));
    assert_eq!(after_two(decided, vote(0), vote(1), None), None, "a decided session");
    let promises = |o: &mut Oracle| o.promises = Promises::of(4, 2);
    assert_eq!(after_two(promises, vote(0), vote(1), None), None, "agreement not promised");
    let wrong_proposer = round_proposed_by(&o, 2);
    assert_eq!(
        after_two(nothing, prop(wrong_proposer, "a"), prop(wrong_proposer, "b"), None),
        None,
        "not the proposer"
    );
    let honest = M::Vote(session_vote(&keys, 2, 0));
    let honest_other = M::Vote(session_vote(&keys, 2, 1));
    assert_eq!(after_two(nothing, honest, honest_other, None), None, "an honest signer is another invariant's");
    let mut unsigned = session_vote(&keys, 3, 1);
    unsigned.signature = Signature::ZERO;
    assert_eq!(after_two(nothing, vote(0), M::Vote(unsigned), None), None, "a forged vote");
    // A crash while the evidence was owed: not judged.
    let (mut o, _) = evidence_oracle();
    o.on_deliver(AgentId(1), &vote(0), 1);
    o.on_deliver(AgentId(1), &vote(1), 2);
    o.on_down(AgentId(1));
    o.on_input(AgentId(1), 3, 30);
    assert_eq!(o.violation(), None);
}

/// The oracle's signing bytes are the format the correct agents sign (docs/protocol.md,
/// "Signing format"): equal to `wire`'s for every kind of signed message.
#[test]
fn the_oracles_signing_bytes_are_the_documented_format() {
    let (_, proposal) = honest_proposal();
    let vote = &proposal.value.votes[0].vote;
    assert_eq!(signing::vote(vote), wire::vote_signing_bytes(vote));
    assert_eq!(signing::spec(&proposal.value.spec.spec), wire::spec_signing_bytes(&proposal.value.spec.spec));
    let id = ValueId::of(&proposal.value);
    assert_eq!(signing::value_id(&proposal.value), id);
    assert_eq!(
        signing::proposal(SessionId(0), 2, Some(1), id),
        wire::proposal_signing_bytes(&proposal.value, 2, Some(1))
    );
    for kind in [VoteKind::Prevote, VoteKind::Precommit] {
        for value in [None, Some(id)] {
            assert_eq!(
                signing::round_vote(kind, SessionId(4), 3, value),
                wire::round_vote_signing_bytes(kind, SessionId(4), 3, value)
            );
        }
    }
    assert!(signing::vote(vote).starts_with(signing::VOTE_TAG));
}

/// `decision(0)` with the outcome the engine computes from its votes: externally valid.
fn valid_decision() -> (Oracle, DecisionRecord) {
    let (oracle, mut record) = decision(0);
    record.outcome = recompute(ProposalMode::Normal, &record.spec, &record.votes, &oracle.registry, &oracle.engine).0;
    (oracle, record)
}

/// External validity verifies with its own encoding: a decision whose votes carry their
/// voters' signatures over other bytes (what signing bytes that cover nothing would let
/// through: one signature of a voter reused on another vote) is reported, and so is one whose
/// vote is another vote's signature reused on this content.
#[test]
fn external_validity_rejects_signatures_over_other_bytes() {
    let keys = sim_committee(7, 7);
    let (mut oracle, mut record) = valid_decision();
    oracle.on_decide(AgentId(0), &record.clone(), 5, 10);
    assert_eq!(oracle.violation(), None, "the valid decision passes");
    // Every vote signed over the empty string (a constant signing format).
    let (mut oracle, _) = valid_decision();
    for (i, v) in record.votes.iter_mut().enumerate() {
        v.signature = keys.agents[i].sign(&[]);
    }
    oracle.on_decide(AgentId(0), &record, 5, 10);
    let v = oracle.violation().unwrap_or_else(|| panic!("a constant signing format passed"));
    assert_eq!(v.invariant, names::EXTERNAL_VALIDITY);
    assert!(v.detail.contains("the vote of agent-0 is not a correctly signed vote"), "{}", v.detail);
    // One voter's signature moved onto another content of its vote.
    let (mut oracle, mut record) = valid_decision();
    let mut moved = record.votes[3].vote.clone();
    moved.confidence = Ppm::saturating(10);
    record.votes[3].vote = moved;
    oracle.on_decide(AgentId(0), &record, 5, 10);
    assert!(oracle.violation().is_some_and(|v| v.detail.contains("the vote of agent-3")), "{:?}", oracle.violation());
}

/// The decided spec must be the client's of the session: another session's (client-signed), one
/// whose client signature covers other bytes, or, once the run reports the client's opens, a
/// client-signed spec the client never opened the session with, is reported.
#[test]
fn external_validity_rejects_a_spec_that_is_not_the_clients() {
    let keys = sim_committee(7, 7);
    let (_, record) = valid_decision();
    let resign = |spec: &SessionSpec| SignedSpec {
        spec: spec.clone(),
        signature: keys.client.sign(&wire::spec_signing_bytes(spec)),
    };
    let mut other_session = record.spec.spec.clone();
    other_session.session = SessionId(1);
    let mut other_query = record.spec.spec.clone();
    other_query.query = "another question".into();
    let cases: [(&str, SignedSpec, bool, &str); 4] = [
        ("another session's spec", resign(&other_session), false, "its spec names session-1"),
        (
            "a signature over other bytes",
            SignedSpec { spec: record.spec.spec.clone(), signature: keys.client.sign(&[0]) },
            false,
            "does not verify",
        ),
        ("never opened", resign(&other_query), true, "not the one the client opened"),
        ("the opened spec", record.spec.clone(), true, ""),
    ];
    for (name, spec, report_opens, part) in cases {
        let (mut oracle, mut record) = valid_decision();
        if report_opens {
            oracle.on_client_spec(&resign(&record.spec.spec));
        }
        record.spec = spec;
        oracle.check_external_validity(AgentId(0), &record, 5, 10);
        match oracle.violation() {
            None => assert!(part.is_empty(), "{name}: not reported"),
            Some(v) => {
                assert!(!part.is_empty(), "{name}: {v:?}");
                assert_eq!(v.invariant, names::EXTERNAL_VALIDITY, "{name}");
                assert!(v.detail.contains(part), "{name}: {part:?} missing from {:?}", v.detail);
            }
        }
    }
}

/// `round-skip`: an agent that certainly kept votes of one later round from f + 1 honest agents
/// (n = 4: f + 1 = 2) and then votes in a new round below it fails; every way of not holding
/// such votes passes.
#[test]
fn round_skip_fails_a_new_round_below_one_f_plus_one_honest_agents_voted_in() {
    let s = SessionId(0);
    let (me, byz) = (AgentId(0), AgentId(3));
    // Agents 1 and 2 sent their round-3 prevotes; agent 0 is in round 0.
    let setup = |sync_ms: TimeMs| {
        let mut o = oracle(4).with_round_skip(sync_ms);
        rounds_entered_by_timeouts(&mut o, s);
        o.honest.remove(&byz);
        o.on_own_round_vote(me, &prevote(s, 0, 0), 1, 10);
        for agent in [1, 2] {
            o.on_own_round_vote(AgentId(agent), &prevote(s, 3, agent), 2, 20);
        }
        o
    };
    let deliver = |o: &mut Oracle, v: RoundVote, at: TimeMs| o.on_delivered(me, &Message::RoundVote(v), at);

    let mut o = setup(0);
    deliver(&mut o, prevote(s, 3, 1), 30);
    deliver(&mut o, prevote(s, 3, 2), 31);
    o.on_own_round_vote(me, &prevote(s, 0, 0), 3, 40);
    assert_eq!(o.violation(), None, "a copy of its round-0 vote is not a vote in a new round");
    o.on_own_round_vote(me, &prevote(s, 1, 0), 4, 41);
    let v = o.violation().expect("round 1 after keeping round-3 votes of agents 1 and 2");
    assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::ROUND_SKIP, 4, 41));
    assert!(v.detail.contains("round 1 of session-0") && v.detail.contains("round 3"), "{}", v.detail);

    // Voting in the later round itself, or above it, is what L55 does.
    let mut o = setup(0);
    deliver(&mut o, prevote(s, 3, 1), 30);
    deliver(&mut o, prevote(s, 3, 2), 31);
    o.on_own_round_vote(me, &prevote(s, 3, 0), 3, 40);
    assert_eq!(o.violation(), None, "it started round 3");

    // One honest agent and a Byzantine one: f + 1 counts honest agents only here.
    let mut o = setup(0);
    deliver(&mut o, prevote(s, 3, 1), 30);
    deliver(&mut o, prevote(s, 3, 3), 31);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 3, 40);
    assert_eq!(o.violation(), None, "one honest sender of round 3");

    // A vote that is not the one its signer sent (a forgery) is rejected by the agent.
    let mut o = setup(0);
    deliver(&mut o, prevote(s, 3, 1), 30);
    let mut forged = prevote(s, 3, 2);
    forged.signature = Signature([0x77; 64]);
    deliver(&mut o, forged, 31);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 3, 40);
    assert_eq!(o.violation(), None, "a forged vote does not count");

    // Agent 2's votes of two other rounds beyond round 1 reached agent 0 first (in a polka
    // certificate): its vote keeper may refuse agent 2's round-3 prevote (L31–L33).
    let mut o = setup(0);
    for agent in [1, 2] {
        o.on_own_round_vote(AgentId(agent), &prevote(s, 4, agent), 2, 21);
    }
    let mut proposal = proposal_of(s);
    proposal.polka = vec![prevote(s, 5, 2), prevote(s, 4, 2)];
    o.on_delivered(me, &Message::Proposal(Box::new(proposal.clone())), 25);
    deliver(&mut o, prevote(s, 3, 1), 30);
    deliver(&mut o, prevote(s, 3, 2), 31);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 3, 40);
    assert_eq!(o.violation(), None, "agent 2's round-3 vote may not have been kept");
    // In round 2 (a vote of it left), only round 5 of agent 2 is beyond round 3 besides 4: its
    // round-4 prevote is certainly kept, and round 4 has f + 1.
    o.on_own_round_vote(me, &prevote(s, 2, 0), 4, 50);
    assert_eq!(o.violation(), None, "round 3 holds one honest agent's vote for sure");
    deliver(&mut o, prevote(s, 4, 1), 52);
    deliver(&mut o, prevote(s, 4, 2), 53);
    o.on_own_round_vote(me, &prevote(s, 3, 0), 5, 60);
    assert_eq!(o.violation().map(|v| v.invariant.as_str()), Some(names::ROUND_SKIP), "round 4 from 1 and 2");

    // Delivered too shortly before the vote left: it may have been cast before (two fsyncs).
    let mut o = setup(5);
    deliver(&mut o, prevote(s, 3, 1), 30);
    deliver(&mut o, prevote(s, 3, 2), 31);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 3, 41);
    assert_eq!(o.violation(), None, "31 + 2 · 5 + 1 > 41");
    o.on_own_round_vote(me, &prevote(s, 2, 0), 4, 42);
    assert_eq!(o.violation().map(|v| v.invariant.as_str()), Some(names::ROUND_SKIP), "31 + 11 ≤ 42");

    // A restart loses the vote keeper: what came before it does not count.
    let mut o = setup(0);
    deliver(&mut o, prevote(s, 3, 1), 30);
    deliver(&mut o, prevote(s, 3, 2), 31);
    o.on_restart(me, 35);
    deliver(&mut o, prevote(s, 3, 1), 36);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 3, 40);
    assert_eq!(o.violation(), None, "kept before the restart, or before its first vote after it");

    // Nothing is above the last round, 2^32 − 1.
    let mut o = setup(0);
    for agent in [1, 2] {
        o.on_own_round_vote(AgentId(agent), &prevote(s, Round::MAX, agent), 2, 21);
    }
    deliver(&mut o, prevote(s, Round::MAX, 1), 30);
    deliver(&mut o, prevote(s, Round::MAX, 2), 31);
    o.on_own_round_vote(me, &prevote(s, Round::MAX, 0), 3, 40);
    assert_eq!(o.violation(), None, "the last round itself");

    // Commit certificates and polka certificates only tell what the agent may hold.
    let mut o = setup(0);
    let commit = Commit { proposal: proposal_of(s), precommits: vec![vote(VoteKind::Precommit, s, 3, 1)] };
    o.on_delivered(me, &Message::Commit(Box::new(commit)), 30);
    proposal.polka = vec![prevote(s, 3, 2)];
    o.on_delivered(me, &Message::Proposal(Box::new(proposal)), 31);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 3, 40);
    assert_eq!(o.violation(), None, "no round vote of round 3 delivered as such");
}

/// A proposal of session `s` (only its certificate matters to `round-skip`).
/// `round-skip` counts messages, not only votes (L54): the proposer of the later round is one
/// of the f + 1 senders once the agent holds a vote of that round, and only once.
#[test]
fn round_skip_counts_the_later_rounds_honest_proposer() {
    let s = SessionId(0);
    let (me, byz) = (AgentId(0), AgentId(3));
    let proposal = |round: Round, proposer: u32, signature: u8| {
        let mut p = proposal_of(s);
        (p.round, p.proposer, p.signature) = (round, AgentId(proposer), Signature([signature; 64]));
        p
    };
    let setup = || {
        let mut o = oracle(4).with_round_skip(0);
        rounds_entered_by_timeouts(&mut o, s);
        o.honest.remove(&byz);
        o.on_own_round_vote(me, &prevote(s, 0, 0), 1, 10);
        o.on_own_round_vote(AgentId(1), &prevote(s, 3, 1), 2, 20);
        o.on_own_round_vote(AgentId(2), &prevote(s, 3, 2), 2, 20);
        o.round_skip_on_own_proposal(AgentId(2), &proposal(3, 2, 2));
        o
    };
    let deliver = |o: &mut Oracle, m: Message, at: TimeMs| o.on_delivered(me, &m, at);
    let cases: [(&str, Vec<Message>, bool); 6] = [
        (
            "agent 1's prevote and agent 2's proposal of round 3",
            vec![Message::RoundVote(prevote(s, 3, 1)), Message::Proposal(Box::new(proposal(3, 2, 2)))],
            true,
        ),
        ("the proposal alone (no vote of round 3 held)", vec![Message::Proposal(Box::new(proposal(3, 2, 2)))], false),
        (
            "agent 2's prevote and its proposal: one sender",
            vec![Message::RoundVote(prevote(s, 3, 2)), Message::Proposal(Box::new(proposal(3, 2, 2)))],
            false,
        ),
        (
            "a proposal agent 2 never signed",
            vec![Message::RoundVote(prevote(s, 3, 1)), Message::Proposal(Box::new(proposal(3, 2, 9)))],
            false,
        ),
        (
            "a Byzantine proposer's proposal",
            vec![Message::RoundVote(prevote(s, 3, 1)), Message::Proposal(Box::new(proposal(3, 3, 3)))],
            false,
        ),
        (
            "a relayed copy with another polka certificate still counts",
            vec![Message::RoundVote(prevote(s, 3, 1)), {
                let mut p = proposal(3, 2, 2);
                p.polka = vec![prevote(s, 2, 1)];
                Message::Proposal(Box::new(p))
            }],
            true,
        ),
    ];
    for (name, messages, fails) in cases {
        let mut o = setup();
        for (k, m) in messages.into_iter().enumerate() {
            deliver(&mut o, m, 30 + k as TimeMs);
        }
        o.on_own_round_vote(me, &prevote(s, 1, 0), 3, 40);
        match o.violation() {
            Some(v) => {
                assert!(fails, "{name}: {v:?}");
                assert_eq!(v.invariant, names::ROUND_SKIP, "{name}");
                assert!(
                    v.detail.contains("agent-1, agent-2") || v.detail.contains("agent-2, agent-1"),
                    "{name}: {}",
                    v.detail
                );
            }
            None => assert!(!fails, "{name}: not reported"),
        }
    }
}

/// `round-skip`, the other direction: an agent's first vote in round r > 0 needs its
/// precommit timeout of round r − 1 to have fired (L61) or messages of round r from f + 1
/// distinct agents, any agents, delivered to it (L55); a restart forgets nothing of either.
#[test]
fn round_skip_fails_a_round_entered_without_a_rule() {
    use consensus_core::protocol::{Timer, TimerKind};
    let s = SessionId(0);
    let me = AgentId(0);
    let precommit_timeout = move |round: Round| Timer { kind: TimerKind::Precommit, session: s, round };
    let proposal = move |round: Round, proposer: u32| {
        let mut p = proposal_of(s);
        (p.round, p.proposer) = (round, AgentId(proposer));
        Message::Proposal(Box::new(p))
    };
    type Step = Box<dyn Fn(&mut Oracle)>;
    let deliver = |m: Message| -> Step { Box::new(move |o: &mut Oracle| o.on_delivered(me, &m, 30)) };
    let cases: Vec<(&str, Vec<Step>, bool)> = vec![
        ("nothing of round 2, no timeout", vec![], true),
        (
            "its precommit timeout of round 1 fired",
            vec![Box::new(move |o: &mut Oracle| o.on_timer_fired(me, &precommit_timeout(1)))],
            false,
        ),
        (
            "a precommit timeout of round 0 only",
            vec![Box::new(move |o: &mut Oracle| o.on_timer_fired(me, &precommit_timeout(0)))],
            true,
        ),
        (
            "votes of round 2 from agents 1 and 3",
            vec![deliver(Message::RoundVote(prevote(s, 2, 1))), deliver(Message::RoundVote(prevote(s, 2, 3)))],
            false,
        ),
        (
            "agent 1's vote and agent 2's proposal of round 2",
            vec![deliver(Message::RoundVote(prevote(s, 2, 1))), deliver(proposal(2, 2))],
            false,
        ),
        (
            "agent 1's vote and its own proposal: one agent",
            vec![deliver(Message::RoundVote(prevote(s, 2, 1))), deliver(proposal(2, 1))],
            true,
        ),
        (
            "agent 1's vote twice",
            vec![
                deliver(Message::RoundVote(prevote(s, 2, 1))),
                deliver(Message::RoundVote(vote(VoteKind::Precommit, s, 2, 1))),
            ],
            true,
        ),
        (
            "a vote of round 2 inside a commit certificate and another agent's vote",
            vec![
                deliver(Message::RoundVote(prevote(s, 2, 1))),
                deliver(Message::RoundVote(prevote(s, 3, 2))),
                deliver(Message::RoundVote(prevote(s, 2, 2))),
            ],
            false,
        ),
        (
            "held before a decision a crash then lost",
            vec![
                deliver(Message::RoundVote(prevote(s, 2, 1))),
                deliver(Message::RoundVote(prevote(s, 2, 2))),
                Box::new(move |o: &mut Oracle| o.round_skip_on_decide(me, s)),
            ],
            false,
        ),
        (
            "held before a restart",
            vec![
                deliver(Message::RoundVote(prevote(s, 2, 1))),
                deliver(Message::RoundVote(prevote(s, 2, 2))),
                Box::new(move |o: &mut Oracle| o.on_restart(me, 35)),
            ],
            false,
        ),
    ];
    for (name, steps, fails) in cases {
        let mut o = oracle(4).with_round_skip(0);
        o.on_own_round_vote(me, &prevote(s, 0, 0), 1, 10);
        for step in &steps {
            step(&mut o);
        }
        o.on_own_round_vote(me, &prevote(s, 2, 0), 3, 40);
        match o.violation() {
            Some(v) => {
                assert!(fails, "{name}: {v:?}");
                assert_eq!(v.invariant, names::ROUND_SKIP, "{name}");
                assert!(v.detail.contains("without having started it by a rule"), "{name}: {}", v.detail);
            }
            None => assert!(!fails, "{name}: not reported"),
        }
    }
    // Round 0 needs no rule, and a copy of a vote in a round it already voted in is not a new round.
    let mut o = oracle(4).with_round_skip(0);
    o.on_own_round_vote(me, &prevote(s, 0, 0), 1, 10);
    o.on_own_round_vote(me, &prevote(s, 0, 0), 2, 11);
    assert_eq!(o.violation(), None);
}

/// Every agent of 4 may enter any round of `s` by its precommit timeouts (L61), so that a
/// fixture's votes in later rounds are not themselves unjustified (`round-skip`'s other
/// direction).
fn rounds_entered_by_timeouts(o: &mut Oracle, s: SessionId) {
    use consensus_core::protocol::{Timer, TimerKind};
    for agent in 0..4 {
        for round in (0..8).chain([Round::MAX - 1]) {
            o.on_timer_fired(AgentId(agent), &Timer { kind: TimerKind::Precommit, session: s, round });
        }
    }
}

fn proposal_of(s: SessionId) -> Proposal {
    let mut p = honest_proposal().1;
    p.value.session = s;
    p
}

fn sync_from(agent: u32, from: u32, next: u64, answered: bool) -> rates::SyncSeen {
    rates::SyncSeen { agent: AgentId(agent), from: AgentId(from), next: SessionId(next), answered }
}

/// `sync-serve-rate` (L72–L73, L78): an honest agent that answers a ninth `Sync` of one asker
/// within a retransmit interval, or a repeat of the last `Sync(next)` within it, is reported;
/// a Byzantine agent, its own `Sync`s and the client's are not judged, and a new interval
/// serves again.
#[test]
fn sync_serve_rate_reports_serving_beyond_the_protocols_rate() {
    let mut o = oracle(4);
    for k in 0..8 {
        o.on_sync(sync_from(1, 2, 16 * k, true), k, 10 + k);
    }
    assert_eq!(o.violation(), None, "8 batches in one interval");
    o.on_sync(sync_from(1, 2, 500, true), 9, 110);
    assert_eq!(o.violation(), None, "the next interval");
    o.on_sync(sync_from(1, 2, 500, true), 10, 120);
    let v = o.violation().cloned().unwrap_or_else(|| panic!("a repeat within the interval was served"));
    assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::SYNC_SERVE_RATE, 10, 120));
    assert!(v.detail.contains("the same Sync(500)"), "{}", v.detail);

    let mut o = oracle(4);
    for k in 0..9 {
        o.on_sync(sync_from(1, 3, 16 * k, true), k, 10 + k);
    }
    assert_eq!(o.violation().map(|v| v.invariant.as_str()), Some(names::SYNC_SERVE_RATE), "a ninth batch");

    let mut o = oracle(4);
    o.honest.remove(&AgentId(1));
    for k in 0..12 {
        o.on_sync(sync_from(1, 3, 7, true), k, 10 + k);
        o.on_sync(sync_from(2, 2, 7, true), k, 10 + k);
        o.on_sync(sync_from(2, ProtocolConfig::default().client.0, 7, true), k, 10 + k);
    }
    assert_eq!(o.violation(), None, "a Byzantine server, an agent's own Syncs and the client's");
}

/// `sync-serve-rate` and `catch-up` stay quiet on the correct protocol where they have most to
/// judge: agent 2 is down while 60 sessions are decided, restarts far behind its peers'
/// `keep_decided` (the archive serves, L78) with a catch-up bound of the far-behind family, and
/// catches up through the L80 chase, every answer judged.
#[test]
fn sync_serve_rate_and_the_far_behind_bound_hold_on_the_correct_protocol() {
    let backlog = crate::explore::generate::Backlog { sessions: 60, faulty_peers: 0, hop_ms: 5, drop: 0.0 };
    let bound = crate::explore::generate::catch_up_bound(backlog);
    let text = format!(
        "name = \"far\"\n[agents]\ncount = 4\n[workload]\nsessions = 60\n[network]\nlatency_ms = [1, 5]\n\
         [protocol]\nkeep_decided = 3\n[expect]\ncatch_up_ms = {bound}\nliveness_bound_ms = 60000\n\
         [[faults]]\nat_ms = 5\nkind = \"crash\"\nagent = 2\n[[faults]]\nat_ms = 20000\nkind = \"restart\"\nagent = 2\n"
    );
    let scenario = crate::scenario::parse(&text, std::path::Path::new("far.toml")).unwrap_or_else(|e| panic!("{e}"));
    for seed in 0..2 {
        let out = crate::run::run(&scenario, seed, BTreeMap::new(), crate::run::RunOptions::default());
        assert!(out.record.violations.is_empty(), "seed {seed}: {:?}", out.record.violations);
    }
}

fn sync_to(to: u32, next: u64) -> Output {
    Output::Send { to: AgentId(to), message: Message::Sync { next: SessionId(next) } }
}

/// `sync-requests` (L76, L80): an honest agent whose status ticks ask the same peer twice in a
/// row, or whose chase stops although the batch it asked for was applied, is reported with the
/// step; a Byzantine agent is not judged.
#[test]
fn sync_requests_reports_a_status_tick_or_a_chase_off_their_rules() {
    let mut o = oracle(4);
    o.on_agent_step(AgentId(1), asks::StepInput::Status, &[sync_to(0, 0)], 1, 500);
    o.on_agent_step(AgentId(1), asks::StepInput::Status, &[sync_to(2, 0)], 2, 1_000);
    assert_eq!(o.violation(), None, "peers 0 then 2 in turn");
    o.on_agent_step(AgentId(1), asks::StepInput::Status, &[sync_to(2, 0)], 3, 1_500);
    let v = o.violation().cloned().unwrap_or_else(|| panic!("the same peer twice not caught"));
    assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::SYNC_REQUESTS, 3, 1_500));
    assert!(v.detail.contains("next member in turn is agent-3"), "{}", v.detail);

    // L77/L80: peer 3 is 40 sessions ahead; asked at once, then silence after a batch applied.
    let mut o = oracle(4);
    let from3 = asks::StepInput::Sync { from: AgentId(3), next: 40 };
    o.on_agent_step(AgentId(1), from3, &[sync_to(3, 0)], 1, 10);
    assert_eq!(o.violation(), None);
    o.on_agent_step(AgentId(1), asks::StepInput::Other, &[], 2, 150);
    let v = o.violation().cloned().unwrap_or_else(|| panic!("no retry after Δ not caught"));
    assert!(v.detail.contains("L80 asks agent-3 for Sync(0)"), "{}", v.detail);

    let mut o = oracle(4);
    o.honest.remove(&AgentId(1));
    o.on_agent_step(AgentId(1), asks::StepInput::Status, &[], 1, 500);
    o.on_agent_step(AgentId(1), asks::StepInput::Other, &[sync_to(1, 9), sync_to(2, 9)], 2, 600);
    assert_eq!(o.violation(), None, "a Byzantine agent asks as it likes");
}

/// An oracle of 4 whose agent 0 is locked on value "a" in round 1 of session 0 (its precommit).
fn locked_in_round_1() -> (Oracle, SimKeys) {
    let (mut o, keys) = evidence_oracle();
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    let a = signed_proposal(&keys, 1, 1, "a");
    let precommit = signed_round_vote(&keys, VoteKind::Precommit, 0, 1, Some(signing::value_id(&a.value)));
    o.on_own_round_vote(AgentId(0), &precommit, 1, 10);
    (o, keys)
}

/// `agent`'s round vote of `kind` in session 0, `round`, for `value`, signed by it.
fn signed_round_vote(keys: &SimKeys, kind: VoteKind, agent: u32, round: Round, value: Option<ValueId>) -> RoundVote {
    let signature = keys.agents[agent as usize].sign(&wire::round_vote_signing_bytes(kind, SessionId(0), round, value));
    RoundVote { kind, session: SessionId(0), round, value, agent: AgentId(agent), signature }
}

/// `proposal` re-proposed by its proposer in `round` with valid round `vr` and the prevotes
/// for its value in `vr` of `prevoters` as its certificate.
fn reproposal(keys: &SimKeys, proposal: &Proposal, round: Round, vr: Round, prevoters: &[u32]) -> (Proposal, ValueId) {
    let id = signing::value_id(&proposal.value);
    let proposer = proposal.proposer.0;
    let signature =
        keys.agents[proposer as usize].sign(&wire::proposal_signing_bytes(&proposal.value, round, Some(vr)));
    let polka = prevoters.iter().map(|a| signed_round_vote(keys, VoteKind::Prevote, *a, vr, Some(id))).collect();
    let p = Proposal {
        round,
        valid_round: Some(vr),
        value: proposal.value.clone(),
        proposer: AgentId(proposer),
        signature,
        polka,
    };
    (p, id)
}

/// `lock-respected`: agent 0 precommitted value A in round 1 (locked on it); in round 2 it may
/// prevote another value B only for a proposal with a valid round ≥ 1 and q prevotes for it.
#[test]
fn lock_respected_fails_a_prevote_against_the_lock_without_a_newer_polka() {
    let judge = |vr: Round, prevoters: &[u32], lock: bool| {
        let (mut o, keys) = evidence_oracle();
        rounds_entered_by_timeouts(&mut o, SessionId(0));
        let a = signed_proposal(&keys, 1, 1, "a");
        let id_a = signing::value_id(&a.value);
        if lock {
            let precommit = signed_round_vote(&keys, VoteKind::Precommit, 0, 1, Some(id_a));
            o.on_own_round_vote(AgentId(0), &precommit, 1, 10);
            o.on_own_round_vote(AgentId(0), &precommit, 2, 11); // a copy to another peer
        }
        let b = signed_proposal(&keys, 2, 0, "b");
        let (b2, id_b) = reproposal(&keys, &b, 2, vr, prevoters);
        o.on_delivered(AgentId(0), &Message::Proposal(Box::new(b2)), 20);
        let prevote = signed_round_vote(&keys, VoteKind::Prevote, 0, 2, Some(id_b));
        o.on_own_round_vote(AgentId(0), &prevote, 3, 30);
        o.violation().cloned()
    };
    let v = judge(0, &[1, 2, 3], true).expect("an older polka against a newer lock");
    assert_eq!(v.invariant, names::LOCK_RESPECTED);
    assert_eq!(v.step, 3);
    assert!(v.detail.contains("valid round 0, below its lock round 1"), "{}", v.detail);
    let v = judge(1, &[1, 2], true).expect("a short polka");
    assert!(v.detail.contains("prevotes of 2 committee members, not q = 3"), "{}", v.detail);
    assert_eq!(judge(1, &[1, 2, 3], true), None, "L28: a polka of the lock round releases the lock");
    assert_eq!(judge(0, &[1, 2, 3], false), None, "unlocked: nothing to respect");
    // The prevotes of the polka count as well when delivered as round votes, own prevote included.
    let (mut o, keys) = locked_in_round_1();
    let b = signed_proposal(&keys, 2, 0, "b");
    let (b2, _) = reproposal(&keys, &b, 2, 1, &[1, 2, 3]);
    let (b3, id_b) = reproposal(&keys, &b, 3, 2, &[]);
    o.on_delivered(AgentId(0), &Message::Proposal(Box::new(b2)), 19);
    o.on_delivered(AgentId(0), &Message::Proposal(Box::new(b3)), 20);
    for agent in [1, 3] {
        o.on_delivered(
            AgentId(0),
            &Message::RoundVote(signed_round_vote(&keys, VoteKind::Prevote, agent, 2, Some(id_b))),
            21,
        );
    }
    o.on_own_round_vote(AgentId(0), &signed_round_vote(&keys, VoteKind::Prevote, 0, 2, Some(id_b)), 2, 22);
    o.on_own_round_vote(AgentId(0), &signed_round_vote(&keys, VoteKind::Prevote, 0, 3, Some(id_b)), 3, 30);
    assert_eq!(o.violation(), None, "q prevotes of round 2 held (its own among them), 1 ≤ 2 < 3");
    assert_eq!(o.split_polkas(), 0, "one value prevoted by q in rounds 1 and 2: no split");
    let a = signed_proposal(&keys, 1, 1, "a");
    for agent in [1, 2] {
        o.on_delivered(
            AgentId(0),
            &Message::RoundVote(signed_round_vote(
                &keys,
                VoteKind::Prevote,
                agent,
                0,
                Some(signing::value_id(&a.value)),
            )),
            40,
        );
    }
    o.on_own_round_vote(
        AgentId(0),
        &signed_round_vote(&keys, VoteKind::Prevote, 0, 0, Some(signing::value_id(&a.value))),
        5,
        41,
    );
    assert_eq!(o.split_polkas(), 1, "A in round 0 and B in rounds 1 and 2: a split");
    // A restart may have lost a precommit that had not left yet, and the lock with it
    // (`disk-slow` seed 85): the lock is known again only from the agent's next precommit.
    let (mut o, keys) = locked_in_round_1();
    o.on_restart(AgentId(0), 15);
    let b = signed_proposal(&keys, 2, 2, "b");
    let id_b = signing::value_id(&b.value);
    o.on_delivered(AgentId(0), &Message::Proposal(Box::new(b)), 20);
    o.on_own_round_vote(AgentId(0), &signed_round_vote(&keys, VoteKind::Prevote, 0, 2, Some(id_b)), 4, 30);
    assert_eq!(o.violation(), None, "the lock may have been lost in the crash");
    // A fresh proposal of another value (L23) never justifies leaving the lock.
    let (mut o, keys) = locked_in_round_1();
    let b = signed_proposal(&keys, 2, 2, "b");
    let id_b = signing::value_id(&b.value);
    o.on_delivered(AgentId(0), &Message::Proposal(Box::new(b)), 20);
    o.on_own_round_vote(AgentId(0), &signed_round_vote(&keys, VoteKind::Prevote, 0, 2, Some(id_b)), 4, 30);
    let v = o.violation().cloned().expect("L23 with another lock");
    assert!(v.detail.contains("no valid round"), "{}", v.detail);
}

/// `valid-value`: an honest re-proposal carries q signed prevotes for its value in its valid
/// round, at or above the proposer's lock round; a locked proposer re-proposes.
#[test]
fn valid_value_fails_an_uncertified_reproposal_and_a_locked_fresh_proposal() {
    let judge = |vr: Round, prevoters: &[u32], lock: Option<Round>, tamper: bool| {
        let (mut o, keys) = evidence_oracle();
        rounds_entered_by_timeouts(&mut o, SessionId(0));
        let b = signed_proposal(&keys, 0, 0, "b");
        let (mut p, id) = reproposal(&keys, &b, 3, vr, prevoters);
        if tamper {
            p.polka[0].signature = p.polka[1].signature;
        }
        if let Some(lr) = lock {
            o.on_own_round_vote(AgentId(0), &signed_round_vote(&keys, VoteKind::Precommit, 0, lr, Some(id)), 1, 10);
        }
        o.locks_on_proposal_sent(AgentId(0), &p, 5, 50);
        o.violation().cloned()
    };
    assert_eq!(judge(1, &[0, 1, 2], None, false), None);
    assert_eq!(judge(2, &[1, 2, 3], Some(2), false), None, "vr = lockedRound");
    for (why, found, part) in [
        ("short", judge(1, &[0, 1], None, false), "certificate of 2 signed prevotes"),
        ("forged", judge(1, &[0, 1, 2], None, true), "certificate of 2 signed prevotes"),
        ("below the lock", judge(1, &[0, 1, 2], Some(2), false), "valid round 1, below its lock round 2"),
        ("not below the round", judge(3, &[0, 1, 2], None, false), "valid round 3, not below the round"),
    ] {
        let v = found.unwrap_or_else(|| panic!("{why}: a finding"));
        assert_eq!(v.invariant, names::VALID_VALUE, "{why}");
        assert!(v.detail.contains(part), "{why}: {}", v.detail);
    }
    let (mut o, keys) = evidence_oracle();
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    let a = signed_proposal(&keys, 0, 2, "a");
    o.on_own_round_vote(
        AgentId(0),
        &signed_round_vote(&keys, VoteKind::Precommit, 0, 1, Some(signing::value_id(&a.value))),
        1,
        10,
    );
    o.locks_on_proposal_sent(AgentId(0), &a, 5, 50);
    let v = o.violation().cloned().expect("a fresh value while locked");
    assert!(v.detail.contains("a fresh value while locked in round 1"), "{}", v.detail);
    // Its own fresh proposal of the lock round itself, first seen later (a gossiped copy), is not judged.
    let (mut o, keys) = evidence_oracle();
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    let a = signed_proposal(&keys, 0, 1, "a");
    o.on_own_round_vote(
        AgentId(0),
        &signed_round_vote(&keys, VoteKind::Precommit, 0, 1, Some(signing::value_id(&a.value))),
        1,
        10,
    );
    o.locks_on_proposal_sent(AgentId(0), &a, 5, 50);
    assert_eq!(o.violation(), None);
}

/// A prevote of `agent` in round `round` of `s` for `value` (nil: `None`).
fn prevote_for(s: SessionId, round: Round, agent: u32, value: Option<u8>) -> RoundVote {
    RoundVote { value: value.map(|b| ValueId([b; 32])), ..prevote(s, round, agent) }
}

/// `step-justified`, nil precommits (n = 4, q = 3, timeout_prevote(1) = 100 ms): agent 0's nil
/// precommit of round 1 needs q nil prevotes of the round (L44) or q prevotes of it held for
/// timeout_prevote(1) (L35, L59); what it may hold counts from any message and incarnation.
#[test]
fn step_justified_fails_a_nil_precommit_without_q_nil_prevotes_or_the_prevote_timeout() {
    let s = SessionId(0);
    let me = AgentId(0);
    let timeout = ProtocolConfig::default().timeout(consensus_core::protocol::TimerKind::Prevote, 1);
    assert_eq!(timeout, 100);
    // Agent 0 prevoted nil at 100; agent 1's prevote for a value arrived at 110, agent 2's nil
    // prevote at 120: three prevotes (q), one of them only at 120.
    let setup = || {
        let mut o = oracle(4);
        rounds_entered_by_timeouts(&mut o, SessionId(0));
        o.on_own_round_vote(me, &prevote(s, 1, 0), 1, 100);
        o.on_delivered(me, &Message::RoundVote(prevote_for(s, 1, 1, Some(7))), 110);
        o.on_delivered(me, &Message::RoundVote(prevote(s, 1, 2)), 120);
        o
    };
    let mut o = setup();
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 219);
    let v = o.violation().cloned().unwrap_or_else(|| panic!("a nil precommit 99 ms after the q-th prevote"));
    assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::STEP_JUSTIFIED, 2, 219));
    assert!(v.detail.contains("round 1 of session-0") && v.detail.contains("at 120 ms"), "{}", v.detail);

    let mut o = setup();
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 220);
    assert_eq!(o.violation(), None, "timeout_prevote(1) after the q-th prevote: L59");

    let mut o = setup();
    o.on_delivered(me, &Message::RoundVote(prevote(s, 1, 3)), 125);
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 125);
    assert_eq!(o.violation(), None, "q nil prevotes (0, 2, 3): L44");

    // Only a re-sent copy is late; the first precommit was in time.
    let mut o = setup();
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 230);
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 3, 231);
    assert_eq!(o.violation(), None);

    // Two prevotes only, whatever the wait.
    let mut o = oracle(4);
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    o.on_own_round_vote(me, &prevote(s, 1, 0), 1, 100);
    o.on_delivered(me, &Message::RoundVote(prevote(s, 1, 1)), 110);
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 5_000);
    let v = o.violation().cloned().unwrap_or_else(|| panic!("two prevotes of three"));
    assert!(v.detail.contains("from only 2 members"), "{}", v.detail);

    // A prevote carried in a polka certificate, delivered before a restart, may be held (the
    // log replays it); one of a non-member (agent 9) is not counted.
    let mut o = oracle(4);
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    o.on_own_round_vote(me, &prevote(s, 1, 0), 1, 100);
    let mut proposal = proposal_of(s);
    proposal.polka = vec![prevote_for(s, 1, 1, Some(7)), prevote_for(s, 1, 9, Some(7))];
    o.on_delivered(me, &Message::Proposal(Box::new(proposal)), 105);
    o.on_delivered(me, &Message::RoundVote(prevote(s, 1, 2)), 110);
    o.on_restart(me, 150);
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 210);
    assert_eq!(o.violation(), None, "prevotes of 0, 1, 2 by 110: L59 at 210");

    // Without any prevote held, an honest agent's nil precommit is flagged; a Byzantine
    // agent's is not judged, nor an honest agent's precommit for a value.
    let mut o = oracle(4);
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 5);
    assert_eq!(o.violation().map(|v| v.invariant.clone()), Some(names::STEP_JUSTIFIED.to_owned()));
    let mut o = oracle(4);
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    o.honest.remove(&me);
    o.on_own_round_vote(me, &vote(VoteKind::Precommit, s, 1, 0), 2, 5);
    o.on_own_round_vote(
        AgentId(1),
        &RoundVote { value: Some(ValueId([7; 32])), ..vote(VoteKind::Precommit, s, 1, 1) },
        3,
        5,
    );
    assert_eq!(o.violation(), None, "a Byzantine agent's nil precommit, an honest one for a value");
}

/// `step-timely` (n = 4, q = 3): agent 0, in the prevote step of round 1 (its prevote sent),
/// holding three honest nil prevotes (its own, 1's, 2's) precommits at once (L44); holding
/// three prevotes for the value it prevoted, it precommits at once (L36). Only genuine honest
/// prevotes delivered since its restart while it had voted in round 0 or later count.
#[test]
fn step_timely_fails_a_precommit_after_the_step_it_was_owed_in() {
    let s = SessionId(0);
    let me = AgentId(0);
    let sent = |o: &mut Oracle, agents: &[u32], value: Option<u8>| {
        for a in agents {
            o.on_own_round_vote(AgentId(*a), &prevote_for(s, 1, *a, value), 1, 90);
        }
    };
    let deliver = |o: &mut Oracle, v: RoundVote, at: TimeMs| o.on_delivered(me, &Message::RoundVote(v), at);
    let setup = |own: Option<u8>, others: Option<u8>| {
        let mut o = oracle(4);
        rounds_entered_by_timeouts(&mut o, SessionId(0));
        sent(&mut o, &[1, 2], others);
        o.on_own_round_vote(me, &prevote_for(s, 1, 0, own), 2, 100);
        deliver(&mut o, prevote_for(s, 1, 1, others), 110);
        deliver(&mut o, prevote_for(s, 1, 2, others), 120);
        o
    };
    let precommit =
        |value: Option<u8>| RoundVote { value: value.map(|b| ValueId([b; 32])), ..vote(VoteKind::Precommit, s, 1, 0) };

    let mut o = setup(None, None);
    o.on_own_round_vote(me, &precommit(None), 3, 120);
    assert_eq!(o.violation(), None, "precommitted nil in the step the third nil prevote arrived");
    let mut o = setup(None, None);
    o.on_own_round_vote(me, &precommit(None), 3, 220);
    let v = o.violation().cloned().unwrap_or_else(|| panic!("a nil precommit at the prevote timeout, not at L44"));
    assert_eq!((v.invariant.as_str(), v.step, v.time_ms), (names::STEP_TIMELY, 3, 220));
    assert!(v.detail.contains("from 120 ms") && v.detail.contains("L44"), "{}", v.detail);

    // L36: its own prevote and two more for its value.
    let mut o = setup(Some(5), Some(5));
    o.on_own_round_vote(me, &precommit(Some(5)), 3, 121);
    let v = o.violation().cloned().unwrap_or_else(|| panic!("a precommit for its value one step late"));
    assert!(v.detail.contains("L36"), "{}", v.detail);
    let mut o = setup(Some(5), Some(5));
    o.on_own_round_vote(me, &precommit(Some(5)), 3, 120);
    assert_eq!(o.violation(), None);

    // Prevotes for another value than its own: the proposal's value may be invalid to it.
    let mut o = setup(Some(5), Some(6));
    o.on_delivered(me, &Message::RoundVote(prevote_for(s, 1, 3, Some(6))), 130);
    o.on_own_round_vote(me, &precommit(None), 3, 500);
    assert_eq!(o.violation(), None, "q prevotes for a value it did not prevote");

    // A forged prevote, or a Byzantine agent's, does not count.
    let mut o = oracle(4);
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    o.honest.remove(&AgentId(3));
    sent(&mut o, &[1, 2], None);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 2, 100);
    deliver(&mut o, prevote(s, 1, 1), 110);
    let mut forged = prevote(s, 1, 2);
    forged.signature = Signature([0x77; 64]);
    deliver(&mut o, forged, 115);
    deliver(&mut o, prevote(s, 1, 3), 120);
    o.on_own_round_vote(me, &precommit(None), 3, 220);
    assert_eq!(o.violation().map(|v| v.invariant.clone()), None, "one genuine honest nil prevote besides its own");

    // Delivered before it had voted in round 0 or later since its restart: maybe not kept.
    let mut o = oracle(4);
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    sent(&mut o, &[1, 2], None);
    deliver(&mut o, prevote(s, 1, 1), 50);
    deliver(&mut o, prevote(s, 1, 2), 60);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 2, 100);
    o.on_own_round_vote(me, &precommit(None), 3, 220);
    assert_eq!(o.violation(), None, "round 1's prevotes arrived before its round was known");
    let mut o = oracle(4);
    rounds_entered_by_timeouts(&mut o, SessionId(0));
    sent(&mut o, &[1, 2], None);
    o.on_own_round_vote(me, &prevote(s, 0, 0), 1, 40);
    deliver(&mut o, prevote(s, 1, 1), 50);
    deliver(&mut o, prevote(s, 1, 2), 60);
    o.on_own_round_vote(me, &prevote(s, 1, 0), 2, 100);
    o.on_own_round_vote(me, &precommit(None), 3, 220);
    assert_eq!(o.violation().map(|v| v.invariant.clone()), Some(names::STEP_TIMELY.to_owned()), "kept: round 0 voted");

    // A restart between: the vote keeper and the step may be lost.
    let mut o = setup(None, None);
    o.on_restart(me, 150);
    o.on_own_round_vote(me, &precommit(None), 3, 220);
    assert_eq!(o.violation(), None, "restarted after the obligation arose");
}

/// `step-justified`, fresh proposals (n = 7, q = 5; vote collection ends at 150 ms, the
/// deadline at 500 ms): with votes missing, a proposer proposes before vote collection only a
/// unanimous set and before the deadline only a decision by the threshold (L16–L17, L16b).
#[test]
fn step_justified_fails_a_fresh_proposal_the_proposer_had_to_hold_back() {
    let (_, base) = honest_proposal();
    let collection = ProtocolConfig::default().vote_collect_ms;
    let deadline = EngineConfig::default().deadline_ms;
    assert_eq!((collection, deadline), (150, 500));
    let threshold = AgreedOutcome::Decided {
        chosen: CandidateId(0),
        method: ConsensusMethod::Threshold,
        agreement: Ppm::ONE,
        byzantine: Vec::new(),
    };
    let dissent = AgreedOutcome::Decided {
        chosen: CandidateId(0),
        method: ConsensusMethod::MajorityWithDissent,
        agreement: Ppm::saturating(600_000),
        byzantine: Vec::new(),
    };
    let judge = |votes: usize, split: bool, outcome: &AgreedOutcome, valid_round: Option<Round>, at: TimeMs| {
        let (mut o, _) = honest_proposal();
        let mut p = base.clone();
        p.value.votes.truncate(votes);
        if split {
            p.value.votes[1].vote.candidate = CandidateId(1);
        }
        p.value.outcome = outcome.clone();
        p.valid_round = valid_round;
        o.steps_on_proposal(AgentId(0), &p, 4, at);
        o.violation().map(|v| (v.invariant.clone(), v.detail.clone()))
    };
    /// (name, votes kept, split, outcome, valid round, proposed at, the rule a violation names)
    type Row<'a> = (&'a str, usize, bool, &'a AgreedOutcome, Option<Round>, TimeMs, Option<&'a str>);
    let rows: [Row; 10] = [
        ("all seven votes, any time", 7, true, &dissent, None, 10, None),
        ("q unanimous votes deciding by the threshold early (L17)", 5, false, &threshold, None, 10, None),
        ("q split votes before vote collection", 5, true, &threshold, None, 149, Some("L16–L17")),
        ("q split votes by the threshold after vote collection", 5, true, &threshold, None, 150, None),
        ("q votes without a threshold decision before the deadline", 6, false, &dissent, None, 300, Some("L16b")),
        ("the same at the deadline", 6, false, &dissent, None, 500, None),
        ("fewer than q votes", 4, false, &threshold, None, 600, Some("fewer than q")),
        ("a re-proposal (L15)", 4, true, &dissent, Some(0), 10, None),
        ("unanimous early but no threshold decision", 5, false, &dissent, None, 10, Some("L16b")),
        ("six votes by the threshold after vote collection", 6, true, &threshold, None, 200, None),
    ];
    for (what, votes, split, outcome, valid_round, at, fires) in rows {
        let found = judge(votes, split, outcome, valid_round, at);
        match (fires, found) {
            (None, None) => {}
            (Some(why), Some((invariant, detail))) => {
                assert_eq!(invariant, names::STEP_JUSTIFIED, "{what}");
                assert!(detail.contains(why) && detail.contains("round 0 of session-0"), "{what}: {detail}");
            }
            (fires, found) => panic!("{what}: expected {fires:?}, found {found:?}"),
        }
    }
}
