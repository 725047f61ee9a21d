//! Input lines: one domain per line, `#` comments (whole line, or after
//! whitespace), blank lines skipped. Lines are read with a length cap, so a
//! file of binary garbage or one endless line costs bounded memory; every
//! other line becomes a domain (normalised to A-labels) or an error row.

use std::io::{self, BufRead};

use crate::domain::normalize_domain;

/// Longest line kept, in bytes. A domain name has at most 253 characters
/// (an IDN in UTF-8 can be longer before conversion); the rest of a longer
/// line is read and dropped, and the line becomes an error row.
pub const MAX_LINE: usize = 1024;
/// Characters of a bad line shown in its error row.
const SHOWN: usize = 200;

/// One physical line, with at most [`MAX_LINE`] bytes kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    /// 1-based line number.
    pub no: u64,
    pub bytes: Vec<u8>,
    /// The line was longer than [`MAX_LINE`].
    pub truncated: bool,
    /// Byte offset just after the line (for progress).
    pub end: u64,
}

/// What a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Blank or comment.
    Skip,
    /// A normalised domain name.
    Domain(String),
    /// Not a domain: shown as typed (shortened), with the reason.
    Invalid { input: String, error: String },
}

/// Reads lines with a length cap (LF or CRLF; a last line without LF counts).
pub struct LineReader<R> {
    r: R,
    no: u64,
    offset: u64,
    done: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(r: R) -> Self {
        LineReader {
            r,
            no: 0,
            offset: 0,
            done: false,
        }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        if self.done {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        let mut truncated = false;
        let mut seen_any = false;
        loop {
            let avail = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                self.done = true;
                if !seen_any {
                    return Ok(None);
                }
                break;
            }
            seen_any = true;
            let (chunk, used, eol) = match memchr(b'\n', avail) {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            let room = MAX_LINE.saturating_sub(bytes.len());
            if chunk.len() > room {
                truncated = true;
            }
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.r.consume(used);
            self.offset += used as u64;
            if eol {
                break;
            }
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        self.no += 1;
        Ok(Some(RawLine {
            no: self.no,
            bytes,
            truncated,
            end: self.offset,
        }))
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// Shortens text for an error row; control characters are kept (every
/// output format escapes them).
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(SHOWN).collect();
    if s.chars().count() > SHOWN {
        out.push('…');
    }
    out
}

/// Classifies one line.
pub fn classify(raw: &RawLine) -> Line {
    let mut bytes: &[u8] = &raw.bytes;
    if raw.no == 1 {
        bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            return Line::Invalid {
                input: shown(&String::from_utf8_lossy(bytes)),
                error: "not UTF-8 text".into(),
            };
        }
    };
    if raw.truncated {
        return Line::Invalid {
            input: shown(text),
            error: format!("line longer than {MAX_LINE} bytes: not a domain name"),
        };
    }
    let content = strip_comment(text).trim();
    if content.is_empty() {
        return Line::Skip;
    }
    match normalize_domain(content) {
        Ok(d) => Line::Domain(d),
        Err(e) => Line::Invalid {
            input: shown(content),
            error: e.to_string(),
        },
    }
}

/// Drops a `#` comment that starts the line or follows whitespace.
fn strip_comment(s: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in s.char_indices() {
        if c == '#' && prev_space {
            return &s[..i];
        }
        prev_space = c.is_whitespace();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<RawLine> {
        let mut r = LineReader::new(io::BufReader::with_capacity(7, input));
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    fn kinds(input: &[u8]) -> Vec<Line> {
        lines(input).iter().map(classify).collect()
    }

    #[test]
    fn lines_numbers_and_offsets() {
        let l = lines(b"a.example\r\n\nb.example");
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].bytes, b"a.example");
        assert_eq!((l[0].no, l[0].end), (1, 11));
        assert_eq!((l[1].no, l[1].bytes.len()), (2, 0));
        assert_eq!((l[2].no, l[2].end), (3, 21));
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\n").len(), 1);
    }

    #[test]
    fn long_lines_are_capped_and_become_errors() {
        let mut input = vec![b'a'; 1_000_000];
        input.extend_from_slice(b"\nok.example\n");
        let l = lines(&input);
        assert_eq!(l.len(), 2);
        assert!(l[0].truncated);
        assert_eq!(l[0].bytes.len(), MAX_LINE);
        match classify(&l[0]) {
            Line::Invalid { input, error } => {
                assert!(input.chars().count() <= SHOWN + 1);
                assert!(error.contains("longer than"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(classify(&l[1]), Line::Domain("ok.example".into()));
    }

    #[test]
    fn comments_blanks_idn_and_garbage() {
        let k = kinds(
            "\u{feff}# list\n\n   \nExample.ORG.\nbücher.example  # shop\nfoo#bar.example\n\
             https://x.example/\n\u{0}\u{1}\u{2}\n"
                .as_bytes(),
        );
        assert_eq!(k[0], Line::Skip);
        assert_eq!(k[1], Line::Skip);
        assert_eq!(k[2], Line::Skip);
        assert_eq!(k[3], Line::Domain("example.org".into()));
        assert_eq!(k[4], Line::Domain("xn--bcher-kva.example".into()));
        assert!(matches!(&k[5], Line::Invalid { .. }), "{:?}", k[5]);
        assert!(
            matches!(&k[6], Line::Invalid { error, .. } if error.contains("URL")),
            "{:?}",
            k[6]
        );
        assert!(matches!(&k[7], Line::Invalid { .. }));
        let k = kinds(b"\xff\xfe\x00garbage\n\xc3(\n");
        for x in &k {
            assert!(
                matches!(x, Line::Invalid { error, .. } if error == "not UTF-8 text"),
                "{x:?}"
            );
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut input = Vec::new();
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            input.push((x >> 24) as u8);
        }
        let n = bytecount(&input, b'\n');
        let l = lines(&input);
        assert!(l.len() == n || l.len() == n + 1);
        for raw in &l {
            let _ = classify(raw);
        }
    }

    fn bytecount(b: &[u8], c: u8) -> usize {
        b.iter().filter(|x| **x == c).count()
    }
}
