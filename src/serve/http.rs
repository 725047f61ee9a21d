//! The HTTP/1.1 listener, written out rather than `axum::serve` because the
//! limits that keep a public server up live at the connection level, and
//! `axum::serve` sets none of them:
//!
//! * a client must send a whole request head within `--header-timeout`
//!   (hyper's header read timeout needs a timer, which `axum::serve` does
//!   not give it), so a slowloris client that trickles its headers, or
//!   opens a connection and says nothing, loses it;
//! * request heads are bounded (buffer and header count);
//! * at most `--max-connections` connections are open at once, and at most
//!   `--max-client-connections` from one address (not counting trusted
//!   proxies, whose connections carry many clients);
//! * on shutdown, the listener closes at once and open connections get
//!   `grace` to finish their requests.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_service::Service;

use super::metrics::Metrics;

/// The connection's peer, put into every request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

#[derive(Clone, Debug)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_client_connections: usize,
    /// Proxies: exempt from the per-address cap.
    pub trusted: Vec<IpNet>,
    /// Time open connections get after shutdown begins.
    pub grace: Duration,
}

/// Largest request head (request line and headers), bytes. hyper's
/// smallest buffer; a domain name needs far less.
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;

/// Open connections per client address.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

struct ClientSlot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

impl PerClient {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = t.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets open
/// connections finish for `limits.grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = Arc::new(PerClient::default());
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let trusted = limits.trusted.iter().any(|n| n.contains(&peer.ip()));
        let cap = if trusted {
            usize::MAX
        } else {
            limits.max_client_connections.max(1)
        };
        let Some(slot) = per_client.enter(peer.ip(), cap) else {
            metrics.refused("connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            router.clone().call(req.map(Body::new))
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        let m = Arc::clone(&metrics);
        m.connections.inc();
        tokio::spawn(async move {
            // A client that breaks the protocol or times out just loses
            // its connection; there is nothing to tell it.
            let _ = conn.await;
            m.connections.dec();
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.grace) => {
            tracing::warn!(grace_s = limits.grace.as_secs(), "connections still open after the grace period; closing them");
        }
    }
}
