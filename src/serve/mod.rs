//! `dane-audit serve`: a DANE checker web page and JSON API, safe to expose.
//!
//! The page and the API run the same audit as `check` (one collector, the
//! pure core, the report renderers); this module adds what a public server
//! needs around it:
//!
//! * [`audits`]: one audit per domain at a time, a result cache, a global
//!   cap on audits in flight and a bounded queue;
//! * [`client`]: the client's address (`--trust-forwarded-for`) and its
//!   rate limit (`--rate`);
//! * [`http`]: the listener, with connection caps and the header timeout
//!   that defeats slowloris;
//! * [`web`], [`events`], [`api`], [`pages`], [`assets`]: the routes;
//! * [`history`]: with `--db`, the watch's history of each domain, read-only;
//! * [`metrics`], what `/metrics` shows.
//!
//! Addresses a visitor's domain leads to are screened by the collector's
//! skip list ([`crate::skip`]), set up by `cli::serve`.

pub mod api;
pub mod assets;
pub mod audits;
pub mod client;
mod events;
pub mod history;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod progress;
mod web;

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::FutureExt;
use ipnet::IpNet;
use tokio::sync::watch;

use audits::{Audits, Opened, Refused};
use client::{Client, Limiter};
use metrics::{Metrics, RequestLabels, RouteLabels};

/// What every handler shares.
pub struct AppInner {
    pub audits: Arc<Audits>,
    pub limiter: Limiter,
    pub trusted: Vec<IpNet>,
    pub metrics: Arc<Metrics>,
    /// How long a request may take (the API waits this long for an audit).
    pub request_timeout: Duration,
    /// Turns true when shutdown begins.
    pub shutdown: watch::Receiver<bool>,
    /// `--db`: the watch's database, for the history pages.
    pub history: Option<history::HistoryDb>,
}

#[derive(Clone)]
pub struct App(pub Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    /// The audit of `domain` for `client`: starting one spends the client's rate.
    pub fn open(&self, domain: &str, client: Client) -> Result<Opened, Refused> {
        self.audits
            .open(domain, || self.limiter.admit(client.0, Instant::now()))
    }
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Every route of the server.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(web::form))
        .route("/check", get(web::form))
        .route("/check/{domain}", get(web::result))
        .route("/check/{domain}/events", get(events::stream))
        .route("/explain/{code}", get(web::explain))
        .route("/api/v1/check/{domain}", get(api::check))
        .route(
            "/api/v1/tlsa",
            post(api::tlsa).layer(DefaultBodyLimit::max(api::MAX_UPLOAD)),
        )
        .route("/history", get(history::list))
        .route("/history/{domain}", get(history::domain_page))
        .route("/api/v1/history/{domain}", get(history::api))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/{*rest}", get(api::not_found).post(api::not_found))
        .route("/healthz", get(web::healthz))
        .route("/metrics", get(web::metrics))
        .route("/assets/{name}", get(web::asset))
        .fallback(web::not_found)
        .layer(middleware::from_fn_with_state(app.clone(), frame))
        .with_state(app)
}

/// The route's name for metrics and logs: a fixed word, never the path.
fn route_name(path: &str) -> &'static str {
    match path {
        "/" => "home",
        "/check" => "form",
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        "/api/v1/tlsa" => "api-tlsa",
        "/api/v1/openapi.json" => "openapi",
        "/history" => "history-list",
        p if p.starts_with("/api/v1/check/") => "api-check",
        p if p.starts_with("/api/v1/history/") => "api-history",
        p if p.starts_with("/history/") => "history",
        p if p.starts_with("/check/") && p.ends_with("/events") => "events",
        p if p.starts_with("/check/") => "result",
        p if p.starts_with("/explain/") => "explain",
        p if p.starts_with("/assets/") => "assets",
        _ => "other",
    }
}

/// Around every request: the client's address, a time limit (event
/// streams excepted: they end with their audit), a plain 500 instead of a
/// panic's trace, the security headers, metrics and the access log.
async fn frame(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let peer = req
        .extensions()
        .get::<http::Peer>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let client = client::client_address(peer, req.headers(), &app.trusted);
    req.extensions_mut().insert(Client(client));
    let route = route_name(req.uri().path());
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(200).collect();
    let api = api::is_api(&path);
    let work = AssertUnwindSafe(next.run(req)).catch_unwind();
    let outcome = if route == "events" {
        Some(work.await)
    } else {
        // The API's own wait ends first and answers "still running".
        tokio::time::timeout(app.request_timeout + Duration::from_secs(5), work)
            .await
            .ok()
    };
    let mut resp = match outcome {
        Some(Ok(r)) => r,
        Some(Err(_)) => failure(api, StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        None => failure(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long",
        ),
    };
    secure(&mut resp);
    let status = resp.status().as_u16();
    app.metrics
        .requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    app.metrics
        .request_seconds
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    tracing::info!(
        target: "dane_audit::access",
        client = %client,
        peer = %peer,
        method = %method,
        path = ?path,
        route,
        status,
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    resp
}

/// A response for a request that failed in the server: no detail leaves it.
fn failure(api: bool, status: StatusCode, what: &str) -> Response {
    if api {
        api::json(
            status,
            &serde_json::json!({"error": {"reason": "internal", "message": what}}),
        )
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            pages::message_page("Error", "Something went wrong", what).into_string(),
        )
            .into_response()
    }
}

fn secure(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_fixed_words() {
        assert_eq!(route_name("/check/example.org"), "result");
        assert_eq!(route_name("/check/example.org/events"), "events");
        assert_eq!(route_name("/api/v1/check/<x>"), "api-check");
        assert_eq!(route_name("/%0d%0aSet-Cookie:x"), "other");
        assert_eq!(route_name("/history"), "history-list");
        assert_eq!(route_name("/history/example.org"), "history");
        assert_eq!(route_name("/api/v1/history/example.org"), "api-history");
    }
}
