//! `GET /check/{domain}/events?from=N`: an audit's progress as server-sent
//! events, from line N on: `line` events (`{"kind":..,"text":..}`), then
//! one `done` event when the report is ready (the page then fetches it).
//! The stream never starts an audit; without one it says `done` at once.
//! It ends with the audit, at shutdown, or after the audit time limit.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::watch;

use super::App;
use super::audits::Audit;

struct Follow {
    audit: Option<Arc<Audit>>,
    changed: Option<watch::Receiver<u64>>,
    shutdown: watch::Receiver<bool>,
    next: usize,
    deadline: tokio::time::Instant,
    finished: bool,
}

fn from_param(uri: &Uri) -> usize {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "from")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn done() -> Event {
    Event::default().event("done").data("{}")
}

pub async fn stream(
    State(app): State<App>,
    Path(domain): Path<String>,
    uri: Uri,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let audit = app.audits.find(&domain);
    let limit = app.audits.settings().audit_timeout + Duration::from_secs(5);
    let follow = Follow {
        changed: audit.as_ref().map(|a| a.subscribe()),
        audit,
        shutdown: app.shutdown.clone(),
        next: from_param(&uri),
        deadline: tokio::time::Instant::now() + limit,
        finished: false,
    };
    let events = stream::unfold(follow, step).flat_map(stream::iter);
    Sse::new(events.map(Ok)).keep_alive(KeepAlive::default())
}

/// The next batch of events, or `None` when the stream ends.
async fn step(mut f: Follow) -> Option<(Vec<Event>, Follow)> {
    if f.finished {
        return None;
    }
    let (Some(audit), Some(mut changed)) = (f.audit.clone(), f.changed.take()) else {
        f.finished = true;
        return Some((vec![done()], f));
    };
    loop {
        if *f.shutdown.borrow() {
            return None;
        }
        let (lines, _) = audit.lines_from(f.next);
        if !lines.is_empty() {
            f.next += lines.len();
            let batch = lines
                .iter()
                .filter_map(|l| serde_json::to_string(l).ok())
                .map(|data| Event::default().event("line").data(data))
                .collect();
            f.changed = Some(changed);
            return Some((batch, f));
        }
        if audit.outcome().is_some() {
            f.finished = true;
            return Some((vec![done()], f));
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return None },
            _ = f.shutdown.changed() => return None,
            _ = tokio::time::sleep_until(f.deadline) => return None,
        }
    }
}
