//! RFC 2136 dynamic updates of TLSA records, TSIG-signed (RFC 8945),
//! against the test bed's `rollover.example`: knotd as the signing primary,
//! nsd-s as its secondary (scripts/testbed.d/update.sh,
//! testdata/testbed/README.md).
//!
//! Each test owns one TLSA name (`_25._tcp.tN.rollover.example`, allowed by
//! the bed's ACL) and empties it first, so tests may run side by side and
//! again on the same bed. Tests that look at the secondary take a lock,
//! since one of them holds its transfers back.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dane_audit::core::tlsa::TlsaRdata;
use dane_audit::dns::tsig_key::{TsigAlgorithm, TsigKey};
use dane_audit::dns::update::{
    PrimaryServer, TlsaRrset, TlsaUpdate, TsigFailure, UpdateError, UpdateRcode,
};
use sha2::Digest;
use support::Testbed;

/// Held by the tests that look at the secondary (one of them stops its transfers).
static SECONDARY: Mutex<()> = Mutex::new(());

const TIMEOUT: Duration = Duration::from_secs(3);

fn run<F: Future>(bed: &Testbed, f: F) -> F::Output {
    bed.enter_thread();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
        .block_on(f)
}

fn zone(bed: &Testbed) -> String {
    bed.var("UPDATE_ZONE").to_string()
}

fn host(bed: &Testbed, label: &str) -> String {
    let allowed = bed.var("UPDATE_TEST_HOSTS");
    assert!(
        allowed.split(',').any(|h| h == label),
        "{label} is not one of the bed's test hosts ({allowed})"
    );
    format!("{label}.{}", zone(bed))
}

fn primary(bed: &Testbed) -> PrimaryServer {
    let addr: SocketAddr = format!("{}:53", bed.var("UPDATE_PRIMARY")).parse().unwrap();
    PrimaryServer::new(addr, TIMEOUT)
}

fn secondary(bed: &Testbed) -> String {
    bed.var("UPDATE_SECONDARY")
        .split(',')
        .next()
        .unwrap()
        .to_string()
}

fn key(bed: &Testbed, var: &str) -> TsigKey {
    TsigKey::load(Path::new(bed.var(var)), None).unwrap_or_else(|e| panic!("{var}: {e}"))
}

/// A `3 1 1` record no one else publishes: SHA-256 of the test's name and the time.
fn fresh(tag: &str) -> TlsaRdata {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let digest = sha2::Sha256::digest(format!("{tag} {nanos} {}", std::process::id()));
    TlsaRdata {
        usage: 3,
        selector: 1,
        mtype: 1,
        data: digest.to_vec(),
    }
}

/// Empties a test's TLSA name (a leftover of an earlier run).
async fn reset(p: &PrimaryServer, key: &TsigKey, zone: &str, host: &str) {
    let current = p.read_tlsa(host).await.expect("read before reset");
    let u = TlsaUpdate::delete_rrset(zone, &current).unwrap();
    if !u.is_noop() {
        p.send(&u, key).await.expect("reset");
    }
    assert!(p.read_tlsa(host).await.unwrap().records.is_empty());
}

/// TLSA records in `dig` output lines (`3 1 1 HEX HEX...`), hex joined, lower case.
fn tlsa_lines(out: &str) -> Vec<TlsaRdata> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|w| *w == "TLSA")?;
            f.get(i + 1..)?.join(" ").parse().ok()
        })
        .collect()
}

