//! The client API (HTTP/JSON on axum).
//!
//! - `POST /v1/sessions` `{"query": "...", "candidates": ["...", ...]}` → `201 {"session": 7}`
//!   once the opener's log holds the session durably. Any node accepts it; a node that is not
//!   the opener forwards it to the opener.
//! - `GET /v1/sessions/{id}[?wait_ms=N]` → `200` with the decision and its certificate, `202
//!   {"status": "pending"}` when this agent has not decided (after waiting up to `wait_ms`, at
//!   most [`MAX_WAIT_MS`]; more is `400`), `404` for an id never issued, or `410` when it decided
//!   the session but no longer keeps it (`[storage] keep_decisions`).
//! - `GET /metrics` (Prometheus text), `GET /healthz` (`503` with the reasons when the agent
//!   is not taking part: its log failed, it lags its peers, or no peer is reachable).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use consensus_core::{wire, SessionId};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;

pub use crate::answer::decision_json;
use crate::evaluate::QueryEnvelope;
use crate::issued::{issued, never_issued, Issued};
use crate::metrics::{self, HttpMetrics, Scraped};
use crate::opener::{Opener, Refused};
use crate::state::{Lookup, Shared};
use crate::transport::{Inbox, Links, TcpTx};

/// A peer counts as reachable with its connection up or a frame from it this recently.
pub const REACHABLE_WINDOW: Duration = Duration::from_secs(10);

/// Longest `wait_ms` honoured; a longer one is refused (`400`), so that no client believes it
/// waited longer than it did. Long polls beyond it: ask again while the answer is `202`.
pub const MAX_WAIT_MS: u64 = 30_000;

/// Everything the handlers need.
pub struct ApiState {
    /// Decisions and counters.
    pub shared: Arc<Shared>,
    /// Set on the opener.
    pub opener: Option<Arc<Opener>>,
    /// Where the opener's API listens (for forwarding).
    pub opener_http: SocketAddr,
    /// For queue depths.
    pub tx: TcpTx,
    /// For the inbox depth.
    pub inbox: Inbox,
    /// Every metric.
    pub registry: Mutex<Registry>,
    scraped: Scraped,
    http_metrics: Arc<HttpMetrics>,
    /// Peer reachability.
    pub links: Arc<Links>,
    /// Sessions the agent may lag its peers by and still count as taking part.
    pub lag_bound: u64,
}

impl ApiState {
    /// State with `registry` holding the counters registered so far; the gauges are added.
    pub fn new(
        shared: Arc<Shared>,
        opener: Option<Arc<Opener>>,
        opener_http: SocketAddr,
        net: (TcpTx, Inbox, Arc<Links>),
        lag_bound: u64,
        mut registry: Registry,
    ) -> Arc<ApiState> {
        let scraped = Scraped::default();
        scraped.register(&mut registry);
        let http_metrics = Arc::new(HttpMetrics::default());
        http_metrics.register(&mut registry);
        let (tx, inbox, links) = net;
        let registry = Mutex::new(registry);
        Arc::new(ApiState { shared, opener, opener_http, tx, inbox, registry, scraped, http_metrics, links, lag_bound })
    }
}

/// The router; every request is counted and timed by route and status.
pub fn router(state: Arc<ApiState>, body_timeout: Duration) -> Router {
    let http_metrics = state.http_metrics.clone();
    Router::new()
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/healthz/ready", get(healthz))
        .route("/healthz/live", get(livez))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route; the API is POST /v1/sessions, GET /v1/sessions/{id}, GET /metrics, GET /healthz",
            )
        })
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(body_timeout, crate::server::body_within))
        .layer(axum::middleware::from_fn_with_state(http_metrics, HttpMetrics::track))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `POST /v1/sessions`'s body, strictly: a misspelt key is an error, not a silent default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    query: String,
    candidates: Vec<String>,
}

/// Why a submission cannot be judged: an empty query, no or too many candidates, an empty
/// candidate, or two equal candidates (agents could not tell which one they chose).
fn submission_problem(r: &SubmitRequest) -> Option<String> {
    if r.query.trim().is_empty() {
        return Some("the query is empty".into());
    }
    if r.candidates.is_empty() || r.candidates.len() > wire::MAX_CANDIDATES {
        return Some(format!("{} candidates; 1 to {} are allowed", r.candidates.len(), wire::MAX_CANDIDATES));
    }
    if let Some(i) = r.candidates.iter().position(|c| c.trim().is_empty()) {
        return Some(format!("candidate {i} is empty"));
    }
    for (i, c) in r.candidates.iter().enumerate() {
        if let Some(j) = r.candidates[..i].iter().position(|d| d == c) {
            return Some(format!("candidates {j} and {i} are the same text; each candidate must be distinct"));
        }
    }
    None
}

