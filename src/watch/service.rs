//! The watch loop: audits each domain on its slot (or all at once with
//! `--once`), stores each audit with its events in one transaction, sends
//! the events to the alert targets and updates the metrics.
//!
//! Signals: SIGTERM and SIGINT stop new audits and let those in flight
//! finish and be stored (a second one stops at once: the transaction per
//! audit keeps the database whole either way); SIGHUP reads the domain
//! list again. Every queue is bounded: audits in flight by
//! `--concurrency`, writes by the writer's channel, alerts by their queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::cli::report_args::now;
use crate::collect::Collector;
use crate::core::evidence::Timestamp;
use crate::core::{EvalOptions, evaluate};
use crate::report::{NdjsonSink, Row, Sink};
use crate::skip::SkipList;

use super::alert::Alerts;
use super::db::{DbError, DomainRow, NewAudit, Pruned, Recorded, Store};
use super::domains::DomainSource;
use super::events::EventOptions;
use super::metrics::{DomainMetrics, Metrics};
use super::schedule::{Schedule, next_due};
use super::snapshot::Snapshot;

/// The longest the loop sleeps, so the heartbeat and timers stay fresh.
const TICK: Duration = Duration::from_secs(5);
/// How often `--keep` prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How the watch runs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub interval: Duration,
    pub once: bool,
    pub concurrency: usize,
    pub keep: Option<Duration>,
    pub events: EventOptions,
    pub sig_warn_days: u32,
    pub accept_nexthop_name: bool,
    /// How long queued alerts may still be delivered when the watch stops.
    pub alert_grace: Duration,
}

/// How the watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `--once`: every domain was audited.
    Done,
    /// Stopped by a signal after the audits in flight were stored; with
    /// `--once`, some domains were not audited.
    Stopped { complete: bool },
}

/// A failure that ends the watch.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
}

/// One finished audit, ready to store.
struct Audited {
    domain: String,
    new: NewAudit,
}

enum Job {
    Record(Box<NewAudit>, oneshot::Sender<Result<Recorded, DbError>>),
    Prune(Timestamp, oneshot::Sender<Result<Pruned, DbError>>),
}

