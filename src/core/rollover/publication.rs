//! Step 2 of a rollover: what the resolver and each authoritative server
//! address publish at the TLSA name. A resolver answers from one server at
//! a time, so a record counts as published only when every server that
//! answers serves it (a lagging secondary is what senders' resolvers may ask).

use std::net::IpAddr;

use serde::Serialize;

use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{FailureKind, HostEvidence, NsProbe, Outcome};
use crate::core::tlsa::{TlsaRdata, Usability};

use super::facts::HostFacts;
use super::reason::ServerRef;

/// What one authoritative server address serves at the TLSA name.
pub(super) struct ServerAnswer<'a> {
    pub probe: &'a NsProbe,
    /// `None`: no answer; `Some`: its RRset (empty for a denial).
    pub records: Option<Vec<TlsaRdata>>,
    /// The name is an alias at this server (its records live elsewhere).
    pub alias: bool,
}

impl ServerAnswer<'_> {
    pub fn answered(&self) -> bool {
        self.records.is_some() && !self.alias
    }

    pub fn serves(&self, r: &TlsaRdata) -> bool {
        self.records.as_ref().is_some_and(|set| set.contains(r))
    }

    pub fn why_silent(&self) -> String {
        self.probe
            .tlsa
            .failure
            .as_ref()
            .map(|f| match f.kind {
                FailureKind::Timeout | FailureKind::Network => "no answer".to_string(),
                k => k.as_str().to_string(),
            })
            .unwrap_or_else(|| "no answer".into())
    }
}

/// The published TLSA records, as the resolver and every server serve them.
pub(super) struct Publication<'a> {
    /// The RRset as the resolver validated it, when secure.
    pub resolver: Vec<TlsaRdata>,
    pub servers: Vec<ServerAnswer<'a>>,
    /// Every record anywhere: the resolver's first, then the servers'.
    pub union: Vec<TlsaRdata>,
}

impl<'a> Publication<'a> {
    /// `asked`: the servers were asked one by one (not behind an alias).
    pub fn observe(h: &'a HostEvidence, asked: bool) -> Publication<'a> {
        let resolver = resolver_records(h).map(<[_]>::to_vec).unwrap_or_default();
        let servers: Vec<ServerAnswer<'a>> = if asked {
            h.nameservers.iter().map(server_answer).collect()
        } else {
            Vec::new()
        };
        let mut union = resolver.clone();
        for rec in servers.iter().flat_map(|s| s.records.iter().flatten()) {
            if !union.contains(rec) {
                union.push(rec.clone());
            }
        }
        Publication {
            resolver,
            servers,
            union,
        }
    }

    pub fn answering(&self) -> impl Iterator<Item = &ServerAnswer<'a>> {
        self.servers.iter().filter(|s| s.answered())
    }

    /// Servers that did not answer at all.
    pub fn silent(&self) -> impl Iterator<Item = &ServerAnswer<'a>> {
        self.servers.iter().filter(|s| s.records.is_none())
    }

    /// Whether every answering server (or, with none, the resolver) serves `r`.
    pub fn everywhere(&self, r: &TlsaRdata) -> bool {
        if self.answering().next().is_none() {
            self.resolver.contains(r)
        } else {
            self.answering().all(|s| s.serves(r))
        }
    }
}

fn server_answer(p: &NsProbe) -> ServerAnswer<'_> {
    ServerAnswer {
        probe: p,
        records: (p.tlsa.outcome != Outcome::Failed)
            .then(|| p.tlsa.tlsa_records().cloned().collect()),
        alias: p.tlsa.is_alias(),
    }
}

/// The published RRset as the resolver validated it, when secure.
fn resolver_records(h: &HostEvidence) -> Option<&[TlsaRdata]> {
    let t = h.tlsa.as_ref()?;
    (t.meta.outcome == Outcome::Answer && t.meta.dnssec == DnssecStatus::Secure)
        .then_some(t.records.as_slice())
}

/// One record of the published union, as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordStatus {
    pub record: TlsaRdata,
    pub usable: bool,
    /// Authenticates NEW (DANE-EE match, or DANE-TA with a valid path and name).
    pub new: bool,
    /// Authenticates a chain served now.
    pub live: bool,
    /// In the RRset the resolver validated (published mode).
    pub resolver: bool,
    /// How many of the answering server addresses serve it.
    pub servers: usize,
    /// Part of the candidate RRset.
    pub candidate: bool,
}

impl RecordStatus {
    pub(super) fn of(facts: &HostFacts<'_>, p: &Publication<'_>, rec: &TlsaRdata) -> RecordStatus {
        RecordStatus {
            record: rec.clone(),
            usable: matches!(rec.usability(), Usability::Usable(_)),
            new: facts.authenticates_new(rec),
            live: facts.authenticates_live(rec),
            resolver: p.resolver.contains(rec),
            servers: p.answering().filter(|s| s.serves(rec)).count(),
            candidate: false,
        }
    }
}

/// How one server address answered the TLSA question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerOutcome {
    Answer,
    Nodata,
    Nxdomain,
    Failed,
    /// The name is an alias at this server.
    Alias,
}

/// One server address, as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ServerStatus {
    pub server: String,
    pub address: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    pub answer: ServerOutcome,
    pub records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// Whether its RRset authenticates NEW (`None`: no answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
}

impl ServerStatus {
    pub(super) fn of(facts: &HostFacts<'_>, s: &ServerAnswer<'_>) -> ServerStatus {
        let r = ServerRef::of(s.probe);
        ServerStatus {
            server: r.server,
            address: r.address,
            serial: r.serial,
            answer: if s.alias {
                ServerOutcome::Alias
            } else {
                match s.probe.tlsa.outcome {
                    Outcome::Answer => ServerOutcome::Answer,
                    Outcome::NoData => ServerOutcome::Nodata,
                    Outcome::NxDomain => ServerOutcome::Nxdomain,
                    Outcome::Failed => ServerOutcome::Failed,
                }
            },
            records: s.records.as_ref().map(Vec::len).unwrap_or(0),
            ttl: s.probe.tlsa.ttl,
            new: (!s.alias)
                .then(|| {
                    s.records
                        .as_ref()
                        .map(|set| facts.any_authenticates_new(set))
                })
                .flatten(),
        }
    }
}
