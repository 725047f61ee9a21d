//! A legacy ClientHello for servers that rustls cannot finish a handshake
//! with (TLS 1.0/1.1 only, or only CBC or RSA key-exchange suites).
//!
//! In TLS 1.2 and below the server's Certificate message travels in clear
//! right after its ServerHello, so the chain such a server presents can be
//! read without a handshake: send a ClientHello it accepts, read the
//! ServerHello and Certificate records, close. Nothing here completes a
//! handshake, and nothing proves that the server holds the certificate's key:
//! the evidence says so ([`crate::core::evidence::LegacyHello`]).
//!
//! The records and handshake messages are parsed by `tls-parser`; every read
//! is bounded in time (by the caller) and in size ([`MAX_FLIGHT`]).

use tls_parser::{
    Err as NomErr, TlsCipherSuite, TlsMessage, TlsMessageHandshake, TlsRecordType,
    parse_tls_message_alert, parse_tls_message_handshake, parse_tls_raw_record,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::evidence::KeyType;

/// The most bytes read from a server before its Certificate message: a
/// ServerHello plus a chain of a few certificates is 2-10 KiB; 128 KiB leaves
/// room for the largest real chains and bounds a hostile server.
pub const MAX_FLIGHT: usize = 128 * 1024;

/// What the server chose and sent, up to its Certificate message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFlight {
    pub version: u16,
    pub cipher: u16,
    /// DER certificates as sent, leaf first (empty for an anonymous suite).
    pub chain: Vec<Vec<u8>>,
}

/// How far the bytes received so far go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A record or handshake message is cut off: read more.
    More,
    Done(ServerFlight),
    /// The server refused or broke the protocol (the reason in words).
    Failed(String),
}

/// ECDHE-ECDSA suites, strongest first; also the suites of Ed25519 keys in
/// TLS 1.2 (RFC 8422 §5.1.1).
const ECDSA_SUITES: &[u16] = &[
    0xc02c, 0xc02b, 0xcca9, 0xc024, 0xc023, 0xc00a, 0xc009, 0xc008, 0xc007,
];
/// Suites authenticated by an RSA key: ECDHE, DHE and static RSA key exchange.
const RSA_SUITES: &[u16] = &[
    0xc030, 0xc02f, 0xcca8, 0x009f, 0x009e, 0xc028, 0xc027, 0xc014, 0xc013, 0x006b, 0x0067, 0x0039,
    0x0033, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0xc012, 0x0016, 0x000a, 0xc011, 0x0005,
    0x0004,
];
/// TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746): some servers want it.
const SCSV: u16 = 0x00ff;

const ECDSA_SIGALGS: &[u16] = &[0x0403, 0x0503, 0x0603, 0x0203];
const RSA_SIGALGS: &[u16] = &[0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0201];
const ED25519_SIGALGS: &[u16] = &[0x0807];

/// The suites and signature algorithms that select a certificate of one of
/// `key_types` (every one for an empty list). In TLS 1.0/1.1 only the suite
/// selects it.
fn offer(key_types: &[KeyType]) -> (Vec<u16>, Vec<u16>) {
    let all = key_types.is_empty();
    let has = |k| all || key_types.contains(&k);
    let mut suites = Vec::new();
    let mut sigalgs = Vec::new();
    if has(KeyType::Ecdsa) || has(KeyType::Ed25519) {
        suites.extend_from_slice(ECDSA_SUITES);
    }
    if has(KeyType::Rsa) {
        suites.extend_from_slice(RSA_SUITES);
    }
    for (k, algs) in [
        (KeyType::Ecdsa, ECDSA_SIGALGS),
        (KeyType::Ed25519, ED25519_SIGALGS),
        (KeyType::Rsa, RSA_SIGALGS),
    ] {
        if has(k) {
            sigalgs.extend_from_slice(algs);
        }
    }
    suites.push(SCSV);
    (suites, sigalgs)
}

fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// `len(u16) || data`.
fn vec16(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

/// `len(u8) || data`.
fn vec8(data: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(data.len()).unwrap_or(u8::MAX)];
    out.extend_from_slice(data);
    out
}

fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend(vec16(body));
    out
}

