//! Step 1 of a rollover (RFC 7671 §8.1; the seed's "publish the new TLSA
//! record"): what the new certificate (NEW) needs in DNS, which records of
//! an RRset would carry it, and why the others would not.

use std::net::{IpAddr, Ipv6Addr};

use crate::core::association;
use crate::core::cert::{CertInfo, PemItem};
use crate::core::dane::data_matches;
use crate::core::diagnosis::diagnose;
use crate::core::finding::{Code, Finding, Severity};
use crate::core::issuers;
use crate::core::rrset::{self, Served};
use crate::core::tlsa::{TlsaRdata, Usability, Usage};

use super::facts::HostFacts;
use super::reason::Cause;

/// The new certificate as it will be served, and the records it needs.
#[derive(Clone, Debug)]
pub struct NewCertificate {
    /// The leaf, then the CA certificates it will be sent with.
    pub chain: Vec<CertInfo>,
    /// The records to publish for it (`3 1 1` for its key, `2 1 1` for its
    /// issuer when the chain holds one).
    pub records: Vec<TlsaRdata>,
}

impl NewCertificate {
    /// From DER certificates, leaf first. `None` for an empty list.
    pub fn from_ders(ders: &[Vec<u8>]) -> Option<NewCertificate> {
        if ders.is_empty() {
            return None;
        }
        let items: Vec<PemItem> = ders.iter().cloned().map(PemItem::Cert).collect();
        Some(NewCertificate {
            chain: ders.iter().map(|d| CertInfo::parse(d)).collect(),
            records: association::recommended(&items),
        })
    }

    pub fn leaf(&self) -> &CertInfo {
        &self.chain[0]
    }
}

/// NEW is served nowhere yet, and `rrset::evaluate` judges chains per
/// address: NEW is judged as if served at the unspecified address, which
/// no MX address can be, and what is said there is said about NEW.
const AS_IF_SERVED_AT: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// The records for NEW that `rrset` lacks.
pub(super) fn missing(facts: &HostFacts<'_>, rrset: &[TlsaRdata]) -> Vec<TlsaRdata> {
    facts
        .input
        .new
        .records
        .iter()
        .filter(|r| !rrset.contains(r))
        .cloned()
        .collect()
}

/// How `rrset` treats NEW: the findings that explain why it is not
/// authenticated, and the warnings about the records that will carry it.
pub(super) fn findings_about_new(
    facts: &HostFacts<'_>,
    rrset: &[TlsaRdata],
    new_authenticated: bool,
) -> Vec<Finding> {
    let served = [Served {
        address: AS_IF_SERVED_AT,
        chain: facts.new_chain(),
    }];
    let mut out: Vec<Finding> = rrset::evaluate(&facts.rrset_context(), rrset, &served)
        .findings
        .into_iter()
        .filter(|f| !said_otherwise(f.code))
        .map(|f| about_new(facts, f))
        .collect();
    out.extend(
        rrset
            .iter()
            .filter_map(|r| ta_not_in_new_chain(facts, r))
            .map(|f| if new_authenticated { f.secondary() } else { f }),
    );
    if new_authenticated {
        out.extend(no_backup_after_rollover(facts, rrset, &served));
    }
    out
}

/// Codes a rollover says in its own words (or that concern the old key).
fn said_otherwise(code: Code) -> bool {
    matches!(
        code,
        Code::TlsaStale | Code::TlsaNoMatch | Code::TlsaNoBackup | Code::DaneTaNotInChain
    )
}

fn about_new(facts: &HostFacts<'_>, mut f: Finding) -> Finding {
    if f.address == Some(AS_IF_SERVED_AT) {
        f.address = None;
        f.subject = format!("{} (new certificate)", facts.h.name);
        f.message = format!("new certificate: {}", f.message);
    }
    f
}

/// A DANE-TA record whose CA is not in NEW's chain file: a server
/// configured with that chain would not send it (RFC 7671 §5.2.2).
fn ta_not_in_new_chain(facts: &HostFacts<'_>, r: &TlsaRdata) -> Option<Finding> {
    let usable_ta = matches!(r.usability(), Usability::Usable(u) if u.usage == Usage::DaneTa);
    let new = facts.new_chain();
    if !usable_ta
        || facts.authenticates_new(r)
        || data_matches(r, new).iter().any(|d| *d > 0)
        || diagnose(r, new).is_some()
    {
        return None;
    }
    let host = facts.h.name.as_str();
    let live_ca = facts.live.iter().find_map(|(_, chain)| {
        data_matches(r, chain)
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
    let chain = if new.len() > 1 {
        format!(
            "its chain file holds {}",
            new[1..]
                .iter()
                .map(|c| format!("\"{}\"", c.label()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        "its chain file holds no CA certificate".to_string()
    };
    Some(
        Finding::new(Code::DaneTaNotInChain, format!("_25._tcp.{host} TLSA {}", r.short()))
            .msg(format!(
                "`{}` pins {what}, which is not in the new certificate's chain ({chain}): a server configured with that chain does not send it, so the record cannot authenticate the new certificate",
                r.short()
            ))
            .fix(
                "Put the issuing CA certificate after the new certificate in the chain file the server will use, so that the server sends it; or publish a `3 1 1` record for the new key.",
            )
            .at_host(host),
    )
}

/// Step 6 (remove the old records): would more than one way to
/// authenticate NEW remain?
fn no_backup_after_rollover(
    facts: &HostFacts<'_>,
    rrset: &[TlsaRdata],
    served: &[Served<'_>],
) -> Vec<Finding> {
    let after: Vec<TlsaRdata> = rrset
        .iter()
        .filter(|r| {
            facts.authenticates_new(r)
                || !(facts.matches_live_data(r) || facts.authenticates_live(r))
        })
        .cloned()
        .collect();
    rrset::evaluate(&facts.rrset_context(), &after, served)
        .findings
        .into_iter()
        .filter(|f| f.code == Code::TlsaNoBackup)
        .map(|mut f| {
            f.message = format!(
                "after the swap and the removal of the old records: {}",
                f.message
            );
            f
        })
        .collect()
}

/// Why NEW is not authenticated, from the findings: the first error that
/// names a cause.
pub(super) fn cause_not_new(findings: &[Finding]) -> Option<Cause> {
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
        .map(|f| Cause {
            code: f.code,
            message: f
                .message
                .trim_start_matches("new certificate: ")
                .to_string(),
        })
}
