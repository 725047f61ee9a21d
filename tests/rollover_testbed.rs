//! `dane-audit rollover` and `publish` against the test bed's
//! `rollover.example` (scripts/testbed.d/update.sh): Knot as the signing
//! primary that takes TSIG-signed UPDATEs of TLSA records, nsd-s as its
//! secondary (transfers can be held back), and Postfix serving
//! `mx.rollover.example`'s live certificate, which the deploy hook replaces.
//!
//! The tests share `mx.rollover.example`, so they take one lock and put the
//! host back as the bed built it first (live certificate and TLSA RRset).
//! After every step, posttls-finger must still verify the server: at no
//! point may a DANE sender see an unverifiable server.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dane_audit::core::cert::{CertInfo, PemItem, read_pem_or_der};
use dane_audit::core::tlsa::{MatchingType, Selector, TlsaRdata};
use dane_audit::dns::tsig_key::TsigKey;
use dane_audit::dns::update::{PrimaryServer, TlsaRrset, TlsaUpdate};
use support::{TIMEOUTS, Testbed};

static HOST: Mutex<()> = Mutex::new(());

const MX: &str = "mx.rollover.example";

fn pki(bed: &Testbed, file: &str) -> String {
    format!("{}/{file}", bed.var("PKI_DIR"))
}

fn spki(path: &str, depth: usize) -> TlsaRdata {
    let items = read_pem_or_der(&std::fs::read(path).unwrap()).unwrap();
    let der = items
        .iter()
        .filter_map(|i| match i {
            PemItem::Cert(d) => Some(d.clone()),
            _ => None,
        })
        .nth(depth)
        .unwrap();
    TlsaRdata {
        usage: if depth == 0 { 3 } else { 2 },
        selector: 1,
        mtype: 1,
        data: CertInfo::parse(&der)
            .association(Selector::Spki, MatchingType::Sha256)
            .unwrap(),
    }
}

/// The RRset the bed starts with: `3 1 1` of the live RSA key, `2 1 1` of the intermediate.
fn initial(bed: &Testbed) -> Vec<TlsaRdata> {
    let live = pki(bed, &format!("{MX}.rsa.pem"));
    vec![spki(&live, 0), spki(&live, 1)]
}

fn new_cert(bed: &Testbed) -> String {
    pki(bed, &format!("{MX}.next.pem"))
}

fn server(addr: &str) -> PrimaryServer {
    let a: SocketAddr = format!("{addr}:53").parse().unwrap();
    PrimaryServer::new(a, Duration::from_secs(3))
}

