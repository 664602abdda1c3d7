//! The client API (HTTP/JSON on axum).
//!
//! - `POST /v1/sessions` `{"query": "...", "candidates": ["...", ...]}` → `201 {"session": 7}`
//!   once the opener's log holds the session durably. Any node accepts it; a node that is not
//!   the opener forwards it to the opener.
//! - `GET /v1/sessions/{id}[?wait_ms=N]` → `200` with the decision and its certificate, `202
//!   {"status": "pending"}` when this agent has not decided (after waiting up to `wait_ms`), or
//!   `410` when it decided the session but no longer keeps it (`[storage] keep_decisions`).
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
use consensus_core::metrics::{check_alerts, AlertThresholds};
use consensus_core::protocol::AgreedOutcome;
use consensus_core::{wire, SessionId};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;

use crate::evaluate::QueryEnvelope;
use crate::opener::{Opener, Refused};
use crate::state::{DecisionEntry, Labels, Lookup, Shared};
use crate::transport::{Inbox, Links, TcpTx};

/// A peer counts as reachable with its connection up or a frame from it this recently.
pub const REACHABLE_WINDOW: Duration = Duration::from_secs(10);

/// Longest `wait_ms` honoured.
pub const MAX_WAIT_MS: u64 = 30_000;

/// Gauges computed at scrape time.
#[derive(Default)]
pub struct Gauges {
    consensus_ms: Family<Labels, Gauge>,
    consensus_rate: Family<Labels, Gauge<f64, AtomicU64>>,
    consensus_sessions: Gauge,
    sla_misses: Gauge,
    alerts: Family<Labels, Gauge>,
    queue_depth: Family<Labels, Gauge>,
    inbox_depth: Gauge,
}

impl Gauges {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "consensus_time_ms",
            "Decision latency (ConsensusMetrics), by statistic",
            self.consensus_ms.clone(),
        );
        registry.register("consensus_rate", "ConsensusMetrics rates in [0, 1], by name", self.consensus_rate.clone());
        registry.register(
            "consensus_sessions",
            "Sessions recorded by ConsensusMetrics",
            self.consensus_sessions.clone(),
        );
        registry.register("consensus_sla_misses", "Sessions slower than the 500 ms SLA", self.sla_misses.clone());
        registry.register("alert", "Active alerts of the design's four rules (1 = firing)", self.alerts.clone());
        registry.register("peer_queue_depth", "Frames queued for each peer", self.queue_depth.clone());
        registry.register("inbox_depth", "Frames waiting for the runner", self.inbox_depth.clone());
    }
}

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
    gauges: Gauges,
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
        let gauges = Gauges::default();
        gauges.register(&mut registry);
        let (tx, inbox, links) = net;
        let registry = Mutex::new(registry);
        Arc::new(ApiState { shared, opener, opener_http, tx, inbox, registry, gauges, links, lag_bound })
    }
}

/// The router.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn create_session(State(state): State<Arc<ApiState>>, body: axum::body::Bytes) -> Response {
    let request: QueryEnvelope = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("expected {{\"query\": str, \"candidates\": [str]}}: {e}"))
        }
    };
    if request.candidates.is_empty() || request.candidates.len() > wire::MAX_CANDIDATES {
        return error(StatusCode::BAD_REQUEST, format!("1 to {} candidates", wire::MAX_CANDIDATES));
    }
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
    match opener.submit(query, request.candidates.len() as u32).await {
        Ok(session) => (StatusCode::CREATED, Json(json!({ "session": session.0 }))).into_response(),
        Err(e @ Refused::Busy(_)) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
        Err(e @ Refused::Failed(_)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn forward(opener: &SocketAddr, body: &[u8]) -> Response {
    let url = format!("http://{opener}/v1/sessions");
    match crate::http_client::request("POST", &url, Some(body), Duration::from_secs(5)).await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, [(header::CONTENT_TYPE, "application/json")], r.body).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("the opener at {opener} is unreachable: {e}")),
    }
}

#[derive(Deserialize)]
struct WaitParams {
    wait_ms: Option<u64>,
}

