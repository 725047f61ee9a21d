//! SMTP STARTTLS collector: greeting, EHLO, STARTTLS and the TLS handshake on every MX address.
//!
//! One [`SmtpProber::probe`] is one TCP connection to one address (RFC 5321,
//! RFC 3207, RFC 7672 §2.2):
//!
//! 1. connect (timeout [`Timeouts::connect`]);
//! 2. read the greeting, which must be `220` ([`Timeouts::greeting`]);
//! 3. `EHLO <name>`, which must be `250` and list `STARTTLS` ([`Timeouts::command`]);
//! 4. `STARTTLS`, which must be `220` with nothing after it ([`Timeouts::command`]);
//! 5. the TLS handshake, SNI = the TLSA base domain ([`Timeouts::handshake`]);
//! 6. `QUIT`, without waiting long for its reply ([`Timeouts::quit`]).
//!
//! It never sends MAIL, RCPT or DATA and never retries. The probe records what
//! it saw in an [`SmtpProbe`]; where it stopped is one [`SmtpFailure`] (phase and
//! kind). Whether that means "not tested" (a 421 rate limit, a timeout) or "failed"
//! (no STARTTLS, a refused STARTTLS, a failed handshake) is decided by the pure core
//! ([`crate::core::smtp::classify`]), not here.
//!
//! Plaintext received together with the STARTTLS 220 (STARTTLS command
//! injection) is discarded unread and recorded as a `Protocol` failure of the
//! STARTTLS phase; the handshake is still made, so that such a probe may carry
//! `tls` and `chain` next to its failure.
//!
//! Whatever the peer does, a probe ends within the sum of the phase timeouts and
//! holds at most about `max_line + 4 KiB` of unparsed input plus one reply of at
//! most `max_reply_bytes`.

pub mod reply;
mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::core::evidence::{Der, Reply, SmtpFailure, SmtpFailureKind, SmtpPhase, SmtpProbe};
use reply::{Framed, Limits, ReadError};

/// Per-phase time limits. Each covers the whole phase (a peer that trickles one
/// byte at a time gains nothing), so one probe lasts at most
/// `connect + greeting + 2 × command + handshake + quit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect. Default 10 s.
    pub connect: Duration,
    /// From the connection to the complete greeting. Default 30 s: RFC 5321
    /// §4.5.3.2.1 lets a client wait 5 minutes, but greeting delays in practice
    /// (Postfix postscreen, Sendmail `greet_pause`, Exim `smtp_banner` delays) stay
    /// well under 30 s, and a longer wait only slows a scan down on tarpits.
    pub greeting: Duration,
    /// Sending one command (EHLO, STARTTLS) and reading its complete reply. Default 30 s.
    pub command: Duration,
    /// The TLS handshake. Default 30 s.
    pub handshake: Duration,
    /// Sending QUIT and reading its reply, best effort; its outcome is not recorded.
    /// Default 2 s.
    pub quit: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            greeting: Duration::from_secs(30),
            command: Duration::from_secs(30),
            handshake: Duration::from_secs(30),
            quit: Duration::from_secs(2),
        }
    }
}

impl Timeouts {
    /// The longest a probe can take.
    pub fn total(&self) -> Duration {
        self.connect + self.greeting + self.command * 2 + self.handshake + self.quit
    }
}

/// How probes are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Destination port: 25 (`--smtp-port` exists only for tests).
    pub port: u16,
    /// The name sent with EHLO (`--ehlo`). Use a name that resolves to the
    /// scanning host: some MTAs delay or refuse unknown names.
    pub ehlo_name: String,
    pub timeouts: Timeouts,
    /// Longest reply line in bytes, CRLF included. Default 4096 (RFC 5321 says
    /// 512; real banners are sometimes longer).
    pub max_line: usize,
    /// Most lines in one reply. Default 100 (EHLO replies have about 10).
    pub max_lines: usize,
    /// Most bytes in one reply. Default 64 KiB.
    pub max_reply_bytes: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            port: 25,
            ehlo_name: "dane-audit.invalid".to_string(),
            timeouts: Timeouts::default(),
            max_line: 4096,
            max_lines: 100,
            max_reply_bytes: 64 * 1024,
        }
    }
}