fn block<F: std::future::Future>(bed: &Testbed, f: F) -> F::Output {
    bed.enter_thread();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn sorted(mut v: Vec<TlsaRdata>) -> Vec<String> {
    v.sort_by_key(|r| r.to_string());
    v.into_iter().map(|r| r.to_string()).collect()
}

/// The RRset at MX's TLSA name as `addr` serves it.
fn served_by(bed: &Testbed, addr: &str) -> Vec<String> {
    sorted(block(bed, server(addr).read_tlsa(MX)).unwrap().records)
}

fn xfr(bed: &Testbed, what: &str) {
    let out =
        std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed"))
            .args(["xfr", what])
            .output()
            .unwrap();
    assert!(out.status.success(), "xfr {what}: {out:?}");
    let _ = bed;
}

fn reload_postfix(bed: &Testbed) {
    let out = bed
        .command("postfix")
        .args(["-c", bed.var("POSTFIX_CONFIG"), "reload"])
        .output()
        .unwrap();
    assert!(out.status.success(), "postfix reload: {out:?}");
}

/// Puts MX back as the bed built it, on the primary and the secondary.
fn reset(bed: &Testbed) {
    reset_to(bed, &initial(bed));
}

/// Puts MX's live certificate back and makes `want` its TLSA RRset.
fn reset_to(bed: &Testbed, want: &[TlsaRdata]) {
    xfr(bed, "resume");
    std::fs::copy(
        pki(bed, &format!("{MX}.rsa.pem")),
        pki(bed, &format!("{MX}.live.pem")),
    )
    .unwrap();
    reload_postfix(bed);
    let want = want.to_vec();
    let key = TsigKey::load(Path::new(bed.var("UPDATE_KEY")), None).unwrap();
    let primary = server(bed.var("UPDATE_PRIMARY"));
    let zone = bed.var("UPDATE_ZONE").to_string();
    block(bed, async {
        let cur = primary.read_tlsa(MX).await.unwrap();
        let add = TlsaUpdate::add(&zone, &cur, &want, 10).unwrap();
        if !add.is_noop() {
            primary.send(&add, &key).await.unwrap();
        }
        let cur: TlsaRrset = primary.read_tlsa(MX).await.unwrap();
        let extra: Vec<TlsaRdata> = cur
            .records
            .iter()
            .filter(|r| !want.contains(r))
            .cloned()
            .collect();
        let rm = TlsaUpdate::remove(&zone, &cur, &extra).unwrap();
        if !rm.is_noop() {
            primary.send(&rm, &key).await.unwrap();
        }
    });
    let secondary = bed
        .var("UPDATE_SECONDARY")
        .split(',')
        .next()
        .unwrap()
        .to_string();
    wait_until(Duration::from_secs(30), || {
        served_by(bed, &secondary) == sorted(want.clone())
    });
    // Resolver caches hold the RRset for its TTL (10 s).
    std::thread::sleep(Duration::from_secs(11));
    assert!(posttls_verified(bed), "the bed verifies after the reset");
}

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// posttls-finger's own DANE verdict on MX.
fn posttls_verified(bed: &Testbed) -> bool {
    let out = bed
        .command("env")
        .arg(format!("MAIL_CONFIG={}", bed.var("POSTFIX_CONFIG")))
        .args(["posttls-finger", "-c", "-l", "dane", "-t", "5", "-T", "6"])
        .arg(format!("[{MX}]"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.contains("Verified TLS connection established")
}

fn deploy_cmd(bed: &Testbed) -> String {
    format!(
        "cp {} {} && postfix -c {} reload",
        new_cert(bed),
        pki(bed, &format!("{MX}.live.pem")),
        bed.var("POSTFIX_CONFIG")
    )
}

fn base(bed: &Testbed, command: &str, state: &str, key_var: &str) -> std::process::Command {
    to(bed, command, state, key_var, bed.var("UPDATE_PRIMARY"))
}

fn to(
    bed: &Testbed,
    command: &str,
    state: &str,
    key_var: &str,
    primary: &str,
) -> std::process::Command {
    let mut c = bed.command(env!("CARGO_BIN_EXE_dane-audit"));
    c.args([command, "rollover.example", "--host", MX])
        .args(["--cert", &new_cert(bed)])
        .args(["--update-server", primary])
        .args(["--tsig-key", bed.var(key_var)])
        .args(["--resolver", bed.resolver()])
        .args(["--trust-anchor", bed.trust_anchor()])
        .args(TIMEOUTS);
    if command == "rollover" {
        c.args(["--state", state, "--margin", "3s", "--retire-after", "3s"]);
    }
    c
}

fn rollover(bed: &Testbed, state: &str, extra: &[&str]) -> Output {
    base(bed, "rollover", state, "UPDATE_KEY")
        .args(["--deploy", &deploy_cmd(bed)])
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the rollover until it is done (each run may be a kill's rerun),
/// checking posttls-finger after every run.
fn finish(bed: &Testbed, state: &str) -> Vec<i32> {
    let mut exits = Vec::new();
    let t0 = Instant::now();
    loop {
        let out = rollover(bed, state, &[]);
        let code = out.status.code().unwrap_or(-1);
        exits.push(code);
        assert!(
            posttls_verified(bed),
            "posttls-finger after a run: {}",
            text(&out)
        );
        if text(&out).contains("done: the new certificate is live") {
            return exits;
        }
        assert!(
            matches!(code, 0 | 4),
            "a rerun failed (exit {code}): {}",
            text(&out)
        );
        assert!(t0.elapsed() < Duration::from_secs(120), "no end: {exits:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The end state: the new key's record and the CA's, nothing else, on
/// both servers; the live certificate is NEW.
fn assert_rolled_over(bed: &Testbed) {
    let new = new_cert(bed);
    let want = sorted(vec![spki(&new, 0), spki(&new, 1)]);
    assert_eq!(served_by(bed, bed.var("UPDATE_PRIMARY")), want, "primary");
    let secondary = bed
        .var("UPDATE_SECONDARY")
        .split(',')
        .next()
        .unwrap()
        .to_string();
    wait_until(Duration::from_secs(30), || {
        served_by(bed, &secondary) == want
    });
    assert_eq!(
        std::fs::read(pki(bed, &format!("{MX}.live.pem"))).unwrap(),
        std::fs::read(&new).unwrap()
    );
}

/// RFC 7671 §8.1 end to end: publish, wait (a held-back secondary keeps it
/// waiting), deploy, verify, retire. The host starts with a `3 1 1` alone,
/// so nothing published authenticates the new key before the rollover.
#[test]
fn rfc7671_8_1_rollover_end_to_end() {
    let Some(bed) = Testbed::get() else { return };
    let _g = HOST.lock().unwrap_or_else(|e| e.into_inner());
    reset_to(bed, &initial(bed)[..1]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("ro.json");
    let state = state.to_str().unwrap();
    let new = spki(&new_cert(bed), 0).to_string();

    // 1. Publish, with the secondary's transfers held back: it waits.
    xfr(bed, "hold");
    let out = rollover(bed, state, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("publish: _25._tcp.mx.rollover.example: added 3 1 1"),
        "{}",
        text(&out)
    );
    assert!(served_by(bed, bed.var("UPDATE_PRIMARY")).contains(&new));
    assert!(posttls_verified(bed));
    std::thread::sleep(Duration::from_secs(15));
    let out = rollover(bed, state, &[]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "held: still waiting: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("not yet on every server"),
        "{}",
        text(&out)
    );
    assert!(posttls_verified(bed));
    assert!(
        !text(&out).contains("deploy:"),
        "no deploy while a server lags"
    );

    // 2. Transfers resume: after TTL + margin it is safe, deploys, verifies.
    xfr(bed, "resume");
    let exits = finish(bed, state);
    assert!(exits.contains(&0), "{exits:?}");
    assert_rolled_over(bed);
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    assert_eq!(progress["stage"], "done");
    assert_eq!(
        progress["deploys"].as_array().unwrap().len(),
        1,
        "deployed once"
    );
    assert_eq!(
        progress["retired"].as_array().unwrap().len(),
        1,
        "{progress}"
    );
    // Again: nothing to do, nothing sent.
    let out = rollover(bed, state, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("UPDATE"), "{}", text(&out));
    reset(bed);
}

/// Failures stop before anything unsafe, say why in words, and change nothing.
#[test]
fn refused_updates_and_failed_steps_change_nothing() {
    let Some(bed) = Testbed::get() else { return };
    let _g = HOST.lock().unwrap_or_else(|e| e.into_inner());
    reset(bed);
    let dir = tempfile::tempdir().unwrap();
    let st = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let before = served_by(bed, bed.var("UPDATE_PRIMARY"));

    // A key the ACL does not allow: Knot answers NOTAUTH with BADKEY.
    let out = base(bed, "rollover", &st("denied.json"), "UPDATE_KEY_DENIED")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("BADKEY"), "{}", text(&out));
    // The right key name with a wrong secret: BADSIG.
    let wrong = dir.path().join("wrong.key");
    let good = std::fs::read_to_string(bed.var("UPDATE_KEY")).unwrap();
    let forged = good
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("secret") {
                "\tsecret \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\";".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&wrong, forged).unwrap();
    let out = bed
        .command(env!("CARGO_BIN_EXE_dane-audit"))
        .args([
            "rollover",
            "rollover.example",
            "--host",
            MX,
            "--cert",
            &new_cert(bed),
        ])
        .args(["--update-server", bed.var("UPDATE_PRIMARY")])
        .args(["--tsig-key", wrong.to_str().unwrap()])
        .args(["--state", &st("wrong.json")])
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args(TIMEOUTS)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("BADSIG"), "{}", text(&out));
    assert!(
        !text(&out).contains("AAAAAAAAAAAAAAAAAAAA"),
        "the secret never appears"
    );
    // A primary that does not answer: could not determine.
    let dead = bed.var("NS_DEAD").split(',').next().unwrap();
    let out = to(bed, "rollover", &st("dead.json"), "UPDATE_KEY", dead)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(served_by(bed, bed.var("UPDATE_PRIMARY")), before);
    assert!(posttls_verified(bed));

    // A deploy hook that fails: exit 1, records stay, the old certificate serves.
    let mut failing = base(bed, "rollover", &st("hook.json"), "UPDATE_KEY");
    failing.args(["--deploy", "echo broken >&2; exit 7"]);
    let out = failing.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "publishes first: {}",
        text(&out)
    );
    std::thread::sleep(Duration::from_secs(14));
    let out = failing.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("exit 7"), "{}", text(&out));
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(st("hook.json")).unwrap()).unwrap();
    assert_eq!(progress["deploys"][0]["status"], 7);
    let after = served_by(bed, bed.var("UPDATE_PRIMARY"));
    assert!(before.iter().all(|r| after.contains(r)), "nothing removed");
    assert!(posttls_verified(bed));
    reset(bed);
}

/// A candidate that fails its check is refused before any UPDATE: here the
/// live certificate no longer matches the published records, so the RRset
/// after the UPDATE would not authenticate what is served.
#[test]
fn a_candidate_that_breaks_the_live_certificate_is_refused_before_any_update() {
    let Some(bed) = Testbed::get() else { return };
    let _g = HOST.lock().unwrap_or_else(|e| e.into_inner());
    reset(bed);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("c.json");
    // MX now serves a certificate no record covers (mx2's key and name).
    std::fs::copy(
        pki(bed, "mx2.rollover.example.rsa.pem"),
        pki(bed, &format!("{MX}.live.pem")),
    )
    .unwrap();
    reload_postfix(bed);
    let before = served_by(bed, bed.var("UPDATE_PRIMARY"));
    let out = rollover(bed, state.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no UPDATE sent"), "{}", text(&out));
    assert_eq!(served_by(bed, bed.var("UPDATE_PRIMARY")), before);
    reset(bed);
}

fn spawn(bed: &Testbed, state: &str, extra: &[&str]) -> Child {
    base(bed, "rollover", state, "UPDATE_KEY")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill9(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// `kill -9` at each step, then a rerun: no duplicate record, no lost step,
/// and the server verifies throughout.
#[test]
fn kill_9_at_each_step_then_a_rerun_finishes_the_rollover() {
    let Some(bed) = Testbed::get() else { return };
    let _g = HOST.lock().unwrap_or_else(|e| e.into_inner());
    reset(bed);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("k.json");
    let state = state.to_str().unwrap();
    let new = spki(&new_cert(bed), 0).to_string();
    let primary = bed.var("UPDATE_PRIMARY").to_string();

    // During publish: killed as soon as the primary has the record.
    let c = spawn(bed, state, &["--deploy", &deploy_cmd(bed), "--wait"]);
    wait_until(Duration::from_secs(30), || {
        served_by(bed, &primary).contains(&new)
    });
    kill9(c);
    assert!(posttls_verified(bed));
    // During the wait (polling).
    let c = spawn(bed, state, &["--deploy", &deploy_cmd(bed), "--wait"]);
    std::thread::sleep(Duration::from_secs(3));
    kill9(c);
    assert!(posttls_verified(bed));
    // During the deploy hook (it sleeps before it installs anything), once
    // TTL + margin have passed.
    std::thread::sleep(Duration::from_secs(16));
    let slow = format!("sleep 5; {}", deploy_cmd(bed));
    let c = spawn(bed, state, &["--deploy", &slow]);
    std::thread::sleep(Duration::from_secs(3));
    kill9(c);
    assert!(posttls_verified(bed));
    let exits = finish(bed, state);
    assert_rolled_over(bed);
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    assert_eq!(progress["stage"], "done", "{exits:?}");
    let published = progress["published"].as_array().unwrap();
    assert_eq!(published.len(), 1, "added once: {published:?}");
    reset(bed);
}

/// `publish --add` and `--remove-stale` on their own, and `--dry-run`.
#[test]
fn publish_adds_and_removes_stale_records_and_dry_run_sends_nothing() {
    let Some(bed) = Testbed::get() else { return };
    let _g = HOST.lock().unwrap_or_else(|e| e.into_inner());
    reset(bed);
    let primary = bed.var("UPDATE_PRIMARY").to_string();
    let before = served_by(bed, &primary);
    let new = spki(&new_cert(bed), 0).to_string();
    let dry = base(bed, "publish", "", "UPDATE_KEY")
        .args(["--add", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(
        text(&dry).contains(&format!("update add _25._tcp.{MX}. 10 IN TLSA {new}")),
        "{}",
        text(&dry)
    );
    assert_eq!(served_by(bed, &primary), before, "dry run sent nothing");
    let out = base(bed, "publish", "", "UPDATE_KEY")
        .arg("--add")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(served_by(bed, &primary).contains(&new));
    // Nothing is stale yet: the old key is served, the new one is kept.
    let out = base(bed, "publish", "", "UPDATE_KEY")
        .arg("--remove-stale")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = served_by(bed, &primary);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(posttls_verified(bed));
    reset(bed);
}
