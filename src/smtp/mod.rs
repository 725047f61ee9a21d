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
//! After a completed handshake, the probe makes one more connection per key
//! type the server has not presented yet ([`SmtpConfig::key_types`]), each
//! offering only that type's signature algorithms: the certificate a sender
//! gets depends on what it offers. When no modern handshake is possible (the
//! server shares no version or suite with rustls), it sends legacy
//! ClientHellos instead and reads the certificates the server sends in clear
//! ([`legacy`]). Either kind is recorded in [`SmtpProbe::key_types`], and the
//! fields of the default offer stay as they were.
//!
//! Whatever the peer does, one connection ends within the sum of the phase
//! timeouts and holds at most about `max_line + 4 KiB` of unparsed input plus one
//! reply of at most `max_reply_bytes` (a legacy hello at most
//! [`legacy::MAX_FLIGHT`]); a probe makes at most one connection per key type
//! more.

pub mod legacy;
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

use crate::core::cert::key_type_of_cert;
use crate::core::evidence::{
    Der, KeyType, KeyTypeProbe, LegacyHello, Reply, SmtpFailure, SmtpFailureKind, SmtpPhase,
    SmtpProbe,
};
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
    /// Which further handshakes a probe makes (`--key-types`). Default: every
    /// key type.
    pub key_types: KeyTypes,
    /// Pause before each further connection of one probe to the same
    /// address, so that its extra handshakes keep the pace a scan's
    /// `--per-ip-rate` sets for probes. Default: none.
    pub connection_gap: Duration,
}

/// Which server key types a probe asks for (`--key-types`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyTypes {
    /// The default offer only (a server that no modern client can negotiate
    /// with still gets one legacy hello offering every key type).
    Negotiated,
    /// Each of these that the default handshake did not present.
    Only(Vec<KeyType>),
}

impl Default for KeyTypes {
    fn default() -> Self {
        KeyTypes::Only(KeyType::ALL.to_vec())
    }
}

impl KeyTypes {
    /// Parses `all`, `negotiated`, or a comma-separated list of `ecdsa`,
    /// `rsa`, `ed25519`.
    pub fn parse(s: &str) -> Result<KeyTypes, String> {
        match s.trim() {
            "all" => return Ok(KeyTypes::default()),
            "negotiated" => return Ok(KeyTypes::Negotiated),
            _ => {}
        }
        let mut list = Vec::new();
        for name in s.split(',') {
            let k = KeyType::from_name(name).ok_or_else(|| {
                format!(
                    "unknown key type {:?}: use all, negotiated, or a list of ecdsa, rsa, ed25519",
                    name.trim()
                )
            })?;
            if !list.contains(&k) {
                list.push(k);
            }
        }
        Ok(KeyTypes::Only(list))
    }

    /// The key types asked for one by one (none for `Negotiated`).
    pub fn families(&self) -> &[KeyType] {
        match self {
            KeyTypes::Negotiated => &[],
            KeyTypes::Only(l) => l,
        }
    }

