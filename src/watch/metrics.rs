//! `/metrics` (Prometheus text exposition, by prometheus-client) and
//! `/healthz`.
//!
//! Metrics are derived at scrape time from the last audit of each watched
//! domain, so the series follow the domain list: a domain dropped from it
//! (SIGHUP) disappears at the next scrape, and no label takes a value that
//! is not a watched domain, one of its MX hosts, a finding code, a verdict
//! or a severity. Label values are escaped by the encoder.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use crate::core::evidence::Timestamp;
use crate::core::finding::{Code, Severity};
use crate::core::verdict::{DomainVerdict, HostVerdict};

use super::alert::TargetStats;
use super::events::Event;
use super::snapshot::Snapshot;

/// The scheduler is called stalled when it has not ticked for this long.
pub const STALL: Duration = Duration::from_secs(60);

/// What is known of one watched domain.
#[derive(Clone, Debug, Default)]
pub struct DomainMetrics {
    pub snapshot: Option<Snapshot>,
    /// Evaluation time of the last audit that was not `incomplete`.
    pub last_success: Option<Timestamp>,
    pub last_duration: Option<Duration>,
}

/// The state behind `/metrics` and `/healthz`, shared with the scheduler.
#[derive(Debug)]
pub struct Metrics {
    domains: Mutex<BTreeMap<String, DomainMetrics>>,
    events: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    alerts: Mutex<Vec<(&'static str, Arc<TargetStats>)>>,
    audits: AtomicU64,
    in_flight: AtomicI64,
    heartbeat: AtomicI64,
    clock: fn() -> Timestamp,
}

impl Metrics {
    pub fn new(clock: fn() -> Timestamp) -> Arc<Metrics> {
        Arc::new(Metrics {
            domains: Mutex::default(),
            events: Mutex::default(),
            alerts: Mutex::default(),
            audits: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            heartbeat: AtomicI64::new(clock().0),
            clock,
        })
    }

    /// Replaces the watched set: new domains start empty, dropped ones go.
    pub fn set_domains(&self, names: &[String], known: impl Fn(&str) -> Option<DomainMetrics>) {
        let mut d = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        d.retain(|k, _| names.contains(k));
        for n in names {
            if !d.contains_key(n) {
                d.insert(n.clone(), known(n).unwrap_or_default());
            }
        }
    }

    /// Records a finished audit and the events it raised.
    pub fn audited(&self, snap: &Snapshot, duration: Duration, events: &[Event]) {
        self.audits.fetch_add(1, Ordering::Relaxed);
        {
            let mut d = self.domains.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = d.get_mut(&snap.domain) {
                if snap.verdict != DomainVerdict::Incomplete {
                    m.last_success = Some(snap.at);
                }
                m.last_duration = Some(duration);
                m.snapshot = Some(snap.clone());
            }
        }
        let mut e = self.events.lock().unwrap_or_else(|p| p.into_inner());
        for ev in events {
            *e.entry((ev.kind.code(), ev.state.as_str())).or_default() += 1;
        }
    }

