//! `dane-audit preflight DOMAIN --cert NEW.pem`: is it safe to deploy NEW now?
//!
//! Gathers the evidence (MX hosts, their TLSA RRset through the resolver and
//! from every authoritative server address, the chains served now), asks
//! the core (`core::preflight`) for a verdict per host, prints it, and
//! exits 0 (safe), 4 (wait), 1 (unsafe) or 3 (could not determine). With
//! `--wait` it polls until the verdict is `safe` or `--max-wait` runs out.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::collect::Collector;
use crate::core::cert::{CertInfo, PemItem, read_pem_or_der};
use crate::core::evidence::{Evidence, Outcome, SmtpProbe, Timestamp};
use crate::core::preflight::{self, CandidateRecord, Report, State, Verdict};
use crate::core::tlsa::{TlsaRdata, parse_zone_line};
use crate::input::normalize_domain;

use super::exit::{CliError, Exit};
use super::net_args::NetArgs;
use super::report_args::now;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PreflightFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exit codes: 0 safe to deploy now; 4 not yet (wait: the report says until when); \
1 unsafe (deploying now breaks mail from DANE senders, or it fails already); \
2 usage or input error; 3 could not determine (DNS failure, SMTP unreachable).")]
pub struct PreflightArgs {
    /// The mail domain whose MX hosts will serve the new certificate.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// The new certificate (PEM or DER), optionally followed by its chain
    /// (a full-chain file) and preceded by its key (a Postfix chain file).
    #[arg(long, value_name = "NEW.pem")]
    pub cert: PathBuf,
    /// The CA certificates the server will send with NEW (PEM), leaf's issuer first.
    #[arg(long, value_name = "CHAIN.pem")]
    pub chain: Option<PathBuf>,
    /// NEW's private key: checked to belong to the certificate.
    #[arg(long, value_name = "NEW.key")]
    pub key: Option<PathBuf>,
    /// Check this host only (repeatable), instead of every MX host.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// A candidate TLSA record not yet published, 'U S M DATA' (repeatable):
    /// would this RRset authenticate both the live certificate and NEW?
    #[arg(long = "tlsa", value_name = "'U S M DATA'")]
    pub tlsa: Vec<String>,
    /// Candidate TLSA records as zone-file lines (owner names select the host).
    #[arg(long, value_name = "FILE")]
    pub tlsa_file: Option<PathBuf>,
    /// Extra time on top of the TLSA TTL, for resolvers that keep records longer.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub margin: u64,
    /// Remember when NEW's record was first seen on every server (JSON, written atomically).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Assert that NEW's record was on every server before TIME (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub published_before: Option<String>,
    /// Poll until it is safe (progress on a terminal), or --max-wait runs out.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after DUR (e.g. 90s, 30m, 2h, 1d).
    #[arg(long, value_name = "DUR", requires = "wait", value_parser = parse_duration)]
    pub max_wait: Option<u64>,
    /// Seconds between polls with --wait.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration, hide = true)]
    pub poll_interval: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PreflightFormat::Text)]
    pub format: PreflightFormat,
    /// Also accept the domain itself as a DANE-TA certificate name (RFC 7672 §3.2.3 local policy).
    #[arg(long)]
    pub accept_nexthop_name: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Default for `--max-wait`.
const MAX_WAIT_DEFAULT: u64 = 24 * 3600;
/// With `--wait`, SMTP is probed again at most this often (and always
/// before `safe` is declared): a long wait must not hammer port 25.
const REPROBE_SECS: u64 = 300;

/// Parses `90`, `90s`, `15m`, `2h`, `1d`, `1h30m` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "{s:?} is not a duration: use e.g. 90s, 30m, 1h, 1d"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration: use e.g. 90s, 30m, 1h, 1d"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!(
            "{s:?} is not a duration: a number needs a unit (s, m, h, d)"
        ));
    }
    Ok(total)
}

