//! What the core needs to know about one served certificate, parsed once.
//!
//! A certificate that x509-parser cannot read is still kept: its full-DER
//! digests (selector 0) can match a TLSA record, and the report must show it.

use std::sync::OnceLock;

use sha2::{Digest, Sha256, Sha512};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::evidence::{KeyType, Timestamp};
use super::tlsa::{MatchingType, Selector};

#[derive(Clone, Debug)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// DER SubjectPublicKeyInfo; `None` when the certificate does not parse.
    pub spki: Option<Vec<u8>>,
    pub subject: String,
    pub issuer: String,
    pub not_before: Option<Timestamp>,
    pub not_after: Option<Timestamp>,
    /// dNSName subjectAltName entries, lower case.
    pub dns_names: Vec<String>,
    /// Subject common names, lower case (for name matching).
    pub common_names: Vec<String>,
    /// The first common name as written (for people).
    pub display_cn: Option<String>,
    pub is_ca: bool,
    /// Subject equals issuer (a root, or a self-signed leaf).
    pub self_issued: bool,
    /// X.509 version as written (1, 2 or 3).
    pub version: u32,
    pub parse_error: Option<String>,
    /// Association data per (selector, matching type), computed on first use:
    /// matching, diagnosis and reports ask for the same digests many times.
    digests: [OnceLock<Option<Vec<u8>>>; 6],
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> CertInfo {
        match X509Certificate::from_der(der) {
            Ok((_, c)) => from_parsed(der, &c),
            Err(e) => CertInfo {
                der: der.to_vec(),
                spki: None,
                subject: "(unparseable certificate)".into(),
                issuer: String::new(),
                not_before: None,
                not_after: None,
                dns_names: Vec::new(),
                common_names: Vec::new(),
                display_cn: None,
                is_ca: false,
                self_issued: false,
                version: 0,
                parse_error: Some(e.to_string()),
                digests: Default::default(),
            },
        }
    }

    /// The certificate association data for a selector, before hashing.
    pub fn selected(&self, selector: Selector) -> Option<&[u8]> {
        match selector {
            Selector::Cert => Some(&self.der),
            Selector::Spki => self.spki.as_deref(),
        }
    }

    /// The TLSA association data this certificate yields for (selector, mtype).
    pub fn association(&self, selector: Selector, mtype: MatchingType) -> Option<Vec<u8>> {
        self.association_ref(selector, mtype).map(<[u8]>::to_vec)
    }

    /// As [`CertInfo::association`], borrowed from the memo.
    pub fn association_ref(&self, selector: Selector, mtype: MatchingType) -> Option<&[u8]> {
        let slot = usize::from(selector.value()) * 3 + usize::from(mtype.value());
        self.digests[slot]
            .get_or_init(|| self.selected(selector).map(|d| digest(mtype, d)))
            .as_deref()
    }

    /// Validity period in whole days, when known.
    pub fn lifetime_days(&self) -> Option<i64> {
        Some(self.not_before?.days_until(self.not_after?))
    }

    /// Whether `now` lies outside the validity period.
    pub fn time_problem(&self, now: Timestamp) -> Option<&'static str> {
        match (self.not_before, self.not_after) {
            (Some(nb), _) if now < nb => Some("not yet valid"),
            (_, Some(na)) if now > na => Some("expired"),
            _ => None,
        }
    }

    /// The family of the certificate's key: what a client's signature
    /// algorithms select (`None` for other keys or an unparsable certificate).
    pub fn key_type(&self) -> Option<KeyType> {
        key_type_of_spki(self.spki.as_deref()?)
    }

    /// A short label for reports: the CN when there is one, else the subject.
    pub fn label(&self) -> String {
        self.display_cn
            .clone()
            .unwrap_or_else(|| self.subject.clone())
    }
}

/// The key type of a DER SubjectPublicKeyInfo, from its algorithm OID.
pub fn key_type_of_spki(spki: &[u8]) -> Option<KeyType> {
    use x509_parser::oid_registry::{
        OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_SIG_ED25519,
    };
    let (_, k) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    let oid = &k.algorithm.algorithm;
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        Some(KeyType::Ecdsa)
    } else if *oid == OID_PKCS1_RSAENCRYPTION || *oid == OID_PKCS1_RSASSAPSS {
        Some(KeyType::Rsa)
    } else if *oid == OID_SIG_ED25519 {
        Some(KeyType::Ed25519)
    } else {
        None
    }
}

