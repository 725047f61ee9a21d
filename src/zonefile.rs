//! Zone-file syntax (RFC 1035 §5.1), the one reader for every file of
//! records dane-audit takes: candidate TLSA records (`preflight
//! --tlsa-file`), trust anchors (DNSKEY and DS) and root hints.
//!
//! hickory's zone parser is made for whole zones: it needs an origin,
//! fails on a record type it does not know and keeps neither the order of
//! the records nor their line numbers. Operators hand us fragments: a few
//! lines cut from a zone (relative owners, no `$ORIGIN`), bare RDATA, lines
//! of other types to skip, and they need the line of a mistake. So this
//! reader keeps the syntax (`;` comments, `( ... )` across lines, an
//! omitted owner meaning the previous one, TTL and class in either order,
//! `$ORIGIN` applied to relative owners, other `$` directives skipped) and
//! leaves the meaning of the RDATA to its callers.

use std::str::FromStr;

use hickory_proto::rr::RecordType;

/// One record as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The line the record starts on (from 1).
    pub line: usize,
    /// The owner name as written (made absolute under a `$ORIGIN`, `@` is
    /// the origin); `None` when the line names no owner and none came before.
    pub owner: Option<String>,
    pub ttl: Option<u32>,
    /// The type mnemonic, upper case; `None` for a line without one (bare
    /// RDATA, or a root-hints line that is just an address).
    pub rtype: Option<String>,
    /// The RDATA fields (every field of a line without a type).
    pub rdata: Vec<String>,
}

impl Entry {
    /// The RDATA fields joined by single spaces.
    pub fn rdata_text(&self) -> String {
        self.rdata.join(" ")
    }
}

/// A syntax error, at a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {fault}")]
pub struct ZoneFileError {
    pub line: usize,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("')' without '('")]
    UnbalancedClose,
    #[error("'(' is never closed")]
    UnbalancedOpen,
    #[error("{0} needs a value")]
    Directive(&'static str),
}

fn fault(line: usize, fault: Fault) -> ZoneFileError {
    ZoneFileError { line, fault }
}

/// A logical line: its first physical line, whether it began with white
/// space (owner omitted), and its fields.
struct Logical {
    line: usize,
    indented: bool,
    fields: Vec<String>,
}

/// Joins parenthesised continuations and drops comments and blank lines.
fn logical_lines(text: &str) -> Result<Vec<Logical>, ZoneFileError> {
    let mut out = Vec::new();
    let mut current: Option<Logical> = None;
    let mut depth = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let body = raw.split(';').next().unwrap_or("");
        let cur = current.get_or_insert_with(|| Logical {
            line: i + 1,
            indented: body.starts_with([' ', '\t']),
            fields: Vec::new(),
        });
        for ch in body.chars().filter(|c| matches!(c, '(' | ')')) {
            if ch == '(' {
                depth += 1;
            } else {
                depth = depth
                    .checked_sub(1)
                    .ok_or(fault(i + 1, Fault::UnbalancedClose))?;
            }
        }
        cur.fields.extend(
            body.replace(['(', ')'], " ")
                .split_whitespace()
                .map(str::to_string),
        );
        if depth == 0
            && let Some(done) = current.take().filter(|l| !l.fields.is_empty())
        {
            out.push(done);
        }
    }
    match current {
        Some(l) if depth > 0 => Err(fault(l.line, Fault::UnbalancedOpen)),
        _ => Ok(out),
    }
}

fn is_ttl(s: &str) -> bool {
    ttl_secs(s).is_some()
}

/// A TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`).
fn ttl_secs(s: &str) -> Option<u32> {
    crate::duration::parse_duration(s)
        .ok()
        .and_then(|t| u32::try_from(t).ok())
}

fn is_class(s: &str) -> bool {
    ["IN", "CH", "CS", "HS", "ANY"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(s))
}

fn is_type(s: &str) -> bool {
    !is_ttl(s) && RecordType::from_str(&s.to_ascii_uppercase()).is_ok()
}

/// The position of the type among `fields[from..]`, when only TTL and
/// class fields come before it.
fn type_at(fields: &[String], from: usize) -> Option<usize> {
    for (i, f) in fields.iter().enumerate().skip(from) {
        if is_type(f) {
            return Some(i);
        }
        if !(is_ttl(f) || is_class(f)) {
            return None;
        }
    }
    None
}

