//! `/metrics` of `serve`, in the Prometheus text format of prometheus-client
//! (as `watch` exposes its own). Every family is prefixed
//! `dane_audit_serve_`, so the two sets never collide in one exposition,
//! and no label takes a value a visitor chose: routes are the server's
//! fixed route names, verdicts and reasons fixed words.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: HistogramFamily<RouteLabels>,
    pub audits: Family<VerdictLabels, Counter>,
    pub audit_seconds: Histogram,
    pub audits_in_flight: Gauge,
    pub audits_queued: Gauge,
    pub cache: Family<ResultLabels, Counter>,
    pub cache_entries: Gauge,
    pub refused: Family<ReasonLabels, Counter>,
    pub connections: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            audits: Family::default(),
            audit_seconds: latency(),
            audits_in_flight: Gauge::default(),
            audits_queued: Gauge::default(),
            cache: Family::default(),
            cache_entries: Gauge::default(),
            refused: Family::default(),
            connections: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "dane_audit_serve_requests",
            "HTTP requests answered, by route and status",
            m.requests.clone(),
        );
        registry.register(
            "dane_audit_serve_request_duration_seconds",
            "Time until an HTTP response starts (an event stream: until its headers)",
            m.request_seconds.clone(),
        );
        registry.register(
            "dane_audit_serve_audits",
            "Audits finished, by domain verdict (error: the audit itself failed)",
            m.audits.clone(),
        );
        registry.register(
            "dane_audit_serve_audit_duration_seconds",
            "Time from the start of an audit to its report, queueing excluded",
            m.audit_seconds.clone(),
        );
        registry.register(
            "dane_audit_serve_audits_in_flight",
            "Audits running now (at most --max-audits)",
            m.audits_in_flight.clone(),
        );
        registry.register(
            "dane_audit_serve_audits_queued",
            "Audits waiting for a free slot (at most --queue)",
            m.audits_queued.clone(),
        );
        registry.register(
            "dane_audit_serve_cache",
            "Requests for a domain's result: hit (a fresh report), joined (an audit in flight), miss (a new audit)",
            m.cache.clone(),
        );
        registry.register(
            "dane_audit_serve_cache_entries",
            "Domains whose result or audit is held",
            m.cache_entries.clone(),
        );
        registry.register(
            "dane_audit_serve_refused",
            "Requests refused: rate-limited (per client), busy (audit queue full), connections (per-client connection cap)",
            m.refused.clone(),
        );
        registry.register(
            "dane_audit_serve_connections",
            "Open client connections",
            m.connections.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The exposition, as served.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = Metrics::default();
        m.requests
            .get_or_create(&RequestLabels {
                route: "api-check",
                status: 429,
            })
            .inc();
        m.refused("rate-limited");
        m.audits_in_flight.set(3);
        let text = m.render();
        assert!(
            text.contains(r#"dane_audit_serve_requests_total{route="api-check",status="429"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dane_audit_serve_refused_total{reason="rate-limited"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("dane_audit_serve_audits_in_flight 3"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE dane_audit_serve_requests_total counter"),
            "{text}"
        );
    }
}