/// The ClientHello record: TLS 1.0 to 1.2, the legacy suites of `key_types`
/// (all for an empty list), SNI (when `sni` is a name, not an address), the
/// usual curves, no session.
pub fn client_hello(sni: &str, key_types: &[KeyType], random: &[u8; 32]) -> Vec<u8> {
    let (suites, sigalgs) = offer(key_types);
    let mut ext = Vec::new();
    if !sni.is_empty() && sni.parse::<std::net::IpAddr>().is_err() && sni.len() < 256 {
        let mut entry = vec![0u8]; // host_name
        entry.extend(vec16(sni.as_bytes()));
        ext.extend(extension(0x0000, &vec16(&entry)));
    }
    // supported_groups: x25519, secp256r1, secp384r1, secp521r1, ffdhe2048
    ext.extend(extension(
        0x000a,
        &vec16(&u16s(&[0x001d, 0x0017, 0x0018, 0x0019, 0x0100])),
    ));
    ext.extend(extension(0x000b, &vec8(&[0]))); // ec_point_formats: uncompressed
    ext.extend(extension(0x000d, &vec16(&u16s(&sigalgs))));
    let mut body = vec![0x03, 0x03]; // client_version: TLS 1.2, the highest offered
    body.extend_from_slice(random);
    body.push(0); // no session id
    body.extend(vec16(&u16s(&suites)));
    body.extend([1, 0]); // compression: null only
    body.extend(vec16(&ext));
    let mut hs = vec![1u8]; // ClientHello
    let len = u32::try_from(body.len()).unwrap_or(0).to_be_bytes();
    hs.extend_from_slice(&len[1..]);
    hs.extend(body);
    // Record layer version 1.0: what old servers expect in the first record.
    let mut record = vec![22, 0x03, 0x01];
    record.extend(vec16(&hs));
    record
}

/// Parses the server's first flight from everything received so far.
/// Pure and total: any input gives `More`, `Done` or `Failed`.
pub fn parse_flight(buf: &[u8]) -> Progress {
    let mut handshake = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if !plausible_header(rest) {
            return Progress::Failed(format!(
                "the server's answer is not a TLS record ({})",
                crate::smtp::reply::excerpt(&rest[..rest.len().min(32)])
            ));
        }
        let record = match parse_tls_raw_record(rest) {
            Ok((next, record)) => {
                rest = next;
                record
            }
            Err(NomErr::Incomplete(_)) => return Progress::More,
            Err(_) => return Progress::Failed("the server sent an oversized TLS record".into()),
        };
        match record.hdr.record_type {
            TlsRecordType::Handshake => handshake.extend_from_slice(record.data),
            TlsRecordType::Alert => return Progress::Failed(alert(record.data)),
            other => {
                return Progress::Failed(format!(
                    "the server sent a {other:?} record before its certificate"
                ));
            }
        }
        // Whatever follows the Certificate message is not read.
        match messages(&handshake) {
            Progress::More => {}
            done => return done,
        }
    }
    Progress::More
}

/// Whether the bytes (so far) can start a TLS record: a known content type
/// and major version 3. tls-parser reads any five bytes as a header.
fn plausible_header(b: &[u8]) -> bool {
    let kind_ok = (20..=23).contains(&b[0]);
    let version_ok = b.get(1).is_none_or(|v| *v == 3);
    kind_ok && version_ok
}

/// The alert a server answered with, in words.
fn alert(data: &[u8]) -> String {
    match parse_tls_message_alert(data) {
        Ok((_, TlsMessage::Alert(a))) => format!("the server answered with the alert {}", a.code),
        _ => "the server answered with a malformed alert".to_string(),
    }
}

