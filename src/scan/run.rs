//! The scan loop: a reader thread turns input lines into domains and error
//! rows; the loop starts at most `concurrency` audits at a time, writes each
//! record (flushed) as soon as it is known, and stops cleanly on interrupt.
//!
//! Memory is bounded by the settings, not by the input: the reader's channel
//! holds at most [`CHANNEL`] lines, at most `concurrency` domains are in
//! flight, duplicate lines waiting for a domain in flight are capped at
//! [`MAX_WAITING`], the duplicate window and the shared caches have fixed
//! capacities, and the tally is a set of counters.

use std::collections::HashMap;
use std::io::{self, BufRead};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::collect::Collector;
use crate::collect::polite::RateLimiter;
use crate::core::audit::DomainAudit;
use crate::core::evidence::Timestamp;
use crate::core::{EvalOptions, evaluate};
use crate::report::{Row, Sink};

use super::lines::{Line, LineReader, classify};
use super::progress::Progress;
use super::recent::Lru;
use super::resume::DoneLines;
use super::shard::Shard;
use super::tally::Tally;

/// Lines read ahead of the audits.
pub const CHANNEL: usize = 1024;
/// Duplicate lines that may wait for their domain's audit in flight; the
/// reader pauses beyond this.
pub const MAX_WAITING: usize = 10_000;

/// When signatures and certificates are judged.
#[derive(Clone, Debug)]
pub struct EvalSpec {
    /// Fixed time (`--at`); otherwise the time each domain is evaluated.
    pub at: Option<Timestamp>,
    /// Days ahead of the evaluation time (`--days`).
    pub days: Option<u32>,
    pub sig_warn_days: u32,
    pub accept_nexthop_name: bool,
}

impl EvalSpec {
    pub fn options(&self) -> EvalOptions {
        let now = self.at.unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            Timestamp(secs + i64::from(self.days.unwrap_or(0)) * 86_400)
        });
        EvalOptions {
            now,
            sig_warn_days: self.sig_warn_days,
            accept_nexthop_name: self.accept_nexthop_name,
        }
    }
}

/// One scan's settings besides the collector.
pub struct Job {
    pub input: Box<dyn BufRead + Send>,
    /// Input size in bytes, when known (progress ETA).
    pub input_size: Option<u64>,
    pub concurrency: usize,
    /// Domains started per second (0: unlimited).
    pub domain_rate: f64,
    pub dedup_window: usize,
    pub shard: Option<Shard>,
    /// Lines an earlier run already wrote (`--resume`).
    pub done: DoneLines,
    pub eval: EvalSpec,
    /// After an interrupt, how long audits in flight may still finish.
    pub grace: Duration,
    pub progress: bool,
}

/// What the run did, for the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Input lines read.
    pub lines: u64,
    /// Blank and comment lines.
    pub blank_or_comment: u64,
    /// Lines that belong to another shard.
    pub other_shard: u64,
    /// Lines already in OUT (`--resume`).
    pub resumed: u64,
    /// Invalid lines (error rows).
    pub invalid: u64,
    /// Domains on the skip list (error rows, not contacted).
    pub skipped: u64,
    /// Audits made (each distinct domain once, unless it fell out of the window).
    pub audited: u64,
    /// Duplicate lines reported from another line's audit.
    pub duplicates: u64,
    /// Audits that ended in an internal error (error rows).
    pub internal_errors: u64,
    /// Lines whose audit was abandoned on interrupt (not written; a resume does them).
    pub abandoned: u64,
}

#[derive(Debug)]
pub struct RunResult {
    pub tally: Tally,
    pub counts: Counts,
    pub interrupted: bool,
    pub elapsed: Duration,
    /// An input read error that ended the run early.
    pub input_error: Option<String>,
}

enum Item {
    Domain {
        no: u64,
        domain: String,
    },
    Invalid {
        no: u64,
        input: String,
        error: String,
    },
    ReadError(String),
}

#[derive(Default)]
struct ReaderCounts {
    lines: AtomicU64,
    blank: AtomicU64,
    other_shard: AtomicU64,
    resumed: AtomicU64,
    bytes: AtomicU64,
}

