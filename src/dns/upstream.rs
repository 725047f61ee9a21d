//! The network layer under the validator: a bounded per-run answer cache,
//! coalescing of identical questions in flight, bounded retries over the
//! resolvers, direct questions to one server, and the [`Upstream`]
//! `DnsHandle` that hickory's `DnssecDnsHandle` runs over (CD=1, so bogus
//! data and its signatures reach the validator).
//!
//! Hickory's validator turns a failed DNSKEY/DS/NS fetch into `Bogus`. To tell
//! "broken signatures" from "could not fetch the keys", every failure that
//! the validator's questions meet is noted in a task-local trace
//! ([`traced`]); the caller reclassifies a Bogus result that came with
//! transport failures.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::stream::{self, Stream};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, DnsHandle, NetError};
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::op::{DnsRequest, DnsResponse, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use super::iterate::{self, IterResolver};
use super::transport::{self, Flags, Transport, failure};
use crate::core::evidence::{Failure, FailureKind};

/// Failed questions are remembered this long, so that a dead server costs
/// one timeout per run and not one per domain.
const FAILURE_TTL: Duration = Duration::from_secs(30);
/// Within one run, answers are reused for at least this long (consistency
/// across the hosts of a domain matters more than TTL precision).
const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Key {
    /// Lower-case, fully qualified.
    pub name: String,
    pub qtype: u16,
    pub flags: Flags,
    /// `None`: the configured resolvers; `Some`: this server only.
    pub server: Option<SocketAddr>,
    pub transport: Transport,
}

impl Key {
    pub fn new(name: &Name, qtype: RecordType, flags: Flags, server: Option<SocketAddr>) -> Key {
        Key {
            name: name.to_lowercase().to_ascii(),
            qtype: u16::from(qtype),
            flags,
            server,
            transport: Transport::Auto,
        }
    }
}

/// The result of one question, as cached.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Any response code; transport failures and malformed answers are `Err`.
    pub result: Result<Arc<DnsResponse>, Failure>,
    pub elapsed_ms: u64,
}

struct Cache {
    map: HashMap<Key, (Instant, Fetched)>,
    order: VecDeque<Key>,
    cap: usize,
}

impl Cache {
    fn get(&mut self, k: &Key) -> Option<Fetched> {
        let (expires, v) = self.map.get(k)?;
        if Instant::now() < *expires {
            Some(v.clone())
        } else {
            self.map.remove(k);
            None
        }
    }

    fn put(&mut self, k: Key, v: Fetched, ttl: Duration) {
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
        // Keys of expired-and-removed entries linger in `order`; keep it bounded.
        if self.order.len() > self.cap.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
    }
}

type InFlight = Shared<BoxFuture<'static, Fetched>>;

