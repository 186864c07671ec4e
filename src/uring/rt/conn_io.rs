//! [`ConnIo`]: an [`AsyncConn`] as a byte stream with poll-style reads and writes, for the
//! `tokio::io` and `hyper::rt` traits (feature `tokio`, feature `hyper`). One copy each
//! way: a read copies out of the received buffer it holds; a write copies into a pooled
//! send buffer and is sent behind (a few sends in flight, errors reported by the next write
//! or flush).

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::task::{Context, Poll};

use super::super::buf_ring::RecvBuf;
use super::super::send_buf::SendBuf;
use super::async_conn::SendState;
use super::timer::Sleep;
use super::AsyncConn;

/// Sends a writer may have in flight before a write waits.
const MAX_IN_FLIGHT: usize = 8;

/// The largest write taken into one send when the pool has no buffer to lend.
const MAX_COPY: usize = 64 * 1024;

/// An [`AsyncConn`] as a byte stream (features `tokio` or `hyper`): implements `tokio::io::AsyncRead`/`AsyncWrite` (with
/// feature `tokio`) and `hyper::rt::Read`/`Write` (with feature `hyper`), so code written
/// for those traits (hyper's server connections above all) runs on the engine's worker.
///
/// Reads copy out of the received buffers (one copy); writes copy into pooled send buffers
/// (one copy) and go out in order behind the write, at most a few at a time; a failed send
/// fails the next write or flush. Shutting down flushes, then shuts the write side. The
/// connection's deadlines apply (a read past the read deadline fails with `TimedOut`).
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::{Read, Write};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use uring_vsock::uring::{rt::ConnIo, AsyncConn, Engine};
///
/// let engine = Engine::builder().workers(1).build()?;
/// let ep: uring_vsock::Endpoint = "tcp:127.0.0.1:0".parse()?;
/// let local = engine.listen_async(&ep, |conn: AsyncConn| async move {
///     let mut io = ConnIo::new(conn);
///     let mut line = [0u8; 5];
///     if io.read_exact(&mut line).await.is_ok() {
///         let _ = io.write_all(b"got ").await;
///         let _ = io.write_all(&line).await;
///         let _ = io.shutdown().await;
///     }
/// })?;
/// let mut client = uring_vsock::blocking::Stream::connect(&local)?;
/// client.write_all(b"hello")?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert_eq!(reply, "got hello");
/// # Ok(()) }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub struct ConnIo {
    conn: AsyncConn,
    /// The received buffer being read, and how far.
    cur: Option<(RecvBuf, usize)>,
    eof: bool,
    in_flight: VecDeque<SendState>,
    /// A send that failed, for the next write or flush.
    failed: Option<io::Error>,
    read_timer: Option<Sleep>,
    write_timer: Option<Sleep>,
    shutdown_asked: bool,
}

impl ConnIo {
    /// Wraps `conn`.
    pub fn new(conn: AsyncConn) -> ConnIo {
        ConnIo {
            conn,
            cur: None,
            eof: false,
            in_flight: VecDeque::with_capacity(MAX_IN_FLIGHT),
            failed: None,
            read_timer: None,
            write_timer: None,
            shutdown_asked: false,
        }
    }

    /// Wraps `conn`, with `first` (received from it already) read first.
    pub fn with_received(conn: AsyncConn, first: RecvBuf) -> ConnIo {
        let mut io = ConnIo::new(conn);
        io.cur = Some((first, 0));
        io
    }

    /// The connection.
    pub fn conn(&self) -> &AsyncConn {
        &self.conn
    }

