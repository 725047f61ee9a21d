//! The audits a server runs and the results it keeps.
//!
//! One audit per domain at a time: a second visitor (or a reload) joins
//! the audit in flight, and a finished report is kept for `--cache-ttl`, so
//! reloading is free and a crowd asking for one domain costs one audit.
//! Audits run as tasks of their own, not inside requests: a visitor who
//! closes the page does not waste the work, and the next request finds it.
//!
//! Bounds, so that memory stays flat whatever the load: at most
//! `--max-audits` run at once, at most `--queue` more wait for a slot (a
//! request beyond that is refused as busy), finished reports are held for
//! at most `--cache-entries` domains (least recently used go first), and
//! each audit keeps at most [`MAX_LINES`] progress lines.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{Semaphore, watch};

use crate::cli::exit::Policy;
use crate::cli::report_args::{DEFAULT_FAIL_ON, EvalArgs, now};
use crate::cli::{CliError, Exit};
use crate::collect::Collector;
use crate::core::evaluate;
use crate::core::evidence::Timestamp;
use crate::core::verdict::DomainVerdict;
use crate::report::{RunInfo, html, json_document};

use super::metrics::{Metrics, ResultLabels, VerdictLabels};
use super::progress::{self, Line};

/// Progress lines kept per audit; later ones are counted, not kept.
pub const MAX_LINES: usize = 200;
/// How long an audit that failed as a whole (timed out) is remembered, so
/// that a reload does not start it again at once.
pub const FAILED_TTL: Duration = Duration::from_secs(30);