/// Shared by every handle of one collector.
pub struct Net {
    pub resolvers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: usize,
    cache: Mutex<Cache>,
    inflight: Mutex<HashMap<Key, InFlight>>,
    /// Iterative mode: questions for no particular server are resolved by
    /// this from the root instead of asking `resolvers`.
    iterator: Option<Arc<IterResolver>>,
    /// Exchanges sent to resolvers and to servers asked directly (the
    /// iterator counts its own).
    exchanges: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Net {
    pub fn new(
        resolvers: Vec<SocketAddr>,
        timeout: Duration,
        attempts: usize,
        cache_entries: usize,
    ) -> Arc<Net> {
        Arc::new(Net {
            resolvers,
            timeout,
            attempts: attempts.max(1),
            cache: Mutex::new(Cache {
                map: HashMap::new(),
                order: VecDeque::new(),
                cap: cache_entries.max(16),
            }),
            inflight: Mutex::new(HashMap::new()),
            iterator: None,
            exchanges: AtomicU64::new(0),
        })
    }

    /// As [`Net::new`], resolving with `iterator` instead of resolvers.
    pub fn iterative(
        iterator: Arc<IterResolver>,
        timeout: Duration,
        attempts: usize,
        cache_entries: usize,
    ) -> Arc<Net> {
        let mut net = Arc::into_inner(Net::new(Vec::new(), timeout, attempts, cache_entries))
            .expect("a new Net is not shared");
        net.iterator = Some(iterator);
        Arc::new(net)
    }

    /// The iterative resolver, in iterative mode.
    pub fn iterator(&self) -> Option<&Arc<IterResolver>> {
        self.iterator.as_ref()
    }

    /// DNS exchanges sent so far: to the resolvers or, iteratively, to the
    /// servers on the way down, and to servers asked directly.
    pub fn queries_sent(&self) -> u64 {
        let it = self
            .iterator
            .as_ref()
            .map_or(0, |i| i.queries_sent() as u64);
        self.exchanges.load(Ordering::Relaxed) + it
    }

    /// Drops every cached answer, so that the next questions go to the
    /// network again (questions in flight still complete and are kept).
    pub fn forget(&self) {
        let mut c = lock(&self.cache);
        c.map.clear();
        c.order.clear();
    }

    /// Asks the resolvers (cached, coalesced).
    pub async fn resolve(self: &Arc<Self>, name: &Name, qtype: RecordType, cd: bool) -> Fetched {
        let flags = Flags { rd: true, cd };
        self.fetch(Key::new(name, qtype, flags, None), name.clone(), qtype)
            .await
    }

    /// Asks one server directly with RD=0 (cached, coalesced): at most one retry.
    pub async fn direct(
        self: &Arc<Self>,
        server: SocketAddr,
        name: &Name,
        qtype: RecordType,
    ) -> Fetched {
        self.direct_over(server, name, qtype, Transport::Auto).await
    }

    /// Whether `server` answers over TCP: `zone SOA` over TCP, asked once
    /// per server address and run, whatever the zone (a hoster's server
    /// carries many zones, and a burst of TCP connections to one server is
    /// neither polite nor a fair test of it).
    pub async fn tcp_check(self: &Arc<Self>, server: SocketAddr, zone: &Name) -> Fetched {
        let key = Key {
            // Real names are fully qualified: the empty name is this check's.
            name: String::new(),
            transport: Transport::Tcp,
            ..Key::new(
                zone,
                RecordType::SOA,
                Flags {
                    rd: false,
                    cd: false,
                },
                Some(server),
            )
        };
        self.fetch(key, zone.clone(), RecordType::SOA).await
    }

    /// As [`Net::direct`], over one transport only.
    pub async fn direct_over(
        self: &Arc<Self>,
        server: SocketAddr,
        name: &Name,
        qtype: RecordType,
        transport: Transport,
    ) -> Fetched {
        let flags = Flags {
            rd: false,
            cd: false,
        };
        let key = Key {
            transport,
            ..Key::new(name, qtype, flags, Some(server))
        };
        self.fetch(key, name.clone(), qtype).await
    }

    async fn fetch(self: &Arc<Self>, key: Key, name: Name, qtype: RecordType) -> Fetched {
        if key.server.is_none() && self.iterator.is_some() && iterate::retrying() {
            // Asked again after a Bogus answer: fresh, from other servers.
            let out = self.fetch_uncached(&key, &name, qtype).await;
            lock(&self.cache).put(key, out.clone(), ttl_of(&out));
            return out;
        }
        if let Some(hit) = lock(&self.cache).get(&key) {
            return hit;
        }
        let fut = {
            let mut inflight = lock(&self.inflight);
            match inflight.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let this = Arc::clone(self);
                    let k = key.clone();
                    let f = async move {
                        let out = this.fetch_uncached(&k, &name, qtype).await;
                        let ttl = ttl_of(&out);
                        lock(&this.cache).put(k.clone(), out.clone(), ttl);
                        lock(&this.inflight).remove(&k);
                        out
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        fut.await
    }

    async fn fetch_uncached(&self, key: &Key, name: &Name, qtype: RecordType) -> Fetched {
        let start = Instant::now();
        if let (None, Some(it)) = (key.server, &self.iterator) {
            let result = it.query(name, qtype).await.map(Arc::new);
            return Fetched {
                result,
                elapsed_ms: start.elapsed().as_millis() as u64,
            };
        }
        let (servers, rounds): (Vec<SocketAddr>, usize) = match key.server {
            Some(s) => (vec![s], self.attempts.min(2)),
            None => (self.resolvers.clone(), self.attempts),
        };
        let mut last: Option<Result<Arc<DnsResponse>, Failure>> = None;
        'rounds: for _ in 0..rounds {
            for (i, s) in servers.iter().enumerate() {
                self.exchanges.fetch_add(1, Ordering::Relaxed);
                let got = transport::exchange_over(
                    *s,
                    name,
                    qtype,
                    key.flags,
                    self.timeout,
                    key.transport,
                )
                .await;
                match got {
                    Ok(resp) => {
                        let code = resp.metadata.response_code;
                        let more = i + 1 < servers.len();
                        last = Some(Ok(Arc::new(resp)));
                        // A SERVFAIL or REFUSED from one resolver: try the next one,
                        // but never repeat a server that answered.
                        if !(more && matches!(code, ResponseCode::ServFail | ResponseCode::Refused))
                        {
                            break 'rounds;
                        }
                    }
                    Err(f) => last = Some(Err(f)),
                }
            }
            if matches!(last, Some(Ok(_))) {
                break;
            }
        }
        let result = last.unwrap_or_else(|| {
            Err(failure(
                FailureKind::Other,
                "no server to ask (address family disabled?)",
            ))
        });
        Fetched {
            result,
            elapsed_ms: start.elapsed().as_millis() as u64,
        }
    }
}

fn ttl_of(f: &Fetched) -> Duration {
    let Ok(resp) = &f.result else {
        return FAILURE_TTL;
    };
    if !matches!(
        resp.metadata.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    ) {
        return FAILURE_TTL;
    }
    let min = resp
        .answers
        .iter()
        .chain(&resp.authorities)
        .map(|r| r.ttl)
        .min()
        .or_else(|| resp.negative_ttl())
        .unwrap_or(60);
    Duration::from_secs(u64::from(min)).clamp(MIN_TTL, MAX_TTL)
}

impl super::DnsCollector {
    /// Forgets the answers cached so far in this run (they are otherwise
    /// reused for at least 30 s), so that a caller that polls for a change
    /// (`preflight --wait`) sees what the servers say now. The validator's
    /// cache is keyed by the RRset's content, so changed data is validated
    /// afresh anyway.
    pub fn forget_answers(&self) {
        self.inner.net.forget();
    }

    /// DNS exchanges sent so far by this collector and its clones (each
    /// retry counts; a UDP question answered again over TCP counts once),
    /// for a scan summary.
    pub fn queries_sent(&self) -> u64 {
        self.inner.net.queries_sent()
    }
}

// ---- the failure trace -------------------------------------------------------------------

/// One failure met by a question on behalf of the validator.
#[derive(Clone, Debug)]
pub struct Noted {
    pub name: Name,
    pub qtype: RecordType,
    pub failure: Failure,
}

tokio::task_local! {
    static TRACE: Arc<Mutex<Vec<Noted>>>;
}

fn note(name: &Name, qtype: RecordType, f: &Failure) {
    let _ = TRACE.try_with(|t| {
        lock(t).push(Noted {
            name: name.clone(),
            qtype,
            failure: f.clone(),
        })
    });
}

/// Runs `fut` and returns what it gave together with the failures its
/// questions met (in this task).
pub async fn traced<F: Future>(fut: F) -> (F::Output, Vec<Noted>) {
    let t = Arc::new(Mutex::new(Vec::new()));
    let out = TRACE.scope(Arc::clone(&t), fut).await;
    let noted = std::mem::take(&mut *lock(&t));
    (out, noted)
}

pub fn rcode_kind(code: ResponseCode) -> FailureKind {
    match code {
        ResponseCode::ServFail => FailureKind::ServFail,
        ResponseCode::Refused => FailureKind::Refused,
        ResponseCode::NotImp => FailureKind::NotImp,
        ResponseCode::FormErr => FailureKind::FormErr,
        _ => FailureKind::Other,
    }
}

pub fn rcode_str(code: ResponseCode) -> String {
    match u16::from(code) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

// ---- the DnsHandle ------------------------------------------------------------------------

/// A fixed answer for one question (a server's own denial, to validate it).
pub struct Pinned {
    pub name: Name,
    pub qtype: RecordType,
    pub response: DnsResponse,
}

tokio::task_local! {
    static PIN: Arc<Pinned>;
}

/// Runs `fut` with the answer to `p.name p.qtype` fixed to `p.response`
/// (every other question goes to the resolvers as usual). This lets the
/// shared validator, with its cache, judge one server's own answer.
pub async fn pinned<F: Future>(p: Arc<Pinned>, fut: F) -> F::Output {
    PIN.scope(p, fut).await
}

/// What `DnssecDnsHandle` sends its questions through.
#[derive(Clone)]
pub struct Upstream {
    pub net: Arc<Net>,
    /// Set CD=1 (hickory's validator forces CD=0 on the way down).
    pub cd: bool,
}

impl DnsHandle for Upstream {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let this = self.clone();
        Box::pin(stream::once(async move { this.answer(request).await }))
    }
}

impl Upstream {
    async fn answer(&self, request: DnsRequest) -> Result<DnsResponse, NetError> {
        let Some(q) = request.queries.first().cloned() else {
            return Err(NetError::from("no query in request"));
        };
        let (name, qtype) = (q.name().clone(), q.query_type());
        let pin = PIN
            .try_with(Arc::clone)
            .ok()
            .filter(|p| p.name == name && p.qtype == qtype);
        let resp = match pin {
            Some(p) => p.response.clone(),
            None => match self.net.resolve(&name, qtype, self.cd).await.result {
                Ok(r) => (*r).clone(),
                Err(f) => {
                    note(&name, qtype, &f);
                    return Err(match f.kind {
                        FailureKind::Timeout => NetError::Timeout,
                        _ => NetError::from(f.detail),
                    });
                }
            },
        };
        let code = resp.metadata.response_code;
        if !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain) {
            note(
                &name,
                qtype,
                &failure(
                    rcode_kind(code),
                    format!("{} for {name} {qtype}", rcode_str(code)),
                ),
            );
            return Err(NetError::Dns(DnsError::ResponseCode(code)));
        }
        Ok(strip_alias(resp, &name, qtype))
    }
}

/// When the answer to `name qtype` is an alias, keep only the CNAME at
/// `name` (and its signatures): the collector asks for the target itself.
/// hickory checks the NSEC/NSEC3 records of a CNAME'd answer against the
/// original name, so a target that is wildcard-expanded or absent would
/// otherwise come back Bogus (hickory PR #3595).
pub fn strip_alias(mut resp: DnsResponse, name: &Name, qtype: RecordType) -> DnsResponse {
    if qtype == RecordType::CNAME
        || resp
            .answers
            .iter()
            .any(|r| r.name == *name && r.record_type() == qtype)
    {
        return resp;
    }
    let is_alias = |r: &hickory_resolver::proto::rr::Record| {
        r.name == *name
            && (r.record_type() == RecordType::CNAME
                || matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(s))
                    if s.input().type_covered == RecordType::CNAME))
    };
    if !resp
        .answers
        .iter()
        .any(|r| r.name == *name && r.record_type() == RecordType::CNAME)
    {
        return resp;
    }
    let answers: Vec<_> = resp.answers.drain(..).filter(is_alias).collect();
    // A CNAME synthesised from a wildcard needs the proof that `name` itself
    // does not exist; otherwise the authority section is about the target.
    let wildcard = answers.iter().any(|r| {
        matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(s))
            if s.input().num_labels < r.name.num_labels())
    });
    resp.answers = answers;
    if !wildcard {
        resp.authorities.clear();
    }
    resp.additionals.clear();
    resp.metadata.response_code = ResponseCode::NoError;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::dnssec::rdata::RRSIG;
    use hickory_resolver::proto::dnssec::rdata::sig::SigInput;
    use hickory_resolver::proto::dnssec::{Algorithm, Proof};
    use hickory_resolver::proto::op::{Message, MessageType, OpCode};
    use hickory_resolver::proto::rr::rdata::{A, CNAME, SOA};
    use hickory_resolver::proto::rr::{Record, SerialNumber};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rrsig(owner: &str, covered: RecordType, labels: u8) -> Record {
        let input = SigInput {
            type_covered: covered,
            algorithm: Algorithm::ECDSAP256SHA256,
            num_labels: labels,
            original_ttl: 60,
            sig_expiration: SerialNumber::new(2_000_000_000),
            sig_inception: SerialNumber::new(1_700_000_000),
            key_tag: 1,
            signer_name: n("example."),
        };
        Record::from_rdata(
            n(owner),
            60,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, vec![0; 64]))),
        )
    }

    /// A TLSA name that is an alias: the answer to hand the validator is the
    /// CNAME alone (the target's records and proofs are asked for separately).
    #[test]
    fn alias_answers_are_cut_to_the_cname() {
        let q = n("_25._tcp.mx.example.");
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(hickory_resolver::proto::op::Query::query(
            q.clone(),
            RecordType::TLSA,
        ));
        m.metadata.response_code = ResponseCode::NXDomain;
        m.add_answer(Record::from_rdata(
            q.clone(),
            60,
            RData::CNAME(CNAME(n("_dane.prov.example."))),
        ));
        m.add_answer(rrsig("_25._tcp.mx.example.", RecordType::CNAME, 4));
        m.add_answer(Record::from_rdata(
            n("other.example."),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        m.add_authority(Record::from_rdata(
            n("prov.example."),
            60,
            RData::SOA(SOA::new(
                n("ns.prov.example."),
                n("h.prov.example."),
                1,
                1,
                1,
                1,
                1,
            )),
        ));
        m.add_additional(Record::from_rdata(
            n("x.example."),
            60,
            RData::A(A::new(192, 0, 2, 2)),
        ));
        let resp = DnsResponse::from_message(m).unwrap();
        let out = strip_alias(resp.clone(), &q, RecordType::TLSA);
        assert_eq!(out.answers.len(), 2);
        assert!(out.answers.iter().all(|r| r.name == q));
        assert!(out.authorities.is_empty() && out.additionals.is_empty());
        assert_eq!(out.metadata.response_code, ResponseCode::NoError);
        assert!(out.answers.iter().all(|r| r.proof == Proof::Indeterminate));

        // A CNAME from a wildcard keeps the proof that the name itself is absent.
        let mut m = resp.into_message();
        m.answers[1] = rrsig("_25._tcp.mx.example.", RecordType::CNAME, 3);
        let out = strip_alias(DnsResponse::from_message(m).unwrap(), &q, RecordType::TLSA);
        assert_eq!(out.authorities.len(), 1);

        // Asking for the CNAME itself, or an answer of the asked type: untouched.
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            q.clone(),
            60,
            RData::CNAME(CNAME(n("t.example."))),
        ));
        m.add_additional(Record::from_rdata(
            n("x.example."),
            60,
            RData::A(A::new(192, 0, 2, 2)),
        ));
        let out = strip_alias(DnsResponse::from_message(m).unwrap(), &q, RecordType::CNAME);
        assert_eq!(out.additionals.len(), 1);
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let mut c = Cache {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: 16,
        };
        let k = |i: usize| Key {
            name: format!("n{i}."),
            qtype: 1,
            flags: Flags { rd: true, cd: true },
            server: None,
            transport: Transport::Auto,
        };
        let v = || Fetched {
            result: Err(failure(FailureKind::Timeout, "")),
            elapsed_ms: 0,
        };
        for i in 0..100 {
            c.put(k(i), v(), Duration::from_secs(60));
        }
        assert_eq!(c.map.len(), 16);
        assert!(c.get(&k(99)).is_some() && c.get(&k(0)).is_none());
        c.put(k(200), v(), Duration::ZERO);
        assert!(c.get(&k(200)).is_none());
        assert!(c.order.len() <= 32);
        let net = Net::new(vec![], Duration::from_secs(1), 1, 16);
        lock(&net.cache).put(k(1), v(), Duration::from_secs(60));
        assert!(lock(&net.cache).get(&k(1)).is_some());
        net.forget();
        assert!(lock(&net.cache).get(&k(1)).is_none());
    }
}
