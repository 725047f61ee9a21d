//! `preflight`: may a new certificate be deployed now without breaking mail
//! from DANE senders? The rollover of RFC 7671 §8.1, checked step by step:
//! a TLSA record for the new certificate (NEW) is published, every
//! authoritative server serves it, senders' caches have had the TLSA TTL
//! (plus a margin) to drop the old RRset, and the certificate served today
//! still matches until the swap.
//!
//! Pure like the rest of the core: the evidence (MX hosts with their TLSA
//! RRset as the resolver validated it, each authoritative server's answer,
//! and the chains served now), NEW's chain, the clock and what earlier runs
//! remembered go in; a verdict per host (`safe`, `wait`, `unsafe`, or
//! `undetermined`) with its reasons, the records to publish and the
//! findings come out. Matching is `dane::match_record` (DANE-EE, and DANE-TA
//! with path validation and the RFC 7672 name check); record findings come
//! from `host::evaluate_host` and `rrset::evaluate`, exactly as `check`
//! computes them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::cert::CertInfo;
use super::dane::{RecordMatch, match_record};
use super::dnssec::DnssecStatus;
use super::evidence::{
    Evidence, FailureKind, HostEvidence, Lookup, LookupMeta, NsProbe, Outcome, Timestamp,
};
use super::finding::{Code, Finding, Severity};
use super::host::{HostContext, HostOutcome, evaluate_host};
use super::issuers;
use super::rrset::{self, Served};
use super::smtp::{SmtpResult, classify};
use super::tlsa::{MatchingType, Selector, TlsaRdata, Usability, Usage};
use super::verdict::Verdict as AddressVerdict;

/// Version of the `--state` file format.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// The answer for one host, and for the whole run (the worst host).
/// Ordered by how strongly it forbids the swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// NEW can be deployed now.
    Safe,
    /// Not yet: a server lags, or caches may still hold the old RRset.
    Wait,
    /// Something could not be determined (DNS failure, SMTP unreachable).
    Undetermined,
    /// Deploying NEW now would break delivery from DANE senders (or mail
    /// fails already for a reason the swap does not fix).
    Unsafe,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Wait => "wait",
            Verdict::Undetermined => "undetermined",
            Verdict::Unsafe => "unsafe",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of a candidate RRset (`--tlsa`, `--tlsa-file`), with the
/// owner name its zone-file line gave, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateRecord {
    pub owner: Option<String>,
    pub rdata: TlsaRdata,
}

impl CandidateRecord {
    /// Whether the line is meant for the TLSA name `_25._tcp.<base>`: no
    /// owner, the absolute name, or a relative name that is a prefix of it
    /// (relative to an `$ORIGIN` this file does not know).
    pub fn applies_to(&self, base: &str) -> bool {
        let Some(owner) = &self.owner else {
            return true;
        };
        let want = format!("_25._tcp.{}", base.trim_end_matches('.')).to_ascii_lowercase();
        let o = owner.to_ascii_lowercase();
        match o.strip_suffix('.') {
            Some(abs) => abs == want,
            None => o == want || want.starts_with(&format!("{o}.")),
        }
    }
}

/// What earlier runs saw (`--state FILE`): per host, when each TLSA record
/// was first seen on every authoritative server, and the largest TTL seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub schema_version: u32,
    #[serde(default)]
    pub hosts: BTreeMap<String, HostState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            schema_version: STATE_SCHEMA_VERSION,
            hosts: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The largest TLSA TTL seen: a cache may hold the old RRset that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_max: Option<u32>,
    /// Record (presentation form) -> first time every server served it.
    #[serde(default)]
    pub first_seen: BTreeMap<String, Timestamp>,
}

/// Everything one preflight decision needs.
pub struct Input<'a> {
    /// MX (for the domain-level state) and the hosts to judge, each with
    /// its nameserver probes and the SMTP probes of its addresses.
    pub evidence: &'a Evidence,
    /// The hosts were named with `--host` (the MX lookup is then context).
    pub explicit_hosts: bool,
    /// NEW first, then the CA certificates of its chain file.
    pub new_chain: &'a [CertInfo],
    /// A candidate RRset not yet in DNS (`--tlsa`, `--tlsa-file`).
    pub candidate: Option<&'a [CandidateRecord]>,
    /// The records to publish for NEW (`tlsa --recommend`: `3 1 1` for NEW
    /// and `2 1 1` for its issuer when the chain has one).
    pub recommended: &'a [TlsaRdata],
    pub now: Timestamp,
    pub margin_secs: u64,
    /// The operator asserts that NEW's record was on every server by then.
    pub published_before: Option<Timestamp>,
    pub accept_nexthop_name: bool,
    /// Whether the authoritative servers were asked directly.
    pub ns_checks: bool,
}

/// The new certificate, as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct NewCert {
    pub subject: String,
    pub issuer: String,
    pub names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// `3 1 1` association data of NEW.
    pub spki_sha256: String,
    /// Labels of the CA certificates in NEW's chain file, in order.
    pub chain: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub domain: String,
    pub verdict: Verdict,
    pub reason: String,
    pub evaluated_at: Timestamp,
    pub margin_secs: u64,
    /// When every waiting host becomes safe, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_at: Option<Timestamp>,
    /// `published` (the records in DNS) or `candidate` (`--tlsa`).
    pub mode: &'static str,
    pub new_certificate: NewCert,
    pub hosts: Vec<HostReport>,
    pub notes: Vec<String>,
}

