//! `dane-audit serve` on the real test bed: the API against `check --format
//! json` on every scenario, the address screening proven by packet counters
//! in the bed's namespace, the page in headless Chromium (with axe-core),
//! and the API's response times.
//!
//! The server runs inside the bed's namespace; the test threads that talk
//! to it enter the namespace first. Tests that send traffic the packet
//! counters could see take [`TRAFFIC`] so that the counting test is alone.

mod serve_support;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use serve_support::{BIN, Server};
use support::{TIMEOUTS, Testbed, netns, scenarios};

static TRAFFIC: Mutex<()> = Mutex::new(());

fn traffic() -> MutexGuard<'static, ()> {
    TRAFFIC.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `serve` in the bed's namespace with the bed's resolver and trust anchor.
fn serve(bed: &Testbed, extra: &[&str]) -> Server {
    let mut args = vec!["--resolver", bed.resolver()];
    args.extend_from_slice(extra);
    serve_with(bed, &[], &args)
}

/// `serve` in the bed's namespace, started through `wrapper` (e.g.
/// `setpriv` to run as another user), with the bed's trust anchor.
fn serve_with(bed: &Testbed, wrapper: &[&str], extra: &[&str]) -> Server {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &netns()]).args(wrapper).arg(BIN);
    let mut args = vec!["--trust-anchor", bed.trust_anchor()];
    args.extend_from_slice(&TIMEOUTS);
    args.extend_from_slice(extra);
    Server::start_with(cmd, &args)
}

/// Puts what differs between two runs of the same audit out of the way:
/// the run times (the time fields, and the evaluation time where a message
/// quotes it), the servers a resolver's extended error names (it picks a
/// server at random), and the order of arrays that are sets (the resolver
/// rotates an RRset's order between answers, so TLSA records, the findings
/// about them and hosts of equal preference come in any order). A chain
/// keeps its order: it is ordered by depth.
fn canonical(doc: &Value) -> Value {
    let at = doc["domains"][0]["evaluated_at"]
        .as_str()
        .unwrap_or("-")
        .to_string();
    canon(doc, &at)
}

fn canon(v: &Value, at: &str) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "started_at" | "evaluated_at" | "collected_at" | "elapsed_ms"
                    )
                })
                .map(|(k, v)| {
                    let c = match v {
                        Value::Array(a) if k != "chain" && k != "via" => {
                            let mut items: Vec<Value> = a.iter().map(|x| canon(x, at)).collect();
                            items.sort_by_key(|x| x.to_string());
                            Value::Array(items)
                        }
                        v => canon(v, at),
                    };
                    (k.clone(), c)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| canon(x, at)).collect()),
        Value::String(s) => Value::String(mask_servers(&s.replace(at, "<evaluated_at>"))),
        other => other.clone(),
    }
}

/// `... failed from 198.51.100.2 and 2001:db8:53::3 for ...` -> `from <servers>`.
fn mask_servers(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("from ") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let is_addr = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
                && t.contains(['.', ':'])
        };
        let mut masked = false;
        loop {
            let end = rest.find([' ', ')']).unwrap_or(rest.len());
            if !is_addr(&rest[..end]) {
                break;
            }
            masked = true;
            rest = &rest[end..];
            match rest.strip_prefix(" and ") {
                Some(r) => rest = r,
                None => break,
            }
        }
        if masked {
            out.push_str("<servers>");
        }
    }
    out.push_str(rest);
    out
}

/// Where two canonical documents differ. A TTL is compared for presence
/// only: it counts down in the resolver's cache, and whether an answer came
/// from that cache (or was synthesised from a cached NSEC) is the
/// resolver's business, not the audit's.
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let (p, q) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if k == "ttl" && p.is_number() && q.is_number() {
                    continue;
                }
                differences(p, q, &format!("{path}/{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{path}[{i}]"), out);
            }
        }
        (p, q) if p != q => out.push(format!("{path}: check {p}, api {q}")),
        _ => {}
    }
}

