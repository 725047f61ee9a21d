//! `dane-audit scan [FILE|-]`: the bulk audit of a domain list, one record
//! per input line, streamed, polite, resumable, shardable.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::collect::SharingStats;
use crate::report::{self, Format, OUTPUT_SCHEMA_VERSION, RunInfo, TOOL};
use crate::scan::fd_limit;
use crate::scan::resume::{self, DoneLines, Sidecar};
use crate::scan::{Counts, EvalSpec, Job, Shard, Tally};

use super::exit::{CliError, Exit};
use super::net_args::NetArgs;
use super::polite_args::{PoliteArgs, read_skip_list, shared_collector};
use super::report_args::{EvalArgs, ReportArgs, now};

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Domain list, one per line (`#` comments); `-` or nothing reads standard input.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub eval: EvalArgs,
    /// Domains audited at once (their hosts and addresses run in parallel
    /// too). 1024 by default: at 50 ms of round trip it audits 1.7 times as
    /// many domains per second as 128 through a resolver, and more in
    /// flight bought nothing more in the benchmark but memory (README,
    /// "Latency, loss and dead servers").
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub concurrency: usize,
    /// Domains started per second, all together (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub rate: f64,
    #[command(flatten)]
    pub polite: PoliteArgs,
    /// Continue the scan in OUT (-o): lines it holds are not done again; a
    /// record cut off by a kill is redone. Refused if the settings differ.
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// Scan only shard K of N (K counts from 0), split by a stable hash of
    /// the domain; `auto` reads a Kubernetes Indexed Job (JOB_COMPLETION_INDEX,
    /// JOB_COMPLETIONS) or a Slurm job array (SLURM_ARRAY_TASK_*).
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<String>,
    /// Also write the final summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// No progress line (it is shown only on a terminal anyway).
    #[arg(short, long)]
    pub quiet: bool,
    /// Finished domains kept to answer duplicate lines; a duplicate further
    /// back is audited again.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub dedup_window: usize,
    /// Seconds that audits in flight may still finish after Ctrl-C (a second Ctrl-C stops at once).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub grace: u64,
}

/// `--concurrency`, or less if the open-files `limit` cannot hold that many
/// domains' sockets: then said on stderr, since domains failing with EMFILE
/// would look like unreachable servers.
fn in_flight(concurrency: usize, limit: Option<u64>) -> usize {
    let max = fd_limit::max_in_flight(limit);
    if concurrency > max {
        eprintln!(
            "dane-audit: --concurrency {concurrency} lowered to {max}: the open-files limit is {} \
             (raise the hard limit, e.g. ulimit -Hn, for more)",
            limit.unwrap_or_default()
        );
    }
    concurrency.min(max)
}

/// Default of `--dns-cache` (shared with `watch`).
pub use super::polite_args::DNS_CACHE;

/// The settings that decide what a record says (the resume guard).
#[derive(Serialize)]
struct RecordSettings<'a> {
    tool_version: &'static str,
    schema_version: u32,
    format: &'static str,
    shard: Option<String>,
    resolvers: &'a [String],
    trust_anchor: String,
    families: Vec<&'static str>,
    nameserver_checks: bool,
    smtp: bool,
    all_hosts: bool,
    smtp_port: u16,
    key_types: String,
    at: Option<&'a str>,
    days: Option<u32>,
    sig_warn_days: u32,
    accept_nexthop_name: bool,
    skip_list_sha256: Option<String>,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Text => "text",
        Format::Nagios => "nagios",
    }
}

fn file_sha256(path: &Path) -> Result<String, CliError> {
    std::fs::read(path)
        .map(|b| hex::encode(Sha256::digest(&b)))
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

fn stamp() -> String {
    let t = now();
    time::OffsetDateTime::from_unix_timestamp(t.0)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.0.to_string())
}

struct Input {
    reader: Box<dyn BufRead + Send>,
    size: Option<u64>,
    path: Option<PathBuf>,
    shown: String,
}

