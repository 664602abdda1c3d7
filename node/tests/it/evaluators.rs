//! Judge programs as evaluators.

use std::time::Duration;

use crate::harness::{exclusive, Cluster};

/// Three agents run `examples/judge.py` (the `command` evaluator); the fourth runs a program
/// that prints something that is not a vote (three seconds late, so that the proposal carries
/// the three judges' votes), so it abstains and counts it. The cluster picks the candidate the
/// judges prefer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_programs_vote_and_a_broken_judge_abstains() {
    let _one = exclusive().await;
    let judge = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/judge.py");
    let evaluator = format!("[evaluator]\nkind = \"command\"\nargv = [\"python3\", {judge:?}]\ntimeout_ms = 10000\n");
    let broken =
        "[evaluator]\nkind = \"command\"\nargv = [\"sh\", \"-c\", \"cat > /dev/null; sleep 3; echo not-json\"]\ntimeout_ms = 10000\n".to_owned();
    let cluster = Cluster::start_with("judge", 4, &[], &evaluator, &[(3, broken)]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3]).await;
        let body = serde_json::json!({
            "query": "What is the capital of France?",
            "candidates": ["Lyon", "Paris is the capital of France.", "Marseille is in the south."],
        })
        .to_string();
        let url = format!("{}/v1/sessions", cluster.urls[2]);
        let r = node::http_client::request("POST", &url, Some(body.as_bytes()), Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let d = cluster.must_decide(0, 0, 60_000).await;
        assert_eq!(d["chosen_text"], "Paris is the capital of France.", "{d}");
        assert_eq!(d["outcome"], "decided", "{d}");
        let mut bad = 0.0;
        for _ in 0..100 {
            bad = cluster.metric(3, "bftsim_evaluator_abstentions_total", "bad-output").await;
            if bad > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(bad, 1.0, "the broken judge's abstention is counted; log:\n{}", cluster.log(3));
    };
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap_or_else(|_| panic!("timed out"));
}
