//! The runner over the in-memory transport: committees decide, survive silent agents, halt
//! (safely) with too many Byzantine agents, and run the design's 50-session load test.

use consensus_core::protocol::AgreedOutcome;
use consensus_core::SessionId;

use crate::harness::{run, Member, Setup};

fn chosen_best(outcome: &crate::harness::Outcome, sessions: u64) -> u64 {
    let decided = outcome.honest_decisions();
    (0..sessions)
        .filter(|s| {
            let best = outcome.best.get(&SessionId(*s)).copied();
            decided.get(&SessionId(*s)).and_then(|d| d.first()).is_some_and(|(_, o)| o.chosen() == best)
        })
        .count() as u64
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn five_honest_agents_decide_every_session() {
    let outcome = run(Setup::new(5, 10)).await;
    outcome.assert_safe();
    outcome.assert_live(10);
    assert_eq!(chosen_best(&outcome, 10), 10, "every session decided for the best candidate");
    for (_, d) in &outcome.log.decisions {
        assert!(matches!(d.outcome, AgreedOutcome::Decided { .. }), "{d:?}");
        assert!(d.votes.len() >= 4);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn one_silent_agent_of_five() {
    let mut setup = Setup::new(5, 10);
    setup.members.insert(2, Member::Absent);
    let outcome = run(setup).await;
    outcome.assert_safe();
    outcome.assert_live(10);
    assert_eq!(chosen_best(&outcome, 10), 10);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn two_silent_agents_of_five_halt_without_disagreement() {
    let mut setup = Setup::new(5, 3);
    setup.members.insert(1, Member::Absent);
    setup.members.insert(3, Member::Absent);
    setup.limit_ms = 5_000;
    let outcome = run(setup).await;
    outcome.assert_safe();
    assert!(outcome.log.decisions.is_empty(), "3 honest of 5 are below the quorum of 4: no decision");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn committees_of_4_7_10_with_f_max_silent() {
    for (n, silent) in [(4u32, vec![3u32]), (7, vec![0, 5]), (10, vec![1, 4, 8])] {
        let mut setup = Setup::new(n, 5);
        for s in &silent {
            setup.members.insert(*s, Member::Absent);
        }
        let outcome = run(setup).await;
        outcome.assert_safe();
        outcome.assert_live(5);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fifty_concurrent_sessions_all_decide_with_agreement() {
    let mut setup = Setup::new(5, 50);
    setup.concurrency = 50;
    let outcome = run(setup).await;
    outcome.assert_safe();
    outcome.assert_live(50);
    for (_, d) in &outcome.log.decisions {
        match &d.outcome {
            AgreedOutcome::Decided { agreement, .. } => assert!(agreement.raw() >= 660_000, "{d:?}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn lossy_links_still_decide() {
    for drop_pct in [10u64, 20, 30] {
        let mut setup = Setup::new(5, 10);
        // Drop frames between agents pseudo-randomly (a fixed hash of a counter: deterministic).
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        setup.drop_rule = Some(std::sync::Arc::new(move |from, to, _frame: &[u8]| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
            from != consensus_core::AgentId::CLIENT && to != consensus_core::AgentId::CLIENT && h % 100 < drop_pct
        }));
        let outcome = run(setup).await;
        outcome.assert_safe();
        outcome.assert_live(10);
        eprintln!("drop {drop_pct}%: 10 sessions in {} ms", outcome.elapsed_ms);
    }
}

fn byzantine(strategy: consensus_core::adversary::Strategy, seed: u64) -> Member {
    Member::Custom(Box::new(move |agent, signer, peers| {
        let engine = consensus_core::EngineConfig::default();
        Box::new(consensus_core::adversary::Byzantine::new(agent, signer, strategy, peers, engine, seed, 99))
    }))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn one_equivocating_agent_of_five() {
    let mut setup = Setup::new(5, 10);
    setup.members.insert(3, byzantine(consensus_core::adversary::Strategy::Equivocate, 1));
    let outcome = run(setup).await;
    outcome.assert_safe();
    outcome.assert_live(10);
    assert!(outcome.log.evidence.contains(&consensus_core::AgentId(3)), "its conflicting messages are evidence");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn two_equivocating_agents_of_five_cannot_split_honest_agents() {
    let mut setup = Setup::new(5, 4);
    setup.members.insert(1, byzantine(consensus_core::adversary::Strategy::Equivocate, 1));
    setup.members.insert(4, byzantine(consensus_core::adversary::Strategy::Equivocate, 2));
    setup.limit_ms = 8_000;
    let outcome = run(setup).await;
    outcome.assert_safe();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn committees_of_4_7_10_with_f_max_equivocating() {
    use consensus_core::adversary::Strategy;
    for (n, bad) in [(4u32, vec![0u32]), (7, vec![2, 6]), (10, vec![0, 3, 9])] {
        let mut setup = Setup::new(n, 4);
        for (i, b) in bad.iter().enumerate() {
            let strategy = if i % 2 == 0 { Strategy::Equivocate } else { Strategy::VoteWorst };
            setup.members.insert(*b, byzantine(strategy, u64::from(*b)));
        }
        let outcome = run(setup).await;
        outcome.assert_safe();
        outcome.assert_live(4);
    }
}

/// The full-power agent over the real runner and transport (its malformed frames go through
/// `Output::SendRaw` as raw bytes): with f of them at every committee size, honest agents keep
/// agreement and decide every session.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn committees_of_4_and_7_with_f_max_full_power_agents() {
    use consensus_core::adversary::{FullPowerConfig, Strategy};
    for (n, bad) in [(4u32, vec![1u32]), (7, vec![0, 4])] {
        let mut setup = Setup::new(n, 4);
        for b in &bad {
            let seed = u64::from(*b);
            setup.members.insert(
                *b,
                Member::Custom(Box::new(move |agent, signer, peers| {
                    let engine = consensus_core::EngineConfig::default();
                    let config =
                        FullPowerConfig { rate: consensus_core::Ppm::saturating(300_000), ..Default::default() };
                    let node = consensus_core::adversary::Byzantine::new(
                        agent,
                        signer,
                        Strategy::FullPower,
                        peers,
                        engine,
                        seed,
                        99,
                    );
                    Box::new(node.with_full_power(config))
                })),
            );
        }
        let outcome = run(setup).await;
        outcome.assert_safe();
        outcome.assert_live(4);
        assert!(outcome.log.rejections > 0, "n = {n}: its malformed and forged messages are rejected");
    }
}