fn open_input(arg: &Option<PathBuf>) -> Result<Input, CliError> {
    match arg {
        None => Ok(stdin_input()),
        Some(p) if p.as_os_str() == "-" => Ok(stdin_input()),
        Some(p) => {
            let f = File::open(p)
                .map_err(|e| CliError::usage(format!("cannot read {}: {e}", p.display())))?;
            let meta = f.metadata().ok();
            let size = meta.filter(|m| m.is_file()).map(|m| m.len());
            Ok(Input {
                reader: Box::new(BufReader::with_capacity(256 * 1024, f)),
                size,
                path: size.is_some().then(|| p.clone()),
                shown: p.display().to_string(),
            })
        }
    }
}

fn stdin_input() -> Input {
    Input {
        reader: Box::new(BufReader::with_capacity(64 * 1024, std::io::stdin())),
        size: None,
        path: None,
        shown: "-".into(),
    }
}

/// Everything printed and saved at the end.
#[derive(Serialize)]
struct ScanSummary<'a> {
    tool: &'static str,
    version: &'static str,
    command: &'static str,
    input: &'a str,
    output: Option<String>,
    shard: Option<String>,
    interrupted: bool,
    /// Every input line has its record in the output.
    complete: bool,
    elapsed_s: f64,
    /// Records written by this run per second.
    records_per_s: f64,
    /// This run and, with --resume, what OUT already held.
    total: &'a Tally,
    this_run: &'a Tally,
    counts: &'a Counts,
    caches: SharingStats,
    /// DNS questions this run sent (to the resolvers or, with --iterative,
    /// to the servers on the way down, and to servers asked directly).
    dns_queries: u64,
    top_codes: Vec<(String, u64)>,
    exit_code: u8,
}

