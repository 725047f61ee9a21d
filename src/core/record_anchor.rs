//! DANE-TA records that carry their trust anchor in full: `2 0 0` (the CA
//! certificate) and `2 1 0` (its public key).
//!
//! RFC 7671 §5.2.2 lets a server leave the trust anchor out of its chain when
//! the TLSA record holds it in full, since the client then has the anchor
//! from DNS; §5.2.3 makes a bare public key (`2 1 0`) usable as the anchor.
//! OpenSSL's DANE code (and so Postfix) accepts such chains, so an auditor
//! that called them "not in chain" would flag working servers as broken.
//!
//! A bare key has no name, so the anchor's place is found by trying it as
//! the issuer of each served certificate in turn: the path from the leaf up
//! to the first certificate whose signature the key verifies.

use rustls_pki_types::{Der, TrustAnchor};
use x509_parser::asn1_rs::{Any, FromDer};
use x509_parser::prelude::X509Certificate;
use x509_parser::x509::SubjectPublicKeyInfo;

#[cfg(test)]
use super::cert;
use super::cert::CertInfo;
use super::dane::{PathError, TaFailure, name_failure, time_failure, verify_path};
use super::evidence::Timestamp;
use super::tlsa::{MatchingType, Selector, TlsaRdata, UsableRecord, Usage};

/// The anchor a full DANE-TA record holds (whole DER elements).
struct Anchor<'a> {
    /// The CA's subject name; unknown for a bare key.
    subject: Option<&'a [u8]>,
    spki: SubjectPublicKeyInfo<'a>,
}

/// Validates the served chain up to the anchor the record holds.
///
/// `None`: the record holds no anchor, or its key signed none of the served
/// certificates. `Some(Ok(top))`: the anchor signed the certificate at depth
/// `top` and the path below it is valid; `Some(Err(..))`: the anchor signed
/// `top`, but the path is out of date, invalid, or the leaf misnames.
pub fn validate(
    record: &TlsaRdata,
    u: &UsableRecord,
    chain: &[CertInfo],
    reference_ids: &[String],
    now: Timestamp,
) -> Option<Result<usize, TaFailure>> {
    with_anchor(record, u, |anchor| {
        let top = signed_by(anchor, chain)?;
        let failure = time_failure(&chain[..=top], now)
            .or_else(|| path_failure(anchor, chain, top, now))
            .or_else(|| name_failure(chain, reference_ids));
        Some(failure.map_or(Ok(top), Err))
    })
}

/// The depth of the lowest served certificate the record's anchor issued
/// (for reports: where a `2 x 0` record attaches to the served chain).
pub fn signed_depth(record: &TlsaRdata, u: &UsableRecord, chain: &[CertInfo]) -> Option<usize> {
    with_anchor(record, u, |anchor| signed_by(anchor, chain))
}

