//! `dane-audit scan` without the test bed: input lines, error rows, one
//! record per line (duplicates and garbage too), the shard split, resume from
//! a cut-off output, the settings guard, the summary, usage errors.
//!
//! The resolver is a closed local port, so every valid name fails fast
//! (`incomplete`, mx-lookup-failed) and no test touches the network.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dane-audit");
/// Nothing listens here: answers are "connection refused", at once.
const DEAD_RESOLVER: &str = "127.0.0.1:9";

fn scan(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("scan")
        .args(["--resolver", DEAD_RESOLVER, "--dns-timeout", "1", "--quiet"])
        .args(args);
    c
}

fn run<C: std::borrow::BorrowMut<Command>>(mut c: C) -> Output {
    c.borrow_mut()
        .stdin(Stdio::null())
        .output()
        .expect("run dane-audit")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Records of an NDJSON output by line number; panics on a duplicate line.
fn records(path: &Path) -> BTreeMap<u64, serde_json::Value> {
    let mut m = BTreeMap::new();
    for (i, l) in std::fs::read_to_string(path).unwrap().lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("record {i}: {e}: {l}"));
        let line = v["line"].as_u64().expect("every record has its line");
        assert!(m.insert(line, v).is_none(), "line {line} reported twice");
    }
    m
}

/// A list with valid names, duplicates, comments, blanks and garbage; returns
/// it with the numbers of the lines that must get a record and those that are bad.
fn mixed_list(n: usize) -> (Vec<u8>, BTreeSet<u64>, BTreeSet<u64>) {
    let mut out = Vec::new();
    let mut want = BTreeSet::new();
    let mut bad = BTreeSet::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..n {
        let no = i as u64 + 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line: Vec<u8> = match x % 12 {
            0 => b"# a comment".to_vec(),
            1 => Vec::new(),
            2 => format!("d{}.example", x % 50).into_bytes(), // duplicates
            3 => {
                // binary garbage without a newline in it
                (0..(x % 300))
                    .map(|k| ((x >> (k % 50)) as u8) | 0x80)
                    .collect()
            }
            4 => "x".repeat(3000 + (x % 5000) as usize).into_bytes(),
            5 => b"user@mail.example".to_vec(),
            6 => "Bücher-Ä.example".as_bytes().to_vec(),
            7 => b"https://www.example/path".to_vec(),
            8 => format!("  Name-{i}.Example.  # trailing comment").into_bytes(),
            9 => b"\t\t".to_vec(),
            10 => b"bad_label-.example\r".to_vec(),
            _ => format!("host{i}.example").into_bytes(),
        };
        match x % 12 {
            0 | 1 | 9 => {}
            3 | 4 | 5 | 7 | 10 => {
                want.insert(no);
                bad.insert(no);
            }
            _ => {
                want.insert(no);
            }
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    (out, want, bad)
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(content)
        .unwrap();
    p
}

#[test]
fn every_line_gets_exactly_one_record_duplicates_and_garbage_too() {
    let dir = tempfile::tempdir().unwrap();
    let (list, want, bad) = mixed_list(3000);
    let input = write(dir.path(), "list.txt", &list);
    let out = dir.path().join("out.ndjson");
    let summary = dir.path().join("summary.json");
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]));
    // Every valid name is incomplete here; that is normal in bulk (exit 0).
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let recs = records(&out);
    let got: BTreeSet<u64> = recs.keys().copied().collect();
    assert_eq!(got, want, "one record per non-blank, non-comment line");
    for (line, r) in &recs {
        let is_error = r["verdict"] == "error";
        assert_eq!(is_error, bad.contains(line), "line {line}: {r}");
        if is_error {
            assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()));
            assert!(r["domain"].as_str().unwrap().chars().count() <= 201);
        } else {
            assert_eq!(r["verdict"], "incomplete", "line {line}: {r}");
        }
    }
    // Duplicates: one audit per distinct name, the same record for each line.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let distinct: BTreeSet<&str> = recs
        .values()
        .filter(|r| r["verdict"] != "error")
        .map(|r| r["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        s["counts"]["audited"].as_u64().unwrap(),
        distinct.len() as u64
    );
    assert_eq!(
        s["counts"]["duplicates"].as_u64().unwrap(),
        (want.len() - bad.len() - distinct.len()) as u64
    );
    assert_eq!(s["total"]["records"].as_u64().unwrap(), want.len() as u64);
    assert_eq!(s["total"]["errors"].as_u64().unwrap(), bad.len() as u64);
    assert_eq!(
        s["total"]["verdicts"]["incomplete"].as_u64().unwrap(),
        (want.len() - bad.len()) as u64
    );
    assert_eq!(s["complete"], true);
    assert_eq!(s["top_codes"][0][0], "mx-lookup-failed");
    // IDN, case, trailing dot and trailing comment are normalised.
    assert!(
        distinct.contains("xn--bcher--bua.example")
            || distinct.iter().any(|d| d.starts_with("xn--"))
    );
    assert!(distinct.iter().any(|d| d.starts_with("name-")));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("scan: verdicts: incomplete"), "{stderr}");
    assert!(
        stderr.contains("most frequent findings: mx-lookup-failed"),
        "{stderr}"
    );
}

