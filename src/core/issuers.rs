//! Well-known CAs, so that a TLSA record pinning one can be named.
//!
//! Roots come from the Mozilla list as shipped by `webpki-root-certs`;
//! rotating issuing CAs (Let's Encrypt's R10-R14 and E5-E9) are data files
//! under `data/issuers/`, refreshed by `scripts/refresh-issuers`.

use std::sync::OnceLock;

use super::cert::CertInfo;
use super::tlsa::{MatchingType, Selector, TlsaRdata};

/// A CA that operators commonly pin.
pub struct KnownCa {
    pub name: String,
    /// Siblings that the CA issues from at random (e.g. "Let's Encrypt RSA").
    pub rotation_group: Option<&'static str>,
    pub is_root: bool,
    cert: CertInfo,
}

/// Issuing CAs that rotate: (group name, PEM of one member).
const ROTATING: &[(&str, &str)] = &[
    (
        "Let's Encrypt RSA 2024 (R10-R14)",
        include_str!("../../data/issuers/letsencrypt/R10.pem"),
    ),
    (
        "Let's Encrypt RSA 2024 (R10-R14)",
        include_str!("../../data/issuers/letsencrypt/R11.pem"),
    ),
    (
        "Let's Encrypt RSA 2024 (R10-R14)",
        include_str!("../../data/issuers/letsencrypt/R12.pem"),
    ),
    (
        "Let's Encrypt RSA 2024 (R10-R14)",
        include_str!("../../data/issuers/letsencrypt/R13.pem"),
    ),
    (
        "Let's Encrypt RSA 2024 (R10-R14)",
        include_str!("../../data/issuers/letsencrypt/R14.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E5.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E5-cross.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E6.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E6-cross.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E7.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E7-cross.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E8.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E8-cross.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E9.pem"),
    ),
    (
        "Let's Encrypt ECDSA 2024 (E5-E9)",
        include_str!("../../data/issuers/letsencrypt/E9-cross.pem"),
    ),
    (
        "Let's Encrypt RSA generation Y (YR1-YR3)",
        include_str!("../../data/issuers/letsencrypt/YR1.pem"),
    ),
    (
        "Let's Encrypt RSA generation Y (YR1-YR3)",
        include_str!("../../data/issuers/letsencrypt/YR2.pem"),
    ),
    (
        "Let's Encrypt RSA generation Y (YR1-YR3)",
        include_str!("../../data/issuers/letsencrypt/YR3.pem"),
    ),
    (
        "Let's Encrypt ECDSA generation Y (YE1-YE3)",
        include_str!("../../data/issuers/letsencrypt/YE1.pem"),
    ),
    (
        "Let's Encrypt ECDSA generation Y (YE1-YE3)",
        include_str!("../../data/issuers/letsencrypt/YE2.pem"),
    ),
    (
        "Let's Encrypt ECDSA generation Y (YE1-YE3)",
        include_str!("../../data/issuers/letsencrypt/YE3.pem"),
    ),
];

fn all() -> &'static [KnownCa] {
    static ALL: OnceLock<Vec<KnownCa>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<KnownCa> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|c| known(CertInfo::parse(c.as_ref()), None, true))
            .collect();
        for (group, pem) in ROTATING {
            if let Ok(items) = super::cert::read_pem_or_der(pem.as_bytes()) {
                for item in items {
                    if let super::cert::PemItem::Cert(der) = item {
                        v.push(known(CertInfo::parse(&der), Some(group), false));
                    }
                }
            }
        }
        v
    })
}

fn known(cert: CertInfo, rotation_group: Option<&'static str>, is_root: bool) -> KnownCa {
    KnownCa {
        name: cert.label(),
        rotation_group,
        is_root,
        cert,
    }
}

/// The well-known CA whose certificate or key the record's data describes.
pub fn identify(record: &TlsaRdata) -> Option<&'static KnownCa> {
    let selector = Selector::from_u8(record.selector)?;
    let mtype = MatchingType::from_u8(record.mtype)?;
    all()
        .iter()
        .find(|ca| ca.cert.association_ref(selector, mtype) == Some(&record.data[..]))
}

/// Members of a rotation group.
pub fn group_members(group: &str) -> impl Iterator<Item = &'static KnownCa> + '_ {
    all()
        .iter()
        .filter(move |ca| ca.rotation_group == Some(group))
}

impl KnownCa {
    /// Whether `record` pins this CA (under any selector it uses).
    pub fn pinned_by(&self, record: &TlsaRdata) -> bool {
        match (
            Selector::from_u8(record.selector),
            MatchingType::from_u8(record.mtype),
        ) {
            (Some(s), Some(m)) => self.cert.association_ref(s, m) == Some(&record.data[..]),
            _ => false,
        }
    }

    /// The `2 1 1` record that pins this CA.
    pub fn tlsa_211(&self) -> Option<TlsaRdata> {
        Some(TlsaRdata {
            usage: 2,
            selector: 1,
            mtype: 1,
            data: self
                .cert
                .association(Selector::Spki, MatchingType::Sha256)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_mozilla_root_by_its_key_digest() {
        let root = all().iter().find(|c| c.is_root).expect("roots present");
        let rec = root.tlsa_211().unwrap();
        let found = identify(&rec).expect("identified");
        assert_eq!(found.name, root.name);
    }

    #[test]
    fn unknown_digest_is_not_named() {
        let rec: TlsaRdata = format!("2 1 1 {}", "00".repeat(32)).parse().unwrap();
        assert!(identify(&rec).is_none());
    }
}
