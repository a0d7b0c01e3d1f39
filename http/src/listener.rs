//! A connection limit for `axum::serve`: [`LimitedListener`] accepts a connection only
//! while it holds one of `max` permits, and the permit goes back when the connection
//! closes. Past the limit new connections wait in the kernel's accept backlog (they are
//! not refused), so a burst is served as connections free up instead of failing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default for the `max_connections` setting.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Name of the gauge of open HTTP connections.
pub const METRIC_CONNECTIONS_OPEN: &str = "innkeep_http_connections_open";

/// A listener that keeps at most `max` connections open at once.
#[derive(Debug)]
pub struct LimitedListener<L> {
    /// The listener accepting the connections.
    inner: L,
    /// One permit per open connection.
    permits: Arc<Semaphore>,
}

impl<L> LimitedListener<L> {
    /// Wraps `inner`, allowing `max` open connections (at least 1).
    pub fn new(inner: L, max: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// Connections that may still be opened now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

impl<L: Listener> Listener for LimitedListener<L> {
    type Io = LimitedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Wait for a free slot before accepting, so excess connections stay in the
        // backlog. The semaphore is never closed, so this cannot fail.
        let permit = loop {
            if let Ok(p) = self.permits.clone().acquire_owned().await {
                break p;
            }
        };
        let (io, addr) = self.inner.accept().await;
        metrics::gauge!(METRIC_CONNECTIONS_OPEN).increment(1.0);
        (
            LimitedIo {
                io,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection holding its permit; dropping it (the connection closed) frees the slot.
#[derive(Debug)]
pub struct LimitedIo<T> {
    /// The connection.
    io: T,
    /// Given back on drop.
    _permit: OwnedSemaphorePermit,
}

impl<T> Drop for LimitedIo<T> {
    fn drop(&mut self) {
        metrics::gauge!(METRIC_CONNECTIONS_OPEN).decrement(1.0);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LimitedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LimitedIo<T> {
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

/// The client's address, as connect info for any listener whose addresses are socket
/// addresses behind a [`LimitedListener`] (axum provides `SocketAddr` connect info only for
/// a bare `TcpListener`).
/// Serve with `into_make_service_with_connect_info::<ClientAddr>()`; the rate limiter
/// buckets anonymous requests by its IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl<L> Connected<IncomingStream<'_, LimitedListener<L>>> for ClientAddr
where
    L: Listener<Addr = SocketAddr>,
{
    fn connect_info(stream: IncomingStream<'_, LimitedListener<L>>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}
