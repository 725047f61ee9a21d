//! DNS evidence collector (RFC 7672 §2): MX, A/AAAA, TLSA with in-process DNSSEC validation, per-nameserver checks.
//!
//! The collector only gathers [`Evidence`]; the core turns it into findings.
//!
//! * Every RRset is validated in process by hickory's `DnssecDnsHandle` over a
//!   transport that sets CD=1 ([`upstream::Upstream`]), so bogus data and its
//!   signatures reach us; the status of each RRset comes from `record.proof`.
//! * CNAME chains are followed here, one validated question per hop (hickory
//!   checks a CNAME'd answer's NSEC/NSEC3 against the original name).
//! * The resolver's own view (CD=0: rcode, AD, RFC 8914 EDE, and the CD=1
//!   rcode on SERVFAIL) is recorded as a second witness when the resolver
//!   validates at all.
//! * Each authoritative server address of the zone holding a TLSA name is
//!   asked directly ([`nameservers`]).
//!
//! Names in and out are A-labels in lower case; evidence shows them without
//! the trailing dot; questions are always fully qualified (no search list,
//! no hosts file).

mod anchor;
mod convert;
pub mod iterate;
mod lookup;
mod ns_probe;
mod outstanding;
mod transport;
pub mod tsig_key;
pub mod update;
mod upstream;
mod wildcard;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::proto::dnssec::TrustAnchors;

pub use anchor::{AnchorError, AnchorRecord, builtin_key_tags, parse_anchor_text};
pub use lookup::witness_from_response;

use crate::core::evidence::{
    CollectorInfo, EVIDENCE_SCHEMA_VERSION, Evidence, Families, HostEvidence, Lookup, MxRecord,
    Timestamp, ZoneSignatures,
};
use upstream::{Net, Upstream};

use crate::skip::SkipList;

/// Answers kept per run (by name, type and flags); the oldest go first.
pub const CACHE_ENTRIES: usize = 200_000;
/// Validated RRsets kept by hickory's validator.
pub const VALIDATION_CACHE_ENTRIES: usize = 100_000;

/// How questions are answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Resolution {
    /// By the recursive resolvers of [`DnsConfig::resolvers`].
    #[default]
    Recursive,
    /// In process, from the root servers down ([`iterate`]); `resolvers`
    /// is not used and there is no resolver witness.
    Iterative {
        /// Root hints (zone-file NS + A/AAAA); `None`: the IANA root servers.
        root_hints: Option<PathBuf>,
    },
}

/// Where the DNSSEC trust anchor comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrustAnchorSource {
    /// hickory's built-in IANA root KSKs (20326 and 38696).
    #[default]
    Iana,
    /// DNSKEY and/or DS records in zone-file syntax.
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Recursive resolvers, asked in order.
    pub resolvers: Vec<SocketAddr>,
    pub trust_anchor: TrustAnchorSource,
    /// Per question and transport.
    pub timeout: Duration,
    /// Rounds over the resolvers for one question (direct questions to one
    /// authoritative server get at most two tries).
    pub attempts: usize,
    /// Address families allowed for transport (`-4`, `-6`).
    pub families: Families,
    /// Ask each authoritative server of each TLSA name's zone directly.
    pub nameserver_checks: bool,
    /// Ask the resolver for its own verdict (CD=0) as a second witness.
    /// Off halves the resolver's work in bulk scans.
    pub witness: bool,
    /// Through recursive resolvers, or iteratively from the root.
    pub mode: Resolution,
    /// Authoritative server addresses never asked (the scan's skip list):
    /// no per-server check, and no iterative query.
    pub skip: Arc<SkipList>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            resolvers: Vec::new(),
            trust_anchor: TrustAnchorSource::Iana,
            timeout: Duration::from_secs(3),
            attempts: 2,
            families: Families::default(),
            nameserver_checks: true,
            witness: true,
            mode: Resolution::Recursive,
            skip: Arc::default(),
        }
    }
}

