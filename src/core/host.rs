//! One MX host: its address and TLSA DNSSEC state (RFC 7672 §2.2.2-2.2.3),
//! then each address's SMTP outcome and chain.

use std::net::IpAddr;

use super::audit::{AddressAudit, CertMatch, CertView, HostAudit, RecordView, RrsetView};
use super::cert::CertInfo;
use super::dnssec::DnssecStatus;
use super::evidence::{HostEvidence, Lookup, LookupMeta, Outcome, SmtpFailureKind, SmtpProbe};
use super::finding::{Code, Finding, Severity};
use super::rrset::{self, ChainResult, Served};
use super::smtp::{SmtpResult, classify};
use super::tlsa::{MatchingType, Selector, TlsaRdata, Usability};
use super::verdict::HostVerdict;

/// What the domain-level evaluation tells the host evaluation.
pub struct HostContext<'a> {
    pub domain: &'a str,
    pub mx_secure: bool,
    /// Another host of the domain has a secure TLSA RRset.
    pub others_have_tlsa: bool,
    pub now: super::evidence::Timestamp,
    pub accept_nexthop_name: bool,
}

pub struct HostOutcome {
    pub audit: HostAudit,
    pub findings: Vec<Finding>,
}

/// The state of one address family's lookup.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FamilyState {
    Secure,
    Insecure,
    Absent,
    Broken,
    Unknown,
}

/// The state of the TLSA lookup.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TlsaState {
    NotLookedUp,
    /// Secure RRset with records (usable or not).
    Secure,
    Insecure,
    Absent,
    Broken,
    Unknown,
}

pub fn rrset_view(m: &LookupMeta) -> RrsetView {
    let note = m.failure.as_ref().map(|f| f.to_string()).or_else(|| {
        m.witness
            .as_ref()
            .and_then(|w| w.ede.as_ref())
            .map(|e| format!("EDE {}: {}", e.code, e.text))
    });
    RrsetView {
        qname: m.qname.clone(),
        outcome: m.outcome,
        dnssec: m.dnssec,
        ttl: m.ttl,
        ad: m.witness.as_ref().map(|w| w.ad),
        note,
        via: m
            .cnames
            .iter()
            .map(|c| format!("{} ({})", c.target, c.dnssec.as_str()))
            .collect(),
    }
}

