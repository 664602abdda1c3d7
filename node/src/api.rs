//! The client API (HTTP/JSON on axum) and the opener that numbers and opens sessions.
//!
//! - `POST /v1/sessions` `{"query": "...", "candidates": ["...", ...]}` → `201 {"session": 7}`.
//!   Any node accepts it; a node that is not the opener forwards it to the opener.
//! - `GET /v1/sessions/{id}[?wait_ms=N]` → `200` with the decision and its certificate, or `202
//!   {"status": "pending"}` when this agent has not decided (after waiting up to `wait_ms`).
//! - `GET /metrics` (Prometheus text), `GET /healthz`.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use consensus_core::metrics::{check_alerts, AlertThresholds};
use consensus_core::protocol::messages::SignedSpec;
use consensus_core::protocol::{AgreedOutcome, Message, SessionSpec};
use consensus_core::runner::{Clock, TransportTx};
use consensus_core::sign::Signer;
use consensus_core::{wire, AgentId, CandidateId, SessionId};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;
use tokio::sync::Notify;

use crate::clock::RealClock;
use crate::evaluate::QueryEnvelope;
use crate::keys::NodeSigner;
use crate::state::{DecisionEntry, Labels, Shared};
use crate::transport::{Inbox, TcpTx};

/// Longest `wait_ms` honoured.
pub const MAX_WAIT_MS: u64 = 30_000;

/// A numbered session waiting to be opened: its id, query JSON and candidate count.
type Queued = (SessionId, String, u32);

/// The opener: numbers sessions, signs `Open` with the cluster client key, sends it to every
/// agent (its own included) and re-sends it until its own agent has decided.
///
/// Like the simulator's client, it keeps at most `max_in_flight` sessions open that its own
/// agent has not decided; later sessions get their number at once and are opened, in order,
/// as earlier ones decide. Undecided sessions cost retransmissions every `retransmit_ms`, so
/// an unbounded burst would only slow every session down.
pub struct Opener {
    signer: NodeSigner,
    tx: TcpTx,
    inbox: Inbox,
    clock: RealClock,
    shared: Arc<Shared>,
    max_in_flight: usize,
    queue: Mutex<(u64, VecDeque<Queued>)>,
    wake: Notify,
    pending: Mutex<BTreeMap<SessionId, (u64, SignedSpec)>>,
}

impl Opener {
    /// An opener signing with the client key `signer`.
    pub fn new(
        signer: NodeSigner,
        tx: TcpTx,
        inbox: Inbox,
        clock: RealClock,
        shared: Arc<Shared>,
        max_in_flight: usize,
    ) -> Arc<Opener> {
        Arc::new(Opener {
            signer,
            tx,
            inbox,
            clock,
            shared,
            max_in_flight: max_in_flight.max(1),
            queue: Mutex::new((0, VecDeque::new())),
            wake: Notify::new(),
            pending: Mutex::new(BTreeMap::new()),
        })
    }

    /// Numbers a session and queues it for opening; returns its id.
    pub fn submit(&self, query: String, candidates: u32) -> SessionId {
        let session = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let highest = self.shared.highest_opened.load(std::sync::atomic::Ordering::Relaxed);
            let id = queue.0.max(highest);
            queue.0 = id + 1;
            queue.1.push_back((SessionId(id), query, candidates));
            SessionId(id)
        };
        self.wake.notify_one();
        session
    }

    fn in_flight(&self) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|session, _| self.shared.decision(*session).is_none());
        pending.len()
    }

    /// Opens queued sessions while fewer than `max_in_flight` are undecided here.
    pub async fn pump(self: Arc<Self>) {
        loop {
            if self.in_flight() < self.max_in_flight {
                let next = self.queue.lock().unwrap_or_else(|p| p.into_inner()).1.pop_front();
                if let Some((session, query, candidates)) = next {
                    self.open(session, query, candidates).await;
                    continue;
                }
            }
            let decided = self.shared.decided.notified();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = decided => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    async fn open(&self, session: SessionId, query: String, candidates: u32) {
        self.shared.note_opened(session);
        let now = self.clock.now_ms();
        let spec =
            SessionSpec { session, query, candidates: (0..candidates).map(CandidateId).collect(), opened_ms: now };
        let signature = self.signer.sign(&wire::spec_signing_bytes(&spec));
        let signed = SignedSpec { spec, signature };
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(session, (now, signed.clone()));
        let frame: consensus_core::runner::Frame = wire::encode(&Message::Open(signed)).into();
        for peer in self.tx.peers() {
            self.tx.send(peer, frame.clone()).await;
        }
        let _ = self.inbox.send((AgentId::CLIENT, frame)).await;
    }

    /// Re-sends `Open` of sessions its own agent has not decided, every `interval_ms`.
    pub async fn retransmit(self: Arc<Self>, interval_ms: u64) {
        loop {
            tokio::time::sleep(Duration::from_millis(interval_ms.max(10))).await;
            let now = self.clock.now_ms();
            let _ = self.in_flight();
            let due: Vec<SignedSpec> = {
                let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                pending.values().filter(|(at, _)| now >= at + interval_ms).map(|(_, s)| s.clone()).collect()
            };
            for signed in due {
                let frame: consensus_core::runner::Frame = wire::encode(&Message::Open(signed)).into();
                for peer in self.tx.peers() {
                    self.tx.send(peer, frame.clone()).await;
                }
            }
        }
    }
}

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
}

impl ApiState {
    /// State with `registry` holding the counters registered so far; the gauges are added.
    pub fn new(
        shared: Arc<Shared>,
        opener: Option<Arc<Opener>>,
        opener_http: SocketAddr,
        tx: TcpTx,
        inbox: Inbox,
        mut registry: Registry,
    ) -> Arc<ApiState> {
        let gauges = Gauges::default();
        gauges.register(&mut registry);
        Arc::new(ApiState { shared, opener, opener_http, tx, inbox, registry: Mutex::new(registry), gauges })
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
    let session = opener.submit(query, request.candidates.len() as u32);
    (StatusCode::CREATED, Json(json!({ "session": session.0 }))).into_response()
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
        if let Some(entry) = state.shared.decision(session) {
            if entry.certificate.is_some() || tokio::time::Instant::now() >= deadline {
                return (StatusCode::OK, Json(decision_json(&entry))).into_response();
            }
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

async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let decided = state.shared.decided_sessions().len();
    Json(json!({ "status": "ok", "agent": state.shared.me.0, "decided": decided, "opener": state.opener.is_some() }))
        .into_response()
}
