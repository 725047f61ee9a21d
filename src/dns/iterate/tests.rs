//! The iterator against small fake authoritative servers on 127.0.0.x
//! (all on one free port): referrals, glue, glueless NS names, loops,
//! TC → TCP, dead and lame servers, coalescing, the Bogus retry.

use super::*;
use hickory_resolver::proto::rr::rdata::{A, NS, SOA, TXT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

enum Reply {
    Msg(Message),
    /// TC=1 over UDP; the message over TCP.
    Truncated(Message),
    Silent,
}

type Handler = Arc<dyn Fn(&Name, RecordType) -> Reply + Send + Sync>;

/// Questions a fake server got: (name, type, over TCP).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, RecordType, bool)>>>);

impl Log {
    fn count(&self) -> usize {
        lock(&self.0).len()
    }
    fn count_of(&self, name: &str, t: RecordType) -> usize {
        lock(&self.0)
            .iter()
            .filter(|(q, ty, _)| q == name && *ty == t)
            .count()
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn respond(req: &Message, reply: &Message) -> Vec<u8> {
    let mut m = reply.clone();
    m.metadata.id = req.metadata.id;
    m.metadata.message_type = MessageType::Response;
    m.queries = req.queries.clone();
    m.to_vec().unwrap()
}

async fn serve(ip: &str, port: u16, h: Handler) -> Log {
    let log = Log::default();
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let udp = UdpSocket::bind(addr).await.unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let (h2, log2) = (Arc::clone(&h), log.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((len, peer)) = udp.recv_from(&mut buf).await {
            let Ok(req) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let q = req.queries[0].clone();
            lock(&log2.0).push((q.name().to_ascii(), q.query_type(), false));
            let out = match h2(q.name(), q.query_type()) {
                Reply::Msg(m) => respond(&req, &m),
                Reply::Truncated(m) => {
                    let mut t = Message::new(0, MessageType::Response, OpCode::Query);
                    t.metadata.truncation = true;
                    t.metadata.authoritative = m.metadata.authoritative;
                    respond(&req, &t)
                }
                Reply::Silent => continue,
            };
            let _ = udp.send_to(&out, peer).await;
        }
    });
    let log3 = log.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let (h, log) = (Arc::clone(&h), log3.clone());
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut body).await.is_err() {
                    return;
                }
                let req = Message::from_vec(&body).unwrap();
                let q = req.queries[0].clone();
                lock(&log.0).push((q.name().to_ascii(), q.query_type(), true));
                let out = match h(q.name(), q.query_type()) {
                    Reply::Msg(m) | Reply::Truncated(m) => respond(&req, &m),
                    Reply::Silent => return,
                };
                let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                let _ = s.write_all(&framed).await;
            });
        }
    });
    log
}

fn msg() -> Message {
    Message::new(0, MessageType::Response, OpCode::Query)
}

fn a(name: &str, ip: &str) -> Record {
    Record::from_rdata(n(name), 300, RData::A(A(ip.parse().unwrap())))
}

fn ns(owner: &str, target: &str) -> Record {
    Record::from_rdata(n(owner), 300, RData::NS(NS(n(target))))
}

fn soa(zone: &str) -> Record {
    let zone = if zone == "." { "" } else { zone };
    Record::from_rdata(
        n(if zone.is_empty() { "." } else { zone }),
        300,
        RData::SOA(SOA::new(
            n(&format!("ns.{zone}")),
            n(&format!("h.{zone}")),
            1,
            300,
            60,
            86400,
            60,
        )),
    )
}

/// An authoritative answer.
fn answer(records: Vec<Record>) -> Reply {
    let mut m = msg();
    m.metadata.authoritative = true;
    for r in records {
        m.add_answer(r);
    }
    Reply::Msg(m)
}

/// An authoritative NODATA (or NXDOMAIN) with the zone's SOA.
fn negative(zone: &str, nx: bool) -> Reply {
    let mut m = msg();
    m.metadata.authoritative = true;
    if nx {
        m.metadata.response_code = ResponseCode::NXDomain;
    }
    m.add_authority(soa(zone));
    Reply::Msg(m)
}

/// A referral to `cut` with NS names and optional glue.
fn referral(cut: &str, servers: &[(&str, Option<&str>)]) -> Reply {
    let mut m = msg();
    for (name, glue) in servers {
        m.add_authority(ns(cut, name));
        if let Some(ip) = glue {
            m.add_additional(a(name, ip));
        }
    }
    Reply::Msg(m)
}

