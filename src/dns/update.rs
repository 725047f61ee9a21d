//! Dynamic updates (RFC 2136) of the TLSA records of SMTP servers
//! (`_25._tcp.<host>`, RFC 7672 §2.2), signed with TSIG (RFC 8945), sent
//! to the zone's primary server.
//!
//! Every change carries a prerequisite on the exact RRset read from the
//! primary just before (RFC 2136 §2.4.2 "RRset exists (value dependent)",
//! or §2.4.3 "RRset does not exist"): if someone else changes the RRset in
//! between, the server refuses ours (NXRRSET or YXRRSET) instead of mixing
//! the two, and the caller reads again. The messages are hickory's update
//! messages signed by hickory's TSIG signer; the reply's TSIG is verified
//! before a NOERROR is believed.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::TLSA;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::convert;
use super::transport::{self, Flags};
use super::tsig_key::{FUDGE, TsigKey};
use crate::core::evidence::{Failure, FailureKind};
use crate::core::tlsa::TlsaRdata;

/// An UPDATE reply is a header, the zone and a TSIG record: a few hundred
/// bytes. Anything much larger is not an answer to it.
pub const MAX_REPLY: usize = 8 * 1024;

/// `_25._tcp.<host>`, the TLSA name of an SMTP server (RFC 7672 §2.2).
pub fn tlsa_owner(host: &str) -> Result<String, UpdateError> {
    owner_name(host).map(|n| convert::show(&n))
}

fn owner_name(host: &str) -> Result<Name, UpdateError> {
    let (_, host) = convert::normalize(host).map_err(|e| UpdateError::BadName(e.to_string()))?;
    let tcp = Name::from_ascii("_25._tcp").map_err(|e| UpdateError::BadName(e.to_string()))?;
    tcp.append_domain(&host)
        .map_err(|e| UpdateError::BadName(format!("_25._tcp.{host}: {e}")))
}

fn zone_name(zone: &str) -> Result<Name, UpdateError> {
    convert::normalize(zone)
        .map(|(_, n)| n)
        .map_err(|e| UpdateError::BadName(e.to_string()))
}

/// The TLSA RRset at one SMTP server's TLSA name, as the primary serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsaRrset {
    /// `_25._tcp.<host>`, without the trailing dot.
    pub owner: String,
    /// The RRset's TTL; `None` when there is no TLSA record.
    pub ttl: Option<u32>,
    pub records: Vec<TlsaRdata>,
}

impl TlsaRrset {
    /// "No TLSA records at `_25._tcp.<host>`".
    pub fn absent(host: &str) -> Result<TlsaRrset, UpdateError> {
        Ok(TlsaRrset {
            owner: tlsa_owner(host)?,
            ttl: None,
            records: Vec::new(),
        })
    }
}

/// What must hold at the server for the update to be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prerequisite {
    /// RFC 2136 §2.4.3: no TLSA record at the owner.
    Absent,
    /// RFC 2136 §2.4.2: exactly these TLSA records (in any order).
    Exactly(Vec<TlsaRdata>),
}

/// One UPDATE of one TLSA RRset: a prerequisite, then deletions and
/// additions (RFC 2136 §2.5), applied by the server all or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsaUpdate {
    zone: Name,
    owner: Name,
    prerequisite: Prerequisite,
    ttl: u32,
    add: Vec<TlsaRdata>,
    delete: Vec<TlsaRdata>,
    delete_rrset: bool,
}

impl TlsaUpdate {
    /// Adds `records` to the RRset `current` (as just read), unless the RRset
    /// changed meanwhile. Records already there are left out. New records
    /// take the RRset's TTL (one TTL per RRset, RFC 2181 §5.2), or
    /// `ttl_if_new` when there is no RRset yet.
    pub fn add(
        zone: &str,
        current: &TlsaRrset,
        records: &[TlsaRdata],
        ttl_if_new: u32,
    ) -> Result<TlsaUpdate, UpdateError> {
        let mut u = TlsaUpdate::guarded(zone, current)?;
        u.ttl = current.ttl.unwrap_or(ttl_if_new);
        for r in records {
            if !current.records.contains(r) && !u.add.contains(r) {
                u.add.push(r.clone());
            }
        }
        Ok(u)
    }

    /// Deletes `records` from the RRset `current` (RFC 2136 §2.5.4), unless
    /// the RRset changed meanwhile. Records not there are left out. Never
    /// deletes the last record: a host without TLSA records is a host
    /// without DANE, which [`TlsaUpdate::delete_rrset`] says explicitly.
    pub fn remove(
        zone: &str,
        current: &TlsaRrset,
        records: &[TlsaRdata],
    ) -> Result<TlsaUpdate, UpdateError> {
        let mut u = TlsaUpdate::guarded(zone, current)?;
        for r in records {
            if current.records.contains(r) && !u.delete.contains(r) {
                u.delete.push(r.clone());
            }
        }
        if !current.records.is_empty() && u.delete.len() == current.records.len() {
            return Err(UpdateError::WouldEmpty {
                owner: current.owner.clone(),
            });
        }
        Ok(u)
    }

    /// Deletes the whole RRset (RFC 2136 §2.5.2), unless it changed
    /// meanwhile: DANE is then off for the host.
    pub fn delete_rrset(zone: &str, current: &TlsaRrset) -> Result<TlsaUpdate, UpdateError> {
        let mut u = TlsaUpdate::guarded(zone, current)?;
        u.delete_rrset = !current.records.is_empty();
        Ok(u)
    }

