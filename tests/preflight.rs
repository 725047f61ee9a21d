//! `dane-audit preflight`: bad input is a usage error (exit 2, one line on
//! stderr), found before any network work. No test bed needed.

use std::process::{Command, Output};

fn certs(name: &str) -> String {
    format!("{}/testdata/certs/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn preflight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dane-audit"))
        .arg("preflight")
        .args(args)
        // A resolver nobody answers on: none of these may get that far.
        .args(["--resolver", "192.0.2.1", "--dns-timeout", "1"])
        .output()
        .expect("run dane-audit")
}

fn usage_error(args: &[&str], want: &str) {
    let out = preflight(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout not empty");
    assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err:?}"
    );
}

#[test]
fn bad_input_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let tlsa_bad = dir.path().join("bad.zone");
    std::fs::write(
        &tlsa_bad,
        "$TTL 300\n; next key\n_25._tcp.mx IN TLSA 3 1 1 zz\n",
    )
    .unwrap();
    let tlsa_none = dir.path().join("none.zone");
    std::fs::write(&tlsa_none, "mx IN A 192.0.2.1\n").unwrap();
    let state_bad = dir.path().join("state.json");
    std::fs::write(&state_bad, "{ not json").unwrap();
    let leaf = certs("leaf-rsa.chain.pem");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                "/nonexistent/new.pem".into(),
            ],
            "cannot read /nonexistent/new.pem",
        ),
        (
            vec!["example.net".into(), "--cert".into(), s(&garbage)],
            "garbage.pem",
        ),
        (
            vec!["example.net".into(), "--cert".into(), s(&empty)],
            "empty.pem",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                certs("leaf-rsa.pub.pem"),
            ],
            "no certificate found",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--key".into(),
                certs("leaf-ec.key"),
            ],
            "does not belong to the certificate",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--chain".into(),
                "/nonexistent/chain.pem".into(),
            ],
            "cannot read /nonexistent/chain.pem",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--tlsa".into(),
                "3 1 1 xyz".into(),
            ],
            "--tlsa",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--tlsa-file".into(),
                s(&tlsa_bad),
            ],
            "bad.zone:3:",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--tlsa-file".into(),
                s(&tlsa_none),
            ],
            "no TLSA record found",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--published-before".into(),
                "2999-01-01T00:00:00Z".into(),
            ],
            "in the future",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--published-before".into(),
                "yesterday".into(),
            ],
            "is not a time",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--state".into(),
                s(&state_bad),
            ],
            "not a preflight state file",
        ),
        (
            vec!["user@example.net".into(), "--cert".into(), leaf.clone()],
            "e-mail address",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--evidence".into(),
                "/nonexistent/ev.json".into(),
            ],
            "cannot read /nonexistent/ev.json",
        ),
        (
            vec![
                "example.org".into(),
                "--cert".into(),
                leaf.clone(),
                "--evidence".into(),
                format!(
                    "{}/testdata/vectors/good-311.json",
                    env!("CARGO_MANIFEST_DIR")
                ),
            ],
            "holds no evidence for example.org",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--host".into(),
                "mx9.example.net".into(),
                "--evidence".into(),
                format!(
                    "{}/testdata/vectors/good-311.json",
                    env!("CARGO_MANIFEST_DIR")
                ),
            ],
            "no evidence for the host mx9.example.net",
        ),
        (
            vec![
                "example.net".into(),
                "--cert".into(),
                leaf.clone(),
                "--evidence".into(),
                format!(
                    "{}/testdata/vectors/good-311.json",
                    env!("CARGO_MANIFEST_DIR")
                ),
                "--at".into(),
                "soon".into(),
            ],
            "--at \"soon\" is not a time",
        ),
    ];
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        usage_error(&args, want);
    }
}

/// Flags clap rejects: exit 2 as well.
#[test]
fn conflicting_or_malformed_flags_exit_2() {
    let leaf = certs("leaf-rsa.chain.pem");
    let leaf = leaf.as_str();
    for args in [
        vec!["example.net", "--cert", leaf, "--max-wait", "1h"],
        vec!["example.net", "--cert", leaf, "--margin", "an hour"],
        vec!["example.net", "--cert", leaf, "--format", "csv"],
        vec![
            "example.net",
            "--cert",
            leaf,
            "--at",
            "2030-01-01T00:00:00Z",
        ],
        vec![
            "example.net",
            "--cert",
            leaf,
            "--evidence",
            "e.json",
            "--wait",
        ],
        vec!["example.net"],
        vec!["--cert", leaf],
    ] {
        let out = preflight(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// The key in a Postfix-style chain file (key, leaf, CA) is checked too.
#[test]
fn a_combined_file_with_the_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("combined.pem");
    let mut text = std::fs::read_to_string(certs("leaf-ec.key")).unwrap();
    text.push_str(&std::fs::read_to_string(certs("leaf-rsa.chain.pem")).unwrap());
    std::fs::write(&combined, text).unwrap();
    usage_error(
        &["example.net", "--cert", combined.to_str().unwrap()],
        "does not belong to the certificate",
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_dane-audit"))
        .args(["preflight", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--cert",
        "--chain",
        "--tlsa",
        "--tlsa-file",
        "--margin",
        "--state",
        "--published-before",
        "--wait",
        "--max-wait",
        "--save-evidence",
        "--evidence",
        "4 not yet",
    ] {
        assert!(text.contains(want), "--help lacks {want}");
    }
}
