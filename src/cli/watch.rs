//! `dane-audit watch`: the monitoring service (or one round with `--once`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::duration::{DurationError, parse_duration};
use crate::watch::alert::{AlertConfig, Alerts, FIRST_BACKOFF};
use crate::watch::db::Store;
use crate::watch::domains::DomainSource;
use crate::watch::events::EventOptions;
use crate::watch::metrics::{self, Metrics};
use crate::watch::service::{Ended, Settings, Watch, WatchError};

use super::exit::{CliError, Exit};
use super::logging::{LogFormat, init_logging};
use super::net_args::NetArgs;
use super::polite_args::{PoliteArgs, read_skip_list, shared_collector};
use super::report_args::now;

/// A duration flag (`90s`, `15m`, `1h`, `90d`).
pub fn duration_arg(s: &str) -> Result<Duration, DurationError> {
    parse_duration(s).map(Duration::from_secs)
}

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Domains to watch, one per line (`#` comments, as `scan` reads them);
    /// read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub domains: Option<PathBuf>,
    /// A domain to watch (repeatable; with --domains, both).
    #[arg(long = "domain", value_name = "DOMAIN")]
    pub domain: Vec<String>,
    /// The history database (SQLite, WAL): created and migrated on start.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Time between two audits of a domain; each domain has its own moment
    /// within it, so audits are spread, not in bursts.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration_arg)]
    pub interval: Duration,
    /// Audit every domain once, store, alert and exit (for cron).
    #[arg(long)]
    pub once: bool,
    /// Serve /metrics (Prometheus) and /healthz on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// POST each event as JSON to this URL (retried with backoff).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Run this shell command per event, with the event as JSON on stdin.
    #[arg(long, value_name = "CMD")]
    pub hook: Option<String>,
    /// Time limit of one webhook request.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration_arg)]
    pub webhook_timeout: Duration,
    /// Time limit of one hook run (then it is killed).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration_arg)]
    pub hook_timeout: Duration,
    /// Events waiting per alert target; when full, the oldest is dropped.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub alert_queue: usize,
    /// Attempts per event and target (backoff 1 s, 2 s, 4 s, ... up to 5 min).
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub alert_attempts: u32,
    /// How long queued alerts may still be delivered when the watch stops.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration_arg)]
    pub alert_grace: Duration,
    /// Remove history older than this (the latest audit of each domain and
    /// every verdict change are kept).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub keep: Option<Duration>,
    /// Warn when a certificate expires within N days and no published
    /// record covers a new key.
    #[arg(long, value_name = "N", default_value_t = 21)]
    pub cert_warn_days: u32,
    /// Warn about DNSSEC signatures that expire within N days.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub sig_warn_days: u32,
    /// Also accept the domain itself as a DANE-TA certificate name (RFC 7672 §3.2.3 local policy).
    #[arg(long)]
    pub accept_nexthop_name: bool,
    /// Domains audited at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// Log lines on stderr as text or JSON (level: DANE_AUDIT_LOG, e.g. `debug`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub polite: PoliteArgs,
}

pub async fn run(args: &WatchArgs) -> Result<Exit, CliError> {
    init_logging(args.log_format);
    let limits = args.polite.limits();
    limits.check()?;
    if args.concurrency == 0 {
        return Err(CliError::usage("--concurrency must be at least 1"));
    }
    if args.interval < Duration::from_secs(1) {
        return Err(CliError::usage("--interval must be at least 1s"));
    }
    let (skip, _) = read_skip_list(args.polite.skip.as_deref())?;
    let source = DomainSource {
        file: args.domains.clone(),
        listed: args.domain.clone(),
    };
    let list = source.load(&skip).map_err(CliError::usage)?;
    for d in &list.skipped {
        tracing::warn!(domain = %d, "on the skip list: not watched");
    }
    let store = Store::open(&args.db)?;
    let listener = match args.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| CliError::usage(format!("--listen {addr}: {e}")))?,
        ),
        None => None,
    };
    let alerts = Alerts::start(&AlertConfig {
        webhook: args.webhook.clone(),
        hook: args.hook.clone(),
        queue: args.alert_queue,
        attempts: args.alert_attempts,
        webhook_timeout: args.webhook_timeout,
        hook_timeout: args.hook_timeout,
        first_backoff: FIRST_BACKOFF,
    })
    .map_err(CliError::usage)?;
    let dns = args
        .net
        .dns_skipping(&skip, limits.dns_cache.max(16))
        .await?;
    let collector = Arc::new(shared_collector(
        dns,
        args.net.smtp_paced(limits.per_ip_rate)?,
        args.net.probe_policy(),
        &limits,
        skip.clone(),
    ));
    let metrics = Metrics::new(now);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = listener.map(|l| {
        if let Ok(a) = l.local_addr() {
            tracing::info!(listen = %a, "serving /metrics and /healthz");
        }
        let m = Arc::clone(&metrics);
        tokio::spawn(async move {
            let stop = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = metrics::serve(l, m, stop).await {
                tracing::error!(error = %e, "the metrics server stopped");
            }
        })
    });
    tracing::info!(
        domains = list.names.len(),
        db = %args.db.display(),
        interval_s = args.interval.as_secs(),
        once = args.once,
        "watch started"
    );
    let watch = Watch {
        settings: Settings {
            interval: args.interval,
            once: args.once,
            concurrency: args.concurrency,
            keep: args.keep,
            events: EventOptions {
                cert_warn_days: args.cert_warn_days,
            },
            sig_warn_days: args.sig_warn_days,
            accept_nexthop_name: args.accept_nexthop_name,
            alert_grace: args.alert_grace,
        },
        collector,
        source,
        skip,
        metrics,
        alerts,
    };
    let ended = watch.run(store, list.names).await;
    let _ = stop_tx.send(());
    if let Some(s) = server {
        let _ = s.await;
    }
    match ended {
        Ok(Ended::Done) | Ok(Ended::Stopped { complete: true }) => {
            tracing::info!("watch stopped");
            Ok(Exit::Ok)
        }
        Ok(Ended::Stopped { complete: false }) => {
            tracing::warn!("stopped before every domain was audited");
            Ok(Exit::Interrupted)
        }
        Err(WatchError::Db(e)) => Err(e.into()),
        Err(e @ WatchError::Signals(_)) => Err(CliError::incomplete(e)),
    }
}