/// NEW as read from `--cert` (and `--chain`, `--key`).
struct NewCert {
    chain: Vec<CertInfo>,
    recommended: Vec<TlsaRdata>,
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

fn certs_of(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CliError> {
    let items =
        read_pem_or_der(bytes).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    let certs: Vec<Vec<u8>> = items
        .into_iter()
        .filter_map(|i| match i {
            PemItem::Cert(d) => Some(d),
            PemItem::PublicKey(_) => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CliError::usage(format!(
            "{}: no certificate found (a public key alone is not enough: DANE-TA needs the certificate)",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_new(args: &PreflightArgs) -> Result<NewCert, CliError> {
    let cert_bytes = read(&args.cert)?;
    let mut ders = certs_of(&args.cert, &cert_bytes)?;
    if let Some(p) = &args.chain {
        let bytes = read(p)?;
        for d in certs_of(p, &bytes)? {
            if !ders.contains(&d) {
                ders.push(d);
            }
        }
    }
    let chain: Vec<CertInfo> = ders.iter().map(|d| CertInfo::parse(d)).collect();
    // The key: --key, or one in the certificate file itself (Postfix chain files).
    let key = match &args.key {
        Some(p) => Some((p.clone(), read(p)?, true)),
        None => Some((args.cert.clone(), cert_bytes.clone(), false)),
    };
    if let Some((path, bytes, required)) = key {
        check_key(&path, &bytes, &chain[0], required, &args.cert)?;
    }
    let items: Vec<PemItem> = ders.iter().cloned().map(PemItem::Cert).collect();
    let recommended = super::tlsa::RECOMMENDED
        .iter()
        .filter_map(|(u, s, m)| super::tlsa::record(&items, *u, *s, *m).ok())
        .collect();
    Ok(NewCert { chain, recommended })
}

/// Checks that a private key belongs to NEW (same public key).
fn check_key(
    path: &Path,
    bytes: &[u8],
    leaf: &CertInfo,
    required: bool,
    cert: &Path,
) -> Result<(), CliError> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let key = match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(k) => k,
        Err(_) if !required => return Ok(()),
        Err(_) => PrivateKeyDer::try_from(bytes.to_vec())
            .map_err(|_| CliError::usage(format!("{}: no private key found", path.display())))?,
    };
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        CliError::usage(format!(
            "{}: the private key cannot be used: {e}",
            path.display()
        ))
    })?;
    if let (Some(spki), Some(want)) = (signer.public_key(), leaf.spki.as_deref())
        && spki.as_ref() != want
    {
        return Err(CliError::usage(format!(
            "{} does not belong to the certificate in {} (the public keys differ)",
            path.display(),
            cert.display()
        )));
    }
    Ok(())
}

/// The candidate RRset from `--tlsa` and `--tlsa-file`.
fn load_candidate(args: &PreflightArgs) -> Result<Option<Vec<CandidateRecord>>, CliError> {
    if args.tlsa.is_empty() && args.tlsa_file.is_none() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for t in &args.tlsa {
        let rdata: TlsaRdata = t
            .parse()
            .map_err(|e| CliError::usage(format!("--tlsa {t:?}: {e}")))?;
        out.push(CandidateRecord { owner: None, rdata });
    }
    if let Some(p) = &args.tlsa_file {
        let bytes = read(p)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| CliError::usage(format!("{}: not UTF-8 text", p.display())))?;
        let found = parse_tlsa_file(&text)
            .map_err(|(line, e)| CliError::usage(format!("{}:{line}: {e}", p.display())))?;
        if found.is_empty() {
            return Err(CliError::usage(format!(
                "{}: no TLSA record found (zone-file lines such as `_25._tcp.mx.example.org. IN TLSA 3 1 1 <hex>`)",
                p.display()
            )));
        }
        out.extend(found);
    }
    Ok(Some(out))
}

/// Zone-file lines: comments, `$` directives, other record types and
/// parenthesised continuations are handled; a TLSA line that does not parse
/// is an error with its line number.
pub fn parse_tlsa_file(text: &str) -> Result<Vec<CandidateRecord>, (usize, String)> {
    let mut out = Vec::new();
    let mut joined = String::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or("");
        if depth == 0 {
            joined.clear();
            start = i + 1;
        }
        for c in line.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                c => joined.push(c),
            }
        }
        joined.push(' ');
        if depth > 0 {
            continue;
        }
        let l = joined.trim();
        if l.is_empty() || l.starts_with('$') {
            continue;
        }
        match parse_zone_line(l) {
            Ok((owner, rdata)) => out.push(CandidateRecord { owner, rdata }),
            Err(crate::core::tlsa::TlsaParseError::NotTlsa(_)) => {}
            Err(e) => return Err((start, e.to_string())),
        }
    }
    if depth > 0 {
        return Err((start, "unbalanced parentheses".into()));
    }
    Ok(out)
}

