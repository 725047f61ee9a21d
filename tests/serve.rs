//! `dane-audit serve` as a client sees it, without the test bed: pages and
//! API basics, injection attempts, rate limits, the global cap on audits
//! with flat memory, slowloris, and shutdown. Everything stays on
//! 127.0.0.0/8: the "resolver" is a closed port or a black hole there, so
//! audits end as incomplete (quickly, or after their DNS timeouts).

mod serve_support;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serve_support::{BIN, BlackHole, Response, Server};

/// A resolver address where nothing listens: every DNS question fails at once.
const DEAD_RESOLVER: &str = "127.0.0.1:9";

fn quick(extra: &[&str]) -> Server {
    let mut args = vec!["--resolver", DEAD_RESOLVER, "--dns-timeout", "1"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A server whose audits wait for their DNS timeouts (1 s a question):
/// its resolver receives and never answers. Keep the hole while it runs.
fn slow(extra: &[&str]) -> (BlackHole, Server) {
    let hole = BlackHole::new();
    let resolver = hole.addr.to_string();
    let mut args = vec!["--resolver", &resolver, "--dns-timeout", "1"];
    args.extend_from_slice(extra);
    let s = Server::start(&args);
    (hole, s)
}

fn loopback(n: u32) -> IpAddr {
    IpAddr::V4((0x7f00_0000 + n).into())
}

fn certs(name: &str) -> String {
    format!("{}/testdata/certs/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn pages_api_and_operations_endpoints() {
    let s = quick(&[]);
    let home = s.get("/");
    assert_eq!(home.status, 200);
    assert!(
        home.body
            .contains(r#"<form class="check" action="/check" method="get">"#)
    );
    let csp = home.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(home.header("x-content-type-options"), Some("nosniff"));
    assert!(!home.body.contains("<script>"), "no inline script");
    assert!(!home.body.contains("style="), "no inline style");

    // The form's target redirects to the stable URL of the result, in
    // canonical form (A-labels, lower case).
    let r = s.get("/check?domain=B%C3%BCcher.Example.");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/check/xn--bcher-kva.example"));
    let r = s.get("/check/EXAMPLE.org");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("/check/example.org"));

    assert_eq!(s.get("/healthz").body, "ok\n");
    let js = s.get("/assets/app.js");
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(s.get("/assets/nope.js").status, 404);

    let api = s.get("/api/v1/openapi.json").json();
    assert!(api["paths"]["/api/v1/check/{domain}"].is_object());
    let nf = s.get("/api/v1/nothing-here");
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["error"]["reason"], "not-found");
    assert_eq!(s.get("/nothing-here").status, 404);

    let ex = s.get("/explain/tlsa-wrong-selector");
    assert_eq!(ex.status, 200);
    assert!(ex.body.contains("RFC 6698"), "{}", ex.body);
    assert_eq!(s.get("/explain/no-such-code").status, 404);

    // An audit through the API: check's JSON document, and its exit code.
    let r = s.get("/api/v1/check/example.org");
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["run"]["command"], "check");
    assert_eq!(doc["domains"][0]["domain"], "example.org");
    assert_eq!(doc["domains"][0]["verdict"], "incomplete");
    assert_eq!(r.header("dane-audit-exit"), Some("3"));
    // The page of the same domain now comes from the cache.
    let page = s.get("/check/example.org");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"id="verdict-h""#), "{}", page.body);
    let metrics = s.get("/metrics");
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        metrics
            .body
            .contains(r#"dane_audit_serve_cache_total{result="hit"} 1"#),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains(r#"dane_audit_serve_audits_total{verdict="incomplete"} 1"#)
    );
    assert!(
        metrics
            .body
            .contains(r#"dane_audit_serve_requests_total{route="api-check",status="200"} 1"#)
    );
}

/// Payloads for the domain field: each must be refused (400) and never
/// come back unescaped, nor reach a response header.
const INJECTIONS: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "example.org<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "example.org\r\nSet-Cookie: pwned=1",
    "example.org\nLocation: https://evil.example/",
    "example.org%0d%0aX-Injected: 1",
    "' OR '1'='1",
    "../../etc/passwd",
];

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn assert_refused_and_escaped(r: &Response, payload: &str) {
    assert_eq!(r.status, 400, "{payload:?}: {}", r.body);
    for (k, v) in &r.headers {
        assert!(
            !["set-cookie", "x-injected", "location"].contains(&k.as_str()),
            "{payload:?}: header {k}: {v}"
        );
    }
    for dangerous in ["<script>", "<img", "<svg"] {
        assert!(
            !r.body.contains(dangerous),
            "{payload:?} reflected unescaped: {}",
            r.body
        );
    }
    assert!(
        !r.body.contains("panicked") && !r.body.contains("src/"),
        "{}",
        r.body
    );
}

#[test]
fn injection_in_the_domain_field_is_refused_or_escaped() {
    let s = quick(&[]);
    for p in INJECTIONS {
        let e = encode(p);
        let form = s.get(&format!("/check?domain={e}"));
        assert_refused_and_escaped(&form, p);
        if p.contains('<') {
            assert!(form.body.contains("&lt;"), "escaped echo: {}", form.body);
        }
        // In the path: percent-encoded as a browser would send it.
        let path: String = p
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert_refused_and_escaped(&s.get(&format!("/check/{path}")), p);
        let api = s.get(&format!("/api/v1/check/{path}"));
        assert_eq!(api.status, 400, "{p:?}: {}", api.body);
        assert_eq!(api.json()["error"]["reason"], "usage");
        assert_eq!(api.json()["error"]["exit"], 2);
        assert!(api.header("set-cookie").is_none() && api.header("x-injected").is_none());
    }
    // Raw CR/LF or spaces in the request line are not HTTP: refused by the
    // parser, with nothing reflected.
    let raw = s.raw(b"GET /check/a.example\r\nSet-Cookie: x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.header("set-cookie").is_none(), "{raw:?}");
    let raw = s.raw(b"GET /check/<script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(!raw.body.contains("<script>"), "{raw:?}");
    // Bytes that are not UTF-8.
    let r = s.get("/check/%ff%fe.example");
    assert!(r.status == 400, "{r:?}");
    assert!(!r.body.contains("panicked"));
    // An over-long name: refused with a short message, not echoed whole.
    let long = "a".repeat(5000) + ".example";
    let r = s.get(&format!("/check?domain={long}"));
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 5000, "{} bytes", r.body.len());
    // Headers beyond the size limit: refused before any handler runs.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(40_000)
    );
    let r = s.raw(big.as_bytes());
    assert!(r.status == 431 || r.status == 0, "{}", r.status);
}

#[test]
fn tlsa_api_answers_as_the_cli() {
    let s = quick(&[]);
    let chain = std::fs::read(certs("leaf-ec.chain.pem")).unwrap();
    let req = |query: &str, body: &[u8]| {
        let mut r = format!(
            "POST /api/v1/tlsa{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        s.raw(&r)
    };
    let r = req("?recommend&name=mx1.example.net.", &chain);
    assert_eq!(r.status, 200, "{}", r.body);
    let cli = Command::new(BIN)
        .args([
            "tlsa",
            &certs("leaf-ec.chain.pem"),
            "--recommend",
            "--name",
            "mx1.example.net.",
        ])
        .output()
        .unwrap();
    let want: Vec<String> = String::from_utf8(cli.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let got: Vec<String> = r.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["zone"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert_eq!(want.len(), 2);

    let der = std::fs::read(certs("leaf-ec.der")).unwrap();
    let r = req("?selector=0&mtype=2", &der);
    let cli = Command::new(BIN)
        .args([
            "tlsa",
            &certs("leaf-ec.der"),
            "--selector",
            "0",
            "--mtype",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(
        r.json()["records"][0]["record"].as_str().unwrap(),
        String::from_utf8(cli.stdout).unwrap().trim()
    );

    let bad = req("", b"not a certificate");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["reason"], "usage");
    let leaf_only = std::fs::read(certs("leaf-ec.pem")).unwrap();
    let r = req("?usage=2", &leaf_only);
    assert_eq!(r.status, 400, "a CA record needs the issuer: {}", r.body);
    let huge = vec![b'A'; 100 * 1024];
    assert_eq!(req("", &huge).status, 413);
}

#[test]
fn one_client_is_rate_limited() {
    let s = quick(&["--rate", "10/min", "--max-client-connections", "256"]);
    let barrier = Arc::new(Barrier::new(200));
    let addr = s.addr;
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                b.wait();
                let req = format!(
                    "GET /api/v1/check/d{i}.example HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                c.write_all(req.as_bytes()).unwrap();
                let mut buf = Vec::new();
                c.read_to_end(&mut buf).unwrap();
                Response::parse(&buf)
            })
        })
        .collect();
    let rs: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let limited: Vec<&Response> = rs.iter().filter(|r| r.status == 429).collect();
    let done: Vec<&Response> = rs.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        limited.len(),
        190,
        "{:?}",
        rs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(done.len(), 10);
    for r in &limited {
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(r.json()["error"]["reason"], "rate-limited");
    }
    // A finished result is free: no rate spent on it.
    let first = done[0].json()["domains"][0]["domain"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..5 {
        assert_eq!(s.get(&format!("/api/v1/check/{first}")).status, 200);
    }
    // The page says the same, with Retry-After, and is a page.
    let page = s.get("/check/another.example");
    assert_eq!(page.status, 429);
    assert!(page.header("retry-after").is_some());
    assert!(
        page.body.contains("too many audits from this address"),
        "{}",
        page.body
    );
    // Another client has its own budget.
    assert_eq!(
        s.get_from(Some(loopback(9)), "/api/v1/check/other.example")
            .status,
        200
    );
    assert_eq!(s.metric("dane_audit_serve_refused_total"), 191.0);
}

/// Requests from `clients` different addresses at once, each for its own
/// new domain; returns each answer's status and error reason, and the most
/// audits seen in flight and queued while they ran.
fn crowd(s: &Server, round: u32, clients: u32) -> (Vec<(u16, String)>, f64, f64) {
    let barrier = Arc::new(Barrier::new(clients as usize));
    let addr = s.addr;
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut c = serve_support::connect_from(loopback(2 + i), addr);
                b.wait();
                let req = format!(
                    "GET /api/v1/check/r{round}-c{i}.example HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                c.write_all(req.as_bytes()).unwrap();
                let mut buf = Vec::new();
                c.read_to_end(&mut buf).unwrap();
                let r = Response::parse(&buf);
                let reason = r.json()["error"]["reason"].as_str().unwrap_or("").to_string();
                (r.status, reason)
            })
        })
        .collect();
    let (mut in_flight, mut queued) = (0f64, 0f64);
    let mut answers = Vec::new();
    for t in threads {
        while !t.is_finished() {
            in_flight = in_flight.max(s.metric("dane_audit_serve_audits_in_flight"));
            queued = queued.max(s.metric("dane_audit_serve_audits_queued"));
            std::thread::sleep(Duration::from_millis(20));
        }
        answers.push(t.join().unwrap());
    }
    (answers, in_flight, queued)
}