    fn guarded(zone: &str, current: &TlsaRrset) -> Result<TlsaUpdate, UpdateError> {
        let zone = zone_name(zone)?;
        let owner = Name::from_ascii(format!("{}.", current.owner))
            .map_err(|e| UpdateError::BadName(format!("{}: {e}", current.owner)))?
            .to_lowercase();
        if !zone.zone_of(&owner) {
            return Err(UpdateError::NotInZone {
                owner: convert::show(&owner),
                zone: convert::show(&zone),
            });
        }
        let prerequisite = if current.records.is_empty() {
            Prerequisite::Absent
        } else {
            Prerequisite::Exactly(current.records.clone())
        };
        Ok(TlsaUpdate {
            zone,
            owner,
            prerequisite,
            ttl: current.ttl.unwrap_or(0),
            add: Vec::new(),
            delete: Vec::new(),
            delete_rrset: false,
        })
    }

    /// Whether the update would change nothing (it need not be sent).
    pub fn is_noop(&self) -> bool {
        self.add.is_empty() && self.delete.is_empty() && !self.delete_rrset
    }

    pub fn zone(&self) -> String {
        convert::show(&self.zone)
    }

    pub fn owner(&self) -> String {
        convert::show(&self.owner)
    }

    pub fn prerequisite(&self) -> &Prerequisite {
        &self.prerequisite
    }

    /// Records added, with [`TlsaUpdate::ttl`].
    pub fn adds(&self) -> &[TlsaRdata] {
        &self.add
    }

    /// Records deleted one by one.
    pub fn deletes(&self) -> &[TlsaRdata] {
        &self.delete
    }

    /// Whether the whole RRset is deleted.
    pub fn deletes_rrset(&self) -> bool {
        self.delete_rrset
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The update as nsupdate(1) input: zone-file-like lines an operator can
    /// read before anything is sent (and feed to `nsupdate -k KEYFILE`).
    /// No key material: the key is named in a comment only.
    pub fn render(&self, server: Option<SocketAddr>, key: Option<&TsigKey>) -> String {
        let owner = self.owner.to_ascii();
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("; RFC 2136 UPDATE of the TLSA RRset {owner}"));
        if let Some(k) = key {
            line(format!("; signed with TSIG key {k}"));
        }
        if let Some(s) = server {
            line(format!("server {} {}", s.ip(), s.port()));
        }
        line(format!("zone {}", self.zone.to_ascii()));
        match &self.prerequisite {
            Prerequisite::Absent => line(format!("prereq nxrrset {owner} IN TLSA")),
            Prerequisite::Exactly(set) => {
                for r in set {
                    line(format!("prereq yxrrset {owner} IN TLSA {r}"));
                }
            }
        }
        if self.delete_rrset {
            line(format!("update delete {owner} IN TLSA"));
        }
        for r in &self.delete {
            line(format!("update delete {owner} IN TLSA {r}"));
        }
        for r in &self.add {
            line(format!("update add {owner} {} IN TLSA {r}", self.ttl));
        }
        line("send".into());
        out
    }

    /// The unsigned UPDATE message (RFC 2136 §2): zone, prerequisites,
    /// then deletions before additions.
    pub(crate) fn message(&self) -> Message {
        let mut m = Message::query();
        m.metadata.op_code = OpCode::Update;
        m.metadata.recursion_desired = false;
        let mut zone = Query::query(self.zone.clone(), RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        m.add_zone(zone);
        match &self.prerequisite {
            Prerequisite::Absent => m.add_pre_requisite(self.empty(DNSClass::NONE)),
            Prerequisite::Exactly(set) => {
                m.add_pre_requisites(set.iter().map(|r| self.record(r, 0, DNSClass::IN)))
            }
        }
        if self.delete_rrset {
            m.add_update(self.empty(DNSClass::ANY));
        }
        m.add_updates(
            self.delete
                .iter()
                .map(|r| self.record(r, 0, DNSClass::NONE)),
        );
        m.add_updates(
            self.add
                .iter()
                .map(|r| self.record(r, self.ttl, DNSClass::IN)),
        );
        m
    }

    fn record(&self, r: &TlsaRdata, ttl: u32, class: DNSClass) -> Record {
        let data = RData::TLSA(TLSA::new(
            r.usage.into(),
            r.selector.into(),
            r.mtype.into(),
            r.data.clone(),
        ));
        let mut rec = Record::from_rdata(self.owner.clone(), ttl, data);
        rec.dns_class = class;
        rec
    }

    /// A TLSA record with no RDATA: "no such RRset" with class NONE
    /// (§2.4.3), "delete the RRset" with class ANY (§2.5.2).
    fn empty(&self, class: DNSClass) -> Record {
        let mut rec = Record::update0(self.owner.clone(), 0, RecordType::TLSA);
        rec.dns_class = class;
        rec
    }
}

/// The RCODE of a refused update (RFC 2136 §2.2, RFC 6895 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateRcode {
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    YxDomain,
    YxRrset,
    NxRrset,
    NotAuth,
    NotZone,
    Other(u16),
}

