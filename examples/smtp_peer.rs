//! `smtp_peer`: a tiny, deliberately misbehaving SMTP server for the dane-audit test bed.
//!
//! Postfix (the bed's real MTA) cannot be made to misbehave in these ways, yet real
//! servers do, and a DANE auditor must report each of them as what it is (rate limiting,
//! refused STARTTLS, a stalled or broken peer, STARTTLS injection) instead of hanging,
//! running out of memory or calling it "no STARTTLS".
//!
//! Usage (one process, any number of listeners; options after a `--listen` apply to it):
//!
//! ```text
//! smtp_peer --listen 203.0.113.10:25 --mode starttls-454 --name mx.example \
//!           --listen [2001:db8:26::10]:25 --mode garbage-after-starttls --tls key-and-chain.pem
//! ```
//!
//! `--tls FILE` is a PEM file in Postfix `smtpd_tls_chain_files` order (private key, leaf,
//! intermediates). Only `garbage-after-starttls` uses it: after the injected bytes it runs a
//! real TLS handshake, so a client that discards the injected plaintext (as Postfix does)
//! succeeds, and one that feeds it to TLS fails.
//!
//! Build: `cargo build --example smtp_peer`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Upper bound on one connection's life, so a client that never hangs up cannot pile up
/// tasks in a long-running bed.
const MAX_SESSION: Duration = Duration::from_secs(600);
/// Longest command line accepted from a client (RFC 5321 §4.5.3.1.4 says 512; be lenient).
const MAX_LINE: u64 = 4096;

/// How one listener misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// EHLO offers STARTTLS, STARTTLS gets `454 4.7.0`: "STARTTLS refused".
    Starttls454,
    /// `421` instead of a greeting, then close: a rate limit, "not tested" (never "no STARTTLS").
    Greeting421,
    /// The greeting trickles out one byte every 10 s and the session then stalls.
    Tarpit,
    /// The EHLO reply is an endless run of `250-` continuation lines.
    EndlessMultiline,
    /// The greeting is a 1 MiB line without CRLF: a client must bound its line buffer.
    HugeLine,
    /// An SSH banner: something that is not SMTP listens on port 25.
    NotSmtp,
    /// `220` to STARTTLS plus extra plaintext in the same write (STARTTLS command
    /// injection, CVE-2011-0411 style), then a real TLS handshake when `--tls` is given.
    GarbageAfterStarttls,
    /// `220` to STARTTLS, read the ClientHello, close: a handshake that dies midway.
    CloseMidHandshake,
    /// Accept and never send a byte.
    Silent,
}

impl Mode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starttls-454" => Self::Starttls454,
            "greeting-421" => Self::Greeting421,
            "tarpit" => Self::Tarpit,
            "endless-multiline" => Self::EndlessMultiline,
            "huge-line" => Self::HugeLine,
            "not-smtp" => Self::NotSmtp,
            "garbage-after-starttls" => Self::GarbageAfterStarttls,
            "close-mid-handshake" => Self::CloseMidHandshake,
            "silent" => Self::Silent,
            _ => return None,
        })
    }
}

/// One `--listen` group from the command line.
#[derive(Debug)]
struct Spec {
    addr: SocketAddr,
    mode: Option<Mode>,
    name: String,
    tls: Option<PathBuf>,
}

/// Everything a connection handler needs, shared by all connections of one listener.
struct Listener {
    mode: Mode,
    name: String,
    tls: Option<TlsAcceptor>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn usage() -> String {
    "usage: smtp_peer (--listen ADDR:PORT --mode MODE [--name HOST] [--tls KEY_AND_CHAIN.pem])...\n\
     modes: starttls-454 greeting-421 tarpit endless-multiline huge-line not-smtp \
     garbage-after-starttls close-mid-handshake silent"
        .to_owned()
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Vec<Spec>, String> {
    let mut specs: Vec<Spec> = Vec::new();
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        if flag == "--listen" {
            let addr = value
                .parse()
                .map_err(|e| format!("--listen {value}: {e}"))?;
            specs.push(Spec {
                addr,
                mode: None,
                name: "smtp-peer.invalid".to_owned(),
                tls: None,
            });
            continue;
        }
        let spec = specs
            .last_mut()
            .ok_or_else(|| format!("{flag} before --listen\n{}", usage()))?;
        match flag.as_str() {
            "--mode" => {
                spec.mode = Some(
                    Mode::parse(&value)
                        .ok_or_else(|| format!("unknown mode {value}\n{}", usage()))?,
                );
            }
            "--name" => spec.name = value,
            "--tls" => spec.tls = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}\n{}", usage())),
        }
    }
    if specs.is_empty() {
        return Err(usage());
    }
    if let Some(s) = specs.iter().find(|s| s.mode.is_none()) {
        return Err(format!("--listen {} has no --mode", s.addr));
    }
    Ok(specs)
}

/// Builds a TLS acceptor from a Postfix-style PEM file (key first, then the chain).
fn load_tls(path: &Path) -> Result<TlsAcceptor, BoxError> {
    let key =
        PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: key: {e}", path.display()))?;
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: certificate: {e}", path.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[tokio::main]
async fn main() {
    let specs = match parse_args(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut tasks = Vec::new();
    for spec in specs {
        let Some(mode) = spec.mode else { continue };
        let tls = match spec.tls.as_deref().map(load_tls).transpose() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("smtp_peer: {e}");
                std::process::exit(1);
            }
        };
        let socket = match TcpListener::bind(spec.addr).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("smtp_peer: bind {}: {e}", spec.addr);
                std::process::exit(1);
            }
        };
        eprintln!("smtp_peer: {} {mode:?} as {}", spec.addr, spec.name);
        let listener = Arc::new(Listener {
            mode,
            name: spec.name,
            tls,
        });
        tasks.push(tokio::spawn(accept_loop(socket, listener)));
    }
    for t in tasks {
        // A listener task only ends if accept() fails for good; keep serving the others.
        let _ = t.await;
    }
}

