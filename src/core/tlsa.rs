//! TLSA resource records (RFC 6698 §2) and their usability for SMTP
//! (RFC 7671 §4, RFC 7672 §3.1.3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Certificate usage field (RFC 6698 §2.1.1, names from RFC 7218).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    PkixTa,
    PkixEe,
    DaneTa,
    DaneEe,
    Unknown(u8),
}

impl From<u8> for Usage {
    fn from(v: u8) -> Self {
        match v {
            0 => Usage::PkixTa,
            1 => Usage::PkixEe,
            2 => Usage::DaneTa,
            3 => Usage::DaneEe,
            n => Usage::Unknown(n),
        }
    }
}

impl Usage {
    pub fn name(self) -> &'static str {
        match self {
            Usage::PkixTa => "PKIX-TA",
            Usage::PkixEe => "PKIX-EE",
            Usage::DaneTa => "DANE-TA",
            Usage::DaneEe => "DANE-EE",
            Usage::Unknown(_) => "unknown usage",
        }
    }
}

/// Selector field (RFC 6698 §2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// The full DER certificate.
    Cert,
    /// The DER SubjectPublicKeyInfo.
    Spki,
}

impl Selector {
    pub fn from_u8(v: u8) -> Option<Selector> {
        match v {
            0 => Some(Selector::Cert),
            1 => Some(Selector::Spki),
            _ => None,
        }
    }

    pub fn value(self) -> u8 {
        match self {
            Selector::Cert => 0,
            Selector::Spki => 1,
        }
    }

    pub fn other(self) -> Selector {
        match self {
            Selector::Cert => Selector::Spki,
            Selector::Spki => Selector::Cert,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Selector::Cert => "the full certificate",
            Selector::Spki => "the public key (SubjectPublicKeyInfo)",
        }
    }
}

/// Matching type field (RFC 6698 §2.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchingType {
    Full,
    Sha256,
    Sha512,
}

impl MatchingType {
    pub fn from_u8(v: u8) -> Option<MatchingType> {
        match v {
            0 => Some(MatchingType::Full),
            1 => Some(MatchingType::Sha256),
            2 => Some(MatchingType::Sha512),
            _ => None,
        }
    }

    pub fn value(self) -> u8 {
        match self {
            MatchingType::Full => 0,
            MatchingType::Sha256 => 1,
            MatchingType::Sha512 => 2,
        }
    }

    /// Required length of the association data, if fixed.
    pub fn digest_len(self) -> Option<usize> {
        match self {
            MatchingType::Full => None,
            MatchingType::Sha256 => Some(32),
            MatchingType::Sha512 => Some(64),
        }
    }

    pub const ALL: [MatchingType; 3] = [
        MatchingType::Full,
        MatchingType::Sha256,
        MatchingType::Sha512,
    ];
}

/// The RDATA of one TLSA record, kept exactly as published so that unusable
/// records can still be shown and diagnosed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TlsaRdata {
    pub usage: u8,
    pub selector: u8,
    pub mtype: u8,
    pub data: Vec<u8>,
}

impl fmt::Debug for TlsaRdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsaRdata({self})")
    }
}

impl fmt::Display for TlsaRdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.usage,
            self.selector,
            self.mtype,
            hex::encode(&self.data)
        )
    }
}

impl TlsaRdata {
    /// `3 1 1 abcdef…` shortened for tables: the first 16 hex digits.
    pub fn short(&self) -> String {
        let h = hex::encode(&self.data);
        if h.len() > 16 {
            format!(
                "{} {} {} {}…",
                self.usage,
                self.selector,
                self.mtype,
                &h[..16]
            )
        } else {
            self.to_string()
        }
    }

    pub fn usage(&self) -> Usage {
        Usage::from(self.usage)
    }

    /// Whether an SMTP client following RFC 7672 uses this record, and if not why.
    pub fn usability(&self) -> Usability {
        let usage = self.usage();
        if let Usage::Unknown(u) = usage {
            return Usability::Malformed(format!("unknown certificate usage {u}"));
        }
        let Some(selector) = Selector::from_u8(self.selector) else {
            return Usability::Malformed(format!("unknown selector {}", self.selector));
        };
        let Some(mtype) = MatchingType::from_u8(self.mtype) else {
            return Usability::Malformed(format!("unknown matching type {}", self.mtype));
        };
        if self.data.is_empty() {
            return Usability::Malformed("empty certificate association data".into());
        }
        if let Some(want) = mtype.digest_len() {
            if self.data.len() != want {
                return Usability::Malformed(format!(
                    "matching type {} needs a {want}-byte digest, the record has {} bytes",
                    self.mtype,
                    self.data.len()
                ));
            }
        } else if !full_data_parses(selector, &self.data) {
            return Usability::Malformed(format!(
                "matching type 0 must carry {} in DER, and this data does not parse as one",
                selector.describe()
            ));
        }
        match usage {
            Usage::PkixTa | Usage::PkixEe => Usability::PkixUsage,
            _ => Usability::Usable(UsableRecord {
                usage,
                selector,
                mtype,
            }),
        }
    }
}

