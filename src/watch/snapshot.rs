//! The facts of one audit that the watch compares with the next one.
//!
//! A [`Snapshot`] is taken from an audit and its evidence (both pure data),
//! so events can be computed without the network and tested as tables. It
//! keeps only what an event or a metric needs: the verdicts, the findings
//! (by code and subject), per host the TLSA RRset as published and per
//! address the leaf certificate served, the earliest signature expiry, and
//! whether each part could be observed at all. "Not observed" is kept apart
//! from "absent", so a round that could not reach a server neither clears
//! an alert nor reports a change.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::core::audit::{DomainAudit, HostAudit};
use crate::core::cert::CertInfo;
use crate::core::evidence::{Evidence, HostEvidence, Outcome, Rrsig, Timestamp};
use crate::core::finding::{Code, Severity};
use crate::core::tlsa::{MatchingType, Selector, TlsaRdata, Usage};
use crate::core::verdict::{DomainVerdict, HostVerdict};

/// What the watch remembers of one audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub domain: String,
    /// When the audit was evaluated.
    pub at: Timestamp,
    pub verdict: DomainVerdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_severity: Option<Severity>,
    /// The MX lookup itself failed: nothing below the domain was observed.
    pub mx_failed: bool,
    /// Every DNS lookup on the path (MX, A, AAAA, TLSA) got an answer or a
    /// denial, so the signatures seen are all there are.
    pub dns_complete: bool,
    /// Each authoritative server was asked on its own (not `--no-ns-checks`).
    pub ns_checked: bool,
    pub findings: Vec<FindingSnap>,
    pub hosts: Vec<HostSnap>,
    /// When the first RRset on the DANE path loses its last valid signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrsig_expires: Option<Timestamp>,
}

/// One finding, keyed by code and subject (its message may change from
/// round to round, e.g. the days left, without it being a new finding).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingSnap {
    pub code: Code,
    pub severity: Severity,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    pub message: String,
}

impl FindingSnap {
    /// The identity of a finding across rounds.
    pub fn key(&self) -> String {
        format!("{} {}", self.code, self.subject)
    }

