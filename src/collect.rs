//! One domain's full evidence: the DNS collector, then SMTP probes of the
//! addresses that matter, at most one connection per destination address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{
    Evidence, Families, HostEvidence, Outcome, SmtpFailure, SmtpFailureKind, SmtpPhase, SmtpProbe,
};
use crate::dns::DnsCollector;
use crate::smtp::SmtpProber;

/// Limits concurrent connections per destination address (default 1), so a
/// host shared by many MX names is never hit in parallel. Entries live only
/// while someone holds or waits for them, so memory follows the work in flight.
#[derive(Default)]
pub struct AddressGate {
    per_address: usize,
    slots: Mutex<HashMap<IpAddr, Weak<Semaphore>>>,
}

impl AddressGate {
    pub fn new(per_address: usize) -> AddressGate {
        AddressGate {
            per_address: per_address.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a connection slot to `ip`.
    pub async fn enter(&self, ip: IpAddr) -> tokio::sync::OwnedSemaphorePermit {
        let sem = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if slots.len() > 4096 {
                slots.retain(|_, w| w.strong_count() > 0);
            }
            match slots.get(&ip).and_then(Weak::upgrade) {
                Some(s) => s,
                None => {
                    let s = Arc::new(Semaphore::new(self.per_address));
                    slots.insert(ip, Arc::downgrade(&s));
                    s
                }
            }
        };
        sem.acquire_owned()
            .await
            .expect("address gate semaphores are never closed")
    }
}

/// Which addresses of a host to probe, and why the others are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeDecision {
    Probe,
    Skip(String),
}

/// Whether a host's TLSA answer obliges senders to use TLS with it.
pub fn has_secure_tlsa(h: &HostEvidence) -> bool {
    h.tlsa.as_ref().is_some_and(|t| {
        t.meta.outcome == Outcome::Answer
            && t.meta.dnssec == DnssecStatus::Secure
            && !t.records.is_empty()
    })
}

/// Decides, per address of a host, whether to probe it.
pub fn probe_plan(
    h: &HostEvidence,
    smtp_enabled: bool,
    all_hosts: bool,
    families: Families,
) -> Vec<(IpAddr, ProbeDecision)> {
    let relevant = all_hosts || has_secure_tlsa(h);
    h.a.records
        .iter()
        .chain(&h.aaaa.records)
        .filter(|_| relevant)
        .map(|ip| {
            let decision = if !smtp_enabled {
                ProbeDecision::Skip("SMTP not probed (--no-smtp)".into())
            } else if ip.is_ipv4() && !families.ipv4 {
                ProbeDecision::Skip("IPv4 disabled (-6)".into())
            } else if ip.is_ipv6() && !families.ipv6 {
                ProbeDecision::Skip("IPv6 disabled (-4)".into())
            } else {
                ProbeDecision::Probe
            };
            (*ip, decision)
        })
        .collect()
}

/// The evidence entry for an address that was deliberately not probed.
pub fn not_probed(address: IpAddr, port: u16, why: String) -> SmtpProbe {
    SmtpProbe {
        address,
        port,
        elapsed_ms: 0,
        greeting: None,
        ehlo: None,
        starttls: None,
        tls: None,
        chain: Vec::new(),
        failure: Some(SmtpFailure {
            phase: SmtpPhase::Connect,
            kind: SmtpFailureKind::NotProbed,
            detail: why,
        }),
        key_types: Vec::new(),
    }
}

/// When the MX (or a host's address) lookup failed, probes the authoritative
/// servers of that name, so the report can say which of them is dead or
/// drops queries.
pub async fn attribute_mx_failure(dns: &DnsCollector, ev: &mut Evidence) {
    if !dns.config().nameserver_checks {
        return;
    }
    if ev.mx.meta.outcome == Outcome::Failed {
        ev.nameservers = dns.probe_nameservers(&ev.domain).await;
    }
    let failed = |h: &HostEvidence| {
        h.nameservers.is_empty()
            && h.a.meta.outcome == Outcome::Failed
            && h.aaaa.meta.outcome == Outcome::Failed
    };
    let probes = join_all(
        ev.hosts
            .iter()
            .map(|h| async move { failed(h).then_some(dns.probe_nameservers(&h.name).await) }),
    )
    .await;
    for (h, p) in ev.hosts.iter_mut().zip(probes) {
        if let Some(p) = p {
            h.nameservers = p;
        }
    }
}

/// DNS evidence plus SMTP probes for whole domains.
#[derive(Clone)]
pub struct Collector {
    pub dns: DnsCollector,
    pub smtp: Option<SmtpProber>,
    pub all_hosts: bool,
    pub families: Families,
    pub gate: Arc<AddressGate>,
    pub smtp_port: u16,
}

impl Collector {
    pub async fn evidence(&self, domain: &str) -> Evidence {
        let mut ev = self.dns.collect(domain).await;
        attribute_mx_failure(&self.dns, &mut ev).await;
        ev.collector.smtp_skipped = self.smtp.is_none();
        let probes = ev.hosts.iter().map(|h| self.probe_host(h));
        let results = join_all(probes).await;
        for (h, smtp) in ev.hosts.iter_mut().zip(results) {
            h.smtp = smtp;
        }
        ev
    }

    /// Probes every address of a host that the plan selects, concurrently.
    pub async fn probe_host(&self, h: &HostEvidence) -> Vec<SmtpProbe> {
        let plan = probe_plan(h, self.smtp.is_some(), self.all_hosts, self.families);
        let sni = h.tlsa_base.clone();
        join_all(plan.into_iter().map(|(ip, decision)| {
            let sni = sni.clone();
            async move {
                match (decision, &self.smtp) {
                    (ProbeDecision::Probe, Some(prober)) => {
                        let _slot = self.gate.enter(ip).await;
                        prober.probe(ip, &sni).await
                    }
                    (ProbeDecision::Skip(why), _) => not_probed(ip, self.smtp_port, why),
                    (ProbeDecision::Probe, None) => {
                        not_probed(ip, self.smtp_port, "SMTP not probed".into())
                    }
                }
            }
        }))
        .await
    }
}
