//! Trust anchors: hickory's built-in IANA root KSKs, or a file of DNSKEY
//! and/or DS records in zone-file syntax. hickory only reads DNSKEY lines;
//! a DS line is matched against the zone's DNSKEY set fetched from the
//! resolver, and the keys whose digest matches become anchors.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_resolver::proto::dnssec::{Algorithm, DigestType, PublicKeyBuf, TrustAnchors};
use hickory_resolver::proto::rr::{LowerName, Name, RData, RecordType};

use super::DnsSetupError;
use super::upstream::Net;

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

/// Parses DNSKEY and DS records in zone-file syntax: `owner [ttl] [class]
/// TYPE rdata`, with `;` comments and `( ... )` across lines. Errors name the
/// line.
pub fn parse_anchor_text(text: &str) -> Result<Vec<AnchorRecord>, String> {
    let mut out = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut start_line = 0usize;
    let mut last_owner: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or("");
        if depth == 0 {
            if line.trim().is_empty() || line.trim_start().starts_with('$') {
                continue;
            }
            start_line = i + 1;
            if line.starts_with([' ', '\t']) {
                // Owner omitted: the previous one.
                match &last_owner {
                    Some(o) => tokens.push(o.clone()),
                    None => return Err(format!("line {}: no owner name", i + 1)),
                }
            }
        }
        for ch in line.chars() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| format!("line {}: unbalanced ')'", i + 1))?
                }
                _ => {}
            }
        }
        tokens.extend(
            line.replace(['(', ')'], " ")
                .split_whitespace()
                .map(str::to_string),
        );
        if depth == 0 && !tokens.is_empty() {
            let rec = parse_record(&tokens).map_err(|e| format!("line {start_line}: {e}"))?;
            last_owner = Some(tokens[0].clone());
            out.push(rec);
            tokens.clear();
        }
    }
    if depth != 0 {
        return Err(format!("line {start_line}: unbalanced '('"));
    }
    Ok(out)
}

fn parse_record(t: &[String]) -> Result<AnchorRecord, String> {
    let owner_s = &t[0];
    let owner = Name::from_ascii(if owner_s.ends_with('.') {
        owner_s.clone()
    } else {
        format!("{owner_s}.")
    })
    .map_err(|e| format!("owner name {owner_s:?}: {e}"))?;
    let mut i = 1;
    // Optional TTL and class, in either order.
    while i < t.len() && (t[i].parse::<u32>().is_ok() || t[i].eq_ignore_ascii_case("IN")) {
        i += 1;
    }
    let ty = t.get(i).ok_or("record type missing")?.to_ascii_uppercase();
    let rd = &t[i + 1..];
    let num = |k: usize, what: &str| -> Result<u64, String> {
        rd.get(k)
            .ok_or_else(|| format!("{ty}: {what} missing"))?
            .parse::<u64>()
            .map_err(|_| format!("{ty}: {what} {:?} is not a number", rd[k]))
    };
    match ty.as_str() {
        "DNSKEY" => {
            let flags = u16::try_from(num(0, "flags")?).map_err(|_| "DNSKEY: flags too large")?;
            let algorithm =
                u8::try_from(num(2, "algorithm")?).map_err(|_| "DNSKEY: algorithm too large")?;
            let b64: String = rd.get(3..).unwrap_or_default().concat();
            if b64.is_empty() {
                return Err("DNSKEY: public key missing".into());
            }
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| format!("DNSKEY: public key is not base64: {e}"))?;
            Ok(AnchorRecord::Dnskey {
                owner,
                flags,
                algorithm,
                key,
            })
        }
        "DS" => {
            let key_tag = u16::try_from(num(0, "key tag")?).map_err(|_| "DS: key tag too large")?;
            let algorithm =
                u8::try_from(num(1, "algorithm")?).map_err(|_| "DS: algorithm too large")?;
            let digest_type =
                u8::try_from(num(2, "digest type")?).map_err(|_| "DS: digest type too large")?;
            let hexs: String = rd.get(3..).unwrap_or_default().concat();
            if hexs.is_empty() {
                return Err("DS: digest missing".into());
            }
            let digest = hex::decode(&hexs).map_err(|e| format!("DS: digest is not hex: {e}"))?;
            Ok(AnchorRecord::Ds {
                owner,
                key_tag,
                algorithm,
                digest_type,
                digest,
            })
        }
        other => Err(format!(
            "record type {other} is not a trust anchor (DNSKEY or DS expected)"
        )),
    }
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
        assert!(
            parse_anchor_text(". IN A 192.0.2.1\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            parse_anchor_text("\n. DS 1 8 2 zz\n")
                .unwrap_err()
                .starts_with("line 2")
        );
        assert!(parse_anchor_text(". DNSKEY 257 3 8 (abc\n").is_err());
        assert!(parse_anchor_text("").unwrap().is_empty());
    }
}
