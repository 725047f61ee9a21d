//! `--db`: the history of each domain that `dane-audit watch` records, as
//! pages (`/history`, `/history/{domain}`) and as the document of
//! `history --format json` (`/api/v1/history/{domain}`).
//!
//! The database belongs to the watch, which may be writing it right now:
//! it is opened read-only for each request ([`Store::open_read_waiting`]:
//! never written, never migrated; WAL readers do not block the writer),
//! on a blocking thread, a few requests at a time, and a lock held
//! elsewhere is waited for [`BUSY`] at most, then answered with 503.
//! Pages show the newest [`PAGE_CHANGES`] changes only, so a history of
//! any length makes a page of bounded size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use tokio::sync::Semaphore;

use crate::cli::history::since;
use crate::core::evidence::Timestamp;
use crate::domain::normalize_domain;
use crate::report::history::{History, write_json};
use crate::watch::db::{DbError, Store};

use super::App;
use super::api::{ApiError, retry_after};
use super::pages;
use super::web::{bad_domain, not_found, page};

/// How long a request waits for a lock on the database held by another
/// process (a watch's write is milliseconds; `sqlite3` holding a write
/// transaction open is not worth waiting for).
pub const BUSY: Duration = Duration::from_secs(1);
/// Requests reading the database at once; the others wait up to [`BUSY`].
const READERS: usize = 4;
/// Changes a history page shows (the newest).
pub const PAGE_CHANGES: usize = 200;
/// Domains the list page shows.
pub const LIST_DOMAINS: usize = 1000;

/// Why the database could not be read for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the watch database is busy (a write is in progress): try again in a few seconds")]
    Busy,
    /// The detail (it names server paths) goes to the log only.
    #[error("the watch database cannot be read now")]
    Failed,
}

/// The watch's database, read-only.
pub struct HistoryDb {
    path: PathBuf,
    readers: Arc<Semaphore>,
}

impl HistoryDb {
    /// Checks once that `path` is a database `history` can read (a lock
    /// held elsewhere is not an error: it is checked again per request).
    pub fn new(path: &Path) -> Result<HistoryDb, DbError> {
        match Store::open_read_waiting(path, BUSY) {
            Ok(_) => {}
            Err(e) if e.is_locked() => {
                tracing::warn!(error = %e, "the watch database is locked now; serving anyway")
            }
            Err(e) => return Err(e),
        }
        Ok(HistoryDb {
            path: path.to_path_buf(),
            readers: Arc::new(Semaphore::new(READERS)),
        })
    }

    /// Runs `f` on the database, read-only, on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Unavailable>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, DbError> + Send + 'static,
    {
        let permit = tokio::time::timeout(BUSY, Arc::clone(&self.readers).acquire_owned())
            .await
            .map_err(|_| Unavailable::Busy)?
            .map_err(|_| Unavailable::Failed)?;
        let path = self.path.clone();
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            Store::open_read_waiting(&path, BUSY).and_then(|s| f(&s))
        })
        .await;
        match done {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_locked() => {
                tracing::info!(error = %e, "watch database busy");
                Err(Unavailable::Busy)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "watch database unreadable");
                Err(Unavailable::Failed)
            }
            Err(e) => {
                tracing::error!(error = %e, "watch database read failed");
                Err(Unavailable::Failed)
            }
        }
    }
}

impl App {
    /// Whether the watch's database holds `domain` (false without `--db`,
    /// or when it cannot be read now: the link is then left out).
    pub async fn watched(&self, domain: &str) -> bool {
        let Some(db) = &self.history else {
            return false;
        };
        let d = domain.to_string();
        db.read(move |s| s.knows(&d)).await.unwrap_or(false)
    }
}

impl From<Unavailable> for ApiError {
    fn from(u: Unavailable) -> ApiError {
        ApiError::Unavailable(u.to_string(), BUSY)
    }
}

/// The page of a database that cannot be read now: 503, Retry-After.
fn unavailable(u: Unavailable) -> Response {
    let mut resp = page(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message_page("History unavailable", "History unavailable", &u.to_string()),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, retry_after(BUSY));
    resp
}

/// `GET /history`: the watched domains.
pub async fn list(State(app): State<App>) -> Response {
    let Some(db) = &app.history else {
        return not_found().await;
    };
    match db.read(|s| s.domains()).await {
        Ok(domains) => page(StatusCode::OK, pages::history_list(&domains, LIST_DOMAINS)),
        Err(u) => unavailable(u),
    }
}

/// `GET /history/{domain}`: the newest changes of a watched domain.
pub async fn domain_page(State(app): State<App>, UrlPath(input): UrlPath<String>) -> Response {
    let Some(db) = &app.history else {
        return not_found().await;
    };
    let domain = match normalize_domain(&input) {
        Ok(d) => d,
        Err(e) => return bad_domain(&input, &e.to_string()),
    };
    if domain != input {
        return Redirect::permanent(&format!("/history/{domain}")).into_response();
    }
    let d = domain.clone();
    match db.read(move |s| s.recent(&d, PAGE_CHANGES)).await {
        Ok(Some(recent)) => page(StatusCode::OK, pages::history(&domain, &recent)),
        Ok(None) => page(StatusCode::NOT_FOUND, pages::not_watched(&domain)),
        Err(u) => unavailable(u),
    }
}

/// `GET /api/v1/history/{domain}[?since=TIME]`: the document of
/// `dane-audit history DOMAIN --format json [--since TIME]`.
pub async fn api(
    State(app): State<App>,
    UrlPath(input): UrlPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let db = app.history.as_ref().ok_or(ApiError::NotFound)?;
    let domain = normalize_domain(&input).map_err(|e| ApiError::Usage(e.to_string()))?;
    let mut from = None;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "since" => from = Some(since(&v).map_err(|e| ApiError::Usage(e.to_string()))?),
            other => {
                return Err(ApiError::Usage(format!(
                    "unknown parameter {:?}: use since",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    let d = domain.clone();
    let doc = db
        .read(move |s| {
            let Some((audits, events)) = s.history(&d, from.unwrap_or(Timestamp(i64::MIN)))? else {
                return Ok(None);
            };
            let mut out = Vec::new();
            let h = History {
                domain: &d,
                since: from,
                audits: &audits,
                events: &events,
                every_audit: false,
            };
            write_json(&mut out, &h).map_err(|e| DbError::Other {
                path: s.path().display().to_string(),
                detail: format!("history document: {e}"),
            })?;
            Ok(Some(out))
        })
        .await?
        .ok_or_else(|| ApiError::NotWatched(domain.clone()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], doc).into_response())
}
