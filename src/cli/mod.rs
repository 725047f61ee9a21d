//! Command-line interface: parsed arguments, resolved and dispatched.

pub mod check;
pub mod deploy;
pub mod diff;
pub mod evaluate;
pub mod exit;
pub mod explain;
pub mod history;
pub mod logging;
pub mod meta;
pub mod net_args;
pub mod new_cert;
pub mod polite_args;
pub mod preflight;
pub mod publish;
pub mod report_args;
pub mod rollover;
pub mod scan;
pub mod serve;
pub mod tlsa;
pub mod watch;

use clap::{Parser, Subcommand};

pub use exit::{CliError, Exit};

const EXIT_CODES: &str = "\
Exit codes:
  0  nothing at or above --fail-on (preflight: safe to deploy now)
  1  findings at or above --fail-on (preflight: unsafe)
  2  usage, input or output error
  3  some targets could not be tested (incomplete)
  4  preflight, rollover: not yet safe, wait
  5  watch, history: the database is locked by another process
  6  watch, history: the database cannot be used (read-only, disk full, damaged)
  130 interrupted
check --format nagios exits as a monitoring plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN";

#[derive(Parser, Debug)]
#[command(
    name = "dane-audit",
    about = "Audit DANE for SMTP (RFC 6698, 7671, 7672): DNSSEC, TLSA and STARTTLS, with fixes",
    after_help = EXIT_CODES,
    disable_version_flag = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print the version and the git revision it was built from.
    #[arg(short = 'V', long)]
    pub version: bool,
    /// With --version: also the DNS and TLS library versions and the
    /// built-in trust anchor's key tags.
    #[arg(long, requires = "version")]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Audit DANE for the domains' mail: DNSSEC, TLSA, STARTTLS on every MX address.
    Check(check::CheckArgs),
    /// Re-evaluate saved evidence offline (same report as when it was collected).
    Evaluate(evaluate::EvaluateArgs),
    /// Print the long explanation of a finding code (or --list them all).
    Explain {
        /// A finding code, e.g. tlsa-wrong-selector.
        code: Option<String>,
        /// List every code with its severity.
        #[arg(long)]
        list: bool,
    },
    /// Compute TLSA records from a certificate, chain or public key.
    Tlsa(tlsa::TlsaArgs),
    /// Audit a list of domains (file or stdin): streamed, polite, resumable, shardable.
    Scan(Box<scan::ScanArgs>),
    /// Is it safe to deploy this new certificate now? (TLSA published on every
    /// server, TTL passed, current certificate still matching.)
    Preflight(Box<preflight::PreflightArgs>),
    /// Do the rollover: publish the new records by RFC 2136 UPDATE, wait for
    /// every server and cache, deploy, verify, retire the old records.
    Rollover(Box<rollover::RolloverArgs>),
    /// Add a new certificate's TLSA records, or remove the records that match
    /// nothing served (RFC 2136 UPDATE, TSIG-signed): a rollover's first or last step.
    Publish(Box<publish::PublishArgs>),
    /// The checker as a web page and JSON API, safe to expose: rate limits,
    /// a result cache, no connections to private addresses.
    Serve(Box<serve::ServeArgs>),
    /// Print a shell completion script (source it, or install it where your
    /// shell looks for completions).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (dane-audit.1, dane-audit-SUBCOMMAND.1) into DIR.
    #[command(hide = true)]
    Manpages { dir: std::path::PathBuf },
    /// Keep auditing domains: history in SQLite, change and expiry alerts
    /// (webhook, hook), Prometheus /metrics.
    Watch(Box<watch::WatchArgs>),
    /// Verdict and finding changes of a watched domain, from the database.
    History(history::HistoryArgs),
    /// Compare two scan outputs: verdict transitions, findings gained and lost.
    Diff(diff::DiffArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<Exit, CliError> {
    let stdout = &mut std::io::stdout();
    let Some(command) = cli.command else {
        return meta::print_version(cli.verbose, stdout);
    };
    match command {
        Command::Check(a) => runtime()?.block_on(check::run(&a)),
        Command::Evaluate(a) => evaluate::run(&a),
        Command::Explain { code, list } => explain::run(code.as_deref(), list, stdout),
        Command::Tlsa(a) => tlsa::run(&a, stdout),
        Command::Scan(a) => runtime()?.block_on(scan::run(&a)),
        Command::Preflight(a) => runtime()?.block_on(preflight::run(&a)),
        Command::Rollover(a) => runtime()?.block_on(rollover::run(&a)),
        Command::Publish(a) => runtime()?.block_on(publish::run(&a)),
        Command::Serve(a) => runtime()?.block_on(serve::run(&a)),
        Command::Completions { shell } => meta::completions(shell, stdout),
        Command::Manpages { dir } => meta::manpages(&dir),
        Command::Watch(a) => runtime()?.block_on(watch::run(&a)),
        Command::History(a) => history::run(&a, stdout),
        Command::Diff(a) => diff::run(&a),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::incomplete(format!("cannot start the async runtime: {e}")))
}
