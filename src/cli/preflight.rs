//! `dane-audit preflight DOMAIN --cert NEW.pem`: is it safe to deploy NEW now?
//!
//! Gathers the evidence (MX hosts, their TLSA RRset through the resolver and
//! from every authoritative server address, the chains served now), asks
//! the core (`core::preflight`) for a verdict per host, prints it, and
//! exits 0 (safe), 4 (wait), 1 (unsafe) or 3 (could not determine). With
//! `--wait` it polls until the verdict is `safe` or `--max-wait` runs out.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::collect::plan::ProbePolicy;
use crate::collect::{Collector, POLL_PROBE_REUSE, ProbeReuse};
use crate::core::evidence::{CollectorInfo, Evidence, Outcome, Timestamp, parse_evidence};
use crate::core::rollover::{
    self, CandidateRecord, Decision, NewCertificate, Readiness, STATE_SCHEMA_VERSION, State,
};
use crate::core::tlsa::{TlsaParseError, TlsaRdata};
use crate::domain::normalize_domain;
use crate::duration::parse_duration;
use crate::report::rollover as rollover_report;
use crate::report::{Format, RunInfo};
use crate::statefile::write_json_atomically;
use crate::zonefile::{self, Fault};

use super::check::save_evidence;
use super::exit::{CliError, Exit};
use super::net_args::NetArgs;
use super::new_cert::NewCertArgs;
use super::report_args::now;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exit codes: 0 safe to deploy now; 4 not yet (wait: the report says until when); \
1 unsafe (deploying now breaks mail from DANE senders, or it fails already); \
2 usage, input or output error; 3 could not determine (DNS failure, SMTP unreachable).")]
pub struct PreflightArgs {
    /// The mail domain whose MX hosts will serve the new certificate.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    #[command(flatten)]
    pub new: NewCertArgs,
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
    /// Output format: text or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the evidence the decision was made on as JSON (judge it again
    /// later with --evidence).
    #[arg(long, value_name = "FILE")]
    pub save_evidence: Option<PathBuf>,
    /// Judge saved evidence (from --save-evidence or `check --save-evidence`)
    /// offline instead of asking DNS and SMTP; --state is read, not written.
    #[arg(long, value_name = "FILE", conflicts_with = "wait")]
    pub evidence: Option<PathBuf>,
    /// With --evidence: judge as of TIME (RFC 3339 or Unix seconds).
    /// Default: when the evidence was collected; the live run's
    /// `evaluated_at` reproduces its report.
    #[arg(long, value_name = "TIME", requires = "evidence")]
    pub at: Option<String>,
    /// Also accept the domain itself as a DANE-TA certificate name (RFC 7672 §3.2.3 local policy).
    #[arg(long)]
    pub accept_nexthop_name: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Default for `--max-wait`.
pub(super) const MAX_WAIT_DEFAULT: u64 = 24 * 3600;

use super::new_cert::read;

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
        let found = tlsa_candidates(&text)
            .map_err(|e| CliError::usage(format!("{}:{}: {}", p.display(), e.line, e.fault)))?;
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

/// Why a candidate TLSA file cannot be used, and where.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {fault}")]
pub struct CandidateFileError {
    pub line: usize,
    pub fault: CandidateFault,
}

#[derive(Debug, thiserror::Error)]
pub enum CandidateFault {
    #[error(transparent)]
    Syntax(#[from] Fault),
    #[error(transparent)]
    Record(#[from] TlsaParseError),
}

/// The TLSA records of zone-file text ([`crate::zonefile`] syntax): lines
/// of other types are skipped, a line of bare RDATA (`3 1 1 <hex>`) counts.
pub fn tlsa_candidates(text: &str) -> Result<Vec<CandidateRecord>, CandidateFileError> {
    let mut out = Vec::new();
    let entries = zonefile::entries(text).map_err(|e| CandidateFileError {
        line: e.line,
        fault: e.fault.into(),
    })?;
    for e in entries {
        let bare = e.rtype.is_none() && e.rdata.first().is_some_and(|f| f.parse::<u8>().is_ok());
        if e.rtype.as_deref() == Some("TLSA") || bare {
            let rdata =
                e.rdata_text()
                    .parse()
                    .map_err(|err: TlsaParseError| CandidateFileError {
                        line: e.line,
                        fault: err.into(),
                    })?;
            out.push(CandidateRecord {
                owner: e.owner.clone(),
                rdata,
            });
        }
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
            if s.schema_version != STATE_SCHEMA_VERSION {
                return Err(CliError::usage(format!(
                    "{}: state schema version {} is not supported (this build writes {})",
                    path.display(),
                    s.schema_version,
                    STATE_SCHEMA_VERSION
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

fn write_state(path: &Path, state: &State) -> Result<(), CliError> {
    write_json_atomically(path, state).map_err(|e| CliError::output(path.display(), e))
}

/// Everything checked before any network work: a usage error costs nothing.
struct Prepared {
    domain: String,
    hosts: Vec<String>,
    new: NewCertificate,
    candidate: Option<Vec<CandidateRecord>>,
    published_before: Option<Timestamp>,
    state: State,
}

fn prepare(args: &PreflightArgs) -> Result<Prepared, CliError> {
    if !matches!(args.format, Format::Text | Format::Json) {
        return Err(CliError::usage("preflight writes --format text or json"));
    }
    let domain = normalize_domain(&args.domain).map_err(CliError::usage)?;
    let hosts = args
        .hosts
        .iter()
        .map(|h| normalize_domain(h).map_err(|e| CliError::usage(format!("--host: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
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
    Ok(Prepared {
        domain,
        hosts,
        new: args.new.load()?,
        candidate: load_candidate(args)?,
        published_before,
        state: match &args.state {
            Some(p) => read_state(p)?,
            None => State::default(),
        },
    })
}

/// A domain with no mail host cannot be judged unless hosts are named.
fn has_mail_hosts(ev: &Evidence, hosts: &[String]) -> Result<(), CliError> {
    let domain = &ev.domain;
    if !hosts.is_empty() {
        return Ok(());
    }
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
    Ok(())
}

/// The decision on `ev` at `at`, and the state to remember.
fn judge(args: &PreflightArgs, p: &Prepared, ev: &Evidence, at: Timestamp) -> (Decision, State) {
    let input = rollover::Input {
        evidence: ev,
        hosts: &p.hosts,
        new: &p.new,
        candidate: p.candidate.as_deref(),
        now: at,
        margin_secs: args.margin,
        published_before: p.published_before,
        accept_nexthop_name: args.accept_nexthop_name,
    };
    rollover::decide(&input, &p.state)
}

pub async fn run(args: &PreflightArgs) -> Result<Exit, CliError> {
    let mut p = prepare(args)?;
    if let Some(path) = &args.evidence {
        return offline(args, &p, path);
    }
    // The live certificate matters on every MX host, with or without TLSA.
    let policy = ProbePolicy {
        all_hosts: true,
        ..args.net.probe_policy()
    };
    let collector = Collector::new(args.net.dns().await?, args.net.smtp()?, policy)
        .sharing_probes(64, ProbeReuse::Poll);
    let started = Instant::now();
    let deadline = args
        .wait
        .then(|| started + Duration::from_secs(args.max_wait.unwrap_or(MAX_WAIT_DEFAULT)));
    let progress = Progress::new(args.wait && std::io::stderr().is_terminal());
    let mut last_line = String::new();
    let mut round = 0u32;
    let (decision, ev) = loop {
        round += 1;
        if round > 1 {
            collector.forget(false);
        }
        let mut ev = observe(&collector, &p).await?;
        let (mut decision, mut next) = judge(args, &p, &ev, now());
        // Never declare `safe` on SMTP probes from an earlier round.
        if decision.readiness == Readiness::Safe && round > 1 {
            collector.forget(true);
            ev = observe(&collector, &p).await?;
            (decision, next) = judge(args, &p, &ev, now());
        }
        if let Some(path) = &args.state
            && next != p.state
        {
            write_state(path, &next)?;
        }
        p.state = next;
        let Some(deadline) = deadline else {
            break (decision, ev);
        };
        if !matches!(
            decision.readiness,
            Readiness::Wait | Readiness::Undetermined
        ) {
            break (decision, ev);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break (decision, ev);
        }
        let nap = nap(&decision, args.poll_interval).min(left);
        let line = format!(
            "{}: {}",
            decision.readiness,
            rollover_report::headline_text(decision.headline.as_ref())
        );
        progress.show(&decision, started);
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
                finish(args, &p, &decision, &ev, &collector.dns().collector_info())?;
                return Ok(Exit::Interrupted);
            }
        }
    };
    progress.finish();
    finish(args, &p, &decision, &ev, &collector.dns().collector_info())?;
    Ok(exit_of(decision.readiness))
}

/// One collection: the domain's MX hosts (or the named ones), their DNS
/// and each authoritative server's answer, and the chains served now.
async fn observe(c: &Collector, p: &Prepared) -> Result<Evidence, CliError> {
    let ev = c.evidence_for(&p.domain, &p.hosts).await;
    has_mail_hosts(&ev, &p.hosts)?;
    Ok(ev)
}

/// `--evidence FILE`: the decision on saved evidence, offline; the state
/// file is read, never written.
fn offline(args: &PreflightArgs, p: &Prepared, path: &Path) -> Result<Exit, CliError> {
    let text = String::from_utf8(read(path)?)
        .map_err(|_| CliError::usage(format!("{}: not UTF-8 text", path.display())))?;
    let all =
        parse_evidence(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    let ev = all
        .into_iter()
        .find(|e| e.domain == p.domain)
        .ok_or_else(|| {
            CliError::usage(format!(
                "{} holds no evidence for {}",
                path.display(),
                p.domain
            ))
        })?;
    if let Some(missing) = p
        .hosts
        .iter()
        .find(|h| !ev.hosts.iter().any(|x| &x.name == *h))
    {
        return Err(CliError::usage(format!(
            "{} holds no evidence for the host {missing}",
            path.display()
        )));
    }
    has_mail_hosts(&ev, &p.hosts)?;
    let at = match &args.at {
        None => ev.collected_at,
        Some(t) => Timestamp::parse(t).ok_or_else(|| {
            CliError::usage(format!(
                "--at {t:?} is not a time: use RFC 3339 (2026-05-01T12:00:00Z) or Unix seconds"
            ))
        })?,
    };
    let (decision, _) = judge(args, p, &ev, at);
    finish(args, p, &decision, &ev, &ev.collector)?;
    Ok(exit_of(decision.readiness))
}

/// How long to sleep before the next poll.
fn nap(d: &Decision, poll: u64) -> Duration {
    let poll = Duration::from_secs(poll.max(1));
    let waiting_on_time = d
        .hosts
        .iter()
        .filter(|h| h.readiness != Readiness::Safe)
        .all(|h| h.readiness == Readiness::Wait && h.safe_at.is_some());
    match d.hosts.iter().filter_map(|h| h.safe_at).max() {
        Some(at) if waiting_on_time => {
            let secs = (at.0 - now().0).max(0) as u64 + 1;
            // Look again at least every few minutes: a server may regress.
            Duration::from_secs(secs).min(poll.max(POLL_PROBE_REUSE))
        }
        _ => poll,
    }
}

pub fn exit_of(r: Readiness) -> Exit {
    match r {
        Readiness::Safe => Exit::Ok,
        Readiness::Wait => Exit::Wait,
        Readiness::Unsafe => Exit::Findings,
        Readiness::Undetermined => Exit::Incomplete,
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

    fn show(&self, d: &Decision, started: Instant) {
        let Some(bar) = self.bar() else { return };
        let elapsed = started.elapsed().as_secs();
        let headline = rollover_report::headline_text(d.headline.as_ref());
        let mut reason: String = headline.chars().take(70).collect();
        if headline.chars().count() > 70 {
            reason.push('…');
        }
        match d.safe_at {
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
                bar.set_message(format!("{}: {reason}", d.readiness));
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

/// Prints the decision and saves the evidence it was made on, if asked.
fn finish(
    args: &PreflightArgs,
    p: &Prepared,
    d: &Decision,
    ev: &Evidence,
    info: &CollectorInfo,
) -> Result<(), CliError> {
    if let Some(path) = &args.save_evidence {
        save_evidence(path, std::slice::from_ref(ev))?;
    }
    let exit = exit_of(d.readiness) as u8;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let run = RunInfo {
                command: "preflight".into(),
                started_at: ev.collected_at,
                evaluated_at: d.evaluated_at,
                resolvers: info.resolvers.clone(),
                trust_anchor: info.trust_anchor.clone(),
                families: args.net.family_names(),
                fail_on: None,
            };
            rollover_report::write_json(&mut out, d, &p.new, &run, exit)?;
        }
        _ => rollover_report::write_text(&mut out, d, &p.new, exit)?,
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let got = tlsa_candidates(&text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].owner.as_deref(), Some("_25._tcp.mx.example.org."));
        assert_eq!(got[1].owner.as_deref(), Some("_25._tcp.mx2.example.org."));
        assert_eq!(got[1].rdata.data.len(), 32);
        let bad = "_25._tcp.mx IN TLSA 3 1 1 zz\n";
        let e = tlsa_candidates(bad).unwrap_err();
        assert!(
            matches!(e.fault, CandidateFault::Record(_)) && e.line == 1,
            "{e}"
        );
        assert!(tlsa_candidates("x IN TLSA 3 1 1 (\n ab").is_err());
        assert!(tlsa_candidates("mx IN A 192.0.2.1\n").unwrap().is_empty());
        assert_eq!(tlsa_candidates(&format!("3 1 1 {d}\n")).unwrap().len(), 1);
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
}