/// Walks the handshake messages: ServerHello, then Certificate.
fn messages(mut hs: &[u8]) -> Progress {
    let mut hello: Option<(u16, u16)> = None;
    while !hs.is_empty() {
        let msg = match parse_tls_message_handshake(hs) {
            Ok((next, TlsMessage::Handshake(m))) => {
                hs = next;
                m
            }
            Err(NomErr::Incomplete(_)) => return Progress::More,
            _ => return Progress::Failed("the server sent a malformed handshake message".into()),
        };
        match (msg, hello) {
            (TlsMessageHandshake::ServerHello(sh), None) => {
                hello = Some((sh.version.0, sh.cipher.0));
            }
            (TlsMessageHandshake::Certificate(c), Some((version, cipher))) => {
                return Progress::Done(ServerFlight {
                    version,
                    cipher,
                    chain: c.cert_chain.iter().map(|r| r.data.to_vec()).collect(),
                });
            }
            (TlsMessageHandshake::ServerDone(_), Some((version, cipher)))
            | (TlsMessageHandshake::ServerKeyExchange(_), Some((version, cipher))) => {
                // An anonymous suite: no certificate comes.
                return Progress::Done(ServerFlight {
                    version,
                    cipher,
                    chain: Vec::new(),
                });
            }
            (m, _) => {
                return Progress::Failed(format!(
                    "unexpected handshake message from the server: {}",
                    message_name(&m)
                ));
            }
        }
    }
    Progress::More
}

fn message_name(m: &TlsMessageHandshake<'_>) -> &'static str {
    match m {
        TlsMessageHandshake::ServerHello(_) => "a second ServerHello",
        TlsMessageHandshake::Certificate(_) => "Certificate before ServerHello",
        TlsMessageHandshake::HelloRetryRequest(_) => "HelloRetryRequest (TLS 1.3)",
        TlsMessageHandshake::ServerHelloV13Draft18(_) => "a TLS 1.3 draft ServerHello",
        _ => "a message out of order",
    }
}

/// `TLSv1.0` .. `TLSv1.3`, `SSLv3`, or the number.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        v => format!("0x{v:04x}"),
    }
}

/// The IANA name of a cipher suite, or its number.
pub fn cipher_name(id: u16) -> String {
    TlsCipherSuite::from_id(id).map_or_else(|| format!("0x{id:04x}"), |s| s.name.to_string())
}

