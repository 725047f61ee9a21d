//! `dane-audit check` against every scenario of the real test bed
//! (testdata/testbed/scenarios.tsv): verdict and finding codes must match.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use support::{TIMEOUTS, Testbed, scenarios};

fn check(bed: &Testbed, domains: &[String], extra: &[&str]) -> Output {
    let mut c = bed.command(env!("CARGO_BIN_EXE_dane-audit"));
    c.arg("check")
        .args(domains)
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args(TIMEOUTS)
        .args([
            "--format",
            "json",
            "--fail-on",
            "never",
            "--no-fail-on-incomplete",
        ])
        .args(extra);
    c.output().expect("run dane-audit inside the test bed")
}

fn by_domain(out: &Output) -> BTreeMap<String, serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["domain"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

fn codes(d: &serde_json::Value) -> BTreeSet<String> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// RFC 7672 end to end: every scenario's verdict and codes.
#[test]
fn every_scenario_gives_its_expected_verdict_and_codes() {
    let Some(bed) = Testbed::get() else { return };
    let all = scenarios();
    let domains: Vec<String> = all.iter().map(|s| s.domain.clone()).collect();
    let out = check(bed, &domains, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = by_domain(&out);
    let mut diffs = Vec::new();
    for s in &all {
        let d = &got[&s.domain];
        let want: BTreeSet<String> = s.codes.iter().cloned().collect();
        let have = codes(d);
        if d["verdict"] != s.verdict.as_str() || have != want {
            diffs.push(format!(
                "{} ({}): verdict {} want {}; codes {:?} want {:?}",
                s.domain, s.meaning, d["verdict"], s.verdict, have, want
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} scenarios differ:\n{}",
        diffs.len(),
        all.len(),
        diffs.join("\n")
    );
}

/// `evaluate` on saved evidence gives the same report as `check` did.
#[test]
fn saved_evidence_re_evaluates_to_the_same_report() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("evidence.json");
    let domains: Vec<String> = [
        "good-311-211.example",
        "rec-wrong-selector.example",
        "dns-partial.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let at = "2026-12-01T00:00:00Z";
    let out = check(
        bed,
        &domains,
        &["--at", at, "--save-evidence", saved.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_dane-audit"))
        .args([
            "evaluate",
            saved.to_str().unwrap(),
            "--at",
            at,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(by_domain(&out), by_domain(&again));
}