pub fn evaluate_host(cx: &HostContext<'_>, h: &HostEvidence) -> HostOutcome {
    let mut findings = Vec::new();
    let name = h.name.as_str();
    if h.a
        .meta
        .cnames
        .iter()
        .chain(&h.aaaa.meta.cnames)
        .next()
        .is_some()
    {
        let target =
            h.a.meta
                .cnames
                .iter()
                .chain(&h.aaaa.meta.cnames)
                .last()
                .map(|c| c.target.clone())
                .unwrap_or_default();
        findings.push(
            Finding::new(Code::MxCname, name)
                .msg(format!(
                    "the MX target {name} is an alias of {target}; TLSA is looked up at _25._tcp.{}",
                    h.tlsa_base
                ))
                .at_host(name),
        );
    }
    let mut dns_findings = Vec::new();
    let v4 = family_state(name, "IPv4 (A)", &h.a, &mut dns_findings);
    let v6 = family_state(name, "IPv6 (AAAA)", &h.aaaa, &mut dns_findings);
    // With unsigned MX records DANE is off for the whole domain: saying so
    // again for every host's addresses would only be noise.
    findings.extend(
        dns_findings
            .into_iter()
            .filter(|f| cx.mx_secure || f.code != Code::HostAddressInsecure),
    );
    if v4 == FamilyState::Absent && v6 == FamilyState::Absent {
        findings.push(
            Finding::new(Code::HostNoAddress, name)
                .msg(format!(
                    "{name} {} ({}): senders cannot connect to it",
                    if h.a.meta.outcome == Outcome::NxDomain {
                        "does not exist"
                    } else {
                        "has no A and no AAAA record"
                    },
                    if h.a.meta.dnssec == DnssecStatus::Secure
                        && h.aaaa.meta.dnssec == DnssecStatus::Secure
                    {
                        "proven by DNSSEC"
                    } else {
                        "not signed"
                    }
                ))
                .at_host(name),
        );
    }
    let any_secure = v4 == FamilyState::Secure || v6 == FamilyState::Secure;
    let tlsa_state = tlsa_state(cx, h, any_secure, &mut findings);
    let undetermined = tlsa_state == TlsaState::Unknown
        || v4 == FamilyState::Unknown
        || v6 == FamilyState::Unknown;
    let records: &[TlsaRdata] = match (&h.tlsa, tlsa_state) {
        (Some(t), TlsaState::Secure) => &t.records,
        _ => &[],
    };
    let requires_tls = !records.is_empty() && any_secure;
    let usable_count = records
        .iter()
        .filter(|r| matches!(r.usability(), Usability::Usable(_)))
        .count();
    findings.extend(unusable_findings(name, records, usable_count));
    let dane = usable_count > 0 && any_secure && cx.mx_secure;
    let family_secure = |ip: &IpAddr| match ip {
        IpAddr::V4(_) => v4 == FamilyState::Secure,
        IpAddr::V6(_) => v6 == FamilyState::Secure,
    };
    let addresses: Vec<IpAddr> = h.a.records.iter().chain(&h.aaaa.records).copied().collect();
    // Every distinct chain each address presents: one per key type it
    // serves, or what the legacy hellos got from a legacy-only server.
    let chains: Vec<(IpAddr, Vec<CertInfo>)> = h
        .smtp
        .iter()
        .flat_map(|p| {
            super::smtp::presented(p).into_iter().map(|c| {
                (
                    p.address,
                    c.chain.iter().map(|d| CertInfo::parse(&d.0)).collect(),
                )
            })
        })
        .collect();
    // Which of them DANE judges: those of addresses whose family is secure.
    let served_at: Vec<usize> = (0..chains.len())
        .filter(|i| family_secure(&chains[*i].0))
        .collect();
    let reference_ids = reference_ids(cx, h);
    let rr = (usable_count > 0).then(|| {
        let served: Vec<Served<'_>> = served_at
            .iter()
            .map(|i| Served {
                address: chains[*i].0,
                chain: &chains[*i].1,
            })
            .collect();
        rrset::evaluate(
            &rrset::Context {
                host: name,
                reference_ids: &reference_ids,
                now: cx.now,
            },
            records,
            &served,
        )
    });
    let mut address_audits = Vec::new();
    for ip in &addresses {
        let probe = h.smtp.iter().find(|p| p.address == *ip);
        let mine: Vec<usize> = (0..chains.len()).filter(|i| chains[*i].0 == *ip).collect();
        let chain = mine.first().map(|i| chains[*i].1.as_slice());
        let results: Vec<Option<&ChainResult>> = mine
            .iter()
            .map(|i| {
                let r = rr.as_ref()?;
                served_at.iter().position(|s| s == i).map(|j| &r.chains[j])
            })
            .collect();
        let by: Vec<usize> = rr
            .as_ref()
            .and_then(|r| r.addresses.iter().find(|a| a.address == *ip))
            .map(|a| a.authenticated_by.clone())
            .unwrap_or_default();
        let applies = dane && family_secure(ip);
        let (verdict, reason, f) = if undetermined && probe.is_none() {
            let why = "DANE status unknown: a DNS lookup failed".to_string();
            (HostVerdict::NotTested, Some(why), Vec::new())
        } else {
            address_verdict(name, *ip, probe, applies, requires_tls, &by)
        };
        let reason = match uncovered_reason(&mine, &chains, &results) {
            Some(why) if verdict == HostVerdict::Fail => Some(why),
            _ => reason,
        };
        findings.extend(f);
        if let Some(detail) = probe.and_then(super::smtp::injection) {
            findings.push(
                Finding::new(Code::StarttlsInjection, format!("{name}[{ip}]"))
                    .msg(format!("{ip}: {detail}"))
                    .at_address(name, *ip),
            );
        }
        if applies && !by.is_empty() {
            findings.extend(expired_ee(name, *ip, chain, records, &by, cx.now));
        }
        address_audits.push(AddressAudit {
            address: *ip,
            verdict,
            reason,
            smtp: probe.map(smtp_line).unwrap_or_else(|| "not probed".into()),
            tls: probe.and_then(|p| p.tls.clone()),
            chain: chain.map(|c| cert_views(c, records)).unwrap_or_default(),
            authenticated_by: by.iter().map(|i| records[*i].to_string()).collect(),
            key_types: probe
                .map(|p| {
                    let mine: Vec<&[CertInfo]> =
                        mine.iter().map(|i| chains[*i].1.as_slice()).collect();
                    super::key_types::views(p, &mine, &results, records)
                })
                .unwrap_or_default(),
        });
    }
    if dane {
        findings.extend(disagreement(name, &address_audits));
    }
    if let Some(r) = &rr {
        findings.extend(r.findings.iter().cloned());
    }
    let record_views = records
        .iter()
        .enumerate()
        .map(|(i, r)| RecordView {
            record: r.to_string(),
            usable: matches!(r.usability(), Usability::Usable(_)),
            note: match r.usability() {
                Usability::Usable(_) => rr.as_ref().and_then(|x| x.notes[i].clone()),
                Usability::PkixUsage => Some("usage 0/1 is not used by SMTP senders".into()),
                Usability::Malformed(why) => Some(why),
            },
            matched: rr.as_ref().is_some_and(|x| x.matched[i]),
            tested: !chains.is_empty(),
        })
        .collect();
    let (verdict, reason) = host_verdict(
        cx,
        &findings,
        dane,
        usable_count == 0 && requires_tls,
        tlsa_state,
        &address_audits,
    );
    HostOutcome {
        audit: HostAudit {
            name: h.name.clone(),
            preference: h.preference,
            tlsa_base: h.tlsa_base.clone(),
            verdict,
            reason,
            dane,
            a: rrset_view(&h.a.meta),
            aaaa: rrset_view(&h.aaaa.meta),
            tlsa: h.tlsa.as_ref().map(|t| rrset_view(&t.meta)),
            records: record_views,
            addresses: address_audits,
            // The path above the host is the domain's: set by `evaluate`.
            earliest_signature_expiry: None,
        },
        findings,
    }
}