/// Reads every record of `text`.
pub fn entries(text: &str) -> Result<Vec<Entry>, ZoneFileError> {
    let mut out = Vec::new();
    let mut origin: Option<String> = None;
    let mut previous: Option<String> = None;
    for l in logical_lines(text)? {
        if let Some(directive) = l.fields[0].strip_prefix('$') {
            if directive.eq_ignore_ascii_case("ORIGIN") {
                let o = l
                    .fields
                    .get(1)
                    .ok_or(fault(l.line, Fault::Directive("$ORIGIN")))?;
                origin = Some(absolute(o, None));
            }
            continue;
        }
        let f = &l.fields;
        let owner_written = !l.indented && !is_ttl(&f[0]) && !is_class(&f[0]);
        let (owner, ty) = match (
            owner_written,
            owner_written.then(|| type_at(f, 1)).flatten(),
        ) {
            (true, Some(t)) => (Some(absolute(&f[0], origin.as_deref())), Some(t)),
            _ => (previous.clone().filter(|_| l.indented), type_at(f, 0)),
        };
        if owner.is_some() {
            previous.clone_from(&owner);
        }
        let before = ty.unwrap_or(0);
        let ttl = f[..before].iter().find_map(|x| ttl_secs(x));
        out.push(Entry {
            line: l.line,
            owner,
            ttl,
            rtype: ty.map(|t| f[t].to_ascii_uppercase()),
            rdata: f[ty.map(|t| t + 1).unwrap_or(0)..].to_vec(),
        });
    }
    Ok(out)
}

/// `name` made absolute under `origin` when it is relative; `@` is the origin.
fn absolute(name: &str, origin: Option<&str>) -> String {
    match (name, origin) {
        ("@", Some(o)) => o.to_string(),
        (n, _) if n.ends_with('.') => n.to_string(),
        (n, Some(".")) => format!("{n}."),
        (n, Some(o)) => format!("{n}.{o}"),
        (n, None) => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Entry {
        let mut v = entries(text).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn owner_ttl_class_in_either_order() {
        for text in [
            "_25._tcp.mx.example. 3600 IN TLSA 3 1 1 ab",
            "_25._tcp.mx.example. IN 3600 TLSA 3 1 1 ab",
            "_25._tcp.mx.example. 1h TLSA 3 1 1 ab",
        ] {
            let e = one(text);
            assert_eq!(e.owner.as_deref(), Some("_25._tcp.mx.example."), "{text}");
            assert_eq!(e.ttl, Some(3600), "{text}");
            assert_eq!(e.rtype.as_deref(), Some("TLSA"));
            assert_eq!(e.rdata_text(), "3 1 1 ab");
        }
    }

    #[test]
    fn lines_without_owner_or_type() {
        let e = one("IN TLSA 2 1 1 ab");
        assert_eq!((e.owner, e.rtype.as_deref()), (None, Some("TLSA")));
        let e = one("2 1 1 ab");
        assert_eq!((&e.owner, &e.rtype), (&None, &None));
        assert_eq!(e.rdata_text(), "2 1 1 ab");
        let e = one("192.0.2.1");
        assert_eq!(e.rdata, ["192.0.2.1"]);
        // Owners that are also type mnemonics.
        let e = one("ns IN A 192.0.2.1");
        assert_eq!(
            (e.owner.as_deref(), e.rtype.as_deref()),
            (Some("ns"), Some("A"))
        );
        let e = one("A 192.0.2.1");
        assert_eq!((e.owner, e.rtype.as_deref()), (None, Some("A")));
    }

    #[test]
    fn comments_parentheses_directives_and_omitted_owners() {
        let text = "$TTL 300\n; a comment\n\n. IN DNSKEY 257 3 8 ( AwEA ; key\n  AAAB )\n  IN DS 1 8 2 ab\n";
        let v = entries(text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].line, 4);
        assert_eq!(v[0].rdata_text(), "257 3 8 AwEA AAAB");
        assert_eq!(v[1].owner.as_deref(), Some("."), "the previous owner");
        assert_eq!(v[1].rtype.as_deref(), Some("DS"));
    }

    #[test]
    fn origin_makes_relative_owners_absolute() {
        let v =
            entries("$ORIGIN example.org.\n_25._tcp.mx IN TLSA 3 1 1 ab\n@ IN MX 10 mx\n").unwrap();
        assert_eq!(v[0].owner.as_deref(), Some("_25._tcp.mx.example.org."));
        assert_eq!(v[1].owner.as_deref(), Some("example.org."));
        assert_eq!(
            one("_25._tcp.mx IN TLSA 3 1 1 ab").owner.as_deref(),
            Some("_25._tcp.mx"),
            "relative without an origin"
        );
    }

    #[test]
    fn unbalanced_parentheses_name_the_line() {
        assert_eq!(
            entries("a. IN TLSA 3 1 1 (\n ab").unwrap_err(),
            fault(1, Fault::UnbalancedOpen)
        );
        assert_eq!(
            entries("\na. IN A 192.0.2.1 )").unwrap_err(),
            fault(2, Fault::UnbalancedClose)
        );
        assert!(entries("$ORIGIN\n").is_err());
        assert!(entries("").unwrap().is_empty());
    }
}
