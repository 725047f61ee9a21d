//! Why a rollover is or is not ready: one typed reason per observation, so
//! that callers (the `rollover` state machine, tests) act on what was found,
//! and only the renderer turns it into words.

use std::net::IpAddr;

use serde::Serialize;

use crate::core::evidence::{NsProbe, Timestamp};
use crate::core::finding::Code;

/// How ready a host (or the domain: its worst host) is for the new
/// certificate. Ordered by how strongly it forbids the swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// NEW can be deployed now.
    Safe,
    /// Not yet: a server lags, or caches may still hold the old RRset.
    Wait,
    /// Something could not be determined (DNS failure, SMTP unreachable).
    Undetermined,
    /// Deploying NEW now would break delivery from DANE senders (or mail
    /// fails already for a reason the swap does not fix).
    Unsafe,
}

impl Readiness {
    pub fn as_str(self) -> &'static str {
        match self {
            Readiness::Safe => "safe",
            Readiness::Wait => "wait",
            Readiness::Undetermined => "undetermined",
            Readiness::Unsafe => "unsafe",
        }
    }
}

impl std::fmt::Display for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authoritative server address, as reasons name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRef {
    pub server: String,
    pub address: IpAddr,
    pub serial: Option<u32>,
}

impl ServerRef {
    pub(super) fn of(p: &NsProbe) -> ServerRef {
        ServerRef {
            server: p.server.trim_end_matches('.').to_string(),
            address: p.address,
            serial: p.soa_serial,
        }
    }
}

/// A finding that explains a decision (its code, and its message as the
/// core worded it for the evidence at hand).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    pub code: Code,
    pub message: String,
}

/// How the first sighting of NEW's record on every server is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstSeen {
    /// This run saw it first: an earlier publication is unknown.
    ThisRun,
    /// Remembered from an earlier run.
    Remembered,
    /// The operator asserted an earlier publication.
    Asserted,
}

/// One reason that keeps a host (or the domain) from `safe`, or says why
/// it is safe. Each reason decides one [`Readiness`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    // -- the domain (RFC 7672 §2.2.1: the MX RRset) --
    MxLookupFailed {
        domain: String,
    },
    MxBogus {
        domain: String,
    },
    NoMailHost {
        domain: String,
    },
    // -- the host's DNS, before any record is judged --
    /// An address or TLSA lookup failed (the finding says which).
    LookupFailed {
        cause: Cause,
    },
    /// The host's addresses (or the proof that one family is absent) are bogus.
    AddressesBogus {
        host: String,
        cause: Cause,
    },
    /// The TLSA RRset (or its denial) is bogus.
    TlsaBogus {
        host: String,
        cause: Cause,
    },
    /// DANE does not apply: the addresses are not signed (RFC 7672 §2.2.2).
    AddressesUnsigned {
        host: String,
    },
    /// DANE does not apply: the TLSA RRset is not signed.
    TlsaUnsigned {
        host: String,
    },
    /// DANE does not apply: no TLSA record.
    NoTlsa {
        host: String,
    },
    // -- step 2: publication on every authoritative server --
    ServersUnknown {
        tlsa_base: String,
    },
    /// No published record authenticates NEW. `listed`: the records to
    /// publish are in the decision.
    NewNotPublished {
        cause: Option<Cause>,
        listed: bool,
    },
    /// The resolver still has a record for NEW, no server does any more.
    NewWithdrawn {
        lacking: Vec<ServerRef>,
    },
    NotOnEveryServer {
        having: Vec<ServerRef>,
        lacking: Vec<ServerRef>,
    },
    ServersSilent {
        servers: Vec<(ServerRef, String)>,
    },
    // -- step 3: caches (RFC 7671 §8.1: TTL, plus a margin) --
    CachesMayHoldOldRrset {
        first_seen: Timestamp,
        how: FirstSeen,
        ttl: u32,
        margin_secs: u64,
        safe_at: Timestamp,
    },
    ResolverStale,
    DifferentRecordsPerServer {
        safe_at: Timestamp,
    },
    // -- the certificate served now --
    AddressUntested {
        address: IpAddr,
        message: String,
    },
    AddressFails {
        address: IpAddr,
        message: String,
    },
    CandidateBreaksLive {
        address: IpAddr,
        leaf: String,
    },
    LiveNotAuthenticated {
        address: IpAddr,
        leaf: String,
    },
    // -- a candidate RRset (not yet published) --
    CandidateEmpty {
        tlsa_base: String,
    },
    CandidateMissesNew {
        cause: Option<Cause>,
    },
    /// The candidate is good and the published records already are.
    CandidatePublished {
        published: Box<Reason>,
    },
    /// The candidate is good and published; the published records' timing decides.
    CandidateAging {
        published: Box<Reason>,
    },
    /// The candidate is good: publish it, then wait.
    CandidateToPublish {
        unserved: usize,
        ttl: Option<u32>,
        margin_secs: u64,
    },
    // -- step 4: ready --
    Ready {
        first_seen: Option<Timestamp>,
    },
}

