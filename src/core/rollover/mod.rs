//! Certificate rollover: may a new certificate (NEW) be deployed now
//! without breaking mail from DANE senders? RFC 7671 §8.1 and the usual
//! procedure ("publish the new TLSA record next to the current one, wait
//! for the TTL, swap, test, remove the old record"), checked step by step.
//! One file per step:
//!
//! - [`needs`]: what NEW needs in DNS (the records to publish) and why a
//!   record would not authenticate it;
//! - [`publication`]: what the resolver and each authoritative server
//!   address publish;
//! - [`timing`]: when every server first served NEW's record, the TTL, the
//!   margin, and from when the swap is safe (with the state kept across runs);
//! - [`live`]: whether the certificate served now stays covered until the swap;
//! - [`candidate`]: a planned RRset, judged before it is published;
//! - [`decision`]: the readiness per host and per domain, with its reasons;
//! - [`retire`]: after the swap, the records that match nothing served;
//! - [`procedure`]: the steps as a procedure that acts (`rollover`), and
//!   what it remembers between runs.
//!
//! Pure like the rest of the core: evidence (MX hosts with their TLSA RRset
//! as the resolver validated it, each authoritative server's answer, and
//! the chains served now), NEW, the time and what earlier runs remembered
//! go in; a [`Decision`] with typed [`Reason`]s, the records to publish and
//! the findings come out. Matching is `dane::match_record`; record findings
//! come from `host::evaluate_host` and `rrset::evaluate`, exactly as `check`
//! computes them. `report::rollover` words the decision.

pub mod candidate;
pub mod decision;
mod facts;
#[cfg(test)]
mod fixtures;
pub mod live;
pub mod needs;
pub mod procedure;
pub mod publication;
pub mod reason;
pub mod retire;
pub mod timing;

pub use candidate::CandidateRecord;
pub use decision::{Decision, Headline, HostDecision, Mode, decide};
pub use live::{LiveOutcome, LiveStatus};
pub use needs::NewCertificate;
pub use publication::{RecordStatus, ServerOutcome, ServerStatus};
pub use reason::{Cause, FirstSeen, Note, Readiness, Reason, ServerRef};
pub use timing::{HostState, STATE_SCHEMA_VERSION, State};

use super::evidence::{Evidence, Timestamp};

/// Everything one decision needs.
pub struct Input<'a> {
    /// The MX RRset (for the domain-level state) and the hosts, each with
    /// its nameserver probes and the SMTP probes of its addresses.
    pub evidence: &'a Evidence,
    /// Hosts named by the operator; empty: every host of the evidence.
    /// Named hosts make the MX state context rather than a reason.
    pub hosts: &'a [String],
    pub new: &'a NewCertificate,
    /// A candidate RRset not yet in DNS.
    pub candidate: Option<&'a [CandidateRecord]>,
    pub now: Timestamp,
    /// Extra time on top of the TTL, for resolvers that keep records longer.
    pub margin_secs: u64,
    /// The operator asserts that NEW's record was on every server by then.
    pub published_before: Option<Timestamp>,
    /// Also accept the next-hop domain as a DANE-TA name (RFC 7672 §3.2.3
    /// local policy).
    pub accept_nexthop_name: bool,
}
