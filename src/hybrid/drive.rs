//! Driving a [`Connector`] over a socket: the blocking path and the epoll path's
//! `connect_timeout` wait with `poll(2)` until the deadline; the epoll path's `connect_result`
//! runs one pass per readiness event.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::connector::{Action, Connector};
use super::handshake::MAX_REPLY;

/// Where a pass over a nonblocking socket stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The handshake is done.
    Done,
    /// The socket would block; wait until it is writable (`true`) or readable (`false`).
    Blocked { write: bool },
}

/// Runs `c`'s actions on the nonblocking `socket` until the handshake is done or the socket
/// would block.
///
/// # Errors
///
/// The handshake's typed errors (as [`io::Error`]s), or the socket's.
pub(crate) fn advance(c: &mut Connector, socket: &Socket) -> io::Result<Progress> {
    let mut buf = [0u8; MAX_REPLY];
    loop {
        let res = match c.action() {
            Action::Done => return Ok(Progress::Done),
            Action::Send => socket
                .send_with_flags(c.unsent(), libc::MSG_NOSIGNAL)
                .map(|n| c.sent(n)),
            Action::Peek(n) => crate::sys::peek(socket, &mut buf[..n])
                .and_then(|got| c.peeked(&buf[..got]).map_err(io::Error::from)),
            Action::Consume(n) => {
                std::io::Read::read(&mut &*socket, &mut buf[..n]).and_then(|got| match got {
                    // The bytes were peeked, so they are queued: none is a vanished queue.
                    0 => Err(io::ErrorKind::UnexpectedEof.into()),
                    got => {
                        c.consumed(got);
                        Ok(())
                    }
                })
            }
        };
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let write = c.action() == Action::Send;
                return Ok(Progress::Blocked { write });
            }
            Err(e) => return Err(c.io_error(e)),
        }
    }
}

/// Runs the handshake for guest port `port` on the nonblocking, connected `socket`, waiting
/// for readiness with `poll(2)` until `deadline` (`timeout` is what the caller gave, for the
/// message).
///
/// # Errors
///
/// As [`advance`]; `TimedOut` when the deadline passes first.
pub(crate) fn handshake(
    socket: &Socket,
    port: u32,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let mut c = Connector::new(port);
    loop {
        let Progress::Blocked { write } = advance(&mut c, socket)? else {
            return Ok(());
        };
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            let after = timeout.unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {after:?}, in the handshake"),
            ));
        }
        wait(socket, write, left)?;
    }
}

/// Waits until `socket` is writable (or readable), in error, or `left` has passed.
fn wait(socket: &Socket, write: bool, left: Option<Duration>) -> io::Result<()> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events,
        revents: 0,
    };
    // Round up, so a wait never ends just before the deadline and spins.
    let ms = left.map_or(-1, |d| {
        let ms = d.as_nanos().div_ceil(1_000_000);
        i32::try_from(ms).unwrap_or(i32::MAX)
    });
    // SAFETY: `fd` is one valid pollfd, alive for the call; nfds is 1.
    let ret = unsafe { libc::poll(&mut fd, 1, ms) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
