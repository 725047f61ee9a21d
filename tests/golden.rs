//! Golden files: each renderer's output for a few vectors, byte for byte.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test --test golden` and review the
//! diff by eye before committing.

use std::path::{Path, PathBuf};

use dane_audit::core::evidence::{Timestamp, parse_evidence};
use dane_audit::core::{EvalOptions, evaluate};
use dane_audit::report::{self, Format, Row, RunInfo, Summary};

const CASES: &[&str] = &[
    "good-311-plus-211",
    "addresses-disagree",
    "partial-coverage",
    "wrong-selector",
    "ta-single-issuer-pin",
    "tlsa-dropped-everywhere",
    "starttls-not-offered",
    "mx-cname-secure",
    "good-210-root-key-not-sent",
    "key-type-uncovered",
    "tls-legacy-only",
    "ns-no-tcp-large-tlsa",
    "ds-sha1-only",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn render(name: &str, format: Format) -> String {
    let text =
        std::fs::read_to_string(root().join(format!("testdata/vectors/{name}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let at = Timestamp::parse(v["at"].as_str().unwrap()).unwrap();
    let evidence = parse_evidence(&text).unwrap();
    let run = RunInfo {
        command: "evaluate".into(),
        started_at: at,
        evaluated_at: at,
        resolvers: vec!["192.0.2.53:53".into()],
        trust_anchor: "test".into(),
        families: vec!["ipv4", "ipv6"],
        fail_on: Some("error".into()),
    };
    let mut buf = Vec::new();
    {
        let mut sink = report::sink(format, Box::new(&mut buf), false);
        sink.begin(&run).unwrap();
        let mut summary = Summary::default();
        for ev in &evidence {
            let audit = evaluate(ev, &EvalOptions::at(at));
            let row = Row::Audit {
                audit: &audit,
                line: None,
            };
            summary.add(&row);
            sink.row(&row).unwrap();
        }
        sink.end(&summary).unwrap();
    }
    String::from_utf8(buf).unwrap()
}

fn check(path: &Path, got: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, got).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    (want != got).then(|| {
        format!(
            "{} differs:\n--- want\n{want}\n--- got\n{got}",
            path.display()
        )
    })
}

#[test]
fn renderers_match_golden_files() {
    let mut diffs = Vec::new();
    for name in CASES {
        for (format, ext) in [
            (Format::Text, "txt"),
            (Format::Json, "json"),
            (Format::Ndjson, "ndjson"),
            (Format::Csv, "csv"),
        ] {
            let path = root().join(format!("testdata/golden/{name}.{ext}"));
            diffs.extend(check(&path, &render(name, format)));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn json_output_is_valid_and_carries_the_contract_fields() {
    for name in CASES {
        let doc: serde_json::Value = serde_json::from_str(&render(name, Format::Json)).unwrap();
        assert_eq!(doc["schema_version"], 1);
        assert!(doc["tool"]["version"].is_string());
        assert!(doc["run"]["evaluated_at"].is_string());
        let d = &doc["domains"][0];
        for key in ["domain", "verdict", "findings", "hosts"] {
            assert!(!d[key].is_null(), "{name}: {key}");
        }
        for f in d["findings"].as_array().unwrap() {
            for key in ["code", "severity", "subject", "message", "fix", "rfc"] {
                assert!(f[key].is_string(), "{name}: finding {key}");
            }
        }
        for line in render(name, Format::Ndjson).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["schema_version"], 1);
        }
    }
}