fn under(name: &Name, zone: &str) -> bool {
    n(zone).zone_of(name)
}

type Cut = (
    &'static str,
    &'static [(&'static str, Option<&'static str>)],
);

/// A root that refers each name under one of `cuts` to that cut's servers
/// and denies every other name.
fn root_referring(cuts: &'static [Cut]) -> Handler {
    Arc::new(|q, _| {
        cuts.iter()
            .find(|(cut, _)| under(q, cut))
            .map(|(cut, servers)| referral(cut, servers))
            .unwrap_or_else(|| negative(".", true))
    })
}

fn resolver(port: u16, roots: &[&str]) -> Arc<IterResolver> {
    resolver_skipping(port, roots, "")
}

fn resolver_skipping(port: u16, roots: &[&str], skip: &str) -> Arc<IterResolver> {
    IterResolver::new(IterConfig {
        roots: roots.iter().map(|s| s.parse().unwrap()).collect(),
        port,
        families: Families {
            ipv4: true,
            ipv6: false,
        },
        timeout: Duration::from_millis(300),
        attempts: 2,
        cache_entries: 1000,
        skip: Arc::new(SkipList::parse(skip).unwrap()),
    })
}

fn addrs_of(r: &DnsResponse) -> Vec<String> {
    r.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// root (.2) → test. (.3, glue) → sub.test. (.4, glue) → answer; the cut
/// is cached, DS goes to the parent, the answer is pruned to what the
/// validator needs.
#[tokio::test]
async fn follows_referrals_with_glue_and_caches_the_cuts() {
    let port = free_port();
    let root = serve(
        "127.0.0.2",
        port,
        root_referring(&[("test.", &[("ns.test.", Some("127.0.0.3"))])]),
    )
    .await;
    let tld = serve(
        "127.0.0.3",
        port,
        Arc::new(|q, t| {
            if under(q, "sub.test.") && !(*q == n("sub.test.") && t == RecordType::DS) {
                // Out-of-bailiwick glue (for a name outside test.) is ignored.
                let Reply::Msg(mut m) =
                    referral("sub.test.", &[("ns.sub.test.", Some("127.0.0.4"))])
                else {
                    unreachable!()
                };
                m.add_additional(a("ns.sub.test.", "127.0.0.4"));
                m.add_additional(a("evil.example.", "127.0.0.99"));
                Reply::Msg(m)
            } else {
                negative("test.", false)
            }
        }),
    )
    .await;
    let leaf = serve(
        "127.0.0.4",
        port,
        Arc::new(|q, t| match t {
            RecordType::A if q.num_labels() == 3 => {
                let Reply::Msg(mut m) = answer(vec![a(&q.to_ascii(), "192.0.2.1")]) else {
                    unreachable!()
                };
                m.add_authority(ns("sub.test.", "ns.sub.test."));
                m.add_additional(a("ns.sub.test.", "127.0.0.4"));
                Reply::Msg(m)
            }
            _ => negative("sub.test.", false),
        }),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    let r = it.query(&n("www.sub.test."), RecordType::A).await.unwrap();
    assert_eq!(addrs_of(&r), vec!["192.0.2.1"]);
    assert!(r.authorities.is_empty(), "{:?}", r.authorities);
    assert!(r.additionals.is_empty());
    assert!(r.metadata.authoritative);
    let (cut, addrs) = it.cached_delegation(&n("x.sub.test."));
    assert_eq!(cut, n("sub.test."));
    assert_eq!(addrs, vec!["127.0.0.4".parse::<IpAddr>().unwrap()]);

    // A second name in the zone goes straight to its server.
    let r = it.query(&n("mail.sub.test."), RecordType::A).await.unwrap();
    assert_eq!(addrs_of(&r), vec!["192.0.2.1"]);
    assert_eq!((root.count(), tld.count(), leaf.count()), (1, 1, 2));

    // DS is asked of the parent's servers; NODATA keeps the SOA.
    let r = it.query(&n("sub.test."), RecordType::DS).await.unwrap();
    assert_eq!(tld.count_of("sub.test.", RecordType::DS), 1);
    assert_eq!(leaf.count_of("sub.test.", RecordType::DS), 0);
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities.len(), 1);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
}

/// A delegation without glue: the NS name is resolved from the root first.
#[tokio::test]
async fn glueless_ns_names_are_resolved() {
    let port = free_port();
    serve(
        "127.0.0.2",
        port,
        root_referring(&[
            ("test.", &[("ns.test.", Some("127.0.0.3"))]),
            ("other.", &[("ns.other.", Some("127.0.0.3"))]),
        ]),
    )
    .await;
    serve(
        "127.0.0.3",
        port,
        Arc::new(|q, t| {
            if under(q, "sub.test.") {
                referral("sub.test.", &[("ns1.other.", None)])
            } else if *q == n("ns1.other.") && t == RecordType::A {
                answer(vec![a("ns1.other.", "127.0.0.4")])
            } else if under(q, "other.") {
                negative("other.", false)
            } else {
                negative("test.", false)
            }
        }),
    )
    .await;
    let leaf = serve(
        "127.0.0.4",
        port,
        Arc::new(|q, _| answer(vec![a(&q.to_ascii(), "192.0.2.7")])),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    let r = it.query(&n("www.sub.test."), RecordType::A).await.unwrap();
    assert_eq!(addrs_of(&r), vec!["192.0.2.7"]);
    assert_eq!(leaf.count(), 1);
    assert_eq!(
        it.cached_delegation(&n("www.sub.test.")).1,
        vec!["127.0.0.4".parse::<IpAddr>().unwrap()]
    );
}

/// a.test. is served by ns.b.test. and b.test. by ns.a.test., no glue: the
/// question fails quickly, with a bounded number of queries.
#[tokio::test]
async fn glueless_loops_end() {
    let port = free_port();
    let root = serve(
        "127.0.0.2",
        port,
        root_referring(&[
            ("a.test.", &[("ns.b.test.", None)]),
            ("b.test.", &[("ns.a.test.", None)]),
        ]),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    let start = Instant::now();
    let r = it.query(&n("www.a.test."), RecordType::A).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(root.count() <= 8, "{} queries", root.count());
    // The failed delegation is remembered: asking again costs nothing.
    let before = root.count();
    let r = it.query(&n("mail.a.test."), RecordType::A).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(root.count(), before);
}

/// A truncated UDP answer is asked again over TCP.
#[tokio::test]
async fn truncated_answers_go_to_tcp() {
    let port = free_port();
    let root = serve(
        "127.0.0.2",
        port,
        Arc::new(|q, _| {
            let mut m = msg();
            m.metadata.authoritative = true;
            m.add_answer(Record::from_rdata(
                q.clone(),
                300,
                RData::TXT(TXT::new(vec!["x".repeat(200); 10])),
            ));
            Reply::Truncated(m)
        }),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    let r = it.query(&n("big."), RecordType::TXT).await.unwrap();
    assert_eq!(r.answers.len(), 1);
    let log = lock(&root.0).clone();
    assert_eq!(
        log.iter().map(|(_, _, tcp)| *tcp).collect::<Vec<_>>(),
        vec![false, true]
    );
}

/// One silent server and one good one: answers come, and the silent one is
/// not asked again while it is marked down.
#[tokio::test]
async fn dead_servers_are_skipped_and_remembered() {
    let port = free_port();
    let cuts: &[Cut] = &[(
        "test.",
        &[
            ("ns1.test.", Some("127.0.0.3")),
            ("ns2.test.", Some("127.0.0.4")),
        ],
    )];
    serve("127.0.0.2", port, root_referring(cuts)).await;
    let dead = serve("127.0.0.3", port, Arc::new(|_, _| Reply::Silent)).await;
    serve(
        "127.0.0.4",
        port,
        Arc::new(|q, _| answer(vec![a(&q.to_ascii(), "192.0.2.9")])),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    for i in 0..6 {
        let r = it
            .query(&n(&format!("h{i}.test.")), RecordType::A)
            .await
            .unwrap();
        assert_eq!(addrs_of(&r), vec!["192.0.2.9"]);
    }
    assert!(
        dead.count() <= 1,
        "{} queries to the dead server",
        dead.count()
    );
}

/// A skip-listed server gets no packet: the zone's other server answers,
/// and a zone whose every server is listed fails without a query.
#[tokio::test]
async fn skip_listed_servers_are_never_asked() {
    let port = free_port();
    let cuts: &[Cut] = &[
        (
            "test.",
            &[
                ("ns1.test.", Some("127.0.0.5")),
                ("ns2.test.", Some("127.0.0.6")),
            ],
        ),
        ("opt.", &[("ns.opt.", Some("127.0.0.5"))]),
    ];
    serve("127.0.0.2", port, root_referring(cuts)).await;
    let answers = |q: &Name, _| answer(vec![a(&q.to_ascii(), "192.0.2.9")]);
    let listed = serve("127.0.0.5", port, Arc::new(answers)).await;
    let other = serve("127.0.0.6", port, Arc::new(answers)).await;
    let it = resolver_skipping(port, &["127.0.0.2"], "127.0.0.5\n");
    for i in 0..4 {
        let r = it
            .query(&n(&format!("h{i}.test.")), RecordType::A)
            .await
            .unwrap();
        assert_eq!(addrs_of(&r), vec!["192.0.2.9"]);
    }
    let r = it.query(&n("h.opt."), RecordType::A).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(listed.count(), 0, "a skip-listed server was asked");
    assert_eq!(other.count(), 4);
}

/// Every server silent: a timeout failure naming the zone; every server
/// refusing or lame: a SERVFAIL with an extended error.
#[tokio::test]
async fn dead_and_refusing_zones() {
    let port = free_port();
    serve(
        "127.0.0.2",
        port,
        root_referring(&[
            ("dead.", &[("ns.dead.", Some("127.0.0.3"))]),
            (
                "bad.",
                &[
                    ("ns1.bad.", Some("127.0.0.4")),
                    ("ns2.bad.", Some("127.0.0.5")),
                ],
            ),
        ]),
    )
    .await;
    serve("127.0.0.3", port, Arc::new(|_, _| Reply::Silent)).await;
    serve(
        "127.0.0.4",
        port,
        Arc::new(|_, _| {
            let mut m = msg();
            m.metadata.response_code = ResponseCode::Refused;
            Reply::Msg(m)
        }),
    )
    .await;
    // Lame: not authoritative, an upward referral.
    serve(
        "127.0.0.5",
        port,
        Arc::new(|_, _| referral(".", &[("ns.root.", None)])),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    let e = it.query(&n("www.dead."), RecordType::A).await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Timeout);
    assert!(e.detail.contains("dead."), "{}", e.detail);
    let r = it.query(&n("www.bad."), RecordType::A).await.unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    let ede = super::super::convert::ede(&r).unwrap();
    assert_eq!(ede.code, 22);
    assert!(
        ede.text.contains("REFUSED") && ede.text.contains("lame"),
        "{}",
        ede.text
    );
}

/// A cold burst of names under one domain sends one referral question to
/// the root and one to the TLD's server; the leaf zone gets one per name.
#[tokio::test]
async fn concurrent_referrals_are_coalesced() {
    let port = free_port();
    let root = serve(
        "127.0.0.2",
        port,
        root_referring(&[("test.", &[("ns.test.", Some("127.0.0.3"))])]),
    )
    .await;
    let tld = serve(
        "127.0.0.3",
        port,
        Arc::new(|q, _| {
            if under(q, "sub.test.") {
                referral("sub.test.", &[("ns.sub.test.", Some("127.0.0.4"))])
            } else {
                negative("test.", true)
            }
        }),
    )
    .await;
    let leaf = serve(
        "127.0.0.4",
        port,
        Arc::new(|q, _| answer(vec![a(&q.to_ascii(), "192.0.2.3")])),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    let all = join_all((0..50).map(|i| {
        let it = Arc::clone(&it);
        async move {
            it.query(&n(&format!("d{i}.sub.test.")), RecordType::A)
                .await
        }
    }))
    .await;
    assert!(
        all.iter()
            .all(|r| r.as_ref().is_ok_and(|r| addrs_of(r) == ["192.0.2.3"]))
    );
    assert_eq!((root.count(), tld.count(), leaf.count()), (1, 1, 50));
}

/// Two servers give different data; the first answer is judged Bogus: the
/// retry avoids its server and returns the other server's answer.
#[tokio::test]
async fn a_bogus_answer_is_asked_again_elsewhere() {
    let port = free_port();
    serve(
        "127.0.0.2",
        port,
        root_referring(&[(
            "test.",
            &[
                ("ns1.test.", Some("127.0.0.3")),
                ("ns2.test.", Some("127.0.0.4")),
            ],
        )]),
    )
    .await;
    serve(
        "127.0.0.3",
        port,
        Arc::new(|q, _| answer(vec![a(&q.to_ascii(), "192.0.2.3")])),
    )
    .await;
    serve(
        "127.0.0.4",
        port,
        Arc::new(|q, _| answer(vec![a(&q.to_ascii(), "192.0.2.4")])),
    )
    .await;
    let it = resolver(port, &["127.0.0.2"]);
    let name = n("www.test.");
    let first = it.query(&name, RecordType::A).await.unwrap();
    let bad = addrs_of(&first);
    assert!(!retrying());
    let judge = |r: &DnsResponse| {
        if addrs_of(r) == bad {
            Validity::Bogus
        } else {
            Validity::Good
        }
    };
    let out = retry_bogus(&it, &name, RecordType::A, first, judge, || async {
        assert!(retrying());
        it.query(&name, RecordType::A).await.unwrap()
    })
    .await;
    assert_ne!(addrs_of(&out), bad);
    // Good data is not asked again.
    let again = retry_bogus(&it, &name, RecordType::A, out.clone(), judge, || async {
        unreachable!()
    })
    .await;
    assert_eq!(addrs_of(&again), addrs_of(&out));
}

/// Through the `DnsHandle`: NXDOMAIN is an answer, SERVFAIL an error.
#[tokio::test]
async fn as_a_dns_handle() {
    use hickory_resolver::net::xfer::FirstAnswer;
    use hickory_resolver::proto::op::DnsRequestOptions;
    let port = free_port();
    serve("127.0.0.2", port, Arc::new(|_, _| negative(".", true))).await;
    let h = IterHandle(resolver(port, &["127.0.0.2"]));
    let r = h
        .lookup(
            Query::query(n("nope."), RecordType::A),
            DnsRequestOptions::default(),
        )
        .first_answer()
        .await
        .unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn root_hints() {
    let text = "; root hints\n\
        .                        3600000      NS    A.ROOT-SERVERS.NET.\n\
        A.ROOT-SERVERS.NET.      3600000      A     198.41.0.4\n\
        A.ROOT-SERVERS.NET.      3600000      AAAA  2001:503:ba3e::2:30\n\
        other.example.           3600         A     192.0.2.1\n";
    assert_eq!(
        parse_root_hints(text).unwrap(),
        vec![
            "198.41.0.4".parse::<IpAddr>().unwrap(),
            "2001:503:ba3e::2:30".parse().unwrap()
        ]
    );
    // Without NS lines every address counts; a bare address is one.
    assert_eq!(
        parse_root_hints("ns.lab. IN A 198.51.100.1\n2001:db8::1\n")
            .unwrap()
            .len(),
        2
    );
    assert!(parse_root_hints("; nothing\n").is_err());
    assert!(parse_root_hints(". NS a.\na. A 2001:db8::1\n").is_err());
    assert!(matches!(
        parse_root_hints("a. MX 10 b.\n").unwrap_err(),
        RootHintsError::UnexpectedType(1, _)
    ));
    assert_eq!(load_roots(None).unwrap().len(), 26);
}

#[test]
fn classification() {
    let zone = n("test.");
    let name = n("www.sub.test.");
    let mut m = msg();
    m.add_authority(ns("sub.test.", "ns.sub.test."));
    assert!(matches!(classify(&m, &zone, &name, &name), Class::Referral(c) if c == n("sub.test.")));
    // A DS question at the cut: the referral to the cut itself is no answer.
    let cut = n("sub.test.");
    assert!(matches!(
        classify(&m, &zone, &cut, &zone),
        Class::Unusable(_)
    ));
    // Upward or sideways NS: lame.
    let mut m = msg();
    m.add_authority(ns("test.", "ns.test."));
    assert!(matches!(
        classify(&m, &zone, &name, &name),
        Class::Unusable(_)
    ));
    // NODATA with the SOA is final even without AA.
    let mut m = msg();
    m.add_authority(soa("test."));
    assert!(matches!(classify(&m, &zone, &name, &name), Class::Final));
    let mut m = msg();
    m.metadata.response_code = ResponseCode::ServFail;
    assert!(matches!(classify(&m, &zone, &name, &name), Class::Unusable(s) if s == "SERVFAIL"));
    assert_eq!(next_label(&n("test."), &name), Some(n("sub.test.")));
    let ips = |v: &[&str]| {
        v.iter()
            .map(|s| s.parse::<IpAddr>().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        interleave(ips(&[
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8::3",
            "192.0.2.1",
            "192.0.2.2"
        ])),
        ips(&[
            "2001:db8::1",
            "192.0.2.1",
            "2001:db8::2",
            "192.0.2.2",
            "2001:db8::3"
        ])
    );
    assert_eq!(next_label(&name, &name), None);
}
