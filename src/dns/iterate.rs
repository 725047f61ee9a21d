//! `--iterative`: resolution in process, from the root servers (or
//! `--root-hints`) down to the authoritative servers, with no recursive
//! resolver in between (research/iterative.md §0, §6).
//!
//! [`IterResolver`] answers one question the way a recursive resolver with
//! CD=1 would: it follows referrals (with in-bailiwick glue, or by resolving
//! glueless NS names itself), retries over a zone's server addresses
//! (per-server timeout, TCP when truncated), and returns the authoritative
//! answer pruned to what the validator needs. It does not follow CNAMEs: the
//! lookup code chases them above the validator, one validated question per
//! hop (hickory PR #3595). In the collector it sits under [`super::upstream::Net`]
//! (answer cache, coalescing of identical questions, failure cache), so the
//! one `DnssecDnsHandle` validates its answers exactly as in resolver mode,
//! and the per-nameserver checks and the DS trust-anchor fetch go through
//! it as well. [`IterHandle`] is the same iterator as a stand-alone
//! `DnsHandle`.
//!
//! Caches, all bounded and shared by every task of a run:
//! * delegations: zone cut → NS names and server addresses, for the TTL of
//!   the NS/glue records (30 s – 1 day); a cut whose servers have no usable
//!   address is remembered for 30 s;
//! * servers: smoothed RTT (the faster first) and a "down" mark for 30 s
//!   after a timeout or network error (tried last; a zone whose addresses
//!   are all down gets one try per question, so a dead zone costs one
//!   timeout per question and not one per address);
//! * answers, DNSKEY and DS included, live in `Net`'s answer cache, so every
//!   domain under a zone shares its keys;
//! * questions in flight are coalesced per (zone, next label), except
//!   below zones seen to answer and never to delegate (leaves), so a cold
//!   burst of names under one TLD or one domain sends one referral question
//!   to each server on the way, not one per name.
//!
//! Bounds per question: 24 referrals, 96 queries sent (nested resolutions of
//! NS names included), nesting depth 6 for glueless NS names with a loop
//! check, 4 NS names resolved per glueless delegation, 4 server addresses
//! per zone (a single address gets a second try).
//!
//! No QNAME minimisation (RFC 9156): the names audited are mail domains and
//! their MX hosts, public by purpose, so there is little to hide from the
//! root and TLD servers, while minimisation costs one query per label and,
//! against response-rate limited servers, loses names (research §5.3: 9 %
//! failed with hickory's recursor). The full name goes to every server.
//!
//! Unbound retries another server when an answer does not validate. Below
//! the validator the iterator cannot know that, so [`retry_bogus`] re-runs
//! a Bogus validated question with the servers that gave the data avoided
//! (at most [`MAX_BOGUS_RETRIES`] times): one bad secondary then does not
//! decide the verdict, as with a resolver.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared, join_all};
use futures_util::stream::{self, Stream};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, DnsHandle, NetError};
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::op::{
    DnsRequest, DnsResponse, Edns, Message, MessageType, OpCode, Query, ResponseCode,
};
use hickory_resolver::proto::rr::rdata::opt::EdnsOption;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::transport::{self, Flags, failure};
use super::upstream::rcode_str;
use crate::core::evidence::{Failure, FailureKind, Families};
use crate::skip::SkipList;

/// Referrals followed for one question.
pub const MAX_REFERRALS: usize = 24;
/// Queries sent for one question, nested resolutions of NS names included.
pub const MAX_QUERIES: usize = 96;
/// Nesting of glueless NS name resolutions.
pub const MAX_DEPTH: usize = 6;
/// NS names resolved for one delegation without usable glue.
pub const MAX_GLUELESS: usize = 4;
/// Server addresses tried per zone and question.
pub const MAX_TRIES: usize = 4;
/// Re-runs of a Bogus validated question with other servers.
pub const MAX_BOGUS_RETRIES: usize = 4;
/// A server that timed out (or was unreachable) is tried last this long.
const DOWN_TTL: Duration = Duration::from_secs(30);
/// A question to a server not heard from yet is sent again after this long
/// without an answer (BIND's first retransmission is at 800 ms too).
const RESEND_UNKNOWN: Duration = Duration::from_millis(800);
/// Added to three round trips before sending again (so also the shortest
/// wait): room for a busy server, or a busy scanner, without sending every
/// question twice.
const RESEND_MIN: Duration = Duration::from_millis(250);
/// A delegation whose servers have no usable address is remembered this long.
const FAILURE_TTL: Duration = Duration::from_secs(30);
const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(86_400);

