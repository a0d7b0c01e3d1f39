//! Serving the API over TCP with connection limits.
//!
//! [`serve`] accepts connections from one listener and serves HTTP/1.1 on each with hyper,
//! on the current tokio runtime. One [`Connections`] is shared by every listener of a
//! server; it counts open connections in all and per client IP address. What it enforces:
//!
//! - **Caps.** Past `max_connections` in all, or `max_connections_per_client` from one IP,
//!   a new connection is accepted and closed at once. It is never left in the kernel's
//!   accept backlog: a backlog full of one client's connections is what lets that client
//!   starve everyone else.
//! - **Header timeout.** A request's headers must be complete within `header_timeout`,
//!   counted from the accept for a connection's first request and from the first byte of
//!   each later one (keep-alive); otherwise the connection is closed.
//! - **Idle timeout.** A keep-alive connection with no request in progress and no byte of a
//!   new one for `idle_timeout` is closed.
//!
//! A request in progress (from its complete headers until its response has been written,
//! event streams included) is never cut by these timeouts; the request deadline
//! ([`crate::limits::deadline`]) bounds handlers.
//!
//! Why not hyper's own `header_read_timeout`: in hyper 1.x it covers the first request
//! from the start of the connection, but for a keep-alive connection it restarts as soon as
//! a response has been written, so the idle wait between requests counts as header time and
//! every idle keep-alive connection would be closed after `header_timeout`. Both timeouts
//! are therefore kept here, per connection, from what the connection does: bytes read,
//! requests started, responses finished.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// Default for [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default for [`ConnectionLimits::max_connections_per_client`]: room for a load test of a
/// few thousand connections from one host.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 4_096;
/// Default for [`ConnectionLimits::header_timeout`], in milliseconds.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Default for [`ConnectionLimits::idle_timeout`], in milliseconds. A minute: clients that
/// pool connections between bursts (a channel manager polling every 30 s) keep theirs, an
/// abandoned connection gives its slot back within a minute, and a proxy in front (HAProxy
/// drops its idle server connections after a few seconds by default) closes first, so it
/// does not reuse a connection at the moment we close it.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;

/// Name of the gauge of open HTTP connections.
pub const METRIC_CONNECTIONS_OPEN: &str = "innkeep_http_connections_open";
/// Name of the counter of connections closed at once because a cap was reached, by
/// `reason` (`per_client`, `total`).
pub const METRIC_CONNECTIONS_REFUSED: &str = "innkeep_http_connections_refused_total";
/// Name of the counter of connections closed by a timeout, by `kind` (`header`, `idle`).
pub const METRIC_CONNECTIONS_TIMED_OUT: &str = "innkeep_http_connections_timed_out_total";

/// How long the accept loop pauses after an accept error that is not about one connection
/// (out of file descriptors, say), as hyper 0.14 and `axum::serve` do.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The client's address. [`serve`] puts `ConnectInfo<ClientAddr>` into every request's
/// extensions; the rate limiter buckets anonymous requests by its IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// What [`serve`] allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once over every listener sharing the [`Connections`].
    pub max_connections: usize,
    /// Most connections open at once from one client IP address.
    pub max_connections_per_client: usize,
    /// Longest time a request's headers may take to arrive.
    pub header_timeout: Duration,
    /// Longest time a keep-alive connection may sit between requests.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            header_timeout: Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
        }
    }
}

/// The open connections of one server, in all and per client IP, shared by all its
/// listeners (clones share the counts).
#[derive(Clone, Debug)]
pub struct Connections {
    /// The limits and the counts.
    shared: Arc<Shared>,
}

/// What every clone of a [`Connections`] shares.
#[derive(Debug)]
struct Shared {
    /// The limits.
    limits: ConnectionLimits,
    /// The counts; the lock is held for a map update per accept and per close.
    counts: Mutex<Counts>,
}

/// Open connections.
#[derive(Debug, Default)]
struct Counts {
    /// In all.
    total: usize,
    /// Per client IP; an address without open connections has no entry.
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    /// `max_connections` reached.
    Total,
    /// `max_connections_per_client` reached for this client.
    PerClient,
}

impl Refused {
    /// The metric label.
    fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerClient => "per_client",
        }
    }
}

