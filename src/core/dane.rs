//! Matching a served chain against usable TLSA records (RFC 7671 §5,
//! RFC 7672 §3.1-3.2).
//!
//! DANE-EE(3) matches the leaf only, with no name or expiry checks.
//! DANE-TA(2) matches a certificate the server sent above the leaf; the chain
//! must then validate up to that certificate at the evaluation time, and the
//! leaf must name the TLSA base domain (RFC 7672 §3.2.3). webpki validates the
//! path with the matched certificate as its only anchor, which is exactly
//! DANE-TA semantics: no public CA list is involved.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyPurposeIdIter};

use super::cert::CertInfo;
use super::evidence::Timestamp;
use super::identity;
use super::record_anchor;
use super::tlsa::{TlsaRdata, Usability, UsableRecord, Usage};

/// Why a chain does not validate up to a DANE-TA trust anchor.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the matched CA certificate cannot serve as anchor: {0}")]
    NotAnAnchor(webpki::Error),
    #[error("the leaf is an X.509 v1 certificate, which cannot be validated under DANE-TA")]
    V1Leaf,
    #[error("the leaf certificate cannot be parsed for validation")]
    LeafUnparsable,
    #[error("{}", describe_webpki(.0))]
    Path(webpki::Error),
}

/// Why a DANE-TA record that matched a served CA still does not authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaFailure {
    /// Signatures or constraints do not chain the leaf to the matched CA.
    ChainInvalid(PathError),
    /// A certificate on the path below the matched CA is outside its
    /// validity period: (depth, "expired" or "not yet valid").
    Expired { depth: usize, what: &'static str },
    /// The leaf does not name any reference identifier.
    NameMismatch { presented: Vec<String> },
}

/// The result of one usable record against one served chain.
///
/// `depth` is the matched certificate's depth in the served chain, or the
/// chain's length for the trust anchor a `2 0 0` or `2 1 0` record holds
/// itself (the one certificate above the top of what the server sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordMatch {
    /// The record authenticates the server.
    Authenticated { depth: usize },
    /// A DANE-TA record matched the CA at `depth`, but validation failed.
    TaFailed { depth: usize, failure: TaFailure },
    /// The record matches no certificate in a position its usage allows.
    NoMatch,
}

/// Depths at which the record's data equals the certificate's association
/// data, regardless of usage (used for display and diagnosis).
pub fn data_matches(record: &TlsaRdata, chain: &[CertInfo]) -> Vec<usize> {
    let Usability::Usable(u) = record.usability() else {
        return Vec::new();
    };
    depths_matching(&u, record, chain)
}

fn depths_matching(u: &UsableRecord, record: &TlsaRdata, chain: &[CertInfo]) -> Vec<usize> {
    chain
        .iter()
        .enumerate()
        .filter(|(_, c)| c.association_ref(u.selector, u.mtype) == Some(&record.data[..]))
        .map(|(i, _)| i)
        .collect()
}

/// Matches one record against one served chain.
///
/// `reference_ids` are the names a DANE-TA leaf may carry: the TLSA base
/// domain first, then any others the caller accepts (the original MX name,
/// the next-hop domain).
pub fn match_record(
    record: &TlsaRdata,
    chain: &[CertInfo],
    reference_ids: &[String],
    now: Timestamp,
) -> RecordMatch {
    let Usability::Usable(u) = record.usability() else {
        return RecordMatch::NoMatch;
    };
    let depths = depths_matching(&u, record, chain);
    match u.usage {
        Usage::DaneEe if depths.contains(&0) => RecordMatch::Authenticated { depth: 0 },
        Usage::DaneTa => {
            let mut first_failure = None;
            for depth in depths.into_iter().filter(|d| *d > 0) {
                match validate_ta(chain, depth, reference_ids, now) {
                    Ok(()) => return RecordMatch::Authenticated { depth },
                    Err(failure) => {
                        first_failure.get_or_insert(RecordMatch::TaFailed { depth, failure });
                    }
                }
            }
            first_failure
                .or_else(|| anchor_in_record(record, &u, chain, reference_ids, now))
                .unwrap_or(RecordMatch::NoMatch)
        }
        _ => RecordMatch::NoMatch,
    }
}

/// A full `2 x 0` record whose CA the server did not send (RFC 7671 §5.2.2).
fn anchor_in_record(
    record: &TlsaRdata,
    u: &UsableRecord,
    chain: &[CertInfo],
    reference_ids: &[String],
    now: Timestamp,
) -> Option<RecordMatch> {
    let depth = chain.len();
    Some(
        match record_anchor::validate(record, u, chain, reference_ids, now)? {
            Ok(_) => RecordMatch::Authenticated { depth },
            Err(failure) => RecordMatch::TaFailed { depth, failure },
        },
    )
}

