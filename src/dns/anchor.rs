//! Trust anchors: hickory's built-in IANA root KSKs, or a file of DNSKEY
//! and/or DS records in zone-file syntax. hickory only reads DNSKEY lines;
//! a DS line is matched against the zone's DNSKEY set fetched from the
//! resolver, and the keys whose digest matches become anchors.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use hickory_resolver::proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS};
use hickory_resolver::proto::dnssec::{Algorithm, DigestType, PublicKeyBuf, TrustAnchors};
use hickory_resolver::proto::rr::{LowerName, Name, RData, RecordType};

use super::DnsSetupError;
use super::upstream::Net;
use crate::zonefile::{self, Entry, ZoneFileError};

/// One anchor record read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnchorRecord {
    Dnskey {
        owner: Name,
        flags: u16,
        algorithm: u8,
        key: Vec<u8>,
    },
    Ds {
        owner: Name,
        key_tag: u16,
        algorithm: u8,
        digest_type: u8,
        digest: Vec<u8>,
    },
}

/// Why a trust anchor file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Syntax(#[from] ZoneFileError),
    #[error("line {0}: no owner name")]
    NoOwner(usize),
    #[error("line {line}: owner name {owner:?}: {why}")]
    Owner {
        line: usize,
        owner: String,
        why: String,
    },
    #[error("line {line}: record type {found} is not a trust anchor (DNSKEY or DS expected)")]
    NotAnAnchor { line: usize, found: String },
    #[error("line {line}: {rtype}: {what} missing")]
    Missing {
        line: usize,
        rtype: &'static str,
        what: &'static str,
    },
    #[error("line {line}: {rtype}: {what} {value:?} is not a number that fits")]
    Number {
        line: usize,
        rtype: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("line {line}: {rtype}: {what} is not {encoding}")]
    Encoding {
        line: usize,
        rtype: &'static str,
        what: &'static str,
        encoding: &'static str,
    },
}

/// Parses DNSKEY and DS records in zone-file syntax ([`crate::zonefile`]).
pub fn parse_anchor_text(text: &str) -> Result<Vec<AnchorRecord>, AnchorError> {
    zonefile::entries(text)?.iter().map(anchor).collect()
}

fn anchor(e: &Entry) -> Result<AnchorRecord, AnchorError> {
    let line = e.line;
    let owner_s = e.owner.as_deref().ok_or(AnchorError::NoOwner(line))?;
    let owner = Name::from_ascii(if owner_s.ends_with('.') {
        owner_s.to_string()
    } else {
        format!("{owner_s}.")
    })
    .map_err(|err| AnchorError::Owner {
        line,
        owner: owner_s.to_string(),
        why: err.to_string(),
    })?;
    let rtype: &'static str = match e.rtype.as_deref() {
        Some("DNSKEY") => "DNSKEY",
        Some("DS") => "DS",
        other => {
            return Err(AnchorError::NotAnAnchor {
                line,
                found: other.unwrap_or("(none)").to_string(),
            });
        }
    };
    let field = |k: usize, what: &'static str| -> Result<&str, AnchorError> {
        e.rdata
            .get(k)
            .map(String::as_str)
            .ok_or(AnchorError::Missing { line, rtype, what })
    };
    let number = |k: usize, what: &'static str, max: u64| -> Result<u64, AnchorError> {
        let v = field(k, what)?;
        v.parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| AnchorError::Number {
                line,
                rtype,
                what,
                value: v.to_string(),
            })
    };
    let rest = || e.rdata.get(3..).unwrap_or_default().concat();
    let encoding = |what, encoding| AnchorError::Encoding {
        line,
        rtype,
        what,
        encoding,
    };
    if rtype == "DNSKEY" {
        let (flags, algorithm) = (number(0, "flags", 0xffff)?, number(2, "algorithm", 0xff)?);
        field(3, "public key")?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(rest().as_bytes())
            .map_err(|_| encoding("the public key", "base64"))?;
        return Ok(AnchorRecord::Dnskey {
            owner,
            flags: flags as u16,
            algorithm: algorithm as u8,
            key,
        });
    }
    let key_tag = number(0, "key tag", 0xffff)?;
    let algorithm = number(1, "algorithm", 0xff)?;
    let digest_type = number(2, "digest type", 0xff)?;
    field(3, "digest")?;
    let digest = hex::decode(rest()).map_err(|_| encoding("the digest", "hex"))?;
    Ok(AnchorRecord::Ds {
        owner,
        key_tag: key_tag as u16,
        algorithm: algorithm as u8,
        digest_type: digest_type as u8,
        digest,
    })
}

