//! End to end through consensus-core: engine → registry → metrics → alerts over a stream of
//! sessions, as a deployment would wire them.

use bftsim_tests::scored_vote;
use consensus_core::aggregate::{aggregate, SessionInput};
use consensus_core::metrics::{check_alerts, AlertThresholds, MetricsRecorder, SessionOutcome, SessionResult};
use consensus_core::registry::{Registry, RegistryEvent};
use consensus_core::{AgentId, AgentStatus, CandidateId, Decision, EngineConfig, SessionId};

/// A vote-worst attacker among five is flagged in its first session, quarantined, excluded
/// after three offences and replaced; every session still decides for the best candidate,
/// and the monitor raises the design's Byzantine-rate warning and nothing else.
#[test]
fn attacker_is_excluded_and_the_monitor_sees_it() {
    let mut config = EngineConfig::default();
    config.quarantine.sessions = 2;
    let mut registry = Registry::seed_committee(5, &config);
    let mut metrics = MetricsRecorder::new();
    let candidates = [CandidateId(0), CandidateId(1), CandidateId(2)];
    let mut events = Vec::new();
    for s in 0..30u64 {
        let session = SessionId(s);
        let mut votes: Vec<_> =
            (0..4).map(|i| scored_vote(session, i, 0, &[880_000 + i * 10_000, 600_000, 100_000], 920_000)).collect();
        // The attacker (agent 4) votes while it is active; replacements (ids ≥ 5) vote honestly.
        for record in registry.active().filter(|r| r.id.0 >= 4) {
            let v = if record.id == AgentId(4) {
                scored_vote(session, 4, 2, &[50_000, 100_000, 990_000], 990_000)
            } else {
                let mut v = scored_vote(session, record.id.0, 0, &[900_000, 600_000, 100_000], 950_000);
                v.specialization = record.specialization;
                v
            };
            votes.push(v);
        }
        let a = aggregate(&SessionInput { session, candidates: &candidates, votes: &votes }, &registry, &config);
        let Ok(Decision::Decided(result)) = &a.outcome else { panic!("session {s}: {:?}", a.outcome) };
        assert_eq!(result.chosen, CandidateId(0), "session {s}");
        metrics.record(&SessionOutcome {
            session,
            latency_ms: 40 + s,
            result: SessionResult::Decided { agreement: result.agreement_rate, fallback: false },
            votes_counted: result.participating.len() as u32,
            votes_flagged: result.byzantine.len() as u32,
        });
        events.extend(registry.apply(&a.record, &config));
    }
    assert_eq!(registry.get(AgentId(4)).map(|r| r.status), Some(AgentStatus::Excluded));
    assert!(events.contains(&RegistryEvent::Excluded { agent: AgentId(4) }), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, RegistryEvent::Spawned { .. })), "{events:?}");
    assert_eq!(registry.count(AgentStatus::Active), 5);
    let snapshot = metrics.snapshot(Some(&registry));
    assert_eq!(snapshot.sessions, 30);
    assert_eq!(snapshot.consensus_success_rate.raw(), 1_000_000);
    assert_eq!(snapshot.excluded_agents, 1);
    let alerts = check_alerts(&snapshot, &AlertThresholds::default());
    let titles: Vec<_> = alerts.iter().map(|a| a.title.as_str()).collect();
    // 3 flagged votes of 150: 2% is under the design's 10% warning line.
    assert!(titles.is_empty(), "{titles:?} {snapshot:?}");
}
