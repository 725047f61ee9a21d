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

use dane_audit::core::evidence::{Evidence, Timestamp};
use dane_audit::core::rollover::{self, CandidateRecord, Headline, NewCertificate, State};
use dane_audit::report::rollover as render;
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
    /// Finding codes that must be among the hosts' findings.
    codes: Vec<String>,
    /// The code of the reason the domain's one line gives (`all-safe`
    /// when every host is safe).
    headline: Option<String>,
    /// Every reason code of every host, worst first per host.
    reasons: Vec<String>,
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
        let new = NewCertificate::from_ders(&ders).unwrap();
        let candidate: Option<Vec<CandidateRecord>> = c.candidate.as_ref().map(|v| {
            v.iter()
                .map(|r| CandidateRecord {
                    owner: None,
                    rdata: r.parse().unwrap(),
                })
                .collect()
        });
        let input = rollover::Input {
            evidence: &c.evidence,
            hosts: &c.hosts,
            new: &new,
            candidate: candidate.as_deref(),
            now: c.at,
            margin_secs: c.margin,
            published_before: c.published_before,
            accept_nexthop_name: false,
        };
        let (decision, next) = rollover::decide(&input, &c.state.clone().unwrap_or_default());
        let codes: BTreeSet<String> = decision
            .hosts
            .iter()
            .flat_map(|h| h.findings.iter().map(|f| f.code.to_string()))
            .collect();
        let reasons: Vec<String> = decision
            .hosts
            .iter()
            .flat_map(|h| h.reasons.iter().map(|r| r.code().to_string()))
            .collect();
        let headline = decision.headline.as_ref().map(|h| match h {
            Headline::Domain(r) | Headline::Host { reason: r, .. } => r.code().to_string(),
            Headline::AllSafe { .. } => "all-safe".to_string(),
        });
        let ok = decision.readiness.as_str() == c.expect.verdict
            && c.expect.codes.iter().all(|w| codes.contains(w))
            && reasons == c.expect.reasons
            && headline == c.expect.headline;
        if !ok {
            failures.push(format!(
                "{name} ({}): got {} ({headline:?}) with reasons {reasons:?} codes {codes:?}; want {} ({:?}) with {:?} and {:?}",
                c.description,
                decision.readiness,
                c.expect.verdict,
                c.expect.headline,
                c.expect.reasons,
                c.expect.codes,
            ));
        }
        let dir = root().join("testdata/golden/preflight");
        let exit = dane_audit::cli::preflight::exit_of(decision.readiness) as u8;
        let mut text = Vec::new();
        render::write_text(&mut text, &decision, &new, exit).unwrap();
        golden(
            &dir.join(format!("{name}.txt")),
            &String::from_utf8(text).unwrap(),
            &mut failures,
        );
        golden(
            &dir.join(format!("{name}.json")),
            &(render::decision_json(&decision, &new).unwrap() + "\n"),
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

/// Regression: with every server's RRset old enough but the resolver still
/// holding the RRset without NEW, the report said "WAIT, safe from" a time
/// already past. The resolver's copy goes when its TTL runs out.
#[test]
fn resolver_stale_wait_never_names_a_past_safe_at() {
    let (_, c) = cases()
        .into_iter()
        .find(|(n, _)| n == "resolver-still-has-the-old-rrset-wait")
        .unwrap();
    let ders: Vec<Vec<u8>> = c.new.iter().map(|n| der(n)).collect();
    let new = NewCertificate::from_ders(&ders).unwrap();
    let input = rollover::Input {
        evidence: &c.evidence,
        hosts: &c.hosts,
        new: &new,
        candidate: None,
        now: c.at,
        margin_secs: c.margin,
        published_before: c.published_before,
        accept_nexthop_name: false,
    };
    let (d, _) = rollover::decide(&input, &c.state.clone().unwrap_or_default());
    let ttl = c.evidence.hosts[0].tlsa.as_ref().unwrap().meta.ttl.unwrap();
    assert_eq!(d.safe_at, Some(Timestamp(c.at.0 + i64::from(ttl))));
}
