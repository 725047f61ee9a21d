//! How the zones on the DANE path are signed (RFC 8624, RFC 9905, RFC 9276):
//! a chain of trust that validates today can still be fragile. Each zone
//! from the trust anchor down to the zones holding the MX, address and TLSA
//! records is judged on its DNSKEY algorithms, its key sizes, the digests
//! of its DS records and its NSEC3 parameters.
//!
//! Only zones on the secure chain are judged (the root, or a zone with a
//! DS at its parent): an unsigned delegation makes everything below it
//! insecure, which other findings say.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::evidence::{DsDigest, ZoneDenial, ZoneKey, ZoneSignatures};
use super::finding::{Code, Finding};

/// RSA keys shorter than this are weak (RFC 8624 §3.1, RFC 6781 §3.4.2).
pub const MIN_RSA_BITS: u32 = 2048;
/// NSEC3 iterations above this may make validators treat the zone's
/// answers as insecure (RFC 9276 §3.2).
pub const NSEC3_INSECURE_ITERATIONS: u16 = 150;
/// DS digest type 1 (RFC 3658).
const DIGEST_SHA1: u8 = 1;

/// The replacement algorithm named in every fix.
const REPLACEMENT: &str = "13 (ECDSAP256SHA256) or 15 (Ed25519)";

/// DNSKEY algorithms that must not (or should not) be used for signing:
/// RFC 8624 §3.1 (1, 3, 6, 10, 12) and RFC 9905 §2 (5, 7).
pub fn deprecated_for_signing(alg: u8) -> bool {
    matches!(alg, 1 | 3 | 5 | 6 | 7 | 10 | 12)
}

/// The mnemonic of a DNSSEC algorithm number (IANA registry).
pub fn algorithm_name(alg: u8) -> &'static str {
    match alg {
        1 => "RSAMD5",
        3 => "DSA",
        5 => "RSASHA1",
        6 => "DSA-NSEC3-SHA1",
        7 => "RSASHA1-NSEC3-SHA1",
        8 => "RSASHA256",
        10 => "RSASHA512",
        12 => "ECC-GOST",
        13 => "ECDSAP256SHA256",
        14 => "ECDSAP384SHA384",
        15 => "ED25519",
        16 => "ED448",
        _ => "unassigned",
    }
}

fn is_rsa(alg: u8) -> bool {
    matches!(alg, 1 | 5 | 7 | 8 | 10)
}

/// RFC 9905 §2: validator operators treat these as unsupported.
fn sha1_algorithm(alg: u8) -> bool {
    matches!(alg, 5 | 7)
}

/// The modulus length in bits of an RSA public key in DNSKEY form
/// (RFC 3110 §2: exponent length, exponent, modulus); `None` if the key
/// field does not parse.
pub fn rsa_modulus_bits(key: &[u8]) -> Option<u32> {
    let (&first, rest) = key.split_first()?;
    let (exp_len, rest) = if first == 0 {
        let (len, rest) = rest.split_at_checked(2)?;
        (usize::from(u16::from_be_bytes([len[0], len[1]])), rest)
    } else {
        (usize::from(first), rest)
    };
    let modulus = rest.get(exp_len..)?;
    let start = modulus.iter().position(|b| *b != 0)?;
    let len = u32::try_from(modulus.len() - start).ok()?;
    Some(len * 8 - modulus[start].leading_zeros())
}

fn decode_key(k: &ZoneKey) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(k.key.as_bytes())
        .ok()
}

/// A name in canonical wire form (RFC 4034 §6.2): lower case, uncompressed.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len().min(63) as u8);
        out.extend(label.bytes().take(63).map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out
}

