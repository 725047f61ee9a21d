//! Command-line interface: parsed arguments, resolved and dispatched.

pub mod check;
pub mod diff;
pub mod evaluate;
pub mod exit;
pub mod explain;
pub mod history;
pub mod net_args;
pub mod polite_args;
pub mod preflight;
pub mod report_args;
pub mod scan;
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
  4  preflight: not yet safe, wait
  5  watch, history: the database is locked by another process
  6  watch, history: the database cannot be used (read-only, disk full, damaged)
  130 interrupted
check --format nagios exits as a monitoring plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN";

#[derive(Parser, Debug)]
#[command(
    name = "dane-audit",
    version,
    about = "Audit DANE for SMTP (RFC 6698, 7671, 7672): DNSSEC, TLSA and STARTTLS, with fixes",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    match cli.command {
        Command::Check(a) => runtime()?.block_on(check::run(&a)),
        Command::Evaluate(a) => evaluate::run(&a),
        Command::Explain { code, list } => explain::run(code.as_deref(), list, stdout),
        Command::Tlsa(a) => tlsa::run(&a, stdout),
        Command::Scan(a) => runtime()?.block_on(scan::run(&a)),
        Command::Preflight(a) => runtime()?.block_on(preflight::run(&a)),
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