/// Forgets what the bed's resolver holds for these names (and below), so
/// that two runs start from the same state: Unbound answers a bogus name
/// from its cache with a shorter extended error than when it validated.
fn flush(bed: &Testbed, names: &[String]) {
    for n in names {
        let out = bed
            .command("unbound-control")
            .args(["-c", bed.var("UNBOUND_CONF"), "flush_zone", n])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "unbound-control flush_zone {n}: {out:?}"
        );
    }
}

/// The domain and its MX hosts (from a document), whose cache entries matter.
fn names_of(domain: &str, doc: &Value) -> Vec<String> {
    let mut names = vec![domain.to_string()];
    for h in doc["domains"][0]["hosts"].as_array().into_iter().flatten() {
        for k in ["name", "tlsa_base"] {
            if let Some(n) = h[k].as_str() {
                names.push(n.to_string());
            }
        }
    }
    names
}

/// `check DOMAIN --format json`: the document and the exit code.
fn check_json(bed: &Testbed, domain: &str) -> (Value, i32) {
    let out = bed
        .command(BIN)
        .args(["check", domain, "--format", "json"])
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args(TIMEOUTS)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{domain}: check printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (doc, out.status.code().unwrap_or(-1))
}

#[test]
fn masking_keeps_all_but_the_servers_and_the_run_time() {
    assert_eq!(
        mask_servers("EDE 6: failed from 198.51.100.2 and 2001:db8:53::3 for <x. NSEC IN>"),
        "EDE 6: failed from <servers> for <x. NSEC IN>"
    );
    assert_eq!(
        mask_servers("(failed from 198.51.100.3)"),
        "(failed from <servers>)"
    );
    assert_eq!(mask_servers("1 day(s) from now"), "1 day(s) from now");
    let doc = serde_json::json!({"domains": [{"evaluated_at": "2026-01-01T00:00:00Z",
        "findings": [{"message": "b (1 day(s) from 2026-01-01T00:00:00Z)"}, {"message": "a"}],
        "hosts": [{"chain": [3, 1]}]}]});
    let c = canonical(&doc);
    assert_eq!(c["domains"][0]["findings"][0]["message"], "a");
    assert_eq!(
        c["domains"][0]["findings"][1]["message"],
        "b (1 day(s) from <evaluated_at>)"
    );
    assert_eq!(
        c["domains"][0]["hosts"][0]["chain"],
        serde_json::json!([3, 1])
    );
    assert!(c["domains"][0].get("evaluated_at").is_none());
}

/// Tries per scenario (see the loop): a stale secondary is picked with
/// even odds, so 12 tries miss a matching pair once in 4 000 runs.
const ATTEMPTS: u32 = 12;

#[test]
fn api_document_is_checks_document_on_every_scenario() {
    let Some(bed) = Testbed::get() else { return };
    let _t = traffic();
    let s = serve(
        bed,
        &[
            "--allow-private",
            "--rate",
            "10000/min",
            "--max-audits",
            "8",
            "--request-timeout",
            "120s",
        ],
    );
    let domains: Vec<String> = scenarios().into_iter().map(|s| s.domain).collect();
    let queue = Mutex::new(domains.clone());
    let diffs = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                bed.enter_thread();
                loop {
                    let Some(d) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    // A first run finds the names to flush before each compared run.
                    let names = names_of(&d, &check_json(bed, &d).0);
                    let mut attempt = 0;
                    let (exit, want_exit) = loop {
                        attempt += 1;
                        flush(bed, &names);
                        let (want, want_exit) = check_json(bed, &d);
                        flush(bed, &names);
                        let r = s.get(&format!("/api/v1/check/{d}"));
                        assert_eq!(r.status, 200, "{d}: {}", r.body);
                        let got = r.json();
                        let exit = r.header("dane-audit-exit").unwrap_or("?").to_string();
                        let mut diff = Vec::new();
                        differences(&canonical(&want), &canonical(&got), "", &mut diff);
                        // A scenario whose servers serve different data on
                        // purpose (a stale secondary) gives either answer,
                        // as the resolver picks a server: ask again until
                        // both runs got the same one.
                        if diff.is_empty() || attempt == ATTEMPTS {
                            if !diff.is_empty() {
                                diffs
                                    .lock()
                                    .unwrap()
                                    .push(format!("{d}:\n  {}", diff.join("\n  ")));
                            }
                            break (exit, want_exit);
                        }
                    };
                    // The exit header is check's exit code for the domain.
                    let want_exit = want_exit.to_string();
                    if exit != want_exit {
                        diffs.lock().unwrap().push(format!(
                            "{d}: exit header {exit}, check would exit {want_exit}"
                        ));
                    }
                }
            });
        }
    });
    let diffs = diffs.into_inner().unwrap();
    assert!(
        diffs.is_empty(),
        "{} of {} scenarios differ:\n{}",
        diffs.len(),
        domains.len(),
        diffs.join("\n")
    );
    eprintln!(
        "{} scenarios: /api/v1/check equals check --format json (modulo times)",
        domains.len()
    );
}