impl UpdateRcode {
    fn from_wire(rc: ResponseCode) -> UpdateRcode {
        match rc {
            ResponseCode::FormErr => UpdateRcode::FormErr,
            ResponseCode::ServFail => UpdateRcode::ServFail,
            ResponseCode::NXDomain => UpdateRcode::NxDomain,
            ResponseCode::NotImp => UpdateRcode::NotImp,
            ResponseCode::Refused => UpdateRcode::Refused,
            ResponseCode::YXDomain => UpdateRcode::YxDomain,
            ResponseCode::YXRRSet => UpdateRcode::YxRrset,
            ResponseCode::NXRRSet => UpdateRcode::NxRrset,
            ResponseCode::NotAuth => UpdateRcode::NotAuth,
            ResponseCode::NotZone => UpdateRcode::NotZone,
            other => UpdateRcode::Other(u16::from(other)),
        }
    }

    /// The RCODE's mnemonic.
    pub fn name(self) -> String {
        match self {
            UpdateRcode::FormErr => "FORMERR".into(),
            UpdateRcode::ServFail => "SERVFAIL".into(),
            UpdateRcode::NxDomain => "NXDOMAIN".into(),
            UpdateRcode::NotImp => "NOTIMP".into(),
            UpdateRcode::Refused => "REFUSED".into(),
            UpdateRcode::YxDomain => "YXDOMAIN".into(),
            UpdateRcode::YxRrset => "YXRRSET".into(),
            UpdateRcode::NxRrset => "NXRRSET".into(),
            UpdateRcode::NotAuth => "NOTAUTH".into(),
            UpdateRcode::NotZone => "NOTZONE".into(),
            UpdateRcode::Other(n) => format!("RCODE {n}"),
        }
    }
}

/// The TSIG error of a reply (RFC 8945 §5.3.2, §5.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigFailure {
    BadSig,
    BadKey,
    /// With the server's clock, when it said.
    BadTime {
        server_time: Option<u64>,
    },
    Other(u16),
}

impl TsigFailure {
    fn from_wire(e: TsigError, other: &[u8]) -> TsigFailure {
        match e {
            TsigError::BadSig => TsigFailure::BadSig,
            TsigError::BadKey => TsigFailure::BadKey,
            TsigError::BadTime => TsigFailure::BadTime {
                server_time: (other.len() == 6)
                    .then(|| other.iter().fold(0u64, |t, b| t << 8 | u64::from(*b))),
            },
            other => TsigFailure::Other(u16::from(other)),
        }
    }

    pub fn name(self) -> String {
        match self {
            TsigFailure::BadSig => "BADSIG".into(),
            TsigFailure::BadKey => "BADKEY".into(),
            TsigFailure::BadTime { .. } => "BADTIME".into(),
            TsigFailure::Other(n) => format!("TSIG error {n}"),
        }
    }
}

/// An update the server answered with an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub server: SocketAddr,
    pub zone: String,
    pub owner: String,
    pub key: String,
    pub rcode: UpdateRcode,
    pub tsig: Option<TsigFailure>,
    /// Whether the reply's TSIG verified. BADKEY and BADSIG replies are
    /// unsigned by design (RFC 8945 §5.3.2), so they are never authenticated.
    pub authenticated: bool,
}

impl Rejection {
    /// The RRset changed since it was read (RFC 2136 §3.2.5): read it again
    /// and decide again.
    pub fn prerequisite_failed(&self) -> bool {
        matches!(self.rcode, UpdateRcode::NxRrset | UpdateRcode::YxRrset)
    }

