//! `dane-audit diff` on two generated 10^6-line scans: the right
//! transitions and counts, within its memory bound (peak RSS of the
//! process, from wait4), whatever the input order.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

const N: u64 = 1_000_000;

/// A permutation of 0..N, so lines are in no particular order.
fn shuffled(i: u64) -> u64 {
    (i * 7_919) % N
}

fn line(w: &mut impl Write, domain: &str, verdict: &str, findings: &[(&str, &str)], no: u64) {
    let f: Vec<String> = findings
        .iter()
        .map(|(c, s)| format!(r#"{{"code":"{c}","severity":"notice","subject":"{s}"}}"#))
        .collect();
    writeln!(
        w,
        r#"{{"schema_version":1,"line":{no},"domain":"{domain}","verdict":"{verdict}","worst_severity":null,"findings":[{}],"hosts":[{{"name":"mx.{domain}"}}]}}"#,
        f.join(",")
    )
    .unwrap();
}

/// OLD: every domain passes with one finding. NEW: every 1000th domain
/// fails with a finding gained, d1..d10 are gone, e0..e9 are new.
fn generate(dir: &Path) {
    let mut old = BufWriter::new(std::fs::File::create(dir.join("old.ndjson")).unwrap());
    let mut new = BufWriter::new(std::fs::File::create(dir.join("new.ndjson")).unwrap());
    for i in 0..N {
        let k = shuffled(i);
        let d = format!("d{k}.example");
        let backup = ("tlsa-no-backup", "mx");
        line(&mut old, &d, "pass", &[backup], i + 1);
        if (1..=10).contains(&k) {
            continue;
        }
        if k.is_multiple_of(1000) {
            line(
                &mut new,
                &d,
                "fail",
                &[backup, ("tlsa-no-match", "mx[192.0.2.1]")],
                i + 1,
            );
        } else {
            line(&mut new, &d, "pass", &[backup], i + 1);
        }
    }
    for e in 0..10 {
        line(&mut new, &format!("e{e}.example"), "pass", &[], N + e);
    }
}

/// Runs the binary and returns (exit code, peak RSS in KiB).
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also gives its rusage"
)]
fn run_measured(args: &[&str]) -> (i32, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_dane-audit"))
        .args(args)
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

#[test]
fn million_line_scans_diff_within_the_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let out = dir.path().join("changes.ndjson");
    let (code, rss_kib) = run_measured(&[
        "diff",
        dir.path().join("old.ndjson").to_str().unwrap(),
        dir.path().join("new.ndjson").to_str().unwrap(),
        "--format",
        "ndjson",
        "--sort-memory",
        "16",
        "--tmpdir",
        dir.path().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "changes found: exit 1");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, changes) = lines.split_last().unwrap();
    let s = &summary["summary"];
    assert_eq!(s["old_domains"], N);
    assert_eq!(s["new_domains"], N);
    assert_eq!(s["changed"], 1020);
    assert_eq!(s["transitions"]["pass -> pass"], N - 1000 - 10);
    assert_eq!(s["transitions"]["pass -> fail"], 1000);
    assert_eq!(s["transitions"]["pass -> absent"], 10);
    assert_eq!(s["transitions"]["absent -> pass"], 10);
    assert_eq!(changes.len(), 1020);
    let fail = changes
        .iter()
        .find(|c| c["domain"] == "d5000.example")
        .unwrap();
    assert_eq!(fail["gained"][0], "tlsa-no-match mx[192.0.2.1]");
    assert!(
        changes
            .windows(2)
            .all(|w| w[0]["domain"].as_str() < w[1]["domain"].as_str())
    );
    // 16 MiB per sorted run: the whole process stays far below the 2 x
    // ~190 MB of input (measured: see the README's bound).
    let mib = rss_kib / 1024;
    eprintln!("diff of 2 x {N} lines: peak RSS {mib} MiB");
    assert!(mib < 64, "peak RSS {mib} MiB with --sort-memory 16");
    // No temporary run file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("dane-audit-diff-")
        })
        .collect();
    assert!(left.is_empty());
}
