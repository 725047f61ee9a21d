//! What is known about one host while its rollover is judged: the names a
//! DANE-TA leaf may carry, the chains served now, and the two questions
//! every step asks of a record: does it authenticate NEW, and does it
//! authenticate what is served today?

use std::net::IpAddr;

use crate::core::cert::CertInfo;
use crate::core::dane::{RecordMatch, data_matches, match_record};
use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{HostEvidence, Lookup, LookupMeta, Outcome, Timestamp};
use crate::core::host::{HostContext, HostOutcome, evaluate_host};
use crate::core::rrset;
use crate::core::smtp::{completed_tls, presented};
use crate::core::tlsa::TlsaRdata;

use super::Input;

pub(super) struct HostFacts<'a> {
    pub input: &'a Input<'a>,
    pub h: &'a HostEvidence,
    /// Reference identifiers for DANE-TA (RFC 7672 §3.2.3).
    pub refs: Vec<String>,
    /// Chains served now, per address (one entry per distinct chain).
    pub live: Vec<(IpAddr, Vec<CertInfo>)>,
}

impl<'a> HostFacts<'a> {
    pub fn new(input: &'a Input<'a>, h: &'a HostEvidence) -> HostFacts<'a> {
        HostFacts {
            input,
            h,
            refs: reference_ids(input, h),
            live: live_chains(h),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.input.now
    }

    /// NEW's chain: the leaf, then the CA certificates it will be sent with.
    pub fn new_chain(&self) -> &'a [CertInfo] {
        &self.input.new.chain
    }

    pub fn new_spki(&self) -> Option<&'a [u8]> {
        self.input.new.chain[0].spki.as_deref()
    }

    pub fn authenticates_new(&self, r: &TlsaRdata) -> bool {
        authenticates(r, self.new_chain(), &self.refs, self.now())
    }

    pub fn any_authenticates_new(&self, set: &[TlsaRdata]) -> bool {
        set.iter().any(|r| self.authenticates_new(r))
    }

    pub fn authenticates_live(&self, r: &TlsaRdata) -> bool {
        self.live
            .iter()
            .any(|(_, c)| authenticates(r, c, &self.refs, self.now()))
    }

    /// The record's data matches a certificate served now (whether or not
    /// it authenticates it).
    pub fn matches_live_data(&self, r: &TlsaRdata) -> bool {
        self.live
            .iter()
            .any(|(_, c)| !data_matches(r, c).is_empty())
    }

    pub fn rrset_context(&self) -> rrset::Context<'_> {
        rrset::Context {
            host: &self.h.name,
            reference_ids: &self.refs,
            now: self.now(),
        }
    }

    /// `check`'s view of the host: the same findings and address verdicts.
    pub fn check_view(&self) -> HostOutcome {
        check_view(self.input, self.h)
    }

    /// `check`'s view of the host as if `records` were its published,
    /// secure TLSA RRset.
    pub fn check_view_with(&self, records: &[TlsaRdata]) -> HostOutcome {
        check_view(self.input, &with_records(self.h, records))
    }
}

/// The names a DANE-TA leaf may carry for this host (as `check` uses them):
/// the TLSA base domain, the MX name when it differs, and the next-hop
/// domain by local policy.
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

/// Every chain served now, per address: the default offer's and those
/// other key types get (a record for any of them is in use).
fn live_chains(h: &HostEvidence) -> Vec<(IpAddr, Vec<CertInfo>)> {
    h.smtp
        .iter()
        .filter(|p| completed_tls(p))
        .flat_map(|p| {
            presented(p).into_iter().map(|c| {
                (
                    p.address,
                    c.chain.iter().map(|d| CertInfo::parse(&d.0)).collect(),
                )
            })
        })
        .collect()
}

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

/// `h` with a secure TLSA answer holding `records` (a candidate as if published).
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
