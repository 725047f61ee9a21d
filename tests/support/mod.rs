//! Shared by the integration tests that run against the real test bed
//! (`scripts/testbed`: Knot, NSD, Unbound and Postfix in a network namespace).
//!
//! The bed is started once per test binary if it is not running. Where the
//! machine cannot create namespaces (not root), tests say so loudly and skip,
//! unless `DANE_TESTBED_REQUIRED=1` (set by CI), which turns the skip into a
//! failure so that CI can never pass without having run them.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const NETNS: &str = "dane-testbed";

/// The bed's namespace: `DANE_TESTBED_NETNS` as for scripts/testbed (a
/// second, independent bed), else [`NETNS`].
/// Per-phase timeouts for `check` and `preflight` runs against the bed:
/// long enough for its slow scenarios, short enough for its silent ones.
pub const TIMEOUTS: [&str; 6] = [
    "--dns-timeout",
    "2",
    "--connect-timeout",
    "5",
    "--smtp-timeout",
    "5",
];

pub fn netns() -> String {
    std::env::var("DANE_TESTBED_NETNS").unwrap_or_else(|_| NETNS.to_string())
}

pub struct Testbed {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
}

impl Testbed {
    /// The running bed, brought up if needed.
    pub fn get() -> Option<&'static Testbed> {
        static BED: OnceLock<Option<Testbed>> = OnceLock::new();
        BED.get_or_init(start).as_ref()
    }

    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from {}/env", self.dir.display()))
    }

    pub fn resolver(&self) -> &str {
        self.var("RESOLVER")
    }

    pub fn trust_anchor(&self) -> &str {
        self.var("TRUST_ANCHOR_DNSKEY")
    }

    /// A command that runs `program` inside the bed's network namespace.
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &netns()]).arg(program.as_ref());
        c
    }

    /// Moves the calling thread into the bed's network namespace, so that
    /// sockets it opens afterwards (e.g. from a current-thread tokio runtime
    /// built on it) live there. Other threads are not affected.
    pub fn enter_thread(&self) {
        let path = format!("/var/run/netns/{}", netns());
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn skip(why: &str) -> Option<Testbed> {
    if std::env::var("DANE_TESTBED_REQUIRED").as_deref() == Ok("1") {
        panic!("the test bed is required (DANE_TESTBED_REQUIRED=1) but unavailable: {why}");
    }
    eprintln!("\n*** SKIPPING test-bed tests: {why} ***\n");
    None
}

fn start() -> Option<Testbed> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("network namespaces need root");
    }
    let script = repo().join("scripts/testbed");
    if !script.exists() {
        return skip("scripts/testbed is missing");
    }
    let up = Command::new(&script)
        .arg("status")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !up {
        let out = Command::new(&script).arg("up").output().ok()?;
        if !out.status.success() {
            return skip(&format!(
                "`scripts/testbed up` failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let dir = PathBuf::from(
        std::env::var("DANE_TESTBED_DIR").unwrap_or_else(|_| "/tmp/dane-testbed".into()),
    );
    let text = std::fs::read_to_string(dir.join("env")).ok()?;
    let env = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    Some(Testbed { dir, env })
}

/// One row of `testdata/testbed/scenarios.tsv`.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub domain: String,
    pub meaning: String,
    pub verdict: String,
    pub codes: Vec<String>,
}

pub fn scenarios() -> Vec<Scenario> {
    let path = repo().join("testdata/testbed/scenarios.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let mut codes: Vec<String> = f
                .get(3)
                .unwrap_or(&"")
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect();
            codes.sort();
            Scenario {
                domain: f[0].trim().to_string(),
                meaning: f.get(1).unwrap_or(&"").to_string(),
                verdict: f.get(2).unwrap_or(&"").trim().to_string(),
                codes,
            }
        })
        .collect()
}
