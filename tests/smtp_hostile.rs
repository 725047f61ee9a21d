//! The STARTTLS prober against small, purpose-built servers: hostile (tarpits,
//! endless replies, huge lines, non-SMTP banners, STARTTLS injection, broken
//! handshakes) and good ones (rustls with the test PKI, including an X.509 v1
//! certificate over TLS 1.2 and 1.3).
//!
//! The servers run on their own runtime threads, so the probe's heap use can be
//! measured alone on the test thread (a per-thread counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dane_audit::core::evidence::{KeyType, SmtpFailureKind as K, SmtpPhase as P, SmtpProbe};
use dane_audit::core::finding::Code;
use dane_audit::core::smtp::{SmtpResult, classify};
use dane_audit::smtp::{KeyTypes, SmtpConfig, SmtpProber, Timeouts};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use rustls::{ServerConfig, SupportedProtocolVersion};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::sleep;

// ---- per-thread heap accounting --------------------------------------------------------

struct Counting;

thread_local! {
    static HEAP: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = HEAP.try_with(|h| {
        let now = h.get() + delta;
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            account(l.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            account(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        account(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            account(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` on this thread and returns its output and the peak extra heap it used.
async fn peak_heap<T>(f: impl Future<Output = T>) -> (T, isize) {
    let base = HEAP.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f.await;
    (out, PEAK.with(Cell::get) - base)
}

// ---- servers -----------------------------------------------------------------------------

fn server_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime")
    })
}

/// Listens on 127.0.0.1 (ephemeral port) and runs `handler` for every connection.
fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    server_runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        while let Ok((s, _)) = listener.accept().await {
            let h = handler.clone();
            tokio::spawn(async move {
                // Bound every session so nothing lingers after the test.
                let _ = tokio::time::timeout(Duration::from_secs(20), h(s)).await;
            });
        }
    });
    addr
}

/// Commands a server saw, shared with the test.
type Log = Arc<Mutex<Vec<String>>>;

async fn read_cmd<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Option<String> {
    let mut line = Vec::new();
    let n = r.take(1024).read_until(b'\n', &mut line).await.ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&line).trim().to_string())
}

async fn drain(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0_u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    all
}

/// A plain SMTP dialogue: sends `greeting`, answers EHLO with `ehlo` and STARTTLS with
/// `starttls`; returns the reader after STARTTLS was answered with a 220 (or `None`
/// when the client quit or closed). Every command is logged.
async fn dialogue(
    s: TcpStream,
    log: &Log,
    greeting: &str,
    ehlo: &str,
    starttls: &str,
) -> Option<BufReader<TcpStream>> {
    let mut r = BufReader::new(s);
    r.write_all(greeting.as_bytes()).await.ok()?;
    loop {
        let cmd = read_cmd(&mut r).await?;
        log.lock().unwrap().push(cmd.clone());
        let verb = cmd
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => ehlo,
            "STARTTLS" => starttls,
            "QUIT" => "221 2.0.0 Bye\r\n",
            _ => "502 5.5.2 no\r\n",
        };
        r.write_all(answer.as_bytes()).await.ok()?;
        match verb.as_str() {
            "QUIT" => return None,
            "STARTTLS" if starttls.starts_with("220") => return Some(r),
            _ => {}
        }
    }
}

const GREETING: &str = "220 mx.test ESMTP\r\n";
const EHLO_TLS: &str = "250-mx.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n";
const READY: &str = "220 2.0.0 Ready to start TLS\r\n";

/// SMTP up to the STARTTLS 220, then `then` on the raw stream.
fn starttls_server<F, Fut>(log: Log, then: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    starttls_server_with(log, READY, then)
}

/// As [`starttls_server`], with `ready` as the whole answer to STARTTLS (one write).
fn starttls_server_with<F, Fut>(log: Log, ready: &'static str, then: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let then = Arc::new(then);
    serve(move |s| {
        let log = log.clone();
        let then = then.clone();
        async move {
            if let Some(r) = dialogue(s, &log, GREETING, EHLO_TLS, ready).await {
                assert!(r.buffer().is_empty(), "the client pipelined after STARTTLS");
                then(r.into_inner()).await;
            }
        }
    })
}

// ---- TLS server side ---------------------------------------------------------------------

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn certs_dir() -> String {
    format!("{}/testdata/certs", env!("CARGO_MANIFEST_DIR"))
}

fn pem_certs(name: &str) -> Vec<CertificateDer<'static>> {
    let path = format!("{}/{name}", certs_dir());
    CertificateDer::pem_file_iter(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .map(|c| c.unwrap())
        .collect()
}

/// `chain` (a PEM file) with the signer of `key`, which may deliberately not
/// match. No key check, so X.509 v1 certificates can be served.
fn certified(chain: &str, key: &str) -> Arc<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    let key = PrivateKeyDer::from_pem_file(format!("{}/{key}", certs_dir())).unwrap();
    let signer = provider.key_provider.load_private_key(key).unwrap();
    Arc::new(CertifiedKey::new(pem_certs(chain), signer))
}

fn server_with(
    resolver: Arc<dyn ResolvesServerCert>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver),
    )
}

/// A rustls server config serving `chain` signed with `key`.
fn server_tls(
    chain: &str,
    key: &str,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    server_with(Arc::new(Fixed(certified(chain, key))), versions)
}

/// Two certificates, as Postfix with `smtpd_tls_eccert_file`: the first one
/// whose key can sign with a scheme the client offered.
#[derive(Debug)]
struct ByScheme(Vec<Arc<CertifiedKey>>);

impl ResolvesServerCert for ByScheme {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered = hello.signature_schemes();
        self.0
            .iter()
            .find(|ck| ck.key.choose_scheme(offered).is_some())
            .cloned()
    }
}

/// What a TLS server saw.
#[derive(Default, Debug)]
struct TlsLog {
    sni: Option<String>,
    inside: Vec<String>,
    error: Option<String>,
}

/// A complete STARTTLS server: the plaintext commands go to `log`, the SNI and the
/// commands inside TLS to the returned `TlsLog`.
fn tls_server(cfg: Arc<ServerConfig>, log: Log) -> (SocketAddr, Arc<Mutex<TlsLog>>) {
    tls_server_with(cfg, log, READY)
}

fn tls_server_with(
    cfg: Arc<ServerConfig>,
    log: Log,
    ready: &'static str,
) -> (SocketAddr, Arc<Mutex<TlsLog>>) {
    let tls_log = Arc::new(Mutex::new(TlsLog::default()));
    let tl = tls_log.clone();
    let addr = starttls_server_with(log, ready, move |s| {
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg.clone());
        let tl = tl.clone();
        async move {
            match acceptor.accept(s).await {
                Ok(tls) => {
                    tl.lock().unwrap().sni = tls.get_ref().1.server_name().map(String::from);
                    let mut r = BufReader::new(tls);
                    while let Some(cmd) = read_cmd(&mut r).await {
                        tl.lock().unwrap().inside.push(cmd.clone());
                        if cmd.eq_ignore_ascii_case("QUIT") {
                            let _ = r.write_all(b"221 2.0.0 Bye\r\n").await;
                            let _ = r.shutdown().await;
                            break;
                        }
                        let _ = r.write_all(b"502 5.5.2 no\r\n").await;
                    }
                }
                Err(e) => tl.lock().unwrap().error = Some(e.to_string()),
            }
        }
    });
    (addr, tls_log)
}

// ---- the client side ---------------------------------------------------------------------

const SNI: &str = "mx1.example.net";

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        greeting: Duration::from_secs(1),
        command: Duration::from_secs(1),
        handshake: Duration::from_secs(1),
        quit: Duration::from_millis(300),
    }
}

/// One dialogue per probe: the default offer only (the per-key-type tests
/// below use [`all_key_types`]).
fn config(addr: SocketAddr) -> SmtpConfig {
    SmtpConfig {
        port: addr.port(),
        ehlo_name: "prober.test".into(),
        timeouts: timeouts(),
        key_types: KeyTypes::Negotiated,
        ..SmtpConfig::default()
    }
}

fn all_key_types(addr: SocketAddr) -> SmtpConfig {
    SmtpConfig {
        key_types: KeyTypes::default(),
        ..config(addr)
    }
}

/// One probe; checks the global guarantees (time bound, evidence shape) and
/// returns the probe, its duration and its peak heap.
async fn probe_with(cfg: SmtpConfig, addr: SocketAddr) -> (SmtpProbe, Duration, isize) {
    let bound = cfg.timeouts.total();
    let prober = SmtpProber::new(cfg).unwrap();
    let start = Instant::now();
    let (p, heap) = peak_heap(prober.probe(addr.ip(), SNI)).await;
    let took = start.elapsed();
    eprintln!(
        "probe of {addr}: {took:?}, peak heap {heap} bytes, failure {:?}",
        p.failure
    );
    assert!(
        took <= bound + Duration::from_millis(500),
        "took {took:?}, bound {bound:?}"
    );
    assert_eq!(p.address, addr.ip());
    assert_eq!(p.port, addr.port());
    if p.failure.is_none() {
        assert!(p.tls.is_some() && !p.chain.is_empty(), "{p:?}");
    }
    (p, took, heap)
}

async fn probe(addr: SocketAddr) -> (SmtpProbe, Duration) {
    let (p, took, _) = probe_with(config(addr), addr).await;
    (p, took)
}

#[track_caller]
fn assert_failure(p: &SmtpProbe, phase: P, kind: K) {
    let f = p
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("no failure: {p:?}"));
    assert_eq!((f.phase, f.kind), (phase, kind), "{f:?}");
    assert!(p.tls.is_none(), "{p:?}");
}

fn code(p: &SmtpProbe) -> Option<Code> {
    match classify(p) {
        SmtpResult::Untested { code, .. } | SmtpResult::Failed { code, .. } => Some(code),
        _ => None,
    }
}

fn untested(p: &SmtpProbe) -> bool {
    matches!(classify(p), SmtpResult::Untested { .. })
}

fn log() -> Log {
    Log::default()
}

// ---- hostile peers ---------------------------------------------------------------------------

#[tokio::test]
async fn tarpit_greeting_times_out() {
    let addr = serve(|mut s| async move {
        for b in GREETING.bytes() {
            if s.write_all(&[b]).await.is_err() {
                return;
            }
            sleep(Duration::from_millis(300)).await;
        }
        drain(&mut s).await;
    });
    let (p, took) = probe(addr).await;
    assert_failure(&p, P::Greeting, K::Timeout);
    let f = p.failure.as_ref().unwrap();
    assert!(f.detail.contains("bytes received"), "{f:?}");
    assert!(took >= timeouts().greeting, "{took:?}");
    assert!(
        took < timeouts().greeting + Duration::from_millis(700),
        "{took:?}"
    );
    assert!(untested(&p));
    assert_eq!(code(&p), Some(Code::SmtpUnreachable));
}

#[tokio::test]
async fn silent_server_times_out() {
    let addr = serve(|mut s| async move {
        drain(&mut s).await;
    });
    let (p, took) = probe(addr).await;
    assert_failure(&p, P::Greeting, K::Timeout);
    assert!(
        took < timeouts().greeting + Duration::from_millis(700),
        "{took:?}"
    );
    assert!(untested(&p));
}

#[tokio::test]
async fn close_before_greeting() {
    let addr = serve(|s| async move { drop(s) });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Greeting, K::Closed);
    assert!(untested(&p));
}

#[tokio::test]
async fn endless_continuation_is_cut_off_in_bounded_memory() {
    let log = log();
    let l = log.clone();
    let addr = serve(move |s| {
        let l = l.clone();
        async move {
            let mut r = BufReader::new(s);
            let _ = r.write_all(GREETING.as_bytes()).await;
            if let Some(cmd) = read_cmd(&mut r).await {
                l.lock().unwrap().push(cmd);
                let _ = r.write_all(b"250-mx.test\r\n").await;
                let mut i = 0_u64;
                loop {
                    i += 1;
                    let line = format!("250-X-FILLER-{i} never ends\r\n");
                    if r.write_all(line.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    // Default caps: the line count ends it.
    let (p, took, heap) = probe_with(config(addr), addr).await;
    assert_failure(&p, P::Ehlo, K::Protocol);
    assert!(
        p.failure
            .as_ref()
            .unwrap()
            .detail
            .contains("more than 100 lines")
    );
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert!(heap < 256 * 1024, "peak heap {heap} bytes");
    // Without a line cap, the byte cap ends it.
    let cfg = SmtpConfig {
        max_lines: usize::MAX,
        ..config(addr)
    };
    let (p, _, heap) = probe_with(cfg, addr).await;
    assert_failure(&p, P::Ehlo, K::Protocol);
    assert!(
        p.failure
            .as_ref()
            .unwrap()
            .detail
            .contains("longer than 65536 bytes")
    );
    assert!(heap < 512 * 1024, "peak heap {heap} bytes");
    assert_eq!(code(&p), Some(Code::SmtpProtocolError));
}

#[tokio::test]
async fn slow_endless_continuation_times_out() {
    let addr = serve(|s| async move {
        let mut r = BufReader::new(s);
        let _ = r.write_all(GREETING.as_bytes()).await;
        if read_cmd(&mut r).await.is_some() {
            loop {
                if r.write_all(b"250-SLOW\r\n").await.is_err() {
                    return;
                }
                sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let (p, took) = probe(addr).await;
    assert_failure(&p, P::Ehlo, K::Timeout);
    assert!(
        took < timeouts().command + Duration::from_millis(700),
        "{took:?}"
    );
}

#[tokio::test]
async fn one_megabyte_line_is_refused_in_bounded_memory() {
    for crlf in [false, true] {
        let addr = serve(move |mut s| async move {
            let mut line = b"220 ".to_vec();
            line.resize(1 << 20, b'x');
            if crlf {
                line.extend_from_slice(b"\r\n");
            }
            let _ = s.write_all(&line).await;
            drain(&mut s).await;
        });
        let (p, took, heap) = probe_with(config(addr), addr).await;
        assert_failure(&p, P::Greeting, K::Protocol);
        assert!(
            p.failure
                .as_ref()
                .unwrap()
                .detail
                .contains("longer than 4096")
        );
        assert!(took < Duration::from_millis(800), "{took:?}");
        assert!(heap < 128 * 1024, "peak heap {heap} bytes");
        assert!(!untested(&p));
    }
}

#[tokio::test]
async fn non_smtp_banners_are_protocol_errors() {
    for banner in [
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        "\x15\x03\x03\x00\x02\x02\x28",
    ] {
        let addr = serve(move |mut s| async move {
            let _ = s.write_all(banner.as_bytes()).await;
            drain(&mut s).await;
        });
        let (p, _) = probe(addr).await;
        assert_failure(&p, P::Greeting, K::Protocol);
        let detail = &p.failure.as_ref().unwrap().detail;
        assert!(detail.starts_with("not an SMTP reply"), "{detail}");
        assert_eq!(code(&p), Some(Code::SmtpProtocolError));
    }
}

#[tokio::test]
async fn greeting_421_is_rate_limited() {
    let addr = serve(|mut s| async move {
        let _ = s
            .write_all(b"421 4.3.2 mx.test Too many connections, try again later\r\n")
            .await;
        let _ = s.shutdown().await;
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Greeting, K::Reply);
    assert_eq!(p.greeting.as_ref().unwrap().code, 421);
    assert!(p.ehlo.is_none());
    assert!(untested(&p));
    assert_eq!(code(&p), Some(Code::SmtpRateLimited));
}

#[tokio::test]
async fn greeting_554_is_recorded_and_quit_politely() {
    let log = log();
    let l = log.clone();
    let addr = serve(move |s| {
        let l = l.clone();
        async move {
            dialogue(s, &l, "554 5.7.1 no service\r\n", EHLO_TLS, READY).await;
        }
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Greeting, K::Reply);
    assert_eq!(p.greeting.as_ref().unwrap().code, 554);
    assert_eq!(*log.lock().unwrap(), vec!["QUIT"]);
}

#[tokio::test]
async fn ehlo_450_is_rate_limited() {
    let log = log();
    let l = log.clone();
    let addr = serve(move |s| {
        let l = l.clone();
        async move {
            dialogue(s, &l, GREETING, "450 4.7.1 slow down\r\n", READY).await;
        }
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Ehlo, K::Reply);
    assert_eq!(p.ehlo.as_ref().unwrap().code, 450);
    assert!(untested(&p));
    assert_eq!(code(&p), Some(Code::SmtpRateLimited));
    assert_eq!(*log.lock().unwrap(), vec!["EHLO prober.test", "QUIT"]);
}

#[tokio::test]
async fn ehlo_without_starttls() {
    let log = log();
    let l = log.clone();
    let addr = serve(move |s| {
        let l = l.clone();
        async move {
            let ehlo = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
            dialogue(s, &l, GREETING, ehlo, READY).await;
        }
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Ehlo, K::NoStarttls);
    assert_eq!(p.ehlo_keywords(), vec!["PIPELINING", "8BITMIME"]);
    assert_eq!(code(&p), Some(Code::StarttlsNotOffered));
    assert!(!untested(&p));
    assert_eq!(*log.lock().unwrap(), vec!["EHLO prober.test", "QUIT"]);
}

#[tokio::test]
async fn starttls_454_is_refused() {
    let log = log();
    let l = log.clone();
    let addr = serve(move |s| {
        let l = l.clone();
        async move {
            let refuse = "454 4.7.0 TLS not available due to local problem\r\n";
            dialogue(s, &l, GREETING, EHLO_TLS, refuse).await;
        }
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Starttls, K::Reply);
    assert_eq!(p.starttls.as_ref().unwrap().code, 454);
    assert_eq!(code(&p), Some(Code::StarttlsRefused));
    assert_eq!(
        *log.lock().unwrap(),
        vec!["EHLO prober.test", "STARTTLS", "QUIT"]
    );
}

/// The 220 to STARTTLS plus injected plaintext in the same write.
const INJECTED: &str =
    "220 2.0.0 Ready to start TLS\r\n250-INJECTED-PLAINTEXT\r\n250 X-INJECTION\r\n";

/// The injected bytes are recorded, never fed to TLS: the handshake that follows
/// succeeds (it would fail on "250-INJECTED..." otherwise), and the probe still
/// carries the protocol error.
#[tokio::test]
async fn garbage_after_starttls_220_is_discarded_and_reported() {
    let log = log();
    let cfg = server_tls("leaf-rsa.chain.pem", "leaf-rsa.key", &[&TLS13, &TLS12]);
    let (addr, tls_log) = tls_server_with(cfg, log.clone(), INJECTED);
    let (p, _) = probe(addr).await;
    let f = p.failure.as_ref().expect("injection must be a failure");
    assert_eq!((f.phase, f.kind), (P::Starttls, K::Protocol), "{f:?}");
    assert!(
        f.detail.contains("injection") && f.detail.contains("INJECTED"),
        "{f:?}"
    );
    // The core judges the chain and reports `starttls-injection` separately.
    assert_eq!(code(&p), None);
    assert!(dane_audit::core::smtp::injection(&p).is_some());
    assert!(
        p.tls.is_some(),
        "the handshake after the injection completes"
    );
    assert_eq!(p.chain.len(), 2);
    assert_eq!(*log.lock().unwrap(), vec!["EHLO prober.test", "STARTTLS"]);
    for _ in 0..50 {
        if !tls_log.lock().unwrap().inside.is_empty() {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    let t = tls_log.lock().unwrap();
    assert_eq!(t.error, None);
    assert_eq!(t.inside, vec!["QUIT"]);
}

#[tokio::test]
async fn garbage_after_starttls_220_then_nothing() {
    let addr = starttls_server_with(log(), INJECTED, |mut s| async move {
        drain(&mut s).await;
    });
    let (p, took) = probe(addr).await;
    assert_failure(&p, P::Starttls, K::Protocol);
    let detail = &p.failure.as_ref().unwrap().detail;
    assert!(
        detail.contains("injection") && detail.contains("did not complete"),
        "{detail}"
    );
    assert!(
        took < timeouts().handshake + Duration::from_millis(700),
        "{took:?}"
    );
}

#[tokio::test]
async fn close_mid_handshake() {
    let addr = starttls_server(log(), |mut s| async move {
        let mut hello = [0_u8; 512];
        let _ = s.read(&mut hello).await;
        // Dropping the stream closes it before any ServerHello.
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Handshake, K::Closed);
    assert_eq!(code(&p), Some(Code::TlsHandshakeFailed));
    assert!(!untested(&p));
}

#[tokio::test]
async fn handshake_alert_is_reported() {
    let addr = starttls_server(log(), |mut s| async move {
        let mut hello = [0_u8; 4096];
        let _ = s.read(&mut hello).await;
        // A fatal handshake_failure alert, as a server with no common cipher sends.
        let _ = s
            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
            .await;
        drain(&mut s).await;
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Handshake, K::Tls);
    let detail = &p.failure.as_ref().unwrap().detail;
    assert!(detail.contains("HandshakeFailure"), "{detail}");
}

#[tokio::test]
async fn plaintext_instead_of_tls_is_a_tls_failure() {
    let addr = starttls_server(log(), |mut s| async move {
        let mut hello = [0_u8; 4096];
        let _ = s.read(&mut hello).await;
        let _ = s.write_all(b"500 5.5.1 what?\r\n").await;
        drain(&mut s).await;
    });
    let (p, _) = probe(addr).await;
    assert_failure(&p, P::Handshake, K::Tls);
}

#[tokio::test]
async fn silent_after_starttls_times_out() {
    let addr = starttls_server(log(), |mut s| async move {
        drain(&mut s).await;
    });
    let (p, took) = probe(addr).await;
    assert_failure(&p, P::Handshake, K::Timeout);
    assert!(
        took < timeouts().handshake + Duration::from_millis(700),
        "{took:?}"
    );
}

#[tokio::test]
async fn connection_refused() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (p, took) = probe(addr).await;
    assert_failure(&p, P::Connect, K::Refused);
    assert!(took < Duration::from_millis(500));
    assert!(untested(&p));
    assert_eq!(code(&p), Some(Code::SmtpUnreachable));
}

// ---- good servers ------------------------------------------------------------------------

async fn good(chain: &str, key: &str, v: &'static SupportedProtocolVersion, want: &str) {
    let log = log();
    let (addr, tls_log) = tls_server(server_tls(chain, key, &[v]), log.clone());
    let (p, _) = probe(addr).await;
    assert!(p.failure.is_none(), "{chain} over {want}: {:?}", p.failure);
    let tls = p.tls.as_ref().unwrap();
    assert_eq!(tls.version, want);
    assert_eq!(tls.group.as_deref(), Some("X25519"));
    assert!(tls.cipher.starts_with("TLS_"), "{}", tls.cipher);
    assert_eq!(tls.sni, SNI);
    let served: Vec<Vec<u8>> = pem_certs(chain).iter().map(|c| c.to_vec()).collect();
    let got: Vec<Vec<u8>> = p.chain.iter().map(|d| d.0.clone()).collect();
    assert_eq!(
        got, served,
        "the chain must be captured as served, leaf first"
    );
    assert_eq!(classify(&p), SmtpResult::Tls);
    assert_eq!(p.greeting.as_ref().unwrap().code, 220);
    assert_eq!(p.starttls.as_ref().unwrap().code, 220);
    // Never MAIL, RCPT or DATA; QUIT inside TLS.
    assert_eq!(*log.lock().unwrap(), vec!["EHLO prober.test", "STARTTLS"]);
    for _ in 0..50 {
        if !tls_log.lock().unwrap().inside.is_empty() {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    let t = tls_log.lock().unwrap();
    assert_eq!(t.sni.as_deref(), Some(SNI));
    assert_eq!(t.inside, vec!["QUIT"]);
}

#[tokio::test]
async fn good_rsa_chain_tls13_and_tls12() {
    good("leaf-rsa.chain.pem", "leaf-rsa.key", &TLS13, "TLSv1.3").await;
    good("leaf-rsa.chain.pem", "leaf-rsa.key", &TLS12, "TLSv1.2").await;
}

#[tokio::test]
async fn good_ecdsa_chain_tls13_and_tls12() {
    good("leaf-ec.chain.pem", "leaf-ec.key", &TLS13, "TLSv1.3").await;
    good("leaf-ec.chain.pem", "leaf-ec.key", &TLS12, "TLSv1.2").await;
}

#[tokio::test]
async fn x509_v1_leaf_completes_tls13_and_tls12() {
    good("selfsigned-v1.pem", "selfsigned-v1.key", &TLS13, "TLSv1.3").await;
    good("selfsigned-v1.pem", "selfsigned-v1.key", &TLS12, "TLSv1.2").await;
}

/// The handshake signature is still checked: a server that does not hold the key
/// of the certificate it presents must fail, through the raw-SPKI fallback too.
#[tokio::test]
async fn wrong_key_fails_the_handshake_signature() {
    for (chain, key) in [
        ("leaf-rsa.chain.pem", "leaf-other.key"),
        ("selfsigned-v1.pem", "leaf-rsa.key"),
    ] {
        for v in [&TLS13, &TLS12] {
            let (addr, _) = tls_server(server_tls(chain, key, &[v]), log());
            let (p, _) = probe(addr).await;
            let f = p
                .failure
                .as_ref()
                .unwrap_or_else(|| panic!("{chain} {v:?} passed"));
            assert_eq!(
                (f.phase, f.kind),
                (P::Handshake, K::Tls),
                "{chain} {v:?}: {f:?}"
            );
            assert!(
                f.detail.contains("BadSignature"),
                "{chain} {v:?}: {}",
                f.detail
            );
            // The chain was seen before the signature failed, and is kept as evidence.
            assert_eq!(p.chain.len(), pem_certs(chain).len());
            assert_eq!(code(&p), Some(Code::TlsHandshakeFailed));
        }
    }
}

#[tokio::test]
async fn concurrent_probes_share_one_prober() {
    let (addr, _) = tls_server(
        server_tls("leaf-rsa.chain.pem", "leaf-rsa.key", &[&TLS13, &TLS12]),
        log(),
    );
    let prober = SmtpProber::new(config(addr)).unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let p = prober.clone();
            tokio::spawn(async move { p.probe(addr.ip(), SNI).await })
        })
        .collect();
    for t in tasks {
        let p = t.await.unwrap();
        assert!(p.failure.is_none(), "{:?}", p.failure);
        assert_eq!(p.chain.len(), 2);
    }
}

// ---- per key type, and legacy servers -----------------------------------------------------

/// A server with an ECDSA and an RSA certificate: the default offer gets the
/// ECDSA one, the RSA-only offer the RSA one, the Ed25519-only offer nothing.
#[tokio::test]
async fn dual_certificates_are_each_asked_for() {
    let log = log();
    let both = ByScheme(vec![
        certified("leaf-ec.chain.pem", "leaf-ec.key"),
        certified("leaf-rsa.chain.pem", "leaf-rsa.key"),
    ]);
    let (addr, _) = tls_server(server_with(Arc::new(both), &[&TLS13, &TLS12]), log.clone());
    let (p, _, _) = probe_with(all_key_types(addr), addr).await;
    assert!(p.failure.is_none(), "{:?}", p.failure);
    let ec: Vec<Vec<u8>> = pem_certs("leaf-ec.chain.pem")
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let rsa: Vec<Vec<u8>> = pem_certs("leaf-rsa.chain.pem")
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let der =
        |c: &[dane_audit::core::evidence::Der]| c.iter().map(|d| d.0.clone()).collect::<Vec<_>>();
    assert_eq!(der(&p.chain), ec, "the default offer prefers ECDSA");
    // ECDSA was presented already: RSA or Ed25519 is asked for (RSA comes),
    // then Ed25519 alone (nothing comes).
    let asked: Vec<Vec<KeyType>> = p.key_types.iter().map(|k| k.asked.clone()).collect();
    assert_eq!(
        asked,
        vec![vec![KeyType::Rsa, KeyType::Ed25519], vec![KeyType::Ed25519]]
    );
    let r = &p.key_types[0];
    assert!(r.offered && r.failure.is_none() && r.tls.is_some(), "{r:?}");
    assert_eq!(r.key_type, Some(KeyType::Rsa));
    assert_eq!(der(&r.chain), rsa);
    let e = &p.key_types[1];
    assert!(
        !e.offered && e.chain.is_empty() && e.failure.is_some(),
        "{e:?}"
    );
    let chains = dane_audit::core::smtp::presented(&p);
    assert_eq!(chains.len(), 2, "two distinct chains");
    assert_eq!(
        log.lock().unwrap().len(),
        6,
        "three dialogues: {:?}",
        log.lock().unwrap()
    );
}

/// A server with one certificate: the other key types are not offered, which
/// is not a failure of the probe.
#[tokio::test]
async fn one_certificate_other_key_types_not_offered() {
    let (addr, _) = tls_server(
        server_tls("leaf-rsa.chain.pem", "leaf-rsa.key", &[&TLS13, &TLS12]),
        log(),
    );
    let (p, _, _) = probe_with(all_key_types(addr), addr).await;
    assert!(p.failure.is_none(), "{:?}", p.failure);
    // One more connection: ECDSA or Ed25519 is asked for, and none comes.
    assert_eq!(p.key_types.len(), 1, "{:?}", p.key_types);
    assert_eq!(p.key_types[0].asked, vec![KeyType::Ecdsa, KeyType::Ed25519]);
    assert!(!p.key_types[0].offered && p.key_types[0].chain.is_empty());
    assert_eq!(classify(&p), SmtpResult::Tls);
    assert_eq!(dane_audit::core::smtp::presented(&p).len(), 1);
}

fn tls_record(kind: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind];
    r.extend(version.to_be_bytes());
    r.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn u24(n: usize) -> [u8; 3] {
    let b = u32::try_from(n).unwrap().to_be_bytes();
    [b[1], b[2], b[3]]
}

/// What an OpenSSL server restricted to TLS 1.0 answers: a ServerHello for
/// TLS 1.0 with a CBC suite and its certificates in clear, when the hello
/// offers TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA; a protocol_version alert otherwise.
fn legacy_answer(client_hello: &[u8], chain: &[CertificateDer<'static>]) -> Vec<u8> {
    use tls_parser::{TlsMessage, TlsMessageHandshake, parse_tls_plaintext};
    let offers_cbc = match parse_tls_plaintext(client_hello) {
        Ok((_, rec)) => rec.msg.iter().any(|m| {
            matches!(m, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch))
                if ch.ciphers.iter().any(|c| c.0 == 0xc014))
        }),
        Err(_) => false,
    };
    if !offers_cbc {
        return tls_record(21, 0x0301, &[2, 70]);
    }
    let mut sh = vec![3, 1];
    sh.extend([9u8; 32]);
    sh.push(0);
    sh.extend([0xc0, 0x14, 0]);
    let mut hs = vec![2];
    hs.extend(u24(sh.len()));
    hs.extend(sh);
    let list: Vec<u8> = chain
        .iter()
        .flat_map(|c| [u24(c.len()).to_vec(), c.to_vec()].concat())
        .collect();
    hs.push(11);
    hs.extend(u24(list.len() + 3));
    hs.extend(u24(list.len()));
    hs.extend(list);
    tls_record(22, 0x0301, &hs)
}

/// A TLS 1.0-only server: rustls gets an alert, the legacy hellos get the
/// RSA chain (and nothing for the other key types); the core calls it
/// `tls-legacy-only`, never a completed handshake.
#[tokio::test]
async fn legacy_only_server_gives_its_chain_in_clear() {
    let log = log();
    let chain = pem_certs("leaf-rsa.chain.pem");
    let served = chain.clone();
    let addr = starttls_server(log.clone(), move |mut s| {
        let chain = served.clone();
        async move {
            let mut hello = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut hello))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let _ = s.write_all(&legacy_answer(&hello[..n], &chain)).await;
            drain(&mut s).await;
        }
    });
    let (p, _, _) = probe_with(all_key_types(addr), addr).await;
    assert_failure(&p, P::Handshake, K::Tls);
    assert!(
        p.chain.is_empty(),
        "the modern handshake got no certificate"
    );
    // Every key type is asked for (the RSA chain comes), then ECDSA or
    // Ed25519 (the server refuses).
    let asked: Vec<Vec<KeyType>> = p.key_types.iter().map(|k| k.asked.clone()).collect();
    assert_eq!(
        asked,
        vec![
            KeyType::ALL.to_vec(),
            vec![KeyType::Ecdsa, KeyType::Ed25519]
        ]
    );
    let rsa = &p.key_types[0];
    assert!(rsa.offered && rsa.tls.is_none(), "{rsa:?}");
    let l = rsa.legacy.as_ref().unwrap();
    assert_eq!(
        (l.version.as_str(), l.cipher.as_str()),
        ("TLSv1.0", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA")
    );
    let want: Vec<Vec<u8>> = chain.iter().map(|c| c.to_vec()).collect();
    assert_eq!(
        rsa.chain.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
        want
    );
    assert!(!p.key_types[1].offered);
    assert_eq!(code(&p), Some(Code::TlsLegacyOnly));
    assert_eq!(dane_audit::core::smtp::presented(&p).len(), 1);
    // With --key-types negotiated: one legacy hello, offering every key type.
    let (p, _, _) = probe_with(config(addr), addr).await;
    assert_eq!(p.key_types.len(), 1);
    assert!(p.key_types[0].asked.is_empty());
    assert!(p.key_types[0].offered);
    assert_eq!(code(&p), Some(Code::TlsLegacyOnly));
}
