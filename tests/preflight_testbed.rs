//! `dane-audit preflight` against the real test bed: the rollover scenarios
//! (`pre-*` rows of testdata/testbed/scenarios.tsv), candidate RRsets,
//! `--state`, `--published-before`, `--wait`, and "could not determine".
//!
//! Each scenario's next certificate is in the bed's PKI as
//! `mx.<domain>.next.{key,crt,pem}` (`.crt` the leaf alone, `.pem` key, leaf
//! and issuing intermediate).

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use dane_audit::core::cert::{CertInfo, PemItem, read_pem_or_der};
use dane_audit::core::tlsa::{MatchingType, Selector};
use serde_json::Value;
use support::{TIMEOUTS, Testbed};

fn pki(bed: &Testbed, file: &str) -> String {
    format!("{}/{file}", bed.var("PKI_DIR"))
}

fn preflight(bed: &Testbed, domain: &str, cert: &str, extra: &[&str]) -> Output {
    let mut c = bed.command(env!("CARGO_BIN_EXE_dane-audit"));
    c.args(["preflight", domain, "--cert", cert])
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args(TIMEOUTS)
        .args(extra);
    c.output()
        .expect("run dane-audit preflight in the test bed")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn codes(doc: &Value) -> Vec<String> {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["findings"].as_array().unwrap().iter())
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// `3 1 1` data of the first certificate in a file.
fn spki256(path: &str) -> String {
    let items = read_pem_or_der(&std::fs::read(path).unwrap()).unwrap();
    let der = items
        .iter()
        .find_map(|i| match i {
            PemItem::Cert(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap();
    hex::encode(
        CertInfo::parse(&der)
            .association(Selector::Spki, MatchingType::Sha256)
            .unwrap(),
    )
}

fn hours_ago(h: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now - h * 3600).to_string()
}

struct Case<'a> {
    domain: &'a str,
    /// File in the PKI dir.
    cert: &'a str,
    extra: Vec<String>,
    exit: i32,
    verdict: &'a str,
    codes: &'a [&'a str],
    reason: &'a str,
}

/// The scenarios: verdict and exit code of each.
#[test]
fn rollover_scenarios_give_their_verdict_and_exit_code() {
    let Some(bed) = Testbed::get() else { return };
    let long_ago = hours_ago(3);
    let int = pki(bed, "int.crt");
    let cases = vec![
        Case {
            domain: "pre-ready.example",
            cert: "mx.pre-ready.example.next.pem",
            extra: vec![],
            exit: 4,
            verdict: "wait",
            codes: &[],
            reason: "first seen there",
        },
        Case {
            domain: "pre-ready.example",
            cert: "mx.pre-ready.example.next.pem",
            extra: vec!["--published-before".into(), long_ago.clone()],
            exit: 0,
            verdict: "safe",
            codes: &[],
            reason: "on every server",
        },
        Case {
            domain: "pre-next-missing.example",
            cert: "mx.pre-next-missing.example.next.pem",
            extra: vec!["--published-before".into(), long_ago.clone()],
            exit: 1,
            verdict: "unsafe",
            codes: &[],
            reason: "no published TLSA record authenticates the new certificate",
        },
        Case {
            domain: "pre-stale-secondary.example",
            cert: "mx.pre-stale-secondary.example.next.pem",
            extra: vec!["--published-before".into(), long_ago.clone()],
            exit: 4,
            verdict: "wait",
            codes: &["ns-out-of-sync"],
            reason: "not yet on every server",
        },
        Case {
            domain: "pre-ta-chain-missing.example",
            cert: "mx.pre-ta-chain-missing.example.next.crt",
            extra: vec!["--published-before".into(), long_ago.clone()],
            exit: 1,
            verdict: "unsafe",
            codes: &["dane-ta-not-in-chain"],
            reason: "not in the new certificate's chain",
        },
        Case {
            domain: "pre-ta-chain-missing.example",
            cert: "mx.pre-ta-chain-missing.example.next.crt",
            extra: vec![
                "--chain".into(),
                int.clone(),
                "--published-before".into(),
                long_ago.clone(),
            ],
            exit: 0,
            verdict: "safe",
            codes: &["tlsa-no-backup"],
            reason: "on every server",
        },
        Case {
            domain: "pre-ta-misnamed.example",
            cert: "mx.pre-ta-misnamed.example.next.pem",
            extra: vec!["--published-before".into(), long_ago.clone()],
            exit: 1,
            verdict: "unsafe",
            codes: &["dane-ta-name-mismatch"],
            reason: "the leaf names mail.pre-ta-misnamed.example",
        },
        Case {
            domain: "pre-swapped.example",
            cert: "mx.pre-swapped.example.rsa.pem",
            extra: vec!["--published-before".into(), long_ago.clone()],
            exit: 0,
            verdict: "safe",
            codes: &["tlsa-stale"],
            reason: "on every server",
        },
    ];
    let mut diffs = Vec::new();
    for c in &cases {
        let mut extra: Vec<&str> = c.extra.iter().map(String::as_str).collect();
        extra.extend(["--format", "json"]);
        let out = preflight(bed, c.domain, &pki(bed, c.cert), &extra);
        let doc = json(&out);
        let have = codes(&doc);
        let reason = doc["reason"].as_str().unwrap_or_default();
        let ok = out.status.code() == Some(c.exit)
            && doc["exit"] == c.exit
            && doc["verdict"] == c.verdict
            && c.codes.iter().all(|w| have.iter().any(|h| h == w))
            && reason.contains(c.reason);
        if !ok {
            diffs.push(format!(
                "{} --cert {} {:?}: exit {:?} verdict {} codes {have:?} reason {reason:?}; want exit {} {} {:?} ~{:?}",
                c.domain,
                c.cert,
                c.extra,
                out.status.code(),
                doc["verdict"],
                c.exit,
                c.verdict,
                c.codes,
                c.reason
            ));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

/// What to publish when NEW has no record: the exact zone-file lines.
#[test]
fn missing_records_are_printed_to_publish() {
    let Some(bed) = Testbed::get() else { return };
    let next = pki(bed, "mx.pre-next-missing.example.next.pem");
    let out = preflight(bed, "pre-next-missing.example", &next, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let want = [
        format!(
            "_25._tcp.mx.pre-next-missing.example. IN TLSA 3 1 1 {}",
            spki256(&next)
        ),
        format!(
            "_25._tcp.mx.pre-next-missing.example. IN TLSA 2 1 1 {}",
            spki256(&pki(bed, "int.crt"))
        ),
    ];
    for line in &want {
        assert!(text.contains(line.as_str()), "missing {line}:\n{text}");
    }
    assert!(text.contains("UNSAFE (exit 1)"), "{text}");
}

/// `--tlsa`: a candidate RRset is judged against both the live chain and
/// NEW, and its mistakes carry check's codes.
#[test]
fn candidate_rrsets() {
    let Some(bed) = Testbed::get() else { return };
    let d = "pre-next-missing.example";
    let next = pki(bed, "mx.pre-next-missing.example.next.pem");
    let cur = spki256(&pki(bed, "mx.pre-next-missing.example.rsa.crt"));
    let new = spki256(&next);
    let root = spki256(&pki(bed, "ca.crt"));
    let cases: Vec<(Vec<String>, i32, &str, &[&str])> = vec![
        (
            vec![format!("3 1 1 {cur}"), format!("3 1 1 {new}")],
            4,
            "wait",
            &[],
        ),
        (
            vec![format!("3 1 1 {new}")],
            1,
            "unsafe",
            &["tlsa-no-match"],
        ),
        (
            vec![format!("3 1 1 {cur}"), format!("3 0 1 {new}")],
            1,
            "unsafe",
            &["tlsa-wrong-selector"],
        ),
        (
            vec![format!("3 1 1 {cur}"), format!("1 1 1 {new}")],
            1,
            "unsafe",
            &["tlsa-pkix-usage"],
        ),
        (
            vec![format!("3 1 1 {cur}"), format!("2 1 1 {root}")],
            1,
            "unsafe",
            &["dane-ta-not-in-chain"],
        ),
        (
            vec![format!("3 1 1 {cur}"), format!("3 1 1 {}", &new[..40])],
            1,
            "unsafe",
            &["tlsa-malformed"],
        ),
    ];
    let mut diffs = Vec::new();
    for (records, exit, verdict, want) in &cases {
        let mut args: Vec<String> = Vec::new();
        for r in records {
            args.push("--tlsa".into());
            args.push(r.clone());
        }
        args.extend(["--format".into(), "json".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = preflight(bed, d, &next, &args);
        let doc = json(&out);
        let have = codes(&doc);
        if out.status.code() != Some(*exit)
            || doc["verdict"] != *verdict
            || doc["mode"] != "candidate"
            || !want.iter().all(|w| have.iter().any(|h| h == w))
        {
            diffs.push(format!(
                "{records:?}: exit {:?} {} {have:?} ({}); want {exit} {verdict} {want:?}",
                out.status.code(),
                doc["verdict"],
                doc["reason"]
            ));
        }
    }
    assert!(diffs.is_empty(), "\n{}", diffs.join("\n"));
}

/// `--tlsa-file`: zone-file lines, owners select the host.
#[test]
fn candidate_from_a_zone_file() {
    let Some(bed) = Testbed::get() else { return };
    let next = pki(bed, "mx.pre-next-missing.example.next.pem");
    let cur = spki256(&pki(bed, "mx.pre-next-missing.example.rsa.crt"));
    let new = spki256(&next);
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("next.zone");
    std::fs::write(
        &zone,
        format!(
            "$ORIGIN pre-next-missing.example.\n$TTL 300\n\
             _25._tcp.mx IN TLSA 3 1 1 {cur}\n\
             _25._tcp.mx.pre-next-missing.example. 300 IN TLSA 3 1 1 ( {} \n {} ) ; next\n\
             _25._tcp.other.example. IN TLSA 3 1 1 {cur}\n",
            &new[..32],
            &new[32..]
        ),
    )
    .unwrap();
    let out = preflight(
        bed,
        "pre-next-missing.example",
        &next,
        &["--tlsa-file", zone.to_str().unwrap(), "--format", "json"],
    );
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(4), "{}", doc["reason"]);
    let records = doc["hosts"][0]["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "the other host's line is not this host's");
    let publish = doc["hosts"][0]["publish"].as_array().unwrap();
    assert_eq!(publish.len(), 1, "{publish:?}");
    assert!(publish[0].as_str().unwrap().ends_with(&new));
}

/// `--state`: the first run remembers when every server served NEW's
/// record; a later run counts from then. The file is replaced atomically.
#[test]
fn state_file_carries_the_first_sighting() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("preflight-state.json");
    let st = state.to_str().unwrap();
    let next = pki(bed, "mx.pre-ready.example.next.pem");
    // TTL 5 s + margin 2 s.
    let args = ["--state", st, "--margin", "2s", "--format", "json"];
    let first = preflight(bed, "pre-ready.example", &next, &args);
    let doc = json(&first);
    assert_eq!(first.status.code(), Some(4), "{}", doc["reason"]);
    assert_eq!(doc["hosts"][0]["first_seen_from"], "this run");
    assert_eq!(doc["hosts"][0]["ttl"], 5);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let seen = &saved["hosts"]["mx.pre-ready.example"]["first_seen"];
    let key = format!("3 1 1 {}", spki256(&next));
    assert!(seen[&key].is_string(), "{saved}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "a temporary file was left behind");
    // Without the state, a second run would say "wait" again.
    std::thread::sleep(Duration::from_secs(8));
    let second = preflight(bed, "pre-ready.example", &next, &args);
    let doc = json(&second);
    assert_eq!(second.status.code(), Some(0), "{}", doc["reason"]);
    assert_eq!(doc["hosts"][0]["first_seen_from"], "state");
    let no_state = preflight(
        bed,
        "pre-ready.example",
        &next,
        &["--margin", "2s", "--format", "json"],
    );
    assert_eq!(no_state.status.code(), Some(4));
}

/// `--published-before` is the operator's word for the first sighting;
/// too recent an assertion still waits, with the time it becomes safe.
#[test]
fn published_before_asserts_the_publication_time() {
    let Some(bed) = Testbed::get() else { return };
    let next = pki(bed, "mx.pre-ready.example.next.pem");
    let recent = hours_ago(0);
    let out = preflight(
        bed,
        "pre-ready.example",
        &next,
        &["--published-before", &recent, "--format", "json"],
    );
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(doc["hosts"][0]["first_seen_from"], "--published-before");
    assert!(doc["safe_at"].is_string(), "wait says until when");
    let old = hours_ago(2);
    let out = preflight(
        bed,
        "pre-ready.example",
        &next,
        &["--published-before", &old],
    );
    assert_eq!(out.status.code(), Some(0));
    // An assertion does not override what the servers show.
    let stale = pki(bed, "mx.pre-stale-secondary.example.next.pem");
    let out = preflight(
        bed,
        "pre-stale-secondary.example",
        &stale,
        &["--published-before", &old],
    );
    assert_eq!(out.status.code(), Some(4));
}

/// `--wait` polls until safe; `--max-wait` bounds it (exit 4).
#[test]
fn wait_polls_until_safe_or_gives_up() {
    let Some(bed) = Testbed::get() else { return };
    let next = pki(bed, "mx.pre-ready.example.next.pem");
    let t = Instant::now();
    let out = preflight(
        bed,
        "pre-ready.example",
        &next,
        &[
            "--margin",
            "0",
            "--wait",
            "--max-wait",
            "60s",
            "--poll-interval",
            "1s",
        ],
    );
    let took = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= Duration::from_secs(4),
        "waited the TTL (5 s): {took:?}"
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
    // Not a terminal: one progress line on stderr per change, no bar.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dane-audit preflight: wait"), "{err}");
    let t = Instant::now();
    let out = preflight(
        bed,
        "pre-ready.example",
        &next,
        &["--wait", "--max-wait", "3s", "--poll-interval", "1s"],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(t.elapsed() < Duration::from_secs(30));
    // Unsafe does not wait.
    let t = Instant::now();
    let out = preflight(
        bed,
        "pre-next-missing.example",
        &pki(bed, "mx.pre-next-missing.example.next.pem"),
        &["--wait", "--max-wait", "60s"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(30));
}

/// Exit 3: an SMTP address that cannot be tested, a TLSA lookup that fails.
#[test]
fn could_not_determine_exits_3() {
    let Some(bed) = Testbed::get() else { return };
    let old = hours_ago(3);
    let out = preflight(
        bed,
        "smtp-unreachable.example",
        &pki(bed, "mx.smtp-unreachable.example.rsa.pem"),
        &["--published-before", &old, "--format", "json"],
    );
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(3), "{}", doc["reason"]);
    assert_eq!(doc["verdict"], "undetermined");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .contains("could not be tested")
    );
    let out = preflight(
        bed,
        "dns-tlsa-drop-all.example",
        &pki(bed, "mx.dns-tlsa-drop-all.example.rsa.pem"),
        &["--format", "json"],
    );
    let doc = json(&out);
    assert_eq!(out.status.code(), Some(3), "{}", doc["reason"]);
    assert!(codes(&doc).iter().any(|c| c == "tlsa-lookup-failed"));
}

/// Step 6: once the new key is served, `check` calls the old record stale.
#[test]
fn after_the_swap_check_reports_the_old_record_stale() {
    let Some(bed) = Testbed::get() else { return };
    let old_key = spki256(&pki(bed, "mx.pre-swapped.example.old.crt"));
    let mut c = bed.command(env!("CARGO_BIN_EXE_dane-audit"));
    let out = c
        .args(["check", "pre-swapped.example"])
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc = json(&out);
    let stale: Vec<&Value> = doc["domains"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "tlsa-stale")
        .collect();
    assert_eq!(stale.len(), 1, "{stale:?}");
    let subject = stale[0]["subject"].as_str().unwrap();
    assert!(
        subject.contains(&format!("3 1 1 {}", &old_key[..16])),
        "{subject} names the old key"
    );
}

/// `--host` limits the check; the text report leads with the verdict.
#[test]
fn one_host_and_the_text_report() {
    let Some(bed) = Testbed::get() else { return };
    let next = pki(bed, "mx.pre-ready.example.next.pem");
    let out = preflight(
        bed,
        "pre-ready.example",
        &next,
        &[
            "--host",
            "mx.pre-ready.example",
            "--published-before",
            &hours_ago(2),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("pre-ready.example: SAFE (exit 0)"),
        "{text}"
    );
    for want in [
        "TLSA _25._tcp.mx.pre-ready.example  TTL 5 s",
        "[new]",
        "served now:",
        "Summary:",
    ] {
        assert!(text.contains(want), "lacks {want}:\n{text}");
    }
}

/// `preflight --evidence` judges the evidence a live run saved exactly as
/// the live run did: with the same state file and the same time, the text
/// report and the JSON document are byte for byte the same.
#[test]
fn saved_evidence_reproduces_the_live_report() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    let cert = pki(bed, "mx.pre-stale-secondary.example.next.pem");
    let domain = "pre-stale-secondary.example";
    // A remembered sighting, so that the state decides something.
    let state = format!(
        "{{\"schema_version\":1,\"hosts\":{{\"mx.{domain}\":{{\"ttl_max\":300,\"first_seen\":{{\"3 1 1 {}\":\"{}\"}}}}}}}}\n",
        spki256(&cert),
        hours_ago(2)
    );
    for f in ["live.state", "offline.state"] {
        std::fs::write(path(f), &state).unwrap();
    }
    for format in ["json", "text"] {
        let ev = path(&format!("ev-{format}.json"));
        let live = preflight(
            bed,
            domain,
            &cert,
            &[
                "--format",
                format,
                "--state",
                &path("live.state"),
                "--save-evidence",
                &ev,
            ],
        );
        let at = json(&preflight(
            bed,
            domain,
            &cert,
            &[
                "--format",
                "json",
                "--evidence",
                &ev,
                "--state",
                &path("offline.state"),
            ],
        ))["evaluated_at"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(!at.is_empty());
        // The offline run at the live run's time.
        let live_at = match format {
            "json" => json(&live)["evaluated_at"].as_str().unwrap().to_string(),
            _ => String::from_utf8_lossy(&live.stdout)
                .lines()
                .find_map(|l| l.trim().strip_prefix("evaluated "))
                .and_then(|l| l.split(';').next())
                .unwrap()
                .to_string(),
        };
        let offline = preflight(
            bed,
            domain,
            &cert,
            &[
                "--format",
                format,
                "--evidence",
                &ev,
                "--at",
                &live_at,
                "--state",
                &path("offline.state"),
            ],
        );
        assert_eq!(
            live.status.code(),
            offline.status.code(),
            "{format}: exit codes"
        );
        assert_eq!(
            String::from_utf8_lossy(&live.stdout),
            String::from_utf8_lossy(&offline.stdout),
            "{format}: the offline report differs from the live one"
        );
        // The offline run only reads the state.
        assert_eq!(
            std::fs::read_to_string(path("offline.state")).unwrap(),
            state
        );
    }
}
