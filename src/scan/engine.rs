//! One domain's evidence in a bulk scan: the same collection as `check`
//! ([`DnsCollector::collect_with`], [`probe_plan`]), with each MX host's DNS
//! evidence and each (address, SNI) STARTTLS probe done once per run and
//! shared by every domain that uses it, through bounded caches that coalesce
//! work in flight, behind the politeness limits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use crate::collect::{AddressGate, ProbeDecision, attribute_mx_failure, not_probed, probe_plan};
use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{
    Evidence, Families, HostEvidence, Lookup, LookupMeta, Outcome, SmtpProbe,
};
use crate::dns::DnsCollector;
use crate::smtp::SmtpProber;

use super::cache::{CacheStats, SharedCache};
use super::limits::{PerAddressRate, RateLimiter};
use crate::skip::SkipList;

/// How long shared results are reused within a run, at most. DNS evidence
/// is kept no longer than its smallest TTL (and at least [`MIN_REUSE`]).
pub const MAX_REUSE: Duration = Duration::from_secs(3600);
pub const MIN_REUSE: Duration = Duration::from_secs(30);
/// A failed probe (timeout, refused, 421) is reused this long: a dead or
/// rate-limiting server costs one attempt per interval, not one per domain.
pub const FAILED_PROBE_REUSE: Duration = Duration::from_secs(300);

/// Cache sizes (entries); see [`Engine`].
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct CacheSizes {
    pub hosts: usize,
    pub probes: usize,
}

impl Default for CacheSizes {
    fn default() -> Self {
        CacheSizes {
            hosts: 20_000,
            probes: 20_000,
        }
    }
}

/// Everything a domain's audit needs, shared by all domains of a run.
pub struct Engine {
    pub dns: DnsCollector,
    pub smtp: Option<SmtpProber>,
    pub all_hosts: bool,
    pub families: Families,
    pub smtp_port: u16,
    pub gate: AddressGate,
    pub per_address_rate: Option<PerAddressRate>,
    pub connection_rate: Option<RateLimiter>,
    pub skip: SkipList,
    hosts: SharedCache<String, Arc<HostEvidence>>,
    probes: SharedCache<(IpAddr, String), Arc<SmtpProbe>>,
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct EngineStats {
    pub hosts: CacheStats,
    pub probes: CacheStats,
}

/// Settings of an [`Engine`] besides the collectors.
pub struct EngineConfig {
    pub all_hosts: bool,
    pub families: Families,
    pub smtp_port: u16,
    pub per_address_connections: usize,
    /// SMTP connections per second to one address (0: unlimited).
    pub per_address_rate: f64,
    /// SMTP connections per second overall (0: unlimited).
    pub connection_rate: f64,
    pub skip: SkipList,
    pub caches: CacheSizes,
}

impl Engine {
    pub fn new(dns: DnsCollector, smtp: Option<SmtpProber>, cfg: EngineConfig) -> Engine {
        Engine {
            dns,
            smtp,
            all_hosts: cfg.all_hosts,
            families: cfg.families,
            smtp_port: cfg.smtp_port,
            gate: AddressGate::new(cfg.per_address_connections),
            per_address_rate: PerAddressRate::per_second(cfg.per_address_rate),
            connection_rate: RateLimiter::per_second(cfg.connection_rate),
            skip: cfg.skip,
            hosts: SharedCache::new(cfg.caches.hosts),
            probes: SharedCache::new(cfg.caches.probes),
        }
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            hosts: self.hosts.stats(),
            probes: self.probes.stats(),
        }
    }

    /// All evidence of one (normalised) domain.
    pub async fn evidence(&self, domain: &str) -> Evidence {
        let mut ev = self
            .dns
            .collect_with(domain, |name, pref| self.host(name, pref))
            .await;
        ev.collector.smtp_skipped = self.smtp.is_none();
        // As `check` does (collect.rs); tests/scan_testbed.rs keeps the two equal.
        attribute_mx_failure(&self.dns, &mut ev).await;
        let probes = join_all(ev.hosts.iter().map(|h| self.probe_host(h))).await;
        for (h, smtp) in ev.hosts.iter_mut().zip(probes) {
            h.smtp = smtp;
        }
        ev
    }

