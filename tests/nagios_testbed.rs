//! `check --format nagios` on the test bed: the monitoring-plugin exit
//! codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) and status line.

mod support;

use support::{TIMEOUTS, Testbed};

fn nagios(bed: &Testbed, args: &[&str]) -> (Option<i32>, String) {
    let out = bed
        .command(env!("CARGO_BIN_EXE_dane-audit"))
        .arg("check")
        .args(args)
        .args([
            "--format",
            "nagios",
            "--resolver",
            bed.resolver(),
            "--trust-anchor",
            bed.trust_anchor(),
        ])
        .args(TIMEOUTS)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn plugin_states_and_exit_codes() {
    let Some(bed) = Testbed::get() else { return };
    let cases: &[(&[&str], i32, &str)] = &[
        (&["good-311-211.example"], 0, "DANE OK - "),
        (&["dns-ns-out-of-sync.example"], 1, "DANE WARNING - "),
        (&["dns-tlsa-bogus.example"], 2, "DANE CRITICAL - "),
        (&["dns-mx-lookup-failed.example"], 3, "DANE UNKNOWN - "),
        // Several domains: the worst state; CRITICAL outranks UNKNOWN.
        (
            &["good-311-211.example", "dns-mx-lookup-failed.example"],
            3,
            "DANE UNKNOWN - 1 of 2 unknown",
        ),
        (
            &["dns-mx-lookup-failed.example", "dns-tlsa-bogus.example"],
            2,
            "DANE CRITICAL - 1 of 2 critical",
        ),
        // --require-dane makes a domain without DANE critical.
        (&["dns-tlsa-absent.example"], 0, "DANE OK - "),
        (
            &["dns-tlsa-absent.example", "--require-dane"],
            2,
            "DANE CRITICAL - ",
        ),
        // Usage errors are UNKNOWN, as the guidelines have it.
        (&["not a domain"], 3, "DANE UNKNOWN - "),
        (
            &["good-311-211.example", "--no-such-flag"],
            3,
            "DANE UNKNOWN - ",
        ),
    ];
    for (args, code, head) in cases {
        let (got, out) = nagios(bed, args);
        assert_eq!(got, Some(*code), "{args:?}: {out}");
        let first = out.lines().next().unwrap_or_default();
        assert!(first.starts_with(head), "{args:?}: {out}");
        if !first.contains("invalid arguments") && !first.contains("not allowed") {
            let (_, perf) = first
                .split_once(" | ")
                .unwrap_or_else(|| panic!("no perfdata: {first}"));
            for p in perf_items(perf) {
                let (label, value) = p.rsplit_once('=').unwrap();
                assert!(!label.is_empty() && value.ends_with(";;;;"), "{p}");
                value.trim_end_matches(";;;;").parse::<f64>().unwrap();
            }
            assert_eq!(first.matches('|').count(), 1, "{first}");
        }
    }
}

/// Perfdata items, split at spaces outside single-quoted labels.
fn perf_items(perf: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut quoted = false;
    for c in perf.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        items.last_mut().unwrap().push(c);
    }
    items.retain(|i| !i.is_empty());
    items
}