/// Why a prober could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("invalid EHLO name {0:?}: expected a domain name or an address literal")]
    EhloName(String),
    #[error("invalid SMTP limits: {0}")]
    Limits(&'static str),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Probes SMTP servers; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct SmtpProber {
    cfg: Arc<SmtpConfig>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for SmtpProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpProber")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// How one phase ended early.
type Step<T> = Result<T, SmtpFailure>;

fn fail(phase: SmtpPhase, kind: SmtpFailureKind, detail: impl Into<String>) -> SmtpFailure {
    SmtpFailure {
        phase,
        kind,
        detail: detail.into(),
    }
}

impl SmtpProber {
    pub fn new(cfg: SmtpConfig) -> Result<Self, SmtpError> {
        let name = &cfg.ehlo_name;
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-.:[]_".contains(c);
        if name.is_empty() || name.len() > 255 || !name.chars().all(ok_char) {
            return Err(SmtpError::EhloName(name.clone()));
        }
        if cfg.max_line < 8 {
            return Err(SmtpError::Limits("max_line must be at least 8 bytes"));
        }
        if cfg.max_lines == 0 {
            return Err(SmtpError::Limits("max_lines must be at least 1"));
        }
        if cfg.max_reply_bytes < cfg.max_line {
            return Err(SmtpError::Limits(
                "max_reply_bytes must be at least max_line",
            ));
        }
        Ok(SmtpProber {
            tls: Arc::new(tls::client_config()?),
            cfg: Arc::new(cfg),
        })
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.cfg
    }

    /// Probes one address. `sni` is the TLSA base domain: sent as SNI and
    /// recorded in [`crate::core::evidence::TlsInfo::sni`]. Never panics; returns
    /// within [`Timeouts::total`].
    pub async fn probe(&self, address: IpAddr, sni: &str) -> SmtpProbe {
        let start = Instant::now();
        let mut p = SmtpProbe {
            address,
            port: self.cfg.port,
            elapsed_ms: 0,
            greeting: None,
            ehlo: None,
            starttls: None,
            tls: None,
            chain: Vec::new(),
            failure: None,
        };
        p.failure = self.run(&mut p, sni).await.err();
        p.elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        p
    }

    fn limits(&self) -> Limits {
        Limits {
            max_line: self.cfg.max_line,
            max_lines: self.cfg.max_lines,
            max_reply_bytes: self.cfg.max_reply_bytes,
        }
    }

    async fn run(&self, p: &mut SmtpProbe, sni: &str) -> Step<()> {
        let t = self.cfg.timeouts;
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        let Ok(server_name) = ServerName::try_from(sni.clone()) else {
            return Err(fail(
                SmtpPhase::Connect,
                SmtpFailureKind::NotProbed,
                format!("{sni:?} is not a valid TLS server name"),
            ));
        };

        // 1. Connect.
        let to = SocketAddr::new(p.address, p.port);
        let tcp = match timeout(t.connect, TcpStream::connect(to)).await {
            Err(_) => {
                return Err(fail(
                    SmtpPhase::Connect,
                    SmtpFailureKind::Timeout,
                    format!("no connection within {}", secs(t.connect)),
                ));
            }
            Ok(Err(e)) => return Err(connect_error(&e)),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let mut conn = Framed::new(tcp);

        // 2. Greeting.
        let greeting = self
            .reply(&mut conn, SmtpPhase::Greeting, t.greeting, None)
            .await?;
        p.greeting = Some(greeting.clone());
        if greeting.code != 220 {
            return Err(self
                .unexpected(&mut conn, SmtpPhase::Greeting, &greeting)
                .await);
        }

        // 3. EHLO.
        let cmd = format!("EHLO {}", self.cfg.ehlo_name);
        let ehlo = self
            .reply(&mut conn, SmtpPhase::Ehlo, t.command, Some(&cmd))
            .await?;
        p.ehlo = Some(ehlo.clone());
        if ehlo.code != 250 {
            return Err(self.unexpected(&mut conn, SmtpPhase::Ehlo, &ehlo).await);
        }
        if !p.ehlo_keywords().iter().any(|k| k == "STARTTLS") {
            self.quit(&mut conn).await;
            let offered = p.ehlo_keywords().join(" ");
            return Err(fail(
                SmtpPhase::Ehlo,
                SmtpFailureKind::NoStarttls,
                if offered.is_empty() {
                    "EHLO listed no extensions".to_string()
                } else {
                    format!("EHLO offered: {offered}")
                },
            ));
        }

        // 4. STARTTLS.
        let starttls = self
            .reply(&mut conn, SmtpPhase::Starttls, t.command, Some("STARTTLS"))
            .await?;
        p.starttls = Some(starttls.clone());
        if starttls.code != 220 {
            return Err(self
                .unexpected(&mut conn, SmtpPhase::Starttls, &starttls)
                .await);
        }
        let (tcp, pending) = conn.into_parts();
        // RFC 3207 §4.2, CVE-2011-0411: plaintext that arrives with the 220 is not
        // part of the TLS session. It is discarded, never parsed or fed to TLS, and
        // recorded as a protocol error. The handshake still runs, as Postfix and
        // OpenSSL clients would do it, so the evidence also shows the chain.
        let injection = (!pending.is_empty()).then(|| {
            fail(
                SmtpPhase::Starttls,
                SmtpFailureKind::Protocol,
                format!(
                    "{} bytes arrived with the STARTTLS 220 reply, before the TLS handshake \
                     (STARTTLS command injection; discarded): {}",
                    pending.len(),
                    reply::excerpt(&pending)
                ),
            )
        });
        drop(pending);
        let after_injection = |mut f: SmtpFailure, then: SmtpFailure| {
            f.detail = format!(
                "{}; the TLS handshake after it failed: {}",
                f.detail, then.detail
            );
            f
        };

        // 5. TLS handshake.
        let connector = TlsConnector::from(self.tls.clone());
        let (out, chain) =
            tls::capturing(timeout(t.handshake, connector.connect(server_name, tcp))).await;
        p.chain = chain.into_iter().map(|c| Der(c.to_vec())).collect();
        let failed = match out {
            Err(_) => Err(fail(
                SmtpPhase::Handshake,
                SmtpFailureKind::Timeout,
                format!(
                    "the handshake did not complete within {}",
                    secs(t.handshake)
                ),
            )),
            Ok(Err(e)) => Err(handshake_error(&e)),
            Ok(Ok(s)) => Ok(s),
        };
        let tls = match (failed, injection.clone()) {
            (Ok(s), _) => s,
            (Err(f), None) => return Err(f),
            (Err(f), Some(i)) => return Err(after_injection(i, f)),
        };
        let (_, session) = tls.get_ref();
        p.tls = Some(tls::tls_info(session, &sni));
        if p.chain.is_empty()
            && let Some(certs) = session.peer_certificates()
        {
            p.chain = certs.iter().map(|c| Der(c.to_vec())).collect();
        }

        // 6. QUIT, inside TLS.
        let mut conn = Framed::new(tls);
        self.quit(&mut conn).await;
        injection.map_or(Ok(()), Err)
    }

    /// Sends `cmd` (if any) and reads one reply, all within `limit`.
    async fn reply<S>(
        &self,
        conn: &mut Framed<S>,
        phase: SmtpPhase,
        limit: Duration,
        cmd: Option<&str>,
    ) -> Step<Reply>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let limits = self.limits();
        let exchange = async {
            if let Some(cmd) = cmd {
                conn.send(cmd).await.map_err(ReadError::Io)?;
            }
            conn.read_reply(&limits).await
        };
        match timeout(limit, exchange).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(read_error(phase, e)),
            Err(_) => {
                let what = match phase {
                    SmtpPhase::Greeting => "no complete greeting".to_string(),
                    _ => format!("no complete reply to {}", phase.as_str()),
                };
                Err(fail(
                    phase,
                    SmtpFailureKind::Timeout,
                    format!(
                        "{what} within {} ({} bytes received on the connection)",
                        secs(limit),
                        conn.received()
                    ),
                ))
            }
        }
    }

    /// A well-formed reply with a code other than the one the dialogue needs.
    async fn unexpected(
        &self,
        conn: &mut Framed<TcpStream>,
        phase: SmtpPhase,
        r: &Reply,
    ) -> SmtpFailure {
        let text = r.lines.first().map(String::as_str).unwrap_or("");
        let said = format!("{} {text}", r.code).trim_end().to_string();
        let wanted = match phase {
            SmtpPhase::Ehlo => 250,
            _ => 220,
        };
        let rejection = (400..600).contains(&r.code);
        // STARTTLS answered with anything but 220 is a refusal, whatever the code.
        let kind = if rejection || phase == SmtpPhase::Starttls {
            SmtpFailureKind::Reply
        } else {
            SmtpFailureKind::Protocol
        };
        if kind == SmtpFailureKind::Reply {
            // RFC 5321 §3.1: after a rejection the client should still say QUIT.
            self.quit(conn).await;
        }
        fail(phase, kind, format!("expected {wanted}, got {said}"))
    }

    /// QUIT, best effort: a short wait for the 221 so that the close is clean.
    async fn quit<S>(&self, conn: &mut Framed<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let limits = self.limits();
        let _ = timeout(self.cfg.timeouts.quit, async {
            conn.send("QUIT").await.map_err(ReadError::Io)?;
            let _ = conn.read_reply(&limits).await;
            conn.shutdown().await.map_err(ReadError::Io)
        })
        .await;
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn is_hangup(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn connect_error(e: &io::Error) -> SmtpFailure {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => SmtpFailureKind::Refused,
        io::ErrorKind::TimedOut => SmtpFailureKind::Timeout,
        _ => SmtpFailureKind::Network,
    };
    fail(SmtpPhase::Connect, kind, e.to_string())
}

fn read_error(phase: SmtpPhase, e: ReadError) -> SmtpFailure {
    let kind = match &e {
        ReadError::Closed { .. } => SmtpFailureKind::Closed,
        ReadError::Io(io) if is_hangup(io) => SmtpFailureKind::Closed,
        ReadError::Io(io) if io.kind() == io::ErrorKind::TimedOut => SmtpFailureKind::Timeout,
        ReadError::Io(_) => SmtpFailureKind::Network,
        ReadError::LineTooLong { .. }
        | ReadError::TooManyLines { .. }
        | ReadError::TooManyBytes { .. }
        | ReadError::NotSmtp { .. }
        | ReadError::CodeChanged { .. } => SmtpFailureKind::Protocol,
    };
    fail(phase, kind, e.to_string())
}

/// The alerts a server sends when it shares no version or suite with us.
fn no_common_parameters(a: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        a,
        A::HandshakeFailure | A::ProtocolVersion | A::InsufficientSecurity
    )
}

/// What such an alert means in plain words: the server's fault or this
/// tool's limits (rustls speaks no CBC and no RSA key exchange).
fn no_common_why(a: rustls::AlertDescription) -> &'static str {
    if a == rustls::AlertDescription::ProtocolVersion {
        "the server accepts neither TLS 1.3 nor TLS 1.2 (it may allow only TLS 1.0/1.1, \
         which RFC 8996 retires)"
    } else {
        "the server accepts none of the cipher suites offered (TLS 1.3, or TLS 1.2 with \
         ECDHE and AES-GCM or ChaCha20-Poly1305); it may allow only legacy CBC or RSA \
         key-exchange suites, which this tool cannot speak and some OpenSSL-based senders \
         still use"
    }
}

