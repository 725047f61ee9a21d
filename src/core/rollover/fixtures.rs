//! Test inputs shared by the rollover modules' unit tests: a preflight case's
//! evidence and time, and a new certificate from the test certificates.

use super::NewCertificate;
use crate::core::evidence::{Evidence, Timestamp};

/// The evidence and time of `testdata/preflight/NAME.json`.
pub fn case(name: &str) -> (Evidence, Timestamp) {
    let path = format!(
        "{}/testdata/preflight/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (
        serde_json::from_value(v["evidence"].clone()).unwrap(),
        serde_json::from_value(v["at"].clone()).unwrap(),
    )
}

/// A new certificate (leaf first) from `testdata/certs/NAME.der` files.
pub fn new_cert(names: &[&str]) -> NewCertificate {
    let ders: Vec<Vec<u8>> = names
        .iter()
        .map(|n| {
            std::fs::read(format!(
                "{}/testdata/certs/{n}.der",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        })
        .collect();
    NewCertificate::from_ders(&ders).unwrap()
}
