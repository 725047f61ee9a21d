//! `dane-audit watch` against the real test bed: rounds with changes made
//! between them (a Postfix certificate swapped, a TLSA RRset changed on the
//! primary by RFC 2136 UPDATE) raise exactly the expected events once, and
//! a webhook receiver inside the bed's namespace gets each of them; the
//! daemon serves metrics that promtool accepts, reads its list again on
//! SIGHUP and stops cleanly on SIGTERM; a `kill -9` at any moment never
//! damages the database and the next run resumes.
//!
//! These tests change `rollover.example` (its MX hosts' certificate and
//! TLSA records) and put them back when they end, so they take a lock.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dane_audit::core::tlsa::TlsaRdata;
use dane_audit::dns::tsig_key::TsigKey;
use dane_audit::dns::update::PrimaryServer;
use dane_audit::watch::db::Store;
use serde_json::Value;
use sha2::Digest;
use support::{TIMEOUTS, Testbed};

/// Held by the tests that change rollover.example.
static ROLLOVER: Mutex<()> = Mutex::new(());

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_dane-audit")
}

fn net(bed: &Testbed) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--resolver".into(),
        bed.resolver().into(),
        "--trust-anchor".into(),
        bed.trust_anchor().into(),
    ];
    v.extend(TIMEOUTS.iter().map(|s| s.to_string()));
    v
}

/// One `watch --once` round inside the bed.
fn round(bed: &Testbed, db: &Path, domains: &[&str], extra: &[&str]) -> Output {
    let mut c = bed.command(bin());
    c.args(["watch", "--once", "--db"]).arg(db);
    for d in domains {
        c.args(["--domain", d]);
    }
    c.args(net(bed)).args(extra);
    c.output().expect("run dane-audit watch")
}