fn with_anchor<T>(
    record: &TlsaRdata,
    u: &UsableRecord,
    f: impl FnOnce(&Anchor<'_>) -> Option<T>,
) -> Option<T> {
    if u.usage != Usage::DaneTa || u.mtype != MatchingType::Full {
        return None;
    }
    match u.selector {
        Selector::Cert => {
            let cert = whole::<X509Certificate>(&record.data)?;
            f(&Anchor {
                subject: Some(cert.tbs_certificate.subject.as_raw()),
                spki: cert.tbs_certificate.subject_pki.clone(),
            })
        }
        Selector::Spki => f(&Anchor {
            subject: None,
            spki: whole::<SubjectPublicKeyInfo>(&record.data)?,
        }),
    }
}

fn signed_by(anchor: &Anchor<'_>, chain: &[CertInfo]) -> Option<usize> {
    chain.iter().position(|c| signed(anchor, c))
}

/// One DER element that fills `der` exactly.
fn whole<'a, T: FromDer<'a, x509_parser::error::X509Error>>(der: &'a [u8]) -> Option<T> {
    match T::from_der(der) {
        Ok(([], v)) => Some(v),
        _ => None,
    }
}

/// Whether the anchor issued `c`: names agree (when the anchor has one) and
/// its key verifies `c`'s signature. Independent of any validity period, so
/// that an out-of-date certificate is reported as such, not as unsigned.
fn signed(anchor: &Anchor<'_>, c: &CertInfo) -> bool {
    let Some(x) = whole::<X509Certificate>(&c.der) else {
        return false;
    };
    anchor
        .subject
        .is_none_or(|s| s == x.tbs_certificate.issuer.as_raw())
        && x.verify_signature(Some(&anchor.spki)).is_ok()
}

/// webpki's verdict on the path from the leaf up to the anchor above `top`.
fn path_failure(
    anchor: &Anchor<'_>,
    chain: &[CertInfo],
    top: usize,
    now: Timestamp,
) -> Option<TaFailure> {
    let x = whole::<X509Certificate>(&chain[top].der)?;
    let ta = TrustAnchor {
        subject: Der::from(contents(x.tbs_certificate.issuer.as_raw())?),
        subject_public_key_info: Der::from(contents(anchor.spki.raw)?),
        name_constraints: None,
    };
    let intermediates: Vec<&CertInfo> = chain[1..=top].iter().collect();
    verify_path(chain, &intermediates, ta, now)
        .err()
        .map(|e| TaFailure::ChainInvalid(PathError::Path(e)))
}

/// The contents of one DER element (its value without tag and length), as
/// webpki takes a trust anchor's name and key.
fn contents(der: &[u8]) -> Option<&[u8]> {
    Any::from_der(der).ok().map(|(_, any)| any.data)
}

#[cfg(test)]
mod tests {
    use super::super::dane::{RecordMatch, match_record};
    use super::*;

    fn load(name: &str) -> CertInfo {
        let path = format!("{}/testdata/certs/{name}.der", env!("CARGO_MANIFEST_DIR"));
        CertInfo::parse(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    fn full(selector: u8, ca: &str) -> TlsaRdata {
        let c = load(ca);
        TlsaRdata {
            usage: 2,
            selector,
            mtype: 0,
            data: if selector == 0 {
                c.der
            } else {
                c.spki.unwrap()
            },
        }
    }

    /// 2030-06-01, inside the validity of the committed test certificates.
    const NOW: Timestamp = Timestamp(1_906_502_400);

    fn outcome(record: &TlsaRdata, chain: &[&str]) -> RecordMatch {
        let chain: Vec<CertInfo> = chain.iter().map(|n| load(n)).collect();
        match_record(record, &chain, &["mx1.example.net".into()], NOW)
    }

    /// RFC 7671 §5.2.2: a `2 0 0` or `2 1 0` record's anchor need not be
    /// sent; it stands one above the served chain's top.
    #[test]
    fn full_anchor_in_the_record_authenticates_an_unsent_ca() {
        let cases: &[(u8, &str, &[&str], Option<usize>)] = &[
            // The root signed the intermediate the server sends.
            (1, "root-ca", &["leaf-rsa", "int-ca"], Some(2)),
            (0, "root-ca", &["leaf-rsa", "int-ca"], Some(2)),
            // The intermediate's own key signed the leaf, sent alone.
            (1, "int-ca", &["leaf-ec"], Some(1)),
            (0, "int-ca", &["leaf-ec"], Some(1)),
            // An unrelated CA's key signed nothing served.
            (1, "other-root", &["leaf-rsa", "int-ca"], None),
            (0, "other-int", &["leaf-rsa", "int-ca"], None),
            // A leaf's key is no CA of this chain.
            (1, "leaf-other", &["leaf-rsa", "int-ca"], None),
        ];
        for (sel, ca, chain, want) in cases {
            let got = outcome(&full(*sel, ca), chain);
            let want = match want {
                Some(depth) => RecordMatch::Authenticated { depth: *depth },
                None => RecordMatch::NoMatch,
            };
            assert_eq!(got, want, "2 {sel} 0 of {ca} against {chain:?}");
        }
    }

    #[test]
    fn signed_depth_is_where_the_anchor_attaches() {
        let chain: Vec<CertInfo> = ["leaf-rsa", "int-ca"].iter().map(|n| load(n)).collect();
        let at = |r: &TlsaRdata| match r.usability() {
            super::super::tlsa::Usability::Usable(u) => signed_depth(r, &u, &chain),
            _ => None,
        };
        assert_eq!(at(&full(1, "root-ca")), Some(1));
        assert_eq!(at(&full(0, "int-ca")), Some(0));
        assert_eq!(at(&full(1, "other-root")), None);
        let mut ee = full(1, "root-ca");
        ee.usage = 3;
        assert_eq!(at(&ee), None, "only DANE-TA records hold an anchor");
    }

    #[test]
    fn anchored_path_still_needs_valid_times_and_the_name() {
        let root = full(1, "root-ca");
        assert!(matches!(
            outcome(&root, &["leaf-under-expired-int", "int-expired"]),
            RecordMatch::TaFailed {
                depth: 2,
                failure: TaFailure::Expired { depth: 1, .. }
            }
        ));
        // The root signed the intermediate, which did not issue this leaf.
        assert!(matches!(
            outcome(&root, &["leaf-other", "int-ca"]),
            RecordMatch::TaFailed {
                depth: 2,
                failure: TaFailure::ChainInvalid(_)
            }
        ));
        assert!(matches!(
            outcome(&root, &["leaf-misnamed", "int-ca"]),
            RecordMatch::TaFailed {
                depth: 2,
                failure: TaFailure::NameMismatch { .. }
            }
        ));
    }

    /// Digests cannot stand in for an unsent anchor (RFC 7671 §5.2.2): the
    /// client has nothing to verify signatures with.
    #[test]
    fn digest_records_of_an_unsent_ca_match_nothing() {
        let c = load("root-ca");
        for mtype in [1u8, 2] {
            let r = TlsaRdata {
                usage: 2,
                selector: 1,
                mtype,
                data: cert::digest(
                    MatchingType::from_u8(mtype).unwrap(),
                    &c.spki.clone().unwrap(),
                ),
            };
            assert_eq!(outcome(&r, &["leaf-rsa", "int-ca"]), RecordMatch::NoMatch);
        }
    }

    #[test]
    fn malformed_full_data_is_no_anchor() {
        for data in [vec![], vec![0x30], vec![0x30, 0x00], b"not der".to_vec()] {
            for selector in [0, 1] {
                let r = TlsaRdata {
                    usage: 2,
                    selector,
                    mtype: 0,
                    data: data.clone(),
                };
                assert_eq!(outcome(&r, &["leaf-rsa", "int-ca"]), RecordMatch::NoMatch);
            }
        }
        // A whole SPKI with trailing bytes is not an SPKI.
        let mut r = full(1, "root-ca");
        r.data.push(0);
        assert_eq!(outcome(&r, &["leaf-rsa", "int-ca"]), RecordMatch::NoMatch);
    }
}