/// The SHA-256 DS record of `key` at `zone` (RFC 4509), in zone-file form.
pub fn sha256_ds(zone: &str, key: &ZoneKey) -> Option<String> {
    let raw = decode_key(key)?;
    let mut h = Sha256::new();
    h.update(wire_name(zone));
    h.update(key.flags.to_be_bytes());
    h.update([3, key.algorithm]);
    h.update(&raw);
    let owner = if zone == "." {
        ".".to_string()
    } else {
        format!("{}.", zone.trim_end_matches('.'))
    };
    Some(format!(
        "{owner} IN DS {} {} 2 {}",
        key.key_tag,
        key.algorithm,
        hex::encode_upper(h.finalize())
    ))
}

/// Keys that sign: zone keys that are not revoked.
fn signing_keys(z: &ZoneSignatures) -> impl Iterator<Item = &ZoneKey> {
    z.dnskeys
        .iter()
        .filter(|k| k.is_zone_key() && !k.is_revoked())
}

/// On the secure chain: the root (its keys are the trust anchor) or a zone
/// with a DS at its parent.
fn on_secure_chain(z: &ZoneSignatures) -> bool {
    z.zone == "." || !z.ds.is_empty()
}

/// Every finding about how the zones on the path are signed.
pub fn findings(chain: &[ZoneSignatures]) -> Vec<Finding> {
    chain
        .iter()
        .filter(|z| on_secure_chain(z))
        .flat_map(|z| {
            algorithm_finding(z)
                .into_iter()
                .chain(ds_finding(z))
                .chain(weak_key_findings(z))
                .chain(nsec3_finding(z))
        })
        .collect()
}

fn algorithm_finding(z: &ZoneSignatures) -> Option<Finding> {
    let mut algs: Vec<u8> = signing_keys(z).map(|k| k.algorithm).collect();
    algs.sort_unstable();
    algs.dedup();
    if algs.is_empty() || !algs.iter().all(|a| deprecated_for_signing(*a)) {
        return None;
    }
    let named: Vec<String> = algs
        .iter()
        .map(|a| format!("{a} ({})", algorithm_name(*a)))
        .collect();
    let mut msg = format!(
        "{} is signed only with algorithm {}, which RFC 8624 and RFC 9905 say must not be used for signing; an algorithm rollover to {REPLACEMENT} is needed",
        z.zone,
        named.join(" and ")
    );
    if algs.iter().any(|a| sha1_algorithm(*a)) {
        msg.push_str(
            ". RFC 9905 §2 tells validator operators to treat algorithms 5 and 7 as unsupported: \
             for them the zone is insecure (not bogus), so a growing share of senders skips DANE for this domain",
        );
    }
    Some(Finding::new(Code::DnssecAlgorithmDeprecated, z.zone.clone()).msg(msg))
}

fn ds_finding(z: &ZoneSignatures) -> Option<Finding> {
    if z.ds.is_empty() || !z.ds.iter().all(|d| d.digest_type == DIGEST_SHA1) {
        return None;
    }
    let tags: Vec<String> = z.ds.iter().map(|d| d.key_tag.to_string()).collect();
    let f = Finding::new(Code::DsDigestSha1Only, z.zone.clone()).msg(format!(
        "the DS records of {} at its parent (key tag {}) use only digest type 1 (SHA-1), which RFC 8624 §3.3 says must not be used",
        z.zone,
        tags.join(", ")
    ));
    let records: Vec<String> = ds_keys(z)
        .into_iter()
        .filter_map(|k| sha256_ds(&z.zone, k))
        .collect();
    if records.is_empty() {
        return Some(f);
    }
    Some(f.fix(format!(
        "Publish at the parent (registrar) the SHA-256 DS: `{}`; once it is served, remove the SHA-1 DS.",
        records.join("` and `")
    )))
}

/// The keys the DS records point at (else the key-signing keys).
fn ds_keys(z: &ZoneSignatures) -> Vec<&ZoneKey> {
    let pointed = |k: &&ZoneKey| {
        z.ds.iter()
            .any(|d: &DsDigest| d.key_tag == k.key_tag && d.algorithm == k.algorithm)
    };
    let keys: Vec<&ZoneKey> = signing_keys(z).filter(pointed).collect();
    if keys.is_empty() {
        signing_keys(z).filter(|k| k.is_sep()).collect()
    } else {
        keys
    }
}

