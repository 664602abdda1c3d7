//! The design's own tests (section 7.1), re-expressed against this engine. The SLA and load
//! tests are measured, not asserted on the wall clock: see `benches/aggregation.rs` and the
//! simulator, which asserts simulated latency.

use std::collections::BTreeMap;

use consensus_core::aggregate::{aggregate, SessionInput};
use consensus_core::config::{AgreementBasis, DetectorKind};
use consensus_core::conflict::{resolve_conflict, ConflictResolution, ConflictType, Context, TalliedVote, Tally};
use consensus_core::policies::{ConsensusOptimizer, OptimizationType, OptimizedOutcome};
use consensus_core::registry::{AgentRecord, Registry};
use consensus_core::{
    AgentId, AgentSpecialization, AgentVote, CandidateId, ConsensusMethod, Decision, EngineConfig, SessionId,
};

use crate::support::{accept, ppm};

const GOOD: CandidateId = CandidateId(0);
const MALICIOUS: CandidateId = CandidateId(1);

/// An honest vote: scores both candidates near their true quality (good 0.9, malicious 0.1)
/// and accepts the good one.
fn honest(session: SessionId, agent: u32, noise: f64) -> AgentVote {
    let mut v = accept(session, agent, GOOD.0, 0.9 - noise, 0.92);
    v.scores = BTreeMap::from([(GOOD, ppm(0.9 - noise)), (MALICIOUS, ppm(0.1 + noise))]);
    v
}

/// The Byzantine vote of design §7.1: the malicious response, high confidence.
fn malicious(session: SessionId, agent: u32) -> AgentVote {
    let mut v = accept(session, agent, MALICIOUS.0, 0.95, 0.99);
    v.scores = BTreeMap::from([(GOOD, ppm(0.05)), (MALICIOUS, ppm(0.95))]);
    v
}

/// Design §7.1 `test_byzantine_fault_tolerance`, with both detectors.
#[test]
fn one_byzantine_agent_of_five_is_flagged_and_the_good_response_chosen() {
    for kind in [DetectorKind::MeanDeviation, DetectorKind::MedianMad] {
        let mut config = EngineConfig::default();
        config.detector.kind = kind;
        let registry = Registry::seed_committee(5, &config);
        let session = SessionId(1);
        let votes = vec![
            honest(session, 0, 0.0),
            honest(session, 1, 0.02),
            honest(session, 2, 0.01),
            honest(session, 3, 0.03),
            malicious(session, 4),
        ];
        let candidates = [GOOD, MALICIOUS];
        let a = aggregate(&SessionInput { session, candidates: &candidates, votes: &votes }, &registry, &config);
        let Ok(Decision::Decided(result)) = &a.outcome else { panic!("{kind:?}: {:?}", a.outcome) };
        assert!(result.agreement_rate >= ppm(0.66), "{kind:?}: {result:?}");
        assert_eq!(result.byzantine, vec![AgentId(4)], "{kind:?}: exactly the malicious agent is flagged");
        assert_eq!(result.chosen, GOOD, "{kind:?}");
        assert_eq!(a.conflict, ConflictType::ByzantineInfluence);
    }
}