/// The key type of a DER certificate's key.
pub fn key_type_of_cert(der: &[u8]) -> Option<KeyType> {
    let (_, c) = X509Certificate::from_der(der).ok()?;
    key_type_of_spki(c.public_key().raw)
}

/// Applies a TLSA matching type to association data.
pub fn digest(mtype: MatchingType, data: &[u8]) -> Vec<u8> {
    match mtype {
        MatchingType::Full => data.to_vec(),
        MatchingType::Sha256 => Sha256::digest(data).to_vec(),
        MatchingType::Sha512 => Sha512::digest(data).to_vec(),
    }
}

fn from_parsed(der: &[u8], c: &X509Certificate<'_>) -> CertInfo {
    let dns_names = match c.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let cns: Vec<&str> = c
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    let common_names = cns.iter().map(|s| s.to_ascii_lowercase()).collect();
    let display_cn = cns.first().map(|s| s.to_string());
    let subject = c.subject().to_string();
    let issuer = c.issuer().to_string();
    CertInfo {
        der: der.to_vec(),
        spki: Some(c.public_key().raw.to_vec()),
        self_issued: c.subject().as_raw() == c.issuer().as_raw(),
        subject,
        issuer,
        not_before: Some(Timestamp(c.validity().not_before.timestamp())),
        not_after: Some(Timestamp(c.validity().not_after.timestamp())),
        dns_names,
        common_names,
        display_cn,
        is_ca: c.is_ca(),
        version: c.version().0 + 1,
        parse_error: None,
        digests: Default::default(),
    }
}

/// Parses PEM or DER input holding certificates, or public keys.
///
/// Returns the DER blobs in order. PEM blocks of type CERTIFICATE and
/// PUBLIC KEY are accepted; anything else (private keys) is skipped.
pub fn read_pem_or_der(bytes: &[u8]) -> Result<Vec<PemItem>, String> {
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        parse_pem(bytes)
    } else {
        {
            if X509Certificate::from_der(bytes).is_ok() {
                Ok(vec![PemItem::Cert(bytes.to_vec())])
            } else if x509_parser::x509::SubjectPublicKeyInfo::from_der(bytes).is_ok() {
                Ok(vec![PemItem::PublicKey(bytes.to_vec())])
            } else {
                Err("neither PEM nor a DER certificate or public key".into())
            }
        }
    }
}

/// One item from a PEM or DER file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemItem {
    Cert(Vec<u8>),
    PublicKey(Vec<u8>),
}

fn parse_pem(bytes: &[u8]) -> Result<Vec<PemItem>, String> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let mut out = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        let (kind, der) = section.map_err(|e| format!("invalid PEM: {e}"))?;
        match kind {
            SectionKind::Certificate => {
                X509Certificate::from_der(&der)
                    .map_err(|e| format!("PEM certificate does not parse: {e}"))?;
                out.push(PemItem::Cert(der));
            }
            SectionKind::PublicKey => {
                x509_parser::x509::SubjectPublicKeyInfo::from_der(&der)
                    .map_err(|e| format!("PEM public key does not parse: {e}"))?;
                out.push(PemItem::PublicKey(der));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err("no CERTIFICATE or PUBLIC KEY block found".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(name: &str) -> Vec<u8> {
        let path = format!("{}/testdata/certs/{name}.der", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn key_types_of_the_test_certificates() {
        assert_eq!(key_type_of_cert(&der("leaf-rsa")), Some(KeyType::Rsa));
        assert_eq!(key_type_of_cert(&der("leaf-ec")), Some(KeyType::Ecdsa));
        assert_eq!(
            CertInfo::parse(&der("int-ca")).key_type(),
            Some(KeyType::Rsa)
        );
        assert_eq!(key_type_of_spki(&der("leaf-ec.pub")), Some(KeyType::Ecdsa));
        assert_eq!(key_type_of_cert(b"not a certificate"), None);
        assert_eq!(CertInfo::parse(b"junk").key_type(), None);
    }
}