fn reference_ids(cx: &HostContext<'_>, h: &HostEvidence) -> Vec<String> {
    let mut ids = vec![h.tlsa_base.clone()];
    if h.name != h.tlsa_base {
        ids.push(h.name.clone());
    }
    if cx.accept_nexthop_name && !ids.iter().any(|i| i == cx.domain) {
        ids.push(cx.domain.to_string());
    }
    ids
}

fn failure_text(m: &LookupMeta) -> String {
    let mut s = m
        .failure
        .as_ref()
        .map(|f| f.kind.as_str().to_string())
        .unwrap_or_else(|| format!("DNSSEC status {}", m.dnssec.as_str()));
    if let Some(e) = m.witness.as_ref().and_then(|w| w.ede.as_ref()) {
        s.push_str(&format!("; resolver says EDE {} {}", e.code, e.text));
    }
    s
}

fn family_state<T>(host: &str, family: &str, l: &Lookup<T>, out: &mut Vec<Finding>) -> FamilyState {
    let m = &l.meta;
    let f = |code| Finding::new(code, host.to_string()).at_host(host);
    match (m.outcome, m.dnssec) {
        (Outcome::Failed, _) | (_, DnssecStatus::Indeterminate) => {
            out.push(f(Code::HostLookupFailed).msg(format!(
                "the {family} lookup for {host} failed: {}",
                failure_text(m)
            )));
            FamilyState::Unknown
        }
        (Outcome::Answer, DnssecStatus::Secure) => FamilyState::Secure,
        (Outcome::Answer, DnssecStatus::Insecure) => {
            out.push(f(Code::HostAddressInsecure).msg(format!(
                "the {family} records of {host} are not signed: senders do not use DANE over {family}"
            )));
            FamilyState::Insecure
        }
        (Outcome::Answer, DnssecStatus::Bogus) => {
            out.push(f(Code::HostAddressBogus).msg(format!(
                "the {family} records of {host} fail DNSSEC validation ({})",
                failure_text(m)
            )));
            FamilyState::Broken
        }
        (_, DnssecStatus::Bogus) => {
            out.push(f(Code::HostDenialBogus).msg(format!(
                "{host} has no {family} records, but the proof of that fails validation ({})",
                failure_text(m)
            )));
            FamilyState::Broken
        }
        _ => FamilyState::Absent,
    }
}

