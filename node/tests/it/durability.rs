//! The durable state of real processes: the opener killed mid-load, damaged and torn logs,
//! and `/healthz` of an agent that is not taking part.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durable::log::{frame, parse, Fix};
use node::http_client;
use serde_json::Value;

use crate::harness::{exclusive, open_at, Cluster};

/// The agent's log of agent `i`.
fn agent_log(cluster: &Cluster, i: usize) -> std::path::PathBuf {
    cluster.data_dir(i).join("agent.0.log")
}

/// One POST, answered or not.
async fn try_open(base: String, query: String) -> Option<u64> {
    let body = serde_json::json!({ "query": query, "candidates": ["alpha", "beta", "gamma"] }).to_string();
    let url = format!("{base}/v1/sessions");
    let r = http_client::request("POST", &url, Some(body.as_bytes()), Duration::from_secs(5)).await.ok()?;
    if r.status != 201 {
        return None;
    }
    serde_json::from_slice::<Value>(&r.body).ok()?["session"].as_u64()
}

/// Agent 0, the opener, is killed with SIGKILL while 400 POSTs are answered and restarted with
/// the same command. Every acknowledged session decides, at the opener and at a follower, with
/// the query it was acknowledged for, and no id is acknowledged twice (before the fix ids were
/// reused after a restart and `GET` returned another client's query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opener_killed_mid_load_keeps_every_acknowledged_session() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start("opener-kill", 5, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let acked: Arc<Mutex<BTreeMap<u64, Vec<String>>>> = Arc::default();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut posters = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let (acked, next, urls) = (acked.clone(), next.clone(), cluster.urls.clone());
            posters.spawn(async move {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if k >= 400 {
                        return;
                    }
                    // Retried (as a new POST) until acknowledged; most go to the opener.
                    let query = format!("kill question {k}");
                    for attempt in 0.. {
                        let via = if (k + attempt) % 3 == 0 { 1 + worker % 4 } else { 0 };
                        if let Some(id) = try_open(urls[via].clone(), query.clone()).await {
                            acked.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default().push(query.clone());
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            });
        }
        while acked.lock().unwrap_or_else(|p| p.into_inner()).len() < 150 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cluster.procs[0].kill();
        let at_kill = acked.lock().unwrap_or_else(|p| p.into_inner()).len();
        cluster.restart(0);
        while posters.join_next().await.is_some() {}
        let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let reused: Vec<(&u64, &Vec<String>)> = acked.iter().filter(|(_, q)| q.len() > 1).collect();
        assert!(reused.is_empty(), "ids acknowledged twice: {reused:?}");
        assert_eq!(acked.len(), 400, "every POST was eventually acknowledged");
        assert!(at_kill < 400, "the kill came in the middle of the load");
        for (id, queries) in &acked {
            for agent in [0, 2] {
                let decision = cluster.must_decide(agent, *id, 30_000).await;
                assert_eq!(decision["query"].as_str(), Some(queries[0].as_str()), "session {id} at agent {agent}");
                assert!(!decision["certificate"].is_null(), "session {id} at agent {agent}");
            }
        }
        let log = cluster.log(0);
        assert!(log.contains("replayed"), "agent 0 restarted from its log:\n{log}");
    };
    tokio::time::timeout(Duration::from_secs(150), run).await.unwrap_or_else(|_| panic!("timed out"));
}

