//! Many sessions at once on a healthy cluster.

use std::time::Duration;

use crate::harness::{agreed_part, exclusive, open_concurrently, verify, Cluster};

/// 50 sessions opened concurrently through every node (four of them forward to the opener) are
/// all decided, identically on all five agents, and every certificate verifies offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_decide_identically_everywhere_with_valid_certificates() {
    let _one = exclusive().await;
    let cluster = Cluster::start("fifty", 5, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let sessions = open_concurrently(&cluster.urls, 50, "fifty").await;
        assert_eq!(sessions, (0..50).collect::<Vec<u64>>(), "the opener numbers sessions densely");
        let (keyring, members) = cluster.keyring();
        for &s in &sessions {
            let reference = cluster.must_decide(0, s, 60_000).await;
            verify(&reference, &keyring, &members);
            for i in 1..5 {
                let d = cluster.must_decide(i, s, 60_000).await;
                assert_eq!(agreed_part(&d), agreed_part(&reference), "session {s}: agent {i} differs from agent 0");
                verify(&d, &keyring, &members);
            }
        }
        for i in 0..5 {
            assert_eq!(cluster.metric(i, "bftsim_evidence_total", "").await, 0.0, "agent {i} saw equivocation");
            assert!(cluster.metric(i, "bftsim_decisions_total", "").await >= 50.0);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap_or_else(|_| panic!("timed out"));
}
