//! dane-audit against two independent DANE implementations on the test bed:
//! Postfix's `posttls-finger -l dane` and `openssl s_client -dane_tlsa_rrdata`
//! (`scripts/testbed oracle`). For every scenario an oracle can judge, the
//! oracle must confirm the scenario's expectation and dane-audit must reach
//! the same verdict. The table is printed (`--nocapture`) for the record.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::Testbed;

#[test]
fn dane_audit_agrees_with_posttls_finger_and_openssl() {
    let Some(bed) = Testbed::get() else { return };
    let oracle = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed"))
        .arg("oracle")
        .output()
        .expect("scripts/testbed oracle");
    let table = std::fs::read_to_string(bed.dir.join("oracle.tsv")).expect("oracle.tsv");
    let rows: Vec<Vec<String>> = table
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    let domains: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    let out = bed
        .command(env!("CARGO_BIN_EXE_dane-audit"))
        .arg("check")
        .args(&domains)
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args([
            "--connect-timeout",
            "5",
            "--smtp-timeout",
            "5",
            "--dns-timeout",
            "2",
        ])
        .args([
            "--format",
            "json",
            "--fail-on",
            "never",
            "--no-fail-on-incomplete",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: BTreeMap<String, String> = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["domain"].as_str().unwrap().to_string(),
                d["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    println!("| domain | dane-audit | posttls-finger | openssl | agree |\n|---|---|---|---|---|");
    let mut bad = Vec::new();
    for r in &rows {
        let (domain, expected, pf, ossl, oracle_agrees) = (&r[0], &r[1], &r[2], &r[3], &r[4]);
        let mine = ours.get(domain).map(String::as_str).unwrap_or("missing");
        let agree = oracle_agrees != "no" && mine == expected;
        println!(
            "| {domain} | {mine} | {pf} | {ossl} | {} |",
            if agree { "yes" } else { "NO" }
        );
        if !agree {
            bad.push(format!("{domain}: dane-audit {mine}, expected {expected}, oracle agrees with the expectation: {oracle_agrees} ({pf} / {ossl})"));
        }
    }
    assert!(
        bad.is_empty(),
        "disagreements:\n{}\n{}",
        bad.join("\n"),
        String::from_utf8_lossy(&oracle.stdout)
    );
}