/// Design §7.1 `test_weighted_conflict_resolution`: analyzer (weight 1.2) and retriever (1.0)
/// split one vote each; the analyzer's higher weighted score wins.
#[test]
fn weighted_tie_goes_to_the_heavier_analyzer() {
    let config = EngineConfig::default();
    let registry = Registry::from_records(vec![
        AgentRecord::new(AgentId(0), AgentSpecialization::Analyzer, &config),
        AgentRecord::new(AgentId(1), AgentSpecialization::Retriever, &config),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let session = SessionId(2);
    let (a, b) = (CandidateId(0), CandidateId(1));
    let mut analyzer = AgentVote::accept(AgentId(0), AgentSpecialization::Analyzer, session, a, ppm(0.8), ppm(0.9));
    analyzer.scores = BTreeMap::from([(a, ppm(0.8)), (b, ppm(0.75))]);
    let mut retriever = AgentVote::accept(AgentId(1), AgentSpecialization::Retriever, session, b, ppm(0.9), ppm(0.8));
    retriever.scores = BTreeMap::from([(a, ppm(0.85)), (b, ppm(0.9))]);
    let votes = [analyzer, retriever];
    let agg = aggregate(&SessionInput { session, candidates: &[a, b], votes: &votes }, &registry, &config);
    assert_eq!(agg.conflict, ConflictType::Tie, "{agg:?}");
    assert!(matches!(agg.resolution, ConflictResolution::WeightedConsensus { chosen, .. } if chosen == a), "{agg:?}");
    let Ok(Decision::Decided(result)) = agg.outcome else { panic!("{:?}", agg.outcome) };
    assert_eq!((result.chosen, result.method), (a, ConsensusMethod::WeightedTieBreak));

    // The same through the resolver alone, as the design's test calls it.
    let weight =
        |record: &AgentRecord, confidence| consensus_core::aggregate::effective_weight_micro(record, confidence);
    let tally = Tally::new(
        vec![
            TalliedVote {
                agent: AgentId(0),
                support: Some(a),
                score: ppm(0.8),
                confidence: ppm(0.9),
                weight_micro: weight(registry.get(AgentId(0)).unwrap_or_else(|| panic!()), ppm(0.9)),
                flagged: false,
            },
            TalliedVote {
                agent: AgentId(1),
                support: Some(b),
                score: ppm(0.9),
                confidence: ppm(0.8),
                weight_micro: weight(registry.get(AgentId(1)).unwrap_or_else(|| panic!()), ppm(0.8)),
                flagged: false,
            },
        ],
        AgreementBasis::Count,
    );
    let (_, resolution) = resolve_conflict(&tally, Context { participation_quorum: 2, max_faulty: 0 }, &config);
    assert!(matches!(resolution, ConflictResolution::WeightedConsensus { chosen, .. } if chosen == a));
}

/// Design §7.1 `test_early_unanimous_decision`.
#[test]
fn unanimous_votes_decide_early() {
    let config = EngineConfig::default();
    let registry = Registry::seed_committee(5, &config);
    let session = SessionId(3);
    let votes: Vec<_> = (0..5).map(|i| accept(session, i, 7, 0.9, 0.95)).collect();
    let candidates = [CandidateId(6), CandidateId(7)];
    let mut optimizer = ConsensusOptimizer::new(&config);
    let input = SessionInput { session, candidates: &candidates, votes: &votes };
    match optimizer.optimize(&input, &registry, &config, 0, 3) {
        OptimizedOutcome::EarlyDecision { optimization, result, .. } => {
            assert_eq!(optimization, OptimizationType::EarlyUnanimous);
            assert_eq!(result.chosen, CandidateId(7));
        }
        other => panic!("expected an early unanimous decision, got {other:?}"),
    }
}

/// Design §7.1 `test_consensus_under_load`, without the wall clock: 50 concurrent sessions on one
/// registry all decide with agreement ≥ 0.66.
#[test]
fn fifty_sessions_all_decide() {
    let config = EngineConfig::default();
    let registry = Registry::seed_committee(5, &config);
    for s in 0..50u64 {
        let session = SessionId(s);
        let votes: Vec<_> = (0..5).map(|i| honest(session, i, f64::from(i) * 0.01)).collect();
        let candidates = [GOOD, MALICIOUS];
        let a = aggregate(&SessionInput { session, candidates: &candidates, votes: &votes }, &registry, &config);
        let Ok(Decision::Decided(result)) = a.outcome else { panic!("session {s}: {:?}", a.outcome) };
        assert!(result.agreement_rate >= ppm(0.66));
        assert_eq!(result.chosen, GOOD);
    }
}

/// Design §3.2: a repeatedly malicious agent is quarantined, then excluded after three
/// offences, and replacements keep five agents active.
#[test]
fn repeat_offender_is_excluded_and_replaced() {
    let mut config = EngineConfig::default();
    config.quarantine.sessions = 1;
    let mut registry = Registry::seed_committee(5, &config);
    let candidates = [GOOD, MALICIOUS];
    let mut excluded_at = None;
    for s in 0..8u64 {
        let session = SessionId(s);
        let mut votes: Vec<_> = (0..4).map(|i| honest(session, i, 0.0)).collect();
        if registry.get(AgentId(4)).is_some_and(|r| r.is_active()) {
            votes.push(malicious(session, 4));
        }
        let a = aggregate(&SessionInput { session, candidates: &candidates, votes: &votes }, &registry, &config);
        assert_eq!(a.outcome.as_ref().ok().and_then(Decision::chosen), Some(GOOD), "session {s}");
        registry.apply(&a.record, &config);
        if excluded_at.is_none()
            && registry.get(AgentId(4)).map(|r| r.status) == Some(consensus_core::AgentStatus::Excluded)
        {
            excluded_at = Some(s);
        }
    }
    assert!(excluded_at.is_some(), "agent 4 was never excluded");
    assert_eq!(registry.get(AgentId(4)).map(|r| r.offences), Some(3));
    assert_eq!(registry.count(consensus_core::AgentStatus::Active), 5);
}
