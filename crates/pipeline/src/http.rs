//! The operator endpoints on `metrics.listen`: `/metrics` (Prometheus text
//! exposition rendered from the installed recorder), `/health` (200 while the
//! process serves, 503 from the moment a stage failed fatally while the
//! process stops) and `/ready` (200 when every stage is assigned and caught
//! up, 503 with a short reason otherwise; see `crate::health::readiness`).
//!
//! A deliberately tiny HTTP/1.1 server (GET/HEAD, one request per
//! connection, bounded concurrency and read time) on its own thread with a
//! current-thread tokio runtime: scrapes are rare and small, so a framework
//! would add dependencies without adding anything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tracing::{debug, info};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
/// Longest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client gets to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The running endpoint server; stops when dropped.
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
    let handle = Arc::new(handle);
    let thread = std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "metrics listener failed");
                        return;
                    }
                };
                accept_loop(listener, handle, stop_rx).await;
            });
        })
        .map_err(HttpError::Start)?;
    info!(addr = %bound, "metrics listening on http://{bound}");
    Ok(MetricsServer {
        addr: bound,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

async fn accept_loop(
    listener: TcpListener,
    handle: Arc<PrometheusHandle>,
    mut stop: oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_one(stream, &handle).await {
                            debug!(%peer, error = %e, "metrics connection ended");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// A response: status line, content type, body.
struct Response {
    status: &'static str,
    body: String,
    content_type: &'static str,
}

fn text(status: &'static str, body: impl Into<String>) -> Response {
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

async fn serve_one(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head_complete = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if buf.len() > MAX_REQUEST {
                return Ok(false);
            }
        }
    })
    .await;
    let resp = match head_complete {
        Ok(Ok(true)) => {
            let head = String::from_utf8_lossy(&buf);
            let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
            let method = parts.next().unwrap_or_default();
            let target = parts.next().unwrap_or_default();
            let head_only = method == "HEAD";
            let r = route(method, target, handle);
            (r, head_only)
        }
        Ok(Ok(false)) => (text("400 Bad Request", "bad request\n"), false),
        Ok(Err(e)) => return Err(e),
        Err(_) => (text("408 Request Timeout", "timeout\n"), false),
    };
    let (r, head_only) = resp;
    let header = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if !head_only {
        stream.write_all(r.body.as_bytes()).await?;
    }
    stream.shutdown().await
}
