//! Messages on `SOCK_SEQPACKET` sockets, shared by every path: [`Message`] (what a receive
//! got), [`MessageTooLarge`] (the typed over-size send error), and the send and receive
//! calls the blocking and epoll paths share.
//!
//! The semantics are documented on [`Message`].

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use socket2::Socket;

/// Bytes `unix_dgram_sendmsg` keeps back from `SO_SNDBUF` for a message's overhead.
const UNIX_SNDBUF_OVERHEAD: usize = 32;

/// What one receive on a seqpacket connection got.
///
/// # Message semantics
///
/// As the kernel gives them (vsock since Linux 5.14, and `AF_UNIX`):
/// - **One send is one message.** The kernel sends all of it or nothing (`EMSGSIZE` when it
///   can never fit). vsock marks each message's last packet with `MSG_EOR` and the receiver
///   reassembles up to it; on unix every send is one record of its own. A receiver never sees
///   two messages merged nor one split: the library sends no `MSG_EOR` of its own and needs
///   none from you.
/// - **One receive is one message.** A buffer shorter than the message gets its first bytes
///   and the rest is discarded; the receive is flagged [`Message::truncated`] and
///   [`Message::message_len`] is the full length (the library passes `MSG_TRUNC`, which both
///   families honour by returning the full length).
/// - **The largest message**: unix allows `SO_SNDBUF` − 32 bytes (the kernel's
///   `unix_dgram_sendmsg` check); vsock allows the peer's `SO_VM_SOCKETS_BUFFER_SIZE`
///   (256 KiB by default), and on newer kernels (which cap TX credit to the local buffer)
///   also no more than the sender's own (`virtio_transport_seqpacket_enqueue`). Larger sends fail
///   with [`MessageTooLarge`]; `max_message_size` on each connection type reports the
///   local bound.
/// - **Empty messages are refused** on send (`InvalidInput`): a zero-length receive is how
///   the peer's close reads, and vsock would not send one anyway.
///
/// # Examples
///
/// ```
/// use uring_vsock::blocking::{SeqpacketConn, SeqpacketListener};
///
/// let dir = std::env::temp_dir().join(format!("uv-msg-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// std::fs::create_dir_all(&dir)?;
/// let ep: uring_vsock::Endpoint = format!("unix:{}/m.sock", dir.display()).parse()?;
/// let listener = SeqpacketListener::bind(&ep)?;
/// let client = SeqpacketConn::connect(&ep)?;
/// let (server, _) = listener.accept()?;
/// client.send(b"hello world")?;
/// let mut small = [0; 5];
/// let msg = server.recv(&mut small)?;
/// assert_eq!((msg.len, msg.message_len, msg.truncated), (5, 11, true));
/// assert_eq!(&small, b"hello");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// Bytes written into the buffer (at most its length).
    pub len: usize,
    /// The message's full length, as the sender sent it (`MSG_TRUNC`).
    pub message_len: usize,
    /// The buffer was shorter than the message: its tail was discarded.
    pub truncated: bool,
}

impl Message {
    /// A receive that returned `n` (with `MSG_TRUNC`: the full length) into a `cap`-byte
    /// buffer.
    pub(crate) fn received(n: usize, cap: usize) -> Message {
        Message {
            len: n.min(cap),
            message_len: n,
            truncated: n > cap,
        }
    }

    /// Whether this is the end of the stream: the peer closed (or shut down its write side)
    /// and every message before has been received. Empty messages are never sent by this
    /// library, so a zero-length receive is the end.
    pub fn is_eof(&self) -> bool {
        self.message_len == 0
    }
}

/// A message longer than the connection can ever send: the error inside the
/// [`io::ErrorKind::InvalidInput`] error an over-size send returns (`EMSGSIZE` from the
/// kernel). Nothing was sent.
///
/// # Examples
///
/// ```
/// use uring_vsock::{blocking::SeqpacketConn, MessageTooLarge};
///
/// # let dir = std::env::temp_dir().join(format!("uv-big-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// # std::fs::create_dir_all(&dir)?;
/// # let ep: uring_vsock::Endpoint = format!("unix:{}/b.sock", dir.display()).parse()?;
/// # let listener = uring_vsock::blocking::SeqpacketListener::bind(&ep)?;
/// let conn = SeqpacketConn::connect(&ep)?;
/// let max = conn.max_message_size()?;
/// let err = conn.send(&vec![0; max + 1]).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// let big = err.get_ref().and_then(|e| e.downcast_ref::<MessageTooLarge>()).unwrap();
/// assert_eq!((big.len, big.max), (max + 1, Some(max)));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageTooLarge {
    /// The length of the refused message.
    pub len: usize,
    /// The largest message this side allows, when it could be read (a vsock peer with a
    /// smaller buffer than ours allows less: its size is not visible here).
    pub max: Option<usize>,
}

