//! SMTP reply framing (RFC 5321 §4.2) with hard caps, so that whatever a peer
//! sends, the memory held for it stays bounded.
//!
//! The reader owns its buffer instead of wrapping the stream in a
//! `BufReader`, so that at STARTTLS the bytes read but not yet consumed can be
//! inspected (and rejected) before the raw stream is handed to TLS.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::evidence::Reply;

/// Longest text kept per reply line in the evidence (RFC 5321 §4.5.3.1.5 allows 512
/// octets per reply line including the code and CRLF).
const STORED_LINE_CHARS: usize = 510;
/// How much is read from the socket at a time.
const CHUNK: usize = 4096;

/// Caps applied to every reply.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest line, CRLF included.
    pub max_line: usize,
    /// Most lines in one (multi-line) reply.
    pub max_lines: usize,
    /// Most bytes in one reply, CRLFs included.
    pub max_reply_bytes: usize,
}

/// Why no reply could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection; `pending` bytes of an incomplete line were received.
    Closed {
        pending: usize,
    },
    Io(io::Error),
    LineTooLong {
        max: usize,
    },
    TooManyLines {
        max: usize,
    },
    TooManyBytes {
        max: usize,
    },
    /// A line that is not an SMTP reply line (an SSH or HTTP banner, binary data).
    NotSmtp {
        excerpt: String,
    },
    /// The code changed in the middle of a multi-line reply.
    CodeChanged {
        first: u16,
        then: u16,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed { pending: 0 } => f.write_str("the server closed the connection"),
            ReadError::Closed { pending } => write!(
                f,
                "the server closed the connection in the middle of a line ({pending} bytes)"
            ),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::LineTooLong { max } => {
                write!(f, "a reply line is longer than {max} bytes")
            }
            ReadError::TooManyLines { max } => {
                write!(f, "a multi-line reply has more than {max} lines")
            }
            ReadError::TooManyBytes { max } => {
                write!(f, "a reply is longer than {max} bytes")
            }
            ReadError::NotSmtp { excerpt } => write!(f, "not an SMTP reply: {excerpt}"),
            ReadError::CodeChanged { first, then } => write!(
                f,
                "the reply code changed from {first} to {then} within a multi-line reply"
            ),
        }
    }
}

/// A stream plus the bytes read from it but not consumed yet.
pub struct Framed<S> {
    io: S,
    buf: Vec<u8>,
    /// Bytes received in total, for diagnostics (a tarpit shows as a few bytes).
    received: u64,
}