async fn accept_loop(socket: TcpListener, listener: Arc<Listener>) {
    loop {
        match socket.accept().await {
            Ok((stream, peer)) => {
                let l = Arc::clone(&listener);
                tokio::spawn(async move {
                    match tokio::time::timeout(MAX_SESSION, serve(stream, &l)).await {
                        Ok(Ok(())) | Err(_) => {}
                        Ok(Err(e)) => eprintln!("smtp_peer: {peer} ({:?}): {e}", l.mode),
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("smtp_peer: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads and discards until the client hangs up: keeps a connection open without talking.
async fn drain<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<()> {
    let mut buf = [0_u8; 4096];
    while r.read(&mut buf).await? != 0 {}
    Ok(())
}

async fn serve(mut stream: TcpStream, l: &Listener) -> Result<(), BoxError> {
    let name = l.name.as_str();
    match l.mode {
        Mode::Silent => return Ok(drain(&mut stream).await?),
        Mode::Greeting421 => {
            let msg = format!("421 4.3.2 {name} Too many connections, try again later\r\n");
            stream.write_all(msg.as_bytes()).await?;
            return Ok(stream.shutdown().await?);
        }
        Mode::Tarpit => {
            for b in format!("220 {name} ESMTP\r\n").bytes() {
                stream.write_all(&[b]).await?;
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            return Ok(drain(&mut stream).await?);
        }
        Mode::HugeLine => {
            let mut line = b"220 ".to_vec();
            line.resize(1 << 20, b'x');
            stream.write_all(&line).await?;
            return Ok(drain(&mut stream).await?);
        }
        Mode::NotSmtp => {
            stream
                .write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
                .await?;
            let mut buf = [0_u8; 512];
            let _ = stream.read(&mut buf).await?;
            stream
                .write_all(b"Invalid SSH identification string.\r\n")
                .await?;
            return Ok(stream.shutdown().await?);
        }
        _ => {}
    }
    let mut conn = BufReader::new(stream);
    conn.write_all(format!("220 {name} ESMTP smtp_peer\r\n").as_bytes())
        .await?;
    match smtp_dialogue(&mut conn, l, true).await? {
        Next::Close => Ok(()),
        Next::Tls => after_starttls(conn, l).await,
    }
}

/// What the plaintext dialogue ended with.
enum Next {
    Close,
    Tls,
}

/// A minimal command loop. `offer_tls` is false inside TLS (no STARTTLS twice).
async fn smtp_dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut BufReader<S>,
    l: &Listener,
    offer_tls: bool,
) -> Result<Next, BoxError> {
    let name = l.name.as_str();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut *conn)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(Next::Close);
        }
        let cmd = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
        let verb = cmd.split_whitespace().next().unwrap_or("");
        match verb {
            "EHLO" if l.mode == Mode::EndlessMultiline => {
                conn.write_all(format!("250-{name}\r\n").as_bytes()).await?;
                // Backpressure paces this: it only writes as fast as the client reads,
                // and it ends when the client gives up (the write fails).
                let mut i: u64 = 0;
                loop {
                    i = i.wrapping_add(1);
                    conn.write_all(format!("250-X-FILLER-{i} never ends\r\n").as_bytes())
                        .await?;
                }
            }
            "EHLO" => {
                let tls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
                let reply = format!("250-{name}\r\n250-PIPELINING\r\n{tls}250 8BITMIME\r\n");
                conn.write_all(reply.as_bytes()).await?;
            }
            "HELO" => conn.write_all(format!("250 {name}\r\n").as_bytes()).await?,
            "STARTTLS" if offer_tls => match l.mode {
                Mode::Starttls454 => {
                    conn.write_all(b"454 4.7.0 TLS not available due to local problem\r\n")
                        .await?
                }
                Mode::GarbageAfterStarttls => {
                    // One write: the injected lines arrive in the same segment as the 220.
                    let injected = "220 2.0.0 Ready to start TLS\r\n250-INJECTED-PLAINTEXT\r\n250 X-STARTTLS-INJECTION\r\n";
                    conn.write_all(injected.as_bytes()).await?;
                    return Ok(Next::Tls);
                }
                _ => {
                    conn.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                    return Ok(Next::Tls);
                }
            },
            "QUIT" => {
                conn.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(Next::Close);
            }
            "NOOP" | "RSET" => conn.write_all(b"250 2.0.0 OK\r\n").await?,
            _ => {
                conn.write_all(b"502 5.5.2 Command not recognized\r\n")
                    .await?
            }
        }
        conn.flush().await?;
    }
}

async fn after_starttls(mut conn: BufReader<TcpStream>, l: &Listener) -> Result<(), BoxError> {
    if l.mode == Mode::CloseMidHandshake {
        let mut hello = [0_u8; 512];
        let _ = conn.read(&mut hello).await?;
        return Ok(()); // dropping the stream closes it before any ServerHello
    }
    let Some(acceptor) = l.tls.as_ref() else {
        return Ok(());
    };
    // Client bytes already buffered past the STARTTLS line would be pipelined plaintext;
    // hand the raw socket to TLS, as a careful server does.
    let tls = acceptor.accept(conn.into_inner()).await?;
    let mut conn = BufReader::new(tls);
    smtp_dialogue(&mut conn, l, false).await?;
    Ok(())
}
