//! CPU per name of the DNS collector, iterative vs through a resolver
//! (driven by scripts/bench.d/iterative; research/iterative.md §5 method).
//!
//! ```text
//! iterative_bench --names FILE --anchor FILE (--resolver ADDR | --root-hints FILE)
//!                 [--concurrency 200] [--watch PID,PID...]
//! ```
//! Looks up the validated MX RRset of every name twice in one process
//! (pass 1 cold, pass 2 warm), on a tokio runtime with 2 workers, and
//! prints one JSON line per pass: wall time, names/s, this process's CPU
//! (getrusage), the CPU of the watched processes (/proc/PID/stat utime +
//! stime, every thread), and the count of each DNSSEC status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dane_audit::dns::{DnsCollector, DnsConfig, Resolution, TrustAnchorSource};
use futures_util::stream::{self, StreamExt};

fn self_cpu() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn proc_cpu(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            // Fields 14 and 15 (utime, stime) are 12 and 13 after the command.
            let u: f64 = rest.get(11)?.parse().ok()?;
            let st: f64 = rest.get(12)?.parse().ok()?;
            Some((u + st) / hz)
        })
        .sum()
}

fn main() {
    let mut names_file = None;
    let mut anchor = None;
    let mut resolver = None;
    let mut hints = None;
    let mut conc = 200usize;
    let mut watch: Vec<u32> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("option value");
        match a.as_str() {
            "--names" => names_file = Some(PathBuf::from(v())),
            "--anchor" => anchor = Some(PathBuf::from(v())),
            "--resolver" => resolver = Some(v()),
            "--root-hints" => hints = Some(PathBuf::from(v())),
            "--concurrency" => conc = v().parse().expect("number"),
            "--watch" => {
                watch = v()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("pid"))
                    .collect()
            }
            other => panic!("unknown option {other}"),
        }
    }
    let names: Vec<String> = std::fs::read_to_string(names_file.expect("--names"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let mut cfg = DnsConfig {
        trust_anchor: TrustAnchorSource::File(anchor.expect("--anchor")),
        timeout: Duration::from_secs(2),
        nameserver_checks: false,
        ..DnsConfig::default()
    };
    let mode = match (resolver, hints) {
        (Some(r), None) => {
            cfg.resolvers = vec![dane_audit::dns::parse_resolver(&r).expect("resolver address")];
            "resolver"
        }
        (None, Some(h)) => {
            cfg.mode = Resolution::Iterative {
                root_hints: Some(h),
            };
            "iterative"
        }
        _ => panic!("one of --resolver and --root-hints"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = DnsCollector::new(cfg).await.expect("collector");
        for pass in ["cold", "warm"] {
            let (cpu0, w0, t0) = (self_cpu(), proc_cpu(&watch), Instant::now());
            let statuses: Vec<String> = stream::iter(names.iter())
                .map(|n| {
                    let c = c.clone();
                    async move {
                        let l = c.mx(n).await;
                        format!("{:?}/{}", l.meta.outcome, l.meta.dnssec.as_str())
                    }
                })
                .buffer_unordered(conc)
                .collect()
                .await;
            let wall = t0.elapsed().as_secs_f64();
            let (cpu, w) = (self_cpu() - cpu0, proc_cpu(&watch) - w0);
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for s in statuses {
                *counts.entry(s).or_default() += 1;
            }
            let n = names.len() as f64;
            println!(
                "{}",
                serde_json::json!({
                    "mode": mode,
                    "pass": pass,
                    "names": names.len(),
                    "wall_s": wall,
                    "names_per_s": n / wall,
                    "self_cpu_ms_per_name": cpu * 1000.0 / n,
                    "watched_cpu_ms_per_name": w * 1000.0 / n,
                    "total_cpu_ms_per_name": (cpu + w) * 1000.0 / n,
                    "results": counts,
                })
            );
        }
    });
}
