//! The endpoint server under idle, slow and stuck clients (loopback only,
//! bounded counts). Deadlines asserted here are liveness requirements (a
//! probe must be answered within 1 s), not performance figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::server::{Limits, Router};
use super::{MetricsServer, Response, serve_with, text};

/// A body far larger than loopback socket buffers, so a client that does
/// not read it leaves the server's write stuck.
const BIG: usize = 16 << 20;

fn test_router() -> Router {
    Arc::new(|_method: &str, target: &str| match target {
        "/health" => text("200 OK", "ok\n"),
        "/big" => Response {
            status: "200 OK",
            body: "x".repeat(BIG),
            content_type: "text/plain",
        },
        _ => text("404 Not Found", "no\n"),
    })
}

fn start(limits: Limits) -> MetricsServer {
    serve_with("127.0.0.1:0", limits, test_router()).unwrap()
}

/// Sends `GET path` and reads the whole response; `None` if it does not
/// come within `deadline`.
fn get_within(addr: SocketAddr, path: &str, deadline: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, deadline).ok()?;
    s.set_read_timeout(Some(deadline)).ok()?;
    s.set_write_timeout(Some(deadline)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let started = Instant::now();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
        if started.elapsed() > deadline {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Opens a connection that asks for `/big` and never reads.
fn stuck_reader(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\n\r\n").unwrap();
    s
}

#[test]
fn health_is_answered_while_200_idle_and_slow_clients_hold_connections() {
    let server = start(Limits::default());
    let addr = server.addr();
    let mut flood = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(addr).unwrap();
        if i % 2 == 1 {
            // A slow client: part of a request head, then nothing.
            s.write_all(b"GET /hea").unwrap();
        }
        flood.push(s);
    }
    for round in 0..5 {
        let answer = get_within(addr, "/health", Duration::from_secs(1))
            .unwrap_or_else(|| panic!("/health round {round} not answered within 1 s"));
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
    }
    // The oldest idle clients gave their slots up: they were closed.
    let first = &mut flood[0];
    first
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        first.read(&mut buf).unwrap(),
        0,
        "the oldest idle connection was closed for a newer one"
    );
}

#[test]
fn a_full_server_of_stuck_writers_answers_503_at_once_then_frees_them() {
    let limits = Limits {
        max_connections: 3,
        head_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_millis(800),
    };
    let server = start(limits);
    let addr = server.addr();
    let stuck: Vec<TcpStream> = (0..3).map(|_| stuck_reader(addr)).collect();
    // Let the server read the three heads and start writing.
    std::thread::sleep(Duration::from_millis(200));
    let answer = get_within(addr, "/health", Duration::from_secs(1))
        .expect("a refused connection is answered at once");
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("busy\n"), "{answer}");
    // The write deadline frees the slots of the clients that never read.
    std::thread::sleep(limits.write_timeout + Duration::from_millis(400));
    let answer = get_within(addr, "/health", Duration::from_secs(1)).expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    drop(stuck);
}

#[test]
fn shutdown_does_not_wait_for_clients_that_stopped_reading() {
    let limits = Limits {
        write_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let server = start(limits);
    let addr = server.addr();
    let mut stuck: Vec<TcpStream> = (0..4).map(|_| stuck_reader(addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let stopping = Instant::now();
    drop(server);
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    // And the stuck connections were closed, not left open: reading one
    // drains what was buffered, then ends.
    let s = &mut stuck[0];
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection still open after shutdown: {e}"),
        }
    }
}

#[test]
fn the_real_routes_answer_health_ready_and_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let server = super::serve("127.0.0.1:0", handle).unwrap();
    let addr = server.addr();
    let health = get_within(addr, "/health", Duration::from_secs(5)).unwrap();
    // Another test of this crate may hold a stage failure for a moment.
    assert!(
        health.starts_with("HTTP/1.1 200 OK\r\n") || health.contains("\r\n\r\nfailed: "),
        "{health}"
    );
    let ready = get_within(addr, "/ready", Duration::from_secs(5)).unwrap();
    assert!(ready.contains("Content-Type: text/plain"), "{ready}");
    let metrics = get_within(addr, "/metrics", Duration::from_secs(5)).unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    let missing = get_within(addr, "/nope", Duration::from_secs(5)).unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}