async fn get_session(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<u64>,
    Query(params): Query<WaitParams>,
) -> Response {
    let session = SessionId(id);
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
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

/// The JSON shape of a decision.
pub fn decision_json(entry: &DecisionEntry) -> Value {
    let r = &entry.record;
    let envelope = QueryEnvelope::of(&r.spec.spec);
    let (outcome, chosen, method, agreement, flagged) = match &r.outcome {
        AgreedOutcome::Decided { chosen, method, agreement, byzantine } => {
            ("decided", Some(chosen.0), Some(json!(method)), Some(f64::from(agreement.raw()) / 1e6), byzantine.clone())
        }
        AgreedOutcome::Escalated { action, byzantine } => {
            ("escalated", None, Some(json!({ "escalation": action })), None, byzantine.clone())
        }
        AgreedOutcome::NoDecision { achieved } => {
            ("no-decision", None, None, Some(f64::from(achieved.raw()) / 1e6), vec![])
        }
    };
    let participating: Vec<u32> = r.votes.iter().map(|v| v.vote.agent.0).collect();
    json!({
        "session": r.session.0,
        "status": "decided",
        "outcome": outcome,
        "chosen": chosen,
        "chosen_text": chosen.and_then(|c| envelope.candidates.get(c as usize).cloned()),
        "method": method,
        "agreement": agreement,
        "participating": participating,
        "flagged": flagged.iter().map(|a| a.0).collect::<Vec<_>>(),
        "mode": r.mode,
        "round": r.round,
        "opened_ms": r.spec.spec.opened_ms,
        "decided_ms": r.at_ms,
        "latency_ms": r.at_ms.saturating_sub(r.spec.spec.opened_ms),
        "query": envelope.query,
        "candidates": envelope.candidates,
        "certificate": entry.certificate,
    })
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let snapshot = state.shared.recorder().snapshot(None);
    let g = &state.gauges;
    let ms = |name: &str, v: u64| g.consensus_ms.get_or_create(&vec![("stat", name.to_owned())]).set(v as i64);
    ms("average", snapshot.average_consensus_time_ms);
    ms("p95", snapshot.p95_consensus_time_ms);
    ms("p99", snapshot.p99_consensus_time_ms);
    ms("max", snapshot.max_consensus_time_ms);
    let rate = |name: &str, v: consensus_core::Ppm| {
        g.consensus_rate.get_or_create(&vec![("name", name.to_owned())]).set(f64::from(v.raw()) / 1e6)
    };
    rate("timeout", snapshot.timeout_rate);
    rate("success", snapshot.consensus_success_rate);
    rate("average_agreement", snapshot.average_agreement_rate);
    rate("byzantine_detection", snapshot.byzantine_detection_rate);
    g.consensus_sessions.set(snapshot.sessions as i64);
    g.sla_misses.set(snapshot.sla_misses as i64);
    g.alerts.clear();
    for alert in check_alerts(&snapshot, &AlertThresholds::default()) {
        let level = serde_json::to_value(alert.level).ok().and_then(|v| v.as_str().map(str::to_owned));
        g.alerts.get_or_create(&vec![("level", level.unwrap_or_default()), ("title", alert.title)]).set(1);
    }
    for (peer, depth) in state.tx.queue_depths() {
        g.queue_depth.get_or_create(&vec![("peer", peer.0.to_string())]).set(depth as i64);
    }
    g.inbox_depth.set((state.inbox.max_capacity() - state.inbox.capacity()) as i64);
    let mut text = String::new();
    let encoded = {
        let registry = state.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry)
    };
    if encoded.is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed");
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
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
        if self.peers > 0 && self.reachable == 0 {
            let window = REACHABLE_WINDOW.as_secs();
            reasons.push(format!("no peer reachable (none of {} connected or heard from in {window} s)", self.peers));
        }
        reasons
    }
}

/// `200` when the agent takes part; `503` with the reasons when it does not: its durable log
/// (or the opener's) failed, it lags its peers by more than `lag_bound` sessions (beyond it
/// they may have pruned the certificates it needs), or no peer is reachable.
async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let shared = &state.shared;
    let (peers_applied, reporting) = shared.peers_applied();
    let reachable: Vec<u32> = state.links.reachable(REACHABLE_WINDOW).iter().map(|a| a.0).collect();
    let health = Health {
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
        "agent": shared.me.0,
        "applied": health.applied,
        "peers_applied": peers_applied,
        "peers_reporting": reporting,
        "lag": peers_applied.saturating_sub(health.applied),
        "lag_bound": state.lag_bound,
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
