//! The TLS client side of the probe: a rustls configuration (ring provider) whose
//! certificate verifier records the served chain and accepts it, because DANE
//! matching is the evaluation core's job, but still checks the handshake
//! signature, so that the chain is proven to belong to the peer.
//!
//! A configuration restricted to some key types offers only their signature
//! algorithms, which is how a server with several certificates (Postfix's
//! `smtpd_tls_cert_file` and `smtpd_tls_eccert_file`) picks the one it
//! presents; its verifier refuses a leaf of another type at once, so a server
//! that has none of them costs no more than its first flight.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, NamedGroup, OtherError, PeerMisbehaved,
    ProtocolVersion, SignatureScheme,
};

use crate::core::cert::key_type_of_cert;
use crate::core::evidence::{KeyType, TlsInfo};

/// Where the verifier puts the chain of the handshake running in the current task.
type Captured = Arc<Mutex<Vec<CertificateDer<'static>>>>;

tokio::task_local! {
    static CAPTURE: Captured;
}

/// Runs one handshake future with chain capture; returns its output and the chain
/// the server sent (leaf first), which is kept even when the handshake fails later.
pub(crate) async fn capturing<F: Future>(fut: F) -> (F::Output, Vec<CertificateDer<'static>>) {
    let cell = Captured::default();
    let out = CAPTURE.scope(cell.clone(), fut).await;
    let chain = std::mem::take(&mut *cell.lock().unwrap_or_else(PoisonError::into_inner));
    (out, chain)
}

/// The client configuration shared by every probe: every signature algorithm
/// for `None` (the default offer), else only those of the key types listed.
pub(crate) fn client_config(families: Option<&[KeyType]>) -> Result<ClientConfig, rustls::Error> {
    let families = families.map(<[KeyType]>::to_vec);
    let mut provider = ring::default_provider();
    // X25519 first: the group nearly every MTA accepts in the first flight, so no
    // HelloRetryRequest, and no large post-quantum hybrid share if a provider adds one.
    provider
        .kx_groups
        .sort_by_key(|g| g.name() != NamedGroup::X25519);
    let algs = provider.signature_verification_algorithms;
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaptureVerifier { algs, families }))
        .with_no_client_auth();
    // Every probe must see the full handshake: a resumed session sends no certificate.
    cfg.resumption = Resumption::disabled();
    cfg.enable_sni = true;
    Ok(cfg)
}

/// What the finished handshake negotiated.
pub(crate) fn tls_info(conn: &rustls::ClientConnection, sni: &str) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let s = s.suite();
            match s.as_str() {
                // IANA names: rustls spells the TLS 1.3 suites TLS13_*.
                Some(n) => n
                    .strip_prefix("TLS13_")
                    .map_or(n.to_string(), |r| format!("TLS_{r}")),
                None => format!("{s:?}"),
            }
        })
        .unwrap_or_else(|| "unknown".to_string());
    let group = conn.negotiated_key_exchange_group().map(|g| {
        let n = g.name();
        n.as_str().map_or_else(|| format!("{n:?}"), str::to_string)
    });
    TlsInfo {
        version,
        cipher,
        group,
        sni: sni.to_string(),
    }
}

#[derive(Debug)]
struct CaptureVerifier {
    algs: WebPkiSupportedAlgorithms,
    /// Offer only these key types' signature schemes, and accept only their leaves.
    families: Option<Vec<KeyType>>,
}

/// Why a leaf does not answer the key types asked for, in words.
pub(crate) fn other_key_type(want: &[KeyType], got: Option<KeyType>) -> String {
    let asked: Vec<&str> = want.iter().map(|k| k.as_str()).collect();
    format!(
        "asked for {} certificate, the server presented {}",
        match asked.len() {
            1 => format!("a {}", asked[0]),
            _ => format!("an {}", asked.join(" or ")),
        },
        got.map_or(
            "a certificate of another key type".to_string(),
            |k| format!("its {k} certificate")
        )
    )
}

/// The key type whose certificates a signature scheme verifies.
fn scheme_family(s: SignatureScheme) -> Option<KeyType> {
    use SignatureScheme as S;
    match s {
        S::ECDSA_NISTP256_SHA256 | S::ECDSA_NISTP384_SHA384 | S::ECDSA_NISTP521_SHA512 => {
            Some(KeyType::Ecdsa)
        }
        S::RSA_PSS_SHA256
        | S::RSA_PSS_SHA384
        | S::RSA_PSS_SHA512
        | S::RSA_PKCS1_SHA256
        | S::RSA_PKCS1_SHA384
        | S::RSA_PKCS1_SHA512 => Some(KeyType::Rsa),
        S::ED25519 => Some(KeyType::Ed25519),
        _ => None,
    }
}

