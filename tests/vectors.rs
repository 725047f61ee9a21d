//! Runs every evidence vector in `testdata/vectors/`: evaluate at the stored
//! time, compare verdict and the set of finding codes. Adding a case is
//! adding a file (or a line in `scripts/make-vectors`).

use std::collections::BTreeSet;
use std::path::Path;

use dane_audit::core::evidence::{Evidence, Timestamp};
use dane_audit::core::finding::Code;
use dane_audit::core::{EvalOptions, evaluate};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vector {
    description: String,
    at: Timestamp,
    expect: Expect,
    evidence: Evidence,
}

#[derive(Deserialize)]
struct Expect {
    verdict: String,
    codes: Vec<String>,
}

fn vectors() -> Vec<(String, Vector)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/vectors");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("testdata/vectors") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Vector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_stem().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_vector_gives_its_expected_verdict_and_codes() {
    let mut failures = Vec::new();
    let all = vectors();
    assert!(all.len() >= 40, "only {} vectors", all.len());
    for (name, v) in &all {
        let audit = evaluate(&v.evidence, &EvalOptions::at(v.at));
        let got: BTreeSet<String> = audit.findings.iter().map(|f| f.code.to_string()).collect();
        let want: BTreeSet<String> = v.expect.codes.iter().cloned().collect();
        if audit.verdict.as_str() != v.expect.verdict || got != want {
            failures.push(format!(
                "{name} ({}):\n  verdict {} (want {})\n  codes {:?}\n  want  {:?}\n  findings: {:#?}",
                v.description,
                audit.verdict,
                v.expect.verdict,
                got,
                want,
                audit
                    .findings
                    .iter()
                    .map(|f| format!("{} {} {}", f.severity, f.code, f.message))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every finding code of the output contract appears in at least one vector,
/// so no code ships untested.
#[test]
fn vectors_cover_every_code() {
    let seen: BTreeSet<String> = vectors()
        .into_iter()
        .flat_map(|(_, v)| v.expect.codes)
        .collect();
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "codes without a vector: {missing:?}");
}