/// The IANA root server addresses (a–m, IPv4 and IPv6; root-servers.org,
/// 2024: b.root-servers.net renumbered in 2023).
pub const IANA_ROOT_SERVERS: &[&str] = &[
    "198.41.0.4",
    "2001:503:ba3e::2:30",
    "170.247.170.2",
    "2801:1b8:10::b",
    "192.33.4.12",
    "2001:500:2::c",
    "199.7.91.13",
    "2001:500:2d::d",
    "192.203.230.10",
    "2001:500:a8::e",
    "192.5.5.241",
    "2001:500:2f::f",
    "192.112.36.4",
    "2001:500:12::d0d",
    "198.97.190.53",
    "2001:500:1::53",
    "192.36.148.17",
    "2001:7fe::53",
    "192.58.128.30",
    "2001:503:c27::2:30",
    "193.0.14.129",
    "2001:7fd::1",
    "199.7.83.42",
    "2001:500:9f::42",
    "202.12.27.33",
    "2001:dc3::35",
];

/// Why a root hints file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootHintsError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Syntax {
        path: String,
        err: crate::zonefile::ZoneFileError,
    },
    #[error("line {0}: {1:?} is not a record or an address")]
    NotAnAddress(usize, String),
    #[error("line {0}: record type or data missing")]
    Incomplete(usize),
    #[error("line {line}: {rtype} record with address {data:?}")]
    WrongAddress {
        line: usize,
        rtype: String,
        data: String,
    },
    #[error("line {0}: unexpected record type {1}")]
    UnexpectedType(usize, String),
    #[error("no root server address (A/AAAA of the NS names of `.`)")]
    Empty,
    #[error("no root server address usable over the allowed address families")]
    NoUsableFamily,
}

/// Reads a root hints file ([`crate::zonefile`] syntax). The roots are the
/// A/AAAA addresses of the names in the NS RRset of `.`, or every A/AAAA
/// address when the file has no NS line; a line holding just an address
/// counts too.
pub fn parse_root_hints(text: &str) -> Result<Vec<IpAddr>, RootHintsError> {
    let entries = crate::zonefile::entries(text).map_err(|err| RootHintsError::Syntax {
        path: "root hints".into(),
        err,
    })?;
    let mut ns: HashSet<String> = HashSet::new();
    let mut addrs: Vec<(String, IpAddr)> = Vec::new();
    for e in &entries {
        let owner = e.owner.as_deref().map(absolute_lower).unwrap_or_default();
        let Some(rtype) = e.rtype.as_deref() else {
            match e.rdata.as_slice() {
                [one] => match one.parse::<IpAddr>() {
                    Ok(ip) => addrs.push((String::new(), ip)),
                    Err(_) => return Err(RootHintsError::NotAnAddress(e.line, one.clone())),
                },
                _ => return Err(RootHintsError::Incomplete(e.line)),
            }
            continue;
        };
        let data = e.rdata.first().ok_or(RootHintsError::Incomplete(e.line))?;
        match rtype {
            "NS" if owner == "." => {
                ns.insert(absolute_lower(data));
            }
            "NS" => {}
            "A" | "AAAA" => match data.parse::<IpAddr>() {
                Ok(ip) if (rtype == "A") == ip.is_ipv4() => addrs.push((owner, ip)),
                _ => {
                    return Err(RootHintsError::WrongAddress {
                        line: e.line,
                        rtype: rtype.to_string(),
                        data: data.clone(),
                    });
                }
            },
            other => return Err(RootHintsError::UnexpectedType(e.line, other.to_string())),
        }
    }
    let mut out: Vec<IpAddr> = addrs
        .into_iter()
        .filter(|(owner, _)| ns.is_empty() || owner.is_empty() || ns.contains(owner))
        .map(|(_, ip)| ip)
        .collect();
    out.dedup();
    if out.is_empty() {
        return Err(RootHintsError::Empty);
    }
    Ok(out)
}

fn absolute_lower(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

/// The root server addresses: from `hints`, or the IANA ones built in.
pub fn load_roots(hints: Option<&Path>) -> Result<Vec<IpAddr>, RootHintsError> {
    match hints {
        None => Ok(IANA_ROOT_SERVERS
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()),
        Some(p) => {
            let path = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|err| RootHintsError::Read {
                path: path.clone(),
                err,
            })?;
            parse_root_hints(&text).map_err(|err| match err {
                RootHintsError::Syntax { err, .. } => RootHintsError::Syntax { path, err },
                other => other,
            })
        }
    }
}