/// One reason that keeps a host from `safe`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Reason {
    pub verdict: Verdict,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    pub host: String,
    pub tlsa_base: String,
    pub verdict: Verdict,
    pub reason: String,
    /// Every reason, worst first.
    pub reasons: Vec<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_at: Option<Timestamp>,
    /// The TLSA TTL (as the authoritative servers serve it, else as the
    /// resolver did, and never less than a TTL seen by an earlier run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// When a record for NEW was first seen on every server, and how that is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen_from: Option<&'static str>,
    pub records: Vec<RecordReport>,
    pub servers: Vec<ServerReport>,
    pub live: Vec<LiveReport>,
    /// Zone-file lines to publish (missing records for NEW, or the
    /// candidate's records not yet served).
    pub publish: Vec<String>,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordReport {
    pub record: String,
    pub usable: bool,
    /// Authenticates NEW (DANE-EE match, or DANE-TA with a valid path and name).
    pub new: bool,
    /// Authenticates a chain served now.
    pub live: bool,
    /// In the RRset the resolver validated (published mode).
    pub resolver: bool,
    /// How many of the answering server addresses serve it.
    pub servers: usize,
    /// Part of the candidate RRset.
    pub candidate: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerReport {
    pub server: String,
    pub address: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    /// `answer`, `nodata`, `nxdomain`, `failed` or `alias`.
    pub answer: &'static str,
    pub records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// Whether its RRset authenticates NEW (`None`: no answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveReport {
    pub address: IpAddr,
    /// `authenticated`, `not-authenticated`, `failed`, `untested`,
    /// `not-probed` or `not-dane`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<String>,
    /// The address serves NEW's key already.
    pub serving_new: bool,
}

/// The address under which NEW is matched by `rrset::evaluate` (no MX
/// address can be the unspecified address).
const NEW_AT: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Reasons gathered for one host; the worst decides.
#[derive(Default)]
struct Gate {
    items: Vec<Reason>,
}

impl Gate {
    fn add(&mut self, verdict: Verdict, text: impl Into<String>) {
        self.items.push(Reason {
            verdict,
            text: text.into(),
        });
    }

    fn worst(&self) -> Verdict {
        self.items
            .iter()
            .map(|r| r.verdict)
            .max()
            .unwrap_or(Verdict::Safe)
    }

    fn sorted(mut self) -> Vec<Reason> {
        // Stable: within a verdict, the order of discovery.
        self.items.sort_by_key(|r| std::cmp::Reverse(r.verdict));
        self.items
    }
}

/// Decides for every host of the evidence; returns the report and the
/// state to remember.
pub fn evaluate(input: &Input<'_>, state: &State) -> (Report, State) {
    let ev = input.evidence;
    let mut next = state.clone();
    next.schema_version = STATE_SCHEMA_VERSION;
    let mut notes = Vec::new();
    let mut domain_gate = Gate::default();
    mx_state(input, &mut domain_gate, &mut notes);
    let hosts: Vec<HostReport> = ev
        .hosts
        .iter()
        .map(|h| {
            let prev = state.hosts.get(&h.name).cloned().unwrap_or_default();
            let (report, remembered) = evaluate_host_preflight(input, h, &prev);
            match remembered {
                Some(s) => {
                    next.hosts.insert(h.name.clone(), s);
                }
                None => {
                    // Nothing observable (DNS failed): keep what was known.
                }
            }
            report
        })
        .collect();
    if hosts.is_empty() {
        domain_gate.add(
            Verdict::Undetermined,
            format!("{} has no mail host to check", ev.domain),
        );
    }
    let worst_host = hosts.iter().map(|h| h.verdict).max();
    let domain_worst = domain_gate.worst();
    let verdict = worst_host.unwrap_or(Verdict::Safe).max(domain_worst);
    let reason = if domain_worst == verdict && domain_worst != Verdict::Safe {
        domain_gate
            .sorted()
            .first()
            .map(|r| r.text.clone())
            .unwrap_or_default()
    } else if verdict == Verdict::Safe {
        if hosts.len() == 1 {
            format!("{}: {}", hosts[0].host, hosts[0].reason)
        } else {
            format!("all {} MX hosts are safe", hosts.len())
        }
    } else {
        hosts
            .iter()
            .find(|h| h.verdict == verdict)
            .map(|h| format!("{}: {}", h.host, h.reason))
            .unwrap_or_default()
    };
    let safe_at = (verdict == Verdict::Wait)
        .then(|| {
            let waiting: Vec<&HostReport> = hosts
                .iter()
                .filter(|h| h.verdict == Verdict::Wait)
                .collect();
            if waiting.iter().all(|h| h.safe_at.is_some()) {
                waiting.iter().filter_map(|h| h.safe_at).max()
            } else {
                None
            }
        })
        .flatten();
    let report = Report {
        domain: ev.domain.clone(),
        verdict,
        reason,
        evaluated_at: input.now,
        margin_secs: input.margin_secs,
        safe_at,
        mode: if input.candidate.is_some() {
            "candidate"
        } else {
            "published"
        },
        new_certificate: new_cert(input.new_chain),
        hosts,
        notes,
    };
    (report, next)
}

fn mx_state(input: &Input<'_>, gate: &mut Gate, notes: &mut Vec<String>) {
    let ev = input.evidence;
    let m = &ev.mx.meta;
    let d = &ev.domain;
    let (verdict, text) = if m.outcome == Outcome::Failed || m.dnssec == DnssecStatus::Indeterminate
    {
        (
            Verdict::Undetermined,
            format!("the MX lookup for {d} failed, so its mail hosts are unknown"),
        )
    } else if m.dnssec == DnssecStatus::Bogus {
        (
            Verdict::Unsafe,
            format!(
                "the MX records of {d} fail DNSSEC validation: DANE senders cannot deliver to {d} now; fix DNSSEC first"
            ),
        )
    } else if m.dnssec == DnssecStatus::Insecure {
        notes.push(format!(
            "the MX records of {d} are not DNSSEC-signed, so senders do not use DANE for {d}; hosts with secure TLSA are still checked (senders reach them through other domains)"
        ));
        return;
    } else {
        return;
    };
    if input.explicit_hosts {
        notes.push(text);
    } else {
        gate.add(verdict, text);
    }
}

fn new_cert(chain: &[CertInfo]) -> NewCert {
    let leaf = &chain[0];
    NewCert {
        subject: leaf.subject.clone(),
        issuer: leaf.issuer.clone(),
        names: super::identity::presented_names(leaf).to_vec(),
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        spki_sha256: leaf
            .association(Selector::Spki, MatchingType::Sha256)
            .map(hex::encode)
            .unwrap_or_default(),
        chain: chain[1..].iter().map(|c| c.label()).collect(),
    }
}

/// The names a DANE-TA leaf may carry for this host (as `check` uses them,
/// host.rs): the TLSA base domain, the MX name when it differs, and the
/// next-hop domain by local policy.
fn reference_ids(input: &Input<'_>, h: &HostEvidence) -> Vec<String> {
    let mut ids = vec![h.tlsa_base.clone()];
    if h.name != h.tlsa_base {
        ids.push(h.name.clone());
    }
    let d = &input.evidence.domain;
    if input.accept_nexthop_name && !ids.iter().any(|i| i == d) {
        ids.push(d.clone());
    }
    ids
}

fn authenticates(r: &TlsaRdata, chain: &[CertInfo], refs: &[String], now: Timestamp) -> bool {
    matches!(
        match_record(r, chain, refs, now),
        RecordMatch::Authenticated { .. }
    )
}

/// What one authoritative server address serves at the TLSA name.
struct Server<'a> {
    probe: &'a NsProbe,
    /// `None`: no answer; `Some`: its RRset (empty for a denial).
    records: Option<Vec<TlsaRdata>>,
    /// The name is an alias at this server (its records live elsewhere).
    alias: bool,
}

fn servers(probes: &[NsProbe]) -> Vec<Server<'_>> {
    probes
        .iter()
        .map(|p| {
            let alias = p.tlsa.records.iter().any(|r| r.starts_with("CNAME"));
            let records = (p.tlsa.outcome != Outcome::Failed).then(|| {
                p.tlsa
                    .records
                    .iter()
                    .filter_map(|r| r.parse::<TlsaRdata>().ok())
                    .collect()
            });
            Server {
                probe: p,
                records,
                alias,
            }
        })
        .collect()
}

fn server_label(p: &NsProbe) -> String {
    format!("{} [{}]", p.server.trim_end_matches('.'), p.address)
}

fn zone_line(base: &str, r: &TlsaRdata) -> String {
    format!("_25._tcp.{}. IN TLSA {r}", base.trim_end_matches('.'))
}

fn secure_family(l: &Lookup<IpAddr>) -> bool {
    l.meta.outcome == Outcome::Answer && l.meta.dnssec == DnssecStatus::Secure
}

/// The published RRset as the resolver validated it, when secure.
fn resolver_records(h: &HostEvidence) -> Option<&[TlsaRdata]> {
    let t = h.tlsa.as_ref()?;
    (t.meta.outcome == Outcome::Answer && t.meta.dnssec == DnssecStatus::Secure)
        .then_some(t.records.as_slice())
}

/// `check`'s view of one host with `rrset` as its TLSA RRset.
fn check_view(input: &Input<'_>, h: &HostEvidence) -> HostOutcome {
    let cx = HostContext {
        domain: &input.evidence.domain,
        // Judge the host as a DANE host even under an unsigned MX: senders
        // reach it through other domains too (the MX state is a note).
        mx_secure: true,
        others_have_tlsa: false,
        now: input.now,
        accept_nexthop_name: input.accept_nexthop_name,
    };
    evaluate_host(&cx, h)
}

/// `h` with a secure TLSA answer holding `records` (the candidate as if published).
fn with_records(h: &HostEvidence, records: &[TlsaRdata]) -> HostEvidence {
    let mut h = h.clone();
    let qname = format!("_25._tcp.{}", h.tlsa_base);
    let ttl = h.tlsa.as_ref().and_then(|t| t.meta.ttl);
    h.tlsa = Some(Lookup {
        meta: LookupMeta {
            qname,
            outcome: Outcome::Answer,
            failure: None,
            dnssec: DnssecStatus::Secure,
            ttl,
            rrsigs: Vec::new(),
            cnames: Vec::new(),
            witness: None,
        },
        records: records.to_vec(),
    });
    h
}

/// Everything known about one host, shared by both modes.
struct Ctx<'a> {
    input: &'a Input<'a>,
    h: &'a HostEvidence,
    refs: Vec<String>,
    new: &'a [CertInfo],
    /// Chains that completed TLS now, per address.
    live: Vec<(IpAddr, Vec<CertInfo>)>,
}

