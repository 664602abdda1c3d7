//! HTTP hygiene: every error is JSON with one message; unknown fields, an empty query, empty or
//! duplicate candidates, a session id or query string that does not parse and an unknown route
//! are refused with what is wrong (before: accepted, or answered in plain text).

use std::time::Duration;

use node::http_client;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Reads from `stream` until the server closes it; what it sent. Bounded by the test's timeout,
/// not by a duration asserted here.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A client that drips its headers (one byte at a time, never finishing) and one that sends
/// its headers and half its body are both cut off by the server (`[api] header_timeout_ms`,
/// `body_timeout_ms`; 300 ms here), the second with a JSON `408`; meanwhile other clients are
/// served. Before, both held their connection for as long as they liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_bodies_are_cut_off() {
    let _one = exclusive().await;
    let cluster = Cluster::start_edited_text("slow-clients", 4, &|text| {
        text.replace("header_timeout_ms = 5000", "header_timeout_ms = 300")
            .replace("body_timeout_ms = 10000", "body_timeout_ms = 300")
    });
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3]).await;
        let address = cluster.urls[0].trim_start_matches("http://").to_owned();

        // Headers, one byte every 50 ms, never ending: the server closes the connection.
        let mut drip = TcpStream::connect(&address).await.unwrap_or_else(|e| panic!("{e}"));
        let dripping = async {
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
                if drip.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        // The drip ends only when a write fails, i.e. once the server has closed the socket.
        dripping.await;
        let answer = until_closed(&mut drip).await;
        assert!(!answer.contains("200 OK"), "the dripped request was served: {answer}");

        // Headers complete, the body half sent and then nothing.
        let mut partial = TcpStream::connect(&address).await.unwrap_or_else(|e| panic!("{e}"));
        let head = "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"query\": ";
        partial.write_all(head.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
        let answer = until_closed(&mut partial).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within 300 ms") && answer.contains("body_timeout_ms"), "{answer}");

        // The node still serves others.
        let (status, _, text) = call("GET", &format!("{}/healthz/live", cluster.urls[0]), None).await;
        assert_eq!(status, 200, "{text}");
    };
    tokio::time::timeout(Duration::from_secs(60), run).await.unwrap_or_else(|_| panic!("timed out"));
}