fn tlsa_state(
    cx: &HostContext<'_>,
    h: &HostEvidence,
    any_secure: bool,
    out: &mut Vec<Finding>,
) -> TlsaState {
    let Some(t) = &h.tlsa else {
        return TlsaState::NotLookedUp;
    };
    let m = &t.meta;
    let qname = format!("_25._tcp.{}", h.tlsa_base);
    let f = |code| Finding::new(code, qname.clone()).at_host(&h.name);
    match (m.outcome, m.dnssec) {
        (Outcome::Failed, _) | (_, DnssecStatus::Indeterminate) => {
            out.push(f(Code::TlsaLookupFailed).msg(format!(
                "the TLSA lookup for {qname} failed: {} (this is not the same as 'no TLSA')",
                failure_text(m)
            )));
            TlsaState::Unknown
        }
        (Outcome::Answer, DnssecStatus::Secure) if !t.records.is_empty() => TlsaState::Secure,
        (Outcome::Answer, DnssecStatus::Insecure) if !t.records.is_empty() => {
            out.push(f(Code::TlsaInsecure).msg(format!(
                "{qname} has {} TLSA record(s), but they are not DNSSEC-signed: senders ignore them",
                t.records.len()
            )));
            TlsaState::Insecure
        }
        (Outcome::Answer, DnssecStatus::Bogus) => {
            out.push(f(Code::TlsaBogus).msg(format!(
                "the TLSA records at {qname} fail DNSSEC validation ({}): DANE senders defer mail to {}",
                failure_text(m),
                h.name
            )));
            TlsaState::Broken
        }
        (_, DnssecStatus::Bogus) => {
            out.push(f(Code::TlsaDenialBogus).msg(format!(
                "{qname} has no TLSA records, but the proof of that fails validation ({})",
                failure_text(m)
            )));
            TlsaState::Broken
        }
        (_, DnssecStatus::Secure) => {
            if any_secure {
                let finding = f(Code::TlsaAbsent).msg(format!(
                    "{qname} has no TLSA records (securely denied): {} is not protected by DANE",
                    h.name
                ));
                // Unprotected next to protected hosts is the weak link.
                let finding = if cx.others_have_tlsa {
                    finding.secondary()
                } else {
                    finding
                };
                out.push(finding);
            }
            TlsaState::Absent
        }
        _ => TlsaState::Absent,
    }
}

fn unusable_findings(host: &str, records: &[TlsaRdata], usable: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in records {
        let subject = format!("_25._tcp.{host} TLSA {}", r.short());
        match r.usability() {
            Usability::Usable(_) => {}
            Usability::PkixUsage => out.push(
                Finding::new(Code::TlsaPkixUsage, subject)
                    .msg(format!(
                        "`{}` uses usage {} ({}), which SMTP senders ignore",
                        r.short(),
                        r.usage,
                        r.usage().name()
                    ))
                    .fix(format!(
                        "Replace it with `{}` (DANE-{}) if it describes the server's {}.",
                        TlsaRdata {
                            usage: r.usage + 2,
                            ..r.clone()
                        },
                        if r.usage == 1 { "EE" } else { "TA" },
                        if r.usage == 1 {
                            "own certificate or key"
                        } else {
                            "issuing CA"
                        }
                    ))
                    .at_host(host),
            ),
            Usability::Malformed(why) => out.push(
                Finding::new(Code::TlsaMalformed, subject)
                    .msg(format!("`{}`: {why}", r.short()))
                    .at_host(host),
            ),
        }
    }
    if usable == 0 && !records.is_empty() {
        out.push(
            Finding::new(Code::TlsaAllUnusable, format!("_25._tcp.{host}"))
                .msg(format!(
                    "none of the {} TLSA record(s) of {host} is usable: senders require TLS but authenticate nothing",
                    records.len()
                ))
                .at_host(host),
        );
    }
    out
}

