//! Step 4 of a rollover (RFC 7671 §8.1: "only then" deploy): the decision
//! per host on the records in DNS, from the steps before it, and for the
//! domain (its worst host, or the MX RRset itself).

use std::collections::BTreeSet;

use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{HostEvidence, Outcome, Timestamp, mx_targets};
use crate::core::finding::{Code, Finding};
use crate::core::host::HostOutcome;
use crate::core::nameserver;
use crate::core::tlsa::TlsaRdata;

use super::facts::HostFacts;
use super::live::{self, LiveStatus, Under};
use super::needs::{cause_not_new, findings_about_new, missing};
use super::publication::{Publication, RecordStatus, ServerStatus};
use super::reason::{Cause, FirstSeen, Note, Readiness, Reason, Reasons, ServerRef};
use super::timing::{self, HostState, STATE_SCHEMA_VERSION, State};
use super::{Input, candidate};

/// What is judged: the records in DNS, or a candidate RRset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Published,
    Candidate,
}

/// The decision for one host. Only the core builds it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HostDecision {
    pub host: String,
    pub tlsa_base: String,
    pub readiness: Readiness,
    /// Every reason, worst first; the first decides.
    pub reasons: Vec<Reason>,
    pub safe_at: Option<Timestamp>,
    /// The TLSA TTL (as the authoritative servers serve it, else as the
    /// resolver did, and never less than a TTL seen by an earlier run).
    pub ttl: Option<u32>,
    /// When a record for NEW was first seen on every server, and how that is known.
    pub first_seen: Option<(Timestamp, FirstSeen)>,
    pub records: Vec<RecordStatus>,
    pub servers: Vec<ServerStatus>,
    pub live: Vec<LiveStatus>,
    /// Records to publish (missing records for NEW, or the candidate's
    /// records not yet served).
    pub publish: Vec<TlsaRdata>,
    pub findings: Vec<Finding>,
    pub notes: Vec<Note>,
}

/// The one-line summary of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Headline {
    /// The MX RRset decides.
    Domain(Reason),
    /// The first host with the domain's readiness decides.
    Host {
        host: String,
        reason: Reason,
    },
    AllSafe {
        hosts: usize,
    },
}

/// The decision for a domain. Only the core builds it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Decision {
    pub domain: String,
    pub readiness: Readiness,
    pub headline: Option<Headline>,
    pub evaluated_at: Timestamp,
    pub margin_secs: u64,
    /// When every waiting host becomes safe, if known.
    pub safe_at: Option<Timestamp>,
    pub mode: Mode,
    pub hosts: Vec<HostDecision>,
    pub notes: Vec<Note>,
}

/// Decides for every host; returns the decision and the state to remember.
pub fn decide(input: &Input<'_>, state: &State) -> (Decision, State) {
    let ev = input.evidence;
    let mut next = state.clone();
    next.schema_version = STATE_SCHEMA_VERSION;
    let mut notes = Vec::new();
    let mut domain = Reasons::default();
    mx_state(input, &mut domain, &mut notes);
    notes.extend(named_host_notes(input));
    if ev.collector.smtp_skipped {
        notes.push(Note::SmtpNotProbed);
    }
    let hosts: Vec<HostDecision> = ev
        .hosts
        .iter()
        .filter(|h| input.hosts.is_empty() || input.hosts.contains(&h.name))
        .map(|h| {
            let prev = state.hosts.get(&h.name).cloned().unwrap_or_default();
            let (decision, remembered) = judge_host(input, h, &prev);
            // Nothing observable (DNS failed): keep what was known.
            if let Some(s) = remembered {
                next.hosts.insert(h.name.clone(), s);
            }
            decision
        })
        .collect();
    if hosts.is_empty() {
        domain.add(Reason::NoMailHost {
            domain: ev.domain.clone(),
        });
    }
    let domain_worst = domain.worst();
    let readiness = hosts
        .iter()
        .map(|h| h.readiness)
        .max()
        .unwrap_or(Readiness::Safe)
        .max(domain_worst);
    let headline = headline(readiness, domain_worst, domain, &hosts);
    let safe_at = (readiness == Readiness::Wait)
        .then(|| all_waiting_safe_at(&hosts))
        .flatten();
    let decision = Decision {
        domain: ev.domain.clone(),
        readiness,
        headline,
        evaluated_at: input.now,
        margin_secs: input.margin_secs,
        safe_at,
        mode: if input.candidate.is_some() {
            Mode::Candidate
        } else {
            Mode::Published
        },
        hosts,
        notes,
    };
    (decision, next)
}