fn full_data_parses(selector: Selector, data: &[u8]) -> bool {
    match selector {
        Selector::Cert => x509_parser::parse_x509_certificate(data).is_ok(),
        Selector::Spki => {
            use x509_parser::prelude::FromDer;
            x509_parser::x509::SubjectPublicKeyInfo::from_der(data).is_ok()
        }
    }
}

/// A record's fields, decoded, once it is known to be usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsableRecord {
    pub usage: Usage,
    pub selector: Selector,
    pub mtype: MatchingType,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Usability {
    Usable(UsableRecord),
    /// Usage 0 or 1: undefined for SMTP, ignored by RFC 7672 §3.1.3 clients.
    PkixUsage,
    /// Unknown parameters or association data of the wrong shape.
    Malformed(String),
}

/// Errors in TLSA presentation text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsaParseError {
    #[error("a TLSA record needs usage, selector, matching type and data, e.g. '3 1 1 <hex>'")]
    TooFewFields,
    #[error("{field} must be a number from 0 to 255, not {value:?}")]
    BadNumber { field: &'static str, value: String },
    #[error("certificate association data is not hexadecimal: {0}")]
    BadHex(String),
}

fn parse_u8(field: &'static str, s: &str) -> Result<u8, TlsaParseError> {
    s.parse().map_err(|_| TlsaParseError::BadNumber {
        field,
        value: s.chars().take(40).collect(),
    })
}

impl FromStr for TlsaRdata {
    type Err = TlsaParseError;

    /// Parses `U S M HEX...` (hex may be split by white space, as in zone files).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s.split_whitespace();
        let (Some(u), Some(sel), Some(m)) = (it.next(), it.next(), it.next()) else {
            return Err(TlsaParseError::TooFewFields);
        };
        let usage = parse_u8("usage", u)?;
        let selector = parse_u8("selector", sel)?;
        let mtype = parse_u8("matching type", m)?;
        let hex_text: String = it.collect();
        if hex_text.is_empty() {
            return Err(TlsaParseError::TooFewFields);
        }
        let data = hex::decode(&hex_text)
            .map_err(|e| TlsaParseError::BadHex(format!("{e} in {:.40}", hex_text)))?;
        Ok(TlsaRdata {
            usage,
            selector,
            mtype,
            data,
        })
    }
}

impl Serialize for TlsaRdata {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for TlsaRdata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> TlsaRdata {
        s.parse().unwrap()
    }

    #[test]
    fn parses_presentation_with_split_hex() {
        let t = r("3 1 1 0011 2233");
        assert_eq!((t.usage, t.selector, t.mtype), (3, 1, 1));
        assert_eq!(t.data, vec![0, 0x11, 0x22, 0x33]);
        assert_eq!(t.to_string(), "3 1 1 00112233");
    }

    #[test]
    fn rejects_bad_presentation() {
        let cases = [
            ("", TlsaParseError::TooFewFields),
            ("3 1", TlsaParseError::TooFewFields),
            ("3 1 1", TlsaParseError::TooFewFields),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<TlsaRdata>().unwrap_err(), want, "{input:?}");
        }
        assert!(matches!(
            "256 1 1 00".parse::<TlsaRdata>(),
            Err(TlsaParseError::BadNumber { .. })
        ));
        assert!(matches!(
            "3 1 1 0g".parse::<TlsaRdata>(),
            Err(TlsaParseError::BadHex(_))
        ));
        assert!(matches!(
            "3 1 1 abc".parse::<TlsaRdata>(),
            Err(TlsaParseError::BadHex(_))
        ));
    }

    #[test]
    fn usability_table() {
        let d32 = "00".repeat(32);
        let d64 = "00".repeat(64);
        let cases: Vec<(String, &str)> = vec![
            (format!("3 1 1 {d32}"), "usable"),
            (format!("2 0 2 {d64}"), "usable"),
            (format!("3 1 2 {d32}"), "malformed"),
            (format!("3 1 1 {}", "00".repeat(20)), "malformed"),
            (format!("1 1 1 {d32}"), "pkix"),
            (format!("0 0 1 {d32}"), "pkix"),
            (format!("4 1 1 {d32}"), "malformed"),
            (format!("3 2 1 {d32}"), "malformed"),
            (format!("3 1 3 {d32}"), "malformed"),
            ("3 1 0 0000".into(), "malformed"),
        ];
        for (text, want) in cases {
            let got = match r(&text).usability() {
                Usability::Usable(_) => "usable",
                Usability::PkixUsage => "pkix",
                Usability::Malformed(_) => "malformed",
            };
            assert_eq!(got, want, "{text}");
        }
    }
}