    /// A host's DNS evidence, shared across domains (the preference is the
    /// only per-domain part).
    async fn host(&self, name: String, preference: Option<u16>) -> HostEvidence {
        let shared = self
            .hosts
            .get_or_compute(
                name.clone(),
                |h| host_reuse(h),
                || async { Arc::new(self.dns.host(&name, None).await) },
            )
            .await;
        let mut h = HostEvidence::clone(&shared);
        h.preference = preference;
        h
    }

    async fn probe_host(&self, h: &HostEvidence) -> Vec<SmtpProbe> {
        let plan = probe_plan(h, self.smtp.is_some(), self.all_hosts, self.families);
        let skipped_host = self.skip.domain(&h.name).map(str::to_string);
        join_all(plan.into_iter().map(|(ip, decision)| {
            let sni = h.tlsa_base.clone();
            let skipped_host = skipped_host.clone();
            async move {
                match (decision, &self.smtp) {
                    (ProbeDecision::Skip(why), _) => not_probed(ip, self.smtp_port, why),
                    (ProbeDecision::Probe, None) => {
                        not_probed(ip, self.smtp_port, "SMTP not probed".into())
                    }
                    (ProbeDecision::Probe, Some(_)) if skipped_host.is_some() => not_probed(
                        ip,
                        self.smtp_port,
                        format!(
                            "not contacted: {} is on the skip list",
                            skipped_host.unwrap_or_default()
                        ),
                    ),
                    (ProbeDecision::Probe, Some(_)) if self.skip.address(ip) => not_probed(
                        ip,
                        self.smtp_port,
                        "not contacted: the address is on the skip list".into(),
                    ),
                    (ProbeDecision::Probe, Some(prober)) => {
                        let p = self
                            .probes
                            .get_or_compute((ip, sni.clone()), probe_reuse, || async {
                                Arc::new(self.polite_probe(prober, ip, &sni).await)
                            })
                            .await;
                        SmtpProbe::clone(&p)
                    }
                }
            }
        }))
        .await
    }

    /// One connection, within the per-address connection limit and the rates.
    async fn polite_probe(&self, prober: &SmtpProber, ip: IpAddr, sni: &str) -> SmtpProbe {
        let _slot = self.gate.enter(ip).await;
        if let Some(r) = &self.per_address_rate {
            r.wait(ip).await;
        }
        if let Some(r) = &self.connection_rate {
            r.wait().await;
        }
        prober.probe(ip, sni).await
    }
}

fn meta_ttl(m: &LookupMeta) -> Option<u32> {
    m.ttl
}

/// Shared host evidence lives as long as its shortest TTL, within bounds;
/// a host whose lookups failed is asked again after [`MIN_REUSE`].
fn host_reuse(h: &HostEvidence) -> Duration {
    let metas: Vec<&LookupMeta> = [&h.a.meta, &h.aaaa.meta]
        .into_iter()
        .chain(h.tlsa.as_ref().map(|t: &Lookup<_>| &t.meta))
        .collect();
    if metas
        .iter()
        .any(|m| m.outcome == Outcome::Failed || m.dnssec == DnssecStatus::Indeterminate)
    {
        return MIN_REUSE;
    }
    let ttl = metas.iter().filter_map(|m| meta_ttl(m)).min();
    match ttl {
        Some(t) => Duration::from_secs(u64::from(t)).clamp(MIN_REUSE, MAX_REUSE),
        None => MAX_REUSE,
    }
}

fn probe_reuse(p: &Arc<SmtpProbe>) -> Duration {
    if p.tls.is_some() && p.failure.is_none() {
        MAX_REUSE
    } else {
        FAILED_PROBE_REUSE
    }
}