    /// The canonical spelling, for settings fingerprints.
    pub fn as_string(&self) -> String {
        match self {
            KeyTypes::Negotiated => "negotiated".into(),
            KeyTypes::Only(l) => l
                .iter()
                .map(|k| k.as_str().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
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
            key_types: KeyTypes::default(),
            connection_gap: Duration::ZERO,
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
    /// One configuration per set of key types a further handshake may ask
    /// for (every non-empty subset of [`SmtpConfig::key_types`]), offering
    /// only their schemes.
    by_set: Arc<[(Vec<KeyType>, Arc<rustls::ClientConfig>)]>,
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
        let by_set = subsets(cfg.key_types.families())
            .into_iter()
            .map(|set| {
                let c = tls::client_config(Some(&set))?;
                Ok((set, Arc::new(c)))
            })
            .collect::<Result<Vec<_>, rustls::Error>>()?;
        Ok(SmtpProber {
            tls: Arc::new(tls::client_config(None)?),
            by_set: by_set.into(),
            cfg: Arc::new(cfg),
        })
    }

    pub fn config(&self) -> &SmtpConfig {
        &self.cfg
    }

    /// Probes one address. `sni` is the TLSA base domain: sent as SNI and
    /// recorded in [`crate::core::evidence::TlsInfo::sni`]. Never panics; returns
    /// within [`Timeouts::total`] per connection (one, plus one per further key
    /// type, plus [`SmtpConfig::connection_gap`] before each of those).
    pub async fn probe(&self, address: IpAddr, sni: &str) -> SmtpProbe {
        let start = Instant::now();
        let mut p = SmtpProbe::unprobed(address, self.cfg.port);
        let mut next = Further::Nothing;
        p.failure = self.run(&mut p, sni, &mut next).await.err();
        p.key_types = self.further(&p, sni, next).await;
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

    /// The default offer: the SMTP dialogue, then the handshake with every
    /// signature algorithm. Tells in `next` what further handshakes make sense.
    async fn run(&self, p: &mut SmtpProbe, sni: &str, next: &mut Further) -> Step<()> {
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        let server_name = server_name(&sni)?;
        let (tcp, injection) = self.until_starttls(p).await?;
        let after_injection = |mut f: SmtpFailure, then: SmtpFailure| {
            f.detail = format!(
                "{}; the TLS handshake after it failed: {}",
                f.detail, then.detail
            );
            f
        };

        // 5. TLS handshake.
        let (out, chain) = self.handshake(self.tls.clone(), server_name, tcp).await;
        p.chain = chain;
        let tls = match (out, injection.clone()) {
            (Ok(s), _) => s,
            (Err((f, legacy)), i) => {
                if legacy {
                    *next = Further::Legacy;
                }
                return Err(match i {
                    None => f,
                    Some(i) => after_injection(i, f),
                });
            }
        };
        let (_, session) = tls.get_ref();
        p.tls = Some(tls::tls_info(session, &sni));
        *next = Further::KeyTypes;

        // 6. QUIT, inside TLS.
        let mut conn = Framed::new(tls);
        self.quit(&mut conn).await;
        injection.map_or(Ok(()), Err)
    }

    /// Steps 1 to 4: connect, greeting, EHLO, STARTTLS, each reply recorded
    /// in `p`. Returns the connection ready for a ClientHello and, when
    /// plaintext arrived with the STARTTLS 220, the failure that records it.
    async fn until_starttls(&self, p: &mut SmtpProbe) -> Step<(TcpStream, Option<SmtpFailure>)> {
        let t = self.cfg.timeouts;
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
        Ok((tcp, injection))
    }

    /// One TLS handshake on a connection after STARTTLS, within the
    /// handshake timeout. Returns the session or the failure (with whether a
    /// legacy hello may still get the certificate), and the chain the server
    /// sent (kept even when the handshake failed after it).
    async fn handshake(
        &self,
        cfg: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        tcp: TcpStream,
    ) -> (
        Result<tokio_rustls::client::TlsStream<TcpStream>, (SmtpFailure, bool)>,
        Vec<Der>,
    ) {
        let limit = self.cfg.timeouts.handshake;
        let connector = TlsConnector::from(cfg);
        let (out, chain) =
            tls::capturing(timeout(limit, connector.connect(server_name, tcp))).await;
        let mut chain: Vec<Der> = chain.into_iter().map(|c| Der(c.to_vec())).collect();
        let out = match out {
            Err(_) => Err((
                fail(
                    SmtpPhase::Handshake,
                    SmtpFailureKind::Timeout,
                    format!("the handshake did not complete within {}", secs(limit)),
                ),
                false,
            )),
            Ok(Err(e)) => Err((handshake_error(&e), legacy_may_help(&e))),
            Ok(Ok(s)) => {
                if chain.is_empty()
                    && let Some(certs) = s.get_ref().1.peer_certificates()
                {
                    chain = certs.iter().map(|c| Der(c.to_vec())).collect();
                }
                Ok(s)
            }
        };
        (out, chain)
    }

    /// The further handshakes `next` calls for, one connection each. Each
    /// asks for every key type not presented yet; the server presents one
    /// of them (which is then struck off), or none, and then it has none of
    /// them: a server with one certificate costs one more connection, one
    /// with two certificates two. Stops too at a failure before TLS (a
    /// server that refuses more connections says nothing about its
    /// certificates).
    async fn further(&self, p: &SmtpProbe, sni: &str, next: Further) -> Vec<KeyTypeProbe> {
        let configured = self.cfg.key_types.families();
        let mut left: Vec<KeyType> = match next {
            Further::Nothing => return Vec::new(),
            Further::KeyTypes => {
                let seen = p.chain.first().and_then(|leaf| key_type_of_cert(&leaf.0));
                configured
                    .iter()
                    .copied()
                    .filter(|k| Some(*k) != seen)
                    .collect()
            }
            // Under --key-types negotiated: one hello offering every key type.
            Further::Legacy => configured.to_vec(),
        };
        let legacy = next == Further::Legacy;
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        let mut out = Vec::new();
        while !left.is_empty() || (legacy && out.is_empty()) {
            if !self.cfg.connection_gap.is_zero() {
                tokio::time::sleep(self.cfg.connection_gap).await;
            }
            let r = if legacy {
                self.legacy_probe(p.address, &sni, &left).await
            } else {
                self.key_type_probe(p.address, &sni, &left).await
            };
            let got = r.presented().and(r.key_type);
            out.push(r);
            match got {
                Some(k) if left.contains(&k) => left.retain(|x| *x != k),
                _ => break,
            }
        }
        out
    }

    /// A new connection whose handshake offers only the signature algorithms
    /// of `asked`.
    async fn key_type_probe(&self, address: IpAddr, sni: &str, asked: &[KeyType]) -> KeyTypeProbe {
        let r = KeyTypeProbe::new(asked.to_vec());
        let Some(cfg) = self
            .by_set
            .iter()
            .find(|(set, _)| set == asked)
            .map(|(_, c)| c.clone())
        else {
            return r;
        };
        let server_name = match server_name(sni) {
            Ok(n) => n,
            Err(f) => return r.failed(f),
        };
        let mut scratch = SmtpProbe::unprobed(address, self.cfg.port);
        // Injected plaintext was reported by the default offer; here it only
        // has to be kept out of TLS, which until_starttls does.
        let tcp = match self.until_starttls(&mut scratch).await {
            Ok((tcp, _)) => tcp,
            Err(f) => return r.failed(f),
        };
        let (out, chain) = self.handshake(cfg, server_name, tcp).await;
        match out {
            Ok(s) => {
                let mut r = KeyTypeProbe {
                    tls: Some(tls::tls_info(s.get_ref().1, sni)),
                    key_type: chain.first().and_then(|l| key_type_of_cert(&l.0)),
                    offered: !chain.is_empty(),
                    chain,
                    ..r
                };
                if r.chain.is_empty() {
                    r.failure = Some(fail(
                        SmtpPhase::Handshake,
                        SmtpFailureKind::Tls,
                        "the handshake completed without a certificate",
                    ));
                }
                self.quit(&mut Framed::new(s)).await;
                r
            }
            Err((f, _)) => r.failed(f),
        }
    }

    /// A new connection with a legacy ClientHello ([`legacy`]): reads the
    /// server's ServerHello and Certificate, then closes without finishing.
    async fn legacy_probe(&self, address: IpAddr, sni: &str, asked: &[KeyType]) -> KeyTypeProbe {
        let r = KeyTypeProbe::new(asked.to_vec());
        let mut scratch = SmtpProbe::unprobed(address, self.cfg.port);
        let mut tcp = match self.until_starttls(&mut scratch).await {
            Ok((tcp, _)) => tcp,
            Err(f) => return r.failed(f),
        };
        let mut random = [0u8; 32];
        if rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut random)
            .is_err()
        {
            return r.failed(fail(
                SmtpPhase::Handshake,
                SmtpFailureKind::Tls,
                "no random bytes for a ClientHello",
            ));
        }
        let limit = self.cfg.timeouts.handshake;
        let got = timeout(limit, legacy::hello(&mut tcp, sni, asked, &random)).await;
        // Never a completed handshake: close right after the certificates.
        let _ = timeout(
            self.cfg.timeouts.quit,
            tokio::io::AsyncWriteExt::shutdown(&mut tcp),
        )
        .await;
        match got {
            Err(_) => r.failed(fail(
                SmtpPhase::Handshake,
                SmtpFailureKind::Timeout,
                format!(
                    "no certificate within {} of the legacy ClientHello",
                    secs(limit)
                ),
            )),
            Ok(Err(why)) => r.failed(fail(SmtpPhase::Handshake, SmtpFailureKind::Tls, why)),
            Ok(Ok(flight)) => legacy_result(r, flight),
        }
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

/// What the default offer's outcome calls for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Further {
    Nothing,
    /// The handshake completed: ask for the other key types.
    KeyTypes,
    /// The server shares no version or suite with rustls: legacy hellos.
    Legacy,
}

fn server_name(sni: &str) -> Step<ServerName<'static>> {
    ServerName::try_from(sni.to_string()).map_err(|_| {
        fail(
            SmtpPhase::Connect,
            SmtpFailureKind::NotProbed,
            format!("{sni:?} is not a valid TLS server name"),
        )
    })
}

/// A legacy hello's answer as evidence: offered when the server sent a
/// certificate of a key type asked for (any, when none was named).
fn legacy_result(mut r: KeyTypeProbe, flight: legacy::ServerFlight) -> KeyTypeProbe {
    r.legacy = Some(LegacyHello {
        version: legacy::version_name(flight.version),
        cipher: legacy::cipher_name(flight.cipher),
    });
    r.key_type = flight.chain.first().and_then(|l| key_type_of_cert(l));
    let fits = r.asked.is_empty() || r.key_type.is_some_and(|k| r.asked.contains(&k));
    let failure = match (flight.chain.is_empty(), fits) {
        (true, _) => Some("the server sent no certificate (an anonymous suite)".to_string()),
        (false, false) => Some(tls::other_key_type(&r.asked, r.key_type)),
        (false, true) => None,
    };
    match failure {
        Some(why) => r.failed(fail(SmtpPhase::Handshake, SmtpFailureKind::Tls, why)),
        None => {
            r.chain = flight.chain.into_iter().map(Der).collect();
            r.offered = true;
            r
        }
    }
}

/// Every non-empty subset of `all`, each in the order of `all`.
fn subsets(all: &[KeyType]) -> Vec<Vec<KeyType>> {
    let n = all.len().min(8);
    (1..(1u32 << n))
        .map(|mask| {
            (0..n)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| all[i])
                .collect()
        })
        .collect()
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

/// Whether a failed default handshake may be one a legacy ClientHello gets
/// past: the server shares no version or suite with rustls (it said so with
/// an alert, chose a version rustls does not speak, or hung up on the hello).
fn legacy_may_help(e: &io::Error) -> bool {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(rustls::Error::AlertReceived(a)) => no_common_parameters(*a),
        Some(rustls::Error::PeerIncompatible(_)) => true,
        Some(_) => false,
        None => is_hangup(e),
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
    fn key_types_parse() {
        assert_eq!(KeyTypes::parse("all").unwrap(), KeyTypes::default());
        assert_eq!(KeyTypes::parse("negotiated").unwrap(), KeyTypes::Negotiated);
        assert_eq!(
            KeyTypes::parse("RSA, ecdsa,rsa").unwrap(),
            KeyTypes::Only(vec![KeyType::Rsa, KeyType::Ecdsa])
        );
        assert_eq!(
            KeyTypes::parse("rsa,ecdsa").unwrap().as_string(),
            "rsa,ecdsa"
        );
        assert_eq!(KeyTypes::default().as_string(), "ecdsa,rsa,ed25519");
        for bad in ["", "dsa", "rsa,,ecdsa", "all,rsa"] {
            assert!(KeyTypes::parse(bad).is_err(), "{bad:?}");
        }
        assert!(KeyTypes::Negotiated.families().is_empty());
    }

    #[test]
    fn only_protocol_refusals_call_for_a_legacy_hello() {
        let alert = |a| io::Error::new(io::ErrorKind::InvalidData, rustls::Error::AlertReceived(a));
        assert!(legacy_may_help(&alert(
            rustls::AlertDescription::ProtocolVersion
        )));
        assert!(legacy_may_help(&alert(
            rustls::AlertDescription::HandshakeFailure
        )));
        assert!(!legacy_may_help(&alert(
            rustls::AlertDescription::BadCertificate
        )));
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert!(legacy_may_help(&eof));
        let other = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature),
        );
        assert!(!legacy_may_help(&other));
    }

