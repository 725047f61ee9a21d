//! One DNS exchange with one server: UDP, then TCP when the answer is
//! truncated, with a deadline per transport. Every way this can go wrong is
//! returned as a [`Failure`] (never a panic): silence is a timeout, ICMP errors
//! are network errors, and anything that does not decode or does not answer
//! the question we asked is a malformed answer.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{DnsResponse, Edns, Message, Query};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::core::evidence::{Failure, FailureKind};

use super::outstanding::Outcome;

/// The EDNS payload size we advertise (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// An answer with more records than this is not plausible for the questions we ask.
pub const MAX_RECORDS: usize = 1000;

/// Header bits of one question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flags {
    pub rd: bool,
    pub cd: bool,
}

pub fn failure(kind: FailureKind, detail: impl Into<String>) -> Failure {
    Failure {
        kind,
        detail: detail.into(),
    }
}

/// Builds the query message: one question, EDNS with DO=1.
pub fn build_query(name: &Name, qtype: RecordType, flags: Flags) -> Message {
    let mut msg = Message::query();
    msg.add_query(Query::query(name.clone(), qtype));
    msg.metadata.recursion_desired = flags.rd;
    msg.metadata.checking_disabled = flags.cd;
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD).set_dnssec_ok(true);
    msg.edns = Some(edns);
    msg
}

/// How one question travels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP first, TCP when the answer is truncated (what resolvers do).
    #[default]
    Auto,
    /// UDP only: a truncated answer is returned as it is (TC=1), so that
    /// "the server answers this type" is told apart from "TCP works".
    Udp,
    /// TCP only (RFC 7766), to see whether the server answers over TCP.
    Tcp,
}

/// Sends `name qtype` to `server`: UDP first, TCP when TC=1.
pub async fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    flags: Flags,
    timeout: Duration,
) -> Result<DnsResponse, Failure> {
    exchange_over(server, name, qtype, flags, timeout, Transport::Auto).await
}

/// Sends `name qtype` to `server` over the given transport.
pub async fn exchange_over(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    flags: Flags,
    timeout: Duration,
    how: Transport,
) -> Result<DnsResponse, Failure> {
    exchange_with(server, name, qtype, flags, timeout, how, None).await
}

/// As [`exchange`], but a UDP question still unanswered after `resend` is
/// sent again (same ID, same source port), then again after twice as long,
/// until `timeout`. For authoritative servers, which nobody retries for us:
/// one lost datagram then costs about one `resend` instead of the whole
/// timeout. (A resolver retries upstream itself: it is not asked twice.)
pub async fn exchange_resending(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    flags: Flags,
    timeout: Duration,
    resend: Duration,
) -> Result<DnsResponse, Failure> {
    let how = Transport::Auto;
    exchange_with(server, name, qtype, flags, timeout, how, Some(resend)).await
}

async fn exchange_with(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    flags: Flags,
    timeout: Duration,
    how: Transport,
    resend: Option<Duration>,
) -> Result<DnsResponse, Failure> {
    let msg = build_query(name, qtype, flags);
    let wire = msg
        .to_vec()
        .map_err(|e| failure(FailureKind::Other, format!("cannot encode the query: {e}")))?;
    let id = msg.metadata.id;
    let slot = super::outstanding::enter(server.ip()).await;
    let _waiting = crate::collect::waiting::DNS.enter();
    let result = match how {
        Transport::Tcp => tcp(server, &wire, id, name, qtype, timeout).await,
        _ => match udp(server, &wire, id, timeout, resend).await {
            Ok((_, true)) if how == Transport::Auto => {
                tcp(server, &wire, id, name, qtype, timeout).await
            }
            Ok((data, _)) => decode(data, id, name, qtype, server),
            Err(f) => Err(f),
        },
    };
    slot.settle(match &result {
        Ok(_) => Outcome::Answered,
        Err(f) if f.kind == FailureKind::Timeout => Outcome::TimedOut,
        Err(_) => Outcome::Other,
    });
    result
}

fn io_failure(e: &std::io::Error, what: &str) -> Failure {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::TimedOut => failure(FailureKind::Timeout, format!("{what}: timed out")),
        _ => failure(FailureKind::Network, format!("{what}: {e}")),
    }
}