    pub fn set_alert_targets(&self, stats: Vec<(&'static str, Arc<TargetStats>)>) {
        *self.alerts.lock().unwrap_or_else(|p| p.into_inner()) = stats;
    }

    pub fn in_flight(&self, n: usize) {
        self.in_flight.store(n as i64, Ordering::Relaxed);
    }

    /// The scheduler is alive (called on every tick).
    pub fn beat(&self) {
        self.heartbeat.store((self.clock)().0, Ordering::Relaxed);
    }

    /// `None` when healthy, else why not.
    pub fn unhealthy(&self) -> Option<String> {
        let age = (self.clock)().0 - self.heartbeat.load(Ordering::Relaxed);
        (age > STALL.as_secs() as i64).then(|| format!("the scheduler has not run for {age} s"))
    }

    /// The exposition, as served.
    pub fn render(self: &Arc<Metrics>) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(Arc::clone(self))));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

#[derive(Debug)]
struct Exposition(Arc<Metrics>);

type Labels = Vec<(&'static str, String)>;

/// One metric family: its samples, encoded in one go.
fn gauge_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

fn counter_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn severity_rank(s: Option<Severity>) -> f64 {
    match s {
        None => 0.0,
        Some(Severity::Info) => 1.0,
        Some(Severity::Notice) => 2.0,
        Some(Severity::Warning) => 3.0,
        Some(Severity::Error) => 4.0,
        Some(Severity::Critical) => 5.0,
    }
}

const HOST_VERDICTS: [HostVerdict; 4] = [
    HostVerdict::Pass,
    HostVerdict::Fail,
    HostVerdict::NotDane,
    HostVerdict::NotTested,
];

/// Seconds from `from` to `to` (Prometheus's base unit: alert rules divide by 86400).
fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    (to.0 - from.0) as f64
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let now = (m.clock)();
        let domains = m.domains.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let dom = |d: &str| vec![("domain", d.to_string())];
        let mut verdict = Vec::new();
        let mut worst = Vec::new();
        let mut findings = Vec::new();
        let mut host_verdict = Vec::new();
        let mut cert_expiry = Vec::new();
        let mut rrsig_expiry = Vec::new();
        let mut age = Vec::new();
        let mut success = Vec::new();
        let mut duration = Vec::new();
        for (name, d) in &domains {
            if let Some(t) = d.last_success {
                age.push((dom(name), (now.0 - t.0) as f64));
                success.push((dom(name), t.0 as f64));
            }
            if let Some(t) = d.last_duration {
                duration.push((dom(name), t.as_secs_f64()));
            }
            let Some(s) = &d.snapshot else { continue };
            for v in DomainVerdict::ALL {
                let mut l = dom(name);
                l.push(("verdict", v.as_str().into()));
                verdict.push((l, f64::from(u8::from(s.verdict == v))));
            }
            worst.push((dom(name), severity_rank(s.worst_severity)));
            let mut counts: BTreeMap<(Code, Severity), u32> = BTreeMap::new();
            for f in &s.findings {
                *counts.entry((f.code, f.severity)).or_default() += 1;
            }
            for ((code, sev), n) in counts {
                let mut l = dom(name);
                l.push(("code", code.as_str().into()));
                l.push(("severity", sev.as_str().into()));
                findings.push((l, f64::from(n)));
            }
            for h in &s.hosts {
                let hl = || {
                    let mut l = dom(name);
                    l.push(("host", h.name.clone()));
                    l
                };
                for v in HOST_VERDICTS {
                    let mut l = hl();
                    l.push(("verdict", v.as_str().into()));
                    host_verdict.push((l, f64::from(u8::from(h.verdict == v))));
                }
                if let Some(t) = h.leaf_not_after() {
                    cert_expiry.push((hl(), seconds(now, t)));
                }
            }
            if let Some(t) = s.rrsig_expires {
                rrsig_expiry.push((dom(name), seconds(now, t)));
            }
        }
        gauge_family(
            &mut enc,
            "dane_audit_domains",
            "Domains watched.",
            &[(vec![], domains.len() as f64)],
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_domain_verdict",
            "1 for the domain's verdict in its last audit, 0 for the others.",
            &verdict,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_domain_worst_severity",
            "Worst finding severity of the last audit: 0 none, 1 info, 2 notice, 3 warning, 4 error, 5 critical.",
            &worst,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_domain_findings",
            "Findings of the last audit, by code and severity.",
            &findings,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_host_verdict",
            "1 for the MX host's verdict in its domain's last audit, 0 for the others.",
            &host_verdict,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_host_cert_expiry_seconds",
            "Seconds until the first leaf certificate served by the MX host expires (negative: expired).",
            &cert_expiry,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_domain_rrsig_expiry_seconds",
            "Seconds until the first RRset on the DANE path has no valid signature left.",
            &rrsig_expiry,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_domain_last_success_age_seconds",
            "Seconds since the domain's last audit that was not incomplete.",
            &age,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_domain_last_success_timestamp_seconds",
            "Unix time of the domain's last audit that was not incomplete.",
            &success,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_domain_audit_duration_seconds",
            "Duration of the domain's last audit.",
            &duration,
        )?;
        gauge_family(
            &mut enc,
            "dane_audit_audits_in_flight",
            "Audits running now.",
            &[(vec![], m.in_flight.load(Ordering::Relaxed) as f64)],
        )?;
        counter_family(
            &mut enc,
            "dane_audit_audits",
            "Audits stored since the watch started.",
            &[(vec![], m.audits.load(Ordering::Relaxed))],
        )?;
        let events: Vec<(Labels, u64)> = m
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((code, state), n)| {
                (
                    vec![("code", code.to_string()), ("state", state.to_string())],
                    *n,
                )
            })
            .collect();
        counter_family(
            &mut enc,
            "dane_audit_events",
            "Events raised since the watch started, by code and state.",
            &events,
        )?;
        let alerts = m.alerts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut outcomes = Vec::new();
        let mut queued = Vec::new();
        for (target, s) in &alerts {
            for (result, c) in [
                ("delivered", &s.delivered),
                ("failed", &s.failed),
                ("dropped", &s.dropped),
                ("retried", &s.retries),
            ] {
                outcomes.push((
                    vec![
                        ("target", target.to_string()),
                        ("result", result.to_string()),
                    ],
                    TargetStats::get(c),
                ));
            }
            queued.push((
                vec![("target", target.to_string())],
                TargetStats::get(&s.queued) as f64,
            ));
        }
        if !outcomes.is_empty() {
            counter_family(
                &mut enc,
                "dane_audit_alerts",
                "Alert deliveries since the watch started, by target and result.",
                &outcomes,
            )?;
        }
        gauge_family(
            &mut enc,
            "dane_audit_alert_queue_length",
            "Events waiting for delivery, by target.",
            &queued,
        )?;
        Ok(())
    }
}

