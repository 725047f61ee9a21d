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

/// Sends `name qtype` to `server`: UDP first, TCP when TC=1.
pub async fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
    flags: Flags,
    timeout: Duration,
) -> Result<DnsResponse, Failure> {
    let msg = build_query(name, qtype, flags);
    let wire = msg
        .to_vec()
        .map_err(|e| failure(FailureKind::Other, format!("cannot encode the query: {e}")))?;
    let id = msg.metadata.id;
    match udp(server, &wire, id, name, qtype, timeout).await? {
        Some(response) => Ok(response),
        None => tcp(server, &wire, id, name, qtype, timeout).await,
    }
}

fn io_failure(e: &std::io::Error, what: &str) -> Failure {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::TimedOut => failure(FailureKind::Timeout, format!("{what}: timed out")),
        _ => failure(FailureKind::Network, format!("{what}: {e}")),
    }
}

/// `Ok(None)` means "truncated, ask again over TCP".
async fn udp(
    server: SocketAddr,
    wire: &[u8],
    id: u16,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Result<Option<DnsResponse>, Failure> {
    let deadline = Instant::now() + timeout;
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
    let mut buf = vec![0u8; 65_535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, sock.recv(&mut buf)).await {
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
        if n < 12 || u16::from_be_bytes([data[0], data[1]]) != id || data[2] & 0x80 == 0 {
            // Not an answer to this query (stray or spoofed): keep waiting.
            continue;
        }
        if data[2] & 0x02 != 0 {
            return Ok(None);
        }
        return decode(data.to_vec(), id, name, qtype, server).map(Some);
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
    let work = async {
        let mut s = TcpStream::connect(server)
            .await
            .map_err(|e| io_failure(&e, &format!("TCP connect to {server}")))?;
        let _ = s.set_nodelay(true);
        let mut out = Vec::with_capacity(wire.len() + 2);
        out.extend_from_slice(&(wire.len() as u16).to_be_bytes());
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
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.map_err(|e| {
            failure(
                FailureKind::Malformed,
                format!("TCP answer from {server} shorter than announced: {e}"),
            )
        })?;
        decode(body, id, name, qtype, server)
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

/// Checks that a decoded message answers the question that was asked.
pub fn check_response(
    resp: &Message,
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Result<(), String> {
    if resp.metadata.id != id {
        return Err(format!(
            "message id {} does not match {id}",
            resp.metadata.id
        ));
    }
    match resp.queries.first() {
        Some(q) if q.name() == name && q.query_type() == qtype => {}
        Some(q) => {
            return Err(format!(
                "answers {} {} instead of {name} {qtype}",
                q.name(),
                q.query_type()
            ));
        }
        // FORMERR/NOTIMP answers may carry no question; anything else must.
        None if resp.metadata.response_code.low() != 0 => {}
        None => return Err("no question section".into()),
    }
    let count = resp.answers.len() + resp.authorities.len() + resp.additionals.len();
    if count > MAX_RECORDS {
        return Err(format!("implausibly large answer ({count} records)"));
    }
    Ok(())
}
