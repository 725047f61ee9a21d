//! Everything observed about one domain, as data.
//!
//! Evidence is the only input of the evaluation core. Collectors fill it, it
//! serialises to JSON (`--save-evidence`), and `dane-audit evaluate` reads it
//! back, so every field here is part of a versioned file format: add fields
//! with `#[serde(default)]`, never change the meaning of an existing one.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::dnssec::DnssecStatus;
use super::tlsa::TlsaRdata;

/// Version of the evidence file format; bumped on incompatible changes.
pub const EVIDENCE_SCHEMA_VERSION: u32 = 1;

/// Seconds since the Unix epoch, written as RFC 3339 UTC in JSON so that saved
/// evidence stays readable by people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses RFC 3339 (`2026-11-29T12:00:00Z`) or a bare number of Unix seconds.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        if let Ok(secs) = s.parse::<i64>() {
            return Some(Timestamp(secs));
        }
        let t =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        Some(Timestamp(t.unix_timestamp()))
    }

    /// Whole days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Timestamp) -> i64 {
        (later.0 - self.0).div_euclid(86_400)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match time::OffsetDateTime::from_unix_timestamp(self.0) {
            Ok(t) => {
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
                );
                match t.format(&fmt) {
                    Ok(s) => f.write_str(&s),
                    Err(_) => write!(f, "@{}", self.0),
                }
            }
            Err(_) => write!(f, "@{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(i64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(Timestamp(n)),
            Raw::Str(s) => Timestamp::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid time {s:?}"))),
        }
    }
}

/// One DER certificate, base64 in JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Der(pub Vec<u8>);

impl Serialize for Der {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Der {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Der)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64 certificate: {e}")))
    }
}

/// The whole observation of one domain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evidence {
    pub schema_version: u32,
    /// The domain as audited: A-labels, lower case, no trailing dot.
    pub domain: String,
    pub collected_at: Timestamp,
    #[serde(default)]
    pub collector: CollectorInfo,
    pub mx: Lookup<MxRecord>,
    /// One entry per MX host (or the implicit MX host), in preference order.
    #[serde(default)]
    pub hosts: Vec<HostEvidence>,
    /// RRSIG validity of the DNSKEY and DS RRsets on the validation path.
    #[serde(default)]
    pub chain: Vec<ZoneSignatures>,
    /// The domain's own authoritative servers, probed when the MX lookup
    /// failed, so the failure can be attributed to them.
    #[serde(default)]
    pub nameservers: Vec<NsProbe>,
}

/// How the evidence was gathered: shown in reports, never used for verdicts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectorInfo {
    #[serde(default)]
    pub tool_version: String,
    #[serde(default)]
    pub resolvers: Vec<String>,
    #[serde(default)]
    pub trust_anchor: String,
    /// Address families the collector was allowed to use (`-4`, `-6`).
    #[serde(default)]
    pub families: Families,
    /// Whether SMTP probing was skipped on request (`--no-smtp`).
    #[serde(default)]
    pub smtp_skipped: bool,
    /// Whether each authoritative server was asked on its own (off with
    /// `--no-ns-checks`): without them, an empty `nameservers` list says
    /// nothing about the servers.
    #[serde(default = "asked_by_default")]
    pub nameserver_checks: bool,
}

/// Evidence written before the field existed was collected with the checks on.
fn asked_by_default() -> bool {
    true
}