/// The user the screened servers run as: the counters count only its
/// packets (Unbound, in the same namespace, asks the same authoritative
/// servers for its own reasons).
const SERVE_UID: &str = "65534";
const AS_SERVE_UID: &[&str] = &[
    "setpriv",
    "--reuid",
    SERVE_UID,
    "--regid",
    SERVE_UID,
    "--clear-groups",
];

/// Packet counters in the bed's namespace, on the output hook: every
/// packet a process of [`SERVE_UID`] sends to these.
struct Counters {
    table: &'static str,
}

const COUNTED: &[(&str, &str)] = &[
    ("smtp-loopback", "ip daddr 127.0.0.1 tcp dport 25"),
    ("smtp-private", "ip daddr 10.0.0.1 tcp dport 25"),
    ("smtp-documentation", "ip daddr 192.0.2.14 tcp dport 25"),
    // Authoritative servers: the resolver (.53) is the operator's choice;
    // ns-knot (.1) is counted apart, as --iterative's root hint.
    (
        "dns-auth-v4",
        "ip daddr 198.51.100.0/24 ip daddr != { 198.51.100.1, 198.51.100.53 } meta l4proto { tcp, udp } th dport 53",
    ),
    (
        "dns-auth-v6",
        "ip6 daddr 2001:db8:53::/64 ip6 daddr != { 2001:db8:53::1, 2001:db8:53::53 } meta l4proto { tcp, udp } th dport 53",
    ),
    (
        "dns-knot",
        "ip daddr 198.51.100.1 meta l4proto { tcp, udp } th dport 53",
    ),
];