/// Sends the ClientHello on a stream positioned right after the STARTTLS 220
/// and reads until the server's Certificate message (or a refusal), at most
/// [`MAX_FLIGHT`] bytes. The caller bounds the time.
pub async fn hello<S>(
    stream: &mut S,
    sni: &str,
    key_types: &[KeyType],
    random: &[u8; 32],
) -> Result<ServerFlight, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| format!("connection error during the legacy hello: {e}");
    stream
        .write_all(&client_hello(sni, key_types, random))
        .await
        .map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(match parse_flight(&buf) {
                Progress::Failed(why) => why,
                _ => "the server closed the connection after the legacy ClientHello".into(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse_flight(&buf) {
            Progress::Done(f) => return Ok(f),
            Progress::Failed(why) => return Err(why),
            Progress::More if buf.len() >= MAX_FLIGHT => {
                return Err(format!(
                    "no certificate within the first {} bytes from the server",
                    MAX_FLIGHT
                ));
            }
            Progress::More => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 1];
        r.extend(vec16(body));
        r
    }

    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut h = vec![kind];
        h.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        h.extend_from_slice(body);
        h
    }

    fn server_hello(version: u16, cipher: u16) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend([7u8; 32]);
        b.push(0);
        b.extend(cipher.to_be_bytes());
        b.push(0);
        handshake(2, &b)
    }

    fn certificate(certs: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for c in certs {
            list.extend_from_slice(&u32::try_from(c.len()).unwrap().to_be_bytes()[1..]);
            list.extend_from_slice(c);
        }
        let mut b = u32::try_from(list.len()).unwrap().to_be_bytes()[1..].to_vec();
        b.extend(list);
        handshake(11, &b)
    }

    fn leaf() -> Vec<u8> {
        include_bytes!("../../testdata/certs/leaf-rsa.der").to_vec()
    }

    #[test]
    fn client_hello_is_a_tls_record_that_tls_parser_reads_back() {
        for kt in [None, Some(KeyType::Rsa), Some(KeyType::Ecdsa)] {
            let r = client_hello("mx.example", kt.as_slice(), &[1; 32]);
            let (rest, rec) = parse_tls_raw_record(&r).unwrap();
            assert!(rest.is_empty());
            let (_, msg) = parse_tls_message_handshake(rec.data).unwrap();
            let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = msg else {
                panic!("not a ClientHello");
            };
            assert_eq!(ch.version.0, 0x0303);
            let rsa = ch.ciphers.iter().any(|c| c.0 == 0x002f);
            let ecdsa = ch.ciphers.iter().any(|c| c.0 == 0xc009);
            assert_eq!(rsa, kt != Some(KeyType::Ecdsa), "{kt:?}");
            assert_eq!(ecdsa, kt != Some(KeyType::Rsa), "{kt:?}");
        }
        // An address literal is not sent as SNI.
        let with = client_hello("mx.example", &[], &[0; 32]);
        let without = client_hello("192.0.2.1", &[], &[0; 32]);
        assert!(without.len() < with.len());
    }

    #[test]
    fn flight_split_across_records_and_reads() {
        let cert = leaf();
        let hs = [
            server_hello(0x0301, 0xc014),
            certificate(&[&cert, &cert, &cert]),
        ]
        .concat();
        // Fragment the handshake bytes over records of 1000 bytes.
        let stream: Vec<u8> = hs.chunks(1000).flat_map(|c| record(22, c)).collect();
        assert!(stream.len() > 2000);
        for cut in [0, 5, 100, 1004, 1500, stream.len() - 1] {
            assert_eq!(parse_flight(&stream[..cut]), Progress::More, "cut at {cut}");
        }
        let Progress::Done(f) = parse_flight(&stream) else {
            panic!("{:?}", parse_flight(&stream));
        };
        assert_eq!((f.version, f.cipher), (0x0301, 0xc014));
        assert_eq!(f.chain, vec![cert.clone(), cert.clone(), cert]);
        assert_eq!(version_name(f.version), "TLSv1.0");
        assert_eq!(cipher_name(f.cipher), "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA");
    }

    #[test]
    fn refusals_and_garbage_are_failures() {
        let alert = record(21, &[2, 40]);
        assert!(
            matches!(parse_flight(&alert), Progress::Failed(w) if w.contains("HandshakeFailure")),
            "{:?}",
            parse_flight(&alert)
        );
        assert!(matches!(
            parse_flight(b"220 not tls at all\r\n"),
            Progress::Failed(_)
        ));
        let early_cert = record(22, &certificate(&[&leaf()]));
        assert!(matches!(parse_flight(&early_cert), Progress::Failed(_)));
        let ccs = record(20, &[1]);
        assert!(matches!(parse_flight(&ccs), Progress::Failed(_)));
    }

    #[tokio::test]
    async fn hello_reads_until_the_certificate_and_no_further() {
        let cert = leaf();
        let hs = [server_hello(0x0303, 0x002f), certificate(&[&cert])].concat();
        let mut answer = record(22, &hs);
        answer.extend(record(23, b"never read")); // anything after is ignored
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let serve = tokio::spawn(async move {
            let mut first = [0u8; 5];
            server.read_exact(&mut first).await.unwrap();
            server.write_all(&answer).await.unwrap();
            first[0]
        });
        let got = hello(&mut client, "mx.example", &[KeyType::Rsa], &[3; 32]).await;
        assert_eq!(serve.await.unwrap(), 22, "a handshake record comes first");
        let f = got.unwrap();
        assert_eq!(cipher_name(f.cipher), "TLS_RSA_WITH_AES_128_CBC_SHA");
        assert_eq!(f.chain.len(), 1);
    }

    #[tokio::test]
    async fn an_endless_flight_hits_the_size_cap() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let serve = tokio::spawn(async move {
            let mut first = [0u8; 5];
            let _ = server.read_exact(&mut first).await;
            // A ServerHello, then handshake records that never complete a message.
            let _ = server
                .write_all(&record(22, &server_hello(0x0301, 0x002f)))
                .await;
            let mut huge = vec![11u8, 0xff, 0xff, 0xff];
            huge.resize(16_000, 0);
            for _ in 0..20 {
                if server.write_all(&record(22, &huge)).await.is_err() {
                    break;
                }
                huge = vec![0u8; 16_000];
            }
        });
        let got = hello(&mut client, "mx.example", &[], &[0; 32]).await;
        drop(client);
        serve.await.unwrap();
        assert!(got.unwrap_err().contains("bytes from the server"));
    }
}
