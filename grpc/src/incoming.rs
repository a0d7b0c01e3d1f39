//! The gRPC listener's connections, under the HTTP server's connection caps.
//!
//! Each accepted connection takes a place in the shared [`Connections`] (in all and per
//! client IP) or is closed at once, as an HTTP connection past a cap is; the place is
//! given back when tonic drops the connection. An accept error that is not about one
//! connection (out of file descriptors) pauses the loop as HTTP's does, instead of
//! spinning.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{self, Stream};
use innkeep_http::serve::{is_connection_error, Admitted, ACCEPT_ERROR_PAUSE};
use innkeep_http::Connections;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// An accepted connection holding its place in the caps.
#[derive(Debug)]
pub struct Counted {
    /// The connection.
    stream: TcpStream,
    /// Its place; given back on drop.
    _place: Admitted,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    /// The addresses, so a call's `remote_addr()` (the rate limiter's anonymous bucket)
    /// works as on a plain `TcpStream`.
    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

/// The connections `listener` accepts that fit under the caps of `connections`. Never
/// yields an error: those are handled here.
pub fn counted(
    listener: TcpListener,
    connections: Connections,
) -> impl Stream<Item = io::Result<Counted>> + Send + 'static {
    stream::unfold(
        (listener, connections),
        |(listener, connections)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        if let Some(place) = connections.admit_other(remote) {
                            let _ = stream.set_nodelay(true);
                            let counted = Counted {
                                stream,
                                _place: place,
                            };
                            return Some((Ok(counted), (listener, connections)));
                        }
                    }
                    // The peer gave up before we accepted; nothing to do.
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "gRPC accept error; pausing before accepting again");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use innkeep_http::ConnectionLimits;

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_and_places_come_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Connections::new(ConnectionLimits {
            max_connections: 1,
            ..ConnectionLimits::default()
        });
        let mut incoming = Box::pin(counted(listener, connections.clone()));
        let first = TcpStream::connect(addr).await.unwrap();
        let served = incoming.next().await.unwrap().unwrap();
        assert_eq!(connections.open(), 1);
        assert_eq!(
            served.connect_info().remote_addr,
            Some(first.local_addr().unwrap())
        );
        // The accept loop runs on while we connect again.
        let next = tokio::spawn(async move { incoming.next().await });
        // Past the cap: accepted and closed at once, so the client reads the end.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(&mut second, &mut buf).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert_eq!(connections.open(), 1);
        // The place comes back with the connection, and the next one gets it.
        drop(served);
        assert_eq!(connections.open(), 0);
        let _third = TcpStream::connect(addr).await.unwrap();
        let third_served = next.await.unwrap().unwrap().unwrap();
        assert_eq!(connections.open(), 1);
        drop(third_served);
        assert_eq!(connections.open(), 0);
        drop(first);
    }
}