#[derive(Clone, Debug)]
pub struct IterConfig {
    /// Root server addresses.
    pub roots: Vec<IpAddr>,
    /// Port of every server (53; tests use another).
    pub port: u16,
    pub families: Families,
    /// Per server and transport.
    pub timeout: Duration,
    /// Tries for a zone with a single server address (at most 2).
    pub attempts: usize,
    /// Bound of the delegation and server caches (entries).
    pub cache_entries: usize,
    /// Server addresses never asked (the scan's skip list).
    pub skip: Arc<SkipList>,
}

impl Default for IterConfig {
    fn default() -> Self {
        IterConfig {
            roots: load_roots(None).unwrap_or_default(),
            port: 53,
            families: Families::default(),
            timeout: Duration::from_secs(3),
            attempts: 2,
            cache_entries: 100_000,
            skip: Arc::default(),
        }
    }
}

// ---- bounded caches ------------------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Insertion-ordered, size-bounded map with expiry (the oldest go first).
struct Fifo<K, V> {
    map: HashMap<K, (Instant, V)>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Fifo<K, V> {
    fn new(cap: usize) -> Self {
        Fifo {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(16),
        }
    }

    fn get(&mut self, k: &K) -> Option<V> {
        let (expires, v) = self.map.get(k)?;
        if Instant::now() < *expires {
            Some(v.clone())
        } else {
            self.map.remove(k);
            None
        }
    }

    fn put(&mut self, k: K, v: V, ttl: Duration) {
        if !self.map.contains_key(&k) {
            while self.map.len() >= self.cap {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(k.clone());
        }
        self.map.insert(k, (Instant::now() + ttl, v));
        if self.order.len() > self.cap.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
    }
}

/// A zone cut and where its servers are.
struct Delegation {
    zone: Name,
    ns: Vec<Name>,
    /// Usable over the allowed families; empty: none could be found.
    addrs: Vec<IpAddr>,
    /// Its servers have sent a referral.
    delegates: AtomicBool,
    /// Its servers have answered a question below one of its own labels
    /// themselves (no referral). A zone seen to answer and never to delegate
    /// is a leaf: questions below it are not coalesced (see `coalesced`).
    answers_below: AtomicBool,
}

#[derive(Clone, Copy, Default)]
struct ServerState {
    /// Smoothed round-trip time; `None` until the first answer.
    srtt_ms: Option<u32>,
    down_until: Option<Instant>,
}

/// What one step at one zone gave.
#[derive(Clone)]
enum StepOut {
    Referral(Arc<Delegation>),
    Final(Arc<DnsResponse>),
    Fail(Failure),
}

type PendingStep = Shared<BoxFuture<'static, StepOut>>;

/// Per top-level question: the query budget and the nesting of NS name
/// resolutions (for the depth and loop checks).
#[derive(Clone)]
struct Ctx {
    sent: Arc<AtomicUsize>,
    stack: Vec<(Name, RecordType)>,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            sent: Arc::new(AtomicUsize::new(0)),
            stack: Vec::new(),
        }
    }

    fn depth(&self) -> usize {
        self.stack.len()
    }
}

// ---- the resolver --------------------------------------------------------------------------

/// The iterative resolver. Share it in an `Arc`; every clone of the
/// collector uses the same caches.
pub struct IterResolver {
    cfg: IterConfig,
    root: Arc<Delegation>,
    delegations: Mutex<Fifo<Name, Arc<Delegation>>>,
    servers: Mutex<Fifo<IpAddr, ServerState>>,
    answered_by: Mutex<Fifo<(Name, RecordType), IpAddr>>,
    pending: Mutex<HashMap<Name, PendingStep>>,
    queries: AtomicUsize,
}

impl std::fmt::Debug for IterResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IterResolver")
            .field("roots", &self.root.addrs)
            .finish()
    }
}

fn family_ok(f: Families, ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => f.ipv4,
        IpAddr::V6(_) => f.ipv6,
    }
}

fn is_type(r: &Record, t: RecordType) -> bool {
    r.record_type() == t
}

fn covers(r: &Record, types: &[RecordType]) -> bool {
    matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(s)) if types.contains(&s.input().type_covered))
}