impl Default for CollectorInfo {
    fn default() -> Self {
        CollectorInfo {
            tool_version: String::new(),
            resolvers: Vec::new(),
            trust_anchor: String::new(),
            families: Families::default(),
            smtp_skipped: false,
            nameserver_checks: true,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Default for Families {
    fn default() -> Self {
        Families {
            ipv4: true,
            ipv6: true,
        }
    }
}

/// How a DNS question ended, before any DNSSEC judgement.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// NOERROR with records of the asked type (possibly via CNAME).
    Answer,
    /// NOERROR without records of the asked type.
    #[serde(rename = "nodata")]
    NoData,
    #[serde(rename = "nxdomain")]
    NxDomain,
    /// No usable answer: see [`LookupMeta::failure`].
    Failed,
}

/// Why a lookup gave no usable answer. Kept apart from absence and from bogus
/// data because "the server did not answer" says nothing about the zone.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    Timeout,
    #[serde(rename = "servfail")]
    ServFail,
    Refused,
    #[serde(rename = "notimp")]
    NotImp,
    #[serde(rename = "formerr")]
    FormErr,
    /// A transport error other than a timeout (connection refused, unreachable).
    Network,
    /// The answer could not be parsed or was implausibly large.
    Malformed,
    /// Not asked: the address is on the skip list, or screened (the detail says which).
    Skipped,
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::ServFail => "SERVFAIL",
            FailureKind::Refused => "REFUSED",
            FailureKind::NotImp => "NOTIMP",
            FailureKind::FormErr => "FORMERR",
            FailureKind::Network => "network error",
            FailureKind::Malformed => "malformed answer",
            FailureKind::Skipped => "not asked",
            FailureKind::Other => "error",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    #[serde(default)]
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{}: {}", self.kind.as_str(), self.detail)
        }
    }
}

/// One RRSIG as seen on an RRset.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rrsig {
    /// The type covered (`MX`, `TLSA`, `NSEC`, ...).
    pub covered: String,
    pub signer: String,
    pub key_tag: u16,
    pub algorithm: u8,
    pub inception: Timestamp,
    pub expiration: Timestamp,
}

/// RFC 8914 extended DNS error.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ede {
    pub code: u16,
    #[serde(default)]
    pub text: String,
}

/// The recursive resolver's own view (CD=0): an independent second witness
/// to the in-process validator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Witness {
    /// `NOERROR`, `NXDOMAIN`, `SERVFAIL`, ... or `timeout`.
    pub rcode: String,
    pub ad: bool,
    #[serde(default)]
    pub ede: Option<Ede>,
    /// On SERVFAIL, the rcode of the same question with CD=1.
    #[serde(default)]
    pub cd_rcode: Option<String>,
}

impl Witness {
    /// Whether the resolver said anything about DNSSEC. A question that timed
    /// out, or a SERVFAIL that the same question with CD=1 gets too (the
    /// zone's servers failed, not its signatures), is no verdict: a slow or
    /// struggling resolver must not read as one that disagrees.
    pub fn is_verdict(&self) -> bool {
        match self.rcode.as_str() {
            "NOERROR" | "NXDOMAIN" => true,
            "SERVFAIL" => self
                .cd_rcode
                .as_deref()
                .is_none_or(|cd| matches!(cd, "NOERROR" | "NXDOMAIN")),
            _ => false,
        }
    }
}

/// One alias followed on the way to the answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CnameHop {
    pub owner: String,
    pub target: String,
    pub dnssec: DnssecStatus,
}

/// Metadata of one DNS question, shared by every record type.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LookupMeta {
    pub qname: String,
    pub outcome: Outcome,
    #[serde(default)]
    pub failure: Option<Failure>,
    /// For answers, the status of the RRset; for NODATA/NXDOMAIN, the status of
    /// the denial of existence.
    pub dnssec: DnssecStatus,
    #[serde(default)]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub rrsigs: Vec<Rrsig>,
    #[serde(default)]
    pub cnames: Vec<CnameHop>,
    #[serde(default)]
    pub witness: Option<Witness>,
}

/// A DNS question and the records it returned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lookup<T> {
    #[serde(flatten)]
    pub meta: LookupMeta,
    #[serde(default = "Vec::new")]
    pub records: Vec<T>,
}

impl<T> Lookup<T> {
    pub fn is_answer(&self) -> bool {
        self.meta.outcome == Outcome::Answer && !self.records.is_empty()
    }

