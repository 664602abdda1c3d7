//! Honest answers: `404` for ids never issued, a bounded `wait_ms`, and `verify` holding every
//! field of an answer to its certificate.

use std::process::Command;
use std::time::{Duration, Instant};

use node::http_client;
use serde_json::Value;

use crate::harness::{exclusive, Cluster};

async fn get(url: &str) -> (u16, Value) {
    let r = http_client::request("GET", url, None, Duration::from_secs(40)).await.unwrap_or_else(|e| panic!("{e}"));
    (r.status, serde_json::from_slice(&r.body).unwrap_or_default())
}

/// Runs `bftsim-node verify` on `answer`; its success and its output (stdout, stderr).
fn verify(cluster: &Cluster, answer: &Value) -> (bool, String) {
    let file = cluster.dir.join("answer.json");
    std::fs::write(&file, answer.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_bftsim-node"))
        .args(["verify", "--config"])
        .arg(&cluster.configs[2])
        .arg("--certificate")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_404_waits_are_bounded_and_verify_checks_every_field() {
    let _one = exclusive().await;
    let cluster = Cluster::start("answers", 4, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3]).await;
        let id = cluster.open(1, "what is honest?").await;
        let decision = cluster.must_decide(2, id, 20_000).await;

        // Never issued, at the opener (agent 0) and at an agent that asks it (agent 3).
        for agent in [0, 3] {
            for never in [id + 1, 987_654_321, u64::MAX] {
                let started = Instant::now();
                let (status, body) = get(&format!("{}/v1/sessions/{never}?wait_ms=20000", cluster.urls[agent])).await;
                assert_eq!(status, 404, "agent {agent}, session {never}: {body}");
                let error = body["error"].as_str().unwrap_or_default();
                assert!(error.contains(&format!("session {never} was never issued")), "{body}");
                assert!(started.elapsed() < Duration::from_secs(10), "answered at once, not after the wait");
            }
            let (status, body) = get(&format!("{}/v1/sessions/{id}", cluster.urls[agent])).await;
            assert!(status == 200 || status == 202, "issued session {id} at agent {agent}: {status} {body}");
        }
        let started = Instant::now();
        let (status, body) = get(&format!("{}/v1/sessions/{id}?wait_ms=99999999", cluster.urls[1])).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap_or_default().contains("above the longest wait, 30000 ms"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(10));

        // verify: the answer as served, then with one field edited outside the certificate.
        let (ok, out) = verify(&cluster, &decision);
        assert!(ok && out.contains("valid: session") && out.contains("every field of the answer"), "{out}");
        let chosen = decision["chosen"].as_u64().unwrap_or(0);
        let edits: [(&str, Value); 5] = [
            ("chosen", Value::from((chosen + 1) % 3)),
            ("chosen_text", Value::from("a text nobody chose")),
            ("query", Value::from("another question")),
            ("participating", Value::from(vec![0, 1])),
            ("session", Value::from(id + 7)),
        ];
        for (field, value) in edits {
            let mut edited = decision.clone();
            edited[field] = value.clone();
            let (ok, out) = verify(&cluster, &edited);
            assert!(!ok, "an edited `{field}` passed verify: {out}");
            assert!(out.contains(&format!("`{field}` is {value}, but the certificate says")), "{field}: {out}");
        }
        let mut extra = decision.clone();
        extra["note"] = Value::from("trust me");
        let (ok, out) = verify(&cluster, &extra);
        assert!(!ok && out.contains("`note` is not a field of an answer"), "{out}");

        // Answers without a certificate are explained, not parsed as one.
        let (_, pending) = get(&format!("{}/v1/sessions/{id}", cluster.urls[0])).await;
        let pending = if pending["status"] == "pending" {
            pending
        } else {
            serde_json::json!({ "session": id, "status": "pending", "round": 1, "last_timer": "prevote (round 1)" })
        };
        let (ok, out) = verify(&cluster, &pending);
        assert!(!ok && out.contains("was not decided yet") && !out.contains("missing field"), "{out}");
        let (_, not_found) = get(&format!("{}/v1/sessions/{}", cluster.urls[0], u64::MAX)).await;
        let (ok, out) = verify(&cluster, &not_found);
        assert!(!ok && out.contains("the answer is an error, not a decision"), "{out}");
    };
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap_or_else(|_| panic!("timed out"));
}