fn weak_key_findings(z: &ZoneSignatures) -> Vec<Finding> {
    signing_keys(z)
        .filter(|k| is_rsa(k.algorithm))
        .filter_map(|k| {
            let bits = decode_key(k).and_then(|raw| rsa_modulus_bits(&raw))?;
            (bits < MIN_RSA_BITS).then(|| {
                let role = if k.is_sep() { "KSK" } else { "ZSK" };
                Finding::new(Code::DnssecKeyWeak, format!("{} DNSKEY {}", z.zone, k.key_tag))
                    .msg(format!(
                        "the DNSKEY of {} with key tag {} ({role}, algorithm {} {}) is a {bits}-bit RSA key: at least {MIN_RSA_BITS} bits are needed",
                        z.zone,
                        k.key_tag,
                        k.algorithm,
                        algorithm_name(k.algorithm)
                    ))
            })
        })
        .collect()
}

fn nsec3_finding(z: &ZoneSignatures) -> Option<Finding> {
    let Some(ZoneDenial::Nsec3 {
        hash,
        iterations,
        salt,
    }) = &z.denial
    else {
        return None;
    };
    if *iterations == 0 && salt.is_empty() {
        return None;
    }
    let shown_salt = if salt.is_empty() { "-" } else { salt.as_str() };
    let mut msg = format!(
        "{} uses NSEC3 with {iterations} extra iteration(s) and {}; RFC 9276 §3.1 asks for `NSEC3PARAM {hash} 0 0 -` (0 iterations, no salt), now `NSEC3PARAM {hash} 0 {iterations} {shown_salt}`",
        z.zone,
        if salt.is_empty() {
            "no salt".to_string()
        } else {
            format!("the salt {salt}")
        }
    );
    let f = Finding::new(Code::Nsec3Parameters, z.zone.clone());
    if *iterations > NSEC3_INSECURE_ITERATIONS {
        msg.push_str(&format!(
            "; above {NSEC3_INSECURE_ITERATIONS} iterations validators may treat the zone's answers as insecure (RFC 9276 §3.2), and DANE then stops working for their senders"
        ));
        return Some(f.secondary().msg(msg));
    }
    Some(f.msg(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Severity;

    fn key(flags: u16, alg: u8, tag: u16, raw: &[u8]) -> ZoneKey {
        ZoneKey {
            flags,
            algorithm: alg,
            key_tag: tag,
            key: base64::engine::general_purpose::STANDARD.encode(raw),
        }
    }

    /// RFC 3110 form: exponent 65537 (3 bytes), then a modulus of `bits` bits.
    fn rsa(bits: usize) -> Vec<u8> {
        let mut k = vec![3, 1, 0, 1];
        let mut m = vec![0xffu8; bits.div_ceil(8)];
        m[0] = 0x80;
        k.extend(m);
        k
    }

    fn zone(name: &str, keys: Vec<ZoneKey>, ds: &[(u16, u8, u8)]) -> ZoneSignatures {
        ZoneSignatures {
            zone: name.into(),
            rrsigs: vec![],
            dnskeys: keys,
            ds: ds
                .iter()
                .map(|&(key_tag, algorithm, digest_type)| DsDigest {
                    key_tag,
                    algorithm,
                    digest_type,
                })
                .collect(),
            denial: None,
        }
    }

    fn codes(f: &[Finding]) -> Vec<Code> {
        f.iter().map(|f| f.code).collect()
    }

    #[test]
    fn modulus_bits_follow_rfc_3110() {
        assert_eq!(rsa_modulus_bits(&rsa(1024)), Some(1024));
        assert_eq!(rsa_modulus_bits(&rsa(2048)), Some(2048));
        // Long exponent form: 0, then a 2-byte length.
        let mut long = vec![0, 0, 3, 1, 0, 1];
        long.extend(vec![0x01; 128]);
        assert_eq!(rsa_modulus_bits(&long), Some(1017));
        assert_eq!(rsa_modulus_bits(&[]), None);
        assert_eq!(rsa_modulus_bits(&[9, 1, 2]), None);
        assert_eq!(rsa_modulus_bits(&[0, 0]), None);
    }

    #[test]
    fn sha1_only_zones_and_keys() {
        let z = zone(
            "mail.example",
            vec![key(257, 7, 1, &rsa(2048)), key(256, 7, 2, &rsa(1024))],
            &[(1, 7, 1)],
        );
        let f = findings(&[z]);
        assert_eq!(
            codes(&f),
            vec![
                Code::DnssecAlgorithmDeprecated,
                Code::DsDigestSha1Only,
                Code::DnssecKeyWeak
            ]
        );
        assert!(
            f[0].message.contains("insecure (not bogus)"),
            "{}",
            f[0].message
        );
        assert!(
            f[1].fix.contains("mail.example. IN DS 1 7 2 "),
            "{}",
            f[1].fix
        );
        assert!(f[2].message.contains("1024-bit"), "{}", f[2].message);
    }

    #[test]
    fn a_rollover_in_progress_is_not_deprecated() {
        let z = zone(
            "example",
            vec![key(257, 7, 1, &rsa(2048)), key(257, 13, 2, &[1; 64])],
            &[(1, 7, 2), (2, 13, 2)],
        );
        assert!(findings(&[z]).is_empty());
        // An unsigned delegation (no DS) is not judged.
        let z = zone("island", vec![key(257, 5, 1, &rsa(1024))], &[]);
        assert!(findings(&[z]).is_empty());
        // The root is judged by its keys alone.
        let z = zone(".", vec![key(257, 10, 1, &rsa(2048))], &[]);
        assert_eq!(
            codes(&findings(&[z])),
            vec![Code::DnssecAlgorithmDeprecated]
        );
    }

    #[test]
    fn nsec3_parameters_notice_then_warning() {
        let mut z = zone("example", vec![key(257, 13, 1, &[1; 64])], &[(1, 13, 2)]);
        let n3 = |iterations, salt: &str| {
            Some(ZoneDenial::Nsec3 {
                hash: 1,
                iterations,
                salt: salt.into(),
            })
        };
        z.denial = n3(0, "");
        assert!(findings(std::slice::from_ref(&z)).is_empty());
        z.denial = n3(10, "aabbccdd");
        let f = findings(std::slice::from_ref(&z));
        assert_eq!(codes(&f), vec![Code::Nsec3Parameters]);
        assert_eq!(f[0].severity, Severity::Notice);
        assert!(
            f[0].message.contains("NSEC3PARAM 1 0 0 -"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("NSEC3PARAM 1 0 10 aabbccdd"));
        z.denial = n3(151, "");
        let f = findings(std::slice::from_ref(&z));
        assert_eq!(f[0].severity, Severity::Warning);
        z.denial = Some(ZoneDenial::Nsec);
        assert!(findings(&[z]).is_empty());
    }

    /// The SHA-256 DS of a known key: the root KSK 20326 (IANA root-anchors.xml).
    #[test]
    fn sha256_ds_matches_the_iana_root_anchor() {
        let k = ZoneKey {
            flags: 257,
            algorithm: 8,
            key_tag: 20326,
            key: "AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=".into(),
        };
        assert_eq!(
            sha256_ds(".", &k).unwrap(),
            ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
        );
        assert_eq!(
            rsa_modulus_bits(
                &base64::engine::general_purpose::STANDARD
                    .decode(k.key.as_bytes())
                    .unwrap()
            ),
            Some(2048)
        );
    }
}