    /// "Could not determine" findings (`smtp-unreachable`, `mx-lookup-failed`, ...).
    pub fn undetermined(&self) -> bool {
        crate::core::catalogue::entry(self.code).undetermined
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostSnap {
    pub name: String,
    pub verdict: HostVerdict,
    /// Secure TLSA with a usable record: DANE applies.
    pub dane: bool,
    /// The TLSA RRset (presentation form, sorted); `None` when the lookup
    /// failed or was not made, `Some(empty)` for a denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlsa: Option<Vec<String>>,
    pub addresses: Vec<AddressSnap>,
    /// A published record would authenticate a successor of the leaf key: a
    /// `2 x x` record matching a CA the server sends, or a usable `3 x x`
    /// record for a key not served yet (a staged next key).
    pub successor_covered: bool,
}

impl HostSnap {
    /// The leaf that expires first among the addresses.
    pub fn leaf_not_after(&self) -> Option<Timestamp> {
        self.addresses
            .iter()
            .filter_map(|a| a.leaf.as_ref()?.not_after)
            .min()
    }

    /// Whether some address was probed to a certificate.
    pub fn chain_seen(&self) -> bool {
        self.addresses.iter().any(|a| a.leaf.is_some())
    }

    pub fn address(&self, ip: IpAddr) -> Option<&AddressSnap> {
        self.addresses.iter().find(|a| a.address == ip)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSnap {
    pub address: IpAddr,
    pub verdict: HostVerdict,
    /// The leaf certificate served, when the handshake got that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<Leaf>,
}

/// A served leaf certificate, by digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    /// SHA-256 of the whole certificate (`3 0 1` data).
    pub cert_sha256: String,
    /// SHA-256 of its public key (`3 1 1` data).
    pub spki_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
}

impl Leaf {
    fn of(der: &[u8]) -> Leaf {
        let c = CertInfo::parse(der);
        let hexd = |s| {
            c.association_ref(s, MatchingType::Sha256)
                .map(hex::encode)
                .unwrap_or_default()
        };
        Leaf {
            cert_sha256: hexd(Selector::Cert),
            spki_sha256: hexd(Selector::Spki),
            not_after: c.not_after,
        }
    }
}

impl Snapshot {
    /// The snapshot of one audit; `evidence` is what the audit was made from.
    pub fn new(audit: &DomainAudit, evidence: &Evidence) -> Snapshot {
        Snapshot {
            domain: audit.domain.clone(),
            at: audit.evaluated_at,
            verdict: audit.verdict,
            reason: audit.reason.clone(),
            worst_severity: audit.worst_severity,
            mx_failed: evidence.mx.meta.outcome == Outcome::Failed,
            dns_complete: dns_complete(evidence),
            ns_checked: evidence.collector.nameserver_checks,
            findings: audit
                .findings
                .iter()
                .map(|f| FindingSnap {
                    code: f.code,
                    severity: f.severity,
                    subject: f.subject.clone(),
                    host: f.host.clone(),
                    address: f.address,
                    message: f.message.clone(),
                })
                .collect(),
            hosts: audit
                .hosts
                .iter()
                .map(|h| host_snap(h, evidence.hosts.iter().find(|e| e.name == h.name)))
                .collect(),
            rrsig_expires: rrsig_expires(evidence),
        }
    }

    pub fn host(&self, name: &str) -> Option<&HostSnap> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn has_code(&self, code: Code) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }
}

fn host_snap(h: &HostAudit, ev: Option<&HostEvidence>) -> HostSnap {
    let tlsa = ev.and_then(published_tlsa);
    let addresses = h
        .addresses
        .iter()
        .map(|a| AddressSnap {
            address: a.address,
            verdict: a.verdict,
            leaf: ev
                .and_then(|e| e.smtp.iter().find(|p| p.address == a.address))
                .and_then(|p| p.chain.first())
                .map(|der| Leaf::of(&der.0)),
        })
        .collect();
    HostSnap {
        name: h.name.clone(),
        verdict: h.verdict,
        dane: h.dane,
        tlsa,
        addresses,
        successor_covered: successor_covered(h),
    }
}

/// The host's TLSA records as published: the resolver's answer and every
/// record an authoritative server serves at the name. While servers are
/// out of sync a resolver answers from one or the other, so its answer
/// alone would look like a change at every switch; the union changes only
/// when the zone does (and `ns-out-of-sync` says that they differ).
/// `None` when the resolver's lookup failed or was not made.
fn published_tlsa(h: &HostEvidence) -> Option<Vec<String>> {
    let t = h.tlsa.as_ref()?;
    if t.meta.outcome == Outcome::Failed {
        return None;
    }
    let mut r: Vec<String> = t.records.iter().map(TlsaRdata::to_string).collect();
    let name = |q: &str| q.trim_end_matches('.').to_ascii_lowercase();
    for ns in &h.nameservers {
        let same = name(&ns.qname) == name(&t.meta.qname);
        if same && ns.tlsa.outcome == Outcome::Answer && !ns.tlsa.is_alias() {
            r.extend(ns.tlsa.tlsa_records().map(TlsaRdata::to_string));
        }
    }
    r.sort();
    r.dedup();
    Some(r)
}

/// Whether a published record would still authenticate the host after its
/// leaf key is replaced: a `2 x x` record that matched a CA certificate
/// the server sends (or whose key signed the chain), so a new leaf from
/// that CA passes; or a
/// usable `3 x x` record that matches nothing served, the usual way to
/// stage the next key (RFC 7671 §8.1). A `3 x x` record of the current key
/// covers a renewal only if the key is reused, which the watch cannot know.
pub fn successor_covered(h: &HostAudit) -> bool {
    // A CA certificate the server sends, or a CA key held in the record
    // that signed a certificate of the chain (RFC 7671 §5.2.2).
    let ta = h.addresses.iter().any(|a| {
        a.chain.iter().any(|c| {
            c.records.iter().any(|m| {
                usage_of(&m.record) == Some(Usage::DaneTa)
                    && ((m.matched && c.depth > 0) || m.signed)
            })
        })
    });
    let staged = h
        .records
        .iter()
        .any(|r| r.usable && r.tested && !r.matched && usage_of(&r.record) == Some(Usage::DaneEe));
    ta || staged
}

/// The usage of a record as reports show it (`2 1 1 a1d5…`, possibly shortened).
fn usage_of(record: &str) -> Option<Usage> {
    let u: u8 = record.split_whitespace().next()?.parse().ok()?;
    Some(Usage::from(u))
}

fn dns_complete(ev: &Evidence) -> bool {
    let ok = |o: Outcome| o != Outcome::Failed;
    ok(ev.mx.meta.outcome)
        && ev.hosts.iter().all(|h| {
            ok(h.a.meta.outcome)
                && ok(h.aaaa.meta.outcome)
                && h.tlsa.as_ref().is_none_or(|t| ok(t.meta.outcome))
        })
}

/// When the first RRset on the path has no valid signature left: per RRset
/// (owner, type, signer) its latest-expiring signature counts, and the
/// earliest of those is the answer.
pub fn rrsig_expires(ev: &Evidence) -> Option<Timestamp> {
    use std::collections::BTreeMap;
    let mut latest: BTreeMap<(&str, &str, &str), Timestamp> = BTreeMap::new();
    let mut groups: Vec<(&str, &[Rrsig])> = vec![(ev.mx.meta.qname.as_str(), &ev.mx.meta.rrsigs)];
    for h in &ev.hosts {
        groups.push((h.a.meta.qname.as_str(), &h.a.meta.rrsigs));
        groups.push((h.aaaa.meta.qname.as_str(), &h.aaaa.meta.rrsigs));
        if let Some(t) = &h.tlsa {
            groups.push((t.meta.qname.as_str(), &t.meta.rrsigs));
        }
    }
    for z in &ev.chain {
        groups.push((z.zone.as_str(), &z.rrsigs));
    }
    for (owner, sigs) in groups {
        for s in sigs {
            let e = latest
                .entry((owner, s.covered.as_str(), s.signer.as_str()))
                .or_insert(s.expiration);
            *e = (*e).max(s.expiration);
        }
    }
    latest.into_values().min()
}
