//! The skip list: domains (with everything under them) and addresses or
//! prefixes that a scan never contacts, neither by SMTP nor by DNS queries
//! to their authoritative servers. Operators who opt out of scanning expect
//! silence from every part of the tool, not only from its SMTP side.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// A listed domain is not looked up at all and gets an error row; a listed
/// MX host name or address is not connected to (its probe is recorded as
/// not made, so the domain reads `incomplete`); a listed nameserver address
/// is not asked (its per-server check is recorded as not made).
#[derive(Debug, Default, Clone)]
pub struct SkipList {
    domains: HashSet<String>,
    nets: Vec<IpNet>,
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

    pub fn address(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
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
}