fn dig(bed: &Testbed, args: &[&str]) -> String {
    let out = bed
        .command("dig")
        .args(["+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What an authoritative server serves for TLSA at `owner` (with RRSIGs).
fn served(bed: &Testbed, server: &str, owner: &str) -> String {
    dig(
        bed,
        &[&format!("@{server}"), "+norec", "+dnssec", owner, "TLSA"],
    )
}

/// Whether dig's header says AD (the resolver validated the answer).
fn validated(dig_out: &str) -> bool {
    dig_out
        .lines()
        .find_map(|l| l.strip_prefix(";; flags:"))
        .and_then(|f| f.split(';').next())
        .is_some_and(|f| f.split_whitespace().any(|w| w == "ad"))
}

/// Polls `check` every 200 ms for up to `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rejection(e: &UpdateError) -> &dane_audit::dns::update::Rejection {
    e.rejection()
        .unwrap_or_else(|| panic!("not a rejection: {e}"))
}

/// RFC 2136 §2.5.1 (add to an RRset) under §2.4.3 (RRset does not exist):
/// the primary serves the record signed (RRSIG, validated through the
/// bed's resolver up to its root), and the secondary serves it after
/// NOTIFY and transfer.
#[test]
fn rfc2136_2_5_1_added_record_is_signed_and_reaches_the_secondary() {
    let Some(bed) = Testbed::get() else { return };
    let _lock = SECONDARY.lock().unwrap_or_else(|e| e.into_inner());
    xfr(bed, "resume");
    let (p, k, z, h) = (
        primary(bed),
        key(bed, "UPDATE_KEY"),
        zone(bed),
        host(bed, "t1"),
    );
    let rec = fresh("t1");
    let sent = run(bed, async {
        reset(&p, &k, &z, &h).await;
        p.add_tlsa(&k, None, &h, std::slice::from_ref(&rec), 10)
            .await
            .expect("update")
    });
    assert_eq!(sent.zone(), z, "zone found by SOA");
    assert_eq!(sent.adds(), std::slice::from_ref(&rec));
    let owner = format!("_25._tcp.{h}");
    let at_primary = served(bed, bed.var("UPDATE_PRIMARY"), &owner);
    assert_eq!(tlsa_lines(&at_primary), vec![rec.clone()], "{at_primary}");
    assert!(at_primary.contains("RRSIG\tTLSA"), "no RRSIG: {at_primary}");
    let resolver = bed.resolver().to_string();
    assert!(
        eventually(Duration::from_secs(20), || {
            let out = dig(bed, &[&format!("@{resolver}"), "+dnssec", &owner, "TLSA"]);
            validated(&out) && tlsa_lines(&out) == vec![rec.clone()]
        }),
        "the resolver does not validate the new record"
    );
    let sec = secondary(bed);
    assert!(
        eventually(Duration::from_secs(15), || {
            tlsa_lines(&served(bed, &sec, &owner)) == vec![rec.clone()]
        }),
        "the secondary does not serve the new record: {}",
        served(bed, &sec, &owner)
    );
    assert!(served(bed, &sec, &owner).contains("RRSIG\tTLSA"));
}

/// Lifts the hold on transfers even when the test fails.
struct Resume<'a>(&'a Testbed);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        xfr(self.0, "resume");
    }
}

fn xfr(bed: &Testbed, what: &str) {
    let st = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed"))
        .args(["xfr", what])
        .status()
        .expect("scripts/testbed xfr");
    assert!(st.success(), "scripts/testbed xfr {what} failed");
    let _ = bed;
}

/// The bed's way to hold a secondary back: while transfers are held it
/// keeps serving the old RRset; once resumed it serves the new one.
#[test]
fn held_transfers_keep_the_secondary_stale_until_resumed() {
    let Some(bed) = Testbed::get() else { return };
    let _lock = SECONDARY.lock().unwrap_or_else(|e| e.into_inner());
    let (p, k, z, h) = (
        primary(bed),
        key(bed, "UPDATE_KEY"),
        zone(bed),
        host(bed, "t8"),
    );
    let owner = format!("_25._tcp.{h}");
    let sec = secondary(bed);
    xfr(bed, "resume");
    run(bed, reset(&p, &k, &z, &h));
    assert!(eventually(Duration::from_secs(15), || tlsa_lines(&served(
        bed, &sec, &owner
    ))
    .is_empty()));
    xfr(bed, "hold");
    let resume = Resume(bed);
    let rec = fresh("t8");
    run(
        bed,
        p.add_tlsa(&k, Some(&z), &h, std::slice::from_ref(&rec), 10),
    )
    .expect("update");
    assert_eq!(
        tlsa_lines(&served(bed, bed.var("UPDATE_PRIMARY"), &owner)),
        vec![rec.clone()]
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        tlsa_lines(&served(bed, &sec, &owner)).is_empty(),
        "the held secondary serves the new record"
    );
    drop(resume);
    assert!(
        eventually(Duration::from_secs(10), || {
            tlsa_lines(&served(bed, &sec, &owner)) == vec![rec.clone()]
        }),
        "the secondary did not catch up after resume"
    );
}

