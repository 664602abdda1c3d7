//! The client side of a real run: the scenario's workload through the HTTP API, every
//! operation recorded (Jepsen's history). `workload.concurrency` workers each submit a session
//! (`POST /v1/sessions`, trying the next node when one refuses or does not answer), then wait
//! for its decision (`GET /v1/sessions/{id}`), then submit the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use node::http_client;
use serde_json::Value;
use tokio::time::Instant;

/// How long a client waits for one HTTP answer; a paused node never answers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest wait of one `GET` (the API's cap is larger; short waits move on sooner).
const POLL_WAIT_MS: u64 = 1_000;
/// Between attempts after a refusal or an error.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One submission of the workload and what became of it.
#[derive(Clone, Debug, Default)]
pub struct Submission {
    /// Its index in the workload.
    pub index: u64,
    /// The query the client sent.
    pub query: String,
    /// The candidates the client sent.
    pub candidates: Vec<String>,
    /// The session id of the `201`, once acknowledged.
    pub session: Option<u64>,
    /// When it was acknowledged, ms since the run started.
    pub acked_ms: Option<u64>,
    /// Attempts that failed (status or error, and the node), in order.
    pub failures: Vec<String>,
    /// The first decision the client saw: node, ms since the start, the answer.
    pub decision: Option<(usize, u64, Value)>,
}

/// The shared history.
#[derive(Clone, Default)]
pub struct History {
    subs: Arc<Mutex<Vec<Submission>>>,
}

impl History {
    /// Every submission so far, by index.
    pub fn snapshot(&self) -> Vec<Submission> {
        let mut all = self.subs.lock().unwrap_or_else(PoisonError::into_inner).clone();
        all.sort_by_key(|s| s.index);
        all
    }

    fn push(&self, s: Submission) {
        self.subs.lock().unwrap_or_else(PoisonError::into_inner).push(s);
    }
}

/// What the workload is.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Names the queries.
    pub tag: String,
    /// Sessions to submit.
    pub sessions: u64,
    /// Candidates per session.
    pub candidates: u32,
    /// Workers.
    pub concurrency: u64,
}

/// The query and candidates of submission `k`.
pub fn session_text(tag: &str, k: u64, candidates: u32) -> (String, Vec<String>) {
    let query = format!("{tag}: which answer is best for question {k}?");
    let candidates = (0..candidates).map(|c| format!("answer {c} to question {k}")).collect();
    (query, candidates)
}

/// Runs the workload against `urls` until every submission is decided or `deadline`.
pub async fn drive(workload: Workload, urls: Vec<String>, start: Instant, deadline: Instant, history: History) {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..workload.concurrency.max(1) {
        let (workload, urls, next, history) = (workload.clone(), urls.clone(), next.clone(), history.clone());
        workers.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= workload.sessions || Instant::now() >= deadline {
                    break;
                }
                let first = usize::try_from(k.wrapping_add(w)).unwrap_or(0) % urls.len().max(1);
                let sub = one(&workload, k, &urls, first, start, deadline).await;
                history.push(sub);
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

fn since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Submits session `k` and waits for its decision.
async fn one(w: &Workload, k: u64, urls: &[String], mut via: usize, start: Instant, deadline: Instant) -> Submission {
    let (query, candidates) = session_text(&w.tag, k, w.candidates);
    let mut sub = Submission { index: k, query, candidates, ..Submission::default() };
    let body = serde_json::json!({ "query": sub.query, "candidates": sub.candidates }).to_string();
    while sub.session.is_none() && Instant::now() < deadline {
        let url = format!("{}/v1/sessions", urls[via]);
        match http_client::request("POST", &url, Some(body.as_bytes()), REQUEST_TIMEOUT).await {
            Ok(r) if r.status == 201 => {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                sub.session = v["session"].as_u64();
                sub.acked_ms = Some(since(start));
                if sub.session.is_none() {
                    sub.failures.push(format!("node {via}: 201 without a session id: {v}"));
                }
            }
            Ok(r) => sub.failures.push(format!("node {via}: {} {}", r.status, String::from_utf8_lossy(&r.body))),
            Err(e) => sub.failures.push(format!("node {via}: {e}")),
        }
        if sub.session.is_none() {
            via = (via + 1) % urls.len();
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    let Some(session) = sub.session else { return sub };
    while Instant::now() < deadline {
        let url = format!("{}/v1/sessions/{session}?wait_ms={POLL_WAIT_MS}", urls[via]);
        match http_client::request("GET", &url, None, REQUEST_TIMEOUT).await {
            Ok(r) if r.status == 200 => {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                sub.decision = Some((via, since(start), v));
                break;
            }
            Ok(r) if r.status == 202 => continue,
            _ => {
                via = (via + 1) % urls.len();
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
    sub
}

/// Node `i`'s answer for `session`, asking until it is decided or `deadline`; `None` if it is
/// not decided there by then (or the node does not answer).
pub async fn answer(url: &str, session: u64, deadline: Instant) -> Option<Value> {
    let mut asked = false;
    // At least once, even past the deadline: a session decided long ago is answered at once.
    while !asked || Instant::now() < deadline {
        asked = true;
        let left = u64::try_from(deadline.saturating_duration_since(Instant::now()).as_millis()).unwrap_or(0);
        let wait = left.min(POLL_WAIT_MS);
        let get = format!("{url}/v1/sessions/{session}?wait_ms={wait}");
        match http_client::request("GET", &get, None, REQUEST_TIMEOUT).await {
            Ok(r) if r.status == 200 => return serde_json::from_slice(&r.body).ok(),
            Ok(r) if r.status == 202 => {}
            _ => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_submission_has_its_own_query_and_candidates() {
        let (q1, c1) = session_text("t", 1, 3);
        let (q2, c2) = session_text("t", 2, 3);
        assert_ne!(q1, q2);
        assert_eq!(c1.len(), 3);
        assert!(c1.iter().all(|c| !c2.contains(c)));
    }
}
