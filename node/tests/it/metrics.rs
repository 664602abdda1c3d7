//! `/metrics` by Prometheus' conventions: `promtool check metrics` passes on the classic text a
//! classic scraper gets, counters are typed with their `_total` names, durations are
//! `_seconds` histograms, HTTP requests are counted by route and status, and every documented
//! transport counter is registered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{exclusive, Cluster};

/// `GET /metrics` with `accept`: (content type, body). Raw HTTP/1.1 so that the test controls
/// the `Accept` header exactly as a scraper sends it.
fn scrape(base: &str, accept: &str) -> (String, String) {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("{host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap_or_else(|e| panic!("{e}"));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap_or_else(|e| panic!("{e}"));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no body in {raw}"));
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// promtool, installed from Debian's `prometheus` package when missing and running as root;
/// `None` (the caller skips, saying why) otherwise.
fn promtool() -> Option<&'static str> {
    let found = |p: &str| Command::new(p).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if found("promtool") {
        return Some("promtool");
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        eprintln!("skipping promtool: not installed, and not root to install Debian's prometheus package");
        return None;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "prometheus"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed && found("promtool") {
        Some("promtool")
    } else {
        eprintln!("skipping promtool: `apt-get install prometheus` failed (offline?)");
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_prometheus_conventions_and_promtool_accepts_them() {
    let _one = exclusive().await;
    let cluster = Cluster::start("metrics", 4, &[]);
    cluster.wait_healthy(&[0, 1, 2, 3]).await;
    let session = cluster.open(1, "metrics").await;
    cluster.must_decide(1, session, 20_000).await;
    let base = cluster.urls[1].clone();
    let (classic_type, classic) =
        tokio::task::spawn_blocking(move || scrape(&base, "text/plain;version=0.0.4;q=0.9,*/*;q=0.1"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(classic_type.starts_with("text/plain; version=0.0.4"), "{classic_type}");
    for line in [
        "# TYPE bftsim_decisions_total counter",
        "# HELP bftsim_decisions_total ",
        "# TYPE bftsim_consensus_sessions_total counter",
        "# TYPE bftsim_consensus_time_seconds histogram",
        "# TYPE bftsim_http_requests_total counter",
        "# TYPE bftsim_http_request_duration_seconds histogram",
        "# TYPE bftsim_duplicate_frames_suppressed_total counter",
        "bftsim_http_requests_total{route=\"/v1/sessions/{id}\",status=\"200\"}",
        "bftsim_http_requests_total{route=\"/healthz\",status=\"200\"}",
    ] {
        assert!(classic.contains(line), "no {line:?} in the classic text:\n{classic}");
    }
    assert!(!classic.contains("_ms") && !classic.contains("# EOF"), "{classic}");
    let base = cluster.urls[1].clone();
    let (om_type, om) =
        tokio::task::spawn_blocking(move || scrape(&base, "application/openmetrics-text;version=1.0.0"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(om_type.starts_with("application/openmetrics-text"), "{om_type}");
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE bftsim_decisions counter"), "{om}");

    let Some(promtool) = promtool() else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    child.stdin.take().map(|mut i| i.write_all(classic.as_bytes())).transpose().unwrap_or_else(|e| panic!("{e}"));
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {:?}\n{said}", out.status);
}