fn headline(
    readiness: Readiness,
    domain_worst: Readiness,
    domain: Reasons,
    hosts: &[HostDecision],
) -> Option<Headline> {
    let of_host = |h: &HostDecision| {
        h.reasons.first().map(|r| Headline::Host {
            host: h.host.clone(),
            reason: r.clone(),
        })
    };
    if domain_worst == readiness && domain_worst != Readiness::Safe {
        domain.sorted().into_iter().next().map(Headline::Domain)
    } else if readiness == Readiness::Safe {
        match hosts {
            [one] => of_host(one),
            _ => Some(Headline::AllSafe { hosts: hosts.len() }),
        }
    } else {
        hosts
            .iter()
            .find(|h| h.readiness == readiness)
            .and_then(of_host)
    }
}

/// The time every waiting host becomes safe, when each of them knows it.
fn all_waiting_safe_at(hosts: &[HostDecision]) -> Option<Timestamp> {
    let waiting: Vec<&HostDecision> = hosts
        .iter()
        .filter(|h| h.readiness == Readiness::Wait)
        .collect();
    if waiting.iter().all(|h| h.safe_at.is_some()) {
        waiting.iter().filter_map(|h| h.safe_at).max()
    } else {
        None
    }
}

/// The MX RRset (RFC 7672 §2.2.1): a failed or bogus one decides, unless
/// the operator named the hosts.
fn mx_state(input: &Input<'_>, domain: &mut Reasons, notes: &mut Vec<Note>) {
    let ev = input.evidence;
    let m = &ev.mx.meta;
    let d = ev.domain.clone();
    let reason = if m.outcome == Outcome::Failed || m.dnssec == DnssecStatus::Indeterminate {
        Reason::MxLookupFailed { domain: d }
    } else if m.dnssec == DnssecStatus::Bogus {
        Reason::MxBogus { domain: d }
    } else {
        if m.dnssec == DnssecStatus::Insecure {
            notes.push(Note::MxInsecure { domain: d });
        }
        return;
    };
    if input.hosts.is_empty() {
        domain.add(reason);
    } else {
        notes.push(Note::MxContext { reason });
    }
}

/// A named host that is not an MX host of the domain is still judged (it
/// may become one), with a note.
fn named_host_notes(input: &Input<'_>) -> Vec<Note> {
    let ev = input.evidence;
    let m = &ev.mx.meta;
    // A failed or bogus MX lookup says nothing about which hosts it names.
    if m.outcome == Outcome::Failed
        || matches!(m.dnssec, DnssecStatus::Bogus | DnssecStatus::Indeterminate)
    {
        return Vec::new();
    }
    let mx: Vec<String> = mx_targets(&ev.domain, &ev.mx)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    input
        .hosts
        .iter()
        .filter(|h| !mx.contains(h))
        .map(|h| Note::NotAnMxHost {
            host: h.clone(),
            domain: ev.domain.clone(),
        })
        .collect()
}

/// Judges one host. Returns its decision and the state to remember for it
/// (`None`: nothing could be observed, keep the old state).
fn judge_host(
    input: &Input<'_>,
    h: &HostEvidence,
    prev: &HostState,
) -> (HostDecision, Option<HostState>) {
    let facts = HostFacts::new(input, h);
    let (published, state) = judge_published(&facts, prev);
    let Some(c) = input.candidate else {
        return (published, state);
    };
    let mut d = candidate::judge(&facts, c, &published);
    // The published records' servers and TTL still decide the timing.
    d.servers = published.servers;
    d.ttl = published.ttl;
    (d, state)
}

impl HostDecision {
    pub(super) fn empty(h: &HostEvidence) -> HostDecision {
        HostDecision {
            host: h.name.clone(),
            tlsa_base: h.tlsa_base.clone(),
            readiness: Readiness::Safe,
            reasons: Vec::new(),
            safe_at: None,
            ttl: None,
            first_seen: None,
            records: Vec::new(),
            servers: Vec::new(),
            live: Vec::new(),
            publish: Vec::new(),
            findings: Vec::new(),
            notes: Vec::new(),
        }
    }
}

pub(super) fn finish(mut d: HostDecision, reasons: Reasons) -> HostDecision {
    d.reasons = reasons.sorted();
    d.readiness = d
        .reasons
        .first()
        .map(Reason::readiness)
        .unwrap_or(Readiness::Safe);
    if d.readiness != Readiness::Wait {
        d.safe_at = None;
    }
    d.findings = dedupe(std::mem::take(&mut d.findings));
    d
}