/// The answer's bytes, and whether it is truncated (TC=1); the question is
/// sent again after `resend`, then after doubling gaps, until `timeout`.
async fn udp(
    server: SocketAddr,
    wire: &[u8],
    id: u16,
    timeout: Duration,
    resend: Option<Duration>,
) -> Result<(Vec<u8>, bool), Failure> {
    let deadline = Instant::now() + timeout;
    let mut gap = resend;
    let mut resend_at = resend.map(|r| Instant::now() + r);
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local)
        .await
        .map_err(|e| io_failure(&e, "UDP bind"))?;
    sock.connect(server)
        .await
        .map_err(|e| io_failure(&e, "UDP connect"))?;
    sock.send(wire)
        .await
        .map_err(|e| io_failure(&e, "UDP send"))?;
    // Room for any datagram, but not zeroed per query (recv_buf fills spare
    // capacity): a scan sends hundreds of thousands of these.
    let mut buf: Vec<u8> = Vec::with_capacity(65_535);
    loop {
        buf.clear();
        let until = resend_at.filter(|t| *t < deadline).unwrap_or(deadline);
        let left = until.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, sock.recv_buf(&mut buf)).await {
            Err(_) if until < deadline => {
                sock.send(wire)
                    .await
                    .map_err(|e| io_failure(&e, "UDP send"))?;
                gap = gap.map(|g| g * 2);
                resend_at = gap.map(|g| Instant::now() + g);
                continue;
            }
            Err(_) => {
                return Err(failure(
                    FailureKind::Timeout,
                    format!("no answer from {server} within {} ms", timeout.as_millis()),
                ));
            }
            Ok(Err(e)) => return Err(io_failure(&e, &format!("UDP from {server}"))),
            Ok(Ok(n)) => n,
        };
        let data = &buf[..n];
        if n < 3 || u16::from_be_bytes([data[0], data[1]]) != id || data[2] & 0x80 == 0 {
            // Not an answer to this query (stray or spoofed): keep waiting.
            continue;
        }
        return Ok((data.to_vec(), data[2] & 0x02 != 0));
    }
}