/// Alternates the address families, keeping the order within each and
/// starting with the family of the first: a family that does not work
/// here (no IPv6 route) then costs at most half the tries.
fn interleave(sorted: Vec<IpAddr>) -> Vec<IpAddr> {
    let first_v4 = sorted.first().is_some_and(IpAddr::is_ipv4);
    let (mut a, mut b): (VecDeque<IpAddr>, VecDeque<IpAddr>) =
        sorted.into_iter().partition(|ip| ip.is_ipv4() == first_v4);
    let mut out = Vec::with_capacity(a.len() + b.len());
    loop {
        match (a.pop_front(), b.pop_front()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// `target` cut to one label below `zone` (None at the zone itself).
fn next_label(zone: &Name, target: &Name) -> Option<Name> {
    let z = zone.num_labels() as usize;
    let t = target.to_lowercase();
    (t.num_labels() as usize > z).then(|| t.trim_to(z + 1))
}

enum Class {
    Referral(Name),
    Final,
    Unusable(String),
}

/// What a server's response to `name qtype`, asked as a server of `zone`, is.
fn classify(resp: &Message, zone: &Name, name: &Name, target: &Name) -> Class {
    let code = resp.metadata.response_code;
    if !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Class::Unusable(rcode_str(code));
    }
    let here = resp
        .answers
        .iter()
        .any(|r| r.name == *name && zone.zone_of(&r.name));
    let soa = resp
        .authorities
        .iter()
        .any(|r| is_type(r, RecordType::SOA) && zone.zone_of(&r.name));
    if code == ResponseCode::NoError && !here && !soa {
        // A referral: an NS RRset strictly below the zone on the way to the target.
        if let Some(cut) = resp
            .authorities
            .iter()
            .filter(|r| is_type(r, RecordType::NS))
            .map(|r| &r.name)
            .find(|c| **c != *zone && zone.zone_of(c) && c.zone_of(target))
        {
            return Class::Referral(cut.to_lowercase());
        }
    }
    if resp.metadata.authoritative || here || soa {
        Class::Final
    } else {
        Class::Unusable("lame (neither an answer nor a referral)".into())
    }
}

/// Keeps what a validator needs from an authoritative answer, as a
/// resolver's minimal response would: the answer section (within the zone),
/// the SOA and NSEC/NSEC3 proofs with their RRSIGs, nothing in additional.
/// The NS RRset and glue are not validated, so they cost nothing.
fn prune(resp: &mut DnsResponse, zone: &Name) {
    resp.answers.retain(|r| zone.zone_of(&r.name));
    let proof = [RecordType::NSEC, RecordType::NSEC3];
    let negative = [RecordType::SOA, RecordType::NSEC, RecordType::NSEC3];
    let keep: &[RecordType] = if resp.answers.is_empty() {
        &negative
    } else {
        &proof
    };
    resp.authorities
        .retain(|r| zone.zone_of(&r.name) && (keep.contains(&r.record_type()) || covers(r, keep)));
    resp.additionals.clear();
    resp.metadata.authentic_data = false;
}

/// A resolver's SERVFAIL with an RFC 8914 extended error saying why.
fn servfail(name: &Name, qtype: RecordType, ede: u16, text: &str) -> DnsResponse {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name.clone(), qtype));
    m.metadata.response_code = ResponseCode::ServFail;
    let mut edns = Edns::new();
    let mut data = ede.to_be_bytes().to_vec();
    data.extend_from_slice(text.as_bytes());
    edns.options_mut().insert(EdnsOption::Unknown(15, data));
    m.edns = Some(edns);
    DnsResponse::from_message(m).expect("a SERVFAIL message encodes")
}

/// RFC 8914: No Reachable Authority.
const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;

impl IterResolver {
    pub fn new(cfg: IterConfig) -> Arc<IterResolver> {
        let roots: Vec<IpAddr> = cfg
            .roots
            .iter()
            .copied()
            .filter(|ip| family_ok(cfg.families, ip))
            .collect();
        let cap = cfg.cache_entries.max(16);
        Arc::new(IterResolver {
            root: Arc::new(Delegation {
                zone: Name::root(),
                ns: Vec::new(),
                addrs: roots,
                delegates: AtomicBool::new(true),
                answers_below: AtomicBool::new(false),
            }),
            delegations: Mutex::new(Fifo::new(cap)),
            servers: Mutex::new(Fifo::new(cap)),
            answered_by: Mutex::new(Fifo::new(cap)),
            pending: Mutex::new(HashMap::new()),
            queries: AtomicUsize::new(0),
            cfg,
        })
    }

