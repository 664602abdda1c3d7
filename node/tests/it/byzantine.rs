//! A Byzantine agent among real processes.

use std::time::Duration;

use crate::harness::{agreed_part, exclusive, open_concurrently, verify, Cluster};

/// Agent 4 runs consensus-core's `equivocate` strategy (conflicting signed messages to the two
/// halves of its peers); the four honest agents still decide every session identically, with
/// valid certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_agent_cannot_break_agreement() {
    let _one = exclusive().await;
    let cluster = Cluster::start("byzantine", 5, &[(4, "equivocate")]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let honest = &cluster.urls[..4];
        let sessions = open_concurrently(honest, 20, "byzantine").await;
        let (keyring, members) = cluster.keyring();
        for &s in &sessions {
            let reference = cluster.must_decide(0, s, 30_000).await;
            verify(&reference, &keyring, &members);
            for i in 1..4 {
                let d = cluster.must_decide(i, s, 30_000).await;
                assert_eq!(agreed_part(&d), agreed_part(&reference), "session {s}: agent {i} differs");
            }
        }
        let mut evidence = 0.0;
        for i in 0..4 {
            evidence += cluster.metric(i, "bftsim_evidence_total", "").await;
        }
        eprintln!("evidence against the equivocating agent at honest agents: {evidence}");
    };
    tokio::time::timeout(Duration::from_secs(150), run).await.unwrap_or_else(|_| panic!("timed out"));
}
