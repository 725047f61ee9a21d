//! Alerts: each event to a webhook (HTTP POST of its JSON) and to a hook
//! command (its JSON on standard input), each target with its own bounded
//! queue and one sender task, so a slow or dead target delays nothing but
//! its own deliveries and never the watch.
//!
//! A delivery that fails for a reason that may pass (timeout, connection
//! refused, HTTP 5xx, 408 or 429, a hook that exits non-zero) is retried
//! with exponential backoff, up to `attempts` times; one that cannot pass
//! (another HTTP 4xx) is given up at once. When a queue is full, its
//! oldest event is dropped for the new one (the newest state matters
//! most), and counted. Every outcome is logged and counted for `/metrics`.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::events::Event;

/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Bytes of a hook's standard error kept for the log.
const HOOK_STDERR: u64 = 2048;

/// Where alerts go, and how hard to try.
#[derive(Clone, Debug)]
pub struct AlertConfig {
    pub webhook: Option<String>,
    pub hook: Option<String>,
    /// Events waiting per target, at most.
    pub queue: usize,
    /// Attempts per event and target, the first included.
    pub attempts: u32,
    pub webhook_timeout: Duration,
    pub hook_timeout: Duration,
    pub first_backoff: Duration,
}

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Retry(String),
    #[error("{0} (not retried)")]
    Permanent(String),
}

/// Outcome counters of one target, for `/metrics`.
#[derive(Debug, Default)]
pub struct TargetStats {
    pub delivered: AtomicU64,
    /// Given up after the last attempt, or at once for a permanent error.
    pub failed: AtomicU64,
    /// Pushed out of a full queue, or still queued when the watch stopped.
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
    pub queued: AtomicU64,
}

impl TargetStats {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A FIFO with a fixed capacity that drops its oldest entry when full.
struct Queue {
    items: Mutex<VecDeque<Arc<Event>>>,
    cap: usize,
    ready: Notify,
    closed: std::sync::atomic::AtomicBool,
}

impl Queue {
    fn new(cap: usize) -> Queue {
        Queue {
            items: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            ready: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Adds an event; returns the one dropped to make room, if any.
    fn push(&self, e: Arc<Event>) -> Option<Arc<Event>> {
        let dropped = {
            let mut q = self.items.lock().unwrap_or_else(|p| p.into_inner());
            let d = (q.len() >= self.cap).then(|| q.pop_front()).flatten();
            q.push_back(e);
            d
        };
        self.ready.notify_one();
        dropped
    }

    fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The next event; `None` once closed and empty.
    async fn pop(&self) -> Option<Arc<Event>> {
        loop {
            let notified = self.ready.notified();
            if let Some(e) = self
                .items
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return Some(e);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_waiters();
        self.ready.notify_one();
    }
}

/// One destination of events.
enum Target {
    Webhook {
        client: reqwest::Client,
        url: String,
    },
    Hook {
        command: String,
        timeout: Duration,
    },
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Hook { .. } => "hook",
        }
    }

    async fn deliver(&self, event: &Event, body: &[u8]) -> Result<(), DeliveryError> {
        match self {
            Target::Webhook { client, url } => post(client, url, event, body).await,
            Target::Hook { command, timeout } => run_hook(command, *timeout, event, body).await,
        }
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    event: &Event,
    body: &[u8],
) -> Result<(), DeliveryError> {
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Dane-Audit-Event", event.kind.code())
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| DeliveryError::Retry(format!("POST {url}: {}", error_chain(&e))))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let msg = format!("POST {url}: HTTP {status}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(DeliveryError::Retry(msg))
    } else {
        Err(DeliveryError::Permanent(msg))
    }
}

/// reqwest's message with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Runs `sh -c COMMAND` with the event on stdin and its code, state,
/// domain and severity in `DANE_AUDIT_EVENT`, `DANE_AUDIT_STATE`,
/// `DANE_AUDIT_DOMAIN`, `DANE_AUDIT_SEVERITY`; killed after `timeout`.
async fn run_hook(
    command: &str,
    timeout: Duration,
    event: &Event,
    body: &[u8],
) -> Result<(), DeliveryError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("DANE_AUDIT_EVENT", event.kind.code())
        .env("DANE_AUDIT_STATE", event.state.as_str())
        .env("DANE_AUDIT_DOMAIN", &event.domain)
        .env("DANE_AUDIT_SEVERITY", event.severity.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DeliveryError::Retry(format!("cannot start the hook: {e}")))?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its input is its own business.
            let _ = stdin.write_all(body).await;
        }
        let mut err = String::new();
        if let Some(stderr) = child.stderr.take() {
            let _ = stderr.take(HOOK_STDERR).read_to_string(&mut err).await;
        }
        (child.wait().await, err)
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Err(DeliveryError::Retry(format!(
            "the hook did not finish within {} s (killed)",
            timeout.as_secs()
        ))),
        Ok((Err(e), _)) => Err(DeliveryError::Retry(format!("the hook: {e}"))),
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), err)) => Err(DeliveryError::Retry(format!(
            "the hook exited with {status}{}",
            match err.trim() {
                "" => String::new(),
                e => format!(": {}", e.lines().last().unwrap_or(e)),
            }
        ))),
    }
}

