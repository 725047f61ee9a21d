//! The STARTTLS prober against the test bed's real listeners (`scripts/testbed`):
//! every Postfix listener (IPv4 and IPv6), the no-STARTTLS and TLS-failing ones, a
//! closed port, a black-holed address and the misbehaving `smtp_peer` listeners.
//!
//! The listener list comes from the bed's own description (`$DIR/frag/*.smtp`:
//! `kind  address  host  chain-file|mode  options`), so new scenarios are covered
//! without editing this file. Served chains are compared with the bed's chain files
//! and with what `openssl s_client -starttls smtp` sees.
//!
//! `probe_cost_on_postfix` measures wall time and CPU per probe; run it in release
//! mode for meaningful numbers:
//! `cargo test --release --test smtp_testbed probe_cost -- --nocapture`.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use dane_audit::core::evidence::{SmtpFailureKind as K, SmtpPhase as P, SmtpProbe};
use dane_audit::smtp::{SmtpConfig, SmtpProber, Timeouts};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::Testbed;

/// One SMTP listener of the bed.
#[derive(Clone, Debug)]
struct Listener {
    kind: String,
    address: IpAddr,
    host: String,
    /// Postfix: the chain file (`-` for none); smtp_peer: the mode.
    what: String,
    /// Postfix: `-o` options; smtp_peer: the `--tls` file.
    options: String,
}

fn listeners(bed: &Testbed) -> Vec<Listener> {
    let dir = bed.dir.join("frag");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries.flatten() {
        if e.path().extension().and_then(|x| x.to_str()) != Some("smtp") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            let field = |i: usize| f.get(i).map_or("", |s| s.trim()).to_string();
            let Ok(address) = field(1).parse() else {
                panic!("{}: bad line {line:?}", e.path().display());
            };
            out.push(Listener {
                kind: field(0),
                address,
                host: field(2),
                what: field(3),
                options: field(4),
            });
        }
    }
    out.sort_by_key(|l| (l.kind.clone(), l.address));
    assert!(!out.is_empty(), "no SMTP listeners in {}", dir.display());
    out
}

fn peer(all: &[Listener], mode: &str) -> Listener {
    all.iter()
        .find(|l| l.kind == "peer" && l.what == mode)
        .unwrap_or_else(|| panic!("no smtp_peer listener in mode {mode}"))
        .clone()
}

fn config() -> SmtpConfig {
    SmtpConfig {
        ehlo_name: "prober.testbed.invalid".into(),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            greeting: Duration::from_secs(3),
            command: Duration::from_secs(3),
            handshake: Duration::from_secs(3),
            quit: Duration::from_secs(1),
        },
        ..SmtpConfig::default()
    }
}

/// Runs `f` on this thread inside the bed's namespace, on a current-thread runtime.
fn in_bed<T>(f: impl AsyncFnOnce(&'static Testbed) -> T) -> Option<T> {
    let bed = Testbed::get()?;
    bed.enter_thread();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Some(rt.block_on(f(bed)))
}

async fn probe(prober: &SmtpProber, l: &Listener) -> SmtpProbe {
    let bound = prober.config().timeouts.total();
    let start = Instant::now();
    let p = prober.probe(l.address, &l.host).await;
    let took = start.elapsed();
    assert!(
        took <= bound + Duration::from_millis(500),
        "{l:?}: {took:?}"
    );
    p
}

#[track_caller]
fn assert_failure(p: &SmtpProbe, phase: P, kind: K) {
    let f = p
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("no failure: {p:?}"));
    assert_eq!((f.phase, f.kind), (phase, kind), "{} {f:?}", p.address);
}

fn chain_file(path: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .map(|c| c.unwrap().to_vec())
        .collect()
}

