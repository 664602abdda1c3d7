//! The oracle's unit tests: each invariant's checker can fail, on constructed decisions.

use super::*;
use consensus_core::protocol::messages::{Proposal, ProposalValue, SessionSpec, SignedSpec, SignedVote, ValueId};
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
    honest.on_own_round_vote(AgentId(0), session, 4, 1, 100);
    assert_eq!(honest.violation(), None, "round 4 is below the bound of 5 rounds");
    honest.on_own_round_vote(AgentId(2), session, 9, 2, 110);
    assert_eq!(honest.violation(), None, "a Byzantine agent's rounds prove nothing");
    let seen = SeenDecision { value: None, round: Some(1), outcome: chose(0), mode: ProposalMode::Normal, at_ms: 5 };
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
    let proposal = Proposal {
        round: 0,
        valid_round: None,
        value,
        proposer: AgentId(0),
        signature: Signature::ZERO,
        polka: vec![],
    };
    (oracle, proposal)
}

/// The honest-proposal-valid checker fails on each V-check an honest proposer's value can
/// break, and judges only an honest agent's own proposals.
#[test]
fn honest_proposal_valid_reports_each_broken_check() {
    type Breaks = fn(&mut Proposal);
    let table: [(&str, Breaks, Option<&str>); 8] = [
        ("valid", |_| {}, None),
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
