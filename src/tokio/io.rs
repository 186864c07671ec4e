//! The readiness loops behind every `AsyncRead`/`AsyncWrite` of this path (the stream and its
//! halves share them): try the syscall, and on `WouldBlock` clear the readiness and wait.

use std::future::Future;
use std::io::{self, IoSlice};
use std::ops::Deref;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::ReadBuf;
use ::tokio::time::Sleep;
use socket2::Socket;

/// The first pause after an `ENOBUFS`; each further one in a row doubles, up to
/// [`ENOBUFS_PAUSE_MAX`], at most [`ENOBUFS_TRIES`] in a row. A send's `ENOBUFS` is one of
/// two things on vsock. Either the kernel could not allocate a packet (memory comes back as
/// packets are freed, with no readiness event to say so): waited out. Or (Linux 6.12.92+)
/// the kernel reset the connection because its receive queue held more small packets unread
/// than its buffer size allows, and the socket's pending error says so: final, the stream has
/// lost data, so it is an error, never retried.
const ENOBUFS_PAUSE_MIN: Duration = Duration::from_millis(1);
const ENOBUFS_PAUSE_MAX: Duration = Duration::from_millis(50);
const ENOBUFS_TRIES: u32 = 64;

/// A writer's `ENOBUFS` state: the pause under way, and the next one's length.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    pause: Option<Pin<Box<Sleep>>>,
    next: Duration,
    tries: u32,
}

impl Backoff {
    /// Waits out a pause under way, if any.
    fn poll_pause(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(pause) = self.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        Poll::Ready(())
    }

    /// Starts the next pause; `false` once [`ENOBUFS_TRIES`] pauses in a row did not help.
    fn start(&mut self) -> bool {
        self.tries += 1;
        if self.tries > ENOBUFS_TRIES {
            return false;
        }
        self.next = (self.next * 2).clamp(ENOBUFS_PAUSE_MIN, ENOBUFS_PAUSE_MAX);
        log::debug!("ENOBUFS on a write: retrying after {:?}", self.next);
        self.pause = Some(Box::pin(::tokio::time::sleep(self.next)));
        true
    }

    fn reset(&mut self) {
        self.next = Duration::ZERO;
        self.tries = 0;
    }
}

/// A connected stream socket on the runtime's poller, and whether a short read or send may
/// clear its readiness.
#[derive(Debug)]
pub(crate) struct StreamFd {
    fd: AsyncFd<Socket>,
    /// Unix and tcp move a stream's queued bytes in one go: a short read drained the socket
    /// and a short send filled its buffer, so the next try would be `EAGAIN`, and clearing
    /// the readiness at once saves that syscall (as tokio::net does). vsock's receive queue
    /// fills packet by packet while a read copies, and its send credit comes back the same
    /// way, so there the next try often finds more: the readiness stays (as tokio-vsock
    /// does), which measured faster on vsock streams. (A unix read also stops short at a
    /// message that carried fds or credentials, with more queued behind it; tokio::net
    /// clears then too. A byte stream that is sent fds it does not take is broken anyway.)
    clear_on_short: bool,
}

impl StreamFd {
    /// `fd`, a vsock stream when `vsock`, else unix or tcp.
    pub(crate) fn new(fd: AsyncFd<Socket>, vsock: bool) -> StreamFd {
        StreamFd {
            fd,
            clear_on_short: !vsock,
        }
    }

    /// The socket, deregistered from the runtime.
    pub(crate) fn into_inner(self) -> Socket {
        self.fd.into_inner()
    }
}

impl Deref for StreamFd {
    type Target = AsyncFd<Socket>;

    fn deref(&self) -> &AsyncFd<Socket> {
        &self.fd
    }
}

