//! Runs every preflight case in `testdata/preflight/`: the evidence, the new
//! certificate (named files of `testdata/certs`), the candidate RRset, the
//! remembered state and the time go in; the verdict, the reasons and the
//! finding codes must be the expected ones, and the text and JSON reports
//! and the next state must equal the golden files in
//! `testdata/golden/preflight/` byte for byte. Adding a case is adding a
//! file; regenerate the golden files with `UPDATE_GOLDEN=1 cargo test --test
//! preflight_cases` and review the diff by eye.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dane_audit::core::cert::{CertInfo, PemItem};
use dane_audit::core::evidence::{Evidence, Timestamp};
use dane_audit::core::preflight::{self, CandidateRecord, State};
use dane_audit::core::tlsa::TlsaRdata;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    description: String,
    at: Timestamp,
    margin: u64,
    /// File stems in testdata/certs: the new certificate, then its chain.
    new: Vec<String>,
    #[serde(default)]
    candidate: Option<Vec<String>>,
    #[serde(default)]
    published_before: Option<Timestamp>,
    #[serde(default)]
    state: Option<State>,
    #[serde(default)]
    hosts: Vec<String>,
    expect: Expect,
    evidence: Evidence,
}

#[derive(Deserialize)]
struct Expect {
    verdict: String,
    codes: Vec<String>,
    reason_phrase: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> Vec<(String, Case)> {
    let dir = root().join("testdata/preflight");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("testdata/preflight") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let c: Case =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_stem().unwrap().to_string_lossy().into_owned(), c));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn der(name: &str) -> Vec<u8> {
    let p = root().join(format!("testdata/certs/{name}.der"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Compares with (or, with UPDATE_GOLDEN=1, writes) a golden file.
fn golden(path: &Path, got: &str, failures: &mut Vec<String>) {
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if want != got {
        failures.push(format!(
            "{} differs:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        ));
    }
}

#[test]
fn every_preflight_case_gives_its_expected_decision_and_report() {
    let all = cases();
    assert!(all.len() >= 20, "only {} cases", all.len());
    let mut failures = Vec::new();
    for (name, c) in &all {
        let ders: Vec<Vec<u8>> = c.new.iter().map(|n| der(n)).collect();
        let chain: Vec<CertInfo> = ders.iter().map(|d| CertInfo::parse(d)).collect();
        let items: Vec<PemItem> = ders.iter().cloned().map(PemItem::Cert).collect();
        let recommended: Vec<TlsaRdata> = dane_audit::cli::tlsa::RECOMMENDED
            .iter()
            .filter_map(|(u, s, m)| dane_audit::cli::tlsa::record(&items, *u, *s, *m).ok())
            .collect();
        let candidate: Option<Vec<CandidateRecord>> = c.candidate.as_ref().map(|v| {
            v.iter()
                .map(|r| CandidateRecord {
                    owner: None,
                    rdata: r.parse().unwrap(),
                })
                .collect()
        });
        let mut ev = c.evidence.clone();
        if !c.hosts.is_empty() {
            ev.hosts.retain(|h| c.hosts.contains(&h.name));
        }
        let input = preflight::Input {
            evidence: &ev,
            explicit_hosts: !c.hosts.is_empty(),
            new_chain: &chain,
            candidate: candidate.as_deref(),
            recommended: &recommended,
            now: c.at,
            margin_secs: c.margin,
            published_before: c.published_before,
            accept_nexthop_name: false,
            ns_checks: true,
        };
        let (report, next) = preflight::evaluate(&input, &c.state.clone().unwrap_or_default());
        let codes: BTreeSet<String> = report
            .hosts
            .iter()
            .flat_map(|h| h.findings.iter().map(|f| f.code.to_string()))
            .collect();
        let ok = report.verdict.as_str() == c.expect.verdict
            && c.expect.codes.iter().all(|w| codes.contains(w))
            && report.reason.contains(&c.expect.reason_phrase);
        if !ok {
            failures.push(format!(
                "{name} ({}): got {} ({}) codes {codes:?}; want {} with {:?} and reason ~ {:?}",
                c.description,
                report.verdict,
                report.reason,
                c.expect.verdict,
                c.expect.codes,
                c.expect.reason_phrase
            ));
        }
        let dir = root().join("testdata/golden/preflight");
        let mut text = Vec::new();
        dane_audit::cli::preflight::write_text(&mut text, &report).unwrap();
        golden(
            &dir.join(format!("{name}.txt")),
            &String::from_utf8(text).unwrap(),
            &mut failures,
        );
        golden(
            &dir.join(format!("{name}.json")),
            &(serde_json::to_string_pretty(&report).unwrap() + "\n"),
            &mut failures,
        );
        golden(
            &dir.join(format!("{name}.state.json")),
            &(serde_json::to_string_pretty(&next).unwrap() + "\n"),
            &mut failures,
        );
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
