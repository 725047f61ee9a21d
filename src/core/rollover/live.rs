//! Until the swap, the certificate served now must stay authenticated
//! (RFC 7671 §8.1: the old record stays until the new certificate is in
//! place). Each address is judged under the RRset being tested: the
//! published one, or a candidate as if it were published.

use std::net::IpAddr;

use serde::Serialize;

use crate::core::cert::CertInfo;
use crate::core::host::HostOutcome;
use crate::core::smtp::{SmtpResult, classify};
use crate::core::verdict::HostVerdict;

use super::facts::HostFacts;
use super::reason::{Note, Reason, Reasons};

/// What an address serves now, under the RRset being tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveOutcome {
    Authenticated,
    NotAuthenticated,
    Failed,
    Untested,
    NotProbed,
    NotDane,
}

impl LiveOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveOutcome::Authenticated => "authenticated",
            LiveOutcome::NotAuthenticated => "not-authenticated",
            LiveOutcome::Failed => "failed",
            LiveOutcome::Untested => "untested",
            LiveOutcome::NotProbed => "not-probed",
            LiveOutcome::NotDane => "not-dane",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveStatus {
    pub address: IpAddr,
    pub status: LiveOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<String>,
    /// The address serves NEW's key already.
    pub serving_new: bool,
}

/// Which RRset the live check judges.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Under {
    /// The published records; `new_authenticated`: they carry NEW too.
    Published { new_authenticated: bool },
    /// A candidate RRset, not published yet.
    Candidate,
}

/// Judges every address of `view` (the RRset under test against the
/// chains served now), adding reasons and notes.
pub(super) fn check(
    facts: &HostFacts<'_>,
    view: &HostOutcome,
    under: Under,
    reasons: &mut Reasons,
    notes: &mut Vec<Note>,
) -> Vec<LiveStatus> {
    view.audit
        .addresses
        .iter()
        .map(|a| {
            let probe = facts.h.smtp.iter().find(|p| p.address == a.address);
            let leaf = probe
                .and_then(|p| p.chain.first())
                .map(|d| CertInfo::parse(&d.0));
            let serving_new = leaf
                .as_ref()
                .and_then(|l| l.spki.as_deref())
                .is_some_and(|s| Some(s) == facts.new_spki());
            let label = leaf.as_ref().map(|l| l.label());
            let (status, detail) = match probe.map(classify) {
                None => (LiveOutcome::NotProbed, Some("not probed".to_string())),
                Some(SmtpResult::NotProbed(why)) => (LiveOutcome::NotProbed, Some(why)),
                Some(SmtpResult::Untested { message, .. }) => {
                    reasons.add(Reason::AddressUntested {
                        address: a.address,
                        message: message.clone(),
                    });
                    (LiveOutcome::Untested, Some(message))
                }
                Some(SmtpResult::Failed { message, .. }) => {
                    reasons.add(Reason::AddressFails {
                        address: a.address,
                        message: message.clone(),
                    });
                    (LiveOutcome::Failed, Some(message))
                }
                Some(SmtpResult::Tls) if a.verdict == HostVerdict::NotDane => {
                    (LiveOutcome::NotDane, None)
                }
                Some(SmtpResult::Tls) if !a.authenticated_by.is_empty() => {
                    (LiveOutcome::Authenticated, None)
                }
                Some(SmtpResult::Tls) => {
                    if !serving_new {
                        let leaf = label.clone().unwrap_or_else(|| "none".into());
                        unauthenticated(a.address, leaf, under, reasons, notes);
                    }
                    (LiveOutcome::NotAuthenticated, None)
                }
            };
            LiveStatus {
                address: a.address,
                status,
                detail,
                leaf: label,
                serving_new,
            }
        })
        .collect()
}

/// An address whose current certificate the RRset under test does not
/// authenticate (an address serving NEW already is judged with NEW).
fn unauthenticated(
    address: IpAddr,
    leaf: String,
    under: Under,
    reasons: &mut Reasons,
    notes: &mut Vec<Note>,
) {
    match under {
        Under::Candidate => reasons.add(Reason::CandidateBreaksLive { address, leaf }),
        Under::Published {
            new_authenticated: true,
        } => notes.push(Note::LiveFixedByNew { address, leaf }),
        Under::Published {
            new_authenticated: false,
        } => reasons.add(Reason::LiveNotAuthenticated { address, leaf }),
    }
}