/// `AsyncRead::poll_read` on `io`.
pub(crate) fn poll_read(
    io: &StreamFd,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        let mut guard = ready!(io.poll_read_ready(cx))?;
        // SAFETY: `recv` only writes into the slice, never de-initializes it; only the bytes
        // it reports written are marked initialized below.
        let unfilled = unsafe { buf.unfilled_mut() };
        let want = unfilled.len();
        match guard.try_io(|s| s.get_ref().recv(unfilled)) {
            Ok(Ok(n)) => {
                if io.clear_on_short && 0 < n && n < want {
                    // A short read drained the socket (see `StreamFd::clear_on_short`). A
                    // wake-up that came after the read is kept (tokio clears by tick).
                    guard.clear_ready();
                }
                // SAFETY: `recv` wrote the first `n` bytes of the unfilled part.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Poll::Ready(Err(e)),
            Err(_would_block) => {}
        }
    }
}

/// `AsyncWrite::poll_write` on `io`. `MSG_NOSIGNAL`: a closed peer is `EPIPE`, never `SIGPIPE`.
pub(crate) fn poll_write(
    io: &StreamFd,
    backoff: &mut Backoff,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    poll_send(io, backoff, cx, buf.len(), |s| {
        s.send_with_flags(buf, libc::MSG_NOSIGNAL)
    })
}

/// `AsyncWrite::poll_write_vectored` on `io`.
pub(crate) fn poll_write_vectored(
    io: &StreamFd,
    backoff: &mut Backoff,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let want = bufs
        .iter()
        .map(|b| b.len())
        .fold(0usize, usize::saturating_add);
    poll_send(io, backoff, cx, want, |s| {
        s.send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    })
}

/// `AsyncWrite::poll_shutdown`: `SHUT_WR`, so the peer reads EOF.
pub(crate) fn shutdown_write(io: &AsyncFd<Socket>) -> Poll<io::Result<()>> {
    Poll::Ready(io.get_ref().shutdown(std::net::Shutdown::Write))
}

/// One send of `want` bytes by `send`, waiting for readiness and out `ENOBUFS`.
fn poll_send(
    io: &StreamFd,
    backoff: &mut Backoff,
    cx: &mut Context<'_>,
    want: usize,
    mut send: impl FnMut(&Socket) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(backoff.poll_pause(cx));
        let mut guard = ready!(io.poll_write_ready(cx))?;
        match guard.try_io(|s| send(s.get_ref())) {
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                let pending = io.get_ref().take_error().unwrap_or(None).is_some();
                if pending {
                    return Poll::Ready(Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{e} (the kernel reset the connection: more packets waited unread \
                             in the socket's receive queue than its buffer size allows; vsock, \
                             Linux 6.12.92+)"
                        ),
                    )));
                }
                if !backoff.start() {
                    return Poll::Ready(Err(io::Error::new(
                        e.kind(),
                        format!("{e} ({ENOBUFS_TRIES} retries over several seconds did not help)"),
                    )));
                }
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(res) => {
                backoff.reset();
                if io.clear_on_short && matches!(res, Ok(n) if 0 < n && n < want) {
                    // A short send filled the socket's buffer (see `StreamFd`).
                    guard.clear_ready();
                }
                return Poll::Ready(res);
            }
            Err(_would_block) => {}
        }
    }
}

/// `AsyncRead` through the `io` field (a stream or a read half), by [`poll_read`]. The
/// caller has the names the expansion uses in scope (`rw` for this module).
macro_rules! impl_read {
    ($($ty:ty),*) => {$(
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                rw::poll_read(&self.io, cx, buf)
            }
        }
    )*};
}

/// `AsyncWrite` through the `io` and `backoff` fields (a stream or a write half), by
/// [`poll_write`] and its kin.
macro_rules! impl_write {
    ($($ty:ty),*) => {$(
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                rw::poll_write(&this.io, &mut this.backoff, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                rw::poll_write_vectored(&this.io, &mut this.backoff, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                rw::shutdown_write(&self.io)
            }
        }
    )*};
}

pub(crate) use {impl_read, impl_write};