pub async fn run(args: &ScanArgs) -> Result<Exit, CliError> {
    let format = checked_format(args)?;
    let limits = args.polite.limits();
    limits.check()?;
    // Before the first socket: the DNS and SMTP layers size their bounds
    // on sockets by the limit they find.
    let open_files = fd_limit::raise_to_hard();
    let shard = args
        .shard
        .as_deref()
        .map(|s| Shard::parse(s, |k| std::env::var(k).ok()))
        .transpose()
        .map_err(CliError::usage)?;
    let (skip, skip_hash) = read_skip_list(args.polite.skip.as_deref())?;
    // Validates --at/--days (the time itself is taken per domain).
    let opts = args.eval.options()?;
    let eval = EvalSpec {
        at: args.eval.at.as_ref().map(|_| opts.now),
        days: args.eval.days,
        sig_warn_days: args.eval.sig_warn_days,
        accept_nexthop_name: args.eval.accept_nexthop_name,
    };
    let input = open_input(&args.input)?;
    let dns = args
        .net
        .dns_skipping(&skip, limits.dns_cache.max(16))
        .await?;
    let smtp = args.net.smtp_paced(limits.per_ip_rate)?;
    let info = dns.collector_info();
    let config = record_settings(args, format, shard, &info, skip_hash)?;
    let config_hash = resume::config_hash(&config);

    let out_path = args.report.output.clone();
    let sidecar_path = out_path.as_deref().map(resume::sidecar_path);
    let resumed = match (&out_path, &sidecar_path) {
        (Some(out), Some(sc)) if args.resume => {
            resume_from(args, format, &input, out, sc, &config, &config_hash)?
        }
        _ => Resumed::fresh(),
    };
    let mut sidecar = new_sidecar(&input, config, config_hash, resumed.started_at.clone());
    if let Some(p) = &sidecar_path {
        resume::write_sidecar(p, &sidecar).map_err(|e| CliError::output(p.display(), e))?;
    }

    let run_info = RunInfo {
        command: "scan".into(),
        started_at: now(),
        evaluated_at: opts.now,
        resolvers: info.resolvers.clone(),
        trust_anchor: info.trust_anchor.clone(),
        families: args.net.family_names(),
        fail_on: Some(args.report.fail_on_name()),
    };
    let mut sink = report::sink(
        format,
        open_output(out_path.as_deref(), resumed.append)?,
        false,
    );
    if !resumed.append {
        sink.begin(&run_info)?;
    }

    let collector = Arc::new(shared_collector(
        dns,
        smtp,
        args.net.probe_policy(),
        &limits,
        skip,
    ));
    let job = Job {
        input: input.reader,
        input_size: input.size,
        concurrency: in_flight(args.concurrency, open_files),
        domain_rate: args.rate,
        dedup_window: args.dedup_window,
        shard,
        done: resumed.done,
        eval,
        grace: Duration::from_secs(args.grace),
        progress: !args.quiet && std::io::stderr().is_terminal(),
    };
    let interrupts = listen_for_interrupts(args.grace);
    let result = crate::scan::run(job, Arc::clone(&collector), sink.as_mut(), interrupts).await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            // The run's own error is what matters; the sidecar is best effort.
            let _ = mark_sidecar(&mut sidecar, sidecar_path.as_deref(), "failed");
            return Err(e.into());
        }
    };
    let mut total = resumed.previous;
    total.merge(&result.tally);
    sink.end(&total.report_summary())?;
    drop(sink);

    let complete = !result.interrupted && result.input_error.is_none();
    let status = match (complete, result.interrupted) {
        (true, _) => "complete",
        (false, true) => "interrupted",
        (false, false) => "failed",
    };
    mark_sidecar(&mut sidecar, sidecar_path.as_deref(), status)?;

    let exit = if result.interrupted {
        Exit::Interrupted
    } else if result.input_error.is_some() {
        Exit::Usage
    } else {
        judge(&args.report, &total)
    };
    let secs = result.elapsed.as_secs_f64().max(0.000_001);
    let summary = ScanSummary {
        tool: TOOL.name,
        version: TOOL.version,
        command: "scan",
        input: &input.shown,
        output: out_path.as_ref().map(|p| p.display().to_string()),
        shard: shard.map(|s| s.to_string()),
        interrupted: result.interrupted,
        complete,
        elapsed_s: (secs * 1000.0).round() / 1000.0,
        records_per_s: ((result.tally.records as f64 / secs) * 10.0).round() / 10.0,
        total: &total,
        this_run: &result.tally,
        counts: &result.counts,
        caches: collector.stats(),
        dns_queries: collector.dns().queries_sent(),
        top_codes: total.top_codes(10),
        exit_code: exit as u8,
    };
    print_summary(&summary, &result);
    if let Some(p) = &args.summary {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        std::fs::write(p, text + "\n").map_err(|e| CliError::output(p.display(), e))?;
    }
    if let Some(e) = &result.input_error {
        return Err(CliError::usage(format!(
            "reading {}: {e} (the lines before were written; --resume continues)",
            input.shown
        )));
    }
    Ok(exit)
}

/// The output format, after the checks that need no I/O.
fn checked_format(args: &ScanArgs) -> Result<Format, CliError> {
    let format = args.report.format.unwrap_or(Format::Ndjson);
    if matches!(format, Format::Text | Format::Nagios) {
        return Err(CliError::usage(
            "scan writes --format ndjson (default), csv or json",
        ));
    }
    if args.resume && format == Format::Json {
        return Err(CliError::usage(
            "--resume needs --format ndjson or csv (a JSON document cannot be appended to)",
        ));
    }
    if args.concurrency == 0 {
        return Err(CliError::usage("--concurrency must be at least 1"));
    }
    if !args.rate.is_finite() || args.rate < 0.0 {
        return Err(CliError::usage(
            "--rate must be a number of at least 0 (0: no limit)",
        ));
    }
    Ok(format)
}