/// Validates the served chain up to the CA at `ta_depth`, then names and times.
fn validate_ta(
    chain: &[CertInfo],
    ta_depth: usize,
    reference_ids: &[String],
    now: Timestamp,
) -> Result<(), TaFailure> {
    // The trust anchor's own validity is not checked: a DANE-TA record makes
    // the matched certificate an anchor (RFC 5280 §6.1 validates the path
    // below the anchor), as OpenSSL's and Postfix's DANE code do.
    if let Some(f) = time_failure(&chain[..ta_depth], now) {
        return Err(f);
    }
    webpki_path(chain, ta_depth, now).map_err(TaFailure::ChainInvalid)?;
    name_failure(chain, reference_ids).map_or(Ok(()), Err)
}

/// The first certificate of `path` outside its validity period at `now`.
pub(super) fn time_failure(path: &[CertInfo], now: Timestamp) -> Option<TaFailure> {
    path.iter().enumerate().find_map(|(depth, c)| {
        c.time_problem(now)
            .map(|what| TaFailure::Expired { depth, what })
    })
}

/// Under DANE-TA the leaf must name a reference identifier (RFC 7672 §3.2.3).
pub(super) fn name_failure(chain: &[CertInfo], reference_ids: &[String]) -> Option<TaFailure> {
    (!identity::matches_any(&chain[0], reference_ids)).then(|| TaFailure::NameMismatch {
        presented: identity::presented_names(&chain[0]).to_vec(),
    })
}

/// Accepts any extended key usage: SMTP servers often carry clientAuth or
/// none at all, and RFC 7672 does not constrain EKU.
struct AnyEku;

impl webpki::ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// Chains that validated, by the exact bytes they were given, with the
/// span of time in which every one of their certificates is valid. A bulk
/// scan evaluates one MX host's chain for every domain that uses the host:
/// the certificates and the anchor's depth are byte-identical, and webpki's
/// answer then depends on the time only through each certificate's
/// validity period. So a chain that validated at some moment validates at
/// any other moment inside that span, and its signatures are checked once,
/// not once per domain. Failures are not shared (they are rare, and their
/// reason may depend on the time).
struct PathMemo {
    valid: HashMap<PathKey, (Timestamp, Timestamp)>,
}

/// The anchor's depth and [`chain_bytes`].
type PathKey = (usize, Arc<[u8]>);

/// More distinct chains than this: start afresh (memory stays bounded; a
/// miss only costs the validation).
const PATH_MEMO_MAX: usize = 4096;

static PATHS: LazyLock<Mutex<PathMemo>> = LazyLock::new(|| {
    Mutex::new(PathMemo {
        valid: HashMap::new(),
    })
});

/// Every certificate of `chain`, each after its length, so that no two
/// different chains give the same bytes.
fn chain_bytes(chain: &[CertInfo]) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(chain.iter().map(|c| c.der.len() + 4).sum());
    for c in chain {
        out.extend_from_slice(&(c.der.len() as u32).to_be_bytes());
        out.extend_from_slice(&c.der);
    }
    out.into()
}

/// When every certificate of `chain` is valid: from the latest start to the
/// earliest end (`None` if a period is unknown).
fn common_validity(chain: &[CertInfo]) -> Option<(Timestamp, Timestamp)> {
    chain.iter().try_fold(
        (Timestamp(i64::MIN), Timestamp(i64::MAX)),
        |(from, to), c| Some((from.max(c.not_before?), to.min(c.not_after?))),
    )
}

fn webpki_path(chain: &[CertInfo], ta_depth: usize, now: Timestamp) -> Result<(), PathError> {
    let key = (ta_depth, chain_bytes(chain));
    let lock = || PATHS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((from, to)) = lock().valid.get(&key)
        && *from <= now
        && now <= *to
    {
        return Ok(());
    }
    let r = validate_path(chain, ta_depth, now);
    if let (Ok(()), Some(span)) = (&r, common_validity(chain)) {
        let mut memo = lock();
        if memo.valid.len() >= PATH_MEMO_MAX {
            memo.valid.clear();
        }
        memo.valid.insert(key, span);
    }
    r
}

