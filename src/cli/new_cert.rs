//! The new certificate of a rollover as the operator gives it: the
//! certificate, the chain the server will send with it, and its key.

use std::path::{Path, PathBuf};

use crate::core::cert::{CertInfo, PemItem, read_pem_or_der};
use crate::core::rollover::NewCertificate;

use super::exit::CliError;

#[derive(clap::Args, Debug, Clone)]
pub struct NewCertArgs {
    /// The new certificate (PEM or DER), optionally followed by its chain
    /// (a full-chain file) and preceded by its key (a Postfix chain file).
    #[arg(long, value_name = "NEW.pem")]
    pub cert: PathBuf,
    /// The CA certificates the server will send with NEW (PEM), leaf's issuer first.
    #[arg(long, value_name = "CHAIN.pem")]
    pub chain: Option<PathBuf>,
    /// NEW's private key: checked to belong to the certificate.
    #[arg(long, value_name = "NEW.key")]
    pub key: Option<PathBuf>,
}

pub fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

fn certs_of(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CliError> {
    let items =
        read_pem_or_der(bytes).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    let certs: Vec<Vec<u8>> = items
        .into_iter()
        .filter_map(|i| match i {
            PemItem::Cert(d) => Some(d),
            PemItem::PublicKey(_) => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CliError::usage(format!(
            "{}: no certificate found (a public key alone is not enough: DANE-TA needs the certificate)",
            path.display()
        )));
    }
    Ok(certs)
}

impl NewCertArgs {
    /// NEW from `--cert` and `--chain`, its key checked (`--key`, or a key
    /// in the certificate file itself, as Postfix chain files hold it).
    pub fn load(&self) -> Result<NewCertificate, CliError> {
        let cert_bytes = read(&self.cert)?;
        let mut ders = certs_of(&self.cert, &cert_bytes)?;
        if let Some(p) = &self.chain {
            let bytes = read(p)?;
            for d in certs_of(p, &bytes)? {
                if !ders.contains(&d) {
                    ders.push(d);
                }
            }
        }
        let new = NewCertificate::from_ders(&ders).ok_or_else(|| {
            CliError::usage(format!("{}: no certificate found", self.cert.display()))
        })?;
        match &self.key {
            Some(p) => check_key(p, &read(p)?, new.leaf(), true, &self.cert)?,
            None => check_key(&self.cert, &cert_bytes, new.leaf(), false, &self.cert)?,
        }
        Ok(new)
    }
}

/// Checks that a private key belongs to NEW (same public key).
pub(super) fn check_key(
    path: &Path,
    bytes: &[u8],
    leaf: &CertInfo,
    required: bool,
    cert: &Path,
) -> Result<(), CliError> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let key = match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(k) => k,
        Err(_) if !required => return Ok(()),
        Err(_) => PrivateKeyDer::try_from(bytes.to_vec())
            .map_err(|_| CliError::usage(format!("{}: no private key found", path.display())))?,
    };
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        CliError::usage(format!(
            "{}: the private key cannot be used: {e}",
            path.display()
        ))
    })?;
    if let (Some(spki), Some(want)) = (signer.public_key(), leaf.spki.as_deref())
        && spki.as_ref() != want
    {
        return Err(CliError::usage(format!(
            "{} does not belong to the certificate in {} (the public keys differ)",
            path.display(),
            cert.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_must_belong_to_the_certificate() {
        let certs = format!("{}/testdata/certs", env!("CARGO_MANIFEST_DIR"));
        let leaf = CertInfo::parse(&std::fs::read(format!("{certs}/leaf-rsa.der")).unwrap());
        let own = std::fs::read(format!("{certs}/leaf-rsa.key")).unwrap();
        let other = std::fs::read(format!("{certs}/leaf-ec.key")).unwrap();
        let p = Path::new("k");
        assert!(check_key(p, &own, &leaf, true, p).is_ok());
        let e = check_key(p, &other, &leaf, true, p).unwrap_err();
        assert!(e.to_string().contains("does not belong"), "{e}");
        assert!(check_key(p, b"garbage", &leaf, true, p).is_err());
        // No key in a certificate-only file: nothing to check.
        assert!(check_key(p, b"-----BEGIN CERTIFICATE-----", &leaf, false, p).is_ok());
    }
}