/// RFC 2136 §2.4.2 and §2.4.3: an update built on an RRset that changed
/// since it was read is refused, said in words, and changes nothing.
#[test]
fn rfc2136_2_4_prerequisite_refuses_a_concurrent_change() {
    let Some(bed) = Testbed::get() else { return };
    let (p, k, z, h) = (
        primary(bed),
        key(bed, "UPDATE_KEY"),
        zone(bed),
        host(bed, "t2"),
    );
    let (a, b, c) = (fresh("t2a"), fresh("t2b"), fresh("t2c"));
    run(bed, async {
        reset(&p, &k, &z, &h).await;
        // §2.4.3: read as absent, someone adds b, our add of a must fail.
        let absent = p.read_tlsa(&h).await.unwrap();
        p.add_tlsa(&k, Some(&z), &h, std::slice::from_ref(&b), 10)
            .await
            .unwrap();
        let stale = TlsaUpdate::add(&z, &absent, std::slice::from_ref(&a), 10).unwrap();
        let e = p.send(&stale, &k).await.unwrap_err();
        let r = rejection(&e);
        assert_eq!(r.rcode, UpdateRcode::YxRrset, "{e}");
        assert!(r.prerequisite_failed() && r.authenticated);
        assert!(e.to_string().contains("someone changed it"), "{e}");
        // §2.4.2: read {b}, someone adds c, our add of a must fail.
        let read = p.read_tlsa(&h).await.unwrap();
        assert_eq!(read.records, vec![b.clone()]);
        p.add_tlsa(&k, Some(&z), &h, std::slice::from_ref(&c), 10)
            .await
            .unwrap();
        let stale = TlsaUpdate::add(&z, &read, std::slice::from_ref(&a), 10).unwrap();
        let e = p.send(&stale, &k).await.unwrap_err();
        assert_eq!(rejection(&e).rcode, UpdateRcode::NxRrset, "{e}");
        assert!(
            e.to_string()
                .starts_with("the prerequisite failed (NXRRSET)"),
            "{e}"
        );
        let now = p.read_tlsa(&h).await.unwrap();
        let mut want = vec![b.clone(), c.clone()];
        want.sort_by_key(TlsaRdata::to_string);
        assert_eq!(now.records, want, "a refused update changed the RRset");
        // Read again, and the same addition goes through.
        p.add_tlsa(&k, Some(&z), &h, std::slice::from_ref(&a), 10)
            .await
            .unwrap();
        assert_eq!(p.read_tlsa(&h).await.unwrap().records.len(), 3);
    });
}