fn spawn_reader(
    input: Box<dyn BufRead + Send>,
    shard: Option<Shard>,
    done: DoneLines,
    tx: mpsc::Sender<Item>,
    counts: Arc<ReaderCounts>,
) {
    std::thread::Builder::new()
        .name("scan-input".into())
        .spawn(move || {
            let mut r = LineReader::new(input);
            loop {
                let raw = match r.next_line() {
                    Ok(Some(raw)) => raw,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Item::ReadError(e.to_string()));
                        return;
                    }
                };
                counts.lines.fetch_add(1, Ordering::Relaxed);
                counts.bytes.store(raw.end, Ordering::Relaxed);
                if done.contains(raw.no) {
                    counts.resumed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let item = match classify(&raw) {
                    Line::Skip => {
                        counts.blank.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Line::Domain(domain) => {
                        if shard.is_some_and(|s| !s.contains(&domain)) {
                            counts.other_shard.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Item::Domain { no: raw.no, domain }
                    }
                    Line::Invalid { input, error } => {
                        let key = String::from_utf8_lossy(&raw.bytes);
                        if shard.is_some_and(|s| !s.contains(key.trim())) {
                            counts.other_shard.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Item::Invalid {
                            no: raw.no,
                            input,
                            error,
                        }
                    }
                };
                if tx.blocking_send(item).is_err() {
                    return; // the scan stopped
                }
            }
        })
        .expect("spawn the input reader thread");
}

struct Pending {
    lines: Vec<u64>,
    abort: AbortHandle,
}

/// Runs the scan. Each message on `interrupts` is one Ctrl-C (or SIGTERM):
/// the first stops reading and lets audits in flight finish within
/// `job.grace`; the second abandons them at once.
pub async fn run(
    job: Job,
    collector: Arc<Collector>,
    sink: &mut dyn Sink,
    mut interrupts: mpsc::UnboundedReceiver<()>,
) -> io::Result<RunResult> {
    let concurrency = job.concurrency.max(1);
    let (tx, mut rx) = mpsc::channel::<Item>(CHANNEL);
    let reader = Arc::new(ReaderCounts::default());
    spawn_reader(job.input, job.shard, job.done, tx, Arc::clone(&reader));
    let rate = RateLimiter::per_second(job.domain_rate).map(Arc::new);
    let eval = Arc::new(job.eval);
    let progress = Progress::new(job.progress, job.input_size);

    let mut tally = Tally::default();
    let mut counts = Counts::default();
    let mut recent: Lru<String, Arc<DomainAudit>> = Lru::new(job.dedup_window);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut waiting = 0usize;
    let mut inflight = FuturesUnordered::new();
    let mut reading = true;
    let mut stopping = false;
    let mut interrupted = false;
    let mut input_error = None;
    let mut deadline = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    loop {
        if !reading && inflight.is_empty() {
            break;
        }
        let can_read = reading && inflight.len() < concurrency && waiting < MAX_WAITING;
        tokio::select! {
            biased;
            Some(()) = interrupts.recv() => {
                interrupted = true;
                if stopping {
                    break;
                }
                stopping = true;
                reading = false;
                deadline = tokio::time::Instant::now() + job.grace;
            }
            Some((domain, result)) = inflight.next(), if !inflight.is_empty() => {
                let result: Result<DomainAudit, tokio::task::JoinError> = result;
                let Some(p) = pending.remove(&domain) else { continue };
                waiting -= p.lines.len() - 1;
                match result {
                    Ok(audit) => {
                        for line in &p.lines {
                            sink.row(&Row::Audit { audit: &audit, line: Some(*line) })?;
                            tally.add_audit(&audit);
                        }
                        recent.put(domain, Arc::new(audit));
                    }
                    Err(e) => {
                        let why = if e.is_panic() { "panicked" } else { "was cancelled" };
                        eprintln!("dane-audit: internal error: the audit of {domain} {why}");
                        counts.internal_errors += 1;
                        let error = format!("internal error: the audit {why}; please report it");
                        for line in &p.lines {
                            sink.row(&Row::Error { input: &domain, error: &error, line: Some(*line) })?;
                            tally.add_error();
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline), if stopping => {
                break;
            }
            item = rx.recv(), if can_read => {
                match item {
                    None => reading = false,
                    Some(Item::ReadError(e)) => {
                        input_error = Some(e);
                        reading = false;
                    }
                    Some(Item::Invalid { no, input, error }) => {
                        counts.invalid += 1;
                        sink.row(&Row::Error { input: &input, error: &error, line: Some(no) })?;
                        tally.add_error();
                    }
                    Some(Item::Domain { no, domain }) => {
                        if let Some(audit) = recent.get(&domain) {
                            counts.duplicates += 1;
                            sink.row(&Row::Audit { audit: &audit, line: Some(no) })?;
                            tally.add_audit(&audit);
                        } else if let Some(p) = pending.get_mut(&domain) {
                            counts.duplicates += 1;
                            p.lines.push(no);
                            waiting += 1;
                        } else if let Some(entry) = collector.skip_list().domain(&domain) {
                            counts.skipped += 1;
                            let error = format!("not contacted: {entry} is on the skip list");
                            sink.row(&Row::Error { input: &domain, error: &error, line: Some(no) })?;
                            tally.add_error();
                        } else {
                            counts.audited += 1;
                            let (e, ev, r, d) = (Arc::clone(&collector), Arc::clone(&eval), rate.clone(), domain.clone());
                            let handle = tokio::spawn(async move {
                                if let Some(r) = r {
                                    r.wait().await;
                                }
                                let evidence = e.evidence(&d).await;
                                evaluate(&evidence, &ev.options())
                            });
                            pending.insert(domain.clone(), Pending { lines: vec![no], abort: handle.abort_handle() });
                            inflight.push(async move { (domain, handle.await) });
                        }
                    }
                }
            }
            _ = tick.tick() => {
                progress.update(reader.bytes.load(Ordering::Relaxed), &tally, inflight.len());
            }
        }
    }
    for p in pending.values() {
        p.abort.abort();
        counts.abandoned += p.lines.len() as u64;
    }
    drop(rx);
    progress.finish();
    counts.lines = reader.lines.load(Ordering::Relaxed);
    counts.blank_or_comment = reader.blank.load(Ordering::Relaxed);
    counts.other_shard = reader.other_shard.load(Ordering::Relaxed);
    counts.resumed = reader.resumed.load(Ordering::Relaxed);
    Ok(RunResult {
        tally,
        counts,
        interrupted,
        elapsed: progress.elapsed(),
        input_error,
    })
}