async fn create_session(State(state): State<Arc<ApiState>>, body: axum::body::Bytes) -> Response {
    let request: SubmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("expected {{\"query\": str, \"candidates\": [str]}}: {e}"))
        }
    };
    if let Some(why) = submission_problem(&request) {
        return error(StatusCode::BAD_REQUEST, why);
    }
    let request = QueryEnvelope { query: request.query, candidates: request.candidates };
    let query = serde_json::to_string(&request).unwrap_or_default();
    if query.len() > wire::MAX_TEXT_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("query and candidates take {} bytes as JSON; at most {}", query.len(), wire::MAX_TEXT_BYTES),
        );
    }
    let Some(opener) = &state.opener else {
        return forward(&state.opener_http, &body).await;
    };
    // Back-pressure before the inbox is full: frames piling up for the agent mean the
    // committee is not keeping up, and more sessions would only make every one slower.
    let waiting = state.inbox.max_capacity() - state.inbox.capacity();
    if waiting > state.inbox.max_capacity() / 2 {
        let why = format!("saturated: {waiting} frames wait for the agent; retry later");
        return too_many(why);
    }
    match opener.submit(query, request.candidates.len() as u32).await {
        Ok(session) => (StatusCode::CREATED, Json(json!({ "session": session.0 }))).into_response(),
        Err(e @ Refused::Busy(_)) => too_many(e.to_string()),
        Err(e @ Refused::Failed(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `429 Too Many Requests` with `Retry-After: 1`: the cluster is saturated, not down.
fn too_many(why: String) -> Response {
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, why);
    r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

async fn forward(opener: &SocketAddr, body: &[u8]) -> Response {
    let url = format!("http://{opener}/v1/sessions");
    match crate::http_client::request("POST", &url, Some(body), Duration::from_secs(5)).await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut response = (status, [(header::CONTENT_TYPE, "application/json")], r.body).into_response();
            if status == StatusCode::TOO_MANY_REQUESTS {
                response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            response
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("the opener at {opener} is unreachable: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitParams {
    wait_ms: Option<u64>,
}

async fn get_session(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    params: Result<Query<WaitParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // Extractor rejections are plain text in axum; every error of this API is JSON.
    let Ok(Path(id)) = id else {
        return error(StatusCode::BAD_REQUEST, "the session id must be a number from 0 to 18446744073709551615");
    };
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad query string: {}", e.body_text())),
    };
    let session = SessionId(id);
    if let Some(asked) = params.wait_ms.filter(|w| *w > MAX_WAIT_MS) {
        let message = format!(
            "wait_ms = {asked} is above the longest wait, {MAX_WAIT_MS} ms; fix: ask with wait_ms <= {MAX_WAIT_MS} \
             and ask again while the answer is 202"
        );
        return error(StatusCode::BAD_REQUEST, message);
    }
    if matches!(state.shared.lookup(session), Lookup::Unknown) {
        let opener = state.opener.as_deref();
        if let Issued::No { next } = issued(&state.shared, opener, state.opener_http, session).await {
            let body = json!({ "error": never_issued(id, next), "session": id, "next": next });
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
    }
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = state.shared.decided.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match state.shared.lookup(session) {
            Lookup::Decided(entry) => {
                if entry.certificate.is_some() || tokio::time::Instant::now() >= deadline {
                    return (StatusCode::OK, Json(decision_json(&entry))).into_response();
                }
            }
            Lookup::Forgotten => {
                let (kept, keep) = state.shared.kept_decisions();
                let message = format!(
                    "session {id} was decided, but this node keeps only its last {keep} decisions ({kept} now; \
                     [storage] keep_decisions); any agent's certificate of it stays valid"
                );
                return error(StatusCode::GONE, message);
            }
            Lookup::Unknown => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let progress = state.shared.progress(session);
            let body = json!({
                "session": id,
                "status": "pending",
                "round": progress.as_ref().map(|p| p.0),
                "last_timer": progress.map(|p| p.1),
            });
            return (StatusCode::ACCEPTED, Json(body)).into_response();
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// Prometheus metrics: OpenMetrics when the `Accept` header asks for it, else the classic
/// text format (crate::metrics).
async fn metrics(State(state): State<Arc<ApiState>>, headers: axum::http::HeaderMap) -> Response {
    let snapshot = state.shared.recorder().snapshot(None);
    state.scraped.update(&snapshot);
    for (peer, depth) in state.tx.queue_depths() {
        state.scraped.queue_depth.get_or_create(&vec![("peer", peer.0.to_string())]).set(depth as i64);
    }
    state.scraped.inbox_depth.set((state.inbox.max_capacity() - state.inbox.capacity()) as i64);
    let mut text = String::new();
    let encoded = {
        let registry = state.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry)
    };
    if encoded.is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed");
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if metrics::wants_openmetrics(accept) {
        ([(header::CONTENT_TYPE, metrics::OPENMETRICS)], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, metrics::CLASSIC)], metrics::to_classic(&text)).into_response()
    }
}

/// What `/healthz` judges the agent by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Why the agent's durable log failed, if it did.
    pub log_failure: Option<String>,
    /// Why the opener's durable log failed, if it did.
    pub opener_failure: Option<String>,
    /// Sessions applied here.
    pub applied: u64,
    /// The most sessions a peer reported applied.
    pub peers_applied: u64,
    /// The lag allowed.
    pub lag_bound: u64,
    /// Peers that no longer keep the certificates this agent needs (L81), and the oldest
    /// session such a peer keeps.
    pub pruned_peers: usize,
    /// See `pruned_peers`.
    pub pruned_below: u64,
    /// The most Byzantine agents the committee tolerates: f + 1 `Pruned` answers include an
    /// honest one.
    pub f: usize,
    /// Peers reachable, of how many.
    pub reachable: usize,
    /// Peers configured.
    pub peers: usize,
}

impl Health {
    /// Why the agent is not taking part; empty when it is.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(why) = &self.log_failure {
            reasons.push(format!("the durable log failed: {why}"));
        }
        if let Some(why) = &self.opener_failure {
            reasons.push(format!("the opener's durable log failed: {why}"));
        }
        let lag = self.peers_applied.saturating_sub(self.applied);
        if lag > self.lag_bound {
            reasons.push(format!(
                "lagging: {} sessions applied here, {} at a peer ({lag} behind, at most {} allowed)",
                self.applied, self.peers_applied, self.lag_bound
            ));
        }
        if self.pruned_peers > self.f {
            reasons.push(format!(
                "cannot catch up: {} peers no longer keep the certificates of sessions {} to {} (they keep their last \
                 [storage] keep_decisions decisions); this agent cannot rejoin by itself (no state transfer, see \
                 docs/node.md \"Catch-up\")",
                self.pruned_peers,
                self.applied,
                self.pruned_below.saturating_sub(1)
            ));
        }
        if self.peers > 0 && self.reachable == 0 {
            let window = REACHABLE_WINDOW.as_secs();
            reasons.push(format!("no peer reachable (none of {} connected or heard from in {window} s)", self.peers));
        }
        reasons
    }

    /// Why the process should be restarted; empty while it is alive. Only a failed log: a
    /// lagging, partitioned or pruned-behind agent is alive (a restart would not help it), just
    /// not ready.
    pub fn dead_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(why) = &self.log_failure {
            reasons.push(format!("the durable log failed: {why}"));
        }
        if let Some(why) = &self.opener_failure {
            reasons.push(format!("the opener's durable log failed: {why}"));
        }
        reasons
    }
}