/// A flipped bit in a record followed by others: the node refuses to start and says which
/// file, which byte, and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_bit_in_a_closed_record_stops_the_node_with_file_offset_and_fix() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start("bitflip", 5, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        for k in 0..5 {
            let s = open_at(cluster.urls[0].clone(), format!("bitflip {k}")).await;
            cluster.must_decide(2, s, 20_000).await;
        }
        cluster.procs[2].kill();
        let path = agent_log(&cluster, 2);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let replay = parse("log", bytes.clone(), Fix::CutLog).unwrap_or_else(|e| panic!("{e}"));
        let (offset, body) = replay.records().nth(3).map(|(o, b)| (o, b.len())).unwrap_or_else(|| panic!("4 records"));
        assert!(replay.len() > 4 && body > 4);
        bytes[offset as usize + 12 + body / 2] ^= 0x08;
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        cluster.restart(2);
        let status = cluster.procs[2].wait_exit(Duration::from_secs(20)).await;
        assert!(status.is_some_and(|s| !s.success()), "the node must refuse to start: {status:?}");
        let log = cluster.log(2);
        let expected = format!("{}: corrupt record at byte {offset}", path.display());
        assert!(log.contains(&expected), "{expected:?} not in:\n{log}");
        assert!(log.contains(&format!("truncate -s {offset} {}", path.display())), "the fix:\n{log}");
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.unwrap_or_else(|_| panic!("timed out"));
}

/// Half a record at the end of the log (a crash mid-write): cut, and the node starts and
/// decides new sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_the_node_starts() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start("torn", 5, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let s = open_at(cluster.urls[0].clone(), "before the tear".into()).await;
        cluster.must_decide(3, s, 20_000).await;
        cluster.procs[3].kill();
        let path = agent_log(&cluster, 3);
        let torn = frame(b"a record the crash cut short");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut f, &torn[..17]).unwrap_or_else(|e| panic!("{e}"));
        drop(f);
        cluster.restart(3);
        cluster.wait_healthy(&[3]).await;
        let log = cluster.log(3);
        assert!(log.contains("cut the log's torn tail: 17 bytes"), "{log}");
        let before = cluster.must_decide(3, s, 5_000).await;
        assert_eq!(before["query"].as_str(), Some("before the tear"));
        let after = open_at(cluster.urls[3].clone(), "after the tear".into()).await;
        cluster.must_decide(3, after, 20_000).await;
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.unwrap_or_else(|_| panic!("timed out"));
}

/// Garbage after the last good record (not zeros, not a torn record: an operator's or a tool's
/// bytes): the node refuses to start and names the file, the offset of the last good record's
/// end and the exact command that cuts the log there; following it, the node starts again,
/// still holds what it decided, and decides new sessions (before: "record at byte N does not
/// decode", with no way out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_last_record_names_the_truncate_command_that_recovers() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start("garbage-tail", 5, &[]);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let s = open_at(cluster.urls[0].clone(), "before the garbage".into()).await;
        cluster.must_decide(1, s, 20_000).await;
        cluster.procs[1].kill();
        let path = agent_log(&cluster, 1);
        let good = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_else(|e| panic!("{e}"));
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut f, b"this line was appended by mistake\n").unwrap_or_else(|e| panic!("{e}"));
        drop(f);
        cluster.restart(1);
        let status = cluster.procs[1].wait_exit(Duration::from_secs(20)).await;
        assert!(status.is_some_and(|s| !s.success()), "the node must refuse to start: {status:?}");
        let log = cluster.log(1);
        let what = format!("{}: corrupt record at byte {good}", path.display());
        assert!(log.contains(&what), "{what:?} not in:\n{log}");
        let command = format!("truncate -s {good} {}", path.display());
        assert!(log.contains(&command), "{command:?} not in:\n{log}");
        // Follow the fix as printed.
        let cut = std::process::Command::new("sh").arg("-c").arg(&command).status();
        assert!(cut.as_ref().is_ok_and(|s| s.success()), "{command}: {cut:?}");
        cluster.restart(1);
        cluster.wait_healthy(&[1]).await;
        let before = cluster.must_decide(1, s, 5_000).await;
        assert_eq!(before["query"].as_str(), Some("before the garbage"));
        let after = open_at(cluster.urls[1].clone(), "after the cut".into()).await;
        cluster.must_decide(1, after, 20_000).await;
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.unwrap_or_else(|_| panic!("timed out"));
}