async fn tcp(
    server: SocketAddr,
    wire: &[u8],
    id: u16,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Result<DnsResponse, Failure> {
    let body = tcp_bytes(server, wire, timeout, usize::from(u16::MAX)).await?;
    decode(body, id, name, qtype, server)
}

/// One length-prefixed exchange over TCP (RFC 7766 §8): sends `wire`,
/// returns the reply's bytes, all within `timeout`. A reply announced
/// longer than `max` bytes is refused unread.
pub async fn tcp_bytes(
    server: SocketAddr,
    wire: &[u8],
    timeout: Duration,
    max: usize,
) -> Result<Vec<u8>, Failure> {
    let len16 = u16::try_from(wire.len())
        .map_err(|_| failure(FailureKind::Other, "message longer than 65535 bytes"))?;
    let work = async {
        let mut s = TcpStream::connect(server)
            .await
            .map_err(|e| io_failure(&e, &format!("TCP connect to {server}")))?;
        let _ = s.set_nodelay(true);
        let mut out = Vec::with_capacity(wire.len() + 2);
        out.extend_from_slice(&len16.to_be_bytes());
        out.extend_from_slice(wire);
        s.write_all(&out)
            .await
            .map_err(|e| io_failure(&e, "TCP send"))?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.map_err(|e| {
            failure(
                FailureKind::Network,
                format!("TCP from {server}: closed before an answer ({e})"),
            )
        })?;
        let len = u16::from_be_bytes(len) as usize;
        if len < 12 {
            return Err(failure(
                FailureKind::Malformed,
                format!("TCP answer from {server} of {len} bytes"),
            ));
        }
        if len > max {
            return Err(failure(
                FailureKind::Malformed,
                format!("TCP answer from {server} of {len} bytes, more than the {max} expected"),
            ));
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.map_err(|e| {
            failure(
                FailureKind::Malformed,
                format!("TCP answer from {server} shorter than announced: {e}"),
            )
        })?;
        Ok(body)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(failure(
            FailureKind::Timeout,
            format!(
                "no TCP answer from {server} within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

fn decode(
    data: Vec<u8>,
    id: u16,
    name: &Name,
    qtype: RecordType,
    server: SocketAddr,
) -> Result<DnsResponse, Failure> {
    let n = data.len();
    let resp = DnsResponse::from_buffer(data).map_err(|e| {
        failure(
            FailureKind::Malformed,
            format!("undecodable answer from {server} ({n} bytes): {e}"),
        )
    })?;
    check_response(&resp, id, name, qtype).map_err(|why| {
        failure(
            FailureKind::Malformed,
            format!("answer from {server}: {why}"),
        )
    })?;
    Ok(resp)
}

/// Why an answer does not answer the question that was asked (a spoofed,
/// stale or broken reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("message id {got} does not match {sent}")]
    Id { got: u16, sent: u16 },
    #[error("answers {got} instead of {asked}")]
    Question { got: String, asked: String },
    #[error("no question section")]
    NoQuestion,
    #[error("implausibly large answer ({0} records)")]
    TooLarge(usize),
}

/// Checks that a decoded message answers the question that was asked.
pub fn check_response(
    resp: &Message,
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Result<(), Mismatch> {
    if resp.metadata.id != id {
        return Err(Mismatch::Id {
            got: resp.metadata.id,
            sent: id,
        });
    }
    match resp.queries.first() {
        Some(q) if q.name() == name && q.query_type() == qtype => {}
        Some(q) => {
            return Err(Mismatch::Question {
                got: format!("{} {}", q.name(), q.query_type()),
                asked: format!("{name} {qtype}"),
            });
        }
        // FORMERR/NOTIMP answers may carry no question; anything else must.
        None if resp.metadata.response_code.low() != 0 => {}
        None => return Err(Mismatch::NoQuestion),
    }
    let count = resp.answers.len() + resp.authorities.len() + resp.additionals.len();
    if count > MAX_RECORDS {
        return Err(Mismatch::TooLarge(count));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{MessageType, OpCode, ResponseCode};
    use hickory_resolver::proto::rr::rdata::A;
    use hickory_resolver::proto::rr::{RData, Record};
    use tokio::net::TcpListener;

    const T: Duration = Duration::from_millis(400);

    fn q() -> Name {
        Name::from_ascii("mx.example.").unwrap()
    }

    fn flags() -> Flags {
        Flags { rd: true, cd: true }
    }

    /// A UDP server that answers every query with `reply(query bytes)`
    /// (`None`: stay silent) and a TCP server on the same port.
    async fn fake(
        reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + Sync + 'static,
        tcp_reply: Option<Vec<u8>>,
    ) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
                for out in reply(&buf[..n]) {
                    let _ = sock.send_to(&out, peer).await;
                }
            }
        });
        if let Some(bytes) = tcp_reply {
            let l = TcpListener::bind(addr).await.unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&bytes).await;
                }
            });
        }
        addr
    }

    fn response_to(query: &[u8], edit: impl FnOnce(&mut Message)) -> Vec<u8> {
        let req = Message::from_vec(query).unwrap();
        let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        m.queries = req.queries.clone();
        m.metadata.response_code = ResponseCode::NoError;
        edit(&mut m);
        m.to_vec().unwrap()
    }

    #[tokio::test]
    async fn garbage_and_wrong_answers_are_malformed() {
        // The header promises 5 answers, the body has none.
        let addr = fake(
            |q| vec![vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 0xff]],
            None,
        )
        .await;
        let e = exchange(addr, &q(), RecordType::MX, flags(), T)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Malformed, "{e:?}");

        // A well-formed answer to another question.
        let addr = fake(
            |q| {
                vec![response_to(q, |m| {
                    m.queries[0].name = Name::from_ascii("other.example.").unwrap();
                })]
            },
            None,
        )
        .await;
        let e = exchange(addr, &q(), RecordType::MX, flags(), T)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Malformed);
        assert!(e.detail.contains("other.example"), "{}", e.detail);
    }

    #[tokio::test]
    async fn oversized_answers_are_malformed() {
        let addr = fake(
            |q| {
                vec![response_to(q, |m| {
                    for i in 0..=MAX_RECORDS as u32 {
                        m.add_answer(Record::from_rdata(
                            Name::from_ascii("mx.example.").unwrap(),
                            60,
                            RData::A(A::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))),
                        ));
                    }
                })]
            },
            None,
        )
        .await;
        let e = exchange(addr, &q(), RecordType::A, flags(), T)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Malformed);
        assert!(e.detail.contains("implausibly large"), "{}", e.detail);
    }

    /// TC=1 over UDP; over TCP a length prefix of 300 and 10 bytes, then close.
    async fn truncating_fake() -> SocketAddr {
        let mut tcp = vec![0x01, 0x2c];
        tcp.extend_from_slice(&[0u8; 10]);
        fake(
            |q| vec![response_to(q, |m| m.metadata.truncation = true)],
            Some(tcp),
        )
        .await
    }

    #[tokio::test]
    async fn truncation_goes_to_tcp_and_a_short_tcp_answer_is_malformed() {
        let addr = truncating_fake().await;
        let e = exchange(addr, &q(), RecordType::TXT, flags(), T)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Malformed, "{e:?}");
        assert!(e.detail.contains("TCP"), "{}", e.detail);
    }

    #[tokio::test]
    async fn udp_only_keeps_a_truncated_answer_and_tcp_only_skips_udp() {
        let addr = truncating_fake().await;
        let r = exchange_over(addr, &q(), RecordType::DNSKEY, flags(), T, Transport::Udp)
            .await
            .unwrap();
        assert!(r.metadata.truncation);
        let e = exchange_over(addr, &q(), RecordType::SOA, flags(), T, Transport::Tcp)
            .await
            .unwrap_err();
        assert!(e.detail.contains("TCP"), "{}", e.detail);
        // No TCP listener: the TCP question fails, the UDP one does not.
        let addr = fake(|q| vec![response_to(q, |_| {})], None).await;
        assert!(
            exchange_over(addr, &q(), RecordType::SOA, flags(), T, Transport::Udp)
                .await
                .is_ok()
        );
        let e = exchange_over(addr, &q(), RecordType::SOA, flags(), T, Transport::Tcp)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Network, "{e:?}");
    }

    #[tokio::test]
    async fn silence_and_stray_packets_time_out() {
        // One packet with a wrong id, then nothing.
        let addr = fake(
            |q| {
                let mut r = response_to(q, |_| {});
                r[0] ^= 0xff;
                vec![r]
            },
            None,
        )
        .await;
        let start = Instant::now();
        let e = exchange(addr, &q(), RecordType::MX, flags(), T)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::Timeout);
        assert!(start.elapsed() < T * 3);
    }

    #[tokio::test]
    async fn a_good_answer_passes() {
        let addr = fake(
            |q| {
                vec![response_to(q, |m| {
                    m.metadata.response_code = ResponseCode::NXDomain;
                })]
            },
            None,
        )
        .await;
        let r = exchange(addr, &q(), RecordType::MX, flags(), T)
            .await
            .unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    }

    /// Through the whole collector: a resolver that sends garbage gives a
    /// failed lookup with the reason, quickly, and no witness.
    #[tokio::test]
    async fn collector_turns_garbage_into_a_failed_lookup() {
        let addr = fake(|q| vec![vec![q[0], q[1], 0x81, 0x80, 0, 1, 0, 9]], None).await;
        let c = crate::dns::DnsCollector::new(crate::dns::DnsConfig {
            resolvers: vec![addr],
            timeout: T,
            attempts: 2,
            ..Default::default()
        })
        .await
        .unwrap();
        let start = Instant::now();
        let mx = c.mx("example.org").await;
        assert_eq!(mx.meta.outcome, crate::core::evidence::Outcome::Failed);
        assert_eq!(
            mx.meta.failure.as_ref().unwrap().kind,
            FailureKind::Malformed
        );
        assert_eq!(
            mx.meta.dnssec,
            crate::core::dnssec::DnssecStatus::Indeterminate
        );
        assert!(mx.meta.witness.is_none());
        assert!(start.elapsed() < Duration::from_secs(2));
        let ev = c.collect("example.org").await;
        assert!(ev.hosts.is_empty() && ev.chain.is_empty());
    }
}