impl Connections {
    /// No connections yet, under `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                counts: Mutex::default(),
            }),
        }
    }

    /// Connections open now, over every listener.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    /// The limits.
    pub fn limits(&self) -> ConnectionLimits {
        self.shared.limits
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `ip`, or says which cap it would break.
    fn admit(&self, ip: IpAddr) -> Result<Slot, Refused> {
        // An IPv4 client reaching a dual-stack listener shows up as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let limits = &self.shared.limits;
        let mut counts = self.counts();
        if counts.total >= limits.max_connections {
            return Err(Refused::Total);
        }
        let mine = counts.per_client.entry(ip).or_insert(0);
        if *mine >= limits.max_connections_per_client {
            if *mine == 0 {
                counts.per_client.remove(&ip);
            }
            return Err(Refused::PerClient);
        }
        *mine += 1;
        counts.total += 1;
        drop(counts);
        metrics::gauge!(METRIC_CONNECTIONS_OPEN).increment(1.0);
        Ok(Slot {
            connections: self.clone(),
            ip,
        })
    }
}

impl Connections {
    /// Counts a new connection of another server sharing these caps (the gRPC API's) from
    /// `remote`: its place, given back when dropped, or `None` past a cap (counted and
    /// logged as a refused HTTP connection is; the caller closes it).
    pub fn admit_other(&self, remote: SocketAddr) -> Option<Admitted> {
        match self.admit(remote.ip()) {
            Ok(slot) => Some(Admitted { _slot: slot }),
            Err(refused) => {
                refuse(remote, refused);
                None
            }
        }
    }
}

/// A connection of another server counted in a [`Connections`]; its place is given back
/// when this is dropped (with the connection).
#[derive(Debug)]
pub struct Admitted {
    /// The place; held only to be given back on drop.
    _slot: Slot,
}

/// Counts and logs a connection refused for `refused`.
fn refuse(remote: SocketAddr, refused: Refused) {
    metrics::counter!(METRIC_CONNECTIONS_REFUSED, "reason" => refused.label()).increment(1);
    tracing::debug!(%remote, reason = refused.label(), "connection refused");
}

/// One open connection's place in the counts; given back on drop.
#[derive(Debug)]
struct Slot {
    /// Whose counts.
    connections: Connections,
    /// The client.
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.connections.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(mine) = counts.per_client.get_mut(&self.ip) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                counts.per_client.remove(&self.ip);
            }
        }
        drop(counts);
        metrics::gauge!(METRIC_CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// Serves `app` on every connection `listener` accepts, under the limits of `connections`,
/// until `shutdown` is cancelled. Then it stops accepting (the listener is closed), asks
/// every open connection to finish (a request in progress is answered, with
/// `Connection: close`; an idle connection is closed) and returns once all have ended.
/// The caller bounds that wait if it wants to.
///
/// Runs on the current tokio runtime, a current-thread one included: each connection is a
/// task of its own (`tokio::spawn`). Accept errors are logged and retried, so this returns
/// `Ok` once shut down.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    connections: Connections,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let here: Dealer = Arc::new(|task| drop(tokio::spawn(task)));
    serve_dealt(listener, app, connections, shutdown, here).await
}

/// A connection's task, ready to run on whichever runtime it is dealt to.
pub type ConnectionTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where each accepted connection runs: called once per connection with its task, which
/// it spawns on a runtime of its choice (a task dropped unspawned closes the connection).
pub type Dealer = Arc<dyn Fn(ConnectionTask) + Send + Sync>;

/// [`serve`], with each accepted connection run where `deal` puts it: the server deals
/// connections round-robin to its shards, so each shard serves an even share however the
/// connections arrive. The socket is handed over unregistered and registers with the
/// runtime its task runs on.
pub async fn serve_dealt(
    listener: TcpListener,
    app: Router,
    connections: Connections,
    shutdown: CancellationToken,
    deal: Dealer,
) -> io::Result<()> {
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            // The peer gave up before we accepted; nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "accept error; pausing before accepting again");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        match connections.admit(remote.ip()) {
            Ok(slot) => {
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "cannot hand the connection over");
                        continue;
                    }
                };
                let (app, shutdown) = (app.clone(), shutdown.clone());
                deal(Box::pin(tasks.track_future(async move {
                    match TcpStream::from_std(stream) {
                        Ok(stream) => connection(stream, remote, slot, app, shutdown).await,
                        Err(e) => {
                            tracing::debug!(%remote, error = %e, "cannot serve the connection")
                        }
                    }
                })));
            }
            Err(refused) => {
                refuse(remote, refused);
                drop(stream);
            }
        }
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Errors about one connection, not about the listener.
pub fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Which timeout closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimedOut {
    /// A request's headers did not arrive in time.
    Header,
    /// No request came in time.
    Idle,
}

