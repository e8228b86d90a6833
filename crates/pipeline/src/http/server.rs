//! Connection handling of the endpoint server, and its limits.
//!
//! Every connection is accepted at once (nothing waits in the listen backlog
//! behind idle clients) and holds one of [`Limits::max_connections`] slots
//! while it lives. Each connection has two deadlines: [`Limits::head_timeout`]
//! to send its request head, [`Limits::write_timeout`] to take the response.
//! When every slot is taken:
//! - a connection still waiting for its request head (idle, or a slow
//!   client) gives its slot up: the oldest such one is closed and the new
//!   connection takes its place. A probe sends its request as soon as it
//!   connects, so idle or slow clients can never starve `/health`/`/ready`;
//! - if every slot is busy writing a response, the new connection gets an
//!   immediate `503` and is closed.
//!
//! Both cases are counted (`rampart_http_connections_dropped_total`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tracing::debug;

use super::{Response, text};
use crate::telemetry::{self, HttpDrop};

/// Maps a request's method and target to its response.
pub(crate) type Router = Arc<dyn Fn(&str, &str) -> Response + Send + Sync>;

/// Longest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;

/// The answer to a connection that finds every slot writing.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n";

/// How long a refused connection's request is read (and discarded) after
/// the 503 went out.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Bounds of the endpoint server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time a client gets to send its request head.
    pub head_timeout: Duration,
    /// Time a client gets to take the whole response.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            head_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Who holds the slots.
#[derive(Default)]
struct Slots {
    open: usize,
    next_id: u64,
    /// Connections still waiting for their request head, oldest first.
    reading: BTreeMap<u64, Arc<Eviction>>,
}

/// How a connection is told to give its slot up.
#[derive(Default)]
struct Eviction {
    notify: Notify,
    /// Its slot was handed on already (not counted in `open` any more).
    done: AtomicBool,
}

fn lock(slots: &Mutex<Slots>) -> MutexGuard<'_, Slots> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection's slot; freed when the connection's task ends (or is
/// cancelled by shutdown).
struct Slot {
    slots: Arc<Mutex<Slots>>,
    id: u64,
    eviction: Arc<Eviction>,
}

impl Slot {
    /// The request head is in: the connection no longer yields its slot.
    fn head_read(&self) {
        lock(&self.slots).reading.remove(&self.id);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = lock(&self.slots);
        slots.reading.remove(&self.id);
        if !self.eviction.done.load(Ordering::Relaxed) {
            slots.open = slots.open.saturating_sub(1);
        }
    }
}

/// Takes a slot for a new connection: a free one, else the oldest
/// connection still reading its head gives its slot up. `None` when every
/// slot is writing a response.
fn take_slot(slots: &Arc<Mutex<Slots>>, max: usize) -> Option<Slot> {
    let mut s = lock(slots);
    if s.open >= max {
        let (_, oldest) = s.reading.pop_first()?;
        // Its slot is ours now; its task closes the connection when it runs.
        oldest.done.store(true, Ordering::Relaxed);
        oldest.notify.notify_one();
        s.open -= 1;
        telemetry::http_connection_dropped(HttpDrop::Evicted);
    }
    s.open += 1;
    let id = s.next_id;
    s.next_id += 1;
    let eviction = Arc::new(Eviction::default());
    s.reading.insert(id, eviction.clone());
    Some(Slot {
        slots: slots.clone(),
        id,
        eviction,
    })
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    limits: Limits,
    router: Router,
    mut stop: oneshot::Receiver<()>,
) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let refusing = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match take_slot(&slots, limits.max_connections) {
                    Some(slot) => {
                        let router = router.clone();
                        tokio::spawn(async move {
                            if let Err(e) = serve_one(stream, &slot, &limits, &router).await {
                                debug!(%peer, error = %e, "metrics connection ended");
                            }
                            drop(slot);
                        });
                    }
                    None => refuse_busy(stream, &refusing, limits.max_connections),
                },
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Answers [`BUSY`] and closes. The answer is written at once; the
/// request is then read and discarded for at most [`REFUSAL_LINGER`] (closing
/// a socket with unread input resets it, and the client could lose the
/// answer). At most `max` refusals linger at once; beyond that a connection
/// is closed without an answer.
fn refuse_busy(stream: TcpStream, refusing: &Arc<AtomicUsize>, max: usize) {
    telemetry::http_connection_dropped(HttpDrop::Busy);
    if refusing.fetch_add(1, Ordering::Relaxed) >= max {
        refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            let mut read = 0;
            while read < MAX_REQUEST {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => read += n,
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

/// What the request head amounted to.
enum Head {
    Complete,
    Closed,
    TooLarge,
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Head> {
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Head::Complete);
        }
        if buf.len() > MAX_REQUEST {
            return Ok(Head::TooLarge);
        }
    }
}

async fn serve_one(
    mut stream: TcpStream,
    slot: &Slot,
    limits: &Limits,
    router: &Router,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::select! {
        head = tokio::time::timeout(limits.head_timeout, read_head(&mut stream, &mut buf)) => head,
        _ = slot.eviction.notify.notified() => return Ok(()),
    };
    slot.head_read();
    let (response, head_only) = match head {
        Ok(Ok(Head::Complete)) => {
            let head = String::from_utf8_lossy(&buf);
            let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
            let method = parts.next().unwrap_or_default();
            let target = parts.next().unwrap_or_default();
            (router(method, target), method == "HEAD")
        }
        Ok(Ok(Head::Closed)) => return Ok(()),
        Ok(Ok(Head::TooLarge)) => (text("400 Bad Request", "bad request\n"), false),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            telemetry::http_connection_dropped(HttpDrop::HeadTimeout);
            (text("408 Request Timeout", "timeout\n"), false)
        }
    };
    let written = tokio::time::timeout(
        limits.write_timeout,
        write_response(&mut stream, &response, head_only),
    )
    .await;
    match written {
        Ok(result) => result,
        Err(_) => {
            telemetry::http_connection_dropped(HttpDrop::WriteTimeout);
            Ok(())
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    r: &Response,
    head_only: bool,
) -> std::io::Result<()> {
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