/// The settings that decide what a record says, as the resume guard
/// stores and compares them.
fn record_settings(
    args: &ScanArgs,
    format: Format,
    shard: Option<Shard>,
    info: &crate::core::evidence::CollectorInfo,
    skip_list_sha256: Option<String>,
) -> Result<serde_json::Value, CliError> {
    let trust_anchor = match &args.net.trust_anchor {
        Some(p) => format!("sha256:{}", file_sha256(p)?),
        None => info.trust_anchor.clone(),
    };
    let settings = RecordSettings {
        tool_version: TOOL.version,
        schema_version: OUTPUT_SCHEMA_VERSION,
        format: format_name(format),
        shard: shard.map(|s| s.to_string()),
        resolvers: &info.resolvers,
        trust_anchor,
        families: args.net.family_names(),
        nameserver_checks: !args.net.no_ns_checks,
        smtp: !args.net.no_smtp,
        all_hosts: args.net.all_hosts,
        smtp_port: args.net.smtp_port,
        key_types: args.net.key_types()?.as_string(),
        at: args.eval.at.as_deref(),
        days: args.eval.days,
        sig_warn_days: args.eval.sig_warn_days,
        accept_nexthop_name: args.eval.accept_nexthop_name,
        skip_list_sha256,
    };
    serde_json::to_value(&settings).map_err(CliError::usage)
}

/// What an earlier run left in OUT (`--resume`).
struct Resumed {
    done: DoneLines,
    previous: Tally,
    /// OUT holds records: append to it (and write no header again).
    append: bool,
    started_at: String,
}

impl Resumed {
    fn fresh() -> Resumed {
        Resumed {
            done: DoneLines::default(),
            previous: Tally::default(),
            append: false,
            started_at: stamp(),
        }
    }
}

/// Reads what OUT holds, if it exists, after checking that it was written
/// by `scan` with the same settings from the same input.
fn resume_from(
    args: &ScanArgs,
    format: Format,
    input: &Input,
    out: &Path,
    sc_path: &Path,
    config: &serde_json::Value,
    config_hash: &str,
) -> Result<Resumed, CliError> {
    let exists = std::fs::metadata(out).map(|m| m.len() > 0).unwrap_or(false);
    let sidecar = resume::read_sidecar(sc_path).map_err(CliError::usage)?;
    let sc = match (exists, sidecar) {
        (false, _) => return Ok(Resumed::fresh()),
        (true, None) => {
            return Err(CliError::usage(format!(
                "--resume: {} has no {}: it was not written by `scan` (or the sidecar was \
                 removed), so its settings cannot be checked",
                out.display(),
                sc_path.display()
            )));
        }
        (true, Some(sc)) => sc,
    };
    if sc.config_hash != config_hash {
        return Err(CliError::usage(format!(
            "--resume: {} was written with other settings ({}); run with the same \
             settings or write to a new file",
            out.display(),
            differences(&sc.config, config)
        )));
    }
    if let (Some(want), Some(p)) = (&sc.input_head_sha256, &input.path) {
        let have = resume::head_hash(p, sc.input_head_len)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", p.display())))?;
        if &have != want {
            return Err(CliError::usage(format!(
                "--resume: {} is not the input {} was written from ({})",
                input.shown,
                out.display(),
                sc.input
            )));
        }
    }
    let prev = resume::read_previous(out, format).map_err(CliError::usage)?;
    if prev.cut_bytes > 0 && !args.quiet {
        eprintln!(
            "dane-audit: --resume: dropped a cut-off last record ({} bytes) from {}; its line is done again",
            prev.cut_bytes,
            out.display()
        );
    }
    Ok(Resumed {
        done: prev.done,
        previous: prev.tally,
        append: !prev.empty,
        started_at: sc.started_at,
    })
}

/// The sidecar of this run, `running`, with the hash of the input's head
/// (a file only: standard input cannot be read twice).
fn new_sidecar(
    input: &Input,
    config: serde_json::Value,
    config_hash: String,
    started_at: String,
) -> Sidecar {
    let mut sidecar = Sidecar {
        tool: format!("{} {}", TOOL.name, TOOL.version),
        config_hash,
        config,
        input: input.shown.clone(),
        input_head_sha256: None,
        input_head_len: 0,
        started_at,
        status: "running".into(),
        updated_at: stamp(),
    };
    if let Some(p) = &input.path {
        let len = input.size.unwrap_or(0).min(resume::INPUT_HEAD);
        sidecar.input_head_len = len;
        sidecar.input_head_sha256 = resume::head_hash(p, len).ok();
    }
    sidecar
}