impl<S> Framed<S> {
    pub fn new(io: S) -> Self {
        Framed {
            io,
            buf: Vec::with_capacity(CHUNK),
            received: 0,
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// The stream and the bytes received but not consumed.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.io, self.buf)
    }
}

impl<S: AsyncRead + Unpin> Framed<S> {
    /// One line, up to and including `\n`. Memory held: at most `max_line + CHUNK` bytes.
    async fn read_line(&mut self, max_line: usize) -> Result<Vec<u8>, ReadError> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                if end > max_line {
                    return Err(ReadError::LineTooLong { max: max_line });
                }
                return Ok(self.buf.drain(..end).collect());
            }
            scanned = self.buf.len();
            if !plausible_start(&self.buf) {
                // Binary data or another protocol without a line end: no need to wait.
                return Err(ReadError::NotSmtp {
                    excerpt: excerpt(&self.buf),
                });
            }
            if scanned >= max_line {
                return Err(ReadError::LineTooLong { max: max_line });
            }
            let mut chunk = [0_u8; CHUNK];
            let n = self.io.read(&mut chunk).await.map_err(ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Closed { pending: scanned });
            }
            self.received += n as u64;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One complete (possibly multi-line) reply.
    pub async fn read_reply(&mut self, limits: &Limits) -> Result<Reply, ReadError> {
        let mut code = None;
        let mut lines = Vec::new();
        let mut bytes = 0_usize;
        loop {
            let raw = self.read_line(limits.max_line).await?;
            bytes += raw.len();
            if bytes > limits.max_reply_bytes {
                return Err(ReadError::TooManyBytes {
                    max: limits.max_reply_bytes,
                });
            }
            let line = parse_line(&raw)?;
            match code {
                None => code = Some(line.code),
                Some(first) if first != line.code => {
                    return Err(ReadError::CodeChanged {
                        first,
                        then: line.code,
                    });
                }
                Some(_) => {}
            }
            if lines.len() >= limits.max_lines {
                return Err(ReadError::TooManyLines {
                    max: limits.max_lines,
                });
            }
            lines.push(line.text);
            if line.last {
                return Ok(Reply {
                    code: line.code,
                    lines,
                });
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Framed<S> {
    /// Sends one command line; `cmd` is without CRLF.
    pub async fn send(&mut self, cmd: &str) -> io::Result<()> {
        let mut line = Vec::with_capacity(cmd.len() + 2);
        line.extend_from_slice(cmd.as_bytes());
        line.extend_from_slice(b"\r\n");
        self.io.write_all(&line).await?;
        self.io.flush().await
    }

    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }
}

struct Line {
    code: u16,
    last: bool,
    text: String,
}

/// `250-text`, `250 text` or `250`, with CRLF or a bare LF.
fn parse_line(raw: &[u8]) -> Result<Line, ReadError> {
    let body = raw.strip_suffix(b"\n").unwrap_or(raw);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let not_smtp = || ReadError::NotSmtp {
        excerpt: excerpt(body),
    };
    if body.len() < 3 || !body[..3].iter().all(u8::is_ascii_digit) {
        return Err(not_smtp());
    }
    // RFC 5321 §4.2: first digit 2-5, second 0-5.
    if !(b'2'..=b'5').contains(&body[0]) || !(b'0'..=b'5').contains(&body[1]) {
        return Err(not_smtp());
    }
    let code = body[..3]
        .iter()
        .fold(0_u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (last, text) = match body.get(3) {
        None => (true, &body[3..]),
        Some(b' ') => (true, &body[4..]),
        Some(b'-') => (false, &body[4..]),
        Some(_) => return Err(not_smtp()),
    };
    Ok(Line {
        code,
        last,
        text: clean_text(text),
    })
}

/// Whether the start of an incomplete line can still become a reply line
/// (`[2-5][0-5][0-9]` then space, `-` or the line end).
fn plausible_start(partial: &[u8]) -> bool {
    partial.iter().take(4).enumerate().all(|(i, b)| match i {
        0 => (b'2'..=b'5').contains(b),
        1 => (b'0'..=b'5').contains(b),
        2 => b.is_ascii_digit(),
        _ => matches!(b, b' ' | b'-' | b'\r'),
    })
}

/// Reply text as stored in the evidence: lossy UTF-8, control characters
/// replaced, trailing space removed, capped in length.
fn clean_text(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    let mut out: String = s
        .trim_end()
        .chars()
        .take(STORED_LINE_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if s.trim_end().chars().count() > STORED_LINE_CHARS {
        out.push('…');
    }
    out
}

/// A short, quoted, escaped sample of unexpected bytes for a failure message.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned();
    let more = if bytes.len() > MAX { "…" } else { "" };
    format!("{s:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_line: 100,
        max_lines: 5,
        max_reply_bytes: 300,
    };

    async fn replies(input: &[u8]) -> Vec<Result<Reply, String>> {
        let mut f = Framed::new(input);
        let mut out = Vec::new();
        loop {
            match f.read_reply(&LIMITS).await {
                Ok(r) => out.push(Ok(r)),
                Err(ReadError::Closed { pending: 0 }) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    fn reply(code: u16, lines: &[&str]) -> Result<Reply, String> {
        Ok(Reply {
            code,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[tokio::test]
    async fn multi_line_and_bare_lf() {
        let got = replies(b"220 mx ESMTP\r\n250-mx\r\n250-STARTTLS\n250 8BITMIME\r\n221\r\n").await;
        assert_eq!(
            got,
            vec![
                reply(220, &["mx ESMTP"]),
                reply(250, &["mx", "STARTTLS", "8BITMIME"]),
                reply(221, &[""]),
            ]
        );
    }

    #[tokio::test]
    async fn caps_and_garbage() {
        let long = [b"220 ".as_slice(), &[b'x'; 200], b"\r\n"].concat();
        assert!(
            replies(&long).await[0]
                .as_ref()
                .unwrap_err()
                .contains("longer than 100")
        );
        let no_newline = [b"220 ".as_slice(), &[b'x'; 10_000]].concat();
        assert!(
            replies(&no_newline).await[0]
                .as_ref()
                .unwrap_err()
                .contains("longer than 100")
        );
        let many = b"250-a\r\n".repeat(10);
        assert!(
            replies(&many).await[0]
                .as_ref()
                .unwrap_err()
                .contains("more than 5 lines")
        );
        let ssh = b"SSH-2.0-OpenSSH_9.2p1\r\n";
        assert_eq!(
            replies(ssh).await[0],
            Err("not an SMTP reply: \"SSH-2.0-OpenSSH_9.2p1\"".into())
        );
        for bad in [
            &b"2200 x\r\n"[..],
            b"220x\r\n",
            b"\r\n",
            b"199 x\r\n",
            b"260 x\r\n",
        ] {
            assert!(replies(bad).await[0].is_err(), "{bad:?}");
        }
        let tls_alert = b"\x15\x03\x03\x00\x02\x02\x28";
        assert!(
            replies(tls_alert).await[0]
                .as_ref()
                .unwrap_err()
                .starts_with("not an SMTP")
        );
        let changed = b"250-a\r\n251 b\r\n";
        assert!(
            replies(changed).await[0]
                .as_ref()
                .unwrap_err()
                .contains("250 to 251")
        );
        let ctl = b"220 a\x1b[31mb\r\n";
        assert_eq!(replies(ctl).await[0], reply(220, &["a\u{FFFD}[31mb"]));
    }

    #[tokio::test]
    async fn pending_bytes_stay_in_the_buffer() {
        let mut f = Framed::new(&b"220 ready\r\n\x16\x03\x01"[..]);
        assert_eq!(f.read_reply(&LIMITS).await.unwrap().code, 220);
        let (_, rest) = f.into_parts();
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn close_mid_line() {
        let got = replies(b"220 partial").await;
        assert_eq!(
            got,
            vec![Err(
                "the server closed the connection in the middle of a line (11 bytes)".into()
            )]
        );
    }
}