    fn words(&self) -> String {
        let Rejection {
            server,
            zone,
            owner,
            key,
            ..
        } = self;
        if let Some(t) = self.tsig {
            return match t {
                TsigFailure::BadKey => format!(
                    "{server} did not accept TSIG key {key} (NOTAUTH, BADKEY): it does not know the key (name or algorithm), \
                     or its policy does not allow this key to change TLSA records at {owner} (Knot answers a policy refusal this way)"
                ),
                TsigFailure::BadSig => format!(
                    "{server} could not verify the update's signature (NOTAUTH, BADSIG): the secret of TSIG key {key} differs from the server's"
                ),
                TsigFailure::BadTime { server_time } => format!(
                    "{server} rejected the update's time (NOTAUTH, BADTIME): its clock and ours differ by more than {FUDGE} s{}",
                    server_time
                        .map(|t| format!(" (server time {t})"))
                        .unwrap_or_default()
                ),
                TsigFailure::Other(_) => format!(
                    "{server} rejected the update's TSIG ({}, {})",
                    self.rcode.name(),
                    t.name()
                ),
            };
        }
        match self.rcode {
            UpdateRcode::Refused => format!(
                "{server} refused the update (REFUSED): its policy does not allow TSIG key {key} to change TLSA records at {owner}, \
                 or it takes no updates for zone {zone}"
            ),
            UpdateRcode::NotAuth => format!(
                "{server} is not authoritative for zone {zone} (NOTAUTH): send the update to the zone's primary server"
            ),
            UpdateRcode::NotZone => format!("{owner} is not in zone {zone} (NOTZONE)"),
            UpdateRcode::NxRrset => format!(
                "the prerequisite failed (NXRRSET): the TLSA RRset at {owner} is no longer the one read before the update; \
                 someone changed it: read it again"
            ),
            UpdateRcode::YxRrset => format!(
                "the prerequisite failed (YXRRSET): TLSA records appeared at {owner} after it was read as having none; \
                 someone changed it: read it again"
            ),
            UpdateRcode::NxDomain | UpdateRcode::YxDomain => format!(
                "the prerequisite failed ({}): the name {owner} changed since it was read",
                self.rcode.name()
            ),
            UpdateRcode::ServFail => {
                format!("{server} failed to apply the update (SERVFAIL): see the server's log")
            }
            UpdateRcode::FormErr => format!("{server} could not parse the update (FORMERR)"),
            UpdateRcode::NotImp => {
                format!("{server} does not support dynamic updates (NOTIMP)")
            }
            UpdateRcode::Other(n) => format!("{server} answered the update with RCODE {n}"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words())?;
        let unsigned_by_design =
            matches!(self.tsig, Some(TsigFailure::BadKey | TsigFailure::BadSig));
        if !self.authenticated && !unsigned_by_design {
            f.write_str(" (the reply was not signed with the key)")?;
        }
        Ok(())
    }
}

/// Why an update was not applied (or a read for one failed); one line each,
/// never containing key material.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    BadName(String),
    #[error("{owner} is not in zone {zone}")]
    NotInZone { owner: String, zone: String },
    #[error(
        "removing these records would leave no TLSA record at {owner} (DANE off for the host): not done"
    )]
    WouldEmpty { owner: String },
    #[error("{0}")]
    Rejected(Box<Rejection>),
    #[error("no answer from {server} within {ms} ms: is the server up and reachable?")]
    Timeout { server: SocketAddr, ms: u128 },
    /// The update may have reached the server: read the RRset again before
    /// deciding anything (a repeated update is harmless: its prerequisite
    /// fails, or it adds nothing).
    #[error(
        "no answer to the UPDATE from {server} within {ms} ms: is the primary server up and reachable over TCP? \
         (if it got the update it may still apply it: read the RRset again)"
    )]
    NoReply { server: SocketAddr, ms: u128 },
    #[error("{detail}")]
    Network { server: SocketAddr, detail: String },
    #[error("{detail}")]
    Malformed { server: SocketAddr, detail: String },
    #[error(
        "the reply from {server} is not authenticated ({why}): cannot tell whether the update was applied"
    )]
    NotAuthentic { server: SocketAddr, why: String },
    #[error("{server} is not authoritative for {name}{detail}")]
    NotAuthoritative {
        server: SocketAddr,
        name: String,
        detail: String,
    },
    #[error("{server} answered {rcode} for {name} {qtype}")]
    Lookup {
        server: SocketAddr,
        name: String,
        qtype: String,
        rcode: String,
    },
    #[error(
        "{owner} is an alias (CNAME) of {target}: change the TLSA records there, in the zone that holds them"
    )]
    Alias { owner: String, target: String },
    #[error("cannot build the update: {0}")]
    Build(String),
}

impl UpdateError {
    fn from_failure(server: SocketAddr, f: Failure) -> UpdateError {
        match f.kind {
            FailureKind::Timeout => UpdateError::Timeout {
                server,
                ms: 0, // replaced by the caller, who knows the timeout
            },
            FailureKind::Malformed => UpdateError::Malformed {
                server,
                detail: f.detail,
            },
            _ => UpdateError::Network {
                server,
                detail: f.detail,
            },
        }
    }

    /// The rejection, when the server answered with an error.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            UpdateError::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

/// The zone's primary server, where updates go (RFC 2136 §1, "primary
/// master"): every exchange with it has one deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimaryServer {
    pub addr: SocketAddr,
    pub timeout: Duration,
}

impl PrimaryServer {
    pub fn new(addr: SocketAddr, timeout: Duration) -> PrimaryServer {
        PrimaryServer { addr, timeout }
    }

    fn failure(&self, f: Failure) -> UpdateError {
        match UpdateError::from_failure(self.addr, f) {
            UpdateError::Timeout { server, .. } => UpdateError::Timeout {
                server,
                ms: self.timeout.as_millis(),
            },
            other => other,
        }
    }

    /// The TLSA RRset at `_25._tcp.<host>` as the primary serves it now
    /// (asked without recursion; the answer must be authoritative).
    pub async fn read_tlsa(&self, host: &str) -> Result<TlsaRrset, UpdateError> {
        let owner = owner_name(host)?;
        let resp = self.ask(&owner, RecordType::TLSA).await?;
        self.authoritative(&resp, &owner)?;
        if let Some(target) = cname_target(&resp, &owner) {
            return Err(UpdateError::Alias {
                owner: convert::show(&owner),
                target,
            });
        }
        let rc = resp.metadata.response_code;
        if rc != ResponseCode::NoError && rc != ResponseCode::NXDomain {
            return Err(self.lookup_error(&owner, RecordType::TLSA, rc));
        }
        let tlsa: Vec<&Record> = resp
            .answers
            .iter()
            .filter(|r| r.name == owner && r.record_type() == RecordType::TLSA)
            .collect();
        let mut records: Vec<TlsaRdata> = tlsa.iter().filter_map(|r| convert::tlsa(r)).collect();
        records.sort_by_key(TlsaRdata::to_string);
        records.dedup();
        Ok(TlsaRrset {
            owner: convert::show(&owner),
            ttl: tlsa.iter().map(|r| r.ttl).min(),
            records,
        })
    }

