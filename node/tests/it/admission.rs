//! Back-pressure: a saturated opener answers `429 Too Many Requests` with `Retry-After`
//! (before: `503`, which says the service is down), directly and through a forwarding node,
//! and every session it acknowledged is decided.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{exclusive, Cluster};

/// `POST /v1/sessions` over raw HTTP/1.1: (status, Retry-After, body).
fn post(base: &str, k: usize) -> (u16, Option<String>, String) {
    let host = base.trim_start_matches("http://");
    let body = format!("{{\"query\": \"admission {k}\", \"candidates\": [\"a\", \"b\"]}}");
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("{host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    let request = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap_or_else(|e| panic!("{e}"));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no body in {raw}"));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let retry = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(str::to_owned));
    (status, retry, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_opener_answers_429_with_retry_after_and_decides_what_it_acknowledged() {
    let _one = exclusive().await;
    // One session in flight, two queued, evaluations of 300–400 ms: a burst of 12 saturates it.
    let cluster = Cluster::start_edited_text("admission", 4, &|t| {
        t.replace("max_in_flight = 16\nmax_queued = 4096", "max_in_flight = 1\nmax_queued = 2")
            .replace("latency_ms = [0, 2]", "latency_ms = [300, 400]")
    });
    cluster.wait_healthy(&[0, 1, 2, 3]).await;
    let urls = cluster.urls.clone();
    let answers = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..12)
                .map(|k| {
                    let base = urls[k % 2].clone(); // the opener (0) and a forwarding node (1)
                    scope.spawn(move || post(&base, k))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect::<Vec<_>>()
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let refused: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 429).collect();
    assert!(!refused.is_empty(), "no 429 in {answers:?}");
    assert!(refused.iter().all(|(_, retry, _)| retry.as_deref() == Some("1")), "{refused:?}");
    assert!(answers.iter().all(|(s, _, _)| *s == 201 || *s == 429), "{answers:?}");
    for (_, _, body) in answers.iter().filter(|(s, _, _)| *s == 201) {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let id = v["session"].as_u64().unwrap_or_else(|| panic!("{body}"));
        cluster.must_decide(2, id, 30_000).await;
    }
}