    /// Root server addresses usable over the allowed families.
    pub fn roots(&self) -> &[IpAddr] {
        &self.root.addrs
    }

    /// Queries sent so far (all questions).
    pub fn queries_sent(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    /// The cached zone cut closest above `name` and its server addresses.
    pub fn cached_delegation(&self, name: &Name) -> (Name, Vec<IpAddr>) {
        let d = self.closest(name);
        (d.zone.clone(), d.addrs.clone())
    }

    /// The server address that last gave the final answer to `name qtype`.
    pub fn answered_by(&self, name: &Name, qtype: RecordType) -> Option<IpAddr> {
        lock(&self.answered_by).get(&(name.to_lowercase(), qtype))
    }

    /// Resolves `name qtype` from the closest known zone cut. NXDOMAIN and
    /// NODATA are `Ok`; a zone whose servers answer only with errors gives a
    /// SERVFAIL response (with an extended error); `Err` means that no server
    /// answered at all (timeouts, unreachable) or a limit was hit.
    pub async fn query(
        self: &Arc<Self>,
        name: &Name,
        qtype: RecordType,
    ) -> Result<DnsResponse, Failure> {
        let r = self.walk(name.clone(), qtype, Ctx::new()).await?;
        Ok(Arc::try_unwrap(r).unwrap_or_else(|a| (*a).clone()))
    }

    fn closest(&self, target: &Name) -> Arc<Delegation> {
        let mut cache = lock(&self.delegations);
        let mut cur = target.to_lowercase();
        while !cur.is_root() {
            if let Some(d) = cache.get(&cur) {
                return d;
            }
            cur = cur.base_name();
        }
        Arc::clone(&self.root)
    }

    fn walk(
        self: &Arc<Self>,
        name: Name,
        qtype: RecordType,
        ctx: Ctx,
    ) -> BoxFuture<'static, Result<Arc<DnsResponse>, Failure>> {
        let this = Arc::clone(self);
        async move {
            // DS lives in the parent zone (RFC 4035 §3.1.4.1).
            let target = if qtype == RecordType::DS && !name.is_root() {
                name.base_name()
            } else {
                name.clone()
            };
            let mut deleg = this.closest(&target);
            let mut waited: HashSet<Name> = HashSet::new();
            let mut referrals = 0;
            loop {
                let out = match this.coalesced(&deleg, &target, &name, qtype, &ctx, &mut waited) {
                    Ok(own) => own.await,
                    Err(other) => {
                        // Another question is asking this zone about the same
                        // next label: wait for it, then start from what it learnt.
                        other.await;
                        let d = this.closest(&target);
                        if d.zone.num_labels() > deleg.zone.num_labels() {
                            deleg = d;
                        }
                        continue;
                    }
                };
                match out {
                    StepOut::Referral(d) => {
                        referrals += 1;
                        if referrals > MAX_REFERRALS {
                            return Err(failure(
                                FailureKind::Other,
                                format!("more than {MAX_REFERRALS} referrals for {name} {qtype}"),
                            ));
                        }
                        deleg = d;
                    }
                    StepOut::Final(r) => return Ok(r),
                    StepOut::Fail(f) => return Err(f),
                }
            }
        }
        .boxed()
    }

    /// The step to run at `deleg`: `Ok` our own (possibly shared with
    /// waiters), `Err` someone else's to wait for first.
    #[allow(clippy::type_complexity)]
    fn coalesced(
        self: &Arc<Self>,
        deleg: &Arc<Delegation>,
        target: &Name,
        name: &Name,
        qtype: RecordType,
        ctx: &Ctx,
        waited: &mut HashSet<Name>,
    ) -> Result<BoxFuture<'static, StepOut>, BoxFuture<'static, ()>> {
        let own = {
            let this = Arc::clone(self);
            let (d, n, c) = (Arc::clone(deleg), name.clone(), ctx.clone());
            async move { this.step(d, n, qtype, c).await }
        };
        // Nested resolutions never wait (a leader may be waiting for them),
        // and retries run on their own. Coalesce below zones that delegate or
        // are not known yet; not below leaves (where it would only delay
        // sibling questions, e.g. A, AAAA and TLSA of one host, by a round trip).
        let worth =
            deleg.delegates.load(Ordering::Relaxed) || !deleg.answers_below.load(Ordering::Relaxed);
        let key = match next_label(&deleg.zone, target) {
            Some(k) if ctx.depth() == 0 && !retrying() && worth => k,
            _ => return Ok(own.boxed()),
        };
        let mut pending = lock(&self.pending);
        if let Some(p) = pending.get(&key) {
            if waited.insert(key) {
                let p = p.clone();
                return Err(async move {
                    p.await;
                }
                .boxed());
            }
            return Ok(own.boxed());
        }
        let this = Arc::clone(self);
        let k = key.clone();
        let shared = async move {
            let out = own.await;
            lock(&this.pending).remove(&k);
            out
        }
        .boxed()
        .shared();
        pending.insert(key, shared.clone());
        Ok(shared.boxed())
    }