/// Issue 9: a 10^5-line list of mostly garbage is fast: invalid lines cost no
/// network time, valid names that fail fail fast.
#[test]
fn a_hundred_thousand_garbage_mixed_lines_are_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut list = Vec::new();
    let mut want = 0u64;
    for i in 0..100_000u64 {
        match i % 10 {
            0 => list.extend_from_slice(format!("ok{i}.example\n").as_bytes()),
            1 => list.extend_from_slice(b"# comment\n"),
            2 => list.extend_from_slice(b"\xc3\x28\xa0\xa1 garbage\n"),
            3 => list.extend_from_slice(format!("{}\n", "y".repeat(2000)).as_bytes()),
            _ => list.extend_from_slice(format!("not a domain {i}\n").as_bytes()),
        }
        if i % 10 != 1 {
            want += 1;
        }
    }
    let input = write(dir.path(), "big.txt", &list);
    let out = dir.path().join("big.ndjson");
    let t0 = std::time::Instant::now();
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--concurrency",
        "256",
    ]));
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let n = std::fs::read_to_string(&out).unwrap().lines().count() as u64;
    assert_eq!(n, want);
    assert!(took.as_secs() < 60, "took {took:?}");
    eprintln!("10^5 lines (10^4 failing names) in {took:?}");
}

#[test]
fn stdin_csv_and_json_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (list, want, _) = mixed_list(300);
    for format in ["csv", "json", "ndjson"] {
        let mut c = scan(&["-", "--format", format]);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&list).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{format}: {}", text(&o));
        let lines: BTreeSet<u64> = match format {
            "csv" => {
                let mut r = csv::Reader::from_reader(o.stdout.as_slice());
                let h = r.headers().unwrap().clone();
                let li = h.iter().position(|c| c == "line").unwrap();
                r.records()
                    .map(|rec| rec.unwrap()[li].parse().unwrap())
                    .collect()
            }
            "json" => {
                let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_eq!(doc["run"]["command"], "scan");
                assert_eq!(
                    doc["summary"]["domains"].as_u64().unwrap(),
                    want.len() as u64
                );
                doc["domains"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["line"].as_u64().unwrap())
                    .collect()
            }
            _ => {
                let p = write(dir.path(), "stdin.ndjson", &o.stdout);
                records(&p).keys().copied().collect()
            }
        };
        assert_eq!(lines, want, "{format}");
    }
}

#[test]
fn shards_are_disjoint_complete_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let (list, want, _) = mixed_list(1500);
    let input = write(dir.path(), "list.txt", &list);
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut first_run: Vec<BTreeSet<u64>> = Vec::new();
    for k in 0..3u64 {
        let out = dir.path().join(format!("out-{k}.ndjson"));
        let shard = format!("{k}/3");
        let o = run(scan(&[
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--shard",
            &shard,
        ]));
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let lines: BTreeSet<u64> = records(&out).keys().copied().collect();
        assert!(
            lines.len() > want.len() / 5,
            "shard {k} is too small: {}",
            lines.len()
        );
        for l in &lines {
            assert!(seen.insert(*l, k).is_none(), "line {l} in two shards");
        }
        first_run.push(lines);
    }
    let all: BTreeSet<u64> = seen.keys().copied().collect();
    assert_eq!(all, want, "the shards together cover every line");
    // Same split again, also through the scheduler's variables.
    let out = dir.path().join("again.ndjson");
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--shard",
        "auto",
    ])
    .env("JOB_COMPLETION_INDEX", "1")
    .env("JOB_COMPLETIONS", "3"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let again: BTreeSet<u64> = records(&out).keys().copied().collect();
    assert_eq!(again, first_run[1]);
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--shard",
        "auto",
    ])
    .env("SLURM_ARRAY_TASK_ID", "7")
    .env("SLURM_ARRAY_TASK_MIN", "5")
    .env("SLURM_ARRAY_TASK_COUNT", "3"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let again: BTreeSet<u64> = records(&out).keys().copied().collect();
    assert_eq!(again, first_run[2]);
}

