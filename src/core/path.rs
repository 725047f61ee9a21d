//! The signed RRsets a domain's DANE answers depend on, and when the first
//! of them runs out of valid signatures: a monitor (`watch`) can alert
//! before that moment instead of after it.
//!
//! One RRset is grouped by (owner, covered type, signer) and stays valid
//! while any of its signatures does, so its expiry is that of its latest
//! signature; a path expires with its earliest RRset.

use std::collections::BTreeMap;

use super::audit::SignatureExpiry;
use super::evidence::{Evidence, HostEvidence, LookupMeta, Rrsig};

/// (owner, covered type, signer).
pub type RrsetKey = (String, String, String);
/// Signed RRsets and their signatures.
pub type Rrsets<'a> = BTreeMap<RrsetKey, Vec<&'a Rrsig>>;

fn add<'a>(groups: &mut Rrsets<'a>, owner: &str, sigs: &'a [Rrsig]) {
    for s in sigs {
        groups
            .entry((owner.to_string(), s.covered.clone(), s.signer.clone()))
            .or_default()
            .push(s);
    }
}

fn add_meta<'a>(groups: &mut Rrsets<'a>, m: &'a LookupMeta) {
    add(groups, &m.qname, &m.rrsigs);
}

fn add_host<'a>(groups: &mut Rrsets<'a>, h: &'a HostEvidence) {
    add_meta(groups, &h.a.meta);
    add_meta(groups, &h.aaaa.meta);
    if let Some(t) = &h.tlsa {
        add_meta(groups, &t.meta);
    }
}

/// Every signed RRset of the evidence: MX, each host's A, AAAA and TLSA
/// (aliases and denials included), and the DNSKEY and DS RRsets of the
/// chain of trust.
pub fn rrsets(ev: &Evidence) -> Rrsets<'_> {
    let mut groups = Rrsets::new();
    add_meta(&mut groups, &ev.mx.meta);
    for h in &ev.hosts {
        add_host(&mut groups, h);
    }
    for z in &ev.chain {
        add(&mut groups, &z.zone, &z.rrsigs);
    }
    groups
}

/// `zone` is `name` or one of its ancestors (names without the final dot;
/// the root is `.`).
fn encloses(zone: &str, name: &str) -> bool {
    // Bytes, not `str` slices: evidence is input, and may hold any UTF-8.
    let zone = zone.trim_end_matches('.').as_bytes();
    let name = name.trim_end_matches('.').as_bytes();
    zone.is_empty()
        || name.eq_ignore_ascii_case(zone)
        || name
            .len()
            .checked_sub(zone.len() + 1)
            .is_some_and(|i| name[i] == b'.' && name[i + 1..].eq_ignore_ascii_case(zone))
}

/// The signed RRsets one host's DANE answer depends on: the domain's MX,
/// the host's A, AAAA and TLSA, and the DNSKEY and DS RRsets of every zone
/// from their signers up to the trust anchor.
pub fn host_rrsets<'a>(ev: &'a Evidence, h: &'a HostEvidence) -> Rrsets<'a> {
    let mut groups = Rrsets::new();
    add_meta(&mut groups, &ev.mx.meta);
    add_host(&mut groups, h);
    let signers: Vec<String> = groups.keys().map(|(_, _, s)| s.clone()).collect();
    for z in &ev.chain {
        if signers.iter().any(|s| encloses(&z.zone, s)) {
            add(&mut groups, &z.zone, &z.rrsigs);
        }
    }
    groups
}

/// A name as reports show it: no final dot, the root as `.`.
fn shown(name: &str) -> &str {
    match name.trim_end_matches('.') {
        "" => ".",
        n => n,
    }
}

