//! The JSON API: `GET /api/v1/check/{domain}` (the document of `check
//! --format json`), `POST /api/v1/tlsa` (what `dane-audit tlsa` prints, for
//! an uploaded certificate), errors as JSON with the CLI's exit reasons,
//! and the OpenAPI description.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, body::Bytes};
use serde::Serialize;

use crate::cli::Exit;
use crate::core::association::{RECOMMENDED, records, zone_line};
use crate::core::cert::read_pem_or_der;
use crate::domain::normalize_domain;

use super::App;
use super::audits::{Outcome, Refused};
use super::client::Client;

/// Largest certificate upload accepted by `/api/v1/tlsa`.
pub const MAX_UPLOAD: usize = 64 * 1024;

/// The OpenAPI 3.1 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Header carrying `check`'s exit code for the audited domain (0, 1 or 3).
pub const EXIT_HEADER: HeaderName = HeaderName::from_static("dane-audit-exit");

/// Why an API request did not get its result.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The input cannot be used: as the CLI's usage error (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The audit did not finish: as the CLI's incomplete run (exit 3).
    #[error("{0}")]
    Incomplete(String),
    /// The audit is still running after the request timeout; it goes on,
    /// and the same request later gets its result.
    #[error("the audit is still running: ask again in a few seconds")]
    StillRunning,
    #[error("no such endpoint")]
    NotFound,
    /// `/api/v1/history/{domain}`: the watch's database never audited it.
    #[error("{0} is not watched here")]
    NotWatched(String),
    /// The watch's database cannot be read now; try again after the duration.
    #[error("{0}")]
    Unavailable(String, Duration),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    /// A stable word: usage, incomplete, rate-limited, busy, still-running,
    /// not-found, not-watched, unavailable.
    reason: &'static str,
    /// The CLI's exit code for the same reason, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    exit: Option<u8>,
    message: &'a str,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, Option<Exit>, Option<Duration>) {
        match self {
            ApiError::Usage(_) => (StatusCode::BAD_REQUEST, "usage", Some(Exit::Usage), None),
            ApiError::Refused(r @ Refused::RateLimited(_)) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                None,
                Some(r.retry_after()),
            ),
            ApiError::Refused(r @ Refused::Busy(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                None,
                Some(r.retry_after()),
            ),
            ApiError::Incomplete(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "incomplete",
                Some(Exit::Incomplete),
                Some(super::audits::FAILED_TTL),
            ),
            ApiError::StillRunning => (
                StatusCode::SERVICE_UNAVAILABLE,
                "still-running",
                None,
                Some(Duration::from_secs(5)),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not-found", None, None),
            ApiError::NotWatched(_) => (StatusCode::NOT_FOUND, "not-watched", None, None),
            ApiError::Unavailable(_, after) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                Some(*after),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason, exit, retry) = self.parts();
        let message = self.to_string();
        let body = ErrorBody {
            error: ErrorDetail {
                reason,
                exit: exit.map(|e| e as u8),
                message: &message,
            },
        };
        let mut resp = json(status, &body);
        if let Some(r) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, retry_after(r));
        }
        resp
    }
}

/// Whole seconds, at least 1 (a `Retry-After: 0` invites a busy loop).
pub fn retry_after(d: Duration) -> HeaderValue {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

/// `GET /api/v1/check/{domain}`: waits for the audit (joining one in
/// flight, or answering from the cache) up to the request timeout.
pub async fn check(
    State(app): State<App>,
    Extension(client): Extension<Client>,
    Path(domain): Path<String>,
) -> Result<Response, ApiError> {
    let domain = normalize_domain(&domain).map_err(|e| ApiError::Usage(e.to_string()))?;
    let opened = app.open(&domain, client)?;
    let audit = opened.audit();
    let outcome = tokio::time::timeout(app.request_timeout, audit.done())
        .await
        .map_err(|_| ApiError::StillRunning)?;
    match outcome {
        Outcome::Report(r) => {
            let mut resp =
                ([(header::CONTENT_TYPE, "application/json")], r.json.clone()).into_response();
            resp.headers_mut()
                .insert(EXIT_HEADER, HeaderValue::from(r.exit as u16));
            Ok(resp)
        }
        Outcome::Failed(why) => Err(ApiError::Incomplete(why.clone())),
    }
}

#[derive(Serialize)]
struct TlsaRecord {
    record: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<String>,
}

#[derive(Serialize)]
struct TlsaAnswer {
    records: Vec<TlsaRecord>,
}

/// The parameters of `/api/v1/tlsa`, as `dane-audit tlsa` takes them.
struct TlsaQuery {
    wanted: Vec<(u8, u8, u8)>,
    name: Option<String>,
    port: u16,
}

fn number<T>(key: &str, value: &str, max: T) -> Result<T, ApiError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    value
        .parse::<T>()
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| ApiError::Usage(format!("{key} must be a number from 0 to {max}")))
}

