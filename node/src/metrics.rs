//! `/metrics` by Prometheus' conventions (`promtool check metrics` passes): counters end in
//! `_total`, durations are `_seconds` histograms, every metric has help text, HTTP requests
//! are counted by route and status, and a scraper gets the format it asks for: OpenMetrics for
//! an `Accept` naming `application/openmetrics-text`, the classic text format (0.0.4) otherwise.
//!
//! prometheus-client writes OpenMetrics only, where a counter's `# TYPE` names the metric
//! without `_total` and the text ends in `# EOF`; a classic parser then sees the `_total`
//! samples as untyped metrics without help. [`to_classic`] renames those headers and drops
//! what the classic format does not have.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use consensus_core::metrics::{check_alerts, AlertThresholds, ConsensusMetrics as MetricsSnapshot};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Prometheus label pairs.
pub type Labels = Vec<(&'static str, String)>;

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format's content type.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 1 ms to about 33 s, doubling.
pub fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Histograms by label set.
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Values the design's `ConsensusMetrics` computes, exported at scrape time.
#[derive(Default)]
pub struct Scraped {
    time_stat: Family<Labels, Gauge<f64, AtomicU64>>,
    rate: Family<Labels, Gauge<f64, AtomicU64>>,
    sessions: Counter,
    sla_misses: Counter,
    alerts: Family<Labels, Gauge>,
    /// Frames queued per peer.
    pub queue_depth: Family<Labels, Gauge>,
    /// Frames waiting for the runner.
    pub inbox_depth: Gauge,
}

impl Scraped {
    /// Registers every metric.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "consensus_time_stat_seconds",
            "Decision latency statistics of the design's ConsensusMetrics (average, p95, p99, max)",
            self.time_stat.clone(),
        );
        registry.register("consensus_rate", "ConsensusMetrics rates in [0, 1], by name", self.rate.clone());
        registry.register("consensus_sessions", "Sessions recorded by ConsensusMetrics", self.sessions.clone());
        registry.register("consensus_sla_misses", "Sessions slower than the 500 ms SLA", self.sla_misses.clone());
        registry.register("alert", "Active alerts of the design's four rules (1 = firing)", self.alerts.clone());
        registry.register("peer_queue_depth", "Frames queued for each peer", self.queue_depth.clone());
        registry.register("inbox_depth", "Frames waiting for the runner", self.inbox_depth.clone());
    }

    /// Sets everything from the recorder's snapshot.
    pub fn update(&self, snapshot: &MetricsSnapshot) {
        let secs = |name: &str, ms: u64| {
            self.time_stat.get_or_create(&vec![("stat", name.to_owned())]).set(ms as f64 / 1000.0);
        };
        secs("average", snapshot.average_consensus_time_ms);
        secs("p95", snapshot.p95_consensus_time_ms);
        secs("p99", snapshot.p99_consensus_time_ms);
        secs("max", snapshot.max_consensus_time_ms);
        let rate = |name: &str, v: consensus_core::Ppm| {
            self.rate.get_or_create(&vec![("name", name.to_owned())]).set(f64::from(v.raw()) / 1e6)
        };
        rate("timeout", snapshot.timeout_rate);
        rate("success", snapshot.consensus_success_rate);
        rate("average_agreement", snapshot.average_agreement_rate);
        rate("byzantine_detection", snapshot.byzantine_detection_rate);
        // The recorder counts; a counter only goes up, so it is moved to the recorder's count.
        catch_up(&self.sessions, snapshot.sessions);
        catch_up(&self.sla_misses, snapshot.sla_misses);
        self.alerts.clear();
        for alert in check_alerts(snapshot, &AlertThresholds::default()) {
            let level = serde_json::to_value(alert.level).ok().and_then(|v| v.as_str().map(str::to_owned));
            self.alerts.get_or_create(&vec![("level", level.unwrap_or_default()), ("title", alert.title)]).set(1);
        }
    }
}

fn catch_up(counter: &Counter, to: u64) {
    let now = counter.get();
    if to > now {
        counter.inc_by(to - now);
    }
}

/// HTTP requests by route and status, and their durations by route.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    duration: HistogramFamily,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics { requests: Family::default(), duration: Family::new_with_constructor(seconds_histogram) }
    }
}

impl HttpMetrics {
    /// Registers both.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("http_requests", "HTTP requests answered, by route and status", self.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (long polls included), by route",
            self.duration.clone(),
        );
    }

    /// Middleware: counts and times every request. The route is the router's pattern
    /// (`/v1/sessions/{id}`), so ids do not make new label values; unknown paths count as
    /// `unmatched`.
    pub async fn track(State(m): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
        let start = Instant::now();
        let response = next.run(request).await;
        let status = response.status().as_u16().to_string();
        m.requests.get_or_create(&vec![("route", route.clone()), ("status", status)]).inc();
        m.duration.get_or_create(&vec![("route", route)]).observe(start.elapsed().as_secs_f64());
        response
    }
}

/// Whether a scraper's `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics text (prometheus-client's) as the classic text format: counters' `# HELP` and
/// `# TYPE` name the `_total` samples, `# UNIT` and `# EOF` are dropped.
pub fn to_classic(openmetrics: &str) -> String {
    let counters: std::collections::BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "].into_iter().find(|p| line.starts_with(p));
        match header {
            Some(prefix) => {
                let rest = &line[prefix.len()..];
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_headers_name_their_total_samples_in_the_classic_format() {
        let mut registry = Registry::with_prefix("bftsim");
        let c: Counter = Counter::default();
        c.inc();
        registry.register("decisions", "Sessions decided", c);
        let h = seconds_histogram();
        h.observe(0.004);
        registry.register("consensus_time_seconds", "Decision latency", h);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("# TYPE bftsim_decisions counter") && text.ends_with("# EOF\n"), "{text}");
        let classic = to_classic(&text);
        assert!(classic.contains("# HELP bftsim_decisions_total Sessions decided"), "{classic}");
        assert!(classic.contains("# TYPE bftsim_decisions_total counter\nbftsim_decisions_total 1\n"), "{classic}");
        assert!(classic.contains("# TYPE bftsim_consensus_time_seconds histogram"), "{classic}");
        assert!(!classic.contains("# EOF"), "{classic}");
    }

    #[test]
    fn only_an_openmetrics_accept_header_gets_openmetrics() {
        assert!(wants_openmetrics(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4;q=0.9,*/*;q=0.1")));
        assert!(!wants_openmetrics(None));
    }
}
