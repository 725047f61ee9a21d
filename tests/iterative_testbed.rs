//! `dane-audit check --iterative` against every scenario of the real test
//! bed (testdata/testbed/scenarios.tsv): resolution from the bed's root
//! server (Knot on NS_KNOT) through the authoritative servers, no Unbound.
//! Verdicts and finding codes must be those of the resolver mode, with one
//! documented exception:
//!
//! * `dnssec-witness-disagree` is a disagreement between the in-process
//!   validator and the recursive resolver's own verdict (AD bit, EDE). In
//!   iterative mode there is no resolver, hence no witness and no such
//!   finding: dns-witness-disagree.example keeps its verdict (fail, from
//!   `tlsa-bogus`) without that code. The test also checks that no lookup
//!   carries a witness.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use support::{TIMEOUTS, Testbed, scenarios};

/// Codes that need a recursive resolver and cannot arise iteratively.
const RESOLVER_ONLY: &[&str] = &["dnssec-witness-disagree"];

/// Root hints for the bed: the NS of `.` (ns-knot.example.) and its
/// addresses from the bed's env (NS_KNOT=v4,v6).
fn write_hints(bed: &Testbed, dir: &Path) -> String {
    let mut text = String::from(".  3600000  NS  ns-knot.example.\n");
    for ip in bed.var("NS_KNOT").split(',') {
        let ty = if ip.contains(':') { "AAAA" } else { "A" };
        text.push_str(&format!("ns-knot.example.  3600000  {ty}  {ip}\n"));
    }
    let path = dir.join("root.hints");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn check(bed: &Testbed, mode: &[&str], domains: &[String], extra: &[&str]) -> Output {
    let mut c = bed.command(env!("CARGO_BIN_EXE_dane-audit"));
    c.arg("check")
        .args(domains)
        .args(mode)
        .args(["--trust-anchor", bed.trust_anchor()])
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

fn parse(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn by_domain(doc: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
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

/// Every `"witness"` value anywhere in a JSON document.
fn witnesses(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "witness" && !x.is_null() {
                    out.push(x.clone());
                }
                witnesses(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| witnesses(x, out)),
        _ => {}
    }
}

/// RFC 7672 end to end, resolving iteratively: every scenario's verdict and
/// codes as in resolver mode (except the resolver-only codes above).
#[test]
fn every_scenario_gives_its_expected_verdict_and_codes_iteratively() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hints = write_hints(bed, dir.path());
    let all = scenarios();
    let domains: Vec<String> = all.iter().map(|s| s.domain.clone()).collect();
    let saved = dir.path().join("evidence.json");
    let doc = parse(&check(
        bed,
        &["--iterative", "--root-hints", &hints],
        &domains,
        &["--save-evidence", saved.to_str().unwrap()],
    ));
    assert_eq!(
        doc["run"]["resolvers"][0].as_str().unwrap(),
        format!("iterative (root hints {hints})")
    );
    let got = by_domain(&doc);
    let mut diffs = Vec::new();
    let mut excepted = Vec::new();
    for s in &all {
        let d = &got[&s.domain];
        let mut want: BTreeSet<String> = s.codes.iter().cloned().collect();
        for c in RESOLVER_ONLY {
            if want.remove(*c) {
                excepted.push(s.domain.clone());
            }
        }
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
        "{} of {} scenarios differ in iterative mode:\n{}",
        diffs.len(),
        all.len(),
        diffs.join("\n")
    );
    // The exception is exercised (the bed has the witness scenario).
    assert_eq!(excepted, vec!["dns-witness-disagree.example".to_string()]);
    // No resolver, no witness anywhere in the evidence.
    let evidence: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let mut w = Vec::new();
    witnesses(&evidence, &mut w);
    assert!(w.is_empty(), "witness in iterative evidence: {w:?}");
}

/// One address family at a time, DNS and SMTP: iterative mode gives what
/// resolver mode gives (Unbound over the same family).
#[test]
fn one_family_at_a_time_as_in_resolver_mode() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hints = write_hints(bed, dir.path());
    let domains: Vec<String> = [
        "good-dualstack.example",
        "dns-ns-dead.example",
        "dns-tlsa-drop-v6.example",
        "dns-tlsa-insecure.example",
        "dns-tlsa-denial-bogus-nsec3.example",
        "dns-host-lookup-failed.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (fam, resolver) in [("-4", bed.resolver()), ("-6", bed.var("RESOLVER6"))] {
        let resolver = if fam == "-6" {
            format!("[{resolver}]")
        } else {
            resolver.to_string()
        };
        let via = by_domain(&parse(&check(
            bed,
            &["--resolver", &resolver],
            &domains,
            &[fam],
        )));
        let iter = by_domain(&parse(&check(
            bed,
            &["--iterative", "--root-hints", &hints],
            &domains,
            &[fam],
        )));
        for d in &domains {
            assert_eq!(
                (iter[d]["verdict"].as_str(), codes(&iter[d])),
                (via[d]["verdict"].as_str(), codes(&via[d])),
                "{d} with {fam}: iterative (left) vs resolver (right)"
            );
        }
    }
}

/// `scan --iterative` (the bulk path: shared host cache, bounded DNS
/// caches) gives the same records as `check --iterative`.
#[test]
fn scan_iteratively_gives_the_expected_verdicts() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hints = write_hints(bed, dir.path());
    let all = scenarios();
    let list = dir.path().join("domains.txt");
    let text: String = all.iter().map(|s| format!("{}\n", s.domain)).collect();
    std::fs::write(&list, text).unwrap();
    let out = dir.path().join("out.ndjson");
    let mut c = bed.command(env!("CARGO_BIN_EXE_dane-audit"));
    c.arg("scan")
        .arg(&list)
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--iterative", "--root-hints", &hints])
        .args(["--trust-anchor", bed.trust_anchor()])
        .args(TIMEOUTS);
    let run = c.output().unwrap();
    assert!(
        run.status.code().is_some_and(|c| c != 2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: BTreeMap<String, serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|d| (d["domain"].as_str().unwrap().to_string(), d))
        .collect();
    let mut diffs = Vec::new();
    for s in &all {
        let mut want: BTreeSet<String> = s.codes.iter().cloned().collect();
        for c in RESOLVER_ONLY {
            want.remove(*c);
        }
        let d = &got[&s.domain];
        if d["verdict"] != s.verdict.as_str() || codes(d) != want {
            diffs.push(format!(
                "{}: verdict {} want {}; codes {:?} want {:?}",
                s.domain,
                d["verdict"],
                s.verdict,
                codes(d),
                want
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// A DS trust anchor: the root DNSKEY set it must match is fetched
/// iteratively from the bed's root server before anything else.
#[test]
fn ds_trust_anchor_is_fetched_iteratively() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hints = write_hints(bed, dir.path());
    let picks = [
        "good-311-211.example",
        "dns-tlsa-bogus.example",
        "dns-unsigned.example",
        "dns-tlsa-insecure.example",
    ];
    let domains: Vec<String> = picks.iter().map(|s| s.to_string()).collect();
    let mut c = bed.command(env!("CARGO_BIN_EXE_dane-audit"));
    c.arg("check")
        .args(&domains)
        .args(["--iterative", "--root-hints", &hints])
        .args(["--trust-anchor", bed.var("TRUST_ANCHOR_DS")])
        .args(TIMEOUTS)
        .args(["--format", "json"])
        .args(["--fail-on", "never", "--no-fail-on-incomplete"]);
    let doc = parse(&c.output().unwrap());
    assert!(
        doc["run"]["trust_anchor"]
            .as_str()
            .unwrap()
            .ends_with("(1 key(s))"),
        "{}",
        doc["run"]["trust_anchor"]
    );
    let got = by_domain(&doc);
    for s in scenarios()
        .iter()
        .filter(|s| picks.contains(&s.domain.as_str()))
    {
        let want: BTreeSet<String> = s.codes.iter().cloned().collect();
        assert_eq!(
            (
                got[&s.domain]["verdict"].as_str().unwrap(),
                codes(&got[&s.domain])
            ),
            (s.verdict.as_str(), want),
            "{}",
            s.domain
        );
    }
}

/// `--root-hints` needs `--iterative`; `--iterative` excludes `--resolver`;
/// a hints file without addresses is a usage error naming the file.
#[test]
fn option_errors() {
    let bin = env!("CARGO_BIN_EXE_dane-audit");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let out = run(&["check", "example.org", "--root-hints", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(&[
        "check",
        "example.org",
        "--iterative",
        "--resolver",
        "192.0.2.1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("hints");
    std::fs::write(&empty, "; nothing here\n").unwrap();
    let out = run(&[
        "check",
        "example.org",
        "--iterative",
        "--root-hints",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("root hints") && err.contains("hints"), "{err}");
}