/// RFC 2136 §2.5.4: delete RRs from an RRset; the others stay, and the
/// last one is only removed by deleting the RRset (§2.5.2) on purpose.
#[test]
fn rfc2136_2_5_4_remove_deletes_only_the_given_records() {
    let Some(bed) = Testbed::get() else { return };
    let (p, k, z, h) = (
        primary(bed),
        key(bed, "UPDATE_KEY"),
        zone(bed),
        host(bed, "t3"),
    );
    let (a, b) = (fresh("t3a"), fresh("t3b"));
    run(bed, async {
        reset(&p, &k, &z, &h).await;
        p.add_tlsa(&k, Some(&z), &h, &[a.clone(), b.clone()], 10)
            .await
            .unwrap();
        let u = p
            .remove_tlsa(&k, Some(&z), &h, std::slice::from_ref(&a))
            .await
            .unwrap();
        assert_eq!(u.deletes(), std::slice::from_ref(&a));
        let now = p.read_tlsa(&h).await.unwrap();
        assert_eq!(now.records, vec![b.clone()]);
        assert_eq!(now.ttl, Some(10));
        let e = p
            .remove_tlsa(&k, Some(&z), &h, std::slice::from_ref(&b))
            .await
            .unwrap_err();
        assert!(matches!(e, UpdateError::WouldEmpty { .. }), "{e}");
        assert_eq!(p.read_tlsa(&h).await.unwrap().records, vec![b.clone()]);
        let all = TlsaUpdate::delete_rrset(&z, &now).unwrap();
        p.send(&all, &k).await.unwrap();
        assert_eq!(
            p.read_tlsa(&h).await.unwrap(),
            TlsaRrset::absent(&h).unwrap()
        );
    });
}

/// RFC 8945 §5.2: a key the server does not know (BADKEY) and a wrong
/// secret (BADSIG), each said in words; nothing changes.
#[test]
fn rfc8945_5_2_wrong_key_is_refused_in_words() {
    let Some(bed) = Testbed::get() else { return };
    let (p, k, z, h) = (
        primary(bed),
        key(bed, "UPDATE_KEY"),
        zone(bed),
        host(bed, "t4"),
    );
    let unknown = TsigKey::new("no-such-key", TsigAlgorithm::HmacSha256, vec![7; 32]).unwrap();
    let wrong_secret = TsigKey::new(&k.name(), TsigAlgorithm::HmacSha256, vec![7; 32]).unwrap();
    let rec = fresh("t4");
    run(bed, async {
        reset(&p, &k, &z, &h).await;
        let e = p
            .add_tlsa(&unknown, Some(&z), &h, std::slice::from_ref(&rec), 10)
            .await
            .unwrap_err();
        let r = rejection(&e);
        assert_eq!(
            (r.rcode, r.tsig),
            (UpdateRcode::NotAuth, Some(TsigFailure::BadKey))
        );
        assert!(
            e.to_string()
                .contains("did not accept TSIG key no-such-key. (NOTAUTH, BADKEY)"),
            "{e}"
        );
        let e = p
            .add_tlsa(&wrong_secret, Some(&z), &h, std::slice::from_ref(&rec), 10)
            .await
            .unwrap_err();
        assert_eq!(rejection(&e).tsig, Some(TsigFailure::BadSig), "{e}");
        assert!(
            e.to_string().contains(&format!(
                "(NOTAUTH, BADSIG): the secret of TSIG key {} differs from the server's",
                k.name()
            )),
            "{e}"
        );
        assert!(p.read_tlsa(&h).await.unwrap().records.is_empty());
    });
}

/// RFC 2136 §3.3 (the server's update policy): a key the ACL does not
/// allow, and an owner outside the allowed names, are refused. Knot says
/// so with NOTAUTH + BADKEY (BIND would say REFUSED); both are in words.
#[test]
fn rfc2136_3_3_policy_refuses_other_keys_and_owners() {
    let Some(bed) = Testbed::get() else { return };
    let (p, k, z, h) = (
        primary(bed),
        key(bed, "UPDATE_KEY"),
        zone(bed),
        host(bed, "t5"),
    );
    let denied = key(bed, "UPDATE_KEY_DENIED");
    let rec = fresh("t5");
    let outside = format!("other.{z}");
    run(bed, async {
        reset(&p, &k, &z, &h).await;
        for (key, host) in [(&denied, h.as_str()), (&k, outside.as_str())] {
            let e = p
                .add_tlsa(key, Some(&z), host, std::slice::from_ref(&rec), 10)
                .await
                .unwrap_err();
            let r = rejection(&e);
            assert_eq!(
                (r.rcode, r.tsig),
                (UpdateRcode::NotAuth, Some(TsigFailure::BadKey)),
                "{e}"
            );
            assert!(
                e.to_string().contains(&format!(
                    "or its policy does not allow this key to change TLSA records at _25._tcp.{host}"
                )),
                "{e}"
            );
            assert!(p.read_tlsa(host).await.unwrap().records.is_empty());
        }
    });
}