/// (code, state, domain, host or subject) of every event in `history --format json`.
fn history_events(db: &Path, domain: &str) -> Vec<Value> {
    let out = Command::new(bin())
        .args(["history", domain, "--format", "json", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["events"].as_array().unwrap().clone()
}

fn describe(e: &Value) -> String {
    let who = e["host"]
        .as_str()
        .or(e["finding"]["code"].as_str())
        .unwrap_or("");
    let at = e["finding"]["host"].as_str().unwrap_or("");
    format!(
        "{} {} {} {who}{}",
        e["domain"].as_str().unwrap(),
        e["code"].as_str().unwrap(),
        e["state"].as_str().unwrap(),
        if at.is_empty() {
            String::new()
        } else {
            format!(" @{at}")
        }
    )
}

/// A minimal HTTP receiver in the bed's namespace: keeps each POST body.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(bed: &'static Testbed) -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (b, s) = (Arc::clone(&bodies), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            bed.enter_thread();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((conn, _)) => {
                        if let Some(body) = serve_one(conn) {
                            b.lock().unwrap().push(body);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Receiver {
            addr: rx.recv().unwrap(),
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/dane-events", self.addr)
    }

    fn events(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(conn: TcpStream) -> Option<String> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut len = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if first {
            assert!(line.starts_with("POST /dane-events "), "{line}");
            first = false;
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let mut w = conn;
    w.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        .ok()?;
    String::from_utf8(body).ok()
}

fn run_async<F>(bed: &Testbed, f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    // A thread of its own, so the namespace switch does not stay with the test's thread.
    std::thread::scope(|s| {
        s.spawn(|| {
            bed.enter_thread();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .join()
        .unwrap()
    })
}

/// Puts rollover.example back as the bed built it (mx and mx2 serving their
/// RSA chains, mx's RRset `3 1 1` + `2 1 1` of that chain, transfers to the
/// secondary flowing) when made and again when dropped, even when a test
/// fails: other tests (rollover_testbed) may have left it otherwise.
struct Restore {
    bed: &'static Testbed,
    mx_tlsa: Vec<TlsaRdata>,
}

impl Restore {
    fn new(bed: &'static Testbed) -> Restore {
        let xfr = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed"))
            .args(["xfr", "resume"])
            .output()
            .unwrap();
        assert!(xfr.status.success(), "xfr resume: {xfr:?}");
        let chain = std::fs::read(Restore::pki(bed, "mx.rollover.example.rsa.pem")).unwrap();
        let items = dane_audit::core::cert::read_pem_or_der(&chain).unwrap();
        let r = Restore {
            bed,
            mx_tlsa: dane_audit::core::association::recommended(&items),
        };
        r.put_back();
        r
    }

    fn put_back(&self) {
        Restore::serve(self.bed, "mx", "mx.rollover.example.rsa.pem");
        Restore::serve(self.bed, "mx2", "mx2.rollover.example.rsa.pem");
        Restore::set_mx_tlsa(self.bed, &self.mx_tlsa);
    }

    fn primary(bed: &Testbed) -> (PrimaryServer, TsigKey) {
        let addr: SocketAddr = format!("{}:53", bed.var("UPDATE_PRIMARY")).parse().unwrap();
        let key = TsigKey::load(Path::new(bed.var("UPDATE_KEY")), None).unwrap();
        (PrimaryServer::new(addr, Duration::from_secs(3)), key)
    }

    /// Replaces the TLSA RRset of mx.rollover.example with `records`.
    fn set_mx_tlsa(bed: &Testbed, records: &[TlsaRdata]) {
        let (p, k) = Restore::primary(bed);
        run_async(bed, async {
            let now = p.read_tlsa("mx.rollover.example").await.unwrap().records;
            p.add_tlsa(&k, None, "mx.rollover.example", records, 10)
                .await
                .unwrap();
            let stale: Vec<TlsaRdata> = now.into_iter().filter(|r| !records.contains(r)).collect();
            if !stale.is_empty() {
                p.remove_tlsa(&k, None, "mx.rollover.example", &stale)
                    .await
                    .unwrap();
            }
        });
    }

    fn pki(bed: &Testbed, name: &str) -> PathBuf {
        bed.dir.join("pki").join(name)
    }

    /// Serves `file` as `host`.rollover.example's chain and reloads Postfix.
    fn serve(bed: &Testbed, host: &str, file: &str) {
        std::fs::copy(
            Restore::pki(bed, file),
            Restore::pki(bed, &format!("{host}.rollover.example.live.pem")),
        )
        .unwrap();
        let etc = bed.dir.join("postfix/etc");
        let out = bed
            .command("postfix")
            .arg("-c")
            .arg(&etc)
            .arg("reload")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        self.put_back();
    }
}

/// Polls until `check` holds, for up to `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    check()
}

fn dig_tlsa(bed: &Testbed, server: &str, owner: &str) -> BTreeSet<String> {
    let out = bed
        .command("dig")
        .args([
            "+short",
            "+norec",
            "+time=2",
            "+tries=1",
            &format!("@{server}"),
            owner,
            "TLSA",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.parse::<TlsaRdata>().ok())
        .map(|r| r.to_string())
        .collect()
}

const DOMAINS: [&str; 5] = [
    "rollover.example",
    "good-311-211.example",
    "good-311.example",
    "dns-rrsig-expiring.example",
    "dns-ns-out-of-sync.example",
];

/// Two rounds with a change between them, and a third without: each
/// change raises its events once, conditions are raised once, nothing
/// repeats, and the webhook receives exactly what the history holds.
#[test]
fn rounds_with_changes_raise_each_event_once_and_the_webhook_gets_them() {
    let Some(bed) = Testbed::get() else { return };
    let _lock = ROLLOVER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    let hook = Receiver::start(bed);
    let url = hook.url();
    let extra = ["--webhook", url.as_str(), "--cert-warn-days", "1000"];
    let restore = Restore::new(bed);
    assert_eq!(restore.mx_tlsa.len(), 2, "the bed's 3 1 1 + 2 1 1");
    // The resolver may hold an RRset another test left (TTL 10).
    std::thread::sleep(Duration::from_secs(11));

    let out = round(bed, &db, &DOMAINS, &extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = |db: &Path| -> Vec<String> {
        let mut v: Vec<String> = DOMAINS
            .iter()
            .flat_map(|d| history_events(db, d))
            .map(|e| describe(&e))
            .collect();
        v.sort();
        v
    };
    let mut want1 = vec![
        "dns-ns-out-of-sync.example domain-added changed ",
        "dns-ns-out-of-sync.example ns-out-of-sync raised ",
        "dns-rrsig-expiring.example domain-added changed ",
        "dns-rrsig-expiring.example rrsig-expiring raised ",
        "good-311-211.example domain-added changed ",
        "good-311.example cert-expiring-uncovered raised mx.good-311.example",
        "good-311.example domain-added changed ",
        "rollover.example domain-added changed ",
    ];
    want1.sort();
    assert_eq!(all(&db), want1, "round 1");

    // The changes: mx2 serves its next (ECDSA) key, which its 2 1 1 still
    // covers; mx's RRset becomes one record for a key nobody serves.
    Restore::serve(bed, "mx2", "mx2.rollover.example.next.pem");
    let digest = sha2::Sha256::digest(format!("watch test {}", std::process::id()));
    let bogus = TlsaRdata {
        usage: 3,
        selector: 1,
        mtype: 1,
        data: digest.to_vec(),
    };
    Restore::set_mx_tlsa(bed, std::slice::from_ref(&bogus));
    let want: BTreeSet<String> = [bogus.to_string()].into();
    let owner = "_25._tcp.mx.rollover.example";
    for server in bed
        .var("UPDATE_SECONDARY")
        .split(',')
        .chain([bed.var("UPDATE_PRIMARY")])
    {
        assert!(
            eventually(Duration::from_secs(30), || dig_tlsa(bed, server, owner)
                == want),
            "{server} does not serve the new RRset"
        );
    }
    // The resolver's copy of the old RRset (TTL 10) has expired.
    std::thread::sleep(Duration::from_secs(11));

    let out = round(bed, &db, &DOMAINS, &extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events2: Vec<String> = history_events(&db, "rollover.example")
        .iter()
        .skip(1)
        .map(describe)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let want2: Vec<String> = [
        "rollover.example finding raised tlsa-no-match @mx.rollover.example",
        "rollover.example finding raised tlsa-stale @mx2.rollover.example",
        "rollover.example key-changed changed mx2.rollover.example",
        "rollover.example tlsa-changed changed mx.rollover.example",
        "rollover.example verdict-changed changed ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(events2, want2, "round 2");
    let no_match = history_events(&db, "rollover.example")
        .iter()
        .filter(|e| e["finding"]["code"] == "tlsa-no-match")
        .count();
    assert_eq!(no_match, 2, "one per address of mx (IPv4 and IPv6)");
    let mut after2 = all(&db);
    after2.retain(|e| !e.starts_with("rollover.example"));
    let mut before2 = want1.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    before2.retain(|e| !e.starts_with("rollover.example"));
    assert_eq!(after2, before2, "no other domain changed");

    // Nothing changes: nothing is raised again.
    let count = all(&db).len();
    let out = round(bed, &db, &DOMAINS, &extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        all(&db).len(),
        count,
        "round 3 raised events: {:?}",
        all(&db)
    );

    // The webhook got every event of the history, once each.
    let mut got: Vec<String> = hook.events().iter().map(describe).collect();
    got.sort();
    let mut stored: Vec<String> = DOMAINS
        .iter()
        .flat_map(|d| history_events(&db, d))
        .map(|e| describe(&e))
        .collect();
    stored.sort();
    assert_eq!(got, stored);
    for e in hook.events() {
        assert_eq!(e["schema_version"], 1);
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // `evaluate` works on stored evidence: the round-2 audit again.
    let reader = Store::open_read(&db).unwrap();
    let audits = reader
        .audits("rollover.example", dane_audit::core::evidence::Timestamp(0))
        .unwrap();
    assert_eq!(audits.len(), 3);
    let evidence = reader.document(audits[1].id, true).unwrap().unwrap();
    let mut ev = Command::new(bin())
        .args(["evaluate", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    ev.stdin
        .take()
        .unwrap()
        .write_all(evidence.as_bytes())
        .unwrap();
    let out = ev.wait_with_output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["domains"][0]["verdict"], "fail");
    drop(restore);
}

fn http_get(bed: &'static Testbed, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    std::thread::spawn(move || {
        bed.enter_thread();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    })
    .join()
    .ok()?
}

fn free_port(bed: &'static Testbed) -> SocketAddr {
    std::thread::spawn(move || {
        bed.enter_thread();
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    })
    .join()
    .unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0);
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The daemon: /metrics passes promtool, /healthz answers, SIGHUP changes
/// the watched set (and the series with it), SIGTERM mid-round ends it
/// cleanly with every started audit stored.
#[test]
fn daemon_serves_metrics_rereads_its_list_and_stops_cleanly() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    let list = dir.path().join("domains.txt");
    // smtp-silent's server never answers: each of its audits waits out the
    // SMTP timeout, so an audit is nearly always in flight.
    std::fs::write(
        &list,
        "good-311-211.example\ndns-tlsa-absent.example\nsmtp-silent.example\n",
    )
    .unwrap();
    let addr = free_port(bed);
    let mut child = bed
        .command(bin())
        .args([
            "watch",
            "--interval",
            "4s",
            "--listen",
            &addr.to_string(),
            "--db",
        ])
        .arg(&db)
        .arg("--domains")
        .arg(&list)
        .args(net(bed))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = || {
        http_get(bed, addr, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(60), || {
            let m = metrics();
            m.contains(r#"dane_audit_domain_verdict{domain="good-311-211.example",verdict="pass"} 1"#)
                && m.contains(r#"dane_audit_domain_verdict{domain="dns-tlsa-absent.example",verdict="not-dane"} 1"#)
        }),
        "no audits in /metrics: {}",
        metrics()
    );
    let text = metrics();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    assert!(
        promtool.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    for series in [
        "dane_audit_host_cert_expiry_seconds{domain=\"good-311-211.example\",host=\"mx.good-311-211.example\"}",
        "dane_audit_domain_rrsig_expiry_seconds{domain=\"good-311-211.example\"}",
        "dane_audit_domain_last_success_age_seconds{domain=\"good-311-211.example\"}",
        "dane_audit_domain_audit_duration_seconds{domain=\"dns-tlsa-absent.example\"}",
        "dane_audit_domain_findings{domain=\"dns-tlsa-absent.example\",code=\"tlsa-absent\",severity=\"info\"}",
        "dane_audit_host_verdict{domain=\"dns-tlsa-absent.example\",host=\"mx.dns-tlsa-absent.example\",verdict=\"not-dane\"} 1",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    assert_eq!(http_get(bed, addr, "/healthz").map(|(s, _)| s), Some(200));

    // SIGHUP: one domain out, one in.
    std::fs::write(
        &list,
        "good-311-211.example\ngood-311.example\nsmtp-silent.example\n",
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(60), || {
            let m = metrics();
            m.contains(r#"domain="good-311.example",verdict="pass"} 1"#)
                && !m.contains("dns-tlsa-absent")
        }),
        "SIGHUP did not change the watched set: {}",
        metrics()
    );

    // SIGTERM while audits run: they finish and are stored, then exit 0.
    let reader = Store::open_read(&db).unwrap();
    let in_flight = || {
        metrics()
            .lines()
            .find_map(|l| l.strip_prefix("dane_audit_audits_in_flight "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        eventually(Duration::from_secs(30), || in_flight() >= 1.0),
        "never caught an audit in flight"
    );
    let before = reader.size().unwrap().0;
    signal(&child, libc::SIGTERM);
    let status =
        wait_exit(&mut child, Duration::from_secs(60)).expect("watch did not stop on SIGTERM");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("finishing those in flight"), "{log}");
    let after = reader.size().unwrap().0;
    assert!(
        after > before,
        "the audit in flight was stored ({before} -> {after})"
    );
    assert!(reader.integrity().unwrap().is_empty());
    assert!(!log.contains("ERROR"), "{log}");
}

/// `kill -9` at arbitrary moments of a busy watch never leaves a damaged
/// database, and the next `--once` completes every domain.
#[test]
fn kill_9_never_damages_the_database_and_the_next_run_resumes() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    let list = dir.path().join("domains.txt");
    let domains: Vec<String> = support::scenarios()
        .into_iter()
        .map(|s| s.domain)
        .filter(|d| d.starts_with("good-") || d.starts_with("rec-"))
        .collect();
    std::fs::write(&list, domains.join("\n")).unwrap();
    let mut stored = 0;
    for (i, delay_ms) in [700u64, 1900, 1300, 2600].into_iter().enumerate() {
        let mut child = bed
            .command(bin())
            .args(["watch", "--once", "--concurrency", "8", "--db"])
            .arg(&db)
            .arg("--domains")
            .arg(&list)
            .args(net(bed))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        // The lock dies with the process; the database opens and is whole.
        let s = Store::open(&db).unwrap_or_else(|e| panic!("kill {i}: {e}"));
        assert!(s.integrity().unwrap().is_empty(), "kill {i}");
        let (n, _) = s.size().unwrap();
        assert!(n >= stored, "kill {i}: audits went missing");
        stored = n;
    }
    let out = bed
        .command(bin())
        .args(["watch", "--once", "--concurrency", "8", "--db"])
        .arg(&db)
        .arg("--domains")
        .arg(&list)
        .args(net(bed))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Store::open_read(&db).unwrap();
    for d in &domains {
        assert!(
            !r.audits(d, dane_audit::core::evidence::Timestamp(0))
                .unwrap()
                .is_empty(),
            "{d} never audited"
        );
        // However often it was interrupted, a domain was added once.
        let added = r
            .events(d, dane_audit::core::evidence::Timestamp(0))
            .unwrap()
            .iter()
            .filter(|e| e.event.kind.code() == "domain-added")
            .count();
        assert_eq!(added, 1, "{d}");
    }
}

/// A second watch on the same database, a write lock held by another
/// process, a read-only and a full file system: one clear line and a
/// distinct exit code each, and the database stays whole.
#[test]
fn locked_read_only_and_full_databases_give_one_clear_line() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    let held = Store::open(&db).unwrap();
    let out = round(bed, &db, &["good-311.example"], &[]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another process"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    drop(held);

    // Inside a private mount namespace: a small tmpfs, then read-only.
    let script = format!(
        r#"set -u
d=$(mktemp -d)
mount -t tmpfs -o size=160k tmpfs "$d" || exit 90
{bin} watch --once --db "$d/w.db" --domain good-311.example {net} 2>"$d/err1" || {{ echo "first run failed: $(cat $d/err1)"; exit 91; }}
mount -o remount,ro "$d" || exit 92
{bin} watch --once --db "$d/w.db" --domain good-311.example {net} 2>{tmp}/ro.err; echo "ro=$?"
mount -o remount,rw "$d"
{bin} watch --once --db "$d/w.db" --concurrency 4 {many} {net} 2>{tmp}/full.err; echo "full=$?"
{bin} history --db "$d/w.db" good-311.example >/dev/null; echo "history=$?"
umount "$d"
"#,
        bin = bin(),
        tmp = dir.path().display(),
        net = net(bed).join(" "),
        many = support::scenarios()
            .iter()
            .filter(|s| s.domain.starts_with("good-"))
            .map(|s| format!("--domain {}", s.domain))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &support::netns(),
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ro=6"),
        "read-only: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ro = std::fs::read_to_string(dir.path().join("ro.err")).unwrap_or_default();
    assert!(ro.contains("cannot write the database"), "{ro}");
    assert!(text.contains("full=6"), "full: {text}");
    let full = std::fs::read_to_string(dir.path().join("full.err")).unwrap_or_default();
    assert!(full.contains("the disk is full"), "{full}");
    assert!(
        text.contains("history=0"),
        "the database is readable after the full disk: {text}"
    );
}