impl Counters {
    fn new(bed: &Testbed) -> Counters {
        let table = "dane_audit_serve_screen";
        let mut rules = String::new();
        for (name, m) in COUNTED {
            rules.push_str(&format!(
                "    meta skuid {SERVE_UID} {m} counter comment \"{name}\"\n"
            ));
        }
        let text = format!(
            "table inet {table} {{\n  chain out {{\n    type filter hook output priority -10; policy accept;\n{rules}  }}\n}}\n"
        );
        delete_table(table);
        let mut c = bed.command("nft");
        c.args(["-f", "-"]).stdin(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft:\n{text}");
        Counters { table }
    }

    /// Packets per counter.
    fn read(&self, bed: &Testbed) -> BTreeMap<String, u64> {
        let out = bed
            .command("nft")
            .args(["-j", "list", "table", "inet", self.table])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut m = BTreeMap::new();
        for item in v["nftables"].as_array().unwrap() {
            let Some(rule) = item.get("rule") else {
                continue;
            };
            let name = rule["comment"].as_str().unwrap_or("").to_string();
            let packets = rule["expr"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|e| e.get("counter").and_then(|c| c["packets"].as_u64()))
                .unwrap_or(0);
            m.insert(name, packets);
        }
        m
    }

    fn reset(&self, bed: &Testbed) {
        let out = bed
            .command("nft")
            .args(["reset", "counters", "table", "inet", self.table])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

/// Removes the counting table (a leftover of an interrupted run, or ours).
fn delete_table(table: &str) {
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &netns(),
            "nft",
            "delete",
            "table",
            "inet",
            table,
        ])
        .output();
}

impl Drop for Counters {
    fn drop(&mut self) {
        delete_table(self.table);
    }
}

/// The screened domains: MX at 127.0.0.1, at 10.0.0.1, at 192.0.2.14.
const SCREENED: &[(&str, &str)] = &[
    ("smtp-mx-loopback.example", "smtp-loopback"),
    ("smtp-mx-private.example", "smtp-private"),
    ("good-311-211.example", "smtp-documentation"),
];

fn audit(s: &Server, domain: &str) -> Value {
    let r = s.get(&format!("/api/v1/check/{domain}"));
    assert_eq!(r.status, 200, "{domain}: {}", r.body);
    r.json()["domains"][0].clone()
}

#[test]
fn special_purpose_addresses_are_not_contacted_without_allow_private() {
    let Some(bed) = Testbed::get() else { return };
    let _t = traffic();
    bed.enter_thread();
    let counters = Counters::new(bed);
    let hints = tempfile::tempdir().unwrap();
    // Readable by the server's user.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(hints.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hints_file = hints.path().join("root.hints");
    let mut text = String::from(".  3600000  NS  ns-knot.example.\n");
    for ip in bed.var("NS_KNOT").split(',') {
        let ty = if ip.contains(':') { "AAAA" } else { "A" };
        text.push_str(&format!("ns-knot.example.  3600000  {ty}  {ip}\n"));
    }
    std::fs::write(&hints_file, text).unwrap();
    let hints_arg = hints_file.to_str().unwrap();

    // 1. Screened (the default), through the resolver.
    {
        let s = serve_with(bed, AS_SERVE_UID, &["--resolver", bed.resolver()]);
        for (domain, _) in SCREENED {
            let a = audit(&s, domain);
            assert_eq!(a["verdict"], "incomplete", "{domain}: {a}");
            let addr = &a["hosts"][0]["addresses"][0];
            assert_eq!(addr["verdict"], "not-tested", "{domain}: {addr}");
            let reason = addr["reason"].as_str().unwrap();
            assert!(
                reason.contains("address not allowed here"),
                "{domain}: {reason}"
            );
            // The page says so, and the per-server checks were not made.
            let page = s.get(&format!("/check/{domain}")).body;
            assert!(page.contains("address not allowed here"), "{domain}");
            assert!(
                page.contains("not asked: address not allowed here (documentation"),
                "{domain}: per-server checks"
            );
        }
        let got = counters.read(bed);
        for (name, _) in COUNTED {
            assert_eq!(got[*name], 0, "screened: packets to {name}: {got:?}");
        }
    }
    // 2. Screened, iterative from the bed's root: the root hint (ns-knot)
    //    is the operator's choice and is asked; nothing else special is.
    {
        let s = serve_with(
            bed,
            AS_SERVE_UID,
            &["--iterative", "--root-hints", hints_arg],
        );
        for (domain, _) in SCREENED {
            let a = audit(&s, domain);
            assert_ne!(a["verdict"], "pass", "{domain}: {a}");
        }
        let got = counters.read(bed);
        for (name, _) in COUNTED.iter().filter(|(n, _)| *n != "dns-knot") {
            assert_eq!(
                got[*name], 0,
                "screened, iterative: packets to {name}: {got:?}"
            );
        }
        assert!(got["dns-knot"] > 0, "the root hint was asked: {got:?}");
    }
    // 3. The control: with --allow-private the same requests reach every
    //    one of them, so the counters do see such packets.
    counters.reset(bed);
    {
        let s = serve_with(
            bed,
            AS_SERVE_UID,
            &["--resolver", bed.resolver(), "--allow-private"],
        );
        for (domain, counter) in SCREENED {
            let a = audit(&s, domain);
            assert_eq!(a["verdict"], "pass", "{domain}: {a}");
            let got = counters.read(bed);
            assert!(
                got[*counter] > 0,
                "{domain}: no packet counted at {counter}: {got:?}"
            );
        }
        let got = counters.read(bed);
        assert!(got["dns-auth-v4"] > 0 && got["dns-auth-v6"] > 0, "{got:?}");
        eprintln!("packets with --allow-private: {got:?}");
    }
}

/// `npm ci` in tests/browser (playwright-core and axe-core, pinned by the
/// lock file; playwright never downloads a browser: Debian's is used).
fn browser_deps() -> PathBuf {
    let dir = repo().join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists()
        || !dir.join("node_modules/axe-core").exists()
    {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .expect("npm (Node.js) is needed for the browser tests: scripts/install-deps");
        assert!(
            out.status.success(),
            "npm ci: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

fn browser_available() -> bool {
    let ok = Path::new("/usr/bin/chromium").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ok && std::env::var("DANE_TESTBED_REQUIRED").as_deref() == Ok("1") {
        panic!(
            "Chromium (/usr/bin/chromium) and Node.js are required (DANE_TESTBED_REQUIRED=1): scripts/install-deps"
        );
    }
    ok
}

/// The scenario the browser test's watch database holds (its failing one).
const WATCHED: &str = "rec-wrong-selector.example";

#[test]
fn the_page_in_headless_chromium() {
    let Some(bed) = Testbed::get() else { return };
    if !browser_available() {
        eprintln!("\n*** SKIPPING browser tests: no /usr/bin/chromium or node ***\n");
        return;
    }
    let dir = browser_deps();
    let _t = traffic();
    // A watch database in which the failing scenario is watched: its
    // result page links to its history, which the browser checks too.
    let db_dir = tempfile::tempdir().unwrap();
    let db = serve_support::watch_db(db_dir.path(), WATCHED, 230);
    let s = serve(
        bed,
        &[
            "--allow-private",
            "--rate",
            "1000/min",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    let shots = match std::env::var("DANE_AUDIT_SCREENSHOTS") {
        Ok(d) => PathBuf::from(d),
        Err(_) => repo().join("target/screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let out = bed
        .command("node")
        .arg(dir.join("serve.mjs"))
        .arg(format!("http://{}", s.addr))
        .arg(&shots)
        .arg(WATCHED)
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser checks failed:\n{text}");
    assert!(text.contains("all browser checks passed"));
    for f in [
        "serve-pass.png",
        "serve-fail.png",
        "serve-phone.png",
        "serve-history.png",
    ] {
        let meta = std::fs::metadata(shots.join(f)).unwrap();
        assert!(meta.len() > 10_000, "{f}: {} bytes", meta.len());
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `n` requests one after the other, `pause` apart; their times, sorted.
fn timed(s: &Server, path: &str, n: usize, pause: Duration) -> Vec<Duration> {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            std::thread::sleep(pause);
            let t = Instant::now();
            let r = s.get(path);
            let d = t.elapsed();
            assert_eq!(r.status, 200, "{}", r.body);
            d
        })
        .collect();
    v.sort();
    v
}

/// The API's response time for one domain, from the result cache and with
/// a new audit each time (`--cache-ttl 0`; the DNS answers may come from
/// the server's and Unbound's caches, the SMTP probe is new every time).
/// New audits are spaced 0.6 s apart: the server opens at most two new
/// connections per second to one MX address, and back to back the audit
/// would wait for that instead of being measured.
#[test]
fn api_response_times_cached_and_uncached() {
    let Some(bed) = Testbed::get() else { return };
    let _t = traffic();
    bed.enter_thread();
    let path = "/api/v1/check/good-311-211.example";
    let cached = serve(bed, &["--allow-private", "--rate", "100000/min"]);
    cached.get(path);
    let hits = timed(&cached, path, 1000, Duration::ZERO);
    let fresh = serve(
        bed,
        &[
            "--allow-private",
            "--rate",
            "100000/min",
            "--cache-ttl",
            "0",
        ],
    );
    let audits = timed(&fresh, path, 100, Duration::from_millis(600));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "API response time, good-311-211.example on the test bed: cached p50 {:.2} ms p99 {:.2} ms (n={}); uncached p50 {:.1} ms p99 {:.1} ms (n={})",
        ms(percentile(&hits, 0.5)),
        ms(percentile(&hits, 0.99)),
        hits.len(),
        ms(percentile(&audits, 0.5)),
        ms(percentile(&audits, 0.99)),
        audits.len()
    );
    assert!(
        percentile(&hits, 0.5) * 5 < percentile(&audits, 0.5),
        "a cached answer is not cheaper"
    );
    assert_eq!(
        fresh.metric(r#"dane_audit_serve_cache_total{result="miss"}"#),
        100.0
    );
    assert_eq!(
        cached.metric(r#"dane_audit_serve_cache_total{result="hit"}"#),
        1000.0
    );
}