/// `/healthz` of an agent that is not taking part: far behind its peers after missing more
/// sessions than they keep certificates of (`[storage] keep_decisions = 16` here; an agent
/// within the retention catches up, `catchup.rs`), then alone (no peer reachable). Peer queues
/// are kept short (16 frames), so the frames of the sessions it missed are not simply
/// delivered late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_an_agent_that_is_not_taking_part() {
    let _one = exclusive().await;
    let mut cluster = Cluster::start_edited_text("healthz", 5, &|text| {
        text.replace("queue_frames = 4096", "queue_frames = 16")
            .replace("fsync = true", "fsync = true\nkeep_decisions = 16")
    });
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let (status, body) = cluster.healthz(4).await.unwrap_or_else(|| panic!("healthz"));
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");

        // Agent 4 misses 100 sessions (peers keep 64 in memory, 16 to 24 in their archive),
        // then comes back: its peers answer `Pruned` (L81) and it cannot catch up.
        cluster.procs[4].kill();
        let mut last = 0;
        for k in 0..100 {
            last = open_at(cluster.urls[k % 4].clone(), format!("while 4 is down {k}")).await;
        }
        cluster.must_decide(0, last, 30_000).await;
        cluster.restart(4);
        let mut seen = None;
        for _ in 0..200 {
            if let Some((status, body)) = cluster.healthz(4).await {
                if body["reasons"].to_string().contains("cannot catch up") {
                    assert_eq!(status, 503, "{body}");
                    seen = Some(body);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = seen.unwrap_or_else(|| panic!("agent 4 never said it cannot catch up; log:\n{}", cluster.log(4)));
        assert!(body["reasons"][0].as_str().is_some_and(|r| r.starts_with("lagging:")), "{body}");
        assert!(body["pruned_peers"].as_u64().unwrap_or(0) >= 2, "f + 1 peers said so: {body}");

        // The others stop: nothing is reachable from agent 0.
        for i in 1..5 {
            cluster.procs[i].kill();
        }
        let mut alone = None;
        for _ in 0..400 {
            if let Some((503, body)) = cluster.healthz(0).await {
                alone = Some(body);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = alone.unwrap_or_else(|| panic!("agent 0 never said it is cut off"));
        let reasons = body["reasons"].to_string();
        assert!(reasons.contains("no peer reachable"), "{body}");
    };
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap_or_else(|_| panic!("timed out"));
}

/// With a small compaction threshold the agent's log is compacted to a snapshot many times; a
/// node killed with SIGKILL restarts from its snapshot and the log since, still serves the
/// decisions taken before (from its decision store), and decides new sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_node_restarts_from_its_snapshot() {
    let _one = exclusive().await;
    let small = "fsync = true\ncompact_log_bytes = 65536";
    let mut cluster = Cluster::start_replacing("compact", 5, "fsync = true", small);
    let run = async {
        cluster.wait_healthy(&[0, 1, 2, 3, 4]).await;
        let sessions = crate::harness::open_concurrently(&cluster.urls[..1], 120, "compact").await;
        for &s in &sessions {
            cluster.must_decide(2, s, 30_000).await;
        }
        let files: Vec<String> = std::fs::read_dir(cluster.data_dir(2))
            .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        let log = files.iter().find(|f| f.starts_with("agent.") && f.ends_with(".log")).cloned().unwrap_or_default();
        assert!(files.contains(&"agent.snap".to_owned()) && log != "agent.0.log", "compacted: {files:?}");
        let bytes = std::fs::metadata(cluster.data_dir(2).join(&log)).map(|m| m.len()).unwrap_or(u64::MAX);
        assert!(bytes < 65_536 + 16_384, "{log}: {bytes} bytes");
        cluster.procs[2].kill();
        cluster.restart(2);
        cluster.wait_healthy(&[2]).await;
        let out = cluster.log(2);
        assert!(out.contains("replayed a snapshot and"), "{out}");
        for &s in &sessions[..3] {
            let d = cluster.must_decide(2, s, 5_000).await;
            assert!(!d["certificate"].is_null(), "session {s} served after the restart");
        }
        let after = open_at(cluster.urls[2].clone(), "after the snapshot".into()).await;
        cluster.must_decide(2, after, 20_000).await;
    };
    tokio::time::timeout(Duration::from_secs(120), run).await.unwrap_or_else(|_| panic!("timed out"));
}
