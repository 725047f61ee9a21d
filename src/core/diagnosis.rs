//! Why a TLSA record does not match: the well-known operator mistakes.
//!
//! For a record that authenticates nothing, every plausible wrong way of
//! computing it is tried against every served certificate: the other
//! selector, the other position in the chain, and digests over text
//! encodings (PEM, base64) instead of DER. A hit names the mistake.

use base64::Engine;

use super::cert::{CertInfo, digest};
use super::tlsa::{MatchingType, Selector, TlsaRdata, Usability, Usage};

/// The diagnosed cause of a non-matching record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The data is this certificate's digest under the other selector.
    WrongSelector { depth: usize, right: Selector },
    /// The data is a digest over a text encoding of this certificate or key.
    WrongEncoding {
        depth: usize,
        selector: Selector,
        encoding: &'static str,
    },
    /// Usage 3 matching a CA above the leaf, or usage 2 matching the leaf.
    WrongUsage { depth: usize },
}

/// Diagnoses a usable record that does not authenticate against `chain`.
pub fn diagnose(record: &TlsaRdata, chain: &[CertInfo]) -> Option<Cause> {
    let Usability::Usable(u) = record.usability() else {
        return None;
    };
    for (depth, cert) in chain.iter().enumerate() {
        let same = cert.association_ref(u.selector, u.mtype);
        if same == Some(&record.data[..]) {
            let wrong_place = match u.usage {
                Usage::DaneEe => depth > 0,
                Usage::DaneTa => depth == 0,
                _ => false,
            };
            if wrong_place {
                return Some(Cause::WrongUsage { depth });
            }
        }
        let other = u.selector.other();
        if cert.association_ref(other, u.mtype) == Some(&record.data[..]) {
            return Some(Cause::WrongSelector {
                depth,
                right: other,
            });
        }
        if let Some((selector, encoding)) = encoding_mistake(cert, u.mtype, &record.data) {
            return Some(Cause::WrongEncoding {
                depth,
                selector,
                encoding,
            });
        }
    }
    None
}

/// For a PKIX usage (0/1) record: the DANE usage whose position the data fits.
pub fn dane_equivalent(record: &TlsaRdata, chain: &[CertInfo]) -> Option<u8> {
    let as_dane = |usage| TlsaRdata {
        usage,
        ..record.clone()
    };
    let ee = as_dane(3);
    let ta = as_dane(2);
    if super::dane::data_matches(&ee, chain).contains(&0) {
        Some(3)
    } else if super::dane::data_matches(&ta, chain).iter().any(|d| *d > 0) {
        Some(2)
    } else {
        None
    }
}

fn encoding_mistake(
    cert: &CertInfo,
    mtype: MatchingType,
    data: &[u8],
) -> Option<(Selector, &'static str)> {
    if mtype == MatchingType::Full {
        return None;
    }
    for selector in [Selector::Cert, Selector::Spki] {
        let Some(der) = cert.selected(selector) else {
            continue;
        };
        for (encoding, text) in text_encodings(selector, der) {
            if digest(mtype, text.as_bytes()) == data {
                return Some((selector, encoding));
            }
        }
    }
    None
}

/// The text forms people hash by mistake.
fn text_encodings(selector: Selector, der: &[u8]) -> Vec<(&'static str, String)> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let label = match selector {
        Selector::Cert => "CERTIFICATE",
        Selector::Spki => "PUBLIC KEY",
    };
    let wrapped: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let pem = format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        wrapped.join("\n")
    );
    let pem_crlf = pem.replace('\n', "\r\n");
    let pem_no_newline = pem.trim_end().to_string();
    vec![
        ("PEM text", pem),
        ("PEM text with CRLF line ends", pem_crlf),
        ("PEM text without the final newline", pem_no_newline),
        ("base64 text", b64.clone()),
        ("base64 text with a newline", format!("{b64}\n")),
        ("hexadecimal text", hex::encode(der)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> CertInfo {
        let path = format!("{}/testdata/certs/{name}.der", env!("CARGO_MANIFEST_DIR"));
        CertInfo::parse(&std::fs::read(path).unwrap())
    }

    fn with(usage: u8, selector: u8, mtype: u8, data: Vec<u8>) -> TlsaRdata {
        TlsaRdata {
            usage,
            selector,
            mtype,
            data,
        }
    }

    #[test]
    fn names_each_mistake() {
        let leaf = load("leaf-rsa");
        let int = load("int-ca");
        let chain = vec![leaf.clone(), int.clone()];
        let spki256 = leaf
            .association(Selector::Spki, MatchingType::Sha256)
            .unwrap();
        assert_eq!(
            diagnose(&with(3, 0, 1, spki256), &chain),
            Some(Cause::WrongSelector {
                depth: 0,
                right: Selector::Spki
            })
        );
        let int256 = int
            .association(Selector::Spki, MatchingType::Sha256)
            .unwrap();
        assert_eq!(
            diagnose(&with(3, 1, 1, int256.clone()), &chain),
            Some(Cause::WrongUsage { depth: 1 })
        );
        let leaf_as_ta = leaf
            .association(Selector::Spki, MatchingType::Sha256)
            .unwrap();
        assert_eq!(
            diagnose(&with(2, 1, 1, leaf_as_ta), &chain),
            Some(Cause::WrongUsage { depth: 0 })
        );
        let pem = std::fs::read(format!(
            "{}/testdata/certs/leaf-rsa.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let pem_digest = digest(MatchingType::Sha256, &pem);
        assert!(matches!(
            diagnose(&with(3, 0, 1, pem_digest), &chain),
            Some(Cause::WrongEncoding {
                depth: 0,
                selector: Selector::Cert,
                ..
            })
        ));
        assert_eq!(diagnose(&with(3, 1, 1, vec![7; 32]), &chain), None);
    }

    #[test]
    fn pkix_records_get_a_dane_equivalent() {
        let leaf = load("leaf-ec");
        let int = load("int-ca");
        let chain = vec![leaf.clone(), int.clone()];
        let d = leaf
            .association(Selector::Spki, MatchingType::Sha256)
            .unwrap();
        assert_eq!(dane_equivalent(&with(1, 1, 1, d), &chain), Some(3));
        let d = int
            .association(Selector::Spki, MatchingType::Sha256)
            .unwrap();
        assert_eq!(dane_equivalent(&with(0, 1, 1, d), &chain), Some(2));
    }
}
