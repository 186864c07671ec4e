//! The one place that turns a completion's errno into an [`io::Error`], with a message that
//! says what happened in engine terms. `ENOBUFS` means two things: on a receive, that the
//! worker's provided-buffer ring ran dry (the engine treats that as backpressure and never
//! gets here for it); on a send, that the kernel reset the connection because the socket's
//! own receive queue overflowed (vsock on Linux 6.12.94+, see below).

use std::io;

/// An [`io::Error`] for errno `errno` of operation `op`. A plain OS error keeps its errno
/// (`raw_os_error`); one the engine has more to say about (`ENOBUFS`, `ECANCELED`,
/// `EOPNOTSUPP`, `ETIME`) keeps its kind and says what it means, naming `op`. The caller's
/// [`crate::Error`] adds the operation and endpoint for the rest.
///
/// `ENOBUFS` on anything but a receive is a reset (its kind stays the errno's, so the close
/// reason is an error that keeps this explanation, not a plain peer reset): the virtio vsock
/// transports bound a socket's receive queue to its buffer size in packet
/// overhead as well as in bytes (Linux 6.12.94+, the CVE-2026-23086 fix), and a packet past
/// that resets the connection, dropping the packet and setting the socket's error to
/// `ENOBUFS`, which its next send returns. Credit does not prevent it: a peer sending small
/// packets (129 to ~575 bytes) to a socket that is not being read fills the packet bound
/// first. The stream has lost data, so the send is not retried.
pub(crate) fn errno_error(op: &'static str, errno: i32) -> io::Error {
    let os = io::Error::from_raw_os_error(errno);
    let (kind, why) = match errno {
        libc::ENOBUFS if op == "recv" => (
            os.kind(),
            "the provided-buffer ring was empty: all receive buffers are held",
        ),
        libc::ENOBUFS => (
            os.kind(),
            "the kernel reset the connection: more packets waited unread in the socket's \
             receive queue than its buffer size allows (vsock, Linux 6.12.94+)",
        ),
        libc::ECANCELED => (os.kind(), "cancelled: the connection is closing"),
        libc::EMSGSIZE => (
            os.kind(),
            "a seqpacket message larger than the connection allows (unix: SO_SNDBUF - 32; \
             vsock: the smaller buffer size of the two ends)",
        ),
        libc::EOPNOTSUPP => (os.kind(), "not supported on this socket family"),
        libc::ETIME => (os.kind(), "deadline passed"),
        _ => return os,
    };
    io::Error::new(kind, format!("{op}: {os} ({why})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_messages() {
        let e = errno_error("recv", libc::ENOBUFS);
        assert!(
            e.to_string().contains("provided-buffer ring was empty"),
            "{e}"
        );
        assert!(e.to_string().starts_with("recv: "), "{e}");
        let e = errno_error("send", libc::ECONNRESET);
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ECONNRESET),
            "the errno is kept"
        );
    }

    #[test]
    fn enobufs_on_a_send_is_a_reset_not_the_ring() {
        let e = errno_error("send", libc::ENOBUFS);
        let msg = e.to_string();
        assert!(msg.starts_with("send: "), "{msg}");
        assert!(!msg.contains("provided-buffer ring"), "{msg}");
        assert!(msg.contains("reset the connection"), "{msg}");
        assert!(msg.contains("os error 105"), "the errno is named: {msg}");
        assert_eq!(e.kind(), io::Error::from_raw_os_error(libc::ENOBUFS).kind());
    }
}