#[test]
fn resume_completes_a_cut_off_output_and_refuses_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (list, want, _) = mixed_list(1200);
    let input = write(dir.path(), "list.txt", &list);
    let out = dir.path().join("out.ndjson");
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let full = std::fs::read(&out).unwrap();
    let reference = records(&out);
    let sidecar = dir.path().join("out.ndjson.scan.json");
    let sc: serde_json::Value = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(sc["status"], "complete");

    // As a kill leaves it: whole records, then half a record.
    for cut in [
        0usize,
        1,
        full.len() / 3,
        full.len() / 2 + 7,
        full.len() - 2,
    ] {
        std::fs::write(&out, &full[..cut]).unwrap();
        let o = run(scan(&[
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ]));
        assert_eq!(o.status.code(), Some(0), "cut {cut}: {}", text(&o));
        let got = records(&out);
        assert_eq!(
            got.keys().copied().collect::<BTreeSet<u64>>(),
            want,
            "cut {cut}"
        );
        for (l, r) in &got {
            assert_eq!(r["domain"], reference[l]["domain"], "cut {cut} line {l}");
            assert_eq!(r["verdict"], reference[l]["verdict"], "cut {cut} line {l}");
        }
    }
    // A finished scan resumed does nothing and reports the whole output.
    let summary = dir.path().join("s.json");
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
        "--summary",
        summary.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["this_run"]["records"], 0);
    assert_eq!(s["total"]["records"].as_u64().unwrap(), want.len() as u64);

    // Other settings: refused, with what differs; the output is untouched.
    let before = std::fs::read(&out).unwrap();
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
        "--days",
        "7",
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("other settings") && err.contains("days"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    // Another input: refused.
    let other = write(dir.path(), "other.txt", b"other.example\n");
    let o = run(scan(&[
        other.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not the input"));
    // No sidecar: refused.
    std::fs::remove_file(&sidecar).unwrap();
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // --resume on a first run just starts (a restarted job can always pass it).
    let fresh = dir.path().join("fresh.ndjson");
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        fresh.to_str().unwrap(),
        "--resume",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(records(&fresh).len(), want.len());
}

#[test]
fn resume_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (list, want, _) = mixed_list(600);
    let input = write(dir.path(), "list.txt", &list);
    let out = dir.path().join("out.csv");
    let args = [
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--format",
        "csv",
    ];
    let o = run(scan(&args));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let full = std::fs::read(&out).unwrap();
    std::fs::write(&out, &full[..full.len() * 2 / 3 + 3]).unwrap();
    let mut resume_args = args.to_vec();
    resume_args.push("--resume");
    let o = run(scan(&resume_args));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut r = csv::Reader::from_path(&out).unwrap();
    let li = r
        .headers()
        .unwrap()
        .iter()
        .position(|c| c == "line")
        .unwrap();
    let mut lines = BTreeSet::new();
    for rec in r.records() {
        let l: u64 = rec.unwrap()[li].parse().unwrap();
        assert!(lines.insert(l), "line {l} twice");
    }
    assert_eq!(lines, want);
}

#[test]
fn skip_list_domains_are_not_contacted() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "list.txt",
        b"a.optout.example\nkeep.example\noptout.example\n",
    );
    let skip = write(
        dir.path(),
        "skip.txt",
        b"# opt-out\noptout.example\n192.0.2.0/24\n",
    );
    let out = dir.path().join("out.ndjson");
    let o = run(scan(&[
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--skip",
        skip.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r = records(&out);
    assert_eq!(r[&1]["verdict"], "error");
    assert!(r[&1]["error"].as_str().unwrap().contains("skip list"));
    assert_eq!(r[&2]["verdict"], "incomplete");
    assert_eq!(r[&3]["verdict"], "error");
    let bad = write(dir.path(), "bad-skip.txt", b"10.0.0.0/99\n");
    let o = run(scan(&[
        input.to_str().unwrap(),
        "--skip",
        bad.to_str().unwrap(),
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "list.txt", b"a.example\n");
    let i = input.to_str().unwrap();
    for args in [
        vec![i, "--format", "text"],
        vec![i, "--resume"],
        vec![i, "--shard", "3/3"],
        vec![i, "--shard", "auto"],
        vec![i, "--format", "json", "--resume", "-o", "/tmp/x.json"],
        vec!["/nonexistent/list.txt"],
        vec![i, "--concurrency", "0"],
        vec![i, "--rate", "-1"],
    ] {
        let o = run(scan(&args)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_ARRAY_TASK_ID"));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(!o.stderr.is_empty());
    }
}

#[test]
fn fail_on_incomplete_is_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "list.txt", b"a.example\n");
    let o = run(scan(&[input.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(scan(&[input.to_str().unwrap(), "--fail-on-incomplete"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}