/// Why a collector could not be set up; one line each.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("no resolver configured")]
    NoResolvers,
    #[error("no resolver usable over the allowed address families (have {0})")]
    NoResolverForFamily(String),
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    AnchorParse { path: String, err: AnchorError },
    #[error("{0}: no DNSKEY or DS trust anchor found")]
    AnchorEmpty(String),
    #[error("cannot fetch the DNSKEY set of {zone} to match the DS trust anchor: {detail}")]
    AnchorFetch { zone: String, detail: String },
    #[error(
        "{file}: no DNSKEY of {zone} (of {keys} served) matches the DS trust anchor (key tag {tags})"
    )]
    AnchorDsNoMatch {
        file: String,
        zone: String,
        tags: String,
        keys: usize,
    },
    #[error("/etc/resolv.conf: {0}")]
    ResolvConf(String),
    #[error("root hints: {0}")]
    RootHints(#[from] iterate::RootHintsError),
}

pub(crate) type Validator = DnssecDnsHandle<Upstream>;

pub(crate) struct Inner {
    pub net: Arc<Net>,
    pub validator: Validator,
    pub cfg: DnsConfig,
    pub anchor_desc: String,
    pub witness_on: tokio::sync::OnceCell<bool>,
}

/// Gathers the DNS evidence of domains and hosts. Cheap to clone; clones
/// share the answer cache and the validation cache.
#[derive(Clone)]
pub struct DnsCollector {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for DnsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCollector")
            .field("resolvers", &self.inner.net.resolvers)
            .field("trust_anchor", &self.inner.anchor_desc)
            .finish()
    }
}

fn family_ok(f: Families, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => f.ipv4,
        IpAddr::V6(_) => f.ipv6,
    }
}

impl DnsCollector {
    /// Sets up the collector. Needs the network only for a DS trust anchor
    /// (the root DNSKEY set is fetched to match it).
    pub async fn new(cfg: DnsConfig) -> Result<DnsCollector, DnsSetupError> {
        Self::with_cache_sizes(cfg, CACHE_ENTRIES, VALIDATION_CACHE_ENTRIES).await
    }