    /// The zone that holds `name` on this server (the owner of the SOA
    /// record its authoritative answer carries), for an update's zone
    /// section when the operator did not name the zone.
    pub async fn zone_of(&self, name: &str) -> Result<String, UpdateError> {
        let (_, qname) =
            convert::normalize(name).map_err(|e| UpdateError::BadName(e.to_string()))?;
        let resp = self.ask(&qname, RecordType::SOA).await?;
        self.authoritative(&resp, &qname)?;
        let rc = resp.metadata.response_code;
        if rc != ResponseCode::NoError && rc != ResponseCode::NXDomain {
            return Err(self.lookup_error(&qname, RecordType::SOA, rc));
        }
        resp.answers
            .iter()
            .chain(&resp.authorities)
            .filter(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&qname))
            .max_by_key(|r| r.name.num_labels())
            .map(|r| convert::show(&r.name))
            .ok_or_else(|| UpdateError::NotAuthoritative {
                server: self.addr,
                name: convert::show(&qname),
                detail: ": its answer names no zone (no SOA record)".into(),
            })
    }

    async fn ask(&self, name: &Name, qtype: RecordType) -> Result<Message, UpdateError> {
        let flags = Flags {
            rd: false,
            cd: false,
        };
        transport::exchange(self.addr, name, qtype, flags, self.timeout)
            .await
            .map(|r| r.into_message())
            .map_err(|f| self.failure(f))
    }

    fn authoritative(&self, resp: &Message, name: &Name) -> Result<(), UpdateError> {
        if resp.metadata.authoritative {
            return Ok(());
        }
        let rc = resp.metadata.response_code;
        let detail = if rc != ResponseCode::NoError {
            format!(" (it answered {})", UpdateRcode::from_wire(rc).name())
        } else if resp
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS)
        {
            " (it sent a referral)".into()
        } else {
            String::new()
        };
        Err(UpdateError::NotAuthoritative {
            server: self.addr,
            name: convert::show(name),
            detail,
        })
    }

    fn lookup_error(&self, name: &Name, qtype: RecordType, rc: ResponseCode) -> UpdateError {
        UpdateError::Lookup {
            server: self.addr,
            name: convert::show(name),
            qtype: qtype.to_string(),
            rcode: UpdateRcode::from_wire(rc).name(),
        }
    }

    /// Signs `update` with `key`, sends it over TCP and checks the reply:
    /// `Ok` only for a NOERROR whose TSIG verifies.
    pub async fn send(&self, update: &TlsaUpdate, key: &TsigKey) -> Result<(), UpdateError> {
        let mut msg = update.message();
        let signer = key
            .signer()
            .map_err(|e| UpdateError::Build(e.to_string()))?;
        let verifier = msg
            .finalize(&signer, unix_now())
            .map_err(|e| UpdateError::Build(e.to_string()))?;
        drop(signer);
        let wire = msg
            .to_vec()
            .map_err(|e| UpdateError::Build(e.to_string()))?;
        let reply = transport::tcp_bytes(self.addr, &wire, self.timeout, MAX_REPLY)
            .await
            .map_err(|f| match self.failure(f) {
                UpdateError::Timeout { server, ms } => UpdateError::NoReply { server, ms },
                other => other,
            })?;
        judge_reply(&reply, &msg, verifier, self.addr, update, key)
    }

    /// Reads the RRset, adds `records` under a prerequisite on it, and sends
    /// the update unless it changes nothing. Returns what was (or, when it
    /// is a no-op, would have been) sent. `zone`: found with
    /// [`PrimaryServer::zone_of`] when not given.
    pub async fn add_tlsa(
        &self,
        key: &TsigKey,
        zone: Option<&str>,
        host: &str,
        records: &[TlsaRdata],
        ttl_if_new: u32,
    ) -> Result<TlsaUpdate, UpdateError> {
        let (zone, current) = self.prepare(zone, host).await?;
        let update = TlsaUpdate::add(&zone, &current, records, ttl_if_new)?;
        if !update.is_noop() {
            self.send(&update, key).await?;
        }
        Ok(update)
    }

    /// As [`PrimaryServer::add_tlsa`], deleting `records` instead (never the last one).
    pub async fn remove_tlsa(
        &self,
        key: &TsigKey,
        zone: Option<&str>,
        host: &str,
        records: &[TlsaRdata],
    ) -> Result<TlsaUpdate, UpdateError> {
        let (zone, current) = self.prepare(zone, host).await?;
        let update = TlsaUpdate::remove(&zone, &current, records)?;
        if !update.is_noop() {
            self.send(&update, key).await?;
        }
        Ok(update)
    }

    async fn prepare(
        &self,
        zone: Option<&str>,
        host: &str,
    ) -> Result<(String, TlsaRrset), UpdateError> {
        let zone = match zone {
            Some(z) => z.to_string(),
            None => self.zone_of(&tlsa_owner(host)?).await?,
        };
        Ok((zone, self.read_tlsa(host).await?))
    }
}