    /// Asks the servers of one zone, in order, until one gives a referral
    /// or a final answer.
    async fn step(
        self: &Arc<Self>,
        deleg: Arc<Delegation>,
        name: Name,
        qtype: RecordType,
        ctx: Ctx,
    ) -> StepOut {
        let zone = &deleg.zone;
        if deleg.addrs.is_empty() {
            let text = format!(
                "no usable address for the servers of {zone} ({})",
                if deleg.ns.is_empty() {
                    "none known".to_string()
                } else {
                    deleg
                        .ns
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            return StepOut::Final(Arc::new(servfail(
                &name,
                qtype,
                EDE_NO_REACHABLE_AUTHORITY,
                &text,
            )));
        }
        let target = if qtype == RecordType::DS && !name.is_root() {
            name.base_name()
        } else {
            name.clone()
        };
        let flags = Flags {
            rd: false,
            cd: true,
        };
        let order = self.order(&deleg.addrs, &name);
        if order.is_empty() {
            let text = format!(
                "no address of the servers of {zone} usable over the allowed families and not refused (skip list, special-purpose screen)"
            );
            return StepOut::Final(Arc::new(servfail(
                &name,
                qtype,
                EDE_NO_REACHABLE_AUTHORITY,
                &text,
            )));
        }
        let mut problems: Vec<String> = Vec::new();
        let (mut timeouts, mut answered, mut budget) = (0usize, 0usize, false);
        for ip in order {
            if ctx.sent.fetch_add(1, Ordering::Relaxed) >= MAX_QUERIES {
                problems.push(format!("more than {MAX_QUERIES} queries for one question"));
                budget = true;
                break;
            }
            self.queries.fetch_add(1, Ordering::Relaxed);
            let server = SocketAddr::new(ip, self.cfg.port);
            let start = Instant::now();
            let mut resp = match transport::exchange_resending(
                server,
                &name,
                qtype,
                flags,
                self.cfg.timeout,
                self.resend_after(ip),
            )
            .await
            {
                Ok(r) => r,
                Err(f) => {
                    match f.kind {
                        FailureKind::Timeout => {
                            timeouts += 1;
                            self.mark_down(ip);
                        }
                        FailureKind::Network => self.mark_down(ip),
                        _ => answered += 1,
                    }
                    problems.push(f.detail);
                    continue;
                }
            };
            self.mark_up(ip, start.elapsed());
            match classify(&resp, zone, &name, &target) {
                Class::Referral(cut) => {
                    deleg.delegates.store(true, Ordering::Relaxed);
                    return StepOut::Referral(self.delegation_from(&resp, zone, cut, &ctx).await);
                }
                Class::Final => {
                    if next_label(zone, &target).is_some() {
                        deleg.answers_below.store(true, Ordering::Relaxed);
                    }
                    prune(&mut resp, zone);
                    lock(&self.answered_by).put((name.to_lowercase(), qtype), ip, MAX_TTL);
                    note_used(ip);
                    return StepOut::Final(Arc::new(resp));
                }
                Class::Unusable(why) => {
                    answered += 1;
                    problems.push(format!("{ip}: {why}"));
                }
            }
        }
        let detail = format!(
            "no usable answer from the servers of {zone} for {name} {qtype}: {}",
            problems.join("; ")
        );
        if answered > 0 {
            StepOut::Final(Arc::new(servfail(
                &name,
                qtype,
                EDE_NO_REACHABLE_AUTHORITY,
                &detail,
            )))
        } else {
            let kind = if timeouts > 0 {
                FailureKind::Timeout
            } else if budget {
                FailureKind::Other
            } else {
                FailureKind::Network
            };
            StepOut::Fail(failure(kind, detail))
        }
    }

    /// The order in which to try a zone's addresses: live servers, fastest
    /// (and never asked) first, ties spread by name; servers marked down or
    /// avoided last, and only when nothing else is left, once.
    fn order(&self, addrs: &[IpAddr], name: &Name) -> Vec<IpAddr> {
        let now = Instant::now();
        let avoid = AVOID.try_with(|a| a.avoid.clone()).unwrap_or_default();
        let mut live: Vec<(u32, u64, IpAddr)> = Vec::new();
        let mut down: Vec<IpAddr> = Vec::new();
        {
            let mut servers = lock(&self.servers);
            let usable =
                |ip: &&IpAddr| family_ok(self.cfg.families, ip) && !self.cfg.skip.address(**ip);
            for ip in addrs.iter().filter(usable) {
                let st = servers.get(ip).unwrap_or_default();
                if avoid.contains(ip) || st.down_until.is_some_and(|t| t > now) {
                    down.push(*ip);
                    continue;
                }
                let mut h = DefaultHasher::new();
                (name, ip).hash(&mut h);
                live.push((st.srtt_ms.unwrap_or(0) / 8, h.finish(), *ip));
            }
        }
        live.sort();
        let mut out = interleave(live.into_iter().map(|(_, _, ip)| ip).collect());
        out.truncate(MAX_TRIES);
        if out.len() == 1 && self.cfg.attempts >= 2 {
            out.push(out[0]);
        }
        if out.is_empty()
            && let Some(ip) = down.first()
        {
            out.push(*ip);
        }
        out
    }

    /// When to send a question to `ip` again: three smoothed round trips
    /// and a margin once the server has answered before (RFC 6298 in
    /// spirit, as resolvers do), else [`RESEND_UNKNOWN`].
    fn resend_after(&self, ip: IpAddr) -> Duration {
        let srtt = lock(&self.servers).get(&ip).and_then(|s| s.srtt_ms);
        match srtt {
            Some(ms) => (Duration::from_millis(u64::from(ms)) * 3 + RESEND_MIN).min(RESEND_UNKNOWN),
            None => RESEND_UNKNOWN,
        }
    }

    fn mark_down(&self, ip: IpAddr) {
        let mut s = lock(&self.servers);
        let mut st = s.get(&ip).unwrap_or_default();
        st.down_until = Some(Instant::now() + DOWN_TTL);
        s.put(ip, st, MAX_TTL);
    }

    fn mark_up(&self, ip: IpAddr, rtt: Duration) {
        let ms = rtt.as_millis().min(60_000) as u32;
        let mut s = lock(&self.servers);
        let mut st = s.get(&ip).unwrap_or_default();
        st.down_until = None;
        st.srtt_ms = Some(match st.srtt_ms {
            Some(old) => (old * 7 + ms) / 8,
            None => ms,
        });
        s.put(ip, st, MAX_TTL);
    }

    /// The delegation to `cut` from a referral by a server of `zone`: glue
    /// within `zone` (its bailiwick), else the NS names resolved here.
    /// Cached; an empty address list is cached briefly.
    async fn delegation_from(
        self: &Arc<Self>,
        resp: &Message,
        zone: &Name,
        cut: Name,
        ctx: &Ctx,
    ) -> Arc<Delegation> {
        let mut ttl = u32::MAX;
        let mut ns: Vec<Name> = Vec::new();
        for r in resp.authorities.iter().filter(|r| r.name == cut) {
            if let RData::NS(n) = &r.data {
                ns.push(n.0.to_lowercase());
                ttl = ttl.min(r.ttl);
            }
        }
        ns.sort();
        ns.dedup();
        let mut addrs: Vec<IpAddr> = Vec::new();
        for r in &resp.additionals {
            let ip = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                _ => continue,
            };
            if zone.zone_of(&r.name)
                && ns.contains(&r.name.to_lowercase())
                && family_ok(self.cfg.families, &ip)
            {
                addrs.push(ip);
                ttl = ttl.min(r.ttl);
            }
        }
        if addrs.is_empty() {
            // Glueless: resolve NS names outside the new zone (one inside it
            // without glue cannot be reached).
            let names: Vec<Name> = ns
                .iter()
                .filter(|n| !cut.zone_of(n))
                .take(MAX_GLUELESS)
                .cloned()
                .collect();
            let got = join_all(names.iter().map(|n| self.addresses_of(n, ctx))).await;
            addrs = got.into_iter().flatten().collect();
        }
        addrs.sort();
        addrs.dedup();
        let ttl = if addrs.is_empty() {
            FAILURE_TTL
        } else {
            Duration::from_secs(u64::from(ttl.min(MAX_TTL.as_secs() as u32)))
                .clamp(MIN_TTL, MAX_TTL)
        };
        let d = Arc::new(Delegation {
            zone: cut.clone(),
            ns,
            addrs,
            delegates: AtomicBool::new(false),
            answers_below: AtomicBool::new(false),
        });
        lock(&self.delegations).put(cut, Arc::clone(&d), ttl);
        d
    }

    /// A and/or AAAA of a server name, resolved from the root (nested).
    async fn addresses_of(self: &Arc<Self>, ns: &Name, ctx: &Ctx) -> Vec<IpAddr> {
        let mut types = Vec::new();
        if self.cfg.families.ipv4 {
            types.push(RecordType::A);
        }
        if self.cfg.families.ipv6 {
            types.push(RecordType::AAAA);
        }
        let lookups = types.into_iter().filter_map(|t| {
            let key = (ns.to_lowercase(), t);
            if ctx.depth() >= MAX_DEPTH || ctx.stack.contains(&key) {
                return None;
            }
            let mut c = ctx.clone();
            c.stack.push(key);
            Some(self.walk(ns.clone(), t, c))
        });
        join_all(lookups)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .flat_map(|r| {
                r.answers
                    .iter()
                    .filter_map(|rec| match &rec.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

// ---- retry on Bogus ------------------------------------------------------------------------

/// Servers to avoid while a Bogus question is asked again, and the servers
/// that gave final answers meanwhile.
struct Avoid {
    avoid: HashSet<IpAddr>,
    used: Mutex<HashSet<IpAddr>>,
}

tokio::task_local! {
    static AVOID: Arc<Avoid>;
}

/// True while a question is asked again ([`retry_bogus`]): the answer cache
/// is then bypassed (and refreshed).
pub fn retrying() -> bool {
    AVOID.try_with(|_| ()).is_ok()
}

fn note_used(ip: IpAddr) {
    let _ = AVOID.try_with(|a| lock(&a.used).insert(ip));
}

/// How a validated result reads, for [`retry_bogus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    Good,
    /// Bogus data (not a failure to fetch keys).
    Bogus,
    Failed,
}

/// When `first` is Bogus, asks again (`attempt`) with the servers that gave
/// the data avoided, as a resolver does, and returns the first result that
/// is neither Bogus nor failed; otherwise `first`.
pub async fn retry_bogus<T, F, Fut>(
    it: &IterResolver,
    name: &Name,
    qtype: RecordType,
    first: T,
    judge: impl Fn(&T) -> Validity,
    attempt: F,
) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
{
    if judge(&first) != Validity::Bogus {
        return first;
    }
    let mut avoid: HashSet<IpAddr> = it.answered_by(name, qtype).into_iter().collect();
    for _ in 0..MAX_BOGUS_RETRIES {
        let ctx = Arc::new(Avoid {
            avoid: avoid.clone(),
            used: Mutex::new(HashSet::new()),
        });
        let out = AVOID.scope(Arc::clone(&ctx), attempt()).await;
        if judge(&out) == Validity::Good {
            return out;
        }
        let before = avoid.len();
        avoid.extend(lock(&ctx.used).iter().copied());
        if avoid.len() == before {
            break;
        }
    }
    first
}

// ---- as a DnsHandle ------------------------------------------------------------------------

/// The iterator as a `DnsHandle` of its own (no answer cache in front), for
/// `DnssecDnsHandle::with_trust_anchor(IterHandle(..), anchors)`.
#[derive(Clone, Debug)]
pub struct IterHandle(pub Arc<IterResolver>);

impl DnsHandle for IterHandle {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let it = Arc::clone(&self.0);
        Box::pin(stream::once(async move {
            let Some(q) = request.queries.first() else {
                return Err(NetError::from("no query in request"));
            };
            let resp = it
                .query(q.name(), q.query_type())
                .await
                .map_err(|f| match f.kind {
                    FailureKind::Timeout => NetError::Timeout,
                    _ => NetError::from(f.detail),
                })?;
            match resp.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => Ok(resp),
                code => Err(NetError::Dns(DnsError::ResponseCode(code))),
            }
        }))
    }
}

#[cfg(test)]
mod tests;