    pub fn is_denial(&self) -> bool {
        matches!(self.meta.outcome, Outcome::NoData | Outcome::NxDomain)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    /// The exchange, no trailing dot; `.` for a null MX.
    pub exchange: String,
}

/// Everything about one MX host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostEvidence {
    /// The MX exchange as published (or the domain itself for the implicit MX).
    pub name: String,
    /// `None` for the implicit MX (RFC 5321 §5.1).
    #[serde(default)]
    pub preference: Option<u16>,
    /// The TLSA base domain (RFC 7672 §2.2.2): the host name or, when every
    /// alias on the way is secure, its CNAME expansion.
    pub tlsa_base: String,
    pub a: Lookup<IpAddr>,
    pub aaaa: Lookup<IpAddr>,
    /// `None` when TLSA was not looked up (insecure or failed addresses).
    #[serde(default)]
    pub tlsa: Option<Lookup<TlsaRdata>>,
    #[serde(default)]
    pub nameservers: Vec<NsProbe>,
    #[serde(default)]
    pub smtp: Vec<SmtpProbe>,
    /// Octets of the smallest DNS response that carries the TLSA RRset with
    /// its signatures (header, question, answer section, EDNS OPT record):
    /// above 1232 it does not fit a UDP answer and needs TCP (RFC 7766) or
    /// IP fragments. `None` without a TLSA answer (and in older evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlsa_answer_octets: Option<u32>,
}

/// What one authoritative server address said about one TLSA name.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NsProbe {
    pub zone: String,
    pub server: String,
    pub address: IpAddr,
    pub qname: String,
    /// A control query (SOA or A) at the same name, to tell "drops TLSA" from
    /// "drops everything".
    pub control: NsAnswer,
    pub tlsa: NsAnswer,
    #[serde(default)]
    pub soa_serial: Option<u32>,
    /// The zone's DNSKEY RRset, asked over UDP only: a truncated answer
    /// counts as an answer, so this tells "drops DNSKEY" from "no TCP".
    /// `None`: not asked (evidence older than this check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnskey: Option<NsAnswer>,
    /// A SOA question over TCP only (RFC 7766: every server must answer
    /// over TCP; answers larger than a UDP datagram need it), asked once
    /// per server address and run, so possibly for another zone of the
    /// same server. `None`: not asked (evidence older than this check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<NsAnswer>,
}

impl NsProbe {
    /// Whether the server was asked at all (a skip-listed one is not, and
    /// says nothing about the zone).
    pub fn asked(&self) -> bool {
        self.control.failure.as_ref().map(|f| f.kind) != Some(FailureKind::Skipped)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NsAnswer {
    pub outcome: Outcome,
    #[serde(default)]
    pub failure: Option<Failure>,
    #[serde(default)]
    pub authoritative: bool,
    /// The records at the asked name, sorted by presentation form, for
    /// comparison across servers.
    #[serde(default)]
    pub records: Vec<NsRecord>,
    /// For a denial, whether this server's proof validates.
    #[serde(default)]
    pub denial: Option<DnssecStatus>,
    /// The TTL of the answer's records as this server serves them (the
    /// original TTL, which a resolver's answer only counts down from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub elapsed_ms: u64,
    /// The UDP answer had TC=1: what is recorded here came over TCP (or
    /// the TCP question failed), so a failure says "no TCP", not "drops".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl NsAnswer {
    /// The name is an alias at this server: its records live elsewhere.
    pub fn is_alias(&self) -> bool {
        self.records.iter().any(|r| matches!(r, NsRecord::Cname(_)))
    }

    pub fn tlsa_records(&self) -> impl Iterator<Item = &TlsaRdata> {
        self.records.iter().filter_map(|r| match r {
            NsRecord::Tlsa(t) => Some(t),
            _ => None,
        })
    }
}

/// One record of a server's answer at the asked name. Written as its
/// presentation form (`CNAME target.`, `3 1 1 <hex>`, `192.0.2.1`), so
/// evidence stays readable and old files load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsRecord {
    /// The name is an alias: the target.
    Cname(String),
    Tlsa(TlsaRdata),
    /// Any other type, in presentation form.
    Other(String),
}

impl fmt::Display for NsRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsRecord::Cname(t) => write!(f, "CNAME {t}"),
            NsRecord::Tlsa(t) => write!(f, "{t}"),
            NsRecord::Other(s) => f.write_str(s),
        }
    }
}

