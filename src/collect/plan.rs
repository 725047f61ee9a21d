//! Which addresses of an MX host are probed over SMTP, and why the others
//! are not. A probe that was not made is still recorded, so that the core
//! can say "not tested" instead of nothing.

use std::net::IpAddr;

use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{
    Families, HostEvidence, Outcome, SmtpFailure, SmtpFailureKind, SmtpPhase, SmtpProbe,
};
use crate::skip::SkipList;

/// What the collector was asked to probe.
#[derive(Clone, Copy, Debug)]
pub struct ProbePolicy {
    /// Probe hosts without secure TLSA too.
    pub all_hosts: bool,
    pub families: Families,
    pub port: u16,
}

/// Whether an address is probed, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeDecision {
    Probe,
    Skip(String),
}

/// Whether a host's TLSA answer obliges senders to use TLS with it.
pub fn has_secure_tlsa(h: &HostEvidence) -> bool {
    h.tlsa.as_ref().is_some_and(|t| {
        t.meta.outcome == Outcome::Answer
            && t.meta.dnssec == DnssecStatus::Secure
            && !t.records.is_empty()
    })
}

/// Decides, per address of a host, whether to probe it.
/// `smtp`: SMTP is probed at all (`--no-smtp` turns it off).
pub fn probe_plan(
    h: &HostEvidence,
    smtp: bool,
    policy: &ProbePolicy,
    skip: &SkipList,
) -> Vec<(IpAddr, ProbeDecision)> {
    let relevant = policy.all_hosts || has_secure_tlsa(h);
    let skipped_host = skip.domain(&h.name);
    h.a.records
        .iter()
        .chain(&h.aaaa.records)
        .filter(|_| relevant)
        .map(|ip| {
            let decision = if !smtp {
                ProbeDecision::Skip("SMTP not probed (--no-smtp)".into())
            } else if ip.is_ipv4() && !policy.families.ipv4 {
                ProbeDecision::Skip("IPv4 disabled (-6)".into())
            } else if ip.is_ipv6() && !policy.families.ipv6 {
                ProbeDecision::Skip("IPv6 disabled (-4)".into())
            } else if let Some(entry) = skipped_host {
                ProbeDecision::Skip(format!("{entry} is on the skip list"))
            } else if let Some(why) = skip.refusal(*ip) {
                ProbeDecision::Skip(why.to_string())
            } else {
                ProbeDecision::Probe
            };
            (*ip, decision)
        })
        .collect()
}

/// The evidence entry for an address that was deliberately not probed.
pub fn not_probed(address: IpAddr, port: u16, why: String) -> SmtpProbe {
    SmtpProbe {
        failure: Some(SmtpFailure {
            phase: SmtpPhase::Connect,
            kind: SmtpFailureKind::NotProbed,
            detail: why,
        }),
        ..SmtpProbe::unprobed(address, port)
    }
}