fn handshake_error(e: &io::Error) -> SmtpFailure {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let (kind, detail) = match tls_error {
        Some(t @ rustls::Error::AlertReceived(a)) if no_common_parameters(*a) => {
            (SmtpFailureKind::Tls, format!("{t}: {}", no_common_why(*a)))
        }
        Some(t) => (SmtpFailureKind::Tls, t.to_string()),
        None if is_hangup(e) => (
            SmtpFailureKind::Closed,
            format!("the server closed the connection during the handshake ({e})"),
        ),
        None if e.kind() == io::ErrorKind::TimedOut => (SmtpFailureKind::Timeout, e.to_string()),
        None => (SmtpFailureKind::Network, e.to_string()),
    };
    fail(SmtpPhase::Handshake, kind, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let cfg = SmtpConfig::default();
        assert_eq!(cfg.port, 25);
        assert_eq!(cfg.timeouts.total(), Duration::from_secs(132));
        assert!(SmtpProber::new(cfg.clone()).is_ok());
        for bad in ["", "a b", "x\r\nMAIL FROM:<>", "é.example"] {
            let c = SmtpConfig {
                ehlo_name: bad.into(),
                ..cfg.clone()
            };
            assert!(
                matches!(SmtpProber::new(c), Err(SmtpError::EhloName(_))),
                "{bad:?}"
            );
        }
        let literal = SmtpConfig {
            ehlo_name: "[IPv6:2001:db8::1]".into(),
            ..cfg
        };
        assert!(SmtpProber::new(literal).is_ok());
    }

    #[test]
    fn prober_is_shareable() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<SmtpProber>();
    }

    #[tokio::test]
    async fn invalid_sni_is_not_probed() {
        let p = SmtpProber::new(SmtpConfig::default()).unwrap();
        let r = p.probe("192.0.2.1".parse().unwrap(), "bad name!").await;
        let f = r.failure.unwrap();
        assert_eq!(
            (f.phase, f.kind),
            (SmtpPhase::Connect, SmtpFailureKind::NotProbed)
        );
    }

    #[test]
    fn handshake_errors_are_told_apart() {
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        );
        let f = handshake_error(&alert);
        assert_eq!(f.kind, SmtpFailureKind::Tls);
        assert!(f.detail.contains("HandshakeFailure"), "{}", f.detail);
        assert!(f.detail.contains("cipher suites offered"), "{}", f.detail);
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(handshake_error(&eof).kind, SmtpFailureKind::Closed);
    }
}