struct Lane {
    target: Arc<Target>,
    queue: Arc<Queue>,
    stats: Arc<TargetStats>,
    task: JoinHandle<()>,
}

/// The alert targets of a watch.
pub struct Alerts {
    lanes: Vec<Lane>,
}

/// Errors setting up the targets.
#[derive(Debug, thiserror::Error)]
pub enum AlertSetupError {
    #[error("--webhook {0:?}: not an http:// or https:// URL")]
    Url(String),
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl Alerts {
    /// Starts one sender task per configured target.
    pub fn start(cfg: &AlertConfig) -> Result<Alerts, AlertSetupError> {
        let mut targets = Vec::new();
        if let Some(url) = &cfg.webhook {
            let ok = reqwest::Url::parse(url)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(AlertSetupError::Url(url.clone()));
            }
            let client = reqwest::Client::builder()
                .timeout(cfg.webhook_timeout)
                .user_agent(concat!("dane-audit/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| AlertSetupError::Client(e.to_string()))?;
            targets.push(Target::Webhook {
                client,
                url: url.clone(),
            });
        }
        if let Some(command) = &cfg.hook {
            targets.push(Target::Hook {
                command: command.clone(),
                timeout: cfg.hook_timeout,
            });
        }
        let lanes = targets
            .into_iter()
            .map(|t| {
                let target = Arc::new(t);
                let queue = Arc::new(Queue::new(cfg.queue));
                let stats = Arc::new(TargetStats::default());
                let task = tokio::spawn(send_loop(
                    Arc::clone(&target),
                    Arc::clone(&queue),
                    Arc::clone(&stats),
                    cfg.attempts.max(1),
                    cfg.first_backoff,
                ));
                Lane {
                    target,
                    queue,
                    stats,
                    task,
                }
            })
            .collect();
        Ok(Alerts { lanes })
    }

    /// Queues an event for every target; never waits.
    pub fn send(&self, event: &Event) {
        let e = Arc::new(event.clone());
        for lane in &self.lanes {
            if let Some(old) = lane.queue.push(Arc::clone(&e)) {
                TargetStats::add(&lane.stats.dropped, 1);
                tracing::warn!(
                    target_kind = lane.target.name(),
                    dropped = %old.key,
                    domain = %old.domain,
                    "alert queue full: the oldest event was dropped"
                );
            }
            lane.stats
                .queued
                .store(lane.queue.len() as u64, Ordering::Relaxed);
        }
    }

    /// Counters per target name, for `/metrics`.
    pub fn stats(&self) -> Vec<(&'static str, Arc<TargetStats>)> {
        self.lanes
            .iter()
            .map(|l| (l.target.name(), Arc::clone(&l.stats)))
            .collect()
    }

    /// Stops taking events and lets the queues drain for up to `grace`;
    /// what is still queued or being retried then is dropped, counted and
    /// logged. Returns the number of events not delivered that way.
    pub async fn close(self, grace: Duration) -> u64 {
        for lane in &self.lanes {
            lane.queue.close();
        }
        let deadline = tokio::time::Instant::now() + grace;
        let mut lost = 0;
        for lane in self.lanes {
            let mut task = lane.task;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let left = lane.queue.len() as u64 + 1;
                TargetStats::add(&lane.stats.dropped, left);
                lost += left;
                tracing::warn!(
                    target_kind = lane.target.name(),
                    undelivered = left,
                    "stopping: events not delivered within the grace period"
                );
            }
        }
        lost
    }
}

/// Delivers a target's events one by one, in order, with retries.
async fn send_loop(
    target: Arc<Target>,
    queue: Arc<Queue>,
    stats: Arc<TargetStats>,
    attempts: u32,
    first_backoff: Duration,
) {
    while let Some(event) = queue.pop().await {
        stats.queued.store(queue.len() as u64, Ordering::Relaxed);
        let body = match serde_json::to_vec(&*event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an event");
                continue;
            }
        };
        let mut delay = first_backoff;
        for attempt in 1..=attempts {
            match target.deliver(&event, &body).await {
                Ok(()) => {
                    TargetStats::add(&stats.delivered, 1);
                    tracing::debug!(target_kind = target.name(), event = %event.key, domain = %event.domain, "alert delivered");
                    break;
                }
                Err(e @ DeliveryError::Permanent(_)) => {
                    TargetStats::add(&stats.failed, 1);
                    tracing::error!(target_kind = target.name(), event = %event.key, domain = %event.domain, error = %e, "alert not delivered");
                    break;
                }
                Err(e) if attempt == attempts => {
                    TargetStats::add(&stats.failed, 1);
                    tracing::error!(target_kind = target.name(), event = %event.key, domain = %event.domain, attempts, error = %e, "alert not delivered: giving up");
                }
                Err(e) => {
                    TargetStats::add(&stats.retries, 1);
                    tracing::warn!(target_kind = target.name(), event = %event.key, domain = %event.domain, attempt, retry_in_s = delay.as_secs_f64(), error = %e, "alert delivery failed: retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::evidence::Timestamp;
    use crate::core::finding::Severity;
    use crate::watch::events::{EVENT_SCHEMA_VERSION, EventKind, Transition};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ev(n: usize) -> Arc<Event> {
        Arc::new(Event {
            schema_version: EVENT_SCHEMA_VERSION,
            domain: format!("d{n}.example"),
            at: Timestamp(0),
            state: Transition::Raised,
            severity: Severity::Warning,
            key: format!("k{n}"),
            message: String::new(),
            kind: EventKind::NsOutOfSync { subjects: vec![] },
        })
    }

    #[tokio::test]
    async fn full_queue_drops_the_oldest() {
        let q = Queue::new(2);
        assert!(q.push(ev(1)).is_none());
        assert!(q.push(ev(2)).is_none());
        assert_eq!(q.push(ev(3)).unwrap().key, "k1");
        assert_eq!(q.len(), 2);
        q.close();
        assert_eq!(q.pop().await.unwrap().key, "k2");
        assert_eq!(q.pop().await.unwrap().key, "k3");
        assert!(q.pop().await.is_none());
    }

    fn cfg(hook: &str, attempts: u32) -> AlertConfig {
        AlertConfig {
            webhook: None,
            hook: Some(hook.into()),
            queue: 10,
            attempts,
            webhook_timeout: Duration::from_secs(2),
            hook_timeout: Duration::from_secs(2),
            first_backoff: Duration::from_millis(10),
        }
    }

    #[tokio::test]
    async fn hook_gets_the_event_on_stdin_and_failures_are_retried() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let tries = dir.path().join("tries");
        // Fails on the first try of each event, then appends its input.
        let hook = format!(
            "echo x >> {t}; [ $(wc -l < {t}) -ge 2 ] || exit 1; cat >> {o}; echo >> {o}; echo \"$DANE_AUDIT_EVENT $DANE_AUDIT_STATE $DANE_AUDIT_DOMAIN\" >> {o}",
            t = tries.display(),
            o = out.display()
        );
        let alerts = Alerts::start(&cfg(&hook, 3)).unwrap();
        alerts.send(&ev(7));
        let stats = alerts.stats();
        assert_eq!(alerts.close(Duration::from_secs(10)).await, 0);
        let text = std::fs::read_to_string(&out).unwrap();
        let first: Event = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first.key, "k7");
        assert_eq!(
            text.lines().nth(1),
            Some("ns-out-of-sync raised d7.example")
        );
        let s = &stats[0].1;
        assert_eq!(
            (TargetStats::get(&s.delivered), TargetStats::get(&s.retries)),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_hook_that_always_fails_is_given_up_and_counted() {
        let alerts = Alerts::start(&cfg("exit 3", 2)).unwrap();
        alerts.send(&ev(1));
        let stats = alerts.stats();
        alerts.close(Duration::from_secs(10)).await;
        let s = &stats[0].1;
        assert_eq!(TargetStats::get(&s.failed), 1);
        assert_eq!(TargetStats::get(&s.retries), 1);
        assert_eq!(TargetStats::get(&s.delivered), 0);
    }

    /// A receiver that answers 503 to the first request and 204 after;
    /// returns its URL and the bodies it accepted.
    async fn flaky_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((mut c, _)) = l.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 64 * 1024];
                let mut len = 0;
                // Headers and the (small) body arrive together or shortly after.
                while let Ok(Ok(k)) =
                    tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf[len..])).await
                {
                    if k == 0 {
                        break;
                    }
                    len += k;
                    let text = String::from_utf8_lossy(&buf[..len]).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let want = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= want {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                let reply: &[u8] = if n == 0 {
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    g.lock().unwrap().push(
                        text.split_once("\r\n\r\n")
                            .map(|(_, b)| b.to_string())
                            .unwrap_or_default(),
                    );
                    b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
                };
                let _ = c.write_all(reply).await;
            }
        });
        (url, got)
    }