impl TimedOut {
    /// The metric label.
    fn label(self) -> &'static str {
        match self {
            TimedOut::Header => "header",
            TimedOut::Idle => "idle",
        }
    }
}

/// How a connection's task ended.
enum End {
    /// hyper finished with it: the client closed it, an error, or the graceful shutdown.
    Served(hyper::Result<()>),
    /// A timeout fired.
    TimedOut(TimedOut),
}

/// Serves one connection until it ends or a timeout closes it (by dropping it).
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
    app: Router,
    shutdown: CancellationToken,
) {
    let limits = slot.connections.limits();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(ClientAddr(remote)));
            let busy = activity.begin();
            let call = Service::call(&mut app.clone(), req);
            async move {
                let res = match call.await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(res.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    let mut builder = http1::Builder::new();
    // Ours, in `Activity`; see the module docs.
    builder.header_read_timeout(None);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut stop = pin!(shutdown.cancelled());
    let mut stopping = false;
    let mut timer = pin!(tokio::time::sleep(limits.header_timeout));
    let mut armed: Option<Instant> = None;

    // Every change of `activity` happens while `conn` is polled (reads, the service, the
    // response body all run inside it), so the deadline is brought up to date right after.
    let end = poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(End::Served(result));
        }
        let Some((at, kind)) = activity.deadline(&limits) else {
            return Poll::Pending;
        };
        if armed != Some(at) {
            timer.as_mut().reset(at);
            armed = Some(at);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(End::TimedOut(kind)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    match end {
        End::Served(Ok(())) => {}
        End::Served(Err(e)) => tracing::debug!(%remote, error = %e, "connection error"),
        End::TimedOut(kind) => {
            metrics::counter!(METRIC_CONNECTIONS_TIMED_OUT, "kind" => kind.label()).increment(1);
            tracing::debug!(%remote, timeout = kind.label(), "connection timed out");
        }
    }
    // `conn` (and with it the socket) is dropped here, then `slot`.
}

/// What a connection is doing, for its timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers since then: the accept, or the first byte of a
    /// request after an idle wait.
    Head(Instant),
    /// This many requests are being answered (under HTTP/1.1, one).
    Busy(usize),
    /// Between requests since then (the last response finished).
    Idle(Instant),
}

/// A connection's [`Phase`], updated by its socket, its service and its response bodies.
#[derive(Debug)]
struct Activity {
    /// Only the connection's task touches it, so the lock is never contended.
    phase: Mutex<Phase>,
}

impl Activity {
    /// A connection just accepted: waiting for its first request.
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: after an idle wait they start a request, whose headers are now timed.
    fn read(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
        }
    }

    /// A request's headers are complete; it is in progress until the guard is dropped
    /// (with the response body, once it has been written).
    fn begin(self: &Arc<Self>) -> BusyGuard {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
        };
        BusyGuard(self.clone())
    }

    /// When the connection is to be closed and why; `None` while a request is in progress.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, TimedOut)> {
        match *self.phase() {
            Phase::Head(since) => Some((since + limits.header_timeout, TimedOut::Header)),
            Phase::Idle(since) => Some((since + limits.idle_timeout, TimedOut::Idle)),
            Phase::Busy(_) => None,
        }
    }
}

/// A request in progress; dropping it ends it.
#[derive(Debug)]
struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
    }
}

/// A response body holding its request's [`BusyGuard`]: hyper drops the body once it has
/// written all of it (or the connection ends).
#[derive(Debug)]
struct Tracked {
    /// The router's body.
    body: Body,
    /// Ends the request when dropped.
    _busy: BusyGuard,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
#[derive(Debug)]
struct Watched {
    /// The socket.
    io: TcpStream,
    /// Told about reads.
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
