//! [`crate::serve::serve`] on real loopback sockets, with short timeouts, on the
//! current-thread runtime `#[tokio::test]` gives (the one the shards will use).
//!
//! Events are awaited; [`GUARD`] only bounds a wait that should end quickly, and elapsed
//! times are asserted only as lower bounds (a timer never fires early).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use crate::serve::{
    serve, ClientAddr, ConnectionLimits, Connections, METRIC_CONNECTIONS_REFUSED,
    METRIC_CONNECTIONS_TIMED_OUT,
};

/// Failure guard for something that should happen promptly; far below [`LONG`].
const GUARD: Duration = Duration::from_secs(5);
/// A timeout meant to fire during a test.
const SHORT: Duration = Duration::from_millis(300);
/// A timeout meant never to fire during a test.
const LONG: Duration = Duration::from_secs(60);

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: innkeep\r\n\r\n";
const GET_WAIT: &[u8] = b"GET /wait HTTP/1.1\r\nhost: innkeep\r\n\r\n";

fn limits(header: Duration, idle: Duration, max: usize, per_client: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: max,
        max_connections_per_client: per_client,
        header_timeout: header,
        idle_timeout: idle,
    }
}

/// Lets a test hold `/wait` in progress: the handler says it started, then waits.
#[derive(Clone, Default)]
struct Gate {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

/// `/` answers the client's IP from `ConnectInfo<ClientAddr>`; `/wait` waits for the gate.
fn app(gate: &Gate) -> Router {
    let gate = gate.clone();
    Router::new()
        .route(
            "/",
            get(
                |ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>| async move {
                    peer.ip().to_string()
                },
            ),
        )
        .route(
            "/wait",
            get(move || {
                let gate = gate.clone();
                async move {
                    gate.started.notify_one();
                    gate.release.notified().await;
                    "done"
                }
            }),
        )
}

struct Server {
    addr: SocketAddr,
    connections: Connections,
    shutdown: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

/// `serve` on a fresh loopback listener, counting into `connections`.
async fn start_with(connections: &Connections, app: Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, app, connections.clone(), shutdown.clone()));
    Server {
        addr,
        connections: connections.clone(),
        shutdown,
        task,
    }
}

async fn start(limits: ConnectionLimits, app: Router) -> Server {
    start_with(&Connections::new(limits), app).await
}

/// A connection to `to` from the loopback address `from` (any 127.x works on Linux).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

async fn connect(to: SocketAddr) -> TcpStream {
    connect_from([127, 0, 0, 1], to).await
}

/// Reads one response (with a `content-length` body): its head and its body.
async fn response(c: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("content-length");
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8(buf[end + 4..end + 4 + len].to_vec()).unwrap();
                return (head.to_ascii_lowercase(), body);
            }
        }
        let mut chunk = [0u8; 1024];
        let n = timeout(GUARD, c.read(&mut chunk))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `GET /` and returns the body (the client IP the server saw).
async fn get_root(c: &mut TcpStream) -> String {
    c.write_all(GET).await.unwrap();
    let (head, body) = response(c).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    body
}