fn dedupe(findings: Vec<Finding>) -> Vec<Finding> {
    // A record with a precise diagnosis needs no vaguer "stale" beside it.
    let diagnosed: BTreeSet<String> = findings
        .iter()
        .filter(|f| f.code != Code::TlsaStale && f.subject.contains(" TLSA "))
        .map(|f| f.subject.clone())
        .collect();
    crate::core::evaluate::dedupe_and_sort(
        findings
            .into_iter()
            .filter(|f| !(f.code == Code::TlsaStale && diagnosed.contains(&f.subject)))
            .collect(),
    )
}

/// Host-level DNS states that settle the decision before any record is
/// judged. Returns whether the host is settled.
pub(super) fn dns_gate(
    facts: &HostFacts<'_>,
    view: &HostOutcome,
    candidate: bool,
    reasons: &mut Reasons,
) -> bool {
    let h = facts.h;
    for f in &view.findings {
        let cause = || Cause {
            code: f.code,
            message: f.message.clone(),
        };
        match f.code {
            Code::HostLookupFailed => reasons.add(Reason::LookupFailed { cause: cause() }),
            Code::TlsaLookupFailed if !candidate => {
                reasons.add(Reason::LookupFailed { cause: cause() })
            }
            Code::HostAddressBogus | Code::HostDenialBogus => reasons.add(Reason::AddressesBogus {
                host: h.name.clone(),
                cause: cause(),
            }),
            Code::TlsaBogus | Code::TlsaDenialBogus if !candidate => {
                reasons.add(Reason::TlsaBogus {
                    host: h.name.clone(),
                    cause: cause(),
                })
            }
            _ => {}
        }
    }
    if reasons.worst() != Readiness::Safe {
        return true;
    }
    let secure = |l: &crate::core::evidence::Lookup<std::net::IpAddr>| {
        l.meta.outcome == Outcome::Answer && l.meta.dnssec == DnssecStatus::Secure
    };
    if !secure(&h.a) && !secure(&h.aaaa) {
        reasons.add(Reason::AddressesUnsigned {
            host: h.name.clone(),
        });
        return true;
    }
    false
}

/// `check`'s findings for the RRset under test, minus what a rollover
/// says better: the next key's record is not stale, and `tlsa-no-backup`
/// is judged on the RRset that remains after the rollover.
pub(super) fn check_findings(
    facts: &HostFacts<'_>,
    view: &HostOutcome,
    rrset: &[TlsaRdata],
) -> Vec<Finding> {
    let next_key: BTreeSet<String> = rrset
        .iter()
        .filter(|r| facts.authenticates_new(r))
        .map(|r| format!("_25._tcp.{} TLSA {}", facts.h.name, r.short()))
        .collect();
    view.findings
        .iter()
        .filter(|f| !(f.code == Code::TlsaStale && next_key.contains(&f.subject)))
        .filter(|f| f.code != Code::TlsaNoBackup)
        .cloned()
        .collect()
}

/// The decision on the records in DNS, step by step.
fn judge_published(facts: &HostFacts<'_>, prev: &HostState) -> (HostDecision, Option<HostState>) {
    let h = facts.h;
    let mut d = HostDecision::empty(h);
    let mut reasons = Reasons::default();
    let view = facts.check_view();
    if dns_gate(facts, &view, false, &mut reasons) {
        d.findings = view.findings;
        return (finish(d, reasons), None);
    }
    let tlsa = h.tlsa.as_ref().map(|t| &t.meta);
    if tlsa.is_some_and(|m| m.dnssec == DnssecStatus::Insecure && m.outcome == Outcome::Answer) {
        reasons.add(Reason::TlsaUnsigned {
            host: h.name.clone(),
        });
        d.findings = view.findings;
        return (finish(d, reasons), None);
    }
    let alias = tlsa.is_some_and(|m| !m.cnames.is_empty());
    if alias {
        d.notes.push(Note::TlsaAlias {
            tlsa_base: h.tlsa_base.clone(),
        });
    }
    let p = Publication::observe(h, !alias);
    let ns_checks = facts.input.evidence.collector.nameserver_checks;
    if ns_checks && !alias && p.servers.is_empty() && !p.resolver.is_empty() {
        reasons.add(Reason::ServersUnknown {
            tlsa_base: h.tlsa_base.clone(),
        });
    }
    if !ns_checks {
        d.notes.push(Note::ServersNotAsked);
    }
    d.servers = p
        .servers
        .iter()
        .map(|s| ServerStatus::of(facts, s))
        .collect();
    d.records = p
        .union
        .iter()
        .map(|rec| RecordStatus::of(facts, &p, rec))
        .collect();
    if p.union.is_empty() {
        reasons.add(Reason::NoTlsa {
            host: h.name.clone(),
        });
        d.notes.push(Note::ProtectWithDane {
            host: h.name.clone(),
            tlsa_base: h.tlsa_base.clone(),
            records: missing(facts, &[]),
        });
        d.findings = view.findings;
        return (finish(d, reasons), Some(HostState::default()));
    }
    let coverage = Coverage::of(facts, &p);
    let mut findings = check_findings(facts, &view, &p.resolver);
    findings.extend(nameserver::findings(&h.name, &h.nameservers));
    findings.extend(findings_about_new(facts, &p.union, coverage.anywhere()));
    d.ttl = timing::ttl_of(h, prev);
    publication_reasons(facts, &p, &coverage, &findings, &mut d, &mut reasons);
    d.live = live::check(
        facts,
        &view,
        Under::Published {
            new_authenticated: coverage.anywhere(),
        },
        &mut reasons,
        &mut d.notes,
    );
    let silent: Vec<(ServerRef, String)> = p
        .silent()
        .map(|s| (ServerRef::of(s.probe), s.why_silent()))
        .collect();
    let state = if silent.is_empty() {
        Some(timing_reasons(
            facts,
            &p,
            &coverage,
            prev,
            &mut d,
            &mut reasons,
        ))
    } else {
        if coverage.anywhere() {
            reasons.add(Reason::ServersSilent { servers: silent });
        }
        None
    };
    if reasons.worst() == Readiness::Safe {
        reasons.add(Reason::Ready {
            first_seen: d.first_seen.map(|(t, _)| t),
        });
    }
    d.findings = findings;
    (finish(d, reasons), state)
}

