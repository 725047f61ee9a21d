//! The skip list: domains (with everything under them) and addresses or
//! prefixes that a scan never contacts, neither by SMTP nor by DNS queries
//! to their authoritative servers. Operators who opt out of scanning expect
//! silence from every part of the tool, not only from its SMTP side.
//!
//! The same list screens what a visitor's domain may lead a public server
//! to (`serve`): with [`SkipList::refusing_special_purpose`], every address
//! in the IANA special-purpose registries is refused too, by the very
//! checks that keep skip-listed addresses silent, so SMTP, the
//! per-nameserver checks and `--iterative` all obey it.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use crate::special_purpose::{self, Block};

/// A listed domain is not looked up at all and gets an error row; a listed
/// MX host name or address is not connected to (its probe is recorded as
/// not made, so the domain reads `incomplete`); a listed nameserver address
/// is not asked (its per-server check is recorded as not made).
#[derive(Debug, Default, Clone)]
pub struct SkipList {
    domains: HashSet<String>,
    nets: Vec<IpNet>,
    /// Refuse special-purpose addresses, except these (the operator's own
    /// choices, such as root hints).
    special_purpose: Option<Vec<IpAddr>>,
}

/// Why an address is never contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The operator listed it.
    Listed,
    /// It is special-purpose and the domain came from a visitor.
    NotAllowedHere(&'static Block),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Listed => f.write_str("the address is on the skip list"),
            Refusal::NotAllowedHere(b) => write!(
                f,
                "address not allowed here ({} {}, {})",
                b.name, b.prefix, b.rfc
            ),
        }
    }
}

/// A skip list file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SkipFileError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Parse { path: String, err: SkipListError },
}

/// A line of a skip list that is none of a domain, an address or a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {entry:?}: {why}")]
pub struct SkipListError {
    pub line: usize,
    pub entry: String,
    pub why: String,
}

impl SkipList {
    /// One entry per line: a domain, an address, or a CIDR prefix; `#` comments.
    pub fn parse(text: &str) -> Result<SkipList, SkipListError> {
        let mut s = SkipList::default();
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let bad = |why: String| SkipListError {
                line: i + 1,
                entry: entry.to_string(),
                why,
            };
            if let Some((addr, _)) = entry.split_once('/') {
                let ip: IpAddr = addr
                    .parse()
                    .map_err(|_| bad("not an address prefix".into()))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let net: IpNet = entry
                    .parse()
                    .map_err(|_| bad(format!("prefix length must be 0..{max}")))?;
                s.nets.push(net);
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                s.nets.push(IpNet::from(ip));
            } else {
                let d = crate::domain::normalize_domain(entry).map_err(|e| bad(e.to_string()))?;
                s.domains.insert(d);
            }
        }
        Ok(s)
    }

    /// Reads a skip list file; returns its text too (a scan hashes it).
    pub fn read(path: &Path) -> Result<(SkipList, String), SkipFileError> {
        let shown = || path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|err| SkipFileError::Read { path: shown(), err })?;
        let list =
            SkipList::parse(&text).map_err(|err| SkipFileError::Parse { path: shown(), err })?;
        Ok((list, text))
    }

    /// Also refuses every special-purpose address ([`special_purpose`])
    /// but `exempt`.
    pub fn refusing_special_purpose(mut self, exempt: Vec<IpAddr>) -> SkipList {
        self.special_purpose = Some(exempt);
        self
    }

    /// Listed entries (the special-purpose screen is not counted).
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.nets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.domains.len() + self.nets.len()
    }

    /// The listed entry that covers `name` (the name itself or a parent).
    pub fn domain(&self, name: &str) -> Option<&str> {
        if self.domains.is_empty() {
            return None;
        }
        let name = name.trim_end_matches('.');
        let mut rest = name;
        loop {
            if let Some(d) = self.domains.get(rest) {
                return Some(d);
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => return None,
            }
        }
    }

    /// Whether `ip` is never contacted.
    pub fn address(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_some()
    }

    /// Why `ip` is never contacted, if it is not.
    pub fn refusal(&self, ip: IpAddr) -> Option<Refusal> {
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return Some(Refusal::Listed);
        }
        let exempt = self.special_purpose.as_ref()?;
        if exempt.contains(&ip) {
            return None;
        }
        special_purpose::block(ip).map(Refusal::NotAllowedHere)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_list_domains_and_prefixes() {
        let s = SkipList::parse(
            "# opt-out\nOptOut.example.\n192.0.2.0/28\n2001:db8:1::/48  # hoster\n198.51.100.7\n",
        )
        .unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s.domain("optout.example"), Some("optout.example"));
        assert_eq!(s.domain("mx.optout.example"), Some("optout.example"));
        assert_eq!(s.domain("notoptout.example"), None);
        assert_eq!(s.domain("example"), None);
        assert!(s.address("192.0.2.15".parse().unwrap()));
        assert!(!s.address("192.0.2.16".parse().unwrap()));
        assert!(s.address("2001:db8:1:ff::25".parse().unwrap()));
        assert!(!s.address("2001:db8:2::25".parse().unwrap()));
        assert!(s.address("198.51.100.7".parse().unwrap()));
        assert!(!s.address("198.51.100.8".parse().unwrap()));
        let e = SkipList::parse("ok.example\n10.0.0.0/33\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(SkipList::parse("https://x.example/").is_err());
        assert!(
            SkipList::parse("0.0.0.0/0")
                .unwrap()
                .address("8.8.8.8".parse().unwrap())
        );
    }

    #[test]
    fn special_purpose_screen() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let plain = SkipList::parse("203.0.113.9\n").unwrap();
        assert_eq!(plain.refusal(ip("127.0.0.1")), None);
        let s = plain.refusing_special_purpose(vec![ip("198.51.100.1")]);
        assert_eq!(s.refusal(ip("203.0.113.9")), Some(Refusal::Listed));
        assert!(s.address(ip("127.0.0.1")));
        assert!(s.address(ip("10.0.0.1")));
        assert!(s.address(ip("2001:db8::25")));
        assert!(!s.address(ip("198.51.100.1")), "exempt");
        assert!(s.address(ip("198.51.100.2")));
        assert!(!s.address(ip("8.8.8.8")));
        assert_eq!(
            s.refusal(ip("10.0.0.1")).unwrap().to_string(),
            "address not allowed here (private use 10.0.0.0/8, RFC 1918)"
        );
        assert_eq!(s.len(), 1, "the screen is not an entry");
    }
}