/// Waits (at most [`GUARD`]) for the server to close `c` without sending anything.
async fn closed(c: &mut TcpStream) {
    let mut buf = [0u8; 256];
    match timeout(GUARD, c.read(&mut buf))
        .await
        .expect("the server should have closed the connection")
    {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "expected the connection closed, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

/// The sum of a metric's samples whose line contains `label`, from this process's
/// recorder (shared by every test, so callers compare before and after with `>=`).
fn metric(name: &str, label: &str) -> f64 {
    let text = crate::metrics::install()
        .expect("the prometheus recorder")
        .render();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `connections` counts `n` open connections (the server noticed a close).
async fn open_becomes(connections: &Connections, n: usize) {
    timeout(GUARD, async {
        while connections.open() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("open connections stayed {}", connections.open()));
}

/// A connection that sends nothing, or half a request line, is closed after the header
/// timeout; one whose headers complete in time is served.
#[tokio::test]
async fn first_request_headers_must_arrive_within_the_header_timeout() {
    let before = metric(METRIC_CONNECTIONS_TIMED_OUT, "kind=\"header\"");
    let s = start(limits(SHORT, LONG, 100, 100), app(&Gate::default())).await;
    let t0 = Instant::now();
    let mut silent = connect(s.addr).await;
    let mut half = connect(s.addr).await;
    half.write_all(b"GET / HT").await.unwrap();
    let mut in_time = connect(s.addr).await;
    in_time.write_all(b"GET / HT").await.unwrap();
    in_time
        .write_all(b"TP/1.1\r\nhost: innkeep\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut in_time).await.1, "127.0.0.1");

    closed(&mut half).await;
    closed(&mut silent).await;
    assert!(t0.elapsed() >= SHORT, "closed before the header timeout");
    assert_eq!(
        s.connections.open(),
        1,
        "only the served connection is left"
    );
    assert!(metric(METRIC_CONNECTIONS_TIMED_OUT, "kind=\"header\"") >= before + 2.0);
}

/// On a keep-alive connection the wait between requests is not header time (it may last
/// longer than the header timeout), but once a request's first byte arrives its headers
/// are timed.
#[tokio::test]
async fn keep_alive_request_headers_are_timed_from_their_first_byte() {
    let s = start(limits(SHORT, LONG, 100, 100), app(&Gate::default())).await;
    let mut c = connect(s.addr).await;
    assert_eq!(get_root(&mut c).await, "127.0.0.1");
    // A connection opened after that response is closed by its header timeout: by then
    // `c` has been idle for longer than the header timeout.
    let mut clock = connect(s.addr).await;
    closed(&mut clock).await;
    assert_eq!(
        get_root(&mut c).await,
        "127.0.0.1",
        "idle time counted as header time"
    );

    let sent = Instant::now();
    c.write_all(b"GET / HT").await.unwrap();
    closed(&mut c).await;
    assert!(sent.elapsed() >= SHORT, "closed before the header timeout");
}

/// A keep-alive connection without a request is closed after the idle timeout (not the
/// shorter header timeout), while a request in progress for longer than both is answered.
#[tokio::test]
async fn idle_connection_is_closed_but_a_request_in_progress_is_not() {
    let header = Duration::from_millis(200);
    let idle = Duration::from_millis(400);
    let gate = Gate::default();
    let s = start(limits(header, idle, 100, 100), app(&gate)).await;
    let mut busy = connect(s.addr).await;
    busy.write_all(GET_WAIT).await.unwrap();
    timeout(GUARD, gate.started.notified())
        .await
        .expect("/wait started");

    let before = metric(METRIC_CONNECTIONS_TIMED_OUT, "kind=\"idle\"");
    let sent = Instant::now();
    let mut idle_conn = connect(s.addr).await;
    assert_eq!(get_root(&mut idle_conn).await, "127.0.0.1");
    closed(&mut idle_conn).await;
    assert!(
        sent.elapsed() >= idle,
        "closed after {:?}, before the idle timeout",
        sent.elapsed()
    );
    assert!(metric(METRIC_CONNECTIONS_TIMED_OUT, "kind=\"idle\"") >= before + 1.0);

    // `busy` has now been in progress for longer than either timeout.
    assert_eq!(s.connections.open(), 1);
    gate.release.notify_one();
    let (head, body) = response(&mut busy).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "done");
}

/// Past `max_connections_per_client` a client's new connection is closed at once, counted
/// over every listener sharing the `Connections`; another client is still served, and a
/// closed connection frees its slot.
#[tokio::test]
async fn per_client_cap_closes_the_excess_at_once() {
    let before = metric(METRIC_CONNECTIONS_REFUSED, "reason=\"per_client\"");
    let connections = Connections::new(limits(LONG, LONG, 100, 2));
    let gate = Gate::default();
    let s1 = start_with(&connections, app(&gate)).await;
    let s2 = start_with(&connections, app(&gate)).await;
    let mut a1 = connect(s1.addr).await;
    let mut a2 = connect(s2.addr).await;
    assert_eq!(get_root(&mut a1).await, "127.0.0.1");
    assert_eq!(get_root(&mut a2).await, "127.0.0.1");

    let mut a3 = connect(s1.addr).await;
    // The server may already have closed it; the write may fail then.
    let _ = a3.write_all(GET).await;
    closed(&mut a3).await;
    assert!(metric(METRIC_CONNECTIONS_REFUSED, "reason=\"per_client\"") >= before + 1.0);

    let mut b1 = connect_from([127, 0, 0, 2], s1.addr).await;
    assert_eq!(get_root(&mut b1).await, "127.0.0.2");
    assert_eq!(connections.open(), 3);

    drop(a1);
    open_becomes(&connections, 2).await;
    let mut a4 = connect(s2.addr).await;
    assert_eq!(get_root(&mut a4).await, "127.0.0.1");
    assert_eq!(get_root(&mut a2).await, "127.0.0.1");
}

/// Past `max_connections` any new connection is closed at once.
#[tokio::test]
async fn total_cap_closes_the_excess_at_once() {
    let before = metric(METRIC_CONNECTIONS_REFUSED, "reason=\"total\"");
    let s = start(limits(LONG, LONG, 2, 100), app(&Gate::default())).await;
    let mut c1 = connect_from([127, 0, 0, 1], s.addr).await;
    let mut c2 = connect_from([127, 0, 0, 2], s.addr).await;
    assert_eq!(get_root(&mut c1).await, "127.0.0.1");
    assert_eq!(get_root(&mut c2).await, "127.0.0.2");
    let mut c3 = connect_from([127, 0, 0, 3], s.addr).await;
    let _ = c3.write_all(GET).await;
    closed(&mut c3).await;
    assert!(metric(METRIC_CONNECTIONS_REFUSED, "reason=\"total\"") >= before + 1.0);
    assert_eq!(s.connections.open(), 2);
    assert_eq!(get_root(&mut c1).await, "127.0.0.1");
}

/// On shutdown an idle connection is closed at once, a request in progress is answered
/// (`connection: close`), and `serve` returns once it has ended; the listener is closed.
#[tokio::test]
async fn graceful_shutdown_finishes_requests_then_returns() {
    let gate = Gate::default();
    let s = start(limits(LONG, LONG, 100, 100), app(&gate)).await;
    let mut busy = connect(s.addr).await;
    busy.write_all(GET_WAIT).await.unwrap();
    timeout(GUARD, gate.started.notified())
        .await
        .expect("/wait started");
    let mut idle = connect(s.addr).await;
    assert_eq!(get_root(&mut idle).await, "127.0.0.1");

    s.shutdown.cancel();
    closed(&mut idle).await;
    assert!(!s.task.is_finished(), "returned with a request in progress");
    gate.release.notify_one();
    let (head, body) = response(&mut busy).await;
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "done");
    closed(&mut busy).await;
    timeout(GUARD, s.task)
        .await
        .expect("serve returned")
        .expect("serve task")
        .expect("serve result");
    assert_eq!(s.connections.open(), 0);
    assert!(TcpStream::connect(s.addr).await.is_err(), "still listening");
}