/// Who serves a record that authenticates NEW.
struct Coverage<'p, 'a> {
    by_resolver: bool,
    having: Vec<&'p super::publication::ServerAnswer<'a>>,
    lacking: Vec<&'p super::publication::ServerAnswer<'a>>,
}

impl<'p, 'a> Coverage<'p, 'a> {
    fn of(facts: &HostFacts<'_>, p: &'p Publication<'a>) -> Coverage<'p, 'a> {
        let has_new = |s: &&super::publication::ServerAnswer<'a>| {
            s.records
                .as_ref()
                .is_some_and(|set| facts.any_authenticates_new(set))
        };
        let (having, lacking) = p.answering().partition(has_new);
        Coverage {
            by_resolver: facts.any_authenticates_new(&p.resolver),
            having,
            lacking,
        }
    }

    fn anywhere(&self) -> bool {
        self.by_resolver || !self.having.is_empty()
    }
}

/// Step 2: is a record for NEW published, and on every server?
fn publication_reasons(
    facts: &HostFacts<'_>,
    p: &Publication<'_>,
    coverage: &Coverage<'_, '_>,
    findings: &[Finding],
    d: &mut HostDecision,
    reasons: &mut Reasons,
) {
    let refs = |v: &[&super::publication::ServerAnswer<'_>]| -> Vec<ServerRef> {
        v.iter().map(|s| ServerRef::of(s.probe)).collect()
    };
    if !coverage.anywhere() {
        let cause = cause_not_new(findings);
        d.publish = missing(facts, &p.union);
        reasons.add(Reason::NewNotPublished {
            listed: cause.is_none() && !d.publish.is_empty(),
            cause,
        });
    } else if coverage.having.is_empty() && !coverage.lacking.is_empty() {
        reasons.add(Reason::NewWithdrawn {
            lacking: refs(&coverage.lacking),
        });
        d.publish = missing(facts, &p.union);
    } else if !coverage.lacking.is_empty() {
        reasons.add(Reason::NotOnEveryServer {
            having: refs(&coverage.having),
            lacking: refs(&coverage.lacking),
        });
    }
}

/// Step 3: once every server serves a record for NEW, how long caches may
/// still hold the RRset without it. Returns the state to remember.
fn timing_reasons(
    facts: &HostFacts<'_>,
    p: &Publication<'_>,
    coverage: &Coverage<'_, '_>,
    prev: &HostState,
    d: &mut HostDecision,
    reasons: &mut Reasons,
) -> HostState {
    let (next, earliest) = timing::remember(facts, p, prev, d.ttl);
    if coverage.lacking.is_empty() && coverage.anywhere() {
        let t = timing::judge(facts, earliest, d.ttl, coverage.by_resolver);
        d.first_seen = Some(t.first_seen);
        d.safe_at = Some(t.safe_at);
        if let Some(wait) = t.wait {
            reasons.add(wait);
        }
    }
    next
}
