//! Certificate association data (RFC 6698 §2.1): the TLSA record that
//! designates a certificate or key, for `tlsa` and for what a rollover
//! asks to publish.

use super::cert::{CertInfo, PemItem, digest};
use super::tlsa::{MatchingType, Selector, TlsaRdata};

/// The recommended pair (RFC 7671 §8.1, and the seed's advice): `3 1 1`
/// for the leaf's key, which survives renewals that keep the key, and
/// `2 1 1` for its issuing CA, which survives a new key under the same CA.
pub const RECOMMENDED: [(u8, u8, u8); 2] = [(3, 1, 1), (2, 1, 1)];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssociationError {
    #[error(
        "a CA record (usage 2) needs the issuer: give a chain file with the leaf first and its issuing CA second"
    )]
    NoIssuer,
    #[error("no certificate or key found")]
    NothingFound,
    #[error("selector must be 0 or 1")]
    Selector,
    #[error("matching type must be 0, 1 or 2")]
    MatchingType,
    #[error("the certificate does not parse")]
    Unparsable,
    #[error("selector 0 needs a certificate, not a public key")]
    KeyWithoutCertificate,
}

/// The record of the given parameters for the item its usage designates:
/// the leaf (first item) for usages 1 and 3, its issuer (second) for 0 and 2.
pub fn record(
    items: &[PemItem],
    usage: u8,
    selector: u8,
    mtype: u8,
) -> Result<TlsaRdata, AssociationError> {
    let position = if usage == 2 || usage == 0 { 1 } else { 0 };
    let item = match (items.get(position), items.len()) {
        (Some(i), _) => i,
        (None, 1) if position == 1 => return Err(AssociationError::NoIssuer),
        _ => return Err(AssociationError::NothingFound),
    };
    let sel = Selector::from_u8(selector).ok_or(AssociationError::Selector)?;
    let mt = MatchingType::from_u8(mtype).ok_or(AssociationError::MatchingType)?;
    let data = match (item, sel) {
        (PemItem::Cert(der), _) => CertInfo::parse(der)
            .association(sel, mt)
            .ok_or(AssociationError::Unparsable)?,
        (PemItem::PublicKey(spki), Selector::Spki) => digest(mt, spki),
        (PemItem::PublicKey(_), Selector::Cert) => {
            return Err(AssociationError::KeyWithoutCertificate);
        }
    };
    Ok(TlsaRdata {
        usage,
        selector,
        mtype,
        data,
    })
}

/// The records of every parameter set in `wanted` (usage, selector,
/// matching type), as `dane-audit tlsa` prints them.
pub fn records(
    items: &[PemItem],
    wanted: &[(u8, u8, u8)],
) -> Result<Vec<TlsaRdata>, AssociationError> {
    wanted
        .iter()
        .map(|(u, s, m)| record(items, *u, *s, *m))
        .collect()
}

/// A record as a zone-file line for the service at `port` on `host`.
pub fn zone_line(port: u16, host: &str, rd: &TlsaRdata) -> String {
    format!("_{port}._tcp.{}. IN TLSA {rd}", host.trim_end_matches('.'))
}

/// The recommended records for a chain (leaf first): `3 1 1`, and `2 1 1`
/// when the chain holds the issuer.
pub fn recommended(items: &[PemItem]) -> Vec<TlsaRdata> {
    RECOMMENDED
        .iter()
        .filter_map(|(u, s, m)| record(items, *u, *s, *m).ok())
        .collect()
}