    #[test]
    fn a_legacy_answer_of_another_key_type_is_not_offered() {
        let rsa = include_bytes!("../../testdata/certs/leaf-rsa.der").to_vec();
        let flight = |chain: Vec<Vec<u8>>| legacy::ServerFlight {
            version: 0x0301,
            cipher: 0x002f,
            chain,
        };
        let r = legacy_result(
            KeyTypeProbe::new(vec![KeyType::Ecdsa, KeyType::Ed25519]),
            flight(vec![rsa.clone()]),
        );
        assert!(
            !r.offered && r.chain.is_empty() && r.failure.is_some(),
            "{r:?}"
        );
        assert_eq!(r.key_type, Some(KeyType::Rsa), "what the server presented");
        let r = legacy_result(KeyTypeProbe::new(vec![]), flight(vec![rsa.clone()]));
        assert!(r.offered && r.presented().is_some(), "{r:?}");
        assert_eq!(r.legacy.as_ref().unwrap().version, "TLSv1.0");
        let r = legacy_result(KeyTypeProbe::new(vec![]), flight(vec![]));
        assert!(
            !r.offered && r.failure.is_some(),
            "an anonymous suite: {r:?}"
        );
        assert_eq!(subsets(&KeyType::ALL).len(), 7);
        assert_eq!(subsets(&[KeyType::Rsa]), vec![vec![KeyType::Rsa]]);
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