fn address_verdict(
    host: &str,
    ip: IpAddr,
    probe: Option<&SmtpProbe>,
    applies: bool,
    requires_tls: bool,
    authenticated_by: &[usize],
) -> (HostVerdict, Option<String>, Vec<Finding>) {
    let subject = format!("{host}[{ip}]");
    let finding = |code, msg: String| {
        let f = Finding::new(code, subject.clone())
            .msg(msg)
            .at_address(host, ip);
        if requires_tls { f } else { f.secondary() }
    };
    let Some(p) = probe else {
        let v = if applies {
            HostVerdict::NotTested
        } else {
            HostVerdict::NotDane
        };
        return (v, applies.then(|| "not probed".into()), vec![]);
    };
    let not_dane = |v: HostVerdict| if applies { v } else { HostVerdict::NotDane };
    match classify(p) {
        SmtpResult::NotProbed(why) => (not_dane(HostVerdict::NotTested), Some(why), vec![]),
        SmtpResult::Untested { code, message } => (
            not_dane(HostVerdict::NotTested),
            Some(message.clone()),
            vec![
                Finding::new(code, subject.clone())
                    .msg(message)
                    .at_address(host, ip),
            ],
        ),
        SmtpResult::Failed { code, message } => (
            not_dane(HostVerdict::Fail),
            Some(message.clone()),
            vec![finding(code, message)],
        ),
        SmtpResult::Tls if !applies => (HostVerdict::NotDane, None, vec![]),
        SmtpResult::Tls if authenticated_by.is_empty() => (
            HostVerdict::Fail,
            Some("no usable TLSA record matches the served chain".into()),
            vec![],
        ),
        SmtpResult::Tls => (HostVerdict::Pass, None, vec![]),
    }
}

fn expired_ee(
    host: &str,
    ip: IpAddr,
    chain: Option<&[CertInfo]>,
    records: &[TlsaRdata],
    by: &[usize],
    now: super::evidence::Timestamp,
) -> Option<Finding> {
    let leaf = chain?.first()?;
    let what = leaf.time_problem(now)?;
    if !by.iter().any(|i| records[*i].usage == 3) {
        return None;
    }
    Some(
        Finding::new(Code::CertExpiredDaneEe, format!("{host}[{ip}]"))
            .msg(format!(
                "the certificate served at {ip} is {what}{}; DANE-EE still accepts it",
                leaf.not_after
                    .map(|t| format!(" (notAfter {t})"))
                    .unwrap_or_default()
            ))
            .at_address(host, ip),
    )
}

/// `addresses-disagree`: addresses of one DANE host reach different results.
fn disagreement(host: &str, addresses: &[AddressAudit]) -> Option<Finding> {
    let tested: Vec<&AddressAudit> = addresses
        .iter()
        .filter(|a| matches!(a.verdict, HostVerdict::Pass | HostVerdict::Fail))
        .collect();
    let passes = tested
        .iter()
        .filter(|a| a.verdict == HostVerdict::Pass)
        .count();
    if passes == 0 || passes == tested.len() {
        return None;
    }
    let detail: Vec<String> = tested
        .iter()
        .map(|a| format!("{} {}", a.address, a.verdict))
        .collect();
    Some(
        Finding::new(Code::AddressesDisagree, host.to_string())
            .msg(format!(
                "the addresses of {host} disagree: {}",
                detail.join(", ")
            ))
            .at_host(host),
    )
}