impl std::str::FromStr for NsRecord {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.strip_prefix("CNAME ") {
            Some(target) => NsRecord::Cname(target.to_string()),
            None => match s.parse::<TlsaRdata>() {
                Ok(t) => NsRecord::Tlsa(t),
                Err(_) => NsRecord::Other(s.to_string()),
            },
        })
    }
}

impl Serialize for NsRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NsRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let Ok(r) = s.parse();
        Ok(r)
    }
}

/// The hosts to examine, in preference order (RFC 7672 §2.2.1, RFC 5321
/// §5.1): the MX exchanges (no null MX), or the domain itself when it has
/// no MX under a secure denial.
pub fn mx_targets(domain: &str, mx: &Lookup<MxRecord>) -> Vec<(String, Option<u16>)> {
    let m = &mx.meta;
    if m.outcome == Outcome::NoData && m.dnssec == DnssecStatus::Secure {
        return vec![(domain.to_string(), None)];
    }
    if m.outcome != Outcome::Answer
        || !matches!(m.dnssec, DnssecStatus::Secure | DnssecStatus::Insecure)
    {
        return Vec::new();
    }
    let mut out: Vec<(String, Option<u16>)> = Vec::new();
    for r in &mx.records {
        if r.exchange == "." || r.exchange.is_empty() {
            continue;
        }
        if !out.iter().any(|(n, _)| *n == r.exchange) {
            out.push((r.exchange.clone(), Some(r.preference)));
        }
    }
    out
}

/// RRSIG times of the DNSKEY and DS RRsets of one zone on the chain of
/// trust, and how the zone is signed: its keys, the digests of its DS
/// records at the parent, and how it denies existence.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ZoneSignatures {
    pub zone: String,
    #[serde(default)]
    pub rrsigs: Vec<Rrsig>,
    /// The zone's DNSKEY RRset as served (empty in evidence older than it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dnskeys: Vec<ZoneKey>,
    /// The DS RRset at the parent (empty for the root, an unsigned
    /// delegation, or evidence older than it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ds: Vec<DsDigest>,
    /// How the zone proves non-existence (from its NSEC3PARAM question);
    /// `None`: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<ZoneDenial>,
}

/// One DNSKEY record of a zone (RFC 4034 §2).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ZoneKey {
    pub flags: u16,
    pub algorithm: u8,
    pub key_tag: u16,
    /// The public key field, base64 as in zone files.
    pub key: String,
}

impl ZoneKey {
    /// Flag bit 7 (RFC 4034 §2.1.1): the key signs the zone's data.
    pub fn is_zone_key(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// Flag bit 8 (RFC 5011 §3): the key is revoked and signs nothing.
    pub fn is_revoked(&self) -> bool {
        self.flags & 0x0080 != 0
    }

    /// Flag bit 15 (RFC 4034 §2.1.1): a key-signing key, by convention.
    pub fn is_sep(&self) -> bool {
        self.flags & 0x0001 != 0
    }
}

/// One DS record at the parent (RFC 4034 §5), without its digest value.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DsDigest {
    pub key_tag: u16,
    pub algorithm: u8,
    pub digest_type: u8,
}

/// How a zone proves that names and types do not exist.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ZoneDenial {
    /// NSEC (RFC 4034 §4).
    Nsec,
    /// NSEC3 (RFC 5155) with these parameters.
    Nsec3 {
        hash: u8,
        iterations: u16,
        /// Hex, empty for no salt.
        #[serde(default)]
        salt: String,
    },
}

/// The SMTP phase in which a probe stopped.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpPhase {
    Connect,
    Greeting,
    Ehlo,
    Starttls,
    Handshake,
}