    fn webhook(url: &str, attempts: u32) -> AlertConfig {
        AlertConfig {
            webhook: Some(url.into()),
            hook: None,
            ..cfg("true", attempts)
        }
    }

    #[tokio::test]
    async fn webhook_5xx_is_retried_and_then_delivered() {
        let (url, got) = flaky_receiver().await;
        let alerts = Alerts::start(&webhook(&url, 3)).unwrap();
        alerts.send(&ev(4));
        let stats = alerts.stats();
        assert_eq!(alerts.close(Duration::from_secs(10)).await, 0);
        let bodies = got.lock().unwrap().clone();
        assert_eq!(bodies.len(), 1);
        let e: Event = serde_json::from_str(&bodies[0]).unwrap();
        assert_eq!(e.key, "k4");
        let s = &stats[0].1;
        assert_eq!(
            (TargetStats::get(&s.delivered), TargetStats::get(&s.retries)),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn an_unreachable_webhook_never_holds_up_the_sender() {
        // Nothing listens on a port just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let alerts = Alerts::start(&webhook(&format!("http://127.0.0.1:{port}/x"), 2)).unwrap();
        let started = std::time::Instant::now();
        for n in 0..50 {
            alerts.send(&ev(n));
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "send never waits"
        );
        let stats = alerts.stats();
        alerts.close(Duration::from_secs(10)).await;
        let s = &stats[0].1;
        // A queue of 10: the oldest were pushed out, the rest given up.
        let (failed, dropped) = (TargetStats::get(&s.failed), TargetStats::get(&s.dropped));
        assert_eq!(failed + dropped, 50, "{failed} failed, {dropped} dropped");
        assert!(dropped >= 39, "{dropped}");
        assert_eq!(TargetStats::get(&s.delivered), 0);
    }

    #[test]
    fn webhook_url_must_be_http() {
        let mut c = cfg("true", 1);
        c.hook = None;
        for bad in ["ftp://example.net/x", "not a url", "http://"] {
            c.webhook = Some(bad.into());
            assert!(
                matches!(Alerts::start(&c), Err(AlertSetupError::Url(_))),
                "{bad}"
            );
        }
    }
}
