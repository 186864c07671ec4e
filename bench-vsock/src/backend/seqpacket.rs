//! What the seqpacket runs of every backend share: a received message is the bytes a
//! session gets, and a truncated one fails the connection (its tail is lost, so nothing
//! after it could verify); and, for the library paths whose stream and seqpacket types have
//! the same methods, one enum of the two for connections and one for listeners.

use std::io;

use uring_vsock::Message;

/// The bytes of received message `m` that landed in a `cap`-byte buffer: 0 at the end of
/// the stream, as a stream read says it.
///
/// # Errors
///
/// The message was longer than the buffer (`InvalidData`, naming both lengths).
pub(super) fn received(m: Message, cap: usize) -> io::Result<usize> {
    if m.truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a seqpacket message of {} bytes was truncated to the {cap}-byte receive buffer",
                m.message_len
            ),
        ));
    }
    Ok(m.len)
}

/// `$conn`, a connection, and `$listen`, a listener, of either socket type of the library's
/// `$path` (`blocking` or `epoll`), with what every backend does with them alike; a backend
/// adds its own methods in an `impl` of its own.
macro_rules! stream_or_seqpacket {
    ($path:ident: $conn:ident, $listen:ident) => {
        /// A connection of either socket type: a seqpacket one sends each of the session's
        /// sends as one message and hands it each received message.
        enum $conn {
            Stream(uring_vsock::$path::Stream),
            Seqpacket(uring_vsock::$path::SeqpacketConn),
        }

        impl $conn {
            fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
                match self {
                    $conn::Stream(s) => std::io::Write::write(&mut &*s, buf),
                    $conn::Seqpacket(s) => s.send(buf).map(|()| buf.len()),
                }
            }

            fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                match self {
                    $conn::Stream(s) => std::io::Read::read(&mut &*s, buf),
                    $conn::Seqpacket(s) => {
                        crate::backend::seqpacket::received(s.recv(buf)?, buf.len())
                    }
                }
            }

            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                match self {
                    $conn::Stream(s) => std::os::fd::AsFd::as_fd(s),
                    $conn::Seqpacket(s) => std::os::fd::AsFd::as_fd(s),
                }
            }
        }

        /// A listener of either socket type.
        enum $listen {
            Stream(uring_vsock::$path::Listener),
            Seqpacket(uring_vsock::$path::SeqpacketListener),
        }

        impl $listen {
            /// Listens on `ep` with the run's socket type and
            /// [`BACKLOG`](crate::backend::BACKLOG), with the run's socket options set on
            /// the listener too, so accepted sockets start with them; and the endpoint it
            /// listens on.
            fn bind(
                ep: &uring_vsock::Endpoint,
                opts: &crate::sockets::SocketOpts,
            ) -> crate::error::Result<($listen, uring_vsock::Endpoint)> {
                use crate::backend::BACKLOG;
                let listener = if opts.seqpacket {
                    $listen::Seqpacket(uring_vsock::$path::SeqpacketListener::bind_with_backlog(
                        ep, BACKLOG,
                    )?)
                } else {
                    $listen::Stream(uring_vsock::$path::Listener::bind_with_backlog(
                        ep, BACKLOG,
                    )?)
                };
                let endpoint = match &listener {
                    $listen::Stream(l) => l.local_addr()?,
                    $listen::Seqpacket(l) => l.local_addr()?,
                };
                crate::backend::tune(listener.as_fd(), &endpoint, opts)?;
                Ok((listener, endpoint))
            }

            fn accept(&self) -> uring_vsock::Result<$conn> {
                Ok(match self {
                    $listen::Stream(l) => $conn::Stream(l.accept()?.0),
                    $listen::Seqpacket(l) => $conn::Seqpacket(l.accept()?.0),
                })
            }

            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                match self {
                    $listen::Stream(l) => std::os::fd::AsFd::as_fd(l),
                    $listen::Seqpacket(l) => std::os::fd::AsFd::as_fd(l),
                }
            }
        }
    };
}
pub(super) use stream_or_seqpacket;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_message_is_its_bytes_and_a_truncated_one_an_error() {
        let whole = Message {
            len: 64,
            message_len: 64,
            truncated: false,
        };
        assert_eq!(received(whole, 64).unwrap(), 64);
        let eof = Message {
            len: 0,
            message_len: 0,
            truncated: false,
        };
        assert_eq!(received(eof, 64).unwrap(), 0);
        let cut = Message {
            len: 16,
            message_len: 100,
            truncated: true,
        };
        let e = received(cut, 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            e.to_string(),
            "a seqpacket message of 100 bytes was truncated to the 16-byte receive buffer"
        );
    }
}