/// The bed's ACL allows TLSA only: another type at an allowed name is
/// refused (dane-audit cannot send one; knsupdate can).
#[test]
fn rfc2136_3_3_policy_refuses_other_types() {
    let Some(bed) = Testbed::get() else { return };
    let text = std::fs::read_to_string(bed.var("UPDATE_KEY_KNOT")).unwrap();
    let y = text
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .expect("keymgr's alg:name:secret line")
        .trim()
        .to_string();
    let owner = format!("_25._tcp.{}", host(bed, "t5"));
    let script = format!(
        "server {}\nzone {}.\nupdate add {owner}. 10 TXT \"not a TLSA record\"\nsend\n",
        bed.var("UPDATE_PRIMARY"),
        zone(bed)
    );
    let mut child = bed
        .command("knsupdate")
        .args(["-y", &y])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("knsupdate");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "a TXT update went through: {all}");
    assert!(all.contains("BADKEY") || all.contains("NOTAUTH"), "{all}");
    let txt = dig(
        bed,
        &[
            &format!("@{}", bed.var("UPDATE_PRIMARY")),
            "+norec",
            "+short",
            &owner,
            "TXT",
        ],
    );
    assert!(txt.trim().is_empty(), "TXT served: {txt}");
}

/// HMAC-SHA512 keys, and keys in Knot's syntax (as keymgr -t printed
/// them), sign updates the server accepts.
#[test]
fn rfc8945_hmac_sha512_and_knot_key_files_sign_accepted_updates() {
    let Some(bed) = Testbed::get() else { return };
    let (p, z) = (primary(bed), zone(bed));
    let sha512 = key(bed, "UPDATE_KEY_SHA512");
    assert_eq!(sha512.algorithm(), TsigAlgorithm::HmacSha512);
    let knot = key(bed, "UPDATE_KEY_KNOT");
    assert_eq!(
        knot,
        key(bed, "UPDATE_KEY"),
        "the same key in both syntaxes"
    );
    for (label, k) in [("t6", &sha512), ("t7", &knot)] {
        let h = host(bed, label);
        let rec = fresh(label);
        run(bed, async {
            reset(&p, k, &z, &h).await;
            p.add_tlsa(k, Some(&z), &h, std::slice::from_ref(&rec), 10)
                .await
                .unwrap_or_else(|e| panic!("{k}: {e}"));
            assert_eq!(p.read_tlsa(&h).await.unwrap().records, vec![rec.clone()]);
        });
    }
}

/// The zone of a name, from the SOA record of the server's authoritative
/// answer; a name the server does not serve is said so. (knotd serves the
/// root too, so every name has a zone there; nsd-s serves one zone.)
#[test]
fn zone_is_found_by_soa() {
    let Some(bed) = Testbed::get() else { return };
    let (p, z) = (primary(bed), zone(bed));
    let sec = secondary(bed);
    let only_one = PrimaryServer::new(format!("{sec}:53").parse().unwrap(), TIMEOUT);
    run(bed, async {
        for name in [
            z.clone(),
            format!("mx.{z}"),
            format!("_25._tcp.mx.{z}"),
            format!("no-such-name.{z}"),
        ] {
            assert_eq!(p.zone_of(&name).await.unwrap(), z, "{name}");
            assert_eq!(only_one.zone_of(&name).await.unwrap(), z, "{name}");
        }
        assert_eq!(p.zone_of("example.org").await.unwrap(), ".");
        let e = only_one
            .zone_of("example.org")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("{sec}:53 is not authoritative for example.org (it answered REFUSED)")
        );
    });
}

