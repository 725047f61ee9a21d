//! Findings: the stable, machine-readable statements the core makes.
//!
//! Codes are an interface (scripts and dashboards key on them), so they are a
//! closed enum whose spelling lives in one place. A [`Finding`] can only be
//! built inside the core: no renderer or caller can claim a result the
//! evaluation did not compute.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::catalogue;

/// How bad a finding is for mail delivery from DANE senders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// A severity or finding code that the contract does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownName {
    #[error("unknown severity {0:?}")]
    Severity(String),
    #[error("unknown finding code {0:?} (see `dane-audit explain --list`)")]
    Code(String),
}

impl FromStr for Severity {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownName::Severity(s.to_string()))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! codes {
    ($($variant:ident => $text:literal,)*) => {
        /// Every finding code, spelled as in the output contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }
        }
    };
}

codes! {
    MxInsecure => "mx-insecure",
    MxBogus => "mx-bogus",
    MxLookupFailed => "mx-lookup-failed",
    NullMx => "null-mx",
    ImplicitMx => "implicit-mx",
    MxCname => "mx-cname",
    DomainNxdomain => "domain-nxdomain",
    HostAddressInsecure => "host-address-insecure",
    HostAddressBogus => "host-address-bogus",
    HostDenialBogus => "host-denial-bogus",
    HostLookupFailed => "host-lookup-failed",
    HostNoAddress => "host-no-address",
    TlsaAbsent => "tlsa-absent",
    TlsaInsecure => "tlsa-insecure",
    TlsaBogus => "tlsa-bogus",
    TlsaDenialBogus => "tlsa-denial-bogus",
    TlsaLookupFailed => "tlsa-lookup-failed",
    RrsigExpiring => "rrsig-expiring",
    RrsigExpired => "rrsig-expired",
    DnssecWitnessDisagree => "dnssec-witness-disagree",
    DnssecAlgorithmDeprecated => "dnssec-algorithm-deprecated",
    DsDigestSha1Only => "ds-digest-sha1-only",
    DnssecKeyWeak => "dnssec-key-weak",
    Nsec3Parameters => "nsec3-parameters",
    NsDropsTlsa => "ns-drops-tlsa",
    NsRefusesTlsa => "ns-refuses-tlsa",
    NsDenialBogus => "ns-denial-bogus",
    NsOutOfSync => "ns-out-of-sync",
    NsUnreachable => "ns-unreachable",
    NsDropsDnskey => "ns-drops-dnskey",
    NsNoTcp => "ns-no-tcp",
    TlsaPkixUsage => "tlsa-pkix-usage",
    TlsaMalformed => "tlsa-malformed",
    TlsaAllUnusable => "tlsa-all-unusable",
    TlsaWrongSelector => "tlsa-wrong-selector",
    TlsaWrongEncoding => "tlsa-wrong-encoding",
    TlsaWrongUsage => "tlsa-wrong-usage",
    TlsaNoMatch => "tlsa-no-match",
    TlsaKeyTypeUncovered => "tlsa-key-type-uncovered",
    TlsaStale => "tlsa-stale",
    DaneTaNotInChain => "dane-ta-not-in-chain",
    DaneTaChainInvalid => "dane-ta-chain-invalid",
    DaneTaExpired => "dane-ta-expired",
    DaneTaNameMismatch => "dane-ta-name-mismatch",
    TlsaFullCertShortLived => "tlsa-full-cert-short-lived",
    TlsaSingleIssuerPin => "tlsa-single-issuer-pin",
    TlsaRootPinned => "tlsa-root-pinned",
    TlsaNoBackup => "tlsa-no-backup",
    TlsaRrsetLarge => "tlsa-rrset-large",
    SmtpUnreachable => "smtp-unreachable",
    SmtpRateLimited => "smtp-rate-limited",
    SmtpProtocolError => "smtp-protocol-error",
    StarttlsNotOffered => "starttls-not-offered",
    StarttlsRefused => "starttls-refused",
    StarttlsInjection => "starttls-injection",
    TlsHandshakeFailed => "tls-handshake-failed",
    TlsLegacyOnly => "tls-legacy-only",
    AddressesDisagree => "addresses-disagree",
    CertExpiredDaneEe => "cert-expired-dane-ee",
    PartialCoverage => "partial-coverage",
    MxInsecureHostTlsa => "mx-insecure-host-tlsa",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Code {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName::Code(s.to_string()))
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Stored watch state and scan outputs name codes as text.
impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One statement about the audited domain. Non-exhaustive: only the core
/// constructs findings.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    /// What the finding is about: a domain, host, `host[address]`,
    /// nameserver or record, as text.
    pub subject: String,
    pub message: String,
    pub fix: String,
    pub rfc: &'static str,
    /// The RFC 8460 (TLS-RPT) result type a sender would report, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlsrpt: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

impl Finding {
    /// A finding with the catalogue's default severity, message and fix.
    pub(in crate::core) fn new(code: Code, subject: impl Into<String>) -> Finding {
        let e = catalogue::entry(code);
        Finding {
            code,
            severity: e.severity,
            subject: subject.into(),
            message: e.title.to_string(),
            fix: e.fix.to_string(),
            rfc: e.rfc,
            tlsrpt: e.tlsrpt,
            host: None,
            address: None,
        }
    }

    pub(in crate::core) fn msg(mut self, m: impl Into<String>) -> Finding {
        self.message = m.into();
        self
    }

    pub(in crate::core) fn fix(mut self, f: impl Into<String>) -> Finding {
        self.fix = f.into();
        self
    }

    /// Uses the catalogue's second severity (for codes whose weight depends on
    /// whether the host has usable secure TLSA).
    pub(in crate::core) fn secondary(mut self) -> Finding {
        if let Some(s) = catalogue::entry(self.code).secondary {
            self.severity = s;
        }
        self
    }

    pub(in crate::core) fn at_host(mut self, host: &str) -> Finding {
        self.host = Some(host.to_string());
        self
    }

    pub(in crate::core) fn at_address(mut self, host: &str, address: IpAddr) -> Finding {
        self.host = Some(host.to_string());
        self.address = Some(address);
        self
    }

    /// Whether this finding says something could not be determined, rather
    /// than that something is wrong (see [`catalogue::Entry::undetermined`]).
    pub fn undetermined(&self) -> bool {
        catalogue::entry(self.code).undetermined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(c.as_str().parse::<Code>().unwrap(), *c);
        }
        assert!("no-such-code".parse::<Code>().is_err());
    }

    #[test]
    fn severities_order_by_harm() {
        assert!(Severity::Critical > Severity::Error);
        assert!(Severity::Error > Severity::Warning);
        assert!(Severity::Warning > Severity::Notice);
        assert!(Severity::Notice > Severity::Info);
    }
}