impl SmtpPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpPhase::Connect => "connect",
            SmtpPhase::Greeting => "greeting",
            SmtpPhase::Ehlo => "EHLO",
            SmtpPhase::Starttls => "STARTTLS",
            SmtpPhase::Handshake => "TLS handshake",
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpFailureKind {
    Refused,
    Timeout,
    /// The peer closed the connection.
    Closed,
    /// The peer answered with a reply code that ends the probe (see the reply).
    Reply,
    /// EHLO succeeded but did not offer STARTTLS.
    NoStarttls,
    /// The peer broke the protocol: not SMTP, a line or reply too long,
    /// bytes after the STARTTLS 220 (command injection).
    Protocol,
    /// The TLS handshake failed (alert or local error, in `detail`).
    Tls,
    Network,
    /// The address was not probed (`--no-smtp`, skip list, family disabled).
    NotProbed,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SmtpFailure {
    pub phase: SmtpPhase,
    pub kind: SmtpFailureKind,
    #[serde(default)]
    pub detail: String,
}

/// One SMTP reply; lines are kept without the code prefix, capped in number and length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    #[serde(default)]
    pub lines: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    #[serde(default)]
    pub group: Option<String>,
    pub sni: String,
}

/// One STARTTLS probe of one address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SmtpProbe {
    pub address: IpAddr,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub elapsed_ms: u64,
    #[serde(default)]
    pub greeting: Option<Reply>,
    #[serde(default)]
    pub ehlo: Option<Reply>,
    #[serde(default)]
    pub starttls: Option<Reply>,
    #[serde(default)]
    pub tls: Option<TlsInfo>,
    /// The certificates as sent, leaf first.
    #[serde(default)]
    pub chain: Vec<Der>,
    /// `None` when the handshake completed.
    #[serde(default)]
    pub failure: Option<SmtpFailure>,
    /// Further handshakes on new connections, one per server key type (and,
    /// for a server no modern client can negotiate with, legacy ClientHellos):
    /// a server with an RSA and an ECDSA certificate presents one or the other
    /// depending on the client's signature algorithms, and DANE senders of
    /// both kinds must be able to authenticate it. The fields above stay the
    /// result of the default offer. Empty in evidence from before this field,
    /// and with `--key-types negotiated`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_types: Vec<KeyTypeProbe>,
}

/// The family of a server certificate's key, which a client selects through
/// the signature algorithms it offers (RFC 8446 §4.2.3, RFC 5246 §7.4.1.4.1).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Ecdsa,
    Rsa,
    Ed25519,
}

impl KeyType {
    pub const ALL: [KeyType; 3] = [KeyType::Ecdsa, KeyType::Rsa, KeyType::Ed25519];

    /// The name people know it by.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ECDSA",
            KeyType::Rsa => "RSA",
            KeyType::Ed25519 => "Ed25519",
        }
    }

    /// Parses `ecdsa`, `rsa` or `ed25519` (any case).
    pub fn from_name(s: &str) -> Option<KeyType> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a server chose in answer to a legacy ClientHello (TLS 1.0 to 1.2,
/// CBC and RSA key-exchange suites), read from its ServerHello. No handshake
/// was completed: the connection was closed after the server's Certificate
/// message, which TLS 1.2 and below send in clear.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LegacyHello {
    /// `TLSv1.0`, `TLSv1.1` or `TLSv1.2` (or the version number in hex).
    pub version: String,
    /// The IANA name of the chosen suite (or its number in hex).
    pub cipher: String,
}

impl LegacyHello {
    /// Whether a client limited to TLS 1.2+ with ECDHE and AEAD suites (as
    /// rustls, and senders that follow RFC 9325) can negotiate what the
    /// server chose. When it can, the server is not legacy-only: the default
    /// handshake failed for another reason.
    pub fn modern(&self) -> bool {
        let aead = self.cipher.contains("_GCM_") || self.cipher.contains("_CHACHA20_");
        matches!(self.version.as_str(), "TLSv1.2" | "TLSv1.3")
            && self.cipher.starts_with("TLS_ECDHE_")
            && aead
    }
}

