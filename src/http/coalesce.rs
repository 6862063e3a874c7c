//! Write coalescing for HTTP/1.1 connections: the responses hyper writes are gathered in a
//! buffer and sent when the connection's task is about to sleep (nothing left to read, or a
//! handler waiting), so the answers to pipelined requests leave in one `send` instead of one
//! each, and a lone request's answer leaves exactly when it would have: before the task waits.
//!
//! hyper's own `pipeline_flush` option does the same only while its read buffer is not empty,
//! which holds a response back for as long as a client leaves a stray line or half a request
//! after it (an extra CRLF after a POST body stalls until the header timeout); here a response
//! is never held while the task sleeps. The buffer is capped at [`MAX_PENDING`]: past it,
//! writes go out at once and a client that does not read gets backpressure, as without this.
//!
//! [`Coalesced`] is the I/O hyper gets; [`FlushOnIdle`] wraps the connection's future and sends
//! what is buffered each time that future returns `Pending` (and once more when it ends).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes buffered before writes go straight out (and then wait for the socket).
pub const MAX_PENDING: usize = 64 * 1024;

struct State<S> {
    io: S,
    /// Written by hyper, not yet sent: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
}

impl<S: AsyncWrite + Unpin> State<S> {
    /// Sends what is buffered; `Ready(Ok)` once all of it is out.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > MAX_PENDING {
            self.out = Vec::new();
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Buffers `bufs` (`len` bytes in all), or, when they would not fit under
    /// [`MAX_PENDING`], sends what is buffered and then writes bufs of that size or more
    /// straight to the socket (a large body is neither copied nor kept in the buffer).
    fn poll_put(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
        len: usize,
    ) -> Poll<io::Result<usize>> {
        if self.out.len() - self.sent + len > MAX_PENDING {
            ready!(self.poll_drain(cx))?;
            if len >= MAX_PENDING {
                return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            self.out.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }
}

/// The connection's I/O as hyper sees it: reads pass through, writes are buffered.
pub struct Coalesced<S> {
    state: Arc<Mutex<State<S>>>,
}

impl<S> Coalesced<S> {
    /// Wraps `io`; the returned [`Pending`] sends its buffered writes (for [`FlushOnIdle`]).
    pub fn new(io: S) -> (Coalesced<S>, Pending<S>) {
        let state = Arc::new(Mutex::new(State {
            io,
            out: Vec::new(),
            sent: 0,
        }));
        (
            Coalesced {
                state: state.clone(),
            },
            Pending { state },
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.state.lock().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.state
            .lock()
            .poll_put(cx, &[io::IoSlice::new(buf)], buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.state.lock().poll_put(cx, bufs, len)
    }

    fn is_write_vectored(&self) -> bool {
        // Gathering into the buffer costs one copy, as hyper's own flattening would.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Deferred to [`FlushOnIdle`], which sends before the task sleeps (the buffer never
        // holds more than MAX_PENDING).
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.state.lock();
        ready!(s.poll_drain(cx))?;
        Pin::new(&mut s.io).poll_shutdown(cx)
    }
}

/// The sending side of a [`Coalesced`] I/O.
pub struct Pending<S> {
    state: Arc<Mutex<State<S>>>,
}

/// A connection future whose buffered writes are sent whenever it waits, and when it ends.
pub struct FlushOnIdle<F, S> {
    conn: F,
    pending: Pending<S>,
    /// The connection's result once it ended, while the last writes go out.
    done: Option<Result<(), hyper::Error>>,
}

impl<F, S> FlushOnIdle<F, S> {
    /// Serves `conn`, sending what `pending`'s I/O buffered whenever `conn` waits.
    pub fn new(conn: F, pending: Pending<S>) -> Self {
        FlushOnIdle {
            conn,
            pending,
            done: None,
        }
    }
}

impl<F, S> Future for FlushOnIdle<F, S>
where
    F: Future<Output = Result<(), hyper::Error>> + Unpin,
    S: AsyncWrite + Unpin,
{
    type Output = Result<(), hyper::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.done.is_none() {
            match Pin::new(&mut this.conn).poll(cx) {
                Poll::Ready(result) => this.done = Some(result),
                Poll::Pending => {
                    // A failed send surfaces to hyper on its next read or write of the
                    // socket; the bytes stay buffered and nothing more is sent.
                    let _ = this.pending.state.lock().poll_drain(cx);
                    return Poll::Pending;
                }
            }
        }
        // The connection ended: its last answers (if it did not fail) go out first.
        let drained = this.pending.state.lock().poll_drain(cx);
        if drained.is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(this.done.take().unwrap_or(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_task_to_idle_then_leave_together() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (mut io, pending) = Coalesced::new(server);
        io.write_all(b"one ").await.unwrap();
        io.flush().await.unwrap();
        io.write_all(b"two").await.unwrap();
        io.flush().await.unwrap();
        // Nothing left yet: flushes are deferred.
        let mut client = client;
        let mut buf = [0u8; 16];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(20), client.read(&mut buf)).await;
        assert!(early.is_err(), "nothing is sent before the task idles");
        // A connection future that waits once, then ends.
        let mut polls = 0;
        let conn = std::future::poll_fn(move |cx| {
            polls += 1;
            if polls == 1 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        });
        FlushOnIdle::new(Box::pin(conn), pending).await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one two");
    }

    #[tokio::test]
    async fn a_full_buffer_goes_out_without_waiting() {
        let (mut client, server) = tokio::io::duplex(4 * MAX_PENDING);
        let (mut io, _pending) = Coalesced::new(server);
        let big = vec![b'x'; MAX_PENDING];
        io.write_all(&big).await.unwrap();
        io.write_all(b"y").await.unwrap();
        let mut got = vec![0u8; MAX_PENDING];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_gets_backpressure() {
        // The pipe holds 1 KiB: after the buffer and the pipe are full, writes wait.
        let (_client, server) = tokio::io::duplex(1024);
        let (mut io, _pending) = Coalesced::new(server);
        let chunk = vec![b'x'; 4096];
        let mut written = 0;
        let stalled = tokio::time::timeout(std::time::Duration::from_millis(50), async {
            loop {
                io.write_all(&chunk).await.unwrap();
                written += chunk.len();
            }
        })
        .await;
        assert!(stalled.is_err());
        assert!(written <= MAX_PENDING + 1024 + chunk.len(), "{written}");
    }

    #[tokio::test]
    async fn a_large_body_goes_straight_out_and_is_not_kept() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (mut io, _pending) = Coalesced::new(server);
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 3 + (4 << 20)];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        io.write_all(b"abc").await.unwrap();
        let big = vec![b'z'; 4 << 20];
        io.write_all(&big).await.unwrap();
        assert!(io.state.lock().out.len() < MAX_PENDING);
        // The tail under MAX_PENDING waits for the task to idle (here: the shutdown).
        io.shutdown().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(&got[..3], b"abc");
        assert!(got[3..].iter().all(|&b| b == b'z'));
        assert!(io.state.lock().out.capacity() <= MAX_PENDING);
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_buffered_first() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (mut io, _pending) = Coalesced::new(server);
        io.write_all(b"last").await.unwrap();
        io.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last");
    }
}
