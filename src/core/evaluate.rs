//! Evidence of one domain in, findings and verdicts out (RFC 7672 §2).

use super::audit::DomainAudit;
use super::dnssec::{DnssecStatus, SigTime, sig_time};
use super::evidence::{Evidence, LookupMeta, Outcome, Rrsig, Timestamp};
use super::finding::{Code, Finding, Severity};
use super::host::{HostContext, evaluate_host, rrset_view};
use super::verdict::{DomainVerdict, HostVerdict};

/// Evaluation parameters; the time is explicit so that results reproduce.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// The time at which signatures and certificates are judged.
    pub now: Timestamp,
    /// Warn about signatures that expire within this many days.
    pub sig_warn_days: u32,
    /// Accept the next-hop domain as a DANE-TA reference identifier
    /// (RFC 7672 §3.2.3 allows it by local policy).
    pub accept_nexthop_name: bool,
}

impl EvalOptions {
    pub fn at(now: Timestamp) -> EvalOptions {
        EvalOptions {
            now,
            sig_warn_days: 3,
            accept_nexthop_name: false,
        }
    }
}

/// Evaluates one domain's evidence.
pub fn evaluate(ev: &Evidence, opts: &EvalOptions) -> DomainAudit {
    let mut findings = Vec::new();
    let domain = ev.domain.as_str();
    let mx = &ev.mx.meta;
    let null_mx = ev
        .mx
        .records
        .iter()
        .any(|r| r.exchange.trim_end_matches('.').is_empty());
    let mx_state = mx_findings(domain, ev, null_mx, &mut findings);
    let mx_secure = mx_state == MxState::Secure;
    let tlsa_hosts: Vec<bool> = ev
        .hosts
        .iter()
        .map(|h| {
            h.tlsa.as_ref().is_some_and(|t| {
                t.meta.outcome == Outcome::Answer
                    && t.meta.dnssec == DnssecStatus::Secure
                    && !t.records.is_empty()
            })
        })
        .collect();
    let mut hosts = Vec::new();
    for (i, h) in ev.hosts.iter().enumerate() {
        let others = tlsa_hosts.iter().enumerate().any(|(j, has)| j != i && *has);
        let cx = HostContext {
            domain,
            mx_secure,
            others_have_tlsa: others,
            now: opts.now,
            accept_nexthop_name: opts.accept_nexthop_name,
        };
        let mut out = evaluate_host(&cx, h);
        findings.extend(out.findings);
        findings.extend(super::nameserver::findings(&h.name, &h.nameservers));
        findings.extend(super::tlsa_size::finding(h, &out.audit));
        out.audit.earliest_signature_expiry = super::path::earliest_expiry(ev, h);
        hosts.push(out.audit);
    }
    findings.extend(super::nameserver::findings(domain, &ev.nameservers));
    findings.extend(signature_findings(ev, opts));
    findings.extend(super::signing::findings(&ev.chain));
    findings.extend(witness_findings(ev));
    coverage_findings(domain, mx_state, &hosts, &tlsa_hosts, &mut findings);
    let findings = dedupe_and_sort(findings);
    let (verdict, reason) = domain_verdict(mx_state, &hosts, &findings);
    DomainAudit {
        domain: ev.domain.clone(),
        verdict,
        reason,
        worst_severity: findings.iter().map(|f| f.severity).max(),
        evaluated_at: opts.now,
        collected_at: ev.collected_at,
        mx: rrset_view(mx),
        findings,
        hosts,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MxState {
    Secure,
    Insecure,
    Bogus,
    Failed,
    NullMx,
    NoDomain,
}

fn mx_findings(domain: &str, ev: &Evidence, null_mx: bool, out: &mut Vec<Finding>) -> MxState {
    let m = &ev.mx.meta;
    let f = |code| Finding::new(code, domain.to_string());
    if m.outcome == Outcome::Failed || m.dnssec == DnssecStatus::Indeterminate {
        let why = m
            .failure
            .as_ref()
            .map(|f| f.to_string())
            .unwrap_or_else(|| "DNSSEC status could not be determined".into());
        out.push(f(Code::MxLookupFailed).msg(format!("the MX lookup for {domain} failed ({why})")));
        return MxState::Failed;
    }
    if m.dnssec == DnssecStatus::Bogus {
        out.push(f(Code::MxBogus).msg(format!(
            "the MX {} for {domain} fails DNSSEC validation{}",
            if m.outcome == Outcome::Answer {
                "records"
            } else {
                "denial of existence"
            },
            ede_suffix(m)
        )));
        return MxState::Bogus;
    }
    if m.outcome == Outcome::NxDomain {
        out.push(f(Code::DomainNxdomain).msg(format!("{domain} does not exist (NXDOMAIN)")));
        if m.dnssec == DnssecStatus::Insecure {
            out.push(f(Code::MxInsecure));
        }
        return MxState::NoDomain;
    }
    if null_mx {
        out.push(f(Code::NullMx).msg(format!(
            "{domain} publishes a null MX (RFC 7505): it accepts no mail"
        )));
        return MxState::NullMx;
    }
    if m.dnssec == DnssecStatus::Insecure {
        out.push(f(Code::MxInsecure).msg(format!(
            "the MX {} of {domain} {} not DNSSEC-signed: DANE does not apply to this domain",
            if m.outcome == Outcome::Answer {
                "records"
            } else {
                "denial"
            },
            if m.outcome == Outcome::Answer {
                "are"
            } else {
                "is"
            }
        )));
        return MxState::Insecure;
    }
    if m.outcome == Outcome::NoData {
        out.push(f(Code::ImplicitMx).msg(format!(
            "{domain} has no MX records (securely denied): the domain itself is the mail host"
        )));
    }
    MxState::Secure
}

fn ede_suffix(m: &LookupMeta) -> String {
    m.witness
        .as_ref()
        .and_then(|w| w.ede.as_ref())
        .map(|e| format!(" (resolver: EDE {} {})", e.code, e.text))
        .unwrap_or_default()
}

/// Every RRset's signatures, by (owner, covered type, signer).
fn signature_findings(ev: &Evidence, opts: &EvalOptions) -> Vec<Finding> {
    super::path::rrsets(ev)
        .into_iter()
        .filter_map(|((owner, covered, signer), sigs)| {
            let subject = format!("{} {covered}", owner.trim_end_matches('.'));
            sig_group_finding(&subject, &signer, &sigs, opts)
        })
        .collect()
}

/// One RRset is fine while any of its signatures is valid beyond the window.
fn sig_group_finding(
    subject: &str,
    signer: &str,
    sigs: &[&Rrsig],
    opts: &EvalOptions,
) -> Option<Finding> {
    let times: Vec<(SigTime, &Rrsig)> = sigs
        .iter()
        .map(|s| (sig_time(s, opts.now, opts.sig_warn_days), *s))
        .collect();
    if times.iter().any(|(t, _)| *t == SigTime::Valid) {
        return None;
    }
    if let Some((SigTime::Expiring { days_left }, s)) = times
        .iter()
        .filter(|(t, _)| matches!(t, SigTime::Expiring { .. }))
        .max_by_key(|(_, s)| s.expiration)
    {
        return Some(
            Finding::new(Code::RrsigExpiring, subject.to_string()).msg(format!(
                "the signature on {subject} (key tag {}, signer {signer}) expires at {} ({days_left} day(s) from {})",
                s.key_tag, s.expiration, opts.now
            )),
        );
    }
    let (t, s) = times.first()?;
    let when = if *t == SigTime::NotYetValid {
        format!("is not valid before {}", s.inception)
    } else {
        format!("expired at {}", s.expiration)
    };
    Some(
        Finding::new(Code::RrsigExpired, subject.to_string()).msg(format!(
            "the signature on {subject} (key tag {}, signer {signer}) {when}",
            s.key_tag
        )),
    )
}

/// The resolver's CD=0 view against the in-process validator's status.
fn witness_findings(ev: &Evidence) -> Vec<Finding> {
    let mut metas: Vec<&LookupMeta> = vec![&ev.mx.meta];
    for h in &ev.hosts {
        metas.push(&h.a.meta);
        metas.push(&h.aaaa.meta);
        if let Some(t) = &h.tlsa {
            metas.push(&t.meta);
        }
    }
    metas
        .into_iter()
        .filter_map(|m| {
            let w = m.witness.as_ref().filter(|w| w.is_verdict())?;
            if m.outcome == Outcome::Failed {
                return None;
            }
            let servfail = w.rcode.eq_ignore_ascii_case("SERVFAIL");
            let resolver = if servfail {
                "bogus (SERVFAIL)"
            } else if w.ad {
                "secure (AD=1)"
            } else {
                "not secure (AD=0)"
            };
            let disagree = match m.dnssec {
                DnssecStatus::Secure => servfail || !w.ad,
                DnssecStatus::Bogus => !servfail,
                DnssecStatus::Insecure => w.ad || servfail,
                DnssecStatus::Indeterminate => false,
            };
            disagree.then(|| {
                Finding::new(Code::DnssecWitnessDisagree, m.qname.clone()).msg(format!(
                    "for {} the in-process validator says {} but the resolver says {resolver}{}",
                    m.qname,
                    m.dnssec.as_str(),
                    w.ede
                        .as_ref()
                        .map(|e| format!(", EDE {} {}", e.code, e.text))
                        .unwrap_or_default()
                ))
            })
        })
        .collect()
}

fn coverage_findings(
    domain: &str,
    mx: MxState,
    hosts: &[super::audit::HostAudit],
    tlsa_hosts: &[bool],
    out: &mut Vec<Finding>,
) {
    match mx {
        MxState::Secure => {
            let protected = hosts.iter().filter(|h| h.dane).count();
            let unprotected: Vec<&str> = hosts
                .iter()
                .filter(|h| !h.dane && h.verdict == HostVerdict::NotDane)
                .map(|h| h.name.as_str())
                .collect();
            if protected > 0 && !unprotected.is_empty() {
                out.push(
                    Finding::new(Code::PartialCoverage, domain.to_string()).msg(format!(
                        "{protected} of {} MX hosts of {domain} use DANE; not protected: {}",
                        hosts.len(),
                        unprotected.join(", ")
                    )),
                );
            }
        }
        MxState::Insecure => {
            for (h, has) in hosts.iter().zip(tlsa_hosts) {
                if *has {
                    out.push(
                        Finding::new(Code::MxInsecureHostTlsa, h.name.clone())
                            .msg(format!(
                                "{} has secure TLSA records, but the MX records of {domain} are not signed: senders do not enforce DANE for {domain}",
                                h.name
                            ))
                            .at_host(&h.name),
                    );
                }
            }
        }
        _ => {}
    }
}

/// Drops repeats (same code, subject and message), most severe first.
pub(super) fn dedupe_and_sort(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Finding> = findings
        .into_iter()
        .filter(|f| seen.insert((f.code, f.subject.clone(), f.message.clone())))
        .collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

fn domain_verdict(
    mx: MxState,
    hosts: &[super::audit::HostAudit],
    findings: &[Finding],
) -> (DomainVerdict, Option<String>) {
    let reason_of = |code: Code| {
        findings
            .iter()
            .find(|f| f.code == code)
            .map(|f| f.message.clone())
    };
    match mx {
        MxState::Failed => (DomainVerdict::Incomplete, reason_of(Code::MxLookupFailed)),
        MxState::Bogus => (DomainVerdict::Fail, reason_of(Code::MxBogus)),
        MxState::NullMx => (DomainVerdict::NoMail, reason_of(Code::NullMx)),
        MxState::NoDomain => (DomainVerdict::NoMail, reason_of(Code::DomainNxdomain)),
        MxState::Insecure => (DomainVerdict::NotDane, reason_of(Code::MxInsecure)),
        MxState::Secure => {
            // A critical finding outside any host (an expired signature on the
            // MX or the chain of trust, at the evaluation time) stops delivery.
            if let Some(f) = findings
                .iter()
                .find(|f| f.severity == Severity::Critical && !f.undetermined())
                && hosts.iter().all(|h| h.verdict != HostVerdict::Fail)
            {
                return (DomainVerdict::Fail, Some(f.message.clone()));
            }
            let verdicts: Vec<HostVerdict> = hosts.iter().map(|h| h.verdict).collect();
            let v = DomainVerdict::from_hosts(&verdicts);
            let reason = match v {
                DomainVerdict::Fail => {
                    let failing: Vec<&str> = hosts
                        .iter()
                        .filter(|h| h.verdict == HostVerdict::Fail)
                        .map(|h| h.name.as_str())
                        .collect();
                    Some(format!("failing: {}", failing.join(", ")))
                }
                DomainVerdict::Incomplete => hosts
                    .iter()
                    .find(|h| h.verdict == HostVerdict::NotTested)
                    .map(|h| {
                        format!(
                            "{}: {}",
                            h.name,
                            h.reason.clone().unwrap_or_else(|| "not tested".into())
                        )
                    }),
                DomainVerdict::NotDane => hosts.first().and_then(|h| h.reason.clone()),
                _ => None,
            };
            (v, reason)
        }
    }
}

/// The worst severity of findings that state a problem, for exit codes.
pub fn worst_determined(audit: &DomainAudit) -> Option<Severity> {
    audit
        .findings
        .iter()
        .filter(|f| !f.undetermined())
        .map(|f| f.severity)
        .max()
}