    /// As [`DnsCollector::new`], with the bounds (entries) of the answer
    /// cache and of the validator's cache (the bulk scan keeps them small,
    /// so that memory does not follow the length of its input).
    pub async fn with_cache_sizes(
        cfg: DnsConfig,
        answers: usize,
        validated: usize,
    ) -> Result<DnsCollector, DnsSetupError> {
        if let Resolution::Iterative { root_hints } = &cfg.mode {
            let roots = iterate::load_roots(root_hints.as_deref())?;
            let it = iterate::IterResolver::new(iterate::IterConfig {
                roots,
                port: 53,
                families: cfg.families,
                timeout: cfg.timeout,
                attempts: cfg.attempts,
                cache_entries: answers,
                skip: Arc::clone(&cfg.skip),
            });
            if it.roots().is_empty() {
                return Err(iterate::RootHintsError::NoUsableFamily.into());
            }
            let net = Net::iterative(it, cfg.timeout, cfg.attempts, answers);
            return Self::finish(cfg, net, validated, Some(false)).await;
        }
        if cfg.resolvers.is_empty() {
            return Err(DnsSetupError::NoResolvers);
        }
        let resolvers: Vec<SocketAddr> = cfg
            .resolvers
            .iter()
            .copied()
            .filter(|s| family_ok(cfg.families, s.ip()))
            .collect();
        if resolvers.is_empty() {
            return Err(DnsSetupError::NoResolverForFamily(
                cfg.resolvers
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        let net = Net::new(resolvers, cfg.timeout, cfg.attempts, answers);
        let witness = (!cfg.witness).then_some(false);
        Self::finish(cfg, net, validated, witness).await
    }

    /// The trust anchor and the validator over `net`; `witness`: whether
    /// the resolver's own view is asked for (`None`: find out).
    async fn finish(
        cfg: DnsConfig,
        net: Arc<Net>,
        validated: usize,
        witness: Option<bool>,
    ) -> Result<DnsCollector, DnsSetupError> {
        let (anchors, anchor_desc) = match &cfg.trust_anchor {
            TrustAnchorSource::Iana => (
                TrustAnchors::default(),
                "IANA root KSKs 20326, 38696 (built in)".to_string(),
            ),
            TrustAnchorSource::File(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|err| DnsSetupError::Read {
                    path: shown.clone(),
                    err,
                })?;
                let recs = parse_anchor_text(&text).map_err(|err| DnsSetupError::AnchorParse {
                    path: shown.clone(),
                    err,
                })?;
                if recs.is_empty() {
                    return Err(DnsSetupError::AnchorEmpty(shown));
                }
                let (ta, n) = anchor::build_anchors(&recs, &net, &shown).await?;
                (ta, format!("{shown} ({n} key(s))"))
            }
        };
        let upstream = Upstream {
            net: Arc::clone(&net),
            cd: true,
        };
        let validator = DnssecDnsHandle::with_trust_anchor(upstream, Arc::new(anchors))
            .validation_cache_size(validated.max(1));
        Ok(DnsCollector {
            inner: Arc::new(Inner {
                net,
                validator,
                cfg,
                anchor_desc,
                witness_on: tokio::sync::OnceCell::new_with(witness),
            }),
        })
    }

    /// The configuration this collector runs with.
    pub fn config(&self) -> &DnsConfig {
        &self.inner.cfg
    }

    /// What the evidence's `collector` block says about this collector.
    pub fn collector_info(&self) -> CollectorInfo {
        CollectorInfo {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            resolvers: match &self.inner.cfg.mode {
                Resolution::Recursive => self
                    .inner
                    .net
                    .resolvers
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                Resolution::Iterative { root_hints } => vec![match root_hints {
                    Some(p) => format!("iterative (root hints {})", p.display()),
                    None => "iterative (IANA root servers)".to_string(),
                }],
            },
            trust_anchor: self.inner.anchor_desc.clone(),
            families: self.inner.cfg.families,
            smtp_skipped: false,
            nameserver_checks: self.inner.cfg.nameserver_checks,
        }
    }

    /// The MX RRset of `domain` (null MX as exchange `.`), sorted by preference.
    pub async fn mx(&self, domain: &str) -> Lookup<MxRecord> {
        lookup::mx(self, domain).await
    }

    /// A, AAAA and TLSA (RFC 7672 §2.2.2 base domain) of one MX host, and
    /// when enabled what each authoritative server says about its TLSA name.
    /// `smtp` is left empty.
    pub async fn host(&self, name: &str, preference: Option<u16>) -> HostEvidence {
        lookup::host(self, name, preference).await
    }

    /// RRSIG times of the DNSKEY and DS RRsets of every zone from the root
    /// down to the zones holding `names`.
    pub async fn chain_signatures(&self, names: &[String]) -> Vec<ZoneSignatures> {
        ns_probe::chain_signatures(self, names).await
    }

    /// What each authoritative server address of the zone holding `qname`
    /// says about TLSA at `qname` (as in [`HostEvidence::nameservers`]).
    /// Works also when the zone's servers all fail: the delegation is then
    /// read from the parent's referral.
    pub async fn probe_nameservers(&self, qname: &str) -> Vec<crate::core::evidence::NsProbe> {
        match convert::normalize(qname) {
            Ok((_, name)) => ns_probe::probe_servers(self, &name).await,
            Err(_) => Vec::new(),
        }
    }

    /// All DNS evidence of one domain: MX (or the implicit MX under a secure
    /// denial), every host in preference order, and the chain signatures.
    /// `smtp` is left empty.
    pub async fn collect(&self, domain: &str) -> Evidence {
        self.collect_with(
            domain,
            |name, pref| async move { self.host(&name, pref).await },
        )
        .await
    }

    /// As [`DnsCollector::collect`], with each MX host's evidence supplied by
    /// `host` (the bulk scan passes a shared, coalescing cache in front of
    /// [`DnsCollector::host`]).
    pub async fn collect_with<F, Fut>(&self, domain: &str, host: F) -> Evidence
    where
        F: Fn(String, Option<u16>) -> Fut,
        Fut: std::future::Future<Output = HostEvidence>,
    {
        let collected_at = Timestamp(now());
        let shown = convert::normalize(domain)
            .map(|(s, _)| s)
            .unwrap_or_else(|_| domain.trim().to_ascii_lowercase());
        let mx = self.mx(domain).await;
        let targets = crate::core::evidence::mx_targets(&shown, &mx);
        let hosts: Vec<HostEvidence> = futures_util::future::join_all(
            targets.into_iter().map(|(name, pref)| host(name, pref)),
        )
        .await;
        // Names whose lookup carries a signature: the signer is their zone.
        // The others need the zone apex found by queries.
        let mut names: Vec<String> = Vec::new();
        let mut zones: Vec<String> = Vec::new();
        let mut place = |name: &str, meta: Option<&crate::core::evidence::LookupMeta>| match meta
            .and_then(|m| m.rrsigs.first())
        {
            Some(sig) => zones.push(sig.signer.clone()),
            None => names.push(name.to_string()),
        };
        place(&shown, Some(&mx.meta));
        for h in &hosts {
            place(&h.name, Some(&h.a.meta));
            for c in h.a.meta.cnames.iter().chain(&h.aaaa.meta.cnames) {
                place(&c.target, None);
            }
            if let Some(t) = &h.tlsa {
                place(&t.meta.qname, Some(&t.meta));
                for c in &t.meta.cnames {
                    place(&c.target, None);
                }
            }
        }
        names.sort();
        names.dedup();
        zones.sort();
        zones.dedup();
        let chain = if mx.meta.outcome == crate::core::evidence::Outcome::Failed {
            Vec::new()
        } else {
            ns_probe::chain_signatures_from(self, &names, &zones).await
        };
        Evidence {
            schema_version: EVIDENCE_SCHEMA_VERSION,
            domain: shown,
            collected_at,
            collector: self.collector_info(),
            mx,
            hosts,
            chain,
            nameservers: Vec::new(),
        }
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `nameserver` lines of /etc/resolv.conf (port 53).
pub fn resolvers_from_resolv_conf() -> Result<Vec<SocketAddr>, DnsSetupError> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| DnsSetupError::ResolvConf(e.to_string()))?;
    let list = parse_resolv_conf(&text);
    if list.is_empty() {
        return Err(DnsSetupError::ResolvConf("no nameserver line".into()));
    }
    Ok(list)
}

/// Parses `nameserver ADDR` lines (an IPv6 zone suffix `%eth0` is dropped).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let l = l.split(['#', ';']).next()?.trim();
            let mut it = l.split_whitespace();
            (it.next()? == "nameserver").then_some(())?;
            let a = it.next()?;
            let a = a.split('%').next()?;
            a.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Parses `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT` (port 53 by default).
pub fn parse_resolver(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lines() {
        let text = "# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver fe80::1%eth0 # x\nnameserver bogus\noptions ndots:2\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.0.2.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn resolver_arguments() {
        assert_eq!(
            parse_resolver("192.0.2.1"),
            Some("192.0.2.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_resolver("192.0.2.1:5353"),
            Some("192.0.2.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_resolver("2001:db8::1"),
            Some("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(
            parse_resolver("[2001:db8::1]"),
            Some("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(
            parse_resolver("[2001:db8::1]:53"),
            Some("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(parse_resolver("nope"), None);
    }

    fn send_sync_clone<T: Send + Sync + Clone + 'static>(_: &T) {}
    fn send<T: Send>(_: &T) {}

    /// `scan` shares one collector across spawned tasks.
    #[tokio::test]
    async fn collector_and_its_futures_can_cross_tasks() {
        let c = DnsCollector::new(DnsConfig {
            resolvers: vec!["192.0.2.1:53".parse().unwrap()],
            ..DnsConfig::default()
        })
        .await
        .unwrap();
        send_sync_clone(&c);
        send(&c.collect("example.org"));
        send(&c.host("mx.example.org", Some(10)));
        send(&c.mx("example.org"));
        send(&c.chain_signatures(&[]));
        assert!(c.collector_info().trust_anchor.contains("IANA"));
    }

    #[tokio::test]
    async fn setup_errors_are_one_line() {
        let e = DnsCollector::new(DnsConfig::default()).await.unwrap_err();
        assert_eq!(e.to_string(), "no resolver configured");
        let cfg = DnsConfig {
            resolvers: vec!["192.0.2.1:53".parse().unwrap()],
            families: Families {
                ipv4: false,
                ipv6: true,
            },
            ..DnsConfig::default()
        };
        let e = DnsCollector::new(cfg).await.unwrap_err();
        assert!(e.to_string().contains("192.0.2.1:53"), "{e}");
        let cfg = DnsConfig {
            resolvers: vec!["192.0.2.1:53".parse().unwrap()],
            trust_anchor: TrustAnchorSource::File("/nonexistent/anchor".into()),
            ..DnsConfig::default()
        };
        let e = DnsCollector::new(cfg).await.unwrap_err().to_string();
        assert!(e.starts_with("cannot read /nonexistent/anchor"), "{e}");
        assert!(!e.contains('\n'));
    }
}
