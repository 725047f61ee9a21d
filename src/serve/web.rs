//! The page handlers: the form, a domain's result page (which starts or
//! joins its audit), the explanation of a code, assets, health and metrics.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::Markup;

use crate::core::finding::Code;
use crate::domain::normalize_domain;

use super::App;
use super::api::retry_after;
use super::assets;
use super::audits::{Opened, Outcome, Refused};
use super::client::Client;
use super::pages;

/// Inputs longer than this are not echoed back into the form.
const ECHO_MAX: usize = 256;

pub(super) fn page(status: StatusCode, m: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response()
}

/// The `domain` parameter of a query string, if given.
fn domain_param(uri: &Uri) -> Option<String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "domain")
        .map(|(_, v)| v.into_owned())
}

/// The result page's address of a (normalised) domain: its stable URL.
fn result_url(domain: &str) -> String {
    format!("/check/{domain}")
}

/// `GET /` and `GET /check?domain=...` (the form's target, so the form
/// works without JavaScript): a valid domain is redirected to its result
/// page, anything else gets the form again with the reason.
pub async fn form(uri: Uri) -> Response {
    match domain_param(&uri) {
        None => page(StatusCode::OK, pages::home("", None)),
        Some(input) => match normalize_domain(&input) {
            Ok(d) => Redirect::to(&result_url(&d)).into_response(),
            Err(e) => bad_domain(&input, &e.to_string()),
        },
    }
}

pub(super) fn bad_domain(input: &str, why: &str) -> Response {
    let echo: String = input.chars().take(ECHO_MAX).collect();
    page(StatusCode::BAD_REQUEST, pages::bad_domain(&echo, why))
}

/// `GET /check/{domain}`: the report when it is ready, else the page that
/// follows the audit (starting it if needed, within the client's rate).
pub async fn result(
    State(app): State<App>,
    Extension(client): Extension<Client>,
    Path(input): Path<String>,
) -> Response {
    let domain = match normalize_domain(&input) {
        Ok(d) => d,
        Err(e) => return bad_domain(&input, &e.to_string()),
    };
    if domain != input {
        return Redirect::permanent(&result_url(&domain)).into_response();
    }
    match app.open(&domain, client) {
        Ok(opened) => {
            // A finished report of a watched domain links to its history.
            let ready = matches!(opened.audit().outcome(), Some(Outcome::Report(_)));
            let watched = ready && app.watched(&domain).await;
            audit_page(&app, &domain, &opened, watched)
        }
        Err(r) => refused(&domain, r),
    }
}

fn audit_page(app: &App, domain: &str, opened: &Opened, watched: bool) -> Response {
    let audit = opened.audit();
    match audit.outcome() {
        Some(Outcome::Report(r)) => page(
            StatusCode::OK,
            pages::result(
                domain,
                &r.html,
                audit.finished_at.get().copied(),
                app.audits.settings().cache_ttl.as_secs(),
                watched,
            ),
        ),
        Some(Outcome::Failed(why)) => {
            page(StatusCode::SERVICE_UNAVAILABLE, pages::failed(domain, why))
        }
        None => {
            let (lines, dropped) = audit.lines_from(0);
            let events = format!("{}/events?from={}", result_url(domain), lines.len());
            page(
                StatusCode::OK,
                pages::progress(domain, &lines, dropped, &events),
            )
        }
    }
}

fn refused(domain: &str, r: Refused) -> Response {
    let status = match r {
        Refused::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Refused::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut resp = page(
        status,
        pages::message_page(
            &format!("{domain}: not checked now"),
            &format!("{domain} was not checked"),
            &r.to_string(),
        ),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, retry_after(r.retry_after()));
    resp
}

/// `GET /explain/{code}`.
pub async fn explain(Path(code): Path<String>) -> Response {
    match code.parse::<Code>() {
        Ok(c) => page(StatusCode::OK, pages::explain(c)),
        Err(_) => not_found().await,
    }
}

pub async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        pages::message_page(
            "Not found",
            "Not found",
            "There is no page at this address.",
        ),
    )
}

/// `GET /assets/{name}`: cached for a year (the URL changes with the content).
pub async fn asset(Path(name): Path<String>) -> Response {
    match assets::find(&name) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            a.body,
        )
            .into_response(),
        None => not_found().await,
    }
}

/// `GET /healthz`: 200 while serving, 503 once shutting down (so a load
/// balancer stops sending before the listener closes).
pub async fn healthz(State(app): State<App>) -> Response {
    if *app.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        app.metrics.render(),
    )
        .into_response()
}