fn cname_target(resp: &Message, owner: &Name) -> Option<String> {
    resp.answers
        .iter()
        .find(|r| r.name == *owner && r.record_type() == RecordType::CNAME)
        .map(|r| match &r.data {
            RData::CNAME(c) => convert::show(&c.0),
            other => other.to_string(),
        })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// NOERROR with a verified TSIG is success; any error RCODE or TSIG error
/// becomes a [`Rejection`]; anything else says why it cannot be trusted.
fn judge_reply(
    reply: &[u8],
    sent: &Message,
    verifier: Option<hickory_proto::rr::TSigVerifier>,
    server: SocketAddr,
    update: &TlsaUpdate,
    key: &TsigKey,
) -> Result<(), UpdateError> {
    let malformed = |detail: String| UpdateError::Malformed { server, detail };
    let resp = Message::from_vec(reply)
        .map_err(|e| malformed(format!("undecodable reply from {server}: {e}")))?;
    if resp.metadata.id != sent.metadata.id
        || resp.metadata.message_type != MessageType::Response
        || resp.metadata.op_code != OpCode::Update
    {
        return Err(malformed(format!(
            "the reply from {server} does not answer our UPDATE (id {}, opcode {:?})",
            resp.metadata.id, resp.metadata.op_code
        )));
    }
    let tsig = resp.signature().map(|r| &r.data);
    let authenticated = match (tsig, verifier) {
        // hickory computes time - fudge: a forged time below the fudge must
        // not reach it.
        (Some(t), Some(mut v)) if !t.mac.is_empty() && t.time >= u64::from(t.fudge) => {
            v.verify(reply).is_ok()
        }
        _ => false,
    };
    let tsig_error = tsig.and_then(|t| t.error.map(|e| TsigFailure::from_wire(e, &t.other)));
    let rcode = resp.metadata.response_code;
    if rcode == ResponseCode::NoError && tsig_error.is_none() {
        return if authenticated {
            Ok(())
        } else {
            Err(UpdateError::NotAuthentic {
                server,
                why: match tsig {
                    None => "it carries no TSIG".into(),
                    Some(_) => "its TSIG does not verify with the key".into(),
                },
            })
        };
    }
    Err(UpdateError::Rejected(Box::new(Rejection {
        server,
        zone: update.zone(),
        owner: update.owner(),
        key: key.name(),
        rcode: UpdateRcode::from_wire(rcode),
        tsig: tsig_error,
        authenticated,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::tsig_key::TsigAlgorithm;

    fn rd(s: &str) -> TlsaRdata {
        s.parse().unwrap()
    }

    fn d(byte: &str) -> String {
        byte.repeat(32)
    }

    fn rrset(records: &[&str]) -> TlsaRrset {
        TlsaRrset {
            owner: "_25._tcp.mx.example.org".into(),
            ttl: (!records.is_empty()).then_some(300),
            records: records.iter().map(|r| rd(r)).collect(),
        }
    }

    fn key() -> TsigKey {
        TsigKey::new(
            "upd.",
            TsigAlgorithm::HmacSha256,
            b"0123456789abcdef".to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn tlsa_owner_is_port_25_tcp() {
        assert_eq!(
            tlsa_owner("MX.Example.org.").unwrap(),
            "_25._tcp.mx.example.org"
        );
        assert!(tlsa_owner("").is_err());
    }

    /// RFC 2136 §2.4.2 + §2.5.1: the exact RRset as prerequisite, new records added.
    #[test]
    fn add_renders_value_dependent_prerequisite_and_adds() {
        let old = format!("3 1 1 {}", d("aa"));
        let new = format!("3 1 1 {}", d("bb"));
        let ta = format!("2 1 1 {}", d("cc"));
        let cur = rrset(&[&old, &ta]);
        let u = TlsaUpdate::add("example.org", &cur, &[rd(&new), rd(&old), rd(&new)], 60).unwrap();
        assert_eq!(u.adds(), &[rd(&new)]);
        assert_eq!(u.ttl(), 300);
        let server: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let text = u.render(Some(server), Some(&key()));
        let want = format!(
            "; RFC 2136 UPDATE of the TLSA RRset _25._tcp.mx.example.org.\n\
             ; signed with TSIG key upd. (hmac-sha256)\n\
             server 192.0.2.1 53\n\
             zone example.org.\n\
             prereq yxrrset _25._tcp.mx.example.org. IN TLSA {old}\n\
             prereq yxrrset _25._tcp.mx.example.org. IN TLSA {ta}\n\
             update add _25._tcp.mx.example.org. 300 IN TLSA {new}\n\
             send\n"
        );
        assert_eq!(text, want);
        assert!(!text.contains("MDEyMzQ1Njc4OWFiY2RlZg=="));
        assert!(!text.contains("0123456789abcdef"));
    }

    /// RFC 2136 §2.4.3: no RRset yet, so "RRset does not exist".
    #[test]
    fn add_to_nothing_renders_nxrrset() {
        let new = format!("3 1 1 {}", d("bb"));
        let u = TlsaUpdate::add("example.org", &rrset(&[]), &[rd(&new)], 60).unwrap();
        assert_eq!(u.prerequisite(), &Prerequisite::Absent);
        assert_eq!(
            u.render(None, None),
            format!(
                "; RFC 2136 UPDATE of the TLSA RRset _25._tcp.mx.example.org.\n\
                 zone example.org.\n\
                 prereq nxrrset _25._tcp.mx.example.org. IN TLSA\n\
                 update add _25._tcp.mx.example.org. 60 IN TLSA {new}\n\
                 send\n"
            )
        );
    }

    /// RFC 2136 §2.5.4: delete an RR from an RRset, never the last one.
    #[test]
    fn remove_renders_deletes_and_keeps_one() {
        let a = format!("3 1 1 {}", d("aa"));
        let b = format!("3 1 1 {}", d("bb"));
        let cur = rrset(&[&a, &b]);
        let u = TlsaUpdate::remove(
            "example.org",
            &cur,
            &[rd(&a), rd(&format!("3 1 1 {}", d("ee")))],
        )
        .unwrap();
        assert_eq!(u.deletes(), &[rd(&a)]);
        assert!(u.render(None, None).contains(&format!(
            "update delete _25._tcp.mx.example.org. IN TLSA {a}\n"
        )));
        let e = TlsaUpdate::remove("example.org", &cur, &[rd(&a), rd(&b)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "removing these records would leave no TLSA record at _25._tcp.mx.example.org (DANE off for the host): not done"
        );
        let all = TlsaUpdate::delete_rrset("example.org", &cur).unwrap();
        assert!(
            all.render(None, None)
                .contains("update delete _25._tcp.mx.example.org. IN TLSA\n")
        );
        assert!(
            TlsaUpdate::delete_rrset("example.org", &rrset(&[]))
                .unwrap()
                .is_noop()
        );
    }

    #[test]
    fn noop_and_zone_checks() {
        let a = format!("3 1 1 {}", d("aa"));
        let cur = rrset(&[&a]);
        assert!(
            TlsaUpdate::add("example.org", &cur, &[rd(&a)], 60)
                .unwrap()
                .is_noop()
        );
        assert!(
            TlsaUpdate::remove("example.org", &cur, &[])
                .unwrap()
                .is_noop()
        );
        let e = TlsaUpdate::add("example.net", &cur, &[rd(&a)], 60).unwrap_err();
        assert_eq!(
            e.to_string(),
            "_25._tcp.mx.example.org is not in zone example.net"
        );
        // The owner's own zone may be the TLSA name itself (a delegated _25._tcp zone).
        assert!(TlsaUpdate::add("_25._tcp.mx.example.org", &cur, &[], 60).is_ok());
    }

    /// The wire message: sections as RFC 2136 §2 lays them out.
    #[test]
    fn message_sections() {
        let a = format!("3 1 1 {}", d("aa"));
        let b = format!("2 1 1 {}", d("bb"));
        let u = TlsaUpdate::add("example.org", &rrset(&[&a]), &[rd(&b)], 60).unwrap();
        let m = u.message();
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.zones().len(), 1);
        assert_eq!(m.zones()[0].query_type(), RecordType::SOA);
        let pre = m.prerequisites();
        assert_eq!(pre.len(), 1);
        assert_eq!((pre[0].ttl, pre[0].dns_class), (0, DNSClass::IN));
        let up = m.updates();
        assert_eq!(up.len(), 1);
        assert_eq!((up[0].ttl, up[0].dns_class), (300, DNSClass::IN));
        // Round trip through the wire format.
        let back = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!(back.updates().len(), 1);
        assert_eq!(convert::tlsa(&back.updates()[0]), Some(rd(&b)));

        let r = TlsaUpdate::remove("example.org", &rrset(&[&a, &b]), &[rd(&a)]).unwrap();
        let m = r.message();
        assert_eq!(m.prerequisites().len(), 2);
        assert_eq!(
            (m.updates()[0].ttl, m.updates()[0].dns_class),
            (0, DNSClass::NONE)
        );
        let none = TlsaUpdate::add("example.org", &rrset(&[]), &[rd(&a)], 60).unwrap();
        let m = none.message();
        assert_eq!(m.prerequisites()[0].dns_class, DNSClass::NONE);
        assert_eq!(m.prerequisites()[0].record_type(), RecordType::TLSA);
        let del = TlsaUpdate::delete_rrset("example.org", &rrset(&[&a])).unwrap();
        assert_eq!(del.message().updates()[0].dns_class, DNSClass::ANY);
    }

    fn reply_to(sent: &Message, rcode: ResponseCode) -> Message {
        let mut r = Message::new(sent.metadata.id, MessageType::Response, OpCode::Update);
        r.metadata.response_code = rcode;
        r.add_zone(sent.zones()[0].clone());
        r
    }

    fn judge(
        update: &TlsaUpdate,
        reply: Option<Message>,
        sign_with: Option<&TsigKey>,
    ) -> Result<(), UpdateError> {
        let mut sent = update.message();
        let verifier = sent.finalize(&key().signer().unwrap(), unix_now()).unwrap();
        let reply = match reply {
            Some(mut r) => {
                r.metadata.id = sent.metadata.id;
                if let Some(k) = sign_with {
                    // A server's reply: signed over the request's MAC (RFC 8945 §5.3).
                    let mac = sent.signature().unwrap().data.mac.clone();
                    let ctx = hickory_proto::rr::TSigResponseContext::new(
                        sent.metadata.id,
                        unix_now(),
                        k.signer().unwrap(),
                        mac,
                        None,
                    );
                    let bytes = r.to_vec().unwrap();
                    r.set_signature(ctx.sign(&bytes).unwrap());
                }
                r.to_vec().unwrap()
            }
            None => vec![0u8; 3],
        };
        judge_reply(
            &reply,
            &sent,
            verifier,
            "192.0.2.1:53".parse().unwrap(),
            update,
            &key(),
        )
    }

    fn some_update() -> TlsaUpdate {
        TlsaUpdate::add(
            "example.org",
            &rrset(&[]),
            &[rd(&format!("3 1 1 {}", d("aa")))],
            60,
        )
        .unwrap()
    }

    #[test]
    fn signed_noerror_is_success() {
        let u = some_update();
        let sent = u.message();
        assert!(
            judge(
                &u,
                Some(reply_to(&sent, ResponseCode::NoError)),
                Some(&key())
            )
            .is_ok()
        );
    }

    #[test]
    fn unsigned_or_wrongly_signed_noerror_is_not_believed() {
        let u = some_update();
        let sent = u.message();
        let e = judge(&u, Some(reply_to(&sent, ResponseCode::NoError)), None).unwrap_err();
        assert!(e.to_string().contains("carries no TSIG"), "{e}");
        let other = TsigKey::new(
            "upd.",
            TsigAlgorithm::HmacSha256,
            b"another secret!!".to_vec(),
        )
        .unwrap();
        let e = judge(
            &u,
            Some(reply_to(&sent, ResponseCode::NoError)),
            Some(&other),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let e = judge(&u, None, None).unwrap_err();
        assert!(matches!(e, UpdateError::Malformed { .. }), "{e}");
    }

    /// RCODEs in words (RFC 2136 §2.2 and §3, RFC 8945 §5.2).
    #[test]
    fn rejections_in_words() {
        let u = some_update();
        let sent = u.message();
        let cases = [
            (ResponseCode::Refused, "refused the update (REFUSED)"),
            (
                ResponseCode::NotAuth,
                "is not authoritative for zone example.org (NOTAUTH)",
            ),
            (
                ResponseCode::NotZone,
                "_25._tcp.mx.example.org is not in zone example.org (NOTZONE)",
            ),
            (ResponseCode::YXRRSet, "the prerequisite failed (YXRRSET)"),
            (ResponseCode::NXRRSet, "the prerequisite failed (NXRRSET)"),
            (
                ResponseCode::ServFail,
                "failed to apply the update (SERVFAIL)",
            ),
        ];
        for (rc, want) in cases {
            let e = judge(&u, Some(reply_to(&sent, rc)), Some(&key())).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(want), "{rc}: {text}");
            assert!(!text.contains("not signed"), "{rc}: {text}");
            let r = e.rejection().unwrap();
            assert!(r.authenticated);
            assert_eq!(
                r.prerequisite_failed(),
                matches!(rc, ResponseCode::YXRRSet | ResponseCode::NXRRSet)
            );
        }
        let e = judge(&u, Some(reply_to(&sent, ResponseCode::Refused)), None).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("(the reply was not signed with the key)"),
            "{e}"
        );
    }

    #[test]
    fn tsig_errors_in_words() {
        let u = some_update();
        let sent = u.message();
        for (err, other, want) in [
            (
                TsigError::BadKey,
                vec![],
                "did not accept TSIG key upd. (NOTAUTH, BADKEY)",
            ),
            (
                TsigError::BadSig,
                vec![],
                "(NOTAUTH, BADSIG): the secret of TSIG key upd. differs",
            ),
            (
                TsigError::BadTime,
                vec![0, 0, 0x69, 0x00, 0x00, 0x00],
                "(NOTAUTH, BADTIME): its clock and ours differ by more than 300 s (server time 1761607680)",
            ),
        ] {
            let mut r = reply_to(&sent, ResponseCode::NotAuth);
            // An unsigned TSIG error record, as servers send for BADKEY and BADSIG.
            let tsig = hickory_proto::rr::rdata::tsig::TSIG::new(
                hickory_proto::rr::rdata::tsig::TsigAlgorithm::HmacSha256,
                unix_now(),
                300,
                Vec::new(),
                sent.metadata.id,
                Some(err),
                other,
            );
            r.set_signature(Box::new(hickory_proto::rr::rdata::tsig::make_tsig_record(
                Name::from_ascii("upd.").unwrap(),
                tsig,
            )));
            let e = judge(&u, Some(r), None).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains('\n'));
        }
    }

    /// A signed reply whose TSIG time is below the fudge must not reach
    /// hickory's `time - fudge` (an overflow panic in debug builds).
    #[test]
    fn tsig_time_below_fudge_is_not_authentic() {
        let u = some_update();
        let mut sent = u.message();
        let verifier = sent.finalize(&key().signer().unwrap(), 5).unwrap();
        let mut r = reply_to(&sent, ResponseCode::NoError);
        let mac = sent.signature().unwrap().data.mac.clone();
        let ctx = hickory_proto::rr::TSigResponseContext::new(
            sent.metadata.id,
            5,
            key().signer().unwrap(),
            mac,
            None,
        );
        let bytes = r.to_vec().unwrap();
        r.set_signature(ctx.sign(&bytes).unwrap());
        let e = judge_reply(
            &r.to_vec().unwrap(),
            &sent,
            verifier,
            "192.0.2.1:53".parse().unwrap(),
            &u,
            &key(),
        )
        .unwrap_err();
        assert!(matches!(e, UpdateError::NotAuthentic { .. }), "{e}");
    }
}
