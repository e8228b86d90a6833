//! The operator endpoints on `metrics.listen`: `/metrics` (Prometheus text
//! exposition rendered from the installed recorder), `/health` (200 while the
//! process serves, 503 from the moment a stage failed fatally while the
//! process stops) and `/ready` (200 when every stage is assigned and caught
//! up, 503 with a short reason otherwise; see `crate::health::readiness`).
//!
//! A deliberately tiny HTTP/1.1 server (GET/HEAD, one request per
//! connection) on its own thread with a current-thread tokio runtime: scrapes
//! are rare and small, so a framework would add dependencies without adding
//! anything. This file holds the routes; `server` the connection handling and
//! its limits ([`server::Limits`]): a liveness probe is answered however many
//! idle or slow clients hold connections, because a connection that has not
//! sent its request yet gives its slot up to a new one.

mod server;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::oneshot;
use tracing::info;

use server::{Limits, Router};

/// Errors starting the endpoint server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("metrics.listen {0:?} is not an address (expected host:port, e.g. 127.0.0.1:9898)")]
    BadAddress(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the metrics server: {0}")]
    Start(#[source] std::io::Error),
}

/// The running endpoint server; stops when dropped, without waiting for
/// connections still being served (a client that stopped reading cannot hold
/// the process up).
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// The bound address (the real port when `metrics.listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `listen` and serves the endpoints from a background thread. Logs
/// `metrics listening on http://ADDR` at info level with the bound address.
pub fn serve(listen: &str, handle: PrometheusHandle) -> Result<MetricsServer, HttpError> {
    let handle = Arc::new(handle);
    let router: Router = Arc::new(move |method: &str, target: &str| route(method, target, &handle));
    serve_with(listen, Limits::default(), router)
}

/// [`serve`] with any routes and limits (tests use small limits and big bodies).
fn serve_with(listen: &str, limits: Limits, router: Router) -> Result<MetricsServer, HttpError> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| HttpError::BadAddress(listen.to_string()))?;
    let std_listener =
        std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
    std_listener
        .set_nonblocking(true)
        .map_err(HttpError::Start)?;
    let bound = std_listener.local_addr().map_err(HttpError::Start)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::Start)?;
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "metrics listener failed");
                        return;
                    }
                };
                server::accept_loop(listener, limits, router, stop_rx).await;
            });
            // Dropping the runtime here cancels every connection still open
            // (a stuck writer included): shutdown never waits for clients.
        })
        .map_err(HttpError::Start)?;
    info!(addr = %bound, "metrics listening on http://{bound}");
    Ok(MetricsServer {
        addr: bound,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// A response: status line, content type, body.
pub(crate) struct Response {
    pub(crate) status: &'static str,
    pub(crate) body: String,
    pub(crate) content_type: &'static str,
}

pub(crate) fn text(status: &'static str, body: impl Into<String>) -> Response {
    Response {
        status,
        body: body.into(),
        content_type: "text/plain; charset=utf-8",
    }
}

/// Routes one request line to its response.
fn route(method: &str, target: &str, handle: &PrometheusHandle) -> Response {
    if method != "GET" && method != "HEAD" {
        return text("405 Method Not Allowed", "only GET and HEAD\n");
    }
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => {
            crate::telemetry::refresh();
            handle.run_upkeep();
            Response {
                status: "200 OK",
                body: handle.render(),
                content_type: "text/plain; version=0.0.4; charset=utf-8",
            }
        }
        "/health" => match crate::health::liveness() {
            Ok(()) => text("200 OK", "ok\n"),
            Err(reason) => text("503 Service Unavailable", format!("failed: {reason}\n")),
        },
        "/ready" => match crate::health::readiness() {
            Ok(()) => text("200 OK", "ready\n"),
            Err(reason) => text("503 Service Unavailable", format!("not ready: {reason}\n")),
        },
        _ => text("404 Not Found", "endpoints: /metrics /health /ready\n"),
    }
}