fn host_verdict(
    cx: &HostContext<'_>,
    findings: &[Finding],
    dane: bool,
    all_unusable: bool,
    tlsa: TlsaState,
    addresses: &[AddressAudit],
) -> (HostVerdict, Option<String>) {
    if let Some(f) = findings
        .iter()
        .find(|f| f.severity == Severity::Critical && !f.undetermined())
    {
        return (HostVerdict::Fail, Some(f.message.clone()));
    }
    if all_unusable && cx.mx_secure {
        return (HostVerdict::Fail, Some("no usable TLSA record".into()));
    }
    if let Some(f) = findings.iter().find(|f| {
        f.undetermined() && matches!(f.code, Code::HostLookupFailed | Code::TlsaLookupFailed)
    }) {
        return (HostVerdict::NotTested, Some(f.message.clone()));
    }
    if let Some(f) = findings.iter().find(|f| f.code == Code::HostNoAddress) {
        return (HostVerdict::Fail, Some(f.message.clone()));
    }
    if !dane {
        let why = match tlsa {
            _ if !cx.mx_secure => "the MX records are not signed",
            TlsaState::Absent => "no TLSA records",
            TlsaState::Insecure => "the TLSA records are not signed",
            TlsaState::NotLookedUp => "the host's addresses are not signed",
            _ => "DANE does not apply",
        };
        return (HostVerdict::NotDane, Some(why.into()));
    }
    match HostVerdict::worst(addresses.iter().map(|a| a.verdict)) {
        Some(v) => (
            v,
            addresses
                .iter()
                .find(|a| a.verdict == v)
                .and_then(|a| a.reason.clone()),
        ),
        None => (
            HostVerdict::NotTested,
            Some("the host has no addresses".into()),
        ),
    }
}

fn smtp_line(p: &SmtpProbe) -> String {
    match (&p.tls, &p.failure) {
        (Some(t), None) => format!(
            "STARTTLS ok: {} {}{}",
            t.version,
            t.cipher,
            t.group
                .as_ref()
                .map(|g| format!(" {g}"))
                .unwrap_or_default()
        ),
        // Deliberately not connected to (--no-smtp, a skip list, a screened
        // address): nothing failed.
        (_, Some(f)) if f.kind == SmtpFailureKind::NotProbed => format!("not tested: {}", f.detail),
        (_, Some(f)) => format!(
            "{} failed: {}",
            f.phase.as_str(),
            if f.detail.is_empty() {
                format!("{:?}", f.kind).to_lowercase()
            } else {
                f.detail.clone()
            }
        ),
        (None, None) => "no TLS information".into(),
    }
}

/// Why an address fails when some of its chains authenticate and others do
/// not: which key types' certificates no record covers.
fn uncovered_reason(
    mine: &[usize],
    chains: &[(IpAddr, Vec<CertInfo>)],
    results: &[Option<&ChainResult>],
) -> Option<String> {
    let ok = |r: &Option<&ChainResult>| r.is_some_and(|c| !c.authenticated_by.is_empty());
    if !results.iter().any(ok) {
        return None;
    }
    let bad: Vec<String> = mine
        .iter()
        .zip(results)
        .filter(|(_, r)| !ok(r))
        .map(|(i, _)| {
            chains[*i]
                .1
                .first()
                .and_then(CertInfo::key_type)
                .map_or_else(|| "other-key".to_string(), |k| k.as_str().to_string())
        })
        .collect();
    Some(format!(
        "the {} certificate matches no usable TLSA record: senders that negotiate it cannot deliver",
        bad.join(" and ")
    ))
}

pub(super) fn cert_views(chain: &[CertInfo], records: &[TlsaRdata]) -> Vec<CertView> {
    let signed: Vec<Option<usize>> = records
        .iter()
        .map(|r| match r.usability() {
            Usability::Usable(u) => super::record_anchor::signed_depth(r, &u, chain),
            _ => None,
        })
        .collect();
    chain
        .iter()
        .enumerate()
        .map(|(depth, c)| CertView {
            depth,
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_after: c.not_after,
            spki_sha256: c
                .association(Selector::Spki, MatchingType::Sha256)
                .map(hex::encode),
            records: records
                .iter()
                .zip(&signed)
                .filter(|(r, _)| matches!(r.usability(), Usability::Usable(_)))
                .map(|(r, s)| CertMatch {
                    record: r.short(),
                    matched: super::dane::data_matches(r, std::slice::from_ref(c)).contains(&0)
                        && position_ok(r, depth),
                    signed: *s == Some(depth),
                })
                .collect(),
        })
        .collect()
}

/// Whether a record's usage allows matching at this depth.
fn position_ok(r: &TlsaRdata, depth: usize) -> bool {
    match r.usage {
        3 => depth == 0,
        2 => depth > 0,
        _ => false,
    }
}