/// When the first RRset on `h`'s path loses its last valid signature.
pub fn earliest_expiry(ev: &Evidence, h: &HostEvidence) -> Option<SignatureExpiry> {
    host_rrsets(ev, h)
        .into_iter()
        .filter_map(|((owner, covered, signer), sigs)| {
            let last = sigs.into_iter().max_by_key(|s| s.expiration)?;
            Some(SignatureExpiry {
                at: last.expiration,
                rrset: format!("{} {covered}", shown(&owner)),
                signer: shown(&signer).to_string(),
                key_tag: last.key_tag,
            })
        })
        .min_by(|a, b| (a.at, &a.rrset).cmp(&(b.at, &b.rrset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dnssec::DnssecStatus;
    use crate::core::evidence::{
        CollectorInfo, Lookup, MxRecord, Outcome, Timestamp, ZoneSignatures,
    };

    fn sig(covered: &str, signer: &str, tag: u16, exp: i64) -> Rrsig {
        Rrsig {
            covered: covered.into(),
            signer: signer.into(),
            key_tag: tag,
            algorithm: 13,
            inception: Timestamp(0),
            expiration: Timestamp(exp),
        }
    }

    fn meta(qname: &str, rrsigs: Vec<Rrsig>) -> LookupMeta {
        LookupMeta {
            qname: qname.into(),
            outcome: Outcome::Answer,
            failure: None,
            dnssec: DnssecStatus::Secure,
            ttl: Some(300),
            rrsigs,
            cnames: vec![],
            witness: None,
        }
    }

    fn host(name: &str, signer: &str, exp: i64) -> HostEvidence {
        HostEvidence {
            name: name.into(),
            preference: Some(10),
            tlsa_base: name.into(),
            a: Lookup {
                meta: meta(name, vec![sig("A", signer, 1, exp)]),
                records: vec![],
            },
            aaaa: Lookup {
                meta: meta(name, vec![]),
                records: vec![],
            },
            tlsa: None,
            nameservers: vec![],
            smtp: vec![],
            tlsa_answer_octets: None,
        }
    }

    fn zone(name: &str, rrsigs: Vec<Rrsig>) -> ZoneSignatures {
        ZoneSignatures {
            zone: name.into(),
            rrsigs,
            dnskeys: vec![],
            ds: vec![],
            denial: None,
        }
    }

    #[test]
    fn names_enclose_by_whole_labels() {
        assert!(encloses(".", "mx.example"));
        assert!(encloses("example", "mx.example"));
        assert!(encloses("example", "EXAMPLE"));
        assert!(!encloses("ample", "mx.example"));
        assert!(!encloses("mx.example", "example"));
        assert!(encloses("é", "aé.é"));
        assert!(!encloses("é", "xé"));
    }

    /// Each host's path: its own RRsets, the MX, and only the zones above
    /// its signers; an RRset counts until its latest signature expires.
    #[test]
    fn earliest_expiry_on_each_hosts_path() {
        let ev = Evidence {
            schema_version: 1,
            domain: "example".into(),
            collected_at: Timestamp(0),
            collector: CollectorInfo::default(),
            mx: Lookup {
                meta: meta("example", vec![sig("MX", "example", 7, 900)]),
                records: vec![MxRecord {
                    preference: 10,
                    exchange: "mx.a.example".into(),
                }],
            },
            hosts: vec![
                host("mx.a.example", "a.example", 500),
                host("mx.b.test", "b.test", 800),
            ],
            chain: vec![
                zone(".", vec![sig("DNSKEY", ".", 1, 2000)]),
                zone(
                    "a.example",
                    vec![
                        sig("DNSKEY", "a.example", 3, 400),
                        sig("DNSKEY", "a.example", 4, 450),
                    ],
                ),
                zone("b.test", vec![sig("DS", "test", 5, 100)]),
            ],
            nameservers: vec![],
        };
        let a = earliest_expiry(&ev, &ev.hosts[0]).unwrap();
        assert_eq!(
            (a.at, a.rrset.as_str(), a.key_tag),
            (Timestamp(450), "a.example DNSKEY", 4)
        );
        let b = earliest_expiry(&ev, &ev.hosts[1]).unwrap();
        assert_eq!(
            (b.at, b.rrset.as_str(), b.signer.as_str()),
            (Timestamp(100), "b.test DS", "test")
        );
        assert_eq!(rrsets(&ev).len(), 6);
    }
}