/// A primary that does not answer: a timeout that says where and how long;
/// one that refuses connections: said so.
#[test]
fn primary_down_is_a_clear_error() {
    let Some(bed) = Testbed::get() else { return };
    let (k, z, h) = (key(bed, "UPDATE_KEY"), zone(bed), host(bed, "t9"));
    let dead = bed.var("NS_DEAD").split(',').next().unwrap().to_string();
    let closed = bed.var("NS_CLOSED").split(',').next().unwrap().to_string();
    let rec = fresh("t9");
    let update = TlsaUpdate::add(
        &z,
        &TlsaRrset::absent(&h).unwrap(),
        std::slice::from_ref(&rec),
        10,
    )
    .unwrap();
    run(bed, async {
        let p = PrimaryServer::new(
            format!("{dead}:53").parse().unwrap(),
            Duration::from_secs(1),
        );
        let t = Instant::now();
        let e = p.send(&update, &k).await.unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "took {:?}",
            t.elapsed()
        );
        assert_eq!(
            e.to_string(),
            format!(
                "no answer to the UPDATE from {dead}:53 within 1000 ms: is the primary server up and reachable over TCP? \
                 (if it got the update it may still apply it: read the RRset again)"
            )
        );
        let e = p
            .add_tlsa(&k, Some(&z), &h, std::slice::from_ref(&rec), 10)
            .await
            .unwrap_err();
        assert!(matches!(e, UpdateError::Timeout { ms: 1000, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("no answer from {dead}:53 within 1000 ms: is the server up and reachable?")
        );
        let p = PrimaryServer::new(
            format!("{closed}:53").parse().unwrap(),
            Duration::from_secs(1),
        );
        let e = p.send(&update, &k).await.unwrap_err().to_string();
        assert!(
            e.contains(&format!("TCP connect to {closed}:53")) && e.contains("refused"),
            "{e}"
        );
    });
}

/// Collects everything logged at any level while it is the default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The secret of the key file shows up nowhere: not in logs at TRACE level
/// (ours and hickory's), not in dry-run text, results, errors or their Debug.
#[test]
fn secret_never_appears_in_output_or_logs() {
    let Some(bed) = Testbed::get() else { return };
    let (p, k, z, h) = (
        primary(bed),
        key(bed, "UPDATE_KEY"),
        zone(bed),
        host(bed, "t10"),
    );
    let text = std::fs::read_to_string(bed.var("UPDATE_KEY")).unwrap();
    let b64 = text
        .split('"')
        .nth(3)
        .expect("secret \"...\" in the key file")
        .to_string();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .unwrap();
    let needles = [
        b64.clone(),
        b64[..12].to_string(),
        hex::encode(&raw),
        hex::encode_upper(&raw),
    ];
    let wrong = TsigKey::new(&k.name(), TsigAlgorithm::HmacSha256, vec![1; 32]).unwrap();
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let mut shown: Vec<String> = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        run(bed, async {
            reset(&p, &k, &z, &h).await;
            let rec = fresh("t10");
            let current = p.read_tlsa(&h).await.unwrap();
            let u = TlsaUpdate::add(&z, &current, std::slice::from_ref(&rec), 10).unwrap();
            shown.push(u.render(Some(p.addr), Some(&k)));
            shown.push(format!("{u:?} {k:?} {k:#?} {k}"));
            shown.push(format!("{:?}", p.send(&u, &k).await));
            let e = p
                .add_tlsa(&wrong, Some(&z), &h, &[fresh("x")], 10)
                .await
                .unwrap_err();
            shown.push(format!("{e} {e:?}"));
            let sent = p.remove_tlsa(&k, Some(&z), &h, &[]).await.unwrap();
            shown.push(format!("{sent:?}"));
        });
    });
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("signing message"),
        "hickory's TRACE/DEBUG logs were not captured"
    );
    shown.push(logs);
    for s in &shown {
        for n in &needles {
            assert!(!s.contains(n.as_str()), "the secret appears in: {s}");
        }
    }
    assert!(shown[0].contains(&format!("; signed with TSIG key {}", k)));
}
