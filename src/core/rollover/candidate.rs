//! A candidate RRset, judged before it goes into the zone (RFC 7671 §8.1:
//! the new record is published next to the current one, never instead of
//! it): once published, would it authenticate NEW and every chain served
//! now? If so, the published records' timing decides when NEW may go live.

use crate::core::finding::Finding;
use crate::core::tlsa::TlsaRdata;

use super::decision::{HostDecision, check_findings, dns_gate, finish};
use super::facts::HostFacts;
use super::live::{self, Under};
use super::needs::{cause_not_new, findings_about_new, missing};
use super::publication::RecordStatus;
use super::reason::{Readiness, Reason, Reasons};

/// One record of a candidate RRset, with the owner name its zone-file
/// line gave, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateRecord {
    pub owner: Option<String>,
    pub rdata: TlsaRdata,
}

impl CandidateRecord {
    /// Whether the line is meant for the TLSA name `_25._tcp.<base>`: no
    /// owner, the absolute name, or a relative name that is a prefix of it
    /// (relative to an `$ORIGIN` the caller does not know).
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

/// The candidate's records for this host, in order, without duplicates.
fn rrset_for(facts: &HostFacts<'_>, candidate: &[CandidateRecord]) -> Vec<TlsaRdata> {
    let mut v: Vec<TlsaRdata> = Vec::new();
    for c in candidate
        .iter()
        .filter(|c| c.applies_to(&facts.h.tlsa_base))
    {
        if !v.contains(&c.rdata) {
            v.push(c.rdata.clone());
        }
    }
    v
}

/// The decision on a candidate RRset; `published` is the decision on the
/// records in DNS, whose timing applies once the candidate is good.
pub(super) fn judge(
    facts: &HostFacts<'_>,
    candidate: &[CandidateRecord],
    published: &HostDecision,
) -> HostDecision {
    let mut d = HostDecision::empty(facts.h);
    let mut reasons = Reasons::default();
    let rrset = rrset_for(facts, candidate);
    let base_view = facts.check_view();
    if dns_gate(facts, &base_view, true, &mut reasons) {
        d.findings = base_view.findings;
        return finish(d, reasons);
    }
    if rrset.is_empty() {
        reasons.add(Reason::CandidateEmpty {
            tlsa_base: facts.h.tlsa_base.clone(),
        });
        d.publish = missing(facts, &[]);
        return finish(d, reasons);
    }
    let view = facts.check_view_with(&rrset);
    let new_ok = facts.any_authenticates_new(&rrset);
    let mut findings: Vec<Finding> = check_findings(facts, &view, &rrset);
    findings.extend(findings_about_new(facts, &rrset, new_ok));
    d.live = live::check(facts, &view, Under::Candidate, &mut reasons, &mut d.notes);
    d.records = rrset
        .iter()
        .map(|rec| candidate_status(facts, published, rec))
        .collect();
    if !new_ok {
        reasons.add(Reason::CandidateMissesNew {
            cause: cause_not_new(&findings),
        });
        d.publish = missing(facts, &rrset);
    }
    if reasons.worst() == Readiness::Safe {
        d.publish = rrset
            .iter()
            .filter(|rec| !served_now(published, rec))
            .cloned()
            .collect();
        then_published(facts, published, &mut d, &mut reasons);
    }
    d.findings = findings;
    finish(d, reasons)
}

fn candidate_status(
    facts: &HostFacts<'_>,
    published: &HostDecision,
    rec: &TlsaRdata,
) -> RecordStatus {
    let p = published.records.iter().find(|x| x.record == *rec);
    RecordStatus {
        record: rec.clone(),
        usable: matches!(rec.usability(), crate::core::tlsa::Usability::Usable(_)),
        new: facts.authenticates_new(rec),
        live: facts.authenticates_live(rec),
        resolver: p.is_some_and(|x| x.resolver),
        servers: p.map(|x| x.servers).unwrap_or(0),
        candidate: true,
    }
}

/// Whether a server or the resolver serves the record already.
fn served_now(published: &HostDecision, rec: &TlsaRdata) -> bool {
    published
        .records
        .iter()
        .any(|x| x.record == *rec && (x.servers > 0 || x.resolver))
}

/// A good candidate: the published records decide when.
fn then_published(
    facts: &HostFacts<'_>,
    published: &HostDecision,
    d: &mut HostDecision,
    reasons: &mut Reasons,
) {
    // A decision always carries at least the reason for its readiness.
    let first = || {
        Box::new(
            published
                .reasons
                .first()
                .cloned()
                .unwrap_or(Reason::Ready { first_seen: None }),
        )
    };
    match published.readiness {
        Readiness::Safe => reasons.add(Reason::CandidatePublished { published: first() }),
        Readiness::Undetermined => {
            for r in published
                .reasons
                .iter()
                .filter(|r| r.readiness() == Readiness::Undetermined)
            {
                reasons.add(r.clone());
            }
        }
        Readiness::Wait if published.safe_at.is_some() || d.publish.is_empty() => {
            d.safe_at = published.safe_at;
            d.first_seen = published.first_seen;
            reasons.add(Reason::CandidateAging { published: first() });
        }
        _ => reasons.add(Reason::CandidateToPublish {
            unserved: d.publish.len(),
            ttl: published.ttl,
            margin_secs: facts.input.margin_secs,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_select_the_host() {
        let r: TlsaRdata = "3 1 1 00112233".parse().unwrap();
        let c = |o: Option<&str>| CandidateRecord {
            owner: o.map(String::from),
            rdata: r.clone(),
        };
        let host = "mx1.example.net";
        assert!(c(None).applies_to(host));
        assert!(c(Some("_25._tcp.mx1.example.net.")).applies_to(host));
        assert!(c(Some("_25._TCP.MX1.example.net.")).applies_to(host));
        assert!(c(Some("_25._tcp.mx1")).applies_to(host));
        assert!(!c(Some("_25._tcp.mx2.example.net.")).applies_to(host));
        assert!(!c(Some("_25._tcp.mx2")).applies_to(host));
    }
}
