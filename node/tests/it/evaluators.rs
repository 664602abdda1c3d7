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

/// A judge that records how many of its agent's judges run at once, then votes for candidate 0.
const COUNTING_JUDGE: &str = r#"
import json, os, sys, time
request = json.load(sys.stdin)
d = os.path.join(sys.argv[1], "agent-%d" % request["agent"])
os.makedirs(d, exist_ok=True)
mine = os.path.join(d, str(os.getpid()))
open(mine, "w").close()
with open(d + ".counts", "a") as f:
    f.write("%d\n" % len(os.listdir(d)))
time.sleep(0.3)
os.remove(mine)
print(json.dumps({"scores": {"0": 0.9, "1": 0.2, "2": 0.1}, "confidence": 0.9}))
"#;

/// With `max_concurrent = 1`, eight sessions opened at once are judged one at a time at every
/// agent (before: one judge process per session in flight, all at once) and all decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judges_run_at_most_max_concurrent_at_once() {
    let _one = exclusive().await;
    let dir = std::env::temp_dir().join(format!("bftsim-node-it-counting-judge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let judge = dir.join("judge.py");
    std::fs::write(&judge, COUNTING_JUDGE).unwrap_or_else(|e| panic!("{e}"));
    let evaluator = format!(
        "[evaluator]\nkind = \"command\"\nargv = [\"python3\", {:?}, {:?}]\ntimeout_ms = 10000\nmax_concurrent = 1\n",
        judge.display().to_string(),
        dir.display().to_string()
    );
    let cluster = Cluster::start_with("counting", 4, &[], &evaluator, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3]).await;
        let ids = crate::harness::open_concurrently(&cluster.urls, 8, "concurrency").await;
        for id in &ids {
            let d = cluster.must_decide(0, *id, 60_000).await;
            assert_eq!(d["chosen"], 0, "{d}");
        }
        for agent in 0..4 {
            let counts = std::fs::read_to_string(dir.join(format!("agent-{agent}.counts"))).unwrap_or_default();
            let counts: Vec<u32> = counts.lines().filter_map(|l| l.trim().parse().ok()).collect();
            assert!(!counts.is_empty(), "agent {agent} never judged; log:\n{}", cluster.log(agent));
            assert_eq!(counts.iter().max(), Some(&1), "agent {agent}: judges at once {counts:?}");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap_or_else(|_| panic!("timed out"));
    let _ = std::fs::remove_dir_all(&dir);
}
