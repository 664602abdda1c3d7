//! kill -9 under load, and a restart from the durable log.

use std::time::Duration;

use crate::harness::{agreed_part, exclusive, open_at, verify, Cluster};

/// Agent 3 is killed with SIGKILL while sessions are being opened; the other four keep
/// deciding. Restarted from its log, agent 3 decides every session (those decided while it was
/// down through catch-up), agrees with the others, and no agent ever holds evidence of a
/// conflicting vote, prevote, precommit or proposal: the restarted agent did not contradict a
/// message it had signed before the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_restarts_catches_up_and_never_equivocates() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start("crash", 5, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let mut sessions = Vec::new();
        for k in 0..40 {
            if k == 15 {
                cluster.procs[3].kill();
            }
            sessions.push(open_at(cluster.urls[k % 3].clone(), format!("crash question {k}")).await);
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        for &s in &sessions {
            for i in [0, 1, 2, 4] {
                cluster.must_decide(i, s, 20_000).await;
            }
        }
        let decided_by_3: Vec<u64> = {
            let mut v = Vec::new();
            for &s in &sessions {
                // Agent 3 is down: nothing answers.
                if cluster.decision(3, s, 0).await.is_some() {
                    v.push(s);
                }
            }
            v
        };
        assert!(decided_by_3.is_empty(), "agent 3 is down");
        cluster.restart(3);
        cluster.wait_healthy(&[3]).await;
        // A few sessions after the restart, with agent 3 back in the committee.
        for k in 0..5 {
            sessions.push(open_at(cluster.urls[3].clone(), format!("after restart {k}")).await);
        }
        let (keyring, members) = cluster.keyring();
        for &s in &sessions {
            let reference = cluster.must_decide(0, s, 20_000).await;
            let d = cluster.must_decide(3, s, 30_000).await;
            assert_eq!(agreed_part(&d), agreed_part(&reference), "session {s}: restarted agent 3 differs");
            verify(&d, &keyring, &members);
        }
        let log = cluster.log(3);
        let replayed = log.lines().find(|l| l.contains("replayed")).unwrap_or_default().to_owned();
        assert!(!replayed.is_empty(), "agent 3 did not restart from its log:\n{log}");
        eprintln!("{replayed}; sessions: {}", sessions.len());
        for i in 0..5 {
            let evidence = cluster.metric(i, "bftsim_evidence_total", "").await;
            assert_eq!(evidence, 0.0, "agent {i} holds evidence of equivocation");
        }
    };
    tokio::time::timeout(Duration::from_secs(180), run).await.unwrap_or_else(|_| panic!("timed out"));
}
