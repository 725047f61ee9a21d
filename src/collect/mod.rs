//! One path from a domain name to evidence, for every command: the DNS
//! collector, then SMTP probes of the addresses that matter, behind the
//! politeness limits.
//!
//! Sharing is a layer, not a second implementation: a bulk scan adds a
//! cache of each MX host's DNS evidence and a cache of each (address, SNI)
//! STARTTLS probe, both bounded and coalescing work in flight, so that a
//! hoster's million domains on three MX hosts cost three probes; a polling
//! `preflight --wait` adds a short-lived probe cache so that a long wait
//! does not hammer port 25. `check` uses neither.
//!
//! * [`plan`]: which addresses are probed, and why the others are not.
//! * [`polite`]: connections per address, rates.
//! * [`waiting`]: what the work in flight waits on (DNS, SMTP, politeness).
//! * [`cache`]: the bounded, coalescing cache under both layers.

pub mod cache;
pub mod plan;
pub mod polite;
pub mod waiting;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{Evidence, HostEvidence, LookupMeta, Outcome, SmtpProbe};
use crate::core::smtp::completed_tls;
use crate::dns::DnsCollector;
use crate::skip::SkipList;
use crate::smtp::SmtpProber;

use cache::{CacheStats, SharedCache};
use plan::{ProbeDecision, ProbePolicy, not_probed, probe_plan};
use polite::Politeness;

/// How long shared results are reused within a run, at most. DNS evidence
/// is kept no longer than its smallest TTL (and at least [`MIN_REUSE`]).
pub const MAX_REUSE: Duration = Duration::from_secs(3600);
pub const MIN_REUSE: Duration = Duration::from_secs(30);
/// A failed probe (timeout, refused, 421) is reused this long in bulk: a
/// dead or rate-limiting server costs one attempt per interval, not one
/// per domain.
pub const FAILED_PROBE_REUSE: Duration = Duration::from_secs(300);
/// While polling, a completed handshake is trusted this long (and probed
/// again before any decision that relies on it being current).
pub const POLL_PROBE_REUSE: Duration = Duration::from_secs(300);

/// What a collection has found so far, for a caller that shows it while
/// the rest is still being collected (the web page): each MX host as its
/// lookups start and end, and each address as its probe ends.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// The MX lookup named this host; its own lookups start now.
    Host {
        name: &'a str,
        preference: Option<u16>,
    },
    /// The host's A, AAAA and TLSA lookups (and per-server checks) are done.
    HostDns(&'a HostEvidence),
    /// One address was probed, or deliberately not.
    Probe { host: &'a str, probe: &'a SmtpProbe },
}

/// Receives [`Progress`], from the collection's own tasks: keep it quick.
pub type Watcher<'a> = dyn Fn(Progress<'_>) + Sync + 'a;

/// How long a shared probe is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeReuse {
    /// Bulk: a TLS result for [`MAX_REUSE`], a failure for [`FAILED_PROBE_REUSE`].
    Bulk,
    /// Polling: a TLS result for [`POLL_PROBE_REUSE`]; anything else is asked again.
    Poll,
}

impl ProbeReuse {
    fn of(self, p: &SmtpProbe) -> Duration {
        let tls = p.tls.is_some() && p.failure.is_none();
        match (self, tls) {
            (ProbeReuse::Bulk, true) => MAX_REUSE,
            (ProbeReuse::Bulk, false) => FAILED_PROBE_REUSE,
            (ProbeReuse::Poll, _) if completed_tls(p) => POLL_PROBE_REUSE,
            (ProbeReuse::Poll, _) => Duration::ZERO,
        }
    }
}

struct ProbeCache {
    entries: SharedCache<(IpAddr, String), Arc<SmtpProbe>>,
    reuse: ProbeReuse,
}

/// What the sharing layers saved, for the summary.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct SharingStats {
    pub hosts: CacheStats,
    pub probes: CacheStats,
}

/// DNS evidence plus SMTP probes for whole domains.
pub struct Collector {
    dns: DnsCollector,
    smtp: Option<SmtpProber>,
    policy: ProbePolicy,
    skip: SkipList,
    polite: Politeness,
    hosts: Option<SharedCache<String, Arc<HostEvidence>>>,
    probes: Option<ProbeCache>,
}

impl Collector {
    /// A collector without sharing, at most one connection at a time per
    /// address, and nothing skipped.
    pub fn new(dns: DnsCollector, smtp: Option<SmtpProber>, policy: ProbePolicy) -> Collector {
        Collector {
            dns,
            smtp,
            policy,
            skip: SkipList::default(),
            polite: Politeness::new(1, 0.0, 0.0),
            hosts: None,
            probes: None,
        }
    }

    pub fn with_politeness(mut self, polite: Politeness) -> Collector {
        self.polite = polite;
        self
    }

    /// Never contact what `skip` lists (the DNS collector applies it to
    /// its own queries).
    pub fn with_skip(mut self, skip: SkipList) -> Collector {
        self.skip = skip;
        self
    }

    /// Shares each MX host's DNS evidence across domains (`entries` at most).
    pub fn sharing_hosts(mut self, entries: usize) -> Collector {
        self.hosts = Some(SharedCache::new(entries));
        self
    }

    /// Shares each (address, SNI) probe across domains (`entries` at most).
    pub fn sharing_probes(mut self, entries: usize, reuse: ProbeReuse) -> Collector {
        self.probes = Some(ProbeCache {
            entries: SharedCache::new(entries),
            reuse,
        });
        self
    }

    pub fn dns(&self) -> &DnsCollector {
        &self.dns
    }

    pub fn skip_list(&self) -> &SkipList {
        &self.skip
    }