/// The key tags of hickory's built-in IANA root KSKs (RFC 4034 Appendix B),
/// as operators know them (20326, 38696).
pub fn builtin_key_tags() -> Vec<u16> {
    let anchors = TrustAnchors::default();
    (0..anchors.len())
        .filter_map(|i| anchors.get(i))
        .filter_map(|k| {
            DNSKEY::new(true, true, false, k.clone())
                .calculate_key_tag()
                .ok()
        })
        .collect()
}

/// Builds hickory trust anchors from parsed records, fetching DNSKEY sets
/// for DS records.
pub async fn build_anchors(
    records: &[AnchorRecord],
    net: &Arc<Net>,
    source: &str,
) -> Result<(TrustAnchors, usize), DnsSetupError> {
    let mut ta = TrustAnchors::empty();
    let mut count = 0usize;
    let mut ds_by_owner: BTreeMap<String, (Name, Vec<DS>)> = BTreeMap::new();
    for r in records {
        match r {
            AnchorRecord::Dnskey {
                owner,
                algorithm,
                key,
                ..
            } => {
                let k = PublicKeyBuf::new(key.clone(), Algorithm::from_u8(*algorithm));
                if ta.insert_with_name(&k, LowerName::new(owner)) {
                    count += 1;
                }
            }
            AnchorRecord::Ds {
                owner,
                key_tag,
                algorithm,
                digest_type,
                digest,
            } => {
                ds_by_owner
                    .entry(owner.to_lowercase().to_ascii())
                    .or_insert_with(|| (owner.clone(), Vec::new()))
                    .1
                    .push(DS::new(
                        *key_tag,
                        Algorithm::from_u8(*algorithm),
                        DigestType::from(*digest_type),
                        digest.clone(),
                    ));
            }
        }
    }
    for (owner_s, (owner, dss)) in ds_by_owner {
        let fetched = net.resolve(&owner, RecordType::DNSKEY, true).await;
        let resp = fetched.result.map_err(|f| DnsSetupError::AnchorFetch {
            zone: owner_s.clone(),
            detail: format!("{}: {}", f.kind.as_str(), f.detail),
        })?;
        let mut matched = 0;
        for rec in resp.answers.iter().filter(|r| r.name == owner) {
            let RData::DNSSEC(DNSSECRData::DNSKEY(key)) = &rec.data else {
                continue;
            };
            if dss.iter().any(|ds| ds.covers(&owner, key).unwrap_or(false))
                && ta.insert_with_name(key.public_key(), LowerName::new(&owner))
            {
                matched += 1;
            }
        }
        if matched == 0 {
            return Err(DnsSetupError::AnchorDsNoMatch {
                file: source.to_string(),
                zone: owner_s,
                tags: dss
                    .iter()
                    .map(|d| d.key_tag().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                keys: resp
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == RecordType::DNSKEY)
                    .count(),
            });
        }
        count += matched;
    }
    if count == 0 {
        return Err(DnsSetupError::AnchorEmpty(source.to_string()));
    }
    Ok((ta, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_root_key_tags() {
        assert_eq!(builtin_key_tags(), [20326, 38696]);
    }

    #[test]
    fn parses_dnskey_and_ds_lines() {
        let text = "; test anchors\n\
            . 3600 IN DNSKEY 257 3 13 ( mdsswUyr3DPW132mOi8V9xESWE8jTo0d\n\
                xCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== ) ; KSK\n\
            .\tIN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\
            example. DS 1 13 2 ( aabb\n ccdd )\n";
        let recs = parse_anchor_text(text).unwrap();
        assert_eq!(recs.len(), 3);
        assert!(
            matches!(&recs[0], AnchorRecord::Dnskey { flags: 257, algorithm: 13, key, .. } if key.len() == 64)
        );
        assert!(
            matches!(&recs[1], AnchorRecord::Ds { key_tag: 20326, algorithm: 8, digest_type: 2, digest, owner } if digest.len() == 32 && owner.is_root())
        );
        assert!(
            matches!(&recs[2], AnchorRecord::Ds { digest, .. } if digest == &[0xaa, 0xbb, 0xcc, 0xdd])
        );
    }

    #[test]
    fn rejects_other_types_and_bad_data() {
        assert!(matches!(
            parse_anchor_text(". IN A 192.0.2.1\n").unwrap_err(),
            AnchorError::NotAnAnchor { line: 1, .. }
        ));
        let e = parse_anchor_text("\n. DS 1 8 2 zz\n").unwrap_err();
        assert!(e.to_string().starts_with("line 2: DS: the digest"), "{e}");
        assert!(matches!(
            parse_anchor_text(". DNSKEY 70000 3 8 AwEA\n").unwrap_err(),
            AnchorError::Number { what: "flags", .. }
        ));
        assert!(parse_anchor_text(". DNSKEY 257 3 8 (abc\n").is_err());
        assert!(parse_anchor_text("").unwrap().is_empty());
    }
}