/// `200` when the agent takes part; `503` with the reasons when it does not: its durable log
/// (or the opener's) failed, it lags its peers by more than `lag_bound` sessions (it is
/// catching up, L80), f + 1 peers no longer keep the certificates it needs (L81: it cannot
/// catch up), or no peer is reachable.
/// `/healthz/live`: alive (`200`) unless its log failed (`503`: restart it once the disk is
/// fixed); a lagging or cut-off agent is alive, only not ready.
async fn livez(State(state): State<Arc<ApiState>>) -> Response {
    let health = health(&state);
    let dead = health.dead_reasons();
    let body = json!({
        "status": if dead.is_empty() { "alive" } else { "dead" },
        "agent": state.shared.me.0,
        "reasons": dead,
    });
    let status = if dead.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

fn health(state: &ApiState) -> Health {
    let shared = &state.shared;
    let (peers_applied, _) = shared.peers_applied();
    let reachable = state.links.reachable(REACHABLE_WINDOW).len();
    let (pruned_peers, pruned_below) = shared.pruned_beyond();
    Health {
        pruned_peers,
        pruned_below,
        f: state.links.peers() / 3,
        log_failure: shared.log_failure(),
        opener_failure: state.opener.as_ref().and_then(|o| o.failure()),
        applied: shared.applied(),
        peers_applied,
        lag_bound: state.lag_bound,
        reachable,
        peers: state.links.peers(),
    }
}

/// `/healthz` and `/healthz/ready`: ready (`200`) while the agent takes part, else `503` with
/// the reasons; `alive` says whether a restart is called for (see [`livez`]).
async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let shared = &state.shared;
    let (peers_applied, reporting) = shared.peers_applied();
    let reachable: Vec<u32> = state.links.reachable(REACHABLE_WINDOW).iter().map(|a| a.0).collect();
    let (pruned_peers, pruned_below) = shared.pruned_beyond();
    let health = Health {
        pruned_peers,
        pruned_below,
        f: state.links.peers() / 3, // n = peers + 1 = 3f + 1 (or more)
        log_failure: shared.log_failure(),
        opener_failure: state.opener.as_ref().and_then(|o| o.failure()),
        applied: shared.applied(),
        peers_applied,
        lag_bound: state.lag_bound,
        reachable: reachable.len(),
        peers: state.links.peers(),
    };
    let reasons = health.reasons();
    let (kept, keep) = shared.kept_decisions();
    let body = json!({
        "status": if reasons.is_empty() { "ok" } else { "not-participating" },
        "ready": reasons.is_empty(),
        "alive": health.dead_reasons().is_empty(),
        "agent": shared.me.0,
        "applied": health.applied,
        "peers_applied": peers_applied,
        "peers_reporting": reporting,
        "lag": peers_applied.saturating_sub(health.applied),
        "lag_bound": state.lag_bound,
        "pruned_peers": pruned_peers,
        "reachable_peers": reachable,
        "decisions_kept": kept,
        "keep_decisions": keep,
        "opener": state.opener.is_some(),
        "reasons": reasons,
    });
    let status = if reasons.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_names_every_reason_the_agent_is_not_taking_part() {
        let ok =
            Health { applied: 100, peers_applied: 160, lag_bound: 64, reachable: 3, peers: 4, ..Health::default() };
        let table: Vec<(&str, Health, Vec<&str>)> = vec![
            ("taking part", ok.clone(), vec![]),
            ("alone by design", Health { peers: 0, reachable: 0, ..ok.clone() }, vec![]),
            (
                "log failed",
                Health { log_failure: Some("disk full".into()), ..ok.clone() },
                vec!["the durable log failed: disk full"],
            ),
            (
                "opener log failed",
                Health { opener_failure: Some("fsync".into()), ..ok.clone() },
                vec!["the opener's durable log failed: fsync"],
            ),
            (
                "lagging",
                Health { peers_applied: 165, ..ok.clone() },
                vec!["lagging: 100 sessions applied here, 165 at a peer (65 behind, at most 64 allowed)"],
            ),
            (
                "beyond the retention (f + 1 = 2 peers)",
                Health { pruned_peers: 2, pruned_below: 9_000, f: 1, ..ok.clone() },
                vec![
                    "cannot catch up: 2 peers no longer keep the certificates of sessions 100 to 8999 (they keep their \
                     last [storage] keep_decisions decisions); this agent cannot rejoin by itself (no state transfer, \
                     see docs/node.md \"Catch-up\")",
                ],
            ),
            (
                "one peer's word is not enough",
                Health { pruned_peers: 1, pruned_below: 9_000, f: 1, ..ok.clone() },
                vec![],
            ),
            (
                "cut off",
                Health { reachable: 0, ..ok.clone() },
                vec!["no peer reachable (none of 4 connected or heard from in 10 s)"],
            ),
        ];
        for (name, health, expected) in table {
            assert_eq!(health.reasons(), expected, "{name}");
        }
    }
}