/// The gate `check` applies by default (incomplete counts, as for
/// `check`), for the API's exit header.
fn check_policy() -> Policy {
    Policy {
        fail_on: DEFAULT_FAIL_ON.severity(),
        fail_on_incomplete: true,
        require_dane: false,
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub max_in_flight: usize,
    pub queue: usize,
    pub cache_ttl: Duration,
    pub cache_entries: usize,
    /// The longest one audit may take, all phases together.
    pub audit_timeout: Duration,
}

/// What a finished audit produced.
#[derive(Debug)]
pub enum Outcome {
    Report(Report),
    /// The audit did not finish (it ran past `--audit-timeout`).
    Failed(String),
}

/// A finished report, rendered once for every later request.
#[derive(Debug)]
pub struct Report {
    pub verdict: DomainVerdict,
    /// `check`'s exit code for this domain.
    pub exit: Exit,
    /// The document of `check --format json`.
    pub json: String,
    /// The HTML report fragment ([`html::report`]).
    pub html: String,
    pub evaluated_at: Timestamp,
}

/// One audit, running or finished.
pub struct Audit {
    pub domain: String,
    lines: Mutex<(Vec<Line>, usize)>,
    /// Bumped on every change; waiters (event streams, the API) watch it.
    changed: watch::Sender<u64>,
    outcome: OnceLock<Outcome>,
    pub finished_at: OnceLock<Timestamp>,
}

impl Audit {
    fn new(domain: &str) -> Audit {
        Audit {
            domain: domain.to_string(),
            lines: Mutex::new((Vec::new(), 0)),
            changed: watch::channel(0).0,
            outcome: OnceLock::new(),
            finished_at: OnceLock::new(),
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Adds a progress line (beyond [`MAX_LINES`], only counts it).
    pub fn note(&self, line: Line) {
        {
            let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            if l.0.len() < MAX_LINES {
                l.0.push(line);
            } else {
                l.1 += 1;
            }
        }
        self.bump();
    }

    /// Progress lines from index `from` on, and how many were not kept.
    pub fn lines_from(&self, from: usize) -> (Vec<Line>, usize) {
        let l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        (l.0.iter().skip(from).cloned().collect(), l.1)
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.get()
    }

    fn finish(&self, outcome: Outcome) {
        let _ = self.finished_at.set(now());
        let _ = self.outcome.set(outcome);
        self.bump();
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Waits until the audit is finished.
    pub async fn done(&self) -> &Outcome {
        let mut rx = self.subscribe();
        loop {
            if let Some(o) = self.outcome.get() {
                return o;
            }
            // The sender lives as long as `self`: an error cannot happen
            // while we hold it, but never spin if it did.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How a request got its audit.
pub enum Opened {
    /// A finished report, still fresh.
    Cached(Arc<Audit>),
    /// An audit already in flight (or waiting for a slot).
    Joined(Arc<Audit>),
    /// A new audit, started for this request.
    Started(Arc<Audit>),
}

impl Opened {
    pub fn audit(&self) -> &Arc<Audit> {
        match self {
            Opened::Cached(a) | Opened::Joined(a) | Opened::Started(a) => a,
        }
    }
}

/// Why no audit was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many audits from this address: try again in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("the server is busy with other audits: try again in {} s", .0.as_secs().max(1))]
    Busy(Duration),
}

impl Refused {
    pub fn retry_after(self) -> Duration {
        match self {
            Refused::RateLimited(d) | Refused::Busy(d) => d,
        }
    }
}

/// How long a visitor turned away as busy should wait.
const BUSY_RETRY: Duration = Duration::from_secs(10);

struct Entry {
    audit: Arc<Audit>,
    /// `None` while the audit runs.
    expires: Option<Instant>,
    used: u64,
}

#[derive(Default)]
struct Store {
    map: HashMap<String, Entry>,
    /// Audits started and not finished (running or queued).
    pending: usize,
}

/// Why an audit produced no report (the evidence was collected; these are
/// the steps after it).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Options(#[from] CliError),
    #[error("cannot render the report: {0}")]
    Render(#[from] std::io::Error),
}

/// What every audit needs: the collector and the evaluation settings.
pub struct Runner {
    pub collector: Collector,
    pub eval: EvalArgs,
    pub families: Vec<&'static str>,
}

impl Runner {
    /// Collects, evaluates and renders, as `check --format json` does.
    async fn run(&self, audit: &Audit) -> Result<Report, RunError> {
        let opts = self.eval.options()?;
        let info = self.collector.dns().collector_info();
        // What `check` says with its default --fail-on.
        let run = RunInfo::collected(
            "check",
            &info,
            self.families.clone(),
            now(),
            opts.now,
            Some(DEFAULT_FAIL_ON.name()),
        );
        audit.note(Line::step(format!(
            "{}: looking up its MX records",
            audit.domain
        )));
        let ev = self
            .collector
            .evidence_watched(&audit.domain, &|p| audit.note(progress::line(p)))
            .await;
        let a = evaluate(&ev, &opts);
        let json = json_document(&run, &a)?;
        Ok(Report {
            verdict: a.verdict,
            exit: check_policy().judge([&a]),
            html: html::report(&a, &ev).into_string(),
            json,
            evaluated_at: a.evaluated_at,
        })
    }
}

pub struct Audits {
    settings: Settings,
    runner: Runner,
    store: Mutex<Store>,
    slots: Arc<Semaphore>,
    tick: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Audits {
    pub fn new(settings: Settings, runner: Runner, metrics: Arc<Metrics>) -> Arc<Audits> {
        Arc::new(Audits {
            slots: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings,
            runner,
            store: Mutex::new(Store::default()),
            tick: AtomicU64::new(0),
            metrics,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The audit of `domain` if one is running or fresh; never starts one.
    pub fn find(&self, domain: &str) -> Option<Arc<Audit>> {
        let mut st = self.lock();
        let now = Instant::now();
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        let e = st.map.get_mut(domain)?;
        if e.expires.is_some_and(|t| t <= now) {
            return None;
        }
        e.used = tick;
        Some(Arc::clone(&e.audit))
    }

    /// The audit of `domain`: the fresh or running one, or a new one if
    /// `charge` (the client's rate limit) and the queue allow it.
    pub fn open(
        self: &Arc<Self>,
        domain: &str,
        charge: impl FnOnce() -> Result<(), Duration>,
    ) -> Result<Opened, Refused> {
        let mut st = self.lock();
        let now = Instant::now();
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = st.map.get_mut(domain) {
            match e.expires {
                None => {
                    e.used = tick;
                    self.count("joined");
                    return Ok(Opened::Joined(Arc::clone(&e.audit)));
                }
                Some(t) if t > now => {
                    e.used = tick;
                    self.count("hit");
                    return Ok(Opened::Cached(Arc::clone(&e.audit)));
                }
                Some(_) => {
                    st.map.remove(domain);
                }
            }
        }
        if st.pending >= self.settings.max_in_flight + self.settings.queue {
            self.metrics.refused("busy");
            return Err(Refused::Busy(BUSY_RETRY));
        }
        if let Err(wait) = charge() {
            self.metrics.refused("rate-limited");
            return Err(Refused::RateLimited(wait));
        }
        self.count("miss");
        let audit = Arc::new(Audit::new(domain));
        st.map.insert(
            domain.to_string(),
            Entry {
                audit: Arc::clone(&audit),
                expires: None,
                used: tick,
            },
        );
        st.pending += 1;
        self.evict(&mut st, now);
        drop(st);
        let this = Arc::clone(self);
        let task_audit = Arc::clone(&audit);
        tokio::spawn(async move { this.run(task_audit).await });
        Ok(Opened::Started(audit))
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .cache
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Waits for a slot, runs the audit within the time limit, keeps the result.
    async fn run(self: Arc<Self>, audit: Arc<Audit>) {
        self.metrics.audits_queued.inc();
        if self.slots.available_permits() == 0 {
            audit.note(Line::step(
                "waiting for a free slot: the server is busy with other audits",
            ));
        }
        // The semaphore is never closed.
        let permit = Arc::clone(&self.slots).acquire_owned().await.ok();
        self.metrics.audits_queued.dec();
        self.metrics.audits_in_flight.inc();
        let start = Instant::now();
        let work = AssertUnwindSafe(self.runner.run(&audit)).catch_unwind();
        let outcome = match tokio::time::timeout(self.settings.audit_timeout, work).await {
            Ok(Ok(Ok(report))) => Outcome::Report(report),
            Ok(Ok(Err(e))) => Outcome::Failed(format!("the audit failed: {e}")),
            // The panic message went to the log; the visitor gets no trace.
            Ok(Err(_)) => Outcome::Failed("the audit failed (an internal error)".into()),
            Err(_) => Outcome::Failed(format!(
                "the audit took longer than {} s and was stopped",
                self.settings.audit_timeout.as_secs()
            )),
        };
        self.metrics.audits_in_flight.dec();
        drop(permit);
        self.metrics
            .audit_seconds
            .observe(start.elapsed().as_secs_f64());
        let (verdict, ttl) = match &outcome {
            Outcome::Report(r) => (r.verdict.as_str(), self.settings.cache_ttl),
            Outcome::Failed(_) => ("error", FAILED_TTL),
        };
        self.metrics
            .audits
            .get_or_create(&VerdictLabels { verdict })
            .inc();
        audit.finish(outcome);
        let mut st = self.lock();
        st.pending -= 1;
        let now = Instant::now();
        if let Some(e) = st.map.get_mut(&audit.domain)
            && Arc::ptr_eq(&e.audit, &audit)
        {
            e.expires = Some(now + ttl);
        }
        self.evict(&mut st, now);
    }

    /// Drops expired reports, then the least recently used finished ones
    /// beyond `--cache-entries`. Running audits are never dropped (their
    /// number is bounded by the queue).
    fn evict(&self, st: &mut Store, now: Instant) {
        st.map.retain(|_, e| e.expires.is_none_or(|t| t > now));
        let finished = st.map.values().filter(|e| e.expires.is_some()).count();
        if finished > self.settings.cache_entries {
            let mut used: Vec<u64> = st
                .map
                .values()
                .filter(|e| e.expires.is_some())
                .map(|e| e.used)
                .collect();
            used.sort_unstable();
            let limit = used[finished - self.settings.cache_entries - 1];
            st.map.retain(|_, e| e.expires.is_none() || e.used > limit);
        }
        self.metrics.cache_entries.set(st.map.len() as i64);
    }

    /// Audits started and not finished.
    pub fn pending(&self) -> usize {
        self.lock().pending
    }
}
