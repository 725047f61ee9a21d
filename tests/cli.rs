//! The command line as users meet it: records equal to openssl's, one clear
//! line and exit 2 for bad input, never a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dane-audit"))
}

fn certs(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/certs")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run dane-audit")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What openssl computes for (selector, mtype) of a PEM certificate.
fn openssl_association(pem: &std::path::Path, selector: u8, mtype: u8) -> String {
    let der_cmd = if selector == 1 {
        format!(
            "openssl x509 -in {} -noout -pubkey | openssl pkey -pubin -outform DER",
            pem.display()
        )
    } else {
        format!("openssl x509 -in {} -outform DER", pem.display())
    };
    let pipeline = match mtype {
        0 => format!("{der_cmd} | od -An -v -tx1 | tr -d ' \\n'"),
        1 => format!("{der_cmd} | openssl dgst -sha256 -r | cut -d' ' -f1"),
        _ => format!("{der_cmd} | openssl dgst -sha512 -r | cut -d' ' -f1"),
    };
    let o = Command::new("sh")
        .arg("-c")
        .arg(&pipeline)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{pipeline}");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn tlsa_records_equal_openssl_for_rsa_ecdsa_and_v1() {
    for name in ["leaf-rsa", "leaf-ec", "selfsigned-v1"] {
        let pem = certs(&format!("{name}.pem"));
        for selector in [0u8, 1] {
            for mtype in [0u8, 1, 2] {
                let o = run(&[
                    "tlsa",
                    pem.to_str().unwrap(),
                    "--selector",
                    &selector.to_string(),
                    "--mtype",
                    &mtype.to_string(),
                ]);
                assert!(o.status.success(), "{name} {selector} {mtype}");
                let want = format!(
                    "3 {selector} {mtype} {}",
                    openssl_association(&pem, selector, mtype)
                );
                assert_eq!(stdout(&o).trim(), want, "{name} 3 {selector} {mtype}");
            }
        }
    }
}

#[test]
fn tlsa_recommend_prints_leaf_and_issuer_zone_lines() {
    let chain = certs("leaf-ec.chain.pem");
    let o = run(&[
        "tlsa",
        chain.to_str().unwrap(),
        "--recommend",
        "--name",
        "mx1.example.net.",
    ]);
    assert!(o.status.success());
    let leaf = openssl_association(&certs("leaf-ec.pem"), 1, 1);
    let issuer = openssl_association(&certs("int-ca.pem"), 1, 1);
    assert_eq!(
        stdout(&o),
        format!(
            "_25._tcp.mx1.example.net. IN TLSA 3 1 1 {leaf}\n_25._tcp.mx1.example.net. IN TLSA 2 1 1 {issuer}\n"
        )
    );
}

#[test]
fn tlsa_from_a_public_key() {
    let o = run(&["tlsa", certs("leaf-rsa.pub.pem").to_str().unwrap()]);
    assert!(o.status.success());
    let want = openssl_association(&certs("leaf-rsa.pem"), 1, 1);
    assert_eq!(stdout(&o).trim(), format!("3 1 1 {want}"));
}

/// Bad input: exit 2, exactly one line on stderr, nothing on stdout.
#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        b"-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, b"{\"schema_version\": 1, \"domain\": 5}").unwrap();
    let future = dir.path().join("future.json");
    std::fs::write(&future, br#"{"schema_version": 99, "domain": "x", "collected_at": 0, "mx": {"qname": "x.", "outcome": "answer", "dnssec": "secure"}}"#).unwrap();
    let leaf_only = certs("leaf-rsa.pem");
    let cases: Vec<Vec<String>> = vec![
        vec!["tlsa".into(), garbage.display().to_string()],
        vec!["tlsa".into(), "/nonexistent/cert.pem".into()],
        vec![
            "tlsa".into(),
            leaf_only.display().to_string(),
            "--usage".into(),
            "2".into(),
        ],
        vec![
            "tlsa".into(),
            certs("leaf-rsa.pub.pem").display().to_string(),
            "--selector".into(),
            "0".into(),
        ],
        vec![
            "tlsa".into(),
            leaf_only.display().to_string(),
            "--selector".into(),
            "7".into(),
        ],
        vec!["evaluate".into(), bad_json.display().to_string()],
        vec!["evaluate".into(), future.display().to_string()],
        vec![
            "evaluate".into(),
            certs("leaf-rsa.der").display().to_string(),
        ],
        vec![
            "evaluate".into(),
            leaf_only.display().to_string(),
            "--at".into(),
            "yesterday".into(),
        ],
        vec!["explain".into(), "no-such-code".into()],
    ];
    for args in cases {
        let o = bin().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        if !args.contains(&"--selector".to_string()) {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn explain_knows_every_code() {
    let list = run(&["explain", "--list"]);
    assert!(list.status.success());
    for line in stdout(&list).lines() {
        let code = line.split_whitespace().next().unwrap();
        let o = run(&["explain", code]);
        assert!(o.status.success(), "{code}");
        assert!(stdout(&o).contains("Fix:"), "{code}");
    }
}

#[test]
fn evaluate_exit_codes_follow_the_policy() {
    let v = |n: &str| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("testdata/vectors/{n}.json"))
            .display()
            .to_string()
    };
    let at = "2030-06-01T00:00:00Z";
    let code = |args: &[&str]| run(args).status.code();
    assert_eq!(
        code(&["evaluate", &v("good-311-plus-211"), "--at", at]),
        Some(0)
    );
    assert_eq!(
        code(&["evaluate", &v("wrong-selector"), "--at", at]),
        Some(1)
    );
    assert_eq!(
        code(&[
            "evaluate",
            &v("wrong-selector"),
            "--at",
            at,
            "--fail-on",
            "never"
        ]),
        Some(0)
    );
    assert_eq!(
        code(&[
            "evaluate",
            &v("good-311"),
            "--at",
            at,
            "--fail-on",
            "notice"
        ]),
        Some(1)
    );
    assert_eq!(
        code(&["evaluate", &v("smtp-unreachable"), "--at", at]),
        Some(3)
    );
    assert_eq!(
        code(&[
            "evaluate",
            &v("smtp-unreachable"),
            "--at",
            at,
            "--no-fail-on-incomplete"
        ]),
        Some(0)
    );
    assert_eq!(code(&["evaluate", &v("mx-insecure"), "--at", at]), Some(0));
    assert_eq!(
        code(&["evaluate", &v("mx-insecure"), "--at", at, "--require-dane"]),
        Some(1)
    );
    assert_eq!(
        code(&["evaluate", &v("good-311"), "--at", "2030-06-26T00:00:00Z"]),
        Some(1)
    );
}

/// docs/findings.md documents every code the tool can emit.
#[test]
fn findings_doc_lists_every_code() {
    let doc =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/findings.md"))
            .unwrap();
    for c in dane_audit::core::finding::Code::ALL {
        assert!(
            doc.contains(&format!("| `{c}` |")),
            "{c} missing from docs/findings.md"
        );
    }
}