    pub fn stats(&self) -> SharingStats {
        SharingStats {
            hosts: self.hosts.as_ref().map(|c| c.stats()).unwrap_or_default(),
            probes: self
                .probes
                .as_ref()
                .map(|c| c.entries.stats())
                .unwrap_or_default(),
        }
    }

    /// Forgets what was observed, so that the next collection asks again
    /// (polling): DNS answers and shared host evidence; probes when `smtp`.
    pub fn forget(&self, smtp: bool) {
        self.dns.forget_answers();
        if let Some(c) = &self.hosts {
            c.clear();
        }
        if let (true, Some(c)) = (smtp, &self.probes) {
            c.entries.clear();
        }
    }

    /// All evidence of one (normalised) domain: every MX host.
    pub async fn evidence(&self, domain: &str) -> Evidence {
        self.evidence_for(domain, &[]).await
    }

    /// All evidence of one domain, for the named hosts only (`hosts`
    /// empty: every MX host). A named host that is not an MX host is
    /// looked up on its own.
    pub async fn evidence_for(&self, domain: &str, hosts: &[String]) -> Evidence {
        self.collect(domain, hosts, &|_| {}).await
    }

    /// All evidence of one domain (every MX host), telling `watch` what is
    /// found as it comes.
    pub async fn evidence_watched(&self, domain: &str, watch: &Watcher<'_>) -> Evidence {
        self.collect(domain, &[], watch).await
    }

    async fn collect(&self, domain: &str, hosts: &[String], watch: &Watcher<'_>) -> Evidence {
        let mut ev = self
            .dns
            .collect_with(domain, |name, preference| async move {
                watch(Progress::Host {
                    name: &name,
                    preference,
                });
                let h = self.host(name.clone(), preference).await;
                watch(Progress::HostDns(&h));
                h
            })
            .await;
        if !hosts.is_empty() {
            ev.hosts = self.named_hosts(&ev, hosts).await;
        }
        ev.collector.smtp_skipped = self.smtp.is_none();
        attribute_mx_failure(&self.dns, &mut ev).await;
        let probes = join_all(ev.hosts.iter().map(|h| self.probe_host(h, watch))).await;
        for (h, smtp) in ev.hosts.iter_mut().zip(probes) {
            h.smtp = smtp;
        }
        ev
    }

    async fn named_hosts(&self, ev: &Evidence, names: &[String]) -> Vec<HostEvidence> {
        join_all(names.iter().map(|name| async move {
            match ev.hosts.iter().find(|h| &h.name == name) {
                Some(h) => h.clone(),
                None => self.host(name.clone(), None).await,
            }
        }))
        .await
    }

    /// A host's DNS evidence, shared across domains when that layer is on
    /// (the preference is the only per-domain part).
    async fn host(&self, name: String, preference: Option<u16>) -> HostEvidence {
        let Some(cache) = &self.hosts else {
            return self.dns.host(&name, preference).await;
        };
        let shared = cache
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

    /// Probes every address of a host that the plan selects, concurrently.
    async fn probe_host(&self, h: &HostEvidence, watch: &Watcher<'_>) -> Vec<SmtpProbe> {
        let plan = probe_plan(h, self.smtp.is_some(), &self.policy, &self.skip);
        join_all(plan.into_iter().map(|(ip, decision)| {
            let sni = h.tlsa_base.as_str();
            async move {
                let probe = match (decision, &self.smtp) {
                    (ProbeDecision::Probe, Some(prober)) => self.probe(prober, ip, sni).await,
                    (ProbeDecision::Skip(why), _) => not_probed(ip, self.policy.port, why),
                    (ProbeDecision::Probe, None) => {
                        not_probed(ip, self.policy.port, "SMTP not probed".into())
                    }
                };
                watch(Progress::Probe {
                    host: &h.name,
                    probe: &probe,
                });
                probe
            }
        }))
        .await
    }

    /// One probe, shared when that layer is on.
    async fn probe(&self, prober: &SmtpProber, ip: IpAddr, sni: &str) -> SmtpProbe {
        let Some(cache) = &self.probes else {
            return self.polite_probe(prober, ip, sni).await;
        };
        let p = cache
            .entries
            .get_or_compute(
                (ip, sni.to_string()),
                |p| cache.reuse.of(p),
                || async { Arc::new(self.polite_probe(prober, ip, sni).await) },
            )
            .await;
        SmtpProbe::clone(&p)
    }

    /// One connection, within the per-address connection limit and the rates.
    async fn polite_probe(&self, prober: &SmtpProber, ip: IpAddr, sni: &str) -> SmtpProbe {
        let held = waiting::POLITENESS.enter();
        let _slot = self.polite.admit(ip).await;
        drop(held);
        let _talking = waiting::SMTP.enter();
        prober.probe(ip, sni).await
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

/// Shared host evidence lives as long as its shortest TTL, within bounds;
/// a host whose lookups failed is asked again after [`MIN_REUSE`].
fn host_reuse(h: &HostEvidence) -> Duration {
    let metas: Vec<&LookupMeta> = [&h.a.meta, &h.aaaa.meta]
        .into_iter()
        .chain(h.tlsa.as_ref().map(|t| &t.meta))
        .collect();
    if metas
        .iter()
        .any(|m| m.outcome == Outcome::Failed || m.dnssec == DnssecStatus::Indeterminate)
    {
        return MIN_REUSE;
    }
    match metas.iter().filter_map(|m| m.ttl).min() {
        Some(t) => Duration::from_secs(u64::from(t)).clamp(MIN_REUSE, MAX_REUSE),
        None => MAX_REUSE,
    }
}
