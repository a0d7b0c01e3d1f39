//! Slow clients through the real binary: one host holding thousands of half-sent requests
//! neither starves other clients nor keeps its connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;

use crate::harness::{booking, hotel, plus, send, today, Server};

/// Connections the slow client opens, all from 127.0.0.2.
const SLOW: usize = 3_000;
/// `max_connections_per_client` of the server under test.
const PER_CLIENT: usize = 1_000;
/// `header_timeout_ms` of the server under test.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Failure guard for waits that should end much sooner.
const GUARD: Duration = Duration::from_secs(30);

/// What happened to one slow connection.
#[derive(Debug)]
enum Slow {
    /// The server closed it (EOF or reset) at that instant, sending nothing.
    Closed(Instant),
    /// The server sent bytes: a bug, since the request is never complete.
    Answered(String),
}

/// The sum of a metric's samples whose line contains `label` (empty: all).
fn sample(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// When the server closed the next slow connection.
async fn next_closed(rx: &mut mpsc::UnboundedReceiver<Slow>) -> Instant {
    match rx.recv().await.expect("a slow connection's outcome") {
        Slow::Closed(at) => at,
        Slow::Answered(text) => panic!("a half-sent request was answered: {text:?}"),
    }
}

/// `(refused per client, timed out in the headers, open)` from `/metrics`.
async fn connection_metrics(c: &reqwest::Client, s: &Server) -> (f64, f64, f64) {
    let text = c
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics body");
    (
        sample(
            &text,
            "innkeep_http_connections_refused_total",
            "reason=\"per_client\"",
        ),
        sample(
            &text,
            "innkeep_http_connections_timed_out_total",
            "kind=\"header\"",
        ),
        sample(&text, "innkeep_http_connections_open", ""),
    )
}

/// 3 000 connections from 127.0.0.2, each with half a request line: the 2 000 past the
/// per-client cap are closed at once, and while the other 1 000 are held, `/healthz` and a
/// booking from 127.0.0.1 are answered; then the header timeout closes the 1 000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_neither_starve_others_nor_keep_their_connections() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            (
                "INNKEEP_LIMITS_MAX_CONNECTIONS_PER_CLIENT",
                &PER_CLIENT.to_string(),
            ),
            (
                "INNKEEP_LIMITS_HEADER_TIMEOUT_MS",
                &HEADER_TIMEOUT.as_millis().to_string(),
            ),
        ],
    );
    // No pooling: a pooled client may open a connection for a request, serve the request
    // on another connection that fell free meanwhile, and park the new one unused, which
    // the server rightly closes after the header timeout, one more in the counter this
    // test reads (seen once in CI: 1 001 header timeouts). Without a pool every
    // connection carries its request at once.
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    hotel(&c, &s, "SLOW", "UTC", 2).await;
    let addr: SocketAddr = s
        .base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("server address");

    let (tx, mut rx) = mpsc::unbounded_channel::<Slow>();
    let started = Instant::now();
    for _ in 0..SLOW {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        let mut conn = socket.connect(addr).await.expect("connect from 127.0.0.2");
        let tx = tx.clone();
        tokio::spawn(async move {
            // A refused connection may be closed before this write, which then fails.
            let mut buf = [0u8; 256];
            let outcome = match conn.write_all(b"GET /healthz HT").await {
                Err(_) => Slow::Closed(Instant::now()),
                Ok(()) => match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => Slow::Closed(Instant::now()),
                    Ok(n) => Slow::Answered(String::from_utf8_lossy(&buf[..n]).into_owned()),
                },
            };
            let _ = tx.send(outcome);
        });
    }
    drop(tx);
    let opened = started.elapsed();

    // The connections past the cap are closed at once: before any header timeout fired.
    tokio::time::timeout(GUARD, async {
        for _ in 0..SLOW - PER_CLIENT {
            next_closed(&mut rx).await;
        }
    })
    .await
    .expect("the connections past the cap were closed");
    let refused_after = started.elapsed();
    let (refused, timed_out, open) = connection_metrics(&c, &s).await;
    assert_eq!(refused, (SLOW - PER_CLIENT) as f64);
    assert_eq!(timed_out, 0.0, "a header timeout fired before the refusals");
    assert!(open >= PER_CLIENT as f64, "open: {open}");

    // While the rest are held, other clients are served.
    let t = Instant::now();
    let (status, body, _) = send(c.get(s.url("/healthz"))).await;
    assert_eq!(status, 200, "{body}");
    let healthz = t.elapsed();
    let t = Instant::now();
    let day = today("UTC");
    let (status, body, _) = send(
        c.post(s.url("/v1/hotels/SLOW/reservations"))
            .json(&booking(plus(day, 1), plus(day, 2))),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let booked = t.elapsed();
    let (_, timed_out, _) = connection_metrics(&c, &s).await;
    assert_eq!(timed_out, 0.0, "the slow connections were no longer held");
    assert!(rx.is_empty(), "a held connection was closed early");
    let served_after = started.elapsed();

    // The server closes the held ones after the header timeout.
    let held: Vec<Instant> = tokio::time::timeout(GUARD, async {
        let mut held = Vec::with_capacity(PER_CLIENT);
        for _ in 0..PER_CLIENT {
            held.push(next_closed(&mut rx).await);
        }
        held
    })
    .await
    .expect("the held connections were closed");
    let first = held.iter().min().expect("held connections");
    assert!(
        first.duration_since(started) >= HEADER_TIMEOUT,
        "a held connection was closed before the header timeout"
    );
    let (refused, timed_out, open) = connection_metrics(&c, &s).await;
    assert_eq!(refused, (SLOW - PER_CLIENT) as f64);
    assert_eq!(timed_out, PER_CLIENT as f64);
    assert!(open < 10.0, "open: {open}");
    eprintln!(
        "slow clients: {SLOW} opened in {opened:?}; {} refused by {refused_after:?}; \
         /healthz {healthz:?}, booking {booked:?}, served by {served_after:?}; \
         held ones closed {:?}..{:?} after the start",
        SLOW - PER_CLIENT,
        first.duration_since(started),
        held.iter().max().expect("held").duration_since(started),
    );
    // Seen failing once (exit status not success), not reproduced since: the log says why
    // next time.
    let (status, lines) = s.stop();
    assert!(
        status.success(),
        "{status:?}; the server logged: {lines:#?}"
    );
}
