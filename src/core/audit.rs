//! The result of evaluating one domain: verdicts, findings and the evidence
//! views that reports show. Built only by [`super::evaluate`].

use std::net::IpAddr;

use serde::Serialize;

use super::dnssec::DnssecStatus;
use super::evidence::{Outcome, Timestamp, TlsInfo};
use super::finding::{Finding, Severity};
use super::verdict::{DomainVerdict, HostVerdict};

/// Non-exhaustive: only the core builds audits, so no caller can claim a
/// verdict the evaluation did not compute.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct DomainAudit {
    pub domain: String,
    pub verdict: DomainVerdict,
    /// Why the verdict is `incomplete` (or another short explanation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The highest severity among the findings, if any.
    pub worst_severity: Option<Severity>,
    pub evaluated_at: Timestamp,
    pub collected_at: Timestamp,
    pub mx: RrsetView,
    pub findings: Vec<Finding>,
    pub hosts: Vec<HostAudit>,
}

impl DomainAudit {
    /// Whether some finding says a target could not be tested.
    pub fn incomplete(&self) -> bool {
        self.verdict == DomainVerdict::Incomplete
    }

    /// Findings that state a problem (not "could not determine"), at or above `min`.
    pub fn determined_at_least(&self, min: Severity) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |f| f.severity >= min && !f.undetermined())
    }

    /// Hosts whose TLSA RRset is secure and has usable records.
    pub fn dane_hosts(&self) -> usize {
        self.hosts.iter().filter(|h| h.dane).count()
    }
}

/// One RRset or denial as shown in reports.
#[derive(Clone, Debug, Serialize)]
pub struct RrsetView {
    pub qname: String,
    pub outcome: Outcome,
    pub dnssec: DnssecStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// The resolver's AD bit, when the resolver was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad: Option<bool>,
    /// Failure kind or extended DNS error, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The CNAME hops the answer came through, each "target (status)": an
    /// alias changes where the records live and whose signatures count.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostAudit {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preference: Option<u16>,
    pub tlsa_base: String,
    pub verdict: HostVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Secure TLSA with at least one usable record: DANE applies.
    pub dane: bool,
    pub a: RrsetView,
    pub aaaa: RrsetView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlsa: Option<RrsetView>,
    pub records: Vec<RecordView>,
    pub addresses: Vec<AddressAudit>,
    /// When the first signed RRset on this host's DANE path (MX, A, AAAA,
    /// TLSA, and the DNSKEY and DS RRsets up to the trust anchor) loses its
    /// last valid signature: a monitor alerts before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub earliest_signature_expiry: Option<SignatureExpiry>,
}

/// The first signature expiry on a path.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SignatureExpiry {
    /// The latest expiration among that RRset's signatures.
    pub at: Timestamp,
    /// The RRset, `owner TYPE`.
    pub rrset: String,
    /// The zone that signed it.
    pub signer: String,
    /// The key of its latest signature.
    pub key_tag: u16,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecordView {
    /// Presentation form, `U S M hex`.
    pub record: String,
    pub usable: bool,
    /// Why the record is unusable, or what it was diagnosed as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Whether it authenticated at least one address.
    pub matched: bool,
    /// Whether any served chain was available to match it against.
    pub tested: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AddressAudit {
    pub address: IpAddr,
    pub verdict: HostVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What SMTP did, in one line.
    pub smtp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    pub chain: Vec<CertView>,
    /// Records that authenticated this address: every chain it presents is
    /// authenticated by these together; empty when some chain is not.
    pub authenticated_by: Vec<String>,
    /// What the server presented to each key type asked for, when the probe
    /// asked (`--key-types`); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_types: Vec<KeyTypeView>,
}

/// The certificate one server key type gets at an address.
#[derive(Clone, Debug, Serialize)]
pub struct KeyTypeView {
    /// The key type presented (`ECDSA`, `RSA`, `Ed25519`); for a handshake
    /// that got none, what it asked for (`RSA or Ed25519`, `any key type`).
    pub key_type: String,
    /// `negotiated` (the default offer), `handshake` (an offer of only this
    /// key type's signature algorithms) or `legacy-hello`.
    pub via: &'static str,
    /// Whether the server presented a certificate of this key type.
    pub offered: bool,
    /// The TLS parameters, or why nothing was presented.
    pub detail: String,
    /// Whether the TLSA records authenticate this chain (absent where DANE
    /// does not apply or nothing was presented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<bool>,
    /// When the chain is one shown already: `address` (the address's
    /// `chain`) or the key type whose chain it equals. `chain` is then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_chain_as: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<CertView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CertView {
    pub depth: usize,
    pub subject: String,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
    /// `3 1 1` data of this certificate, for copying into a zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    /// Every usable record, matched or not against this certificate.
    pub records: Vec<CertMatch>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CertMatch {
    pub record: String,
    pub matched: bool,
    /// A `2 0 0` or `2 1 0` record's own anchor issued this certificate
    /// (RFC 7671 §5.2.2: the CA itself need not be sent).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub signed: bool,
}