/// The thread that owns the database connection: SQLite calls block, so
/// they stay off the async workers, and one writer orders the transactions.
struct Writer {
    tx: mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    fn start(mut store: Store, events: EventOptions) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(4);
        let thread = std::thread::spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                match job {
                    Job::Record(a, reply) => {
                        let _ = reply.send(store.record(&a, &events));
                    }
                    Job::Prune(cutoff, reply) => {
                        let _ = reply.send(store.prune(cutoff));
                    }
                }
            }
            if let Err(e) = store.checkpoint() {
                tracing::warn!(error = %e, "checkpoint at stop failed (the WAL is folded in at the next start)");
            }
        });
        Writer { tx, thread }
    }

    async fn record(&self, a: NewAudit) -> Result<Recorded, DbError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Record(Box::new(a), reply)).await?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn prune(&self, cutoff: Timestamp) -> Result<Pruned, DbError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Prune(cutoff, reply)).await?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn send(&self, job: Job) -> Result<(), DbError> {
        self.tx.send(job).await.map_err(|_| writer_gone())
    }

    fn close(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

fn writer_gone() -> DbError {
    DbError::Other {
        path: String::new(),
        detail: "the database writer stopped".into(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The watch: its collector, store, alert targets and metrics.
pub struct Watch {
    pub settings: Settings,
    pub collector: Arc<Collector>,
    pub source: DomainSource,
    pub skip: SkipList,
    pub metrics: Arc<Metrics>,
    pub alerts: Alerts,
}

struct Loop {
    settings: Settings,
    collector: Arc<Collector>,
    writer: Writer,
    alerts: Alerts,
    metrics: Arc<Metrics>,
    schedule: Schedule,
    names: Vec<String>,
    in_flight: JoinSet<Audited>,
    /// Domains being audited now (a domain is never audited twice at once).
    running: HashMap<tokio::task::Id, String>,
}

impl Watch {
    /// Runs until `--once` is done, a signal, or a database failure.
    pub async fn run(self, store: Store, names: Vec<String>) -> Result<Ended, WatchError> {
        let mut term = signal(SignalKind::terminate()).map_err(WatchError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(WatchError::Signals)?;
        let mut hup = signal(SignalKind::hangup()).map_err(WatchError::Signals)?;
        let known: HashMap<String, DomainRow> = store.load()?.into_iter().collect();
        self.metrics
            .set_domains(&names, |n| known.get(n).map(row_metrics));
        self.metrics.set_alert_targets(self.alerts.stats());
        let last = |n: &str| known.get(n).and_then(|r| r.snapshot.as_ref()).map(|s| s.at);
        let mut lp = Loop {
            writer: Writer::start(store, self.settings.events),
            settings: self.settings,
            collector: self.collector,
            alerts: self.alerts,
            metrics: self.metrics,
            schedule: Schedule::default(),
            names: Vec::new(),
            in_flight: JoinSet::new(),
            running: HashMap::new(),
        };
        lp.set_names(names, last);
        let source = self.source;
        let skip = self.skip;
        let mut stopping = false;
        let mut fatal = None;
        let started = now_ms();
        let mut forget_at = started + lp.settings.interval.as_millis() as i64;
        let mut prune_at = started;
        loop {
            lp.metrics.beat();
            if !stopping {
                lp.start_due();
            }
            lp.metrics.in_flight(lp.in_flight.len());
            if lp.in_flight.is_empty() && (stopping || (lp.settings.once && lp.schedule.is_empty()))
            {
                break;
            }
            let wake = lp.wake(stopping);
            tokio::select! {
                Some(done) = lp.in_flight.join_next_with_id(), if !lp.in_flight.is_empty() => {
                    if let Err(e) = lp.finished(done).await {
                        tracing::error!(error = %e, "cannot store an audit: stopping");
                        fatal = Some(e);
                        stopping = true;
                    }
                }
                _ = term.recv() => stopping = lp.signal("SIGTERM", stopping),
                _ = int.recv() => stopping = lp.signal("SIGINT", stopping),
                _ = hup.recv() => lp.reload(&source, &skip),
                _ = tokio::time::sleep(wake) => {}
            }
            let t = now_ms();
            if !lp.settings.once && t >= forget_at {
                // A new round: DNS answers and probes are asked again.
                lp.collector.forget(true);
                forget_at = t + lp.settings.interval.as_millis() as i64;
            }
            if let Some(keep) = lp.settings.keep
                && t >= prune_at
                && !stopping
            {
                prune_at = t + PRUNE_EVERY.as_millis() as i64;
                lp.prune(keep).await?;
            }
        }
        let complete = lp.schedule.is_empty() || !lp.settings.once;
        let lost = lp.alerts.close(lp.settings.alert_grace).await;
        if lost > 0 {
            tracing::warn!(undelivered = lost, "alerts not delivered before stopping");
        }
        lp.writer.close();
        if let Some(e) = fatal {
            return Err(e.into());
        }
        Ok(if stopping {
            Ended::Stopped { complete }
        } else {
            Ended::Done
        })
    }
}

fn row_metrics(r: &DomainRow) -> DomainMetrics {
    DomainMetrics {
        snapshot: r.snapshot.clone(),
        last_success: r.last_success,
        last_duration: r.last_duration,
    }
}

impl Loop {
    /// Replaces the watched set and schedules domains that are new to it.
    fn set_names(&mut self, names: Vec<String>, last: impl Fn(&str) -> Option<Timestamp>) {
        let now = now_ms();
        for old in &self.names {
            if !names.contains(old) {
                self.schedule.remove(old);
            }
        }
        for n in &names {
            if self.schedule.contains(n) || self.running.values().any(|r| r == n) {
                continue;
            }
            let at = if self.settings.once {
                now
            } else {
                next_due(n, self.settings.interval, last(n), now)
            };
            self.schedule.set(n, at);
        }
        self.names = names;
    }

    /// Starts due audits while there is room.
    fn start_due(&mut self) {
        while self.in_flight.len() < self.settings.concurrency.max(1) {
            let Some(domain) = self.schedule.pop_due(now_ms()) else {
                break;
            };
            let collector = Arc::clone(&self.collector);
            let settings = self.settings.clone();
            let d = domain.clone();
            let handle = self
                .in_flight
                .spawn(async move { audit(collector, d, &settings).await });
            self.running.insert(handle.id(), domain);
        }
    }

    /// How long to sleep: until the next due audit (if one could start), at most a tick.
    fn wake(&self, stopping: bool) -> Duration {
        let room = self.in_flight.len() < self.settings.concurrency.max(1);
        match self.schedule.next() {
            Some(t) if room && !stopping => {
                Duration::from_millis((t - now_ms()).clamp(0, TICK.as_millis() as i64) as u64)
            }
            _ => TICK,
        }
    }

    async fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Audited), tokio::task::JoinError>,
    ) -> Result<(), DbError> {
        let a = match done {
            Ok((id, a)) => {
                self.running.remove(&id);
                a
            }
            Err(e) => {
                let domain = self.running.remove(&e.id()).unwrap_or_default();
                if e.is_cancelled() {
                    return Ok(());
                }
                tracing::error!(domain = %domain, error = %e, "the audit failed unexpectedly; it is tried again at its next slot");
                self.reschedule(&domain, None);
                return Ok(());
            }
        };
        let snap = a.new.snapshot.clone();
        let duration = a.new.duration;
        let rec = self.writer.record(a.new).await?;
        tracing::info!(
            domain = %a.domain,
            verdict = %snap.verdict,
            findings = snap.findings.len(),
            duration_ms = duration.as_millis() as u64,
            events = rec.events.len(),
            audit_id = rec.audit_id,
            "audited"
        );
        for e in &rec.events {
            tracing::info!(domain = %e.domain, code = e.kind.code(), state = e.state.as_str(), severity = %e.severity, "{}", e.message);
            self.alerts.send(e);
        }
        self.metrics.audited(&snap, duration, &rec.events);
        self.reschedule(&a.domain, Some(snap.at));
        Ok(())
    }

    fn reschedule(&mut self, domain: &str, last: Option<Timestamp>) {
        if self.settings.once || !self.names.iter().any(|n| n == domain) {
            return;
        }
        let now = now_ms();
        let last = last.unwrap_or(Timestamp(now / 1000));
        self.schedule.set(
            domain,
            next_due(domain, self.settings.interval, Some(last), now),
        );
    }

    /// First signal: finish what is in flight. Second: stop now.
    fn signal(&mut self, name: &str, stopping: bool) -> bool {
        if stopping {
            tracing::warn!(
                signal = name,
                aborted = self.in_flight.len(),
                "stopping now: audits in flight are abandoned (not stored)"
            );
            self.in_flight.abort_all();
        } else {
            tracing::info!(
                signal = name,
                in_flight = self.in_flight.len(),
                "stopping: no new audits; finishing those in flight"
            );
        }
        true
    }

    /// SIGHUP: the domain list again; a list that cannot be read keeps the old one.
    fn reload(&mut self, source: &DomainSource, skip: &SkipList) {
        match source.load(skip) {
            Ok(list) => {
                let added = list
                    .names
                    .iter()
                    .filter(|n| !self.names.contains(n))
                    .count();
                let removed = self
                    .names
                    .iter()
                    .filter(|n| !list.names.contains(n))
                    .count();
                tracing::info!(
                    domains = list.names.len(),
                    added,
                    removed,
                    skipped = list.skipped.len(),
                    "SIGHUP: domain list read again"
                );
                self.metrics.set_domains(&list.names, |_| None);
                self.set_names(list.names, |_| None);
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the domain list cannot be used; keeping the current one");
            }
        }
    }

    async fn prune(&mut self, keep: Duration) -> Result<(), DbError> {
        let cutoff = Timestamp(now_ms() / 1000 - keep.as_secs() as i64);
        let p = self.writer.prune(cutoff).await?;
        if p.audits + p.events > 0 {
            tracing::info!(audits = p.audits, events = p.events, before = %cutoff, "--keep: old history removed");
        }
        Ok(())
    }
}

/// One audit through the one collector and the pure core, documents
/// compressed off the async workers.
async fn audit(collector: Arc<Collector>, domain: String, s: &Settings) -> Audited {
    let started = Instant::now();
    let ev = collector.evidence(&domain).await;
    let opts = EvalOptions {
        now: now(),
        sig_warn_days: s.sig_warn_days,
        accept_nexthop_name: s.accept_nexthop_name,
    };
    let audit = evaluate(&ev, &opts);
    let duration = started.elapsed();
    let snapshot = Snapshot::new(&audit, &ev);
    let mut line = Vec::new();
    {
        let mut sink = NdjsonSink::new(Box::new(&mut line));
        // Writing into memory cannot fail.
        let _ = sink.row(&Row::Audit {
            audit: &audit,
            line: None,
        });
    }
    let report = String::from_utf8_lossy(&line).trim_end().to_string();
    let collected_at = ev.collected_at;
    let new = tokio::task::spawn_blocking(move || {
        let evidence = serde_json::to_string(&ev).unwrap_or_default();
        NewAudit::new(snapshot, collected_at, duration, &report, &evidence)
    })
    .await;
    let new = match new {
        Ok(n) => n,
        // Only a panic while compressing gets here; keep what can be kept.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    Audited { domain, new }
}