impl Reason {
    /// The readiness this reason decides.
    pub fn readiness(&self) -> Readiness {
        use Reason::*;
        match self {
            AddressesUnsigned { .. }
            | TlsaUnsigned { .. }
            | NoTlsa { .. }
            | CandidatePublished { .. }
            | Ready { .. } => Readiness::Safe,
            NotOnEveryServer { .. }
            | CachesMayHoldOldRrset { .. }
            | ResolverStale
            | DifferentRecordsPerServer { .. }
            | CandidateAging { .. }
            | CandidateToPublish { .. } => Readiness::Wait,
            MxLookupFailed { .. }
            | NoMailHost { .. }
            | LookupFailed { .. }
            | ServersUnknown { .. }
            | ServersSilent { .. }
            | AddressUntested { .. } => Readiness::Undetermined,
            MxBogus { .. }
            | AddressesBogus { .. }
            | TlsaBogus { .. }
            | NewNotPublished { .. }
            | NewWithdrawn { .. }
            | AddressFails { .. }
            | CandidateBreaksLive { .. }
            | LiveNotAuthenticated { .. }
            | CandidateEmpty { .. }
            | CandidateMissesNew { .. } => Readiness::Unsafe,
        }
    }

    /// The reason's code, as tests and the JSON name it.
    pub fn code(&self) -> &'static str {
        use Reason::*;
        match self {
            MxLookupFailed { .. } => "mx-lookup-failed",
            MxBogus { .. } => "mx-bogus",
            NoMailHost { .. } => "no-mail-host",
            LookupFailed { .. } => "lookup-failed",
            AddressesBogus { .. } => "addresses-bogus",
            TlsaBogus { .. } => "tlsa-bogus",
            AddressesUnsigned { .. } => "addresses-unsigned",
            TlsaUnsigned { .. } => "tlsa-unsigned",
            NoTlsa { .. } => "no-tlsa",
            ServersUnknown { .. } => "servers-unknown",
            NewNotPublished { .. } => "new-not-published",
            NewWithdrawn { .. } => "new-withdrawn",
            NotOnEveryServer { .. } => "not-on-every-server",
            ServersSilent { .. } => "servers-silent",
            CachesMayHoldOldRrset { .. } => "caches-may-hold-old-rrset",
            ResolverStale => "resolver-stale",
            DifferentRecordsPerServer { .. } => "different-records-per-server",
            AddressUntested { .. } => "address-untested",
            AddressFails { .. } => "address-fails",
            CandidateBreaksLive { .. } => "candidate-breaks-live",
            LiveNotAuthenticated { .. } => "live-not-authenticated",
            CandidateEmpty { .. } => "candidate-empty",
            CandidateMissesNew { .. } => "candidate-misses-new",
            CandidatePublished { .. } => "candidate-published",
            CandidateAging { .. } => "candidate-aging",
            CandidateToPublish { .. } => "candidate-to-publish",
            Ready { .. } => "ready",
        }
    }
}

/// Something worth knowing that does not decide the readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The MX RRset is unsigned: hosts are still judged (senders reach
    /// them through other domains).
    MxInsecure {
        domain: String,
    },
    /// Hosts were named explicitly: the MX state is context, not a reason.
    MxContext {
        reason: Reason,
    },
    NotAnMxHost {
        host: String,
        domain: String,
    },
    /// SMTP was not probed on request: the live certificate is unknown.
    SmtpNotProbed,
    /// The TLSA name is an alias: its target zone's servers were not asked.
    TlsaAlias {
        tlsa_base: String,
    },
    /// The authoritative servers were not asked on request.
    ServersNotAsked,
    /// No TLSA yet: the records that would protect the host.
    ProtectWithDane {
        host: String,
        tlsa_base: String,
        records: Vec<crate::core::tlsa::TlsaRdata>,
    },
    /// The live certificate fails already; NEW fixes it.
    LiveFixedByNew {
        address: IpAddr,
        leaf: String,
    },
}

/// A set of reasons; the worst decides.
#[derive(Default)]
pub(super) struct Reasons {
    items: Vec<Reason>,
}

impl Reasons {
    pub(super) fn add(&mut self, r: Reason) {
        self.items.push(r);
    }

    pub(super) fn worst(&self) -> Readiness {
        self.items
            .iter()
            .map(Reason::readiness)
            .max()
            .unwrap_or(Readiness::Safe)
    }

    /// Worst first; within a readiness, the order of discovery.
    pub(super) fn sorted(mut self) -> Vec<Reason> {
        self.items.sort_by_key(|r| std::cmp::Reverse(r.readiness()));
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_orders_by_harm() {
        assert!(Readiness::Unsafe > Readiness::Undetermined);
        assert!(Readiness::Undetermined > Readiness::Wait);
        assert!(Readiness::Wait > Readiness::Safe);
    }

    #[test]
    fn the_worst_reason_comes_first_then_discovery_order() {
        let mut r = Reasons::default();
        r.add(Reason::ResolverStale);
        r.add(Reason::NoMailHost { domain: "a".into() });
        r.add(Reason::Ready { first_seen: None });
        r.add(Reason::MxBogus { domain: "b".into() });
        r.add(Reason::MxLookupFailed { domain: "c".into() });
        assert_eq!(r.worst(), Readiness::Unsafe);
        let codes: Vec<&str> = r.sorted().iter().map(Reason::code).collect();
        assert_eq!(
            codes,
            [
                "mx-bogus",
                "no-mail-host",
                "mx-lookup-failed",
                "resolver-stale",
                "ready"
            ]
        );
    }
}