impl fmt::Display for MessageTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "send: message of {} bytes is too large (EMSGSIZE",
            self.len
        )?;
        match self.max {
            Some(max) => write!(f, "; at most {max} bytes here)"),
            None => write!(f, ")"),
        }
    }
}

impl std::error::Error for MessageTooLarge {}

/// The largest message `socket` may send, as its family bounds it (see the module docs).
pub(crate) fn max_message_size(socket: &Socket) -> io::Result<usize> {
    if socket.domain()? == socket2::Domain::VSOCK {
        let size = crate::sys::get_vsock_u64(socket, crate::sys::SO_VM_SOCKETS_BUFFER_SIZE)?;
        Ok(usize::try_from(size).unwrap_or(usize::MAX))
    } else {
        Ok(socket
            .send_buffer_size()?
            .saturating_sub(UNIX_SNDBUF_OVERHEAD))
    }
}

/// Sends `buf` as one message (`MSG_NOSIGNAL`: a closed peer is `EPIPE`).
pub(crate) fn send(socket: &Socket, buf: &[u8]) -> io::Result<()> {
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "send: an empty message would read as the end of the stream",
        ));
    }
    match socket.send_with_flags(buf, libc::MSG_NOSIGNAL) {
        Ok(n) if n == buf.len() => Ok(()),
        // The kernel sends a seqpacket message whole or not at all; say so if it did not.
        Ok(n) => Err(io::Error::other(format!(
            "send: the kernel took {n} of a {}-byte message",
            buf.len()
        ))),
        Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Err(too_large(socket, buf.len())),
        Err(e) => Err(e),
    }
}

/// The typed error of an over-size send of `len` bytes on `socket`.
pub(crate) fn too_large(socket: &Socket, len: usize) -> io::Error {
    let max = max_message_size(socket).ok();
    io::Error::new(io::ErrorKind::InvalidInput, MessageTooLarge { len, max })
}

/// Receives one message into `buf`, with `MSG_TRUNC` so the kernel returns its full length.
///
/// vsock answers a zero-length receive with 0 at once, taking nothing (`af_vsock.c`: "It is
/// valid on Linux to pass in a zero-length receive buffer"), which would read as the end of
/// the stream; so an empty `buf` receives into a byte of our own, and the message is taken
/// and reported truncated on every family alike.
pub(crate) fn recv(fd: impl AsFd, buf: &mut [u8]) -> io::Result<Message> {
    let mut scratch = [0u8; 1];
    let into: &mut [u8] = if buf.is_empty() { &mut scratch } else { buf };
    // SAFETY: the pointer and length describe `into`, valid for writes for the whole call;
    // with MSG_TRUNC the kernel still writes at most `into.len()` bytes.
    let n = unsafe {
        libc::recv(
            fd.as_fd().as_raw_fd(),
            into.as_mut_ptr().cast(),
            into.len(),
            libc::MSG_TRUNC,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Message::received(n as usize, buf.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_reports_truncation() {
        assert_eq!(
            Message::received(10, 4),
            Message {
                len: 4,
                message_len: 10,
                truncated: true
            }
        );
        let whole = Message::received(3, 4);
        assert!(!whole.truncated && whole.len == 3 && !whole.is_eof());
        assert!(Message::received(0, 4).is_eof());
        let zero_buf = Message::received(7, 0);
        assert!(zero_buf.truncated && zero_buf.len == 0 && !zero_buf.is_eof());
    }

    #[test]
    fn too_large_names_both_sizes() {
        let e = MessageTooLarge {
            len: 10,
            max: Some(4),
        };
        assert_eq!(
            e.to_string(),
            "send: message of 10 bytes is too large (EMSGSIZE; at most 4 bytes here)"
        );
    }
}
