//! HTTP hygiene: every error is JSON with one message; unknown fields, an empty query, empty or
//! duplicate candidates, a session id or query string that does not parse and an unknown route
//! are refused with what is wrong (before: accepted, or answered in plain text).

use std::time::Duration;

use node::http_client;
use serde_json::Value;

use crate::harness::{exclusive, Cluster};

async fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value, String) {
    let r = http_client::request(method, url, body.map(str::as_bytes), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    (r.status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_one_json_error_each() {
    let _one = exclusive().await;
    let cluster = Cluster::start("hygiene", 4, &[]);
    cluster.wait_healthy(&[0, 1, 2, 3]).await;
    let post = format!("{}/v1/sessions", cluster.urls[0]);
    let cases: [(&str, &str, &str, u16, &str); 8] = [
        (
            "POST",
            &post,
            r#"{"query": "q", "candidates": ["a", "b"], "candidate": "c"}"#,
            400,
            "unknown field `candidate`",
        ),
        ("POST", &post, r#"{"query": "  ", "candidates": ["a", "b"]}"#, 400, "the query is empty"),
        ("POST", &post, r#"{"query": "q", "candidates": []}"#, 400, "0 candidates"),
        ("POST", &post, r#"{"query": "q", "candidates": ["a", ""]}"#, 400, "candidate 1 is empty"),
        ("POST", &post, r#"{"query": "q", "candidates": ["a", "b", "a"]}"#, 400, "candidates 0 and 2 are the same"),
        ("GET", &format!("{}/v1/sessions/abc", cluster.urls[0]), "", 400, "the session id must be a number"),
        ("GET", &format!("{}/v1/sessions/0?wait_ms=soon", cluster.urls[0]), "", 400, "bad query string"),
        ("GET", &format!("{}/v2/nothing", cluster.urls[0]), "", 404, "no such route"),
    ];
    for (method, url, body, status, says) in cases {
        let body = (!body.is_empty()).then_some(body);
        let (got, json, text) = call(method, url, body).await;
        assert_eq!(got, status, "{method} {url} {body:?}: {text}");
        let error = json["error"].as_str().unwrap_or_else(|| panic!("not a JSON error: {text}"));
        assert!(error.contains(says), "{method} {url} {body:?}: {error}");
    }
    // Through a forwarding node the same refusal comes back.
    let forwarded = format!("{}/v1/sessions", cluster.urls[2]);
    let (got, json, _) = call("POST", &forwarded, Some(r#"{"query": "q", "candidates": ["x", "x"]}"#)).await;
    assert_eq!(got, 400);
    assert!(json["error"].as_str().unwrap_or_default().contains("same text"), "{json}");
}

/// `/healthz` tells ready from alive: an agent cut off from every peer is not ready (`503`
/// with the reason) but alive (`/healthz/live` `200`: a restart would not help it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_peers_is_alive_but_not_ready() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start("ready-alive", 4, &[]);
    cluster.wait_healthy(&[0, 1, 2, 3]).await;
    let live = format!("{}/healthz/live", cluster.urls[3]);
    let ready = format!("{}/healthz/ready", cluster.urls[3]);
    assert_eq!(call("GET", &live, None).await.0, 200);
    let (status, body, _) = call("GET", &ready, None).await;
    assert_eq!((status, body["ready"].as_bool(), body["alive"].as_bool()), (200, Some(true), Some(true)), "{body}");
    for i in 0..3 {
        cluster.procs[i].kill();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let (status, body, text) = call("GET", &ready, None).await;
        if status == 503 {
            assert_eq!((body["ready"].as_bool(), body["alive"].as_bool()), (Some(false), Some(true)), "{text}");
            assert!(text.contains("no peer reachable"), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still ready with every peer down: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body, _) = call("GET", &live, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")), "{body}");
}
