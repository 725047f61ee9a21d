//! `dane-audit serve`: the checker as a web page and JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::collect::Collector;
use crate::collect::polite::Politeness;
use crate::dns::iterate;
use crate::duration::parse_duration;
use crate::serve::audits::{Audits, Runner, Settings};
use crate::serve::client::{Limiter, Rate};
use crate::serve::history::HistoryDb;
use crate::serve::http::{self, ConnLimits};
use crate::serve::metrics::Metrics;
use crate::serve::{App, AppInner, router};
use crate::skip::SkipList;

use super::exit::{CliError, Exit};
use super::logging::{LogFormat, init_logging};
use super::net_args::NetArgs;
use super::report_args::EvalArgs;

/// DNS answers and validated RRsets kept (each): bounded, so a server that
/// runs for months keeps a flat memory.
const DNS_CACHE: usize = 10_000;
/// SMTP politeness towards the servers visitors point us at: one
/// connection at a time per address, at most two new ones per second.
const PER_ADDRESS_CONNECTIONS: usize = 1;
const PER_ADDRESS_RATE: f64 = 2.0;
/// Clients whose rate-limit state is kept.
const RATE_TABLE: usize = 100_000;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8025")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub eval: EvalArgs,
    /// Never contact these: one domain (with its subdomains), MX host name,
    /// address or CIDR prefix per line (as for scan).
    #[arg(long, value_name = "FILE")]
    pub skip: Option<PathBuf>,
    /// Let visitors' domains lead to special-purpose addresses (loopback,
    /// RFC 1918, link-local, CGNAT, unique-local, documentation, ...): SMTP
    /// connections and the per-server and iterative DNS queries are refused
    /// there by default. For internal use and test beds.
    #[arg(long)]
    pub allow_private: bool,
    /// Audits one client (address, IPv6 /64) may start: N/s, N/min, N/h or
    /// N/DURATION; a burst of N, then evenly spread. Cached results are free.
    #[arg(long, value_name = "RATE", default_value = "10/min")]
    pub rate: Rate,
    /// Audits running at once, all clients together.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_audits: usize,
    /// Audits waiting for a free slot; beyond that, new audits are refused (503).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub queue: usize,
    /// How long a report is kept and shown again without a new audit.
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = parse_duration)]
    pub cache_ttl: u64,
    /// Reports kept at most (least recently used go first).
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub cache_entries: usize,
    /// The longest one audit may run (all DNS and SMTP phases together).
    #[arg(long, value_name = "DUR", default_value = "3m", value_parser = parse_duration)]
    pub audit_timeout: u64,
    /// How long the API waits for an audit before answering "still running".
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: u64,
    /// A client must send a whole request head within this (slowloris).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: u64,
    /// Connections open at once, all clients together.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections open at once from one address (trusted proxies excepted).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_client_connections: usize,
    /// Take the client address from X-Forwarded-For when the connection
    /// comes from this prefix (a reverse proxy); repeatable.
    #[arg(long = "trust-forwarded-for", value_name = "CIDR")]
    pub trust_forwarded_for: Vec<IpNet>,
    /// After SIGTERM, how long open requests may take to finish.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub grace: u64,
    /// The database of `dane-audit watch`: adds a page per watched domain
    /// with its history (/history/DOMAIN, and /history to list them) and
    /// /api/v1/history/DOMAIN (the document of `history --format json`).
    /// Opened read-only for each request; the watch may be writing it.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The access log and other log lines on stderr, as text or JSON
    /// (level: DANE_AUDIT_LOG, e.g. `debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn check(args: &ServeArgs) -> Result<(), CliError> {
    for (name, v) in [
        ("--max-audits", args.max_audits),
        ("--cache-entries", args.cache_entries),
        ("--max-connections", args.max_connections),
        ("--max-client-connections", args.max_client_connections),
    ] {
        if v == 0 {
            return Err(CliError::usage(format!("{name} must be at least 1")));
        }
    }
    for (name, v) in [
        ("--audit-timeout", args.audit_timeout),
        ("--request-timeout", args.request_timeout),
        ("--header-timeout", args.header_timeout),
    ] {
        if v == 0 {
            return Err(CliError::usage(format!("{name} must be at least 1s")));
        }
    }
    // Fails now, not at the first audit.
    args.eval.options().map(|_| ())
}

/// What a visitor's domain may not lead the server to: the skip list, and
/// (unless `--allow-private`) every special-purpose address but the root
/// hints of `--iterative`, which the operator chose.
fn screen(args: &ServeArgs) -> Result<SkipList, CliError> {
    let skip = match &args.skip {
        Some(p) => SkipList::read(p).map_err(CliError::usage)?.0,
        None => SkipList::default(),
    };
    if args.allow_private {
        return Ok(skip);
    }
    let roots = if args.net.iterative {
        iterate::load_roots(args.net.root_hints.as_deref())
            .map_err(|e| CliError::usage(format!("root hints: {e}")))?
    } else {
        Vec::new()
    };
    Ok(skip.refusing_special_purpose(roots))
}

async fn collector(args: &ServeArgs, skip: SkipList) -> Result<Collector, CliError> {
    let dns = args.net.dns_skipping(&skip, DNS_CACHE).await?;
    Ok(Collector::new(
        dns,
        args.net.smtp_paced(PER_ADDRESS_RATE)?,
        args.net.probe_policy(),
    )
    .with_politeness(Politeness::new(
        PER_ADDRESS_CONNECTIONS,
        PER_ADDRESS_RATE,
        0.0,
    ))
    .with_skip(skip))
}

/// Turns true on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> Result<watch::Receiver<bool>, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CliError::incomplete(format!("cannot listen for SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| CliError::incomplete(format!("cannot listen for SIGINT: {e}")))?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: no new connections; open requests may finish");
        let _ = tx.send(true);
        // Keep the sender: receivers would otherwise see the channel close.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

pub async fn run(args: &ServeArgs) -> Result<Exit, CliError> {
    init_logging(args.log_format);
    check(args)?;
    let skip = screen(args)?;
    let history = args
        .db
        .as_deref()
        .map(HistoryDb::new)
        .transpose()
        .map_err(CliError::usage)?;
    let collector = collector(args, skip).await?;
    let metrics = Arc::new(Metrics::default());
    let audits = Audits::new(
        Settings {
            max_in_flight: args.max_audits,
            queue: args.queue,
            cache_ttl: Duration::from_secs(args.cache_ttl),
            cache_entries: args.cache_entries,
            audit_timeout: Duration::from_secs(args.audit_timeout),
        },
        Runner {
            collector,
            eval: args.eval.clone(),
            families: args.net.family_names(),
        },
        Arc::clone(&metrics),
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let shutdown = shutdown_on_signal()?;
    let app = App(Arc::new(AppInner {
        audits,
        limiter: Limiter::new(args.rate, RATE_TABLE),
        trusted: args.trust_forwarded_for.clone(),
        metrics: Arc::clone(&metrics),
        request_timeout: Duration::from_secs(args.request_timeout),
        shutdown: shutdown.clone(),
        history,
    }));
    eprintln!("dane-audit serve: listening on http://{local}/");
    tracing::info!(%local, private = args.allow_private, rate = %args.rate, "serving");
    http::serve(
        listener,
        router(app),
        ConnLimits {
            header_timeout: Duration::from_secs(args.header_timeout),
            max_connections: args.max_connections,
            max_client_connections: args.max_client_connections,
            trusted: args.trust_forwarded_for.clone(),
            grace: Duration::from_secs(args.grace),
        },
        metrics,
        shutdown,
    )
    .await;
    Ok(Exit::Ok)
}