/// Serves `/metrics` and `/healthz` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(health_page))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_page(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        m.render(),
    )
}

async fn health_page(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.unhealthy() {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::snapshot::{AddressSnap, FindingSnap, HostSnap, Leaf};

    fn clock() -> Timestamp {
        Timestamp(1_800_000_000)
    }

    fn snap(domain: &str, host: &str) -> Snapshot {
        Snapshot {
            domain: domain.into(),
            at: Timestamp(1_800_000_000 - 60),
            verdict: DomainVerdict::Fail,
            reason: None,
            worst_severity: Some(Severity::Critical),
            mx_failed: false,
            dns_complete: true,
            ns_checked: true,
            findings: vec![FindingSnap {
                code: Code::TlsaNoMatch,
                severity: Severity::Critical,
                subject: host.into(),
                host: Some(host.into()),
                address: None,
                message: String::new(),
            }],
            hosts: vec![HostSnap {
                name: host.into(),
                verdict: HostVerdict::Fail,
                dane: true,
                tlsa: None,
                addresses: vec![AddressSnap {
                    address: "192.0.2.1".parse().unwrap(),
                    verdict: HostVerdict::Fail,
                    leaf: Some(Leaf {
                        cert_sha256: String::new(),
                        spki_sha256: String::new(),
                        not_after: Some(Timestamp(1_800_000_000 + 86_400 * 10)),
                    }),
                }],
                successor_covered: false,
            }],
            rrsig_expires: Some(Timestamp(1_800_000_000 + 43_200)),
        }
    }

    #[test]
    fn exposition_follows_the_domain_list_and_escapes_labels() {
        let m = Metrics::new(clock);
        let names = vec!["a.example".to_string(), "b.example".to_string()];
        m.set_domains(&names, |_| None);
        // A host name with characters that must be escaped in a label value.
        m.audited(
            &snap("a.example", "mx\"1\\.a.example"),
            Duration::from_millis(1500),
            &[],
        );
        let text = m.render();
        assert!(text.contains("dane_audit_domains 2.0\n"), "{text}");
        assert!(
            text.contains(r#"dane_audit_domain_verdict{domain="a.example",verdict="fail"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dane_audit_domain_verdict{domain="a.example",verdict="pass"} 0.0"#)
        );
        assert!(text.contains(r#"dane_audit_host_cert_expiry_seconds{domain="a.example",host="mx\"1\\.a.example"} 864000.0"#), "{text}");
        assert!(
            text.contains(r#"dane_audit_domain_rrsig_expiry_seconds{domain="a.example"} 43200.0"#)
        );
        assert!(text.contains(r#"dane_audit_domain_findings{domain="a.example",code="tlsa-no-match",severity="critical"} 1.0"#));
        assert!(
            text.contains(r#"dane_audit_domain_audit_duration_seconds{domain="a.example"} 1.5"#)
        );
        assert!(text.contains("dane_audit_audits_total 1\n"), "{text}");
        assert!(
            !text.contains("b.example\",verdict"),
            "no audit of b yet: {text}"
        );
        m.set_domains(&names[1..], |_| None);
        let text = m.render();
        assert!(!text.contains("a.example"), "dropped from the list: {text}");
        assert!(text.contains("dane_audit_domains 1.0\n"));
    }

    #[test]
    fn health_follows_the_heartbeat() {
        fn late() -> Timestamp {
            Timestamp(1_800_000_000 + 3600)
        }
        let m = Metrics::new(clock);
        assert!(m.unhealthy().is_none());
        let stalled = Metrics {
            clock: late,
            domains: Mutex::default(),
            events: Mutex::default(),
            alerts: Mutex::default(),
            audits: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            heartbeat: AtomicI64::new(clock().0),
        };
        assert!(stalled.unhealthy().unwrap().contains("3600 s"));
    }
}