/// One further handshake of a [`SmtpProbe`]: a new connection whose client
/// offered only some key types' signature algorithms (for a legacy hello,
/// their cipher suites), to see whether the server presents a certificate of
/// one of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyTypeProbe {
    /// The key types asked for; empty: every key type (a legacy hello under
    /// `--key-types negotiated`).
    #[serde(default)]
    pub asked: Vec<KeyType>,
    /// The key type of the certificate the server presented, if any.
    #[serde(default)]
    pub key_type: Option<KeyType>,
    /// Whether the server presented a certificate of a key type asked for.
    #[serde(default)]
    pub offered: bool,
    /// The completed handshake, if one completed.
    #[serde(default)]
    pub tls: Option<TlsInfo>,
    /// Set when the chain came from a legacy ClientHello (no handshake completed).
    #[serde(default)]
    pub legacy: Option<LegacyHello>,
    /// The certificates as sent, leaf first; empty when not offered.
    #[serde(default)]
    pub chain: Vec<Der>,
    /// Why no certificate of these key types was obtained (the server has
    /// none, or the connection failed); not a finding by itself.
    #[serde(default)]
    pub failure: Option<SmtpFailure>,
}

impl KeyTypeProbe {
    /// A further handshake asking for `asked` before anything happened.
    pub fn new(asked: Vec<KeyType>) -> KeyTypeProbe {
        KeyTypeProbe {
            asked,
            key_type: None,
            offered: false,
            tls: None,
            legacy: None,
            chain: Vec::new(),
            failure: None,
        }
    }

    /// The same, ended by `f` (not offered, or the connection failed).
    pub fn failed(mut self, f: SmtpFailure) -> KeyTypeProbe {
        self.offered = false;
        self.chain.clear();
        self.failure = Some(f);
        self
    }

    /// The chain this handshake contributes, if it got one of a key type asked for.
    pub fn presented(&self) -> Option<&[Der]> {
        (self.offered && self.failure.is_none() && !self.chain.is_empty())
            .then_some(self.chain.as_slice())
    }

    /// "ECDSA", "RSA or Ed25519", "any key type": what was asked for.
    pub fn asked_names(&self) -> String {
        if self.asked.is_empty() {
            return "any key type".to_string();
        }
        let names: Vec<&str> = self.asked.iter().map(|k| k.as_str()).collect();
        names.join(" or ")
    }
}

fn default_port() -> u16 {
    25
}

impl SmtpProbe {
    /// A probe of `address` before anything happened: no replies, no TLS.
    pub fn unprobed(address: IpAddr, port: u16) -> SmtpProbe {
        SmtpProbe {
            address,
            port,
            elapsed_ms: 0,
            greeting: None,
            ehlo: None,
            starttls: None,
            tls: None,
            chain: Vec::new(),
            failure: None,
            key_types: Vec::new(),
        }
    }

    /// EHLO keywords, upper case (`STARTTLS`, `PIPELINING`, ...).
    pub fn ehlo_keywords(&self) -> Vec<String> {
        self.ehlo
            .iter()
            .flat_map(|r| r.lines.iter().skip(1))
            .filter_map(|l| l.split_whitespace().next())
            .map(|k| k.to_ascii_uppercase())
            .collect()
    }
}

/// Errors reading an evidence file.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("not valid evidence JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "evidence schema version {found} is not supported (this build reads {EVIDENCE_SCHEMA_VERSION})"
    )]
    Version { found: u32 },
}