fn validate_path(chain: &[CertInfo], ta_depth: usize, now: Timestamp) -> Result<(), PathError> {
    let der = CertificateDer::from(chain[ta_depth].der.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&der).map_err(PathError::NotAnAnchor)?;
    let intermediates: Vec<&CertInfo> = chain
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 0 && *i != ta_depth)
        .map(|(_, c)| c)
        .collect();
    verify_path(chain, &intermediates, anchor, now).map_err(|e| match e {
        webpki::Error::UnsupportedCertVersion => PathError::V1Leaf,
        webpki::Error::BadDer => PathError::LeafUnparsable,
        e => PathError::Path(e),
    })
}

/// Validates `chain[0]` up to `anchor` through `intermediates` at `now`.
pub(super) fn verify_path(
    chain: &[CertInfo],
    intermediates: &[&CertInfo],
    anchor: TrustAnchor<'_>,
    now: Timestamp,
) -> Result<(), webpki::Error> {
    let leaf_der = CertificateDer::from(chain[0].der.as_slice());
    let leaf = EndEntityCert::try_from(&leaf_der)?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let secs = u64::try_from(now.0).unwrap_or(0);
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        time,
        AnyEku,
        None,
        None,
    )
    .map(|_| ())
}

fn describe_webpki(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => {
            "the leaf is not issued (directly or via the sent intermediates) by the matched CA"
                .into()
        }
        E::InvalidSignatureForPublicKey => {
            "a certificate signature does not verify with its issuer's key".into()
        }
        E::CaUsedAsEndEntity => "the leaf is a CA certificate".into(),
        E::EndEntityUsedAsCa => {
            "a non-CA certificate sits between the leaf and the matched CA".into()
        }
        E::PathLenConstraintViolated => "a CA's path length constraint is violated".into(),
        E::NameConstraintViolation => "a CA's name constraints exclude the leaf".into(),
        other => format!("path validation failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> CertInfo {
        let path = format!("{}/testdata/certs/{name}.der", env!("CARGO_MANIFEST_DIR"));
        CertInfo::parse(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    fn rec(usage: u8, selector: u8, mtype: u8, cert: &CertInfo) -> TlsaRdata {
        use super::super::tlsa::{MatchingType, Selector};
        TlsaRdata {
            usage,
            selector,
            mtype,
            data: cert
                .association(
                    Selector::from_u8(selector).unwrap(),
                    MatchingType::from_u8(mtype).unwrap(),
                )
                .unwrap(),
        }
    }

    /// 2030-06-01, inside the validity of the committed test certificates.
    const NOW: Timestamp = Timestamp(1_906_502_400);

    fn refs() -> Vec<String> {
        vec!["mx1.example.net".into()]
    }

    #[test]
    fn a_shared_path_result_is_the_one_computed_for_those_bytes() {
        let leaf = load("leaf-rsa");
        let int = load("int-ca");
        let chain = vec![leaf.clone(), int.clone()];
        let first = webpki_path(&chain, 1, NOW);
        assert_eq!(first, validate_path(&chain, 1, NOW));
        // Same bytes, same second: the shared result; another time or
        // another chain: its own.
        assert_eq!(webpki_path(&chain, 1, NOW), first);
        let later = Timestamp(NOW.0 + 100 * 365 * 86_400);
        assert_eq!(
            webpki_path(&chain, 1, later),
            validate_path(&chain, 1, later)
        );
        assert_ne!(webpki_path(&chain, 1, later), first);
        let swapped = vec![int, leaf];
        assert_eq!(
            webpki_path(&swapped, 1, NOW),
            validate_path(&swapped, 1, NOW)
        );
    }

    #[test]
    fn chain_bytes_keep_certificates_apart() {
        let a = CertInfo::parse(b"ab");
        let b = CertInfo::parse(b"c");
        let c = CertInfo::parse(b"a");
        let d = CertInfo::parse(b"bc");
        assert_ne!(chain_bytes(&[a, b]), chain_bytes(&[c, d]));
    }

    #[test]
    fn dane_ee_matches_leaf_only() {
        let leaf = load("leaf-rsa");
        let int = load("int-ca");
        let chain = vec![leaf.clone(), int.clone()];
        for (s, m) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)] {
            assert_eq!(
                match_record(&rec(3, s, m, &leaf), &chain, &refs(), NOW),
                RecordMatch::Authenticated { depth: 0 },
                "3 {s} {m}"
            );
        }
        assert_eq!(
            match_record(&rec(3, 1, 1, &int), &chain, &refs(), NOW),
            RecordMatch::NoMatch
        );
    }

    #[test]
    fn dane_ee_ignores_expiry_and_names() {
        let leaf = load("leaf-expired");
        let chain = vec![leaf.clone(), load("int-ca")];
        let other = vec!["not-the-name.example".to_string()];
        assert_eq!(
            match_record(&rec(3, 1, 1, &leaf), &chain, &other, NOW),
            RecordMatch::Authenticated { depth: 0 }
        );
    }

    #[test]
    fn dane_ta_on_intermediate_validates() {
        let chain = vec![load("leaf-ec"), load("int-ca")];
        assert_eq!(
            match_record(&rec(2, 1, 1, &chain[1]), &chain, &refs(), NOW),
            RecordMatch::Authenticated { depth: 1 }
        );
    }

    #[test]
    fn dane_ta_on_sent_root_validates_through_intermediate() {
        let chain = vec![load("leaf-rsa"), load("int-ca"), load("root-ca")];
        assert_eq!(
            match_record(&rec(2, 0, 1, &chain[2]), &chain, &refs(), NOW),
            RecordMatch::Authenticated { depth: 2 }
        );
    }

    #[test]
    fn dane_ta_never_matches_the_leaf() {
        let chain = vec![load("leaf-rsa"), load("int-ca")];
        assert_eq!(
            match_record(&rec(2, 1, 1, &chain[0]), &chain, &refs(), NOW),
            RecordMatch::NoMatch
        );
    }

    #[test]
    fn dane_ta_failures_are_named() {
        let int = load("int-ca");
        let misnamed = vec![load("leaf-misnamed"), int.clone()];
        assert!(matches!(
            match_record(&rec(2, 1, 1, &int), &misnamed, &refs(), NOW),
            RecordMatch::TaFailed {
                depth: 1,
                failure: TaFailure::NameMismatch { .. }
            }
        ));
        let foreign = vec![load("leaf-other"), int.clone()];
        assert!(matches!(
            match_record(&rec(2, 1, 1, &int), &foreign, &refs(), NOW),
            RecordMatch::TaFailed {
                failure: TaFailure::ChainInvalid(_),
                ..
            }
        ));
        let expired_leaf = vec![load("leaf-expired"), int.clone()];
        assert!(matches!(
            match_record(&rec(2, 1, 1, &int), &expired_leaf, &refs(), NOW),
            RecordMatch::TaFailed {
                failure: TaFailure::Expired { depth: 0, .. },
                ..
            }
        ));
        let root = load("root-ca");
        let expired_mid = vec![
            load("leaf-under-expired-int"),
            load("int-expired"),
            root.clone(),
        ];
        assert!(matches!(
            match_record(&rec(2, 1, 1, &root), &expired_mid, &refs(), NOW),
            RecordMatch::TaFailed {
                failure: TaFailure::Expired { depth: 1, .. },
                ..
            }
        ));
    }

    /// RFC 5280 §6.1 validates below the anchor: the anchor's own dates do
    /// not count (as in OpenSSL's DANE-TA).
    #[test]
    fn expired_anchor_itself_still_authenticates() {
        let expired_int = load("int-expired");
        let chain = vec![load("leaf-under-expired-int"), expired_int.clone()];
        assert_eq!(
            match_record(&rec(2, 1, 1, &expired_int), &chain, &refs(), NOW),
            RecordMatch::Authenticated { depth: 1 }
        );
    }

    #[test]
    fn wildcard_and_cn_only_leaves_pass_name_check() {
        let int = load("int-ca");
        for leaf in ["leaf-wildcard", "leaf-cn-only"] {
            let chain = vec![load(leaf), int.clone()];
            assert_eq!(
                match_record(&rec(2, 1, 1, &int), &chain, &refs(), NOW),
                RecordMatch::Authenticated { depth: 1 },
                "{leaf}"
            );
        }
        let chain = vec![load("leaf-partial-wildcard"), int.clone()];
        assert!(matches!(
            match_record(&rec(2, 1, 1, &int), &chain, &refs(), NOW),
            RecordMatch::TaFailed {
                failure: TaFailure::NameMismatch { .. },
                ..
            }
        ));
    }

    #[test]
    fn v1_self_signed_leaf_matches_dane_ee() {
        let leaf = load("selfsigned-v1");
        assert_eq!(leaf.version, 1);
        let chain = vec![leaf.clone()];
        assert_eq!(
            match_record(&rec(3, 1, 1, &leaf), &chain, &refs(), NOW),
            RecordMatch::Authenticated { depth: 0 }
        );
    }

    #[test]
    fn client_auth_only_leaf_is_accepted_under_dane_ta() {
        let int = load("int-ca");
        let chain = vec![load("leaf-clientauth-only"), int.clone()];
        assert_eq!(
            match_record(&rec(2, 1, 1, &int), &chain, &refs(), NOW),
            RecordMatch::Authenticated { depth: 1 }
        );
    }
}