/// The leaf `openssl s_client -starttls smtp` receives from the listener.
fn openssl_leaf(bed: &Testbed, l: &Listener) -> Vec<u8> {
    let connect = match l.address {
        IpAddr::V4(a) => format!("{a}:25"),
        IpAddr::V6(a) => format!("[{a}]:25"),
    };
    let out = bed
        .command("openssl")
        .args(["s_client", "-connect", &connect, "-starttls", "smtp"])
        .args(["-servername", &l.host, "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&out.stdout)
        .map(|c| c.unwrap().to_vec())
        .collect();
    assert!(
        !certs.is_empty(),
        "openssl s_client {connect}: no certificate\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    certs[0].clone()
}

#[test]
fn postfix_listeners_complete_tls_over_ipv4_and_ipv6() {
    in_bed(async |bed| {
        let prober = SmtpProber::new(config()).unwrap();
        let all = listeners(bed);
        let tls: Vec<&Listener> = all
            .iter()
            .filter(|l| l.kind == "pf" && l.what != "-" && l.options.is_empty())
            .collect();
        assert!(tls.iter().any(|l| l.address.is_ipv4()));
        assert!(tls.iter().any(|l| l.address.is_ipv6()));
        for l in &tls {
            let p = probe(&prober, l).await;
            assert!(p.failure.is_none(), "{l:?}: {:?}", p.failure);
            let t = p.tls.as_ref().unwrap();
            assert_eq!(t.sni, l.host);
            assert_eq!(t.group.as_deref(), Some("X25519"), "{l:?}");
            let got: Vec<Vec<u8>> = p.chain.iter().map(|d| d.0.clone()).collect();
            assert_eq!(
                got,
                chain_file(&l.what),
                "{l:?}: chain differs from the served file"
            );
            assert_eq!(
                got[0],
                openssl_leaf(bed, l),
                "{l:?}: leaf differs from s_client's"
            );
            assert!(p.greeting.as_ref().unwrap().code == 220);
            assert!(p.ehlo_keywords().iter().any(|k| k == "STARTTLS"));
            eprintln!(
                "{:<18} {:<40} {} {} {} chain {} ({} ms)",
                l.address,
                l.host,
                t.version,
                t.cipher,
                t.group.as_deref().unwrap_or("-"),
                p.chain.len(),
                p.elapsed_ms
            );
        }
    });
}

#[test]
fn postfix_without_starttls_and_with_old_tls_only() {
    in_bed(async |bed| {
        let prober = SmtpProber::new(config()).unwrap();
        let all = listeners(bed);
        let plain = all
            .iter()
            .find(|l| l.kind == "pf" && l.options.contains("smtpd_tls_security_level=none"))
            .expect("a Postfix listener without TLS");
        let p = probe(&prober, plain).await;
        assert_failure(&p, P::Ehlo, K::NoStarttls);
        assert_eq!(p.ehlo.as_ref().unwrap().code, 250);
        assert!(p.tls.is_none());

        let old = all
            .iter()
            .find(|l| l.kind == "pf" && l.options.contains("smtpd_tls_protocols"))
            .expect("a Postfix listener restricted to old TLS versions");
        let p = probe(&prober, old).await;
        assert_failure(&p, P::Handshake, K::Tls);
        eprintln!("old TLS only: {}", p.failure.as_ref().unwrap().detail);
        assert!(p.tls.is_none());
    });
}

#[test]
fn closed_port_and_black_hole() {
    in_bed(async |bed| {
        let prober = SmtpProber::new(config()).unwrap();
        let all = listeners(bed);
        let mut closed = all
            .iter()
            .find(|l| l.kind == "closed")
            .expect("a closed port")
            .clone();
        if closed.host == "-" {
            closed.host = "mx.smtp-unreachable.example".into();
        }
        let p = probe(&prober, &closed).await;
        assert_failure(&p, P::Connect, K::Refused);

        // The bed's "dead" address: nft drops every packet, so connect times out.
        let dead = bed.var("NS_DEAD");
        for a in dead.split(',') {
            let l = Listener {
                kind: "dead".into(),
                address: a.parse().unwrap(),
                host: "dead.example".into(),
                what: String::new(),
                options: String::new(),
            };
            let start = Instant::now();
            let p = probe(&prober, &l).await;
            assert_failure(&p, P::Connect, K::Timeout);
            assert!(start.elapsed() < Duration::from_millis(2500));
        }
    });
}

#[test]
fn misbehaving_peers() {
    in_bed(async |bed| {
        let prober = SmtpProber::new(config()).unwrap();
        let all = listeners(bed);
        let t = config().timeouts;
        let cases = [
            ("greeting-421", P::Greeting, K::Reply),
            ("starttls-454", P::Starttls, K::Reply),
            ("tarpit", P::Greeting, K::Timeout),
            ("endless-multiline", P::Ehlo, K::Protocol),
            ("huge-line", P::Greeting, K::Protocol),
            ("not-smtp", P::Greeting, K::Protocol),
            ("garbage-after-starttls", P::Starttls, K::Protocol),
            ("close-mid-handshake", P::Handshake, K::Closed),
            ("silent", P::Greeting, K::Timeout),
        ];
        for (mode, phase, kind) in cases {
            let l = peer(&all, mode);
            let start = Instant::now();
            let p = probe(&prober, &l).await;
            let took = start.elapsed();
            assert_failure(&p, phase, kind);
            eprintln!(
                "{mode:<24} {:?}/{:?} in {took:?}: {}",
                phase,
                kind,
                p.failure.as_ref().unwrap().detail
            );
            match mode {
                "greeting-421" => assert_eq!(p.greeting.as_ref().unwrap().code, 421),
                "starttls-454" => assert_eq!(p.starttls.as_ref().unwrap().code, 454),
                "tarpit" | "silent" => assert!(took < t.greeting + Duration::from_millis(500)),
                "garbage-after-starttls" => {
                    // Discarded, then a real handshake with the published chain.
                    assert!(p.tls.is_some(), "{p:?}");
                    // For smtp_peer rows the last column is its --tls file.
                    let got: Vec<Vec<u8>> = p.chain.iter().map(|d| d.0.clone()).collect();
                    assert_eq!(got, chain_file(&l.options));
                }
                _ => assert!(took < Duration::from_secs(1), "{mode}: {took:?}"),
            }
        }
    });
}

fn cpu_of_this_thread() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Wall time and CPU (user + system of the prober's thread) per probe: 200
/// sequential probes against one Postfix listener over IPv4, then 200 with 16 in
/// flight. Postfix's own CPU is not included.
#[test]
fn probe_cost_on_postfix() {
    const N: usize = 200;
    in_bed(async |bed| {
        let prober = SmtpProber::new(config()).unwrap();
        let all = listeners(bed);
        let l = all
            .iter()
            .find(|l| l.kind == "pf" && l.host == "mx.good-311.example")
            .or_else(|| all.iter().find(|l| l.kind == "pf" && l.options.is_empty()))
            .unwrap()
            .clone();
        // Warm up (Postfix spawns its smtpd processes on demand).
        for _ in 0..5 {
            assert!(probe(&prober, &l).await.failure.is_none());
        }

        let cpu0 = cpu_of_this_thread();
        let t0 = Instant::now();
        let mut per = Vec::with_capacity(N);
        for _ in 0..N {
            let p = probe(&prober, &l).await;
            assert!(p.failure.is_none(), "{:?}", p.failure);
            per.push(p.elapsed_ms);
        }
        let wall = t0.elapsed();
        let cpu = cpu_of_this_thread() - cpu0;
        per.sort_unstable();
        eprintln!(
            "sequential: {N} probes of {} in {wall:?}: {:.2} ms wall/probe \
             (median {} ms, p95 {} ms), {:.2} ms CPU/probe",
            l.address,
            wall.as_secs_f64() * 1000.0 / N as f64,
            per[N / 2],
            per[N * 95 / 100],
            cpu.as_secs_f64() * 1000.0 / N as f64
        );

        let cpu0 = cpu_of_this_thread();
        let t0 = Instant::now();
        let mut ok = 0;
        let mut results = futures_util::stream::iter(0..N)
            .map(|_| {
                let prober = prober.clone();
                let l = l.clone();
                async move { prober.probe(l.address, &l.host).await }
            })
            .buffer_unordered(16);
        while let Some(p) = results.next().await {
            if p.failure.is_none() {
                ok += 1;
            }
        }
        let wall = t0.elapsed();
        let cpu = cpu_of_this_thread() - cpu0;
        eprintln!(
            "16 in flight: {N} probes in {wall:?} ({ok} ok): {:.2} ms wall/probe, \
             {:.1} probes/s, {:.2} ms CPU/probe",
            wall.as_secs_f64() * 1000.0 / N as f64,
            N as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / N as f64
        );
        assert_eq!(ok, N);
    });
}