impl ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(want) = &self.families {
            let got = key_type_of_cert(end_entity.as_ref());
            if !got.is_some_and(|k| want.contains(&k)) {
                return Err(rustls::Error::General(other_key_type(want, got)));
            }
        }
        // Outside a `capturing` scope there is nowhere to record: still accept.
        let _ = CAPTURE.try_with(|cell| {
            let mut chain = cell.lock().unwrap_or_else(PoisonError::into_inner);
            chain.clear();
            chain.push(end_entity.clone().into_owned());
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        });
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs) {
            Err(e) if unparsable(cert) => match spki(cert) {
                Some(spki) => verify_tls12_raw(message, &spki, dss, &self.algs),
                None => Err(e),
            },
            r => r,
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs) {
            Err(e) if unparsable(cert) => match spki(cert) {
                Some(spki) => rustls::crypto::verify_tls13_signature_with_raw_key(
                    message, &spki, dss, &self.algs,
                ),
                None => Err(e),
            },
            r => r,
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let all = self.algs.supported_schemes();
        match &self.families {
            None => all,
            Some(want) => all
                .into_iter()
                .filter(|s| scheme_family(*s).is_some_and(|k| want.contains(&k)))
                .collect(),
        }
    }
}

/// Whether webpki refuses the certificate itself (X.509 v1, odd encodings), as
/// opposed to the signature: only then is the raw-key path taken.
fn unparsable(cert: &CertificateDer<'_>) -> bool {
    webpki::EndEntityCert::try_from(cert).is_err()
}

/// The DER SubjectPublicKeyInfo, read with the more lenient x509-parser.
fn spki(cert: &CertificateDer<'_>) -> Option<SubjectPublicKeyInfoDer<'static>> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(SubjectPublicKeyInfoDer::from(c.public_key().raw.to_vec()))
}

/// TLS 1.2 signature check against a bare public key: rustls only has a TLS 1.3
/// helper, so this mirrors `verify_tls12_signature` (try every algorithm mapped to
/// the scheme).
fn verify_tls12_raw(
    message: &[u8],
    spki: &SubjectPublicKeyInfoDer<'_>,
    dss: &DigitallySignedStruct,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let candidates = algs
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, a)| *a)
        .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
    let key = webpki::RawPublicKeyEntity::try_from(spki)
        .map_err(|_| rustls::Error::from(CertificateError::BadEncoding))?;
    let mut last = None;
    for alg in candidates {
        match key.verify_signature(*alg, message, dss.signature()) {
            Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
            Err(webpki::Error::InvalidSignatureForPublicKey) => {
                return Err(CertificateError::BadSignature.into());
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => CertificateError::Other(OtherError(Arc::new(e))).into(),
        None => PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(families: Option<&[KeyType]>) -> CaptureVerifier {
        CaptureVerifier {
            algs: ring::default_provider().signature_verification_algorithms,
            families: families.map(<[KeyType]>::to_vec),
        }
    }

    #[test]
    fn a_family_offers_only_its_own_schemes() {
        let every = verifier(None).supported_verify_schemes();
        for k in KeyType::ALL {
            assert!(client_config(Some(&[k])).is_ok(), "{k}");
            let offered = verifier(Some(&[k])).supported_verify_schemes();
            assert!(!offered.is_empty(), "{k}");
            assert!(offered.iter().all(|s| scheme_family(*s) == Some(k)), "{k}");
            assert!(offered.iter().all(|s| every.contains(s)), "{k}");
        }
        let two = verifier(Some(&[KeyType::Rsa, KeyType::Ed25519])).supported_verify_schemes();
        assert!(two.contains(&SignatureScheme::ED25519));
        assert!(two.contains(&SignatureScheme::RSA_PSS_SHA256));
        assert!(!two.contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(
            every
                .iter()
                .any(|s| scheme_family(*s) == Some(KeyType::Rsa))
        );
    }

    #[test]
    fn a_family_refuses_a_leaf_of_another_type() {
        let rsa = CertificateDer::from(&include_bytes!("../../testdata/certs/leaf-rsa.der")[..]);
        let ec = CertificateDer::from(&include_bytes!("../../testdata/certs/leaf-ec.der")[..]);
        let name = ServerName::try_from("mx.example").unwrap();
        let v = verifier;
        let now = UnixTime::now();
        let ecdsa = v(Some(&[KeyType::Ecdsa, KeyType::Ed25519]));
        assert!(ecdsa.verify_server_cert(&ec, &[], &name, &[], now).is_ok());
        let e = ecdsa
            .verify_server_cert(&rsa, &[], &name, &[], now)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("asked for an ECDSA or Ed25519 certificate, the server presented its RSA certificate"),
            "{e}"
        );
        assert!(
            v(None)
                .verify_server_cert(&rsa, &[], &name, &[], now)
                .is_ok()
        );
    }

    #[test]
    fn x25519_first_and_no_resumption() {
        let cfg = client_config(None).unwrap();
        assert_eq!(
            cfg.crypto_provider().kx_groups[0].name(),
            NamedGroup::X25519
        );
        assert!(
            cfg.crypto_provider()
                .kx_groups
                .iter()
                .all(|g| !format!("{:?}", g.name()).contains("MLKEM"))
        );
    }

    #[test]
    fn v1_certificate_takes_the_raw_key_path() {
        let v1 =
            CertificateDer::from(&include_bytes!("../../testdata/certs/selfsigned-v1.der")[..]);
        let v3 = CertificateDer::from(&include_bytes!("../../testdata/certs/leaf-rsa.der")[..]);
        assert!(unparsable(&v1));
        assert!(!unparsable(&v3));
        assert_eq!(
            spki(&v1).unwrap().as_ref(),
            include_bytes!("../../testdata/certs/selfsigned-v1.pub.der")
        );
    }
}