impl Ctx<'_> {
    fn new_ok(&self, r: &TlsaRdata) -> bool {
        authenticates(r, self.new, &self.refs, self.input.now)
    }

    fn set_new_ok(&self, set: &[TlsaRdata]) -> bool {
        set.iter().any(|r| self.new_ok(r))
    }

    fn live_ok(&self, r: &TlsaRdata) -> bool {
        self.live
            .iter()
            .any(|(_, c)| authenticates(r, c, &self.refs, self.input.now))
    }

    fn live_data_match(&self, r: &TlsaRdata) -> bool {
        self.live
            .iter()
            .any(|(_, c)| !super::dane::data_matches(r, c).is_empty())
    }

    fn rr_cx(&self) -> rrset::Context<'_> {
        rrset::Context {
            host: &self.h.name,
            reference_ids: &self.refs,
            now: self.input.now,
        }
    }

    fn new_spki(&self) -> Option<&[u8]> {
        self.new[0].spki.as_deref()
    }
}

fn live_chains(h: &HostEvidence) -> Vec<(IpAddr, Vec<CertInfo>)> {
    h.smtp
        .iter()
        .filter(|p| super::smtp::completed_tls(p))
        .map(|p| {
            (
                p.address,
                p.chain.iter().map(|d| CertInfo::parse(&d.0)).collect(),
            )
        })
        .collect()
}