fn tlsa_query(uri: &Uri) -> Result<TlsaQuery, ApiError> {
    let (mut usage, mut selector, mut mtype, mut recommend) = (3u8, 1u8, 1u8, false);
    let mut q = TlsaQuery {
        wanted: Vec::new(),
        name: None,
        port: 25,
    };
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "usage" => usage = number("usage", &v, 3)?,
            "selector" => selector = number("selector", &v, 1)?,
            "mtype" => mtype = number("mtype", &v, 2)?,
            "port" => q.port = number("port", &v, u16::MAX)?,
            "recommend" => recommend = matches!(v.as_ref(), "" | "1" | "true" | "yes"),
            "name" => {
                q.name =
                    Some(normalize_domain(&v).map_err(|e| ApiError::Usage(format!("name: {e}")))?)
            }
            other => {
                return Err(ApiError::Usage(format!(
                    "unknown parameter {:?}: use usage, selector, mtype, recommend, name, port",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    q.wanted = if recommend {
        RECOMMENDED.to_vec()
    } else {
        vec![(usage, selector, mtype)]
    };
    Ok(q)
}

/// `POST /api/v1/tlsa`: the body is a certificate, a chain (leaf first) or
/// a public key, PEM or DER.
pub async fn tlsa(uri: Uri, body: Bytes) -> Result<Response, ApiError> {
    let q = tlsa_query(&uri)?;
    let items = read_pem_or_der(&body).map_err(ApiError::Usage)?;
    let rds = records(&items, &q.wanted).map_err(|e| ApiError::Usage(e.to_string()))?;
    let answer = TlsaAnswer {
        records: rds
            .iter()
            .map(|rd| TlsaRecord {
                record: rd.to_string(),
                zone: q.name.as_ref().map(|h| zone_line(q.port, h, rd)),
            })
            .collect(),
    };
    Ok(json(StatusCode::OK, &answer))
}

/// A JSON response (axum's `Json` needs a feature the shared axum line
/// does not enable; serde_json is here anyway).
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Whether a path belongs to the API (errors there are JSON, not pages).
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_is_json_and_names_every_route() {
        let v: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = v["paths"].as_object().unwrap();
        for p in [
            "/api/v1/check/{domain}",
            "/api/v1/tlsa",
            "/api/v1/history/{domain}",
            "/healthz",
            "/metrics",
        ] {
            assert!(paths.contains_key(p), "{p}");
        }
    }

    #[test]
    fn tlsa_parameters() {
        let q = tlsa_query(
            &"/api/v1/tlsa?recommend&name=MX.Example.org."
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(q.wanted, RECOMMENDED.to_vec());
        assert_eq!(q.name.as_deref(), Some("mx.example.org"));
        let q = tlsa_query(&"/api/v1/tlsa?usage=2&selector=0&mtype=2".parse().unwrap()).unwrap();
        assert_eq!(q.wanted, vec![(2, 0, 2)]);
        for bad in ["usage=4", "selector=x", "name=http://x", "evil=1"] {
            let uri: Uri = format!("/api/v1/tlsa?{bad}").parse().unwrap();
            assert!(matches!(tlsa_query(&uri), Err(ApiError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(retry_after(Duration::from_millis(10)), "1");
        assert_eq!(retry_after(Duration::from_millis(5500)), "6");
        assert_eq!(retry_after(Duration::from_secs(20)), "20");
    }
}
