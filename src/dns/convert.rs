//! From hickory's wire types to the core's evidence types.

use std::net::IpAddr;

use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::rdata::opt::EdnsOption;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{DsDigest, Ede, MxRecord, Rrsig, Timestamp, ZoneDenial, ZoneKey};
use crate::core::tlsa::TlsaRdata;

/// A name as evidence shows it: lower case, no trailing dot; the root is `.`.
pub fn show(name: &Name) -> String {
    if name.is_root() {
        return ".".into();
    }
    let s = name.to_lowercase().to_ascii();
    s.strip_suffix('.').unwrap_or(&s).to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} is not a domain name")]
    Empty(String),
    #[error("{0:?} is not a valid IDN: {1}")]
    Idna(String, String),
    #[error("{0:?} is not a domain name: {1}")]
    Invalid(String, String),
    #[error("{0:?} is longer than 253 characters")]
    TooLong(String),
}

/// A name for a DNS question: A-labels, lower case, fully qualified.
pub fn normalize(input: &str) -> Result<(String, Name), NameError> {
    let s = input.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err(NameError::Empty(input.to_string()));
    }
    let ascii = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).map_err(|e| NameError::Idna(input.to_string(), e.to_string()))?
    };
    let name = Name::from_ascii(format!("{ascii}."))
        .map_err(|e| NameError::Invalid(input.to_string(), e.to_string()))?;
    if ascii.len() > 253 {
        return Err(NameError::TooLong(input.to_string()));
    }
    Ok((ascii, name))
}

pub fn status(p: Proof) -> DnssecStatus {
    match p {
        Proof::Secure => DnssecStatus::Secure,
        Proof::Insecure => DnssecStatus::Insecure,
        Proof::Bogus => DnssecStatus::Bogus,
        _ => DnssecStatus::Indeterminate,
    }
}

fn rank(s: DnssecStatus) -> u8 {
    match s {
        DnssecStatus::Bogus => 0,
        DnssecStatus::Indeterminate => 1,
        DnssecStatus::Insecure => 2,
        DnssecStatus::Secure => 3,
    }
}

/// The weaker of two statuses: one bogus link makes the chain bogus.
pub fn worst(a: DnssecStatus, b: DnssecStatus) -> DnssecStatus {
    if rank(a) <= rank(b) { a } else { b }
}

/// RRSIG times are RFC 1982 serial numbers: the Unix time within 2^31 s of `now`.
pub fn unwrap_serial(v: u32, now: i64) -> i64 {
    const M: i64 = 1 << 32;
    const H: i64 = 1 << 31;
    let mut t = now - now.rem_euclid(M) + i64::from(v);
    if t - now > H {
        t -= M;
    } else if now - t > H {
        t += M;
    }
    t
}

/// The RRSIG records in `records` over `owner`/`covered` (any owner when `None`).
pub fn rrsigs<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    owner: Option<&Name>,
    covered: &[RecordType],
    now: i64,
) -> Vec<Rrsig> {
    records
        .into_iter()
        .filter(|r| owner.is_none_or(|o| r.name == *o))
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                let i = sig.input();
                covered.contains(&i.type_covered).then(|| Rrsig {
                    covered: i.type_covered.to_string(),
                    signer: show(&i.signer_name),
                    key_tag: i.key_tag,
                    algorithm: u8::from(i.algorithm),
                    inception: Timestamp(unwrap_serial(i.sig_inception.get(), now)),
                    expiration: Timestamp(unwrap_serial(i.sig_expiration.get(), now)),
                })
            }
            _ => None,
        })
        .collect()
}

pub fn mx(r: &Record) -> Option<MxRecord> {
    match &r.data {
        RData::MX(m) => Some(MxRecord {
            preference: m.preference,
            exchange: show(&m.exchange),
        }),
        _ => None,
    }
}

pub fn address(r: &Record) -> Option<IpAddr> {
    match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

pub fn tlsa(r: &Record) -> Option<TlsaRdata> {
    match &r.data {
        RData::TLSA(t) => Some(TlsaRdata {
            usage: u8::from(t.cert_usage),
            selector: u8::from(t.selector),
            mtype: u8::from(t.matching),
            data: t.cert_data.clone(),
        }),
        _ => None,
    }
}

/// Presentation form of one record's data, for comparing servers.
pub fn presentation(r: &Record) -> String {
    match tlsa(r) {
        Some(t) => t.to_string(),
        None => r.data.to_string(),
    }
}

/// The DNSKEY records at `zone` among `records`.
pub fn zone_keys<'a>(records: impl IntoIterator<Item = &'a Record>, zone: &Name) -> Vec<ZoneKey> {
    use base64::Engine;
    use hickory_resolver::proto::dnssec::PublicKey;
    records
        .into_iter()
        .filter(|r| r.name == *zone)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(ZoneKey {
                flags: k.flags(),
                algorithm: u8::from(k.public_key().algorithm()),
                key_tag: k.calculate_key_tag().unwrap_or(0),
                key: base64::engine::general_purpose::STANDARD
                    .encode(k.public_key().public_bytes()),
            }),
            _ => None,
        })
        .collect()
}

