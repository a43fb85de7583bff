//! Serving the HTTP API with its connections bounded.
//!
//! [`serve_api`] accepts connections itself (instead of `axum::serve`, which has no timer and
//! no cap) and serves each with hyper's HTTP/1.1, upgrades (WebSockets) included:
//!
//! - **header-read timeout**: a connection must send a whole request head within
//!   [`ConnectionLimits::header_read_timeout`] of the moment the server starts waiting for
//!   one — so a silent connection, a slowloris head sent a byte at a time, and an idle
//!   keep-alive connection between requests are all closed when it runs out. A request being
//!   answered (a long download, an event stream, an upgraded WebSocket) is not affected; the
//!   request timeout bounds ordinary handlers;
//! - **a cap on open connections** ([`ConnectionLimits::max_connections`]): past it the server
//!   stops accepting until one closes, so descriptors cannot be exhausted through the API; a
//!   connection holds its slot ([`Bounded`]) for as long as it lives, upgraded WebSockets too;
//! - the socket peer's address as axum's `ConnectInfo`, for audit and throttling;
//! - on shutdown, every connection is asked to finish its request and close, and the server
//!   waits for them up to [`DRAIN`].
//!
//! Requests whose line or head is larger than hyper's own buffer are refused by hyper before
//! any handler; the application's smaller limits (the `bounds` layer of [`crate::app()`]: URI, header
//! size, body) answer with problem documents.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;
use tower::ServiceExt as _;

/// How long shutdown waits for open connections to finish.
pub const DRAIN: Duration = Duration::from_secs(30);

/// The bounds on the API's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; past it the server stops accepting until one closes.
    pub max_connections: usize,
    /// How long the server waits for a request head (see the module docs).
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then drains.
pub async fn serve_api(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close rather
                    // than spin on the error.
                    tracing::warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
        let service = TowerToHyperService::new(service);
        let http = Arc::clone(&http);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            // The connection owns its slot, an upgraded WebSocket included.
            let connection = http
                .serve_connection(TokioIo::new(Bounded::new(tcp, permit)), service)
                .with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopping(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "API connection ended");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(DRAIN, permits.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!(
            "connections still open after {}s; stopping anyway",
            DRAIN.as_secs()
        );
    }
}

/// Resolves once shutdown has begun (or the server is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// A connection that holds its slot of a connection cap for as long as it lives — through an
/// HTTP upgrade too, since the upgraded stream owns it — and, when given an idle timeout,
/// fails once it has received nothing for that long; given an end
/// ([`Bounded::end_within`]), it fails then whatever it receives.
pub struct Bounded<S> {
    inner: S,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    end: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl<S> Bounded<S> {
    /// Wraps `inner`, holding `permit` until dropped.
    pub fn new(inner: S, permit: OwnedSemaphorePermit) -> Self {
        Bounded {
            inner,
            idle: None,
            end: None,
            _permit: permit,
        }
    }

    /// Fails reads from `within` from now on, however busy the connection is.
    pub fn end_within(&mut self, within: Duration) {
        self.end = Some(Box::pin(tokio::time::sleep(within)));
    }

    /// Fails reads once nothing arrived for `timeout`.
    pub fn idle(mut self, timeout: Duration) -> Self {
        self.idle = Some((timeout, Box::pin(tokio::time::sleep(timeout))));
        self
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        if let Some(end) = &mut this.end
            && end.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the connection outlived the time it is given",
            )));
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if let Some((timeout, deadline)) = &mut this.idle
                    && buf.filled().len() > before
                {
                    let next = Instant::now() + *timeout;
                    deadline.as_mut().reset(next);
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = match &mut this.idle {
                    Some((_, deadline)) => deadline.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the connection was silent for too long",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Bounded<TcpStream> {
    type ConnectInfo = <TcpStream as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
