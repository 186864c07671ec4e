//! [`Linger`]: the load generator's connection I/O with a lingering close. Once hyper's
//! client shuts the write side (its last request done, HTTP/2's GOAWAY sent), the shutdown
//! goes on reading, and dropping, what the server still sends until the server closes. So
//! the server's own last frames (its GOAWAY) never meet a closed socket: every server ends
//! its connections without an error, and a server error in a report is a real one.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};
use uring_vsock::uring::rt::ConnIo;

/// [`ConnIo`] whose shutdown waits for the server's close (bounded by the caller's
/// deadline on the connection).
#[derive(Debug)]
pub struct Linger {
    io: ConnIo,
    shut: bool,
}

impl Linger {
    /// Wraps `io`.
    pub fn new(io: ConnIo) -> Linger {
        Linger { io, shut: false }
    }
}

impl Read for Linger {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Linger {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.shut = true;
        }
        loop {
            let mut scratch = [0u8; 1024];
            let mut rb = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut this.io).poll_read(cx, rb.unfilled()))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Ok(())); // the server closed
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