/// Reads one evidence document, a JSON array of them, or a test vector
/// (`{"evidence": {...}, "expect": ...}` as in testdata/vectors).
pub fn parse_evidence(text: &str) -> Result<Vec<Evidence>, EvidenceError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Evidence>),
        One(Box<Evidence>),
        Vector { evidence: Box<Evidence> },
    }
    let all = match serde_json::from_str::<OneOrMany>(text) {
        Ok(OneOrMany::Many(v)) => v,
        Ok(OneOrMany::One(e)) | Ok(OneOrMany::Vector { evidence: e }) => vec![*e],
        // Re-parse as a single document to get serde's precise error message.
        Err(_) => vec![serde_json::from_str::<Evidence>(text)?],
    };
    for e in &all {
        if e.schema_version != EVIDENCE_SCHEMA_VERSION {
            return Err(EvidenceError::Version {
                found: e.schema_version,
            });
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_is_a_witness_verdict() {
        let w = |rcode: &str, cd: Option<&str>| Witness {
            rcode: rcode.into(),
            ad: false,
            ede: None,
            cd_rcode: cd.map(str::to_string),
        };
        for (witness, verdict) in [
            (w("NOERROR", None), true),
            (w("NXDOMAIN", None), true),
            (w("SERVFAIL", Some("NOERROR")), true),
            (w("SERVFAIL", Some("NXDOMAIN")), true),
            (w("SERVFAIL", None), true),
            (w("SERVFAIL", Some("SERVFAIL")), false),
            (w("SERVFAIL", Some("timeout")), false),
            (w("timeout", None), false),
            (w("network-error", None), false),
            (w("REFUSED", None), false),
        ] {
            assert_eq!(witness.is_verdict(), verdict, "{witness:?}");
        }
    }

    #[test]
    fn implicit_and_null_mx_targets() {
        let meta = |outcome, dnssec| LookupMeta {
            qname: "example".into(),
            outcome,
            failure: None,
            dnssec,
            ttl: None,
            rrsigs: vec![],
            cnames: vec![],
            witness: None,
        };
        let l = |outcome, dnssec, recs: Vec<(u16, &str)>| Lookup {
            meta: meta(outcome, dnssec),
            records: recs
                .into_iter()
                .map(|(p, e)| MxRecord {
                    preference: p,
                    exchange: e.into(),
                })
                .collect(),
        };
        use DnssecStatus::*;
        assert_eq!(
            mx_targets("example", &l(Outcome::NoData, Secure, vec![])),
            vec![("example".to_string(), None)]
        );
        assert!(mx_targets("example", &l(Outcome::NoData, Insecure, vec![])).is_empty());
        assert!(mx_targets("example", &l(Outcome::Answer, Secure, vec![(0, ".")])).is_empty());
        assert_eq!(
            mx_targets(
                "example",
                &l(
                    Outcome::Answer,
                    Insecure,
                    vec![(5, "b.example"), (10, "a.example"), (20, "b.example")]
                )
            ),
            vec![
                ("b.example".to_string(), Some(5)),
                ("a.example".to_string(), Some(10))
            ]
        );
        assert!(
            mx_targets(
                "example",
                &l(Outcome::Answer, Bogus, vec![(5, "b.example")])
            )
            .is_empty()
        );
    }

    #[test]
    fn ns_records_keep_their_presentation_form() {
        for text in [
            "CNAME _25._tcp.shared.example.org.",
            "3 1 1 00112233",
            "192.0.2.1",
        ] {
            let r: NsRecord = text.parse().unwrap();
            assert_eq!(r.to_string(), text);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<NsRecord>(&json).unwrap(), r);
        }
        assert!(matches!(
            "CNAME x.".parse::<NsRecord>().unwrap(),
            NsRecord::Cname(_)
        ));
        assert!(matches!(
            "3 1 1 00".parse::<NsRecord>().unwrap(),
            NsRecord::Tlsa(_)
        ));
    }

    #[test]
    fn legacy_hellos_that_a_modern_client_could_have_negotiated() {
        let l = |v: &str, c: &str| LegacyHello {
            version: v.into(),
            cipher: c.into(),
        };
        assert!(l("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").modern());
        assert!(l("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256").modern());
        assert!(!l("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA").modern());
        assert!(!l("TLSv1.2", "TLS_RSA_WITH_AES_128_GCM_SHA256").modern());
        assert!(!l("TLSv1.0", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA").modern());
    }

    #[test]
    fn old_evidence_without_key_types_still_loads() {
        let old = r#"{"address":"192.0.2.1","tls":null,"chain":[]}"#;
        let p: SmtpProbe = serde_json::from_str(old).unwrap();
        assert!(p.key_types.is_empty());
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("key_types"), "{text}");
        assert_eq!(KeyType::from_name(" Ed25519 "), Some(KeyType::Ed25519));
    }
}
