//! `dane-audit scan` against the real test bed: the same verdicts as `check`
//! for every scenario, resume after `kill -9` at random moments (every input
//! line exactly once, repeated), and Ctrl-C (exit 130, then resume).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Testbed, scenarios};

const BIN: &str = env!("CARGO_BIN_EXE_dane-audit");
const FAST: [&str; 6] = [
    "--dns-timeout",
    "1",
    "--connect-timeout",
    "2",
    "--smtp-timeout",
    "2",
];

fn scan_cmd(bed: &Testbed, input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = bed.command(BIN);
    c.arg("scan")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args(["--quiet", "--fail-on", "never"])
        .args(extra)
        .stdin(Stdio::null());
    c
}

fn records(path: &Path) -> BTreeMap<u64, serde_json::Value> {
    let mut m = BTreeMap::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display()));
        let line = v["line"].as_u64().unwrap();
        assert!(m.insert(line, v).is_none(), "line {line} written twice");
    }
    m
}

fn codes(d: &serde_json::Value) -> BTreeSet<String> {
    d["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["code"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn stderr(o: &Output) -> String {
    format!(
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The scenario domains, some twice, NXDOMAIN names in a signed zone,
/// and garbage; returns the list and its line count with a record.
fn bulk_list(dir: &Path, nx: usize) -> (PathBuf, usize) {
    let mut lines = vec!["# scan test list".to_string()];
    let all = scenarios();
    for (i, s) in all.iter().enumerate() {
        lines.push(s.domain.clone());
        if i % 5 == 0 {
            lines.push(s.domain.to_uppercase());
        }
        if i % 7 == 0 {
            lines.push(format!("not a domain {i}"));
            lines.push(String::new());
        }
    }
    for i in 0..nx {
        lines.push(format!("nx{i}.good-311.example"));
    }
    let n = lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let p = dir.join("list.txt");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    (p, n)
}

/// `scan` gives each scenario the verdict and codes that `check` gives it.
#[test]
fn scan_agrees_with_check_on_every_scenario() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (list, n) = bulk_list(dir.path(), 20);
    let out = dir.path().join("out.ndjson");
    let o = scan_cmd(bed, &list, &out, &FAST).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let recs = records(&out);
    assert_eq!(recs.len(), n);
    let domains: Vec<String> = scenarios().iter().map(|s| s.domain.clone()).collect();
    let mut c = bed.command(BIN);
    c.arg("check")
        .args(&domains)
        .args([
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args(FAST)
        .args([
            "--format",
            "json",
            "--fail-on",
            "never",
            "--no-fail-on-incomplete",
        ]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let check: BTreeMap<String, serde_json::Value> = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["domain"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    let mut diffs = Vec::new();
    for r in recs.values() {
        let d = r["domain"].as_str().unwrap();
        if r["verdict"] == "error" {
            assert!(d.starts_with("not a domain"), "{r}");
            continue;
        }
        if d.starts_with("nx") {
            assert_eq!(r["verdict"], "no-mail", "{r}");
            continue;
        }
        let c = &check[d];
        if r["verdict"] != c["verdict"] || codes(r) != codes(c) {
            diffs.push(format!(
                "{d}: scan {} {:?}, check {} {:?}",
                r["verdict"],
                codes(r),
                c["verdict"],
                codes(c)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "scan and check differ:\n{}",
        diffs.join("\n")
    );
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn kill9(child: &mut Child) {
    // SAFETY: signalling a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// kill -9 at random moments, then --resume, until a run finishes: every
/// input line ends up in OUT exactly once, with the verdict of an
/// uninterrupted run. Three rounds.
#[test]
fn resume_after_kill_9_at_random_points_yields_every_line_once() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (list, n) = bulk_list(dir.path(), 400);
    let reference_out = dir.path().join("reference.ndjson");
    let o = scan_cmd(bed, &list, &reference_out, &FAST)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let reference = records(&reference_out);
    assert_eq!(reference.len(), n);

    let mut seed: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill points seed {seed}");
    for round in 0..3 {
        let out = dir.path().join(format!("round{round}.ndjson"));
        let mut kills = 0;
        loop {
            let mut child = scan_cmd(bed, &list, &out, &FAST)
                .arg("--resume")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if kills < 4 {
                let wait = Duration::from_millis(xorshift(&mut seed) % 2500);
                let t0 = Instant::now();
                let mut finished = None;
                while t0.elapsed() < wait {
                    if let Some(st) = child.try_wait().unwrap() {
                        finished = Some(st);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                if finished.is_none() {
                    kill9(&mut child);
                    kills += 1;
                    // What a kill leaves must read back: whole records, maybe half a last one.
                    continue;
                }
                assert_eq!(finished.unwrap().code(), Some(0), "round {round}");
                break;
            }
            let o = child.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "round {round}: {}", stderr(&o));
            break;
        }
        let got = records(&out);
        assert_eq!(
            got.keys().copied().collect::<Vec<u64>>(),
            reference.keys().copied().collect::<Vec<u64>>(),
            "round {round} after {kills} kills"
        );
        let mut diffs = Vec::new();
        for (l, r) in &got {
            let want = &reference[l];
            if r["domain"] != want["domain"] || r["verdict"] != want["verdict"] {
                diffs.push(format!(
                    "line {l}: {} {} vs {} {}",
                    r["domain"], r["verdict"], want["domain"], want["verdict"]
                ));
            }
        }
        assert!(diffs.is_empty(), "round {round}:\n{}", diffs.join("\n"));
        eprintln!(
            "round {round}: {kills} kills, {} lines once each",
            got.len()
        );
    }
}

/// Ctrl-C: stops taking domains, writes what finished, exits 130; a resume finishes.
#[test]
fn ctrl_c_exits_130_with_whole_records_and_resume_finishes() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (list, n) = bulk_list(dir.path(), 300);
    let out = dir.path().join("out.ndjson");
    let summary = dir.path().join("summary.json");
    let child = scan_cmd(
        bed,
        &list,
        &out,
        &[
            &FAST[..],
            &["--grace", "2", "--concurrency", "8", "--summary"],
        ]
        .concat(),
    )
    .arg(&summary)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    if o.status.code() == Some(0) {
        eprintln!("the scan finished before the interrupt; nothing to check");
        return;
    }
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(took < Duration::from_secs(8), "stopping took {took:?}");
    let partial = records(&out);
    assert!(partial.len() < n);
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["complete"], false);
    let sc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.ndjson.scan.json")).unwrap())
            .unwrap();
    assert_eq!(sc["status"], "interrupted");
    let o = scan_cmd(bed, &list, &out, &FAST)
        .arg("--resume")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(records(&out).len(), n);
}

/// A skip-listed nameserver address is never asked: the IPv6 server that
/// drops TLSA queries no longer shows up as `ns-drops-tlsa` once listed.
#[test]
fn skip_listed_nameserver_is_not_asked() {
    let Some(bed) = Testbed::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "dns-tlsa-drop-v6.example\n").unwrap();
    let drop6 = bed.var("NS_DROP6").split(',').nth(1).unwrap().to_string();
    let skip = dir.path().join("skip.txt");
    std::fs::write(&skip, format!("# this server asked us not to\n{drop6}\n")).unwrap();
    let run = |extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let o = scan_cmd(bed, &list, &out, extra).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        records(&out).into_values().next().unwrap()
    };
    let plain = run(&[], "plain.ndjson");
    assert!(codes(&plain).contains("ns-drops-tlsa"), "{plain}");
    let skip_arg = skip.to_str().unwrap();
    let skipped = run(&["--skip", skip_arg], "skipped.ndjson");
    assert_eq!(skipped["verdict"], "pass", "{skipped}");
    assert!(!codes(&skipped).contains("ns-drops-tlsa"), "{skipped}");
}