fn read_state(path: &Path) -> Result<State, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(State::default()),
        Ok(text) => {
            let s: State = serde_json::from_str(&text).map_err(|e| {
                CliError::usage(format!(
                    "{} is not a preflight state file: {e}",
                    path.display()
                ))
            })?;
            if s.schema_version != preflight::STATE_SCHEMA_VERSION {
                return Err(CliError::usage(format!(
                    "{}: state schema version {} is not supported (this build writes {})",
                    path.display(),
                    s.schema_version,
                    preflight::STATE_SCHEMA_VERSION
                )));
            }
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(CliError::usage(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the state next to its final name, then renames it into place,
/// so a reader (or a crash) never sees half a file.
fn write_state(path: &Path, state: &State) -> Result<(), CliError> {
    let err = |e: std::io::Error| CliError::usage(format!("cannot write {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(state).map_err(|e| CliError::usage(e.to_string()))?;
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Everything checked before any network work: a usage error costs nothing.
struct Prepared {
    domain: String,
    hosts: Vec<String>,
    new: NewCert,
    candidate: Option<Vec<CandidateRecord>>,
    published_before: Option<Timestamp>,
    state: State,
}

fn prepare(args: &PreflightArgs) -> Result<Prepared, CliError> {
    let domain = normalize_domain(&args.domain).map_err(|e| CliError::usage(e.to_string()))?;
    let hosts = args
        .hosts
        .iter()
        .map(|h| normalize_domain(h).map_err(|e| CliError::usage(format!("--host: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let new = load_new(args)?;
    let candidate = load_candidate(args)?;
    let published_before = match &args.published_before {
        None => None,
        Some(t) => {
            let ts = Timestamp::parse(t).ok_or_else(|| {
                CliError::usage(format!(
                    "--published-before {t:?} is not a time: use RFC 3339 (2026-05-01T12:00:00Z) or Unix seconds"
                ))
            })?;
            if ts > now() {
                return Err(CliError::usage(format!(
                    "--published-before {t:?} is in the future"
                )));
            }
            Some(ts)
        }
    };
    let state = match &args.state {
        Some(p) => read_state(p)?,
        None => State::default(),
    };
    Ok(Prepared {
        domain,
        hosts,
        new,
        candidate,
        published_before,
        state,
    })
}

/// DNS evidence of the domain, reduced to the hosts asked for.
async fn collect_dns(
    c: &Collector,
    domain: &str,
    hosts: &[String],
    notes: &mut Vec<String>,
) -> Result<Evidence, CliError> {
    let mut ev = c.dns.collect(domain).await;
    if hosts.is_empty() {
        if ev.mx.meta.outcome == Outcome::NxDomain {
            return Err(CliError::usage(format!(
                "{domain} does not exist (NXDOMAIN): no mail host to check"
            )));
        }
        if ev
            .mx
            .records
            .iter()
            .any(|r| r.exchange.trim_end_matches('.').is_empty())
        {
            return Err(CliError::usage(format!(
                "{domain} publishes a null MX (it accepts no mail): no mail host to check; name one with --host"
            )));
        }
        return Ok(ev);
    }
    let mut picked = Vec::new();
    for name in hosts {
        match ev.hosts.iter().find(|h| &h.name == name) {
            Some(h) => picked.push(h.clone()),
            None => {
                if ev.mx.meta.outcome != Outcome::Failed {
                    notes.push(format!("{name} is not an MX host of {domain}"));
                }
                picked.push(c.dns.host(name, None).await);
            }
        }
    }
    ev.hosts = picked;
    Ok(ev)
}

/// SMTP probes per host, kept across polls (`--wait`).
#[derive(Default)]
struct Probes {
    by_host: HashMap<String, Vec<SmtpProbe>>,
    at: Option<Instant>,
}

impl Probes {
    async fn fill(&mut self, c: &Collector, ev: &mut Evidence, fresh: bool) {
        let stale = fresh
            || self
                .at
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(REPROBE_SECS));
        let todo: Vec<usize> = ev
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                stale
                    || match self.by_host.get(&h.name) {
                        None => true,
                        // Probes of other addresses, or ones that did not reach TLS:
                        // ask again.
                        Some(p) => {
                            let want: Vec<_> = h.a.records.iter().chain(&h.aaaa.records).collect();
                            want.len() != p.len()
                                || want.iter().any(|ip| !p.iter().any(|x| x.address == **ip))
                                || p.iter().any(|x| !crate::core::smtp::completed_tls(x))
                        }
                    }
            })
            .map(|(i, _)| i)
            .collect();
        let results =
            futures_util::future::join_all(todo.iter().map(|i| c.probe_host(&ev.hosts[*i]))).await;
        for (i, probes) in todo.iter().zip(results) {
            self.by_host.insert(ev.hosts[*i].name.clone(), probes);
        }
        if stale {
            self.at = Some(Instant::now());
        }
        for h in &mut ev.hosts {
            h.smtp = self.by_host.get(&h.name).cloned().unwrap_or_default();
        }
    }
}

pub async fn run(args: &PreflightArgs) -> Result<Exit, CliError> {
    let mut p = prepare(args)?;
    let mut collector = args.net.collector().await?;
    // The live certificate matters on every MX host, with or without TLSA.
    collector.all_hosts = true;
    let started = Instant::now();
    let deadline = args
        .wait
        .then(|| started + Duration::from_secs(args.max_wait.unwrap_or(MAX_WAIT_DEFAULT)));
    let mut probes = Probes::default();
    let progress = Progress::new(args.wait && std::io::stderr().is_terminal());
    let mut last_line = String::new();
    let mut round = 0u32;
    let report = loop {
        round += 1;
        if round > 1 {
            collector.dns.forget_answers();
        }
        let (mut report, next) = decide(args, &p, &collector, &mut probes, false).await?;
        // Never declare `safe` on SMTP probes from an earlier round.
        if report.verdict == Verdict::Safe && round > 1 {
            (report, _) = decide(args, &p, &collector, &mut probes, true).await?;
        }
        if let Some(path) = &args.state
            && next != p.state
        {
            write_state(path, &next)?;
        }
        p.state = next;
        let Some(deadline) = deadline else {
            break report;
        };
        if !matches!(report.verdict, Verdict::Wait | Verdict::Undetermined) {
            break report;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break report;
        }
        let nap = nap(&report, args.poll_interval).min(left);
        let line = format!("{}: {}", report.verdict, report.reason);
        progress.show(&report, started);
        if !progress.on() && line != last_line {
            eprintln!(
                "dane-audit preflight: {line} (checking again in {} s)",
                nap.as_secs()
            );
        }
        last_line = line;
        tokio::select! {
            _ = progress.sleep(nap, started) => {}
            _ = tokio::signal::ctrl_c() => {
                progress.finish();
                print(args, &report)?;
                return Ok(Exit::Interrupted);
            }
        }
    };
    progress.finish();
    print(args, &report)?;
    Ok(exit_of(report.verdict))
}

/// One collection and decision.
async fn decide(
    args: &PreflightArgs,
    p: &Prepared,
    c: &Collector,
    probes: &mut Probes,
    fresh_smtp: bool,
) -> Result<(Report, State), CliError> {
    let mut notes = Vec::new();
    let mut ev = collect_dns(c, &p.domain, &p.hosts, &mut notes).await?;
    probes.fill(c, &mut ev, fresh_smtp).await;
    let input = preflight::Input {
        evidence: &ev,
        explicit_hosts: !p.hosts.is_empty(),
        new_chain: &p.new.chain,
        candidate: p.candidate.as_deref(),
        recommended: &p.new.recommended,
        now: now(),
        margin_secs: args.margin,
        published_before: p.published_before,
        accept_nexthop_name: args.accept_nexthop_name,
        ns_checks: !args.net.no_ns_checks,
    };
    let (mut report, next) = preflight::evaluate(&input, &p.state);
    if args.net.no_smtp {
        notes.push("the certificate served now was not checked (--no-smtp)".into());
    }
    report.notes.extend(notes);
    Ok((report, next))
}

/// How long to sleep before the next poll.
fn nap(report: &Report, poll: u64) -> Duration {
    let poll = Duration::from_secs(poll.max(1));
    let waiting_on_time = report
        .hosts
        .iter()
        .filter(|h| h.verdict != Verdict::Safe)
        .all(|h| h.verdict == Verdict::Wait && h.safe_at.is_some());
    match report.hosts.iter().filter_map(|h| h.safe_at).max() {
        Some(at) if waiting_on_time => {
            let secs = (at.0 - now().0).max(0) as u64 + 1;
            // Look again at least every few minutes: a server may regress.
            Duration::from_secs(secs).min(poll.max(Duration::from_secs(REPROBE_SECS)))
        }
        _ => poll,
    }
}

pub fn exit_of(v: Verdict) -> Exit {
    match v {
        Verdict::Safe => Exit::Ok,
        Verdict::Wait => Exit::Wait,
        Verdict::Unsafe => Exit::Findings,
        Verdict::Undetermined => Exit::Incomplete,
    }
}

/// The `--wait` progress bar (indicatif, on a terminal only): elapsed
/// against the time it becomes safe when that is known, else a spinner.
struct Progress {
    enabled: bool,
    bar: std::cell::OnceCell<indicatif::ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            bar: std::cell::OnceCell::new(),
        }
    }

    fn on(&self) -> bool {
        self.enabled
    }

    fn bar(&self) -> Option<&indicatif::ProgressBar> {
        self.enabled.then(|| {
            self.bar.get_or_init(|| {
                let b = indicatif::ProgressBar::with_draw_target(
                    Some(1),
                    indicatif::ProgressDrawTarget::stderr_with_hz(4),
                );
                b.enable_steady_tick(Duration::from_millis(250));
                b
            })
        })
    }

    fn show(&self, report: &Report, started: Instant) {
        let Some(bar) = self.bar() else { return };
        let elapsed = started.elapsed().as_secs();
        let mut reason: String = report.reason.chars().take(70).collect();
        if report.reason.chars().count() > 70 {
            reason.push('…');
        }
        match report.safe_at {
            Some(at) => {
                let left = (at.0 - now().0).max(0) as u64;
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:24}] {percent:>3}% {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_length(elapsed + left);
                bar.set_position(elapsed);
                bar.set_message(format!("wait: safe from {at}"));
            }
            None => {
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.set_message(format!("{}: {reason}", report.verdict));
            }
        }
    }

    /// Sleeps `nap`, moving the bar every second.
    async fn sleep(&self, nap: Duration, started: Instant) {
        let Some(bar) = self.bar() else {
            tokio::time::sleep(nap).await;
            return;
        };
        let end = Instant::now() + nap;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
            bar.set_position(started.elapsed().as_secs());
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.get() {
            b.finish_and_clear();
        }
    }
}

fn print(args: &PreflightArgs, report: &Report) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match args.format {
        PreflightFormat::Json => {
            #[derive(serde::Serialize)]
            struct Doc<'a> {
                schema_version: u32,
                tool: Tool,
                command: &'static str,
                exit: u8,
                #[serde(flatten)]
                report: &'a Report,
            }
            #[derive(serde::Serialize)]
            struct Tool {
                name: &'static str,
                version: &'static str,
            }
            let doc = Doc {
                schema_version: 1,
                tool: Tool {
                    name: "dane-audit",
                    version: env!("CARGO_PKG_VERSION"),
                },
                command: "preflight",
                exit: exit_of(report.verdict) as u8,
                report,
            };
            serde_json::to_writer_pretty(&mut out, &doc)
                .map_err(|e| CliError::from(std::io::Error::from(e)))?;
            writeln!(out)?;
        }
        PreflightFormat::Text => write_text(&mut out, report)?,
    }
    out.flush()?;
    Ok(())
}

fn upper(v: Verdict) -> String {
    v.as_str().to_ascii_uppercase()
}

/// The text report: the verdict first, then per host what was seen.
pub fn write_text(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    let exit = exit_of(r.verdict) as u8;
    writeln!(
        out,
        "{}: {} (exit {exit}){}",
        r.domain,
        upper(r.verdict),
        r.safe_at
            .map(|t| format!(", safe from {t}"))
            .unwrap_or_default()
    )?;
    writeln!(out, "  {}", r.reason)?;
    let n = &r.new_certificate;
    writeln!(
        out,
        "  new certificate: {}  (names: {}; notAfter {})",
        n.subject,
        if n.names.is_empty() {
            "none".to_string()
        } else {
            n.names.join(", ")
        },
        n.not_after
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into())
    )?;
    writeln!(out, "    3 1 1 {}", n.spki_sha256)?;
    if n.chain.is_empty() {
        writeln!(out, "    chain: none (no CA certificate given)")?;
    } else {
        writeln!(out, "    chain: {}", n.chain.join(" <- "))?;
    }
    writeln!(
        out,
        "  evaluated {}; margin {} s; {}",
        r.evaluated_at,
        r.margin_secs,
        if r.mode == "candidate" {
            "judging the candidate RRset (--tlsa)"
        } else {
            "judging the published TLSA records"
        }
    )?;
    for h in &r.hosts {
        writeln!(out)?;
        writeln!(
            out,
            "  {}: {}{}",
            h.host,
            upper(h.verdict),
            h.safe_at.map(|t| format!(" until {t}")).unwrap_or_default()
        )?;
        for reason in &h.reasons {
            writeln!(out, "    - {}: {}", reason.verdict, reason.text)?;
        }
        if !h.records.is_empty() {
            writeln!(
                out,
                "    TLSA _25._tcp.{}{}",
                h.tlsa_base,
                h.ttl.map(|t| format!("  TTL {t} s")).unwrap_or_default()
            )?;
            let answering = h.servers.iter().filter(|s| s.new.is_some()).count();
            for rec in &h.records {
                let mut tags = Vec::new();
                if rec.new {
                    tags.push("new".to_string());
                }
                if rec.live {
                    tags.push("live".to_string());
                }
                if !rec.usable {
                    tags.push("unusable".to_string());
                }
                if rec.candidate {
                    tags.push("candidate".to_string());
                }
                if rec.resolver {
                    tags.push("resolver".to_string());
                }
                if answering > 0 {
                    tags.push(format!("servers {}/{answering}", rec.servers));
                }
                let shown: TlsaRdata = rec.record.parse().map_err(std::io::Error::other)?;
                writeln!(out, "      {}  [{}]", shown.short(), tags.join("] ["))?;
            }
        }
        if !h.servers.is_empty() {
            writeln!(out, "    servers:")?;
            for s in &h.servers {
                writeln!(
                    out,
                    "      {} [{}]{}: {}{}{}",
                    s.server,
                    s.address,
                    s.serial.map(|x| format!(" serial {x}")).unwrap_or_default(),
                    if s.answer == "answer" {
                        format!("{} record(s)", s.records)
                    } else {
                        s.answer.to_string()
                    },
                    s.ttl.map(|t| format!(", TTL {t}")).unwrap_or_default(),
                    match s.new {
                        Some(true) => ", new certificate: yes",
                        Some(false) => ", new certificate: no",
                        None => "",
                    }
                )?;
            }
        }
        if !h.live.is_empty() {
            writeln!(out, "    served now:")?;
            for l in &h.live {
                writeln!(
                    out,
                    "      {}: {}{}{}{}",
                    l.address,
                    l.status,
                    l.leaf
                        .as_ref()
                        .map(|x| format!("  (\"{x}\")"))
                        .unwrap_or_default(),
                    if l.serving_new {
                        "  already the new key"
                    } else {
                        ""
                    },
                    l.detail
                        .as_ref()
                        .map(|d| format!("  {d}"))
                        .unwrap_or_default()
                )?;
            }
        }
        if !h.publish.is_empty() {
            writeln!(out, "    publish:")?;
            for l in &h.publish {
                writeln!(out, "      {l}")?;
            }
        }
        if !h.findings.is_empty() {
            writeln!(out, "    findings:")?;
            for f in &h.findings {
                writeln!(
                    out,
                    "      {:<8} {}  {}",
                    f.severity.as_str(),
                    f.code,
                    f.message
                )?;
                if !f.fix.is_empty() {
                    for (i, line) in f.fix.lines().enumerate() {
                        let lead = if i == 0 { "fix: " } else { "     " };
                        writeln!(out, "               {lead}{line}")?;
                    }
                }
            }
        }
        for note in &h.notes {
            writeln!(out, "    note: {note}")?;
        }
    }
    for note in &r.notes {
        writeln!(out, "  note: {note}")?;
    }
    writeln!(
        out,
        "Summary: {} {}: {}",
        r.domain,
        r.verdict,
        match r.verdict {
            Verdict::Safe =>
                "deploy the new certificate now, then run `dane-audit check` and remove the old records",
            Verdict::Wait => "do not deploy yet; run again (or use --wait)",
            Verdict::Unsafe => "do not deploy; fix what is listed first",
            Verdict::Undetermined =>
                "could not determine; run again when the failures above are gone",
        }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, want) in [
            ("0", 0),
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("2d", 172_800),
            ("1h30m", 5400),
        ] {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        for bad in ["", "h", "1x", "1h30", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tlsa_files() {
        let d = "ab".repeat(32);
        let text = format!(
            "$ORIGIN example.org.\n$TTL 300\n; a comment\n\nmx IN A 192.0.2.1\n\
             _25._tcp.mx.example.org. 300 IN TLSA 3 1 1 {d} ; next key\n\
             _25._tcp.mx2 IN TLSA 2 1 1 (\n  {}\n  {} )\n",
            &d[..32],
            &d[32..]
        );
        let got = parse_tlsa_file(&text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].owner.as_deref(), Some("_25._tcp.mx.example.org."));
        assert_eq!(got[1].owner.as_deref(), Some("_25._tcp.mx2"));
        assert_eq!(got[1].rdata.data.len(), 32);
        let bad = "_25._tcp.mx IN TLSA 3 1 1 zz\n";
        assert_eq!(parse_tlsa_file(bad).unwrap_err().0, 1);
        assert!(parse_tlsa_file("x IN TLSA 3 1 1 (\n ab").is_err());
        assert!(parse_tlsa_file("mx IN A 192.0.2.1\n").unwrap().is_empty());
    }

    #[test]
    fn state_is_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pf.json");
        assert_eq!(read_state(&path).unwrap(), State::default());
        let mut s = State::default();
        s.hosts.insert("mx.example".into(), Default::default());
        write_state(&path, &s).unwrap();
        assert_eq!(read_state(&path).unwrap(), s);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(read_state(&path).is_err());
    }

    #[test]
    fn key_must_belong_to_the_certificate() {
        let certs = format!("{}/testdata/certs", env!("CARGO_MANIFEST_DIR"));
        let leaf = CertInfo::parse(&std::fs::read(format!("{certs}/leaf-rsa.der")).unwrap());
        let own = std::fs::read(format!("{certs}/leaf-rsa.key")).unwrap();
        let other = std::fs::read(format!("{certs}/leaf-ec.key")).unwrap();
        let p = Path::new("k");
        assert!(check_key(p, &own, &leaf, true, p).is_ok());
        let e = check_key(p, &other, &leaf, true, p).unwrap_err();
        assert!(e.message.contains("does not belong"), "{}", e.message);
        assert!(check_key(p, b"garbage", &leaf, true, p).is_err());
        // No key in a certificate-only file: nothing to check.
        assert!(check_key(p, b"-----BEGIN CERTIFICATE-----", &leaf, false, p).is_ok());
    }
}