fn wait_idle(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while s.metric("dane_audit_serve_audits_in_flight") + s.metric("dane_audit_serve_audits_queued")
        > 0.0
    {
        assert!(Instant::now() < deadline, "audits never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn many_clients_are_bounded_by_the_global_cap_with_memory_flat() {
    // Every audit waits for DNS timeouts: a few seconds each.
    let (_hole, s) = slow(&[
        "--max-audits",
        "4",
        "--queue",
        "8",
        "--rate",
        "100/min",
        "--request-timeout",
        "1s",
        "--cache-entries",
        "32",
    ]);
    let mut rss = Vec::new();
    for round in 0..4 {
        let (answers, in_flight, queued) = crowd(&s, round, 200);
        let count = |status: u16, reason: &str| {
            answers
                .iter()
                .filter(|(c, r)| *c == status && r == reason)
                .count()
        };
        // 12 were admitted (4 running, 8 queued) and answered "still
        // running" after the 1 s request timeout; the others were turned
        // away as busy, at once.
        assert_eq!(count(503, "still-running"), 12, "{answers:?}");
        assert_eq!(count(503, "busy"), 188, "{answers:?}");
        assert!(in_flight <= 4.0, "in flight {in_flight}");
        assert!(queued <= 8.0, "queued {queued}");
        assert!(in_flight >= 1.0, "the cap was never reached: {in_flight}");
        let refused = s.metric("dane_audit_serve_refused_total");
        assert_eq!(refused, f64::from((round + 1) * 188), "busy refusals");
        wait_idle(&s);
        rss.push(s.rss_kib());
    }
    eprintln!("serve RSS after each round of 200 clients (KiB): {rss:?}");
    let growth = rss[3].saturating_sub(rss[1]);
    assert!(growth < 8 * 1024, "memory grew by {growth} KiB: {rss:?}");
    // What was admitted finished and was kept within --cache-entries.
    assert!(s.metric("dane_audit_serve_cache_entries") <= 32.0);
    assert_eq!(
        s.metric(r#"dane_audit_serve_audits_total{verdict="incomplete"}"#),
        48.0
    );
}

#[test]
fn slowloris_does_not_hold_a_worker() {
    let s = quick(&["--header-timeout", "2s", "--max-client-connections", "8"]);
    let slow = loopback(77);
    // Eight connections that trickle a request head, a byte at a time.
    let mut trickles: Vec<std::net::TcpStream> =
        (0..8).map(|_| s.connect_from(Some(slow))).collect();
    for c in &mut trickles {
        c.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    }
    // An idle connection that sends nothing at all.
    let mut idle = s.connect_from(Some(loopback(79)));
    // A ninth from the same address is closed at once.
    let mut ninth = s.connect_from(Some(slow));
    ninth
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = ninth.read(&mut buf);
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the ninth connection was served: {n:?}"
    );
    // Meanwhile other clients are served at once.
    let start = Instant::now();
    for i in 0..20 {
        let r = s.get_from(Some(loopback(78)), "/healthz");
        assert_eq!(r.status, 200, "request {i}");
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Keep trickling: the header timeout closes them anyway.
    let began = Instant::now();
    let mut open = trickles.len();
    while open > 0 && began.elapsed() < Duration::from_secs(6) {
        open = 0;
        for c in &mut trickles {
            if c.write_all(b"a").is_ok() {
                c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                match c.read(&mut buf) {
                    Ok(0) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => open += 1,
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        open,
        0,
        "slow connections still open after {:?}",
        began.elapsed()
    );
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    // The connection that never spoke was closed by the same timeout.
    idle.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let got = idle.read(&mut buf);
    assert!(matches!(got, Ok(0)), "idle connection: {got:?}");
    // The address's slots are free again.
    assert_eq!(s.get_from(Some(slow), "/healthz").status, 200);
    // Many slow clients from many addresses do not stop the server either.
    let crowd: Vec<std::net::TcpStream> = (0..300)
        .map(|i| {
            let mut c = s.connect_from(Some(loopback(1000 + i)));
            c.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            c
        })
        .collect();
    let t = Instant::now();
    assert_eq!(s.get_from(Some(loopback(78)), "/").status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(crowd);
}

#[test]
fn sigterm_lets_open_requests_finish_then_exits_zero() {
    let (_hole, s) = slow(&["--request-timeout", "2s", "--grace", "10s"]);
    let addr = s.addr;
    let pending = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(
            b"GET /api/v1/check/slow.example HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        Response::parse(&buf)
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let r = pending.join().unwrap();
    assert_eq!(r.status, 503, "the open request got its answer: {r:?}");
    assert_eq!(r.json()["error"]["reason"], "still-running");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening"
    );
}

// --- `--db`: the watch's history -------------------------------------------

mod history {
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    use dane_audit::core::verdict::DomainVerdict;
    use dane_audit::watch::db::Store;

    use super::serve_support::{BIN, HOSTILE, HOSTILE_IMG, T0, record, watch_db};
    use super::{encode, quick};

    fn cli_history(db: &Path, extra: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(["history", "--db"])
            .arg(db)
            .args(["--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn fingerprint(p: &Path) -> (Vec<u8>, std::time::SystemTime) {
        (
            std::fs::read(p).unwrap(),
            std::fs::metadata(p).unwrap().modified().unwrap(),
        )
    }

    fn assert_no_raw_hostile(body: &str) {
        for bad in ["<script>alert", "<img", "onerror=alert(1)>"] {
            assert!(!body.contains(bad), "unescaped {bad:?} in:\n{body}");
        }
    }

    #[test]
    fn history_pages_and_api_read_the_watch_database_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = watch_db(dir.path(), "a.example", 230);
        let before = fingerprint(&db);
        let db_arg = db.to_str().unwrap();
        let s = quick(&["--db", db_arg]);

        let list = s.get("/history");
        assert_eq!(list.status, 200, "{}", list.body);
        assert!(list.body.contains(r#"href="/history/a.example""#));
        assert!(list.body.contains(r#"href="/history/b.example""#));

        let p = s.get("/history/a.example");
        assert_eq!(p.status, 200, "{}", p.body);
        let csp = p.header("content-security-policy").unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!p.body.contains("style="), "no inline style");
        assert!(!p.body.contains("<script>"), "no inline script");
        assert_no_raw_hostile(&p.body);
        assert!(p.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            p.body.contains(
                "4 audits from 2026-05-28T20:26:40Z to 2026-05-28T23:26:40Z; last verdict pass"
            ),
            "{}",
            p.body
        );
        assert!(p.body.contains("verdict pass -&gt; fail"), "{}", p.body);
        assert!(p.body.contains(r#"<time datetime="2026-05-28T22:26:40Z">"#));
        assert!(p.body.contains(r#"href="/api/v1/history/a.example""#));
        // Newest first.
        let fail_back = p.body.find("verdict fail -&gt; pass").unwrap();
        let to_fail = p.body.find("verdict pass -&gt; fail").unwrap();
        assert!(fail_back < to_fail);

        // Canonical form, validation, domains not watched, no such page.
        let r = s.get("/history/A.Example.");
        assert_eq!(r.status, 308);
        assert_eq!(r.header("location"), Some("/history/a.example"));
        let nw = s.get("/history/unwatched.example");
        assert_eq!(nw.status, 404, "{}", nw.body);
        assert!(nw.body.contains("is not watched"), "{}", nw.body);
        for bad in [HOSTILE, HOSTILE_IMG, "example.org\r\nSet-Cookie: x=1"] {
            let path: String = encode(bad).replace('+', "%20");
            let r = s.get(&format!("/history/{path}"));
            assert_eq!(r.status, 400, "{bad:?}: {}", r.body);
            assert_no_raw_hostile(&r.body);
            assert!(r.header("set-cookie").is_none());
            let api = s.get(&format!("/api/v1/history/{path}"));
            assert_eq!(api.status, 400, "{bad:?}: {}", api.body);
            assert_eq!(api.json()["error"]["reason"], "usage");
        }

        // A long history: the newest changes only, and a note.
        let b = s.get("/history/b.example");
        assert_eq!(b.status, 200);
        let shown = b.body.matches(r#"<li class="change">"#).count();
        assert_eq!(shown, 200, "the newest 200 changes");
        assert!(
            b.body.contains("30 older change(s) not shown"),
            "{}",
            b.body
        );

        // The API: byte for byte what `history --format json` prints.
        for (q, extra) in [
            ("", vec![]),
            (
                "?since=2026-05-28T22:00:00Z",
                vec!["--since", "2026-05-28T22:00:00Z"],
            ),
        ] {
            let api = s.get(&format!("/api/v1/history/a.example{q}"));
            assert_eq!(api.status, 200, "{}", api.body);
            assert_eq!(api.header("content-type"), Some("application/json"));
            let mut args = vec!["a.example"];
            args.extend(extra);
            assert_eq!(api.body, cli_history(&db, &args), "{q}");
        }
        let b_api = s.get("/api/v1/history/b.example");
        assert_eq!(b_api.body, cli_history(&db, &["b.example"]));
        let nw = s.get("/api/v1/history/unwatched.example");
        assert_eq!(nw.status, 404);
        assert_eq!(nw.json()["error"]["reason"], "not-watched");
        // As the CLI refuses it (exit 2).
        let cli = Command::new(BIN)
            .args(["history", "unwatched.example", "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert_eq!(cli.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&cli.stderr).contains("never audited here"));
        let bad = s.get("/api/v1/history/a.example?since=yesterday-ish");
        assert_eq!(bad.status, 400);
        assert_eq!(bad.json()["error"]["reason"], "usage");

        // The result page of a watched domain links to its history (the
        // audit ends as incomplete: the resolver is a closed port).
        assert_eq!(s.get("/api/v1/check/a.example").status, 200);
        let page = s.get("/check/a.example");
        assert!(
            page.body.contains(r#"href="/history/a.example""#),
            "{}",
            page.body
        );
        assert_eq!(s.get("/api/v1/check/unwatched.example").status, 200);
        let page = s.get("/check/unwatched.example");
        assert!(!page.body.contains("/history/"), "{}", page.body);

        // Read-only: the database file is as it was, byte for byte.
        assert!(fingerprint(&db) == before, "serve changed the database");

        // A watch writing beside the server: not kept out, and seen at once.
        {
            let mut w = Store::open(&db).expect("the watch opens its database");
            record(
                &mut w,
                "a.example",
                T0 + 14400,
                DomainVerdict::Partial,
                false,
            );
            let p = s.get("/history/a.example");
            assert!(p.body.contains("verdict pass -&gt; partial"), "{}", p.body);
        }

        // A database locked by another process: 503 after a short wait, said plainly.
        let locker = rusqlite::Connection::open(&db).unwrap();
        locker
            .execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let started = std::time::Instant::now();
        let p = s.get("/history/a.example");
        assert_eq!(p.status, 503, "{}", p.body);
        assert!(p.body.contains("busy"), "{}", p.body);
        assert!(p.header("retry-after").is_some());
        let api = s.get("/api/v1/history/a.example");
        assert_eq!(api.status, 503, "{}", api.body);
        assert_eq!(api.json()["error"]["reason"], "unavailable");
        assert!(started.elapsed() < Duration::from_secs(10));
        locker.execute_batch("ROLLBACK;").unwrap();
        drop(locker);
        assert_eq!(s.get("/history/a.example").status, 200);
        assert_eq!(s.get("/healthz").status, 200, "no panic, still serving");
    }

    #[test]
    fn without_db_there_is_no_history() {
        let s = quick(&[]);
        assert_eq!(s.get("/history").status, 404);
        assert_eq!(s.get("/history/a.example").status, 404);
        let api = s.get("/api/v1/history/a.example");
        assert_eq!(api.status, 404);
        assert_eq!(api.json()["error"]["reason"], "not-found");
    }

    #[test]
    fn a_missing_database_is_refused_at_start() {
        let out = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                "/nonexistent/watch.db",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no such database"), "{err}");
    }
}