/// Records the run's status in the sidecar, when there is one.
fn mark_sidecar(sidecar: &mut Sidecar, path: Option<&Path>, status: &str) -> Result<(), CliError> {
    sidecar.status = status.into();
    sidecar.updated_at = stamp();
    match path {
        Some(p) => resume::write_sidecar(p, sidecar).map_err(|e| CliError::output(p.display(), e)),
        None => Ok(()),
    }
}

/// OUT (appended to when resuming, else truncated) or standard output.
fn open_output(path: Option<&Path>, append: bool) -> Result<Box<dyn Write>, CliError> {
    Ok(match path {
        Some(p) => {
            let f = File::options()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(p)
                .map_err(|e| CliError::output(p.display(), e))?;
            Box::new(BufWriter::with_capacity(64 * 1024, f))
        }
        None => Box::new(BufWriter::with_capacity(64 * 1024, std::io::stdout())),
    })
}

/// The exit code of the whole output (with --resume, earlier records too).
/// Unlike `check`, incomplete domains are normal in bulk: exit 3 only with
/// `--fail-on-incomplete`.
fn judge(report: &ReportArgs, t: &Tally) -> Exit {
    let policy = report.policy(false);
    let failed = policy
        .fail_on
        .is_some_and(|min| t.worst_determined.is_some_and(|w| w >= min))
        || (policy.require_dane && t.any_not_dane_or_partial);
    if failed {
        Exit::Findings
    } else if t.any_incomplete && policy.fail_on_incomplete {
        Exit::Incomplete
    } else {
        Exit::Ok
    }
}

fn differences(old: &serde_json::Value, new: &serde_json::Value) -> String {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return "unreadable settings".into();
    };
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| {
                v.map(|v| v.to_string()).unwrap_or_else(|| "unset".into())
            };
            format!("{k}: {} then, {} now", show(o.get(k)), show(n.get(k)))
        })
        .collect();
    if diffs.is_empty() {
        "settings hash differs".into()
    } else {
        diffs.join("; ")
    }
}

fn print_summary(s: &ScanSummary<'_>, r: &crate::scan::RunResult) {
    let c = &r.counts;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "scan: {} records in {:.1} s ({}/s): {} domains audited, {} duplicate lines, {} invalid lines, {} skipped",
        s.this_run.records,
        s.elapsed_s,
        s.records_per_s,
        c.audited,
        c.duplicates,
        c.invalid,
        c.skipped
    );
    let _ = writeln!(err, "scan: verdicts: {}", s.total.verdict_counts());
    if !s.top_codes.is_empty() {
        let top: Vec<String> = s
            .top_codes
            .iter()
            .take(5)
            .map(|(c, n)| format!("{c} ({n})"))
            .collect();
        let _ = writeln!(err, "scan: most frequent findings: {}", top.join(", "));
    }
    let h = &s.caches.hosts;
    let p = &s.caches.probes;
    let _ = writeln!(
        err,
        "scan: shared work: {} MX host lookups for {} uses, {} STARTTLS probes for {} uses; {} DNS queries",
        h.misses,
        h.misses + h.hits + h.coalesced,
        p.misses,
        p.misses + p.hits + p.coalesced,
        s.dns_queries
    );
    if c.resumed > 0 || c.other_shard > 0 {
        let _ = writeln!(
            err,
            "scan: {} lines already in the output (--resume), {} lines of other shards",
            c.resumed, c.other_shard
        );
    }
    if r.interrupted {
        let _ = writeln!(
            err,
            "scan: interrupted: {} lines in flight were not written; run again with --resume to finish",
            c.abandoned
        );
    }
}

/// Ctrl-C and SIGTERM (Kubernetes stops pods with it), as messages.
fn listen_for_interrupts(grace: u64) -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut first = true;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if first {
                eprintln!(
                    "\ndane-audit: interrupted: no new domains; finishing those in flight (up to {grace} s, interrupt again to stop now)"
                );
                first = false;
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}