    /// Bytes received and not read yet (waiting for one if there are none); empty at EOF.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        loop {
            if let Some((buf, off)) = &self.cur {
                if *off < buf.len() {
                    break;
                }
                self.cur = None; // drained: back to the ring
            }
            if self.eof {
                return Poll::Ready(Ok(&[]));
            }
            match self.conn.poll_recv(&mut self.read_timer, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(None)) => self.eof = true,
                Poll::Ready(Ok(Some(buf))) => self.cur = Some((buf, 0)),
            }
        }
        let (buf, off) = self.cur.as_ref().expect("filled above");
        Poll::Ready(Ok(&buf[*off..]))
    }

    /// Marks `n` filled bytes read.
    pub(crate) fn consume(&mut self, n: usize) {
        if let Some((_, off)) = &mut self.cur {
            *off += n;
        }
    }

    /// Reads into `out` (one copy).
    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
        put: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<()>> {
        let data = match self.poll_fill(cx) {
            Poll::Ready(Ok(d)) => d,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let n = data.len().min(room);
        put(&data[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }

    /// Reaps finished sends from the front; `Ready` once at most `limit` are in flight.
    fn poll_reap(&mut self, limit: usize, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(front) = self.in_flight.front_mut() {
            match self.conn.poll_send(front, &mut self.write_timer, cx) {
                Poll::Ready((res, _buf)) => {
                    self.in_flight.pop_front();
                    if let Err(e) = res {
                        self.failed.get_or_insert(e);
                    }
                }
                Poll::Pending => break,
            }
        }
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        if self.in_flight.len() <= limit {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Writes `data` (one copy) behind: `Ready(n)` once it is queued.
    pub(crate) fn poll_write_from(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_slices(cx, &[io::IoSlice::new(data)])
    }

    /// Writes as much of `slices` as one send buffer holds (one copy) behind: `Ready(n)`
    /// once it is queued.
    pub(crate) fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.poll_reap(MAX_IN_FLIGHT - 1, cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        let total: usize = slices.iter().map(|s| s.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        // A pooled buffer bounds the copy itself; a Vec (the pool is out) grows, so bound it.
        let (mut buf, limit) = match self.conn.send_buf() {
            Some(b) => (b, usize::MAX),
            None => (
                SendBuf::from(Vec::with_capacity(total.min(MAX_COPY))),
                MAX_COPY,
            ),
        };
        let mut n = 0;
        for s in slices {
            let want = s.len().min(limit - n);
            let took = buf.extend_from_slice(&s[..want]);
            n += took;
            if took < s.len() {
                break; // full
            }
        }
        let mut state = SendState::Start(buf);
        match self.conn.poll_send(&mut state, &mut self.write_timer, cx) {
            Poll::Ready((Err(e), _)) => return Poll::Ready(Err(e)),
            Poll::Ready((Ok(_), _)) => {}
            Poll::Pending => self.in_flight.push_back(state),
        }
        Poll::Ready(Ok(n))
    }

    /// Waits until every write is out.
    pub(crate) fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_reap(0, cx)
    }

    /// Flushes, then shuts the write side down.
    pub(crate) fn poll_shutdown_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_flush_all(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        self.conn.poll_shutdown_write(&mut self.shutdown_asked, cx)
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        // Writes behind run on (the connection's cancellation rule).
        for s in &self.in_flight {
            self.conn.forget_send(s);
        }
    }
}

impl fmt::Debug for ConnIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnIo")
            .field("conn", &self.conn)
            .field("in_flight", &self.in_flight.len())
            .finish()
    }
}

#[cfg(feature = "tokio")]
mod tokio_impls {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    use super::ConnIo;

    impl AsyncRead for ConnIo {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let room = buf.remaining();
            self.get_mut()
                .poll_read_into(cx, room, |d| buf.put_slice(d))
        }
    }

    impl AsyncWrite for ConnIo {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_from(cx, data)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_all(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_shutdown_all(cx)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_slices(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            true // the slices go into one send buffer: no flattening copy before ours
        }
    }
}

#[cfg(feature = "hyper")]
mod hyper_impls {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::ConnIo;

    impl hyper::rt::Read for ConnIo {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: hyper::rt::ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            let room = buf.remaining();
            self.get_mut()
                .poll_read_into(cx, room, |d| buf.put_slice(d))
        }
    }

    impl hyper::rt::Write for ConnIo {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_from(cx, data)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_all(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_shutdown_all(cx)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_slices(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            true // the slices go into one send buffer: no flattening copy before ours
        }
    }
}