/// How `rrset` treats NEW: the findings that explain why it is not
/// authenticated and the warnings about records that will carry it.
fn new_findings(cx: &Ctx<'_>, rrset: &[TlsaRdata], new_authenticated: bool) -> Vec<Finding> {
    let host = cx.h.name.as_str();
    let served = [Served {
        address: NEW_AT,
        chain: cx.new,
    }];
    let res = rrset::evaluate(&cx.rr_cx(), rrset, &served);
    let mut out = Vec::new();
    for mut f in res.findings {
        match f.code {
            // Said by preflight in its own words (or about the old key).
            Code::TlsaStale | Code::TlsaNoMatch | Code::TlsaNoBackup | Code::DaneTaNotInChain => {
                continue;
            }
            _ => {}
        }
        if f.address == Some(NEW_AT) {
            f.address = None;
            f.subject = format!("{host} (new certificate)");
            f.message = format!("new certificate: {}", f.message);
        }
        out.push(f);
    }
    // A DANE-TA record whose CA is not in NEW's chain file: the server,
    // configured with that chain, would not send it.
    for r in rrset {
        let usable = matches!(r.usability(), Usability::Usable(u) if u.usage == Usage::DaneTa);
        if !usable || cx.new_ok(r) || super::dane::data_matches(r, cx.new).iter().any(|d| *d > 0) {
            continue;
        }
        if super::diagnosis::diagnose(r, cx.new).is_some() {
            continue;
        }
        let live_ca = cx.live.iter().find_map(|(_, chain)| {
            super::dane::data_matches(r, chain)
                .into_iter()
                .find(|d| *d > 0)
                .map(|d| chain[d].label())
        });
        let what = match (issuers::identify(r), live_ca) {
            (Some(ca), _) if ca.is_root => format!("the root CA \"{}\"", ca.name),
            (Some(ca), _) => format!("the CA \"{}\"", ca.name),
            (None, Some(label)) => format!("the CA \"{label}\" (sent by the server today)"),
            (None, None) => "a CA".to_string(),
        };
        let chain = if cx.new.len() > 1 {
            format!(
                "its chain file holds {}",
                cx.new[1..]
                    .iter()
                    .map(|c| format!("\"{}\"", c.label()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            "its chain file holds no CA certificate".to_string()
        };
        let f = Finding::new(Code::DaneTaNotInChain, format!("_25._tcp.{host} TLSA {}", r.short()))
            .msg(format!(
                "`{}` pins {what}, which is not in the new certificate's chain ({chain}): a server configured with that chain does not send it, so the record cannot authenticate the new certificate",
                r.short()
            ))
            .fix(
                "Put the issuing CA certificate after the new certificate in its chain file (give it with --chain), so that the server sends it; or publish a `3 1 1` record for the new key.",
            )
            .at_host(host);
        out.push(if new_authenticated { f.secondary() } else { f });
    }
    // After the swap and the removal of the old records (step 6): is there
    // still more than one way to authenticate?
    let after: Vec<TlsaRdata> = rrset
        .iter()
        .filter(|r| cx.new_ok(r) || !(cx.live_data_match(r) || cx.live_ok(r)))
        .cloned()
        .collect();
    if new_authenticated {
        let res = rrset::evaluate(&cx.rr_cx(), &after, &served);
        for mut f in res.findings {
            if f.code == Code::TlsaNoBackup {
                f.message = format!(
                    "after the swap and the removal of the old records: {}",
                    f.message
                );
                out.push(f);
            }
        }
    }
    out
}

/// Why NEW is not authenticated, in one clause, from the findings.
fn why_not(findings: &[Finding]) -> Option<String> {
    findings
        .iter()
        .filter(|f| f.severity >= Severity::Error)
        .find(|f| {
            matches!(
                f.code,
                Code::DaneTaNameMismatch
                    | Code::DaneTaChainInvalid
                    | Code::DaneTaExpired
                    | Code::DaneTaNotInChain
                    | Code::TlsaWrongSelector
                    | Code::TlsaWrongEncoding
                    | Code::TlsaWrongUsage
            )
        })
        .map(|f| {
            f.message
                .trim_start_matches("new certificate: ")
                .to_string()
        })
}

/// The records for NEW that `rrset` lacks, as zone-file lines.
fn missing_lines(cx: &Ctx<'_>, rrset: &[TlsaRdata]) -> Vec<String> {
    cx.input
        .recommended
        .iter()
        .filter(|r| !rrset.contains(r))
        .map(|r| zone_line(&cx.h.tlsa_base, r))
        .collect()
}

/// The live check: does `view` (the RRset under test against the chains
/// served now) authenticate every address? `candidate` words the reasons
/// for an RRset that is not published yet.
fn live_check(
    cx: &Ctx<'_>,
    view: &HostOutcome,
    candidate: bool,
    new_authenticated: bool,
    gate: &mut Gate,
    notes: &mut Vec<String>,
) -> Vec<LiveReport> {
    let mut out = Vec::new();
    for a in &view.audit.addresses {
        let probe = cx.h.smtp.iter().find(|p| p.address == a.address);
        let leaf = probe
            .and_then(|p| p.chain.first())
            .map(|d| CertInfo::parse(&d.0));
        let serving_new = leaf
            .as_ref()
            .and_then(|l| l.spki.as_deref())
            .is_some_and(|s| Some(s) == cx.new_spki());
        let label = leaf.as_ref().map(|l| l.label());
        let (status, detail) = match probe.map(classify) {
            None => ("not-probed", Some("not probed".to_string())),
            Some(SmtpResult::NotProbed(why)) => ("not-probed", Some(why)),
            Some(SmtpResult::Untested { message, .. }) => {
                gate.add(
                    Verdict::Undetermined,
                    format!(
                        "{} could not be tested ({message}): the certificate served there is unknown",
                        a.address
                    ),
                );
                ("untested", Some(message))
            }
            Some(SmtpResult::Failed { message, .. }) => {
                gate.add(
                    Verdict::Unsafe,
                    format!(
                        "{} fails now ({message}): DANE senders cannot deliver there already; fix that first",
                        a.address
                    ),
                );
                ("failed", Some(message))
            }
            Some(SmtpResult::Tls) if a.verdict == AddressVerdict::NotDane => ("not-dane", None),
            Some(SmtpResult::Tls) if !a.authenticated_by.is_empty() => ("authenticated", None),
            Some(SmtpResult::Tls) => {
                let leaf = label.clone().unwrap_or_else(|| "none".into());
                if serving_new {
                    // The address serves NEW already: NEW's own verdict covers it.
                } else if candidate {
                    gate.add(
                        Verdict::Unsafe,
                        format!(
                            "once published, the candidate RRset would not authenticate the certificate served now at {} (\"{leaf}\"): publishing it before the swap breaks delivery there; keep a record for the current key until the swap",
                            a.address
                        ),
                    );
                } else if new_authenticated {
                    notes.push(format!(
                        "the certificate served now at {} (\"{leaf}\") is not authenticated by the published records: DANE senders fail there already, and deploying the new certificate fixes it",
                        a.address
                    ));
                } else {
                    gate.add(
                        Verdict::Unsafe,
                        format!(
                            "the certificate served now at {} (\"{leaf}\") is not authenticated by the published records: DANE senders fail there already",
                            a.address
                        ),
                    );
                }
                ("not-authenticated", None)
            }
        };
        out.push(LiveReport {
            address: a.address,
            status,
            detail,
            leaf: label,
            serving_new,
        });
    }
    out
}

/// Host-level DNS states that settle the verdict before any matching.
/// Returns `Some(verdict)` when the host is finished.
fn dns_state(
    cx: &Ctx<'_>,
    view: &HostOutcome,
    candidate: bool,
    gate: &mut Gate,
) -> Option<Verdict> {
    let h = cx.h;
    for f in &view.findings {
        match f.code {
            Code::HostLookupFailed => gate.add(Verdict::Undetermined, f.message.clone()),
            Code::TlsaLookupFailed if !candidate => {
                gate.add(Verdict::Undetermined, f.message.clone())
            }
            Code::HostAddressBogus | Code::HostDenialBogus => gate.add(
                Verdict::Unsafe,
                format!(
                    "{}: DANE senders cannot deliver to {} now; fix DNSSEC first",
                    f.message, h.name
                ),
            ),
            Code::TlsaBogus | Code::TlsaDenialBogus if !candidate => gate.add(
                Verdict::Unsafe,
                format!(
                    "{}: DANE senders defer mail to {} now; fix DNSSEC first",
                    f.message, h.name
                ),
            ),
            _ => {}
        }
    }
    if gate.worst() != Verdict::Safe {
        return Some(gate.worst());
    }
    if !secure_family(&h.a) && !secure_family(&h.aaaa) {
        gate.add(
            Verdict::Safe,
            format!(
                "the addresses of {} are not DNSSEC-signed: senders do not use DANE for it, so the swap cannot break DANE delivery",
                h.name
            ),
        );
        return Some(Verdict::Safe);
    }
    None
}

/// Judges one host. Returns its report and the state to remember for it
/// (`None`: nothing could be observed, keep the old state).
fn evaluate_host_preflight(
    input: &Input<'_>,
    h: &HostEvidence,
    prev: &HostState,
) -> (HostReport, Option<HostState>) {
    let cx = Ctx {
        input,
        h,
        refs: reference_ids(input, h),
        new: input.new_chain,
        live: live_chains(h),
    };
    let published = published(&cx, prev);
    let Some(candidate) = input.candidate else {
        return (published.report, published.state);
    };
    let mut c = candidate_report(&cx, candidate, &published.report);
    // The published state's timing still decides once the candidate is good.
    c.servers = published.report.servers;
    c.ttl = published.report.ttl;
    (c, published.state)
}

struct Published {
    report: HostReport,
    state: Option<HostState>,
}

fn empty_report(h: &HostEvidence) -> HostReport {
    HostReport {
        host: h.name.clone(),
        tlsa_base: h.tlsa_base.clone(),
        verdict: Verdict::Safe,
        reason: String::new(),
        reasons: Vec::new(),
        safe_at: None,
        ttl: None,
        first_seen: None,
        first_seen_from: None,
        records: Vec::new(),
        servers: Vec::new(),
        live: Vec::new(),
        publish: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
    }
}

fn finish(mut r: HostReport, gate: Gate) -> HostReport {
    let reasons = gate.sorted();
    r.verdict = reasons.first().map(|x| x.verdict).unwrap_or(Verdict::Safe);
    r.reason = reasons.first().map(|x| x.text.clone()).unwrap_or_default();
    r.reasons = reasons;
    if r.verdict != Verdict::Wait {
        r.safe_at = None;
    }
    r.findings = dedupe(std::mem::take(&mut r.findings));
    r
}

fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    // A record with a precise diagnosis needs no vaguer "stale" beside it.
    let diagnosed: BTreeSet<String> = findings
        .iter()
        .filter(|f| f.code != Code::TlsaStale && f.subject.contains(" TLSA "))
        .map(|f| f.subject.clone())
        .collect();
    super::evaluate::dedupe_and_sort(
        findings
            .into_iter()
            .filter(|f| !(f.code == Code::TlsaStale && diagnosed.contains(&f.subject)))
            .collect(),
    )
}

/// `check`'s findings for the RRset under test, minus what preflight
/// says better: the next key's record is not stale, and `tlsa-no-backup`
/// is judged on the RRset that remains after the rollover.
fn check_findings(cx: &Ctx<'_>, view: &HostOutcome, rrset: &[TlsaRdata]) -> Vec<Finding> {
    let next_key: BTreeSet<String> = rrset
        .iter()
        .filter(|r| cx.new_ok(r))
        .map(|r| format!("_25._tcp.{} TLSA {}", cx.h.name, r.short()))
        .collect();
    view.findings
        .iter()
        .filter(|f| !(f.code == Code::TlsaStale && next_key.contains(&f.subject)))
        .filter(|f| f.code != Code::TlsaNoBackup)
        .cloned()
        .collect()
}

/// The decision on the records in DNS.
fn published(cx: &Ctx<'_>, prev: &HostState) -> Published {
    let input = cx.input;
    let h = cx.h;
    let now = input.now;
    let mut r = empty_report(h);
    let mut gate = Gate::default();
    let view = check_view(input, h);
    if dns_state(cx, &view, false, &mut gate).is_some() {
        r.findings = view.findings.clone();
        return Published {
            report: finish(r, gate),
            state: None,
        };
    }
    let resolver: Vec<TlsaRdata> = resolver_records(h).map(<[_]>::to_vec).unwrap_or_default();
    let tlsa_meta = h.tlsa.as_ref().map(|t| &t.meta);
    if tlsa_meta.is_some_and(|m| m.dnssec == DnssecStatus::Insecure && m.outcome == Outcome::Answer)
    {
        gate.add(
            Verdict::Safe,
            format!(
                "the TLSA records of {} are not DNSSEC-signed: senders ignore them, so the swap cannot break DANE delivery",
                h.name
            ),
        );
        r.findings = view.findings.clone();
        return Published {
            report: finish(r, gate),
            state: None,
        };
    }
    let alias = tlsa_meta.is_some_and(|m| !m.cnames.is_empty());
    let srv = if alias {
        r.notes.push(format!(
            "_25._tcp.{} is an alias: the servers of its target zone are not asked one by one",
            h.tlsa_base
        ));
        Vec::new()
    } else {
        servers(&h.nameservers)
    };
    if input.ns_checks && !alias && srv.is_empty() && !resolver.is_empty() {
        gate.add(
            Verdict::Undetermined,
            format!(
                "the authoritative servers of _25._tcp.{} could not be found: cannot confirm that each serves the new record",
                h.tlsa_base
            ),
        );
    }
    if !input.ns_checks {
        r.notes.push(
            "the authoritative servers were not asked one by one (--no-ns-checks): only the resolver's view is checked".into(),
        );
    }
    // Every record anywhere: the resolver's first, then the servers'.
    let mut union: Vec<TlsaRdata> = resolver.clone();
    for s in &srv {
        for rec in s.records.iter().flatten() {
            if !union.contains(rec) {
                union.push(rec.clone());
            }
        }
    }
    let answering: Vec<&Server<'_>> = srv
        .iter()
        .filter(|s| s.records.is_some() && !s.alias)
        .collect();
    let dead: Vec<&Server<'_>> = srv.iter().filter(|s| s.records.is_none()).collect();
    r.servers = srv
        .iter()
        .map(|s| ServerReport {
            server: s.probe.server.trim_end_matches('.').to_string(),
            address: s.probe.address,
            serial: s.probe.soa_serial,
            answer: if s.alias {
                "alias"
            } else {
                match s.probe.tlsa.outcome {
                    Outcome::Answer => "answer",
                    Outcome::NoData => "nodata",
                    Outcome::NxDomain => "nxdomain",
                    Outcome::Failed => "failed",
                }
            },
            records: s.records.as_ref().map(Vec::len).unwrap_or(0),
            ttl: s.probe.tlsa.ttl,
            new: (!s.alias)
                .then(|| s.records.as_ref().map(|set| cx.set_new_ok(set)))
                .flatten(),
        })
        .collect();
    r.records = union
        .iter()
        .map(|rec| RecordReport {
            record: rec.to_string(),
            usable: matches!(rec.usability(), Usability::Usable(_)),
            new: cx.new_ok(rec),
            live: cx.live_ok(rec),
            resolver: resolver.contains(rec),
            servers: answering
                .iter()
                .filter(|s| s.records.as_ref().is_some_and(|set| set.contains(rec)))
                .count(),
            candidate: false,
        })
        .collect();
    if union.is_empty() {
        gate.add(
            Verdict::Safe,
            format!(
                "{} has no TLSA records: DANE senders do not authenticate it, so the swap cannot break DANE delivery",
                h.name
            ),
        );
        r.notes.push(format!(
            "to protect {} with DANE, publish (then wait for the TTL before relying on it):\n{}",
            h.name,
            missing_lines(cx, &[]).join("\n")
        ));
        r.findings = view.findings.clone();
        return Published {
            report: finish(r, gate),
            state: Some(HostState::default()),
        };
    }
    let new_by_resolver = cx.set_new_ok(&resolver);
    let having: Vec<&&Server<'_>> = answering
        .iter()
        .filter(|s| s.records.as_ref().is_some_and(|set| cx.set_new_ok(set)))
        .collect();
    let lacking: Vec<&&Server<'_>> = answering
        .iter()
        .filter(|s| !s.records.as_ref().is_some_and(|set| cx.set_new_ok(set)))
        .collect();
    let new_anywhere = new_by_resolver || !having.is_empty();
    let mut findings = check_findings(cx, &view, &resolver);
    findings.extend(super::nameserver::findings(&h.name, &h.nameservers));
    findings.extend(new_findings(cx, &union, new_anywhere));
    let ttl = ttl_of(h, prev);
    r.ttl = ttl;
    if !new_anywhere {
        let why = why_not(&findings)
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        r.publish = missing_lines(cx, &union);
        let todo = if why.is_empty() && !r.publish.is_empty() {
            ": publish the records listed below, then wait for the TTL plus the margin"
        } else {
            ""
        };
        gate.add(
            Verdict::Unsafe,
            format!("no published TLSA record authenticates the new certificate{why}{todo}"),
        );
    } else if !lacking.is_empty() {
        let who: Vec<String> = lacking
            .iter()
            .map(|s| {
                format!(
                    "{}{}",
                    server_label(s.probe),
                    s.probe
                        .soa_serial
                        .map(|x| format!(" (serial {x})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let where_ = if having.is_empty() {
            "the resolver has it, but".to_string()
        } else {
            format!(
                "{} serve{} it, but",
                having
                    .iter()
                    .map(|s| server_label(s.probe))
                    .collect::<Vec<_>>()
                    .join(", "),
                if having.len() == 1 { "s" } else { "" }
            )
        };
        if having.is_empty() {
            gate.add(
                Verdict::Unsafe,
                format!(
                    "{where_} no authoritative server serves a record for the new certificate any more: {}",
                    who.join(", ")
                ),
            );
            r.publish = missing_lines(cx, &union);
        } else {
            gate.add(
                Verdict::Wait,
                format!(
                    "not yet on every server: {where_} {} do{} not serve a record for the new certificate yet; the TTL counts from when the last server serves it",
                    who.join(", "),
                    if who.len() == 1 { "es" } else { "" }
                ),
            );
        }
    }
    r.live = live_check(cx, &view, false, new_anywhere, &mut gate, &mut r.notes);
    if new_anywhere && !dead.is_empty() {
        let what: Vec<String> = dead
            .iter()
            .map(|s| {
                let why = s
                    .probe
                    .tlsa
                    .failure
                    .as_ref()
                    .map(|f| match f.kind {
                        FailureKind::Timeout | FailureKind::Network => "no answer".to_string(),
                        k => k.as_str().to_string(),
                    })
                    .unwrap_or_else(|| "no answer".into());
                format!("{} ({why})", server_label(s.probe))
            })
            .collect();
        gate.add(
            Verdict::Undetermined,
            format!(
                "the TLSA query failed at {}: cannot confirm that every server serves the new record (--no-ns-checks relies on the resolver alone)",
                what.join(", ")
            ),
        );
    }
    // Timing: only when what every server serves is known.
    let state = if dead.is_empty() {
        let on_all: Vec<&TlsaRdata> = union
            .iter()
            .filter(|rec| {
                if answering.is_empty() {
                    resolver.contains(rec)
                } else {
                    answering
                        .iter()
                        .all(|s| s.records.as_ref().is_some_and(|set| set.contains(rec)))
                }
            })
            .collect();
        let mut next = HostState {
            ttl_max: ttl,
            first_seen: BTreeMap::new(),
        };
        let mut first: Option<(Timestamp, &'static str)> = None;
        for rec in &on_all {
            let key = rec.to_string();
            let mut seen = prev
                .first_seen
                .get(&key)
                .map(|t| (*t, "state"))
                .unwrap_or((now, "this run"));
            if cx.new_ok(rec)
                && let Some(pb) = input.published_before
                && pb <= seen.0
            {
                seen = (pb, "--published-before");
            }
            if seen.0 > now {
                seen = (now, "this run");
            }
            next.first_seen.insert(key, seen.0);
            if cx.new_ok(rec) && first.is_none_or(|f| seen.0 < f.0) {
                first = Some(seen);
            }
        }
        if lacking.is_empty() && new_anywhere {
            match first {
                Some((t, from)) => {
                    r.first_seen = Some(t);
                    r.first_seen_from = Some(from);
                    let wait = i64::from(ttl.unwrap_or(0)) + input.margin_secs as i64;
                    let at = Timestamp(t.0 + wait);
                    r.safe_at = Some(at);
                    if now < at {
                        gate.add(
                            Verdict::Wait,
                            format!(
                                "every server serves a record for the new certificate, first seen there {} ({}); resolvers may keep the old RRset for the TTL ({} s) plus the margin ({} s): safe from {at}",
                                t,
                                match from {
                                    "state" => "remembered in the state file",
                                    "--published-before" => "as --published-before asserts",
                                    _ => "in this run; --state or --published-before tell an earlier time",
                                },
                                ttl.unwrap_or(0),
                                input.margin_secs
                            ),
                        );
                    } else if !new_by_resolver {
                        gate.add(
                            Verdict::Wait,
                            "every server serves a record for the new certificate, but the resolver still returns an RRset without it",
                        );
                    }
                }
                None => {
                    // Every server authenticates NEW, but through different
                    // records: no single record's age is known.
                    r.first_seen = Some(now);
                    r.first_seen_from = Some("this run");
                    let at =
                        Timestamp(now.0 + i64::from(ttl.unwrap_or(0)) + input.margin_secs as i64);
                    r.safe_at = Some(at);
                    gate.add(
                        Verdict::Wait,
                        format!(
                            "every server authenticates the new certificate, but through different records: safe from {at} at the earliest"
                        ),
                    );
                }
            }
        }
        Some(next)
    } else {
        None
    };
    if gate.worst() == Verdict::Safe {
        gate.add(
            Verdict::Safe,
            format!(
                "the published TLSA records authenticate the new certificate on every server, for longer than the TTL plus the margin, and the current certificate still matches{}",
                r.first_seen
                    .map(|t| format!(" (first seen on every server {t})"))
                    .unwrap_or_default()
            ),
        );
    }
    r.findings = findings;
    Published {
        report: finish(r, gate),
        state,
    }
}

/// The TTL to wait: the servers' (original) TTL, else the resolver's, and
/// never less than one an earlier run saw.
fn ttl_of(h: &HostEvidence, prev: &HostState) -> Option<u32> {
    let servers = h.nameservers.iter().filter_map(|p| p.tlsa.ttl).max();
    let resolver = h.tlsa.as_ref().and_then(|t| t.meta.ttl);
    [servers.or(resolver), prev.ttl_max]
        .into_iter()
        .flatten()
        .max()
}

/// The decision on a candidate RRset (`--tlsa`): would it, once published,
/// authenticate NEW and every chain served now? If so, the published
/// state's timing decides (`wait` until it is published and aged).
fn candidate_report(
    cx: &Ctx<'_>,
    candidate: &[CandidateRecord],
    published: &HostReport,
) -> HostReport {
    let h = cx.h;
    let mut r = empty_report(h);
    let mut gate = Gate::default();
    let rrset: Vec<TlsaRdata> = {
        let mut v: Vec<TlsaRdata> = Vec::new();
        for c in candidate.iter().filter(|c| c.applies_to(&h.tlsa_base)) {
            if !v.contains(&c.rdata) {
                v.push(c.rdata.clone());
            }
        }
        v
    };
    let base_view = check_view(cx.input, h);
    if dns_state(cx, &base_view, true, &mut gate).is_some() {
        r.findings = base_view.findings;
        return finish(r, gate);
    }
    if rrset.is_empty() {
        gate.add(
            Verdict::Unsafe,
            format!(
                "the candidate RRset has no record for _25._tcp.{}",
                h.tlsa_base
            ),
        );
        r.publish = missing_lines(cx, &[]);
        return finish(r, gate);
    }
    let synthetic = with_records(h, &rrset);
    let view = check_view(cx.input, &synthetic);
    let new_ok = cx.set_new_ok(&rrset);
    let mut findings = check_findings(cx, &view, &rrset);
    findings.extend(new_findings(cx, &rrset, new_ok));
    r.live = live_check(cx, &view, true, new_ok, &mut gate, &mut r.notes);
    let served_now: BTreeSet<&str> = published
        .records
        .iter()
        .filter(|x| x.servers > 0 || x.resolver)
        .map(|x| x.record.as_str())
        .collect();
    r.records = rrset
        .iter()
        .map(|rec| {
            let shown = rec.to_string();
            let p = published.records.iter().find(|x| x.record == shown);
            RecordReport {
                record: shown,
                usable: matches!(rec.usability(), Usability::Usable(_)),
                new: cx.new_ok(rec),
                live: cx.live_ok(rec),
                resolver: p.is_some_and(|x| x.resolver),
                servers: p.map(|x| x.servers).unwrap_or(0),
                candidate: true,
            }
        })
        .collect();
    if !new_ok {
        let why = why_not(&findings)
            .map(|w| format!(": {w}"))
            .unwrap_or_default();
        gate.add(
            Verdict::Unsafe,
            format!("the candidate RRset does not authenticate the new certificate{why}"),
        );
        r.publish = missing_lines(cx, &rrset);
    }
    if gate.worst() == Verdict::Safe {
        // The candidate is good: the published records decide when.
        let not_served: Vec<String> = rrset
            .iter()
            .filter(|rec| !served_now.contains(rec.to_string().as_str()))
            .map(|rec| zone_line(&h.tlsa_base, rec))
            .collect();
        r.publish = not_served;
        match published.verdict {
            Verdict::Safe => gate.add(
                Verdict::Safe,
                format!(
                    "the candidate RRset would authenticate the new certificate and the current one; the published records already do: {}",
                    published.reason
                ),
            ),
            Verdict::Undetermined => {
                for reason in published
                    .reasons
                    .iter()
                    .filter(|x| x.verdict == Verdict::Undetermined)
                {
                    gate.add(Verdict::Undetermined, reason.text.clone());
                }
            }
            Verdict::Wait if published.safe_at.is_some() || r.publish.is_empty() => {
                r.safe_at = published.safe_at;
                r.first_seen = published.first_seen;
                r.first_seen_from = published.first_seen_from;
                gate.add(
                    Verdict::Wait,
                    format!(
                        "the candidate RRset would authenticate the new certificate and the current one; {}",
                        published.reason
                    ),
                );
            }
            _ => gate.add(
                Verdict::Wait,
                format!(
                    "the candidate RRset would authenticate the new certificate and the current one: publish it{}, then wait until every server serves it, plus the TTL{} and the margin ({} s)",
                    if r.publish.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} record(s) not served yet)", r.publish.len())
                    },
                    published
                        .ttl
                        .map(|t| format!(" ({t} s)"))
                        .unwrap_or_default(),
                    cx.input.margin_secs
                ),
            ),
        }
    }
    r.findings = findings;
    finish(r, gate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::evidence::{
        Der, EVIDENCE_SCHEMA_VERSION, MxRecord, NsAnswer, SmtpFailure, SmtpFailureKind, SmtpPhase,
        SmtpProbe, TlsInfo,
    };

    const HOST: &str = "mx1.example.net";
    const DOMAIN: &str = "example.net";
    /// 2030-06-01, inside the validity of the committed test certificates.
    const NOW: Timestamp = Timestamp(1_906_502_400);
    const MARGIN: u64 = 3600;
    const TTL: u32 = 300;

    fn load(name: &str) -> CertInfo {
        let path = format!("{}/testdata/certs/{name}.der", env!("CARGO_MANIFEST_DIR"));
        CertInfo::parse(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    fn chain(names: &[&str]) -> Vec<CertInfo> {
        names.iter().map(|n| load(n)).collect()
    }

    fn rec(usage: u8, selector: u8, cert: &str) -> TlsaRdata {
        TlsaRdata {
            usage,
            selector,
            mtype: 1,
            data: load(cert)
                .association(Selector::from_u8(selector).unwrap(), MatchingType::Sha256)
                .unwrap(),
        }
    }

    fn meta(qname: &str, outcome: Outcome, dnssec: DnssecStatus) -> LookupMeta {
        LookupMeta {
            qname: qname.into(),
            outcome,
            failure: None,
            dnssec,
            ttl: Some(TTL),
            rrsigs: Vec::new(),
            cnames: Vec::new(),
            witness: None,
        }
    }

    fn ns(addr: &str, records: Option<&[TlsaRdata]>, serial: u32) -> NsProbe {
        let tlsa = match records {
            Some(rs) => NsAnswer {
                outcome: if rs.is_empty() {
                    Outcome::NoData
                } else {
                    Outcome::Answer
                },
                failure: None,
                authoritative: true,
                records: rs.iter().map(|r| r.to_string()).collect(),
                denial: None,
                ttl: Some(TTL),
                elapsed_ms: 1,
            },
            None => NsAnswer {
                outcome: Outcome::Failed,
                failure: Some(crate::core::evidence::Failure {
                    kind: crate::core::evidence::FailureKind::Timeout,
                    detail: String::new(),
                }),
                authoritative: false,
                records: Vec::new(),
                denial: None,
                ttl: None,
                elapsed_ms: 1,
            },
        };
        NsProbe {
            zone: "example.net".into(),
            server: format!("ns-{addr}.example.net."),
            address: addr.parse().unwrap(),
            qname: format!("_25._tcp.{HOST}"),
            control: NsAnswer {
                outcome: Outcome::NoData,
                failure: None,
                authoritative: true,
                records: Vec::new(),
                denial: None,
                ttl: None,
                elapsed_ms: 1,
            },
            tlsa,
            soa_serial: Some(serial),
        }
    }

    fn served(addr: &str, certs: &[&str]) -> SmtpProbe {
        SmtpProbe {
            address: addr.parse().unwrap(),
            port: 25,
            elapsed_ms: 1,
            greeting: None,
            ehlo: None,
            starttls: None,
            tls: Some(TlsInfo {
                version: "TLSv1.3".into(),
                cipher: "TLS_AES_128_GCM_SHA256".into(),
                group: None,
                sni: HOST.into(),
            }),
            chain: certs
                .iter()
                .map(|n| {
                    let p = format!("{}/testdata/certs/{n}.der", env!("CARGO_MANIFEST_DIR"));
                    Der(std::fs::read(p).unwrap())
                })
                .collect(),
            failure: None,
            key_types: Vec::new(),
        }
    }

    fn unreachable(addr: &str) -> SmtpProbe {
        SmtpProbe {
            tls: None,
            chain: Vec::new(),
            failure: Some(SmtpFailure {
                phase: SmtpPhase::Connect,
                kind: SmtpFailureKind::Refused,
                detail: "connection refused".into(),
            }),
            ..served(addr, &[])
        }
    }

    /// A world: the resolver's RRset, each server's, and what is served.
    struct World {
        resolver: Option<Vec<TlsaRdata>>,
        servers: Vec<Option<Vec<TlsaRdata>>>,
        smtp: Vec<SmtpProbe>,
    }

    fn world(resolver: &[TlsaRdata]) -> World {
        World {
            resolver: Some(resolver.to_vec()),
            servers: vec![Some(resolver.to_vec()), Some(resolver.to_vec())],
            smtp: vec![served("192.0.2.1", &["leaf-rsa", "int-ca"])],
        }
    }

    fn evidence(w: &World) -> Evidence {
        let tq = format!("_25._tcp.{HOST}");
        let tlsa = match &w.resolver {
            Some(rs) if rs.is_empty() => Lookup {
                meta: meta(&tq, Outcome::NoData, DnssecStatus::Secure),
                records: Vec::new(),
            },
            Some(rs) => Lookup {
                meta: meta(&tq, Outcome::Answer, DnssecStatus::Secure),
                records: rs.clone(),
            },
            None => Lookup {
                meta: LookupMeta {
                    failure: Some(crate::core::evidence::Failure {
                        kind: crate::core::evidence::FailureKind::ServFail,
                        detail: String::new(),
                    }),
                    ..meta(&tq, Outcome::Failed, DnssecStatus::Indeterminate)
                },
                records: Vec::new(),
            },
        };
        let host = HostEvidence {
            name: HOST.into(),
            preference: Some(10),
            tlsa_base: HOST.into(),
            a: Lookup {
                meta: meta(HOST, Outcome::Answer, DnssecStatus::Secure),
                records: w.smtp.iter().map(|p| p.address).collect(),
            },
            aaaa: Lookup {
                meta: meta(HOST, Outcome::NoData, DnssecStatus::Secure),
                records: Vec::new(),
            },
            tlsa: Some(tlsa),
            nameservers: w
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| ns(&format!("198.51.100.{}", i + 1), s.as_deref(), 7))
                .collect(),
            smtp: w.smtp.clone(),
        };
        Evidence {
            schema_version: EVIDENCE_SCHEMA_VERSION,
            domain: DOMAIN.into(),
            collected_at: NOW,
            collector: Default::default(),
            mx: Lookup {
                meta: meta(DOMAIN, Outcome::Answer, DnssecStatus::Secure),
                records: vec![MxRecord {
                    preference: 10,
                    exchange: HOST.into(),
                }],
            },
            hosts: vec![host],
            chain: Vec::new(),
            nameservers: Vec::new(),
        }
    }

    struct Case<'a> {
        name: &'a str,
        world: World,
        new: &'a [&'a str],
        candidate: Option<Vec<TlsaRdata>>,
        published_before: Option<Timestamp>,
        state: State,
        want: Verdict,
        /// Codes that must be among the host's findings.
        codes: &'a [Code],
        /// A phrase of the host's reason.
        reason: &'a str,
    }

    fn run(c: &Case<'_>) -> (Report, State) {
        let ev = evidence(&c.world);
        let new = chain(c.new);
        let recommended: Vec<TlsaRdata> = {
            let mut v = vec![TlsaRdata {
                usage: 3,
                selector: 1,
                mtype: 1,
                data: new[0]
                    .association(Selector::Spki, MatchingType::Sha256)
                    .unwrap(),
            }];
            if let Some(i) = new.get(1) {
                v.push(TlsaRdata {
                    usage: 2,
                    selector: 1,
                    mtype: 1,
                    data: i.association(Selector::Spki, MatchingType::Sha256).unwrap(),
                });
            }
            v
        };
        let cand: Option<Vec<CandidateRecord>> = c.candidate.as_ref().map(|rs| {
            rs.iter()
                .map(|r| CandidateRecord {
                    owner: None,
                    rdata: r.clone(),
                })
                .collect()
        });
        let input = Input {
            evidence: &ev,
            explicit_hosts: false,
            new_chain: &new,
            candidate: cand.as_deref(),
            recommended: &recommended,
            now: NOW,
            margin_secs: MARGIN,
            published_before: c.published_before,
            accept_nexthop_name: false,
            ns_checks: true,
        };
        evaluate(&input, &c.state)
    }

    fn aged(records: &[TlsaRdata], secs_ago: i64) -> State {
        let mut s = State::default();
        s.hosts.insert(
            HOST.into(),
            HostState {
                ttl_max: Some(TTL),
                first_seen: records
                    .iter()
                    .map(|r| (r.to_string(), Timestamp(NOW.0 - secs_ago)))
                    .collect(),
            },
        );
        s
    }

    #[test]
    fn decision_table() {
        let cur = rec(3, 1, "leaf-rsa");
        let next = rec(3, 1, "leaf-next");
        let ta = rec(2, 1, "int-ca");
        let root = rec(2, 1, "root-ca");
        let long_ago = (TTL as i64) + MARGIN as i64 + 10;
        let cases = vec![
            Case {
                name: "ready, first seen in this run: wait, never safe",
                world: world(&[cur.clone(), next.clone()]),
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: None,
                state: State::default(),
                want: Verdict::Wait,
                codes: &[],
                reason: "first seen there",
            },
            Case {
                name: "ready, state remembers an old first sighting: safe",
                world: world(&[cur.clone(), next.clone()]),
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: None,
                state: aged(&[cur.clone(), next.clone()], long_ago),
                want: Verdict::Safe,
                codes: &[],
                reason: "authenticate the new certificate on every server",
            },
            Case {
                name: "ready, state too recent: wait",
                world: world(&[cur.clone(), next.clone()]),
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: None,
                state: aged(std::slice::from_ref(&next), 60),
                want: Verdict::Wait,
                codes: &[],
                reason: "remembered in the state file",
            },
            Case {
                name: "ready, operator asserts an old publication: safe",
                world: world(&[cur.clone(), next.clone()]),
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Safe,
                codes: &[],
                reason: "every server",
            },
            Case {
                name: "next key not published: unsafe",
                world: world(std::slice::from_ref(&cur)),
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[],
                reason: "no published TLSA record authenticates the new certificate",
            },
            Case {
                name: "stale secondary: wait",
                world: World {
                    servers: vec![
                        Some(vec![cur.clone(), next.clone()]),
                        Some(vec![cur.clone()]),
                    ],
                    ..world(&[cur.clone(), next.clone()])
                },
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Wait,
                codes: &[Code::NsOutOfSync],
                reason: "not yet on every server",
            },
            Case {
                name: "a server does not answer: undetermined",
                world: World {
                    servers: vec![Some(vec![cur.clone(), next.clone()]), None],
                    ..world(&[cur.clone(), next.clone()])
                },
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Undetermined,
                codes: &[],
                reason: "TLSA query failed",
            },
            Case {
                name: "2 1 1 set, chain file without the issuer: unsafe",
                world: world(std::slice::from_ref(&ta)),
                new: &["leaf-next"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[Code::DaneTaNotInChain],
                reason: "not in the new certificate's chain",
            },
            Case {
                name: "2 1 1 set, chain file with the issuer: safe",
                world: world(std::slice::from_ref(&ta)),
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Safe,
                codes: &[Code::TlsaNoBackup],
                reason: "every server",
            },
            Case {
                name: "DANE-TA set, new certificate names another host: unsafe",
                world: world(&[cur.clone(), ta.clone()]),
                new: &["leaf-misnamed", "int-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[Code::DaneTaNameMismatch],
                reason: "leaf names other.example.org",
            },
            Case {
                name: "live certificate no longer matches, NEW not published: unsafe",
                world: world(std::slice::from_ref(&rec(3, 1, "leaf-ec"))),
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: None,
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[Code::TlsaNoMatch],
                reason: "no published TLSA record",
            },
            Case {
                name: "SMTP unreachable: undetermined",
                world: World {
                    smtp: vec![unreachable("192.0.2.1")],
                    ..world(&[cur.clone(), next.clone()])
                },
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Undetermined,
                codes: &[Code::SmtpUnreachable],
                reason: "could not be tested",
            },
            Case {
                name: "TLSA lookup failed: undetermined",
                world: World {
                    resolver: None,
                    ..world(std::slice::from_ref(&cur))
                },
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: None,
                state: State::default(),
                want: Verdict::Undetermined,
                codes: &[Code::TlsaLookupFailed],
                reason: "lookup",
            },
            Case {
                name: "no TLSA at all: safe (DANE does not apply)",
                world: World {
                    resolver: Some(Vec::new()),
                    servers: vec![Some(Vec::new()), Some(Vec::new())],
                    ..world(&[])
                },
                new: &["leaf-next", "int-ca"],
                candidate: None,
                published_before: None,
                state: State::default(),
                want: Verdict::Safe,
                codes: &[],
                reason: "no TLSA records",
            },
            Case {
                name: "root pinned with NEW under it: warnings kept",
                world: World {
                    smtp: vec![served("192.0.2.1", &["leaf-rsa", "int-ca", "root-ca"])],
                    ..world(&[cur.clone(), root.clone()])
                },
                new: &["leaf-next", "int-ca", "root-ca"],
                candidate: None,
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Safe,
                codes: &[Code::TlsaRootPinned],
                reason: "every server",
            },
            Case {
                name: "candidate: current + next: wait (publish first)",
                world: world(std::slice::from_ref(&cur)),
                new: &["leaf-next", "int-ca"],
                candidate: Some(vec![cur.clone(), next.clone()]),
                published_before: None,
                state: State::default(),
                want: Verdict::Wait,
                codes: &[],
                reason: "publish it",
            },
            Case {
                name: "candidate: next only breaks the live certificate: unsafe",
                world: world(std::slice::from_ref(&cur)),
                new: &["leaf-next", "int-ca"],
                candidate: Some(vec![next.clone()]),
                published_before: None,
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[Code::TlsaNoMatch],
                reason: "would not authenticate the certificate served now",
            },
            Case {
                name: "candidate: wrong selector for NEW: unsafe, named as check names it",
                world: world(std::slice::from_ref(&cur)),
                new: &["leaf-next", "int-ca"],
                candidate: Some(vec![
                    cur.clone(),
                    TlsaRdata {
                        selector: 0,
                        ..next.clone()
                    },
                ]),
                published_before: None,
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[Code::TlsaWrongSelector],
                reason: "does not authenticate the new certificate",
            },
            Case {
                name: "candidate: usage 1 for NEW: unsafe, tlsa-pkix-usage",
                world: world(std::slice::from_ref(&cur)),
                new: &["leaf-next", "int-ca"],
                candidate: Some(vec![
                    cur.clone(),
                    TlsaRdata {
                        usage: 1,
                        ..next.clone()
                    },
                ]),
                published_before: None,
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[Code::TlsaPkixUsage],
                reason: "does not authenticate",
            },
            Case {
                name: "candidate: 3 0 1 on a short-lived NEW: warned",
                world: world(std::slice::from_ref(&cur)),
                new: &["leaf-short", "int-ca"],
                candidate: Some(vec![cur.clone(), rec(3, 0, "leaf-short"), ta.clone()]),
                published_before: None,
                state: State::default(),
                want: Verdict::Wait,
                codes: &[Code::TlsaFullCertShortLived],
                reason: "publish it",
            },
            Case {
                name: "candidate: 2 1 1 not in NEW's chain: unsafe",
                world: world(std::slice::from_ref(&cur)),
                new: &["leaf-next", "int-ca"],
                candidate: Some(vec![cur.clone(), root.clone()]),
                published_before: None,
                state: State::default(),
                want: Verdict::Unsafe,
                codes: &[Code::DaneTaNotInChain],
                reason: "does not authenticate",
            },
            Case {
                name: "candidate already published and aged: safe",
                world: world(&[cur.clone(), next.clone()]),
                new: &["leaf-next", "int-ca"],
                candidate: Some(vec![cur.clone(), next.clone()]),
                published_before: Some(Timestamp(NOW.0 - long_ago)),
                state: State::default(),
                want: Verdict::Safe,
                codes: &[],
                reason: "already do",
            },
        ];
        let mut failures = Vec::new();
        for c in &cases {
            let (report, _) = run(c);
            let h = &report.hosts[0];
            let codes: Vec<Code> = h.findings.iter().map(|f| f.code).collect();
            let ok = h.verdict == c.want
                && report.verdict == c.want
                && c.codes.iter().all(|want| codes.contains(want))
                && h.reason.contains(c.reason);
            if !ok {
                failures.push(format!(
                    "{}: got {} ({}) codes {:?}; want {} with {:?} and reason ~ {:?}",
                    c.name, h.verdict, h.reason, codes, c.want, c.codes, c.reason
                ));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn wait_says_until_when_and_state_remembers() {
        let cur = rec(3, 1, "leaf-rsa");
        let next = rec(3, 1, "leaf-next");
        let c = Case {
            name: "first run",
            world: world(&[cur.clone(), next.clone()]),
            new: &["leaf-next", "int-ca"],
            candidate: None,
            published_before: None,
            state: State::default(),
            want: Verdict::Wait,
            codes: &[],
            reason: "",
        };
        let (report, state) = run(&c);
        let want = Timestamp(NOW.0 + i64::from(TTL) + MARGIN as i64);
        assert_eq!(report.hosts[0].safe_at, Some(want));
        assert_eq!(report.safe_at, Some(want));
        assert_eq!(report.hosts[0].ttl, Some(TTL));
        let hs = &state.hosts[HOST];
        assert_eq!(hs.first_seen.get(&next.to_string()), Some(&NOW));
        assert_eq!(hs.first_seen.get(&cur.to_string()), Some(&NOW));
        // The state of a later run keeps the first sighting; a record that
        // is gone is forgotten.
        let c2 = Case {
            world: world(std::slice::from_ref(&next)),
            state: state.clone(),
            ..c
        };
        let (_, state2) = run(&c2);
        assert_eq!(state2.hosts[HOST].first_seen.len(), 1);
        assert_eq!(
            state2.hosts[HOST].first_seen.get(&next.to_string()),
            Some(&NOW)
        );
    }

    #[test]
    fn missing_records_are_printed_as_zone_lines() {
        let cur = rec(3, 1, "leaf-rsa");
        let c = Case {
            name: "",
            world: world(std::slice::from_ref(&cur)),
            new: &["leaf-next", "int-ca"],
            candidate: None,
            published_before: None,
            state: State::default(),
            want: Verdict::Unsafe,
            codes: &[],
            reason: "",
        };
        let (report, _) = run(&c);
        let p = &report.hosts[0].publish;
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0],
            format!("_25._tcp.{HOST}. IN TLSA {}", rec(3, 1, "leaf-next"))
        );
        assert_eq!(
            p[1],
            format!("_25._tcp.{HOST}. IN TLSA {}", rec(2, 1, "int-ca"))
        );
    }

    #[test]
    fn next_key_record_is_not_called_stale() {
        let cur = rec(3, 1, "leaf-rsa");
        let next = rec(3, 1, "leaf-next");
        let c = Case {
            name: "",
            world: world(&[cur.clone(), next.clone()]),
            new: &["leaf-next", "int-ca"],
            candidate: None,
            published_before: None,
            state: State::default(),
            want: Verdict::Wait,
            codes: &[],
            reason: "",
        };
        let (report, _) = run(&c);
        let codes: Vec<Code> = report.hosts[0].findings.iter().map(|f| f.code).collect();
        assert!(!codes.contains(&Code::TlsaStale), "{codes:?}");
        // After the swap and removal of the old key only one record remains.
        assert!(codes.contains(&Code::TlsaNoBackup), "{codes:?}");
    }

    #[test]
    fn candidate_owner_names() {
        let r = rec(3, 1, "leaf-rsa");
        let c = |o: Option<&str>| CandidateRecord {
            owner: o.map(String::from),
            rdata: r.clone(),
        };
        assert!(c(None).applies_to(HOST));
        assert!(c(Some("_25._tcp.mx1.example.net.")).applies_to(HOST));
        assert!(c(Some("_25._TCP.MX1.example.net.")).applies_to(HOST));
        assert!(c(Some("_25._tcp.mx1")).applies_to(HOST));
        assert!(!c(Some("_25._tcp.mx2.example.net.")).applies_to(HOST));
        assert!(!c(Some("_25._tcp.mx2")).applies_to(HOST));
    }

    #[test]
    fn verdicts_order_by_harm() {
        assert!(Verdict::Unsafe > Verdict::Undetermined);
        assert!(Verdict::Undetermined > Verdict::Wait);
        assert!(Verdict::Wait > Verdict::Safe);
    }
}