/// The DS records at `zone` among `records` (digest values left out).
pub fn ds_digests<'a>(records: impl IntoIterator<Item = &'a Record>, zone: &Name) -> Vec<DsDigest> {
    records
        .into_iter()
        .filter(|r| r.name == *zone)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DS(d)) => Some(DsDigest {
                key_tag: d.key_tag(),
                algorithm: u8::from(d.algorithm()),
                digest_type: u8::from(d.digest_type()),
            }),
            _ => None,
        })
        .collect()
}

/// How `zone` denies existence, from the answer to its NSEC3PARAM question:
/// the NSEC3PARAM record, else the NSEC3 or NSEC records that prove it has
/// none; `None` when the answer shows neither (unsigned, or a failure).
pub fn zone_denial(resp: &Message, zone: &Name) -> Option<ZoneDenial> {
    let nsec3 = |hash: u8, iterations: u16, salt: &[u8]| ZoneDenial::Nsec3 {
        hash,
        iterations,
        salt: hex::encode(salt),
    };
    let param = resp.answers.iter().find_map(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC3PARAM(p)) if r.name == *zone => Some(nsec3(
            u8::from(p.hash_algorithm()),
            p.iterations(),
            p.salt(),
        )),
        _ => None,
    });
    param.or_else(|| {
        resp.authorities
            .iter()
            .filter(|r| zone.zone_of(&r.name))
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some(nsec3(
                    u8::from(n.hash_algorithm()),
                    n.iterations(),
                    n.salt(),
                )),
                RData::DNSSEC(DNSSECRData::NSEC(_)) => Some(ZoneDenial::Nsec),
                _ => None,
            })
    })
}

/// Octets of the smallest response to `name qtype` that carries
/// `records` with their RRSIGs (header, question, answer section, an EDNS
/// OPT record with DO=1): what an authoritative server must send.
pub fn answer_octets(name: &Name, qtype: RecordType, answers: &[Record]) -> Option<u32> {
    use hickory_resolver::proto::op::{Edns, MessageType, OpCode, Query};
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name.clone(), qtype));
    for r in answers.iter().filter(|r| r.name == *name) {
        let keep = r.record_type() == qtype
            || matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == qtype);
        if keep {
            m.add_answer(r.clone());
        }
    }
    let mut edns = Edns::new();
    edns.set_max_payload(super::transport::EDNS_PAYLOAD)
        .set_dnssec_ok(true);
    m.edns = Some(edns);
    m.to_vec().ok().and_then(|v| u32::try_from(v.len()).ok())
}

/// The first RFC 8914 extended DNS error of a response.
pub fn ede(msg: &Message) -> Option<Ede> {
    let edns = msg.edns.as_ref()?;
    edns.options().options.iter().find_map(|(code, opt)| {
        if u16::from(*code) != 15 {
            return None;
        }
        let data: &[u8] = match opt {
            EdnsOption::Unknown(_, d) => d,
            _ => return None,
        };
        if data.len() < 2 {
            return None;
        }
        let text = String::from_utf8_lossy(&data[2..])
            .trim_end_matches('\0')
            .to_string();
        Some(Ede {
            code: u16::from_be_bytes([data[0], data[1]]),
            text,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_times_unwrap_around_now() {
        let now = 1_800_000_000i64;
        assert_eq!(unwrap_serial(1_800_000_100, now), 1_800_000_100);
        assert_eq!(unwrap_serial(1_577_836_800, now), 1_577_836_800);
        // After 2106 the 32-bit value wraps; stays within 2^31 of now.
        let later = (1i64 << 32) + 100;
        assert_eq!(unwrap_serial(50, later), (1i64 << 32) + 50);
        assert_eq!(unwrap_serial(u32::MAX - 10, later), (1i64 << 32) - 11);
    }

    #[test]
    fn names_are_shown_lower_case_without_dot() {
        assert_eq!(
            show(&Name::from_ascii("MX.Example.ORG.").unwrap()),
            "mx.example.org"
        );
        assert_eq!(show(&Name::root()), ".");
        let (s, n) = normalize(" Example.ORG. ").unwrap();
        assert_eq!(s, "example.org");
        assert!(n.is_fqdn());
        assert_eq!(
            normalize("bücher.example").unwrap().0,
            "xn--bcher-kva.example"
        );
        assert!(normalize("").is_err());
        assert!(normalize("a..b").is_err());
    }

    #[test]
    fn worst_status_wins() {
        use DnssecStatus::*;
        assert_eq!(worst(Secure, Insecure), Insecure);
        assert_eq!(worst(Insecure, Bogus), Bogus);
        assert_eq!(worst(Indeterminate, Bogus), Bogus);
        assert_eq!(worst(Secure, Secure), Secure);
    }
}
