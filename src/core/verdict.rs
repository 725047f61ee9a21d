//! Verdicts and how they aggregate: address, then host, then domain.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Per address, and per host (the worst of its addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum HostVerdict {
    /// DANE applies and a usable TLSA record authenticated the server.
    Pass,
    /// DANE applies and a DANE sender could not deliver (or DANE is broken).
    Fail,
    /// DANE does not apply (no secure TLSA, insecure DNS).
    NotDane,
    /// Could not be determined (unreachable, rate-limited, lookup failed).
    NotTested,
}

impl HostVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            HostVerdict::Pass => "pass",
            HostVerdict::Fail => "fail",
            HostVerdict::NotDane => "not-dane",
            HostVerdict::NotTested => "not-tested",
        }
    }

    /// Rank for "worst of": a failure outweighs not knowing, which outweighs
    /// a pass; not-dane is a separate dimension handled by the domain rule.
    fn rank(self) -> u8 {
        match self {
            HostVerdict::Pass => 0,
            HostVerdict::NotDane => 1,
            HostVerdict::NotTested => 2,
            HostVerdict::Fail => 3,
        }
    }

    /// The worst of several verdicts; `None` for an empty set.
    pub fn worst(all: impl IntoIterator<Item = HostVerdict>) -> Option<HostVerdict> {
        all.into_iter().max_by_key(|v| v.rank())
    }
}

impl fmt::Display for HostVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum DomainVerdict {
    /// Every MX host is DANE-protected and verified.
    Pass,
    /// Some MX hosts are protected and verified, others do not use DANE.
    Partial,
    /// A DANE sender cannot deliver to some host, or DANE is broken.
    Fail,
    /// DANE does not apply to the domain.
    NotDane,
    /// Some hosts could not be tested; the reason is given.
    Incomplete,
    /// RFC 7505 null MX: the domain accepts no mail.
    NoMail,
}

impl DomainVerdict {
    pub const ALL: [DomainVerdict; 6] = [
        DomainVerdict::Pass,
        DomainVerdict::Partial,
        DomainVerdict::Fail,
        DomainVerdict::NotDane,
        DomainVerdict::Incomplete,
        DomainVerdict::NoMail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DomainVerdict::Pass => "pass",
            DomainVerdict::Partial => "partial",
            DomainVerdict::Fail => "fail",
            DomainVerdict::NotDane => "not-dane",
            DomainVerdict::Incomplete => "incomplete",
            DomainVerdict::NoMail => "no-mail",
        }
    }

    /// Combines host verdicts (the MX RRset itself being secure).
    ///
    /// A failing host fails the domain; otherwise an untested host makes the
    /// result incomplete; otherwise pass, partial or not-dane by coverage.
    pub fn from_hosts(hosts: &[HostVerdict]) -> DomainVerdict {
        let has = |v| hosts.contains(&v);
        if hosts.is_empty() {
            DomainVerdict::Incomplete
        } else if has(HostVerdict::Fail) {
            DomainVerdict::Fail
        } else if has(HostVerdict::NotTested) {
            DomainVerdict::Incomplete
        } else if !has(HostVerdict::Pass) {
            DomainVerdict::NotDane
        } else if has(HostVerdict::NotDane) {
            DomainVerdict::Partial
        } else {
            DomainVerdict::Pass
        }
    }
}

impl fmt::Display for DomainVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::HostVerdict::*;
    use super::*;

    #[test]
    fn host_is_worst_of_addresses() {
        assert_eq!(HostVerdict::worst([Pass, Pass]), Some(Pass));
        assert_eq!(HostVerdict::worst([Pass, NotTested]), Some(NotTested));
        assert_eq!(HostVerdict::worst([NotTested, Fail, Pass]), Some(Fail));
        assert_eq!(HostVerdict::worst([]), None);
    }

    #[test]
    fn domain_rule_table() {
        let cases: &[(&[HostVerdict], DomainVerdict)] = &[
            (&[Pass, Pass], DomainVerdict::Pass),
            (&[Pass, NotDane], DomainVerdict::Partial),
            (&[NotDane, NotDane], DomainVerdict::NotDane),
            (&[Pass, Fail], DomainVerdict::Fail),
            (&[Fail, NotTested], DomainVerdict::Fail),
            (&[Pass, NotTested], DomainVerdict::Incomplete),
            (&[NotDane, NotTested], DomainVerdict::Incomplete),
            (&[], DomainVerdict::Incomplete),
        ];
        for (hosts, want) in cases {
            assert_eq!(DomainVerdict::from_hosts(hosts), *want, "{hosts:?}");
        }
    }
}
