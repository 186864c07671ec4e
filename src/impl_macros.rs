//! Trait impls and inherent methods shared by the listener and connection types of every
//! path: each wraps a `socket: socket2::Socket` field, and these delegate to it, so the paths
//! stay independent without repeating the same delegation.

use std::io;
use std::time::Duration;

/// `AsFd`, `AsRawFd`, `IntoRawFd` and `From<$ty> for OwnedFd`, through the `socket` field.
macro_rules! impl_fd_traits {
    ($ty:ty) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.socket)
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.socket)
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(self.socket)
            }
        }

        impl From<$ty> for std::os::fd::OwnedFd {
            fn from(value: $ty) -> std::os::fd::OwnedFd {
                value.socket.into()
            }
        }
    };
}

/// `Read` and `Write` for `$ty` and `&$ty`, through the `socket` field. Writes pass
/// `MSG_NOSIGNAL`, so a closed peer is an `EPIPE` error and never a `SIGPIPE`.
macro_rules! impl_stream_io {
    ($ty:ty) => {
        impl std::io::Read for &$ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &self.socket, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &self.socket, bufs)
            }
        }

        impl std::io::Write for &$ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.socket.send_with_flags(buf, libc::MSG_NOSIGNAL)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.socket
                    .send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::io::Read::read(&mut &*self, buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                std::io::Read::read_vectored(&mut &*self, bufs)
            }
        }

        impl std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::io::Write::write(&mut &*self, buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                std::io::Write::write_vectored(&mut &*self, bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

/// Inherent methods that are the same on the types of every path. Each entry names one
/// method, with that type's docs in front (each type words its own); its body is here, once.
/// `$ty` has a `socket: socket2::Socket` field; a listener also `local: Endpoint`, the bound
/// endpoint that accept errors name.
///
/// An entry is `name;`, or `name(arguments);` where the paths differ:
/// - `bind(kind, nonblocking: bool);`: `bind`, and `bind_with_backlog` (whose docs are the
///   same on every type), for a listener of `SocketKind` `kind`, nonblocking from birth when
///   asked.
/// - `accept(Conn, nonblocking: bool, wrap);`: accepts a connection, nonblocking from birth
///   when asked, as the `Conn` that `wrap: fn(Socket, &Endpoint) -> Conn` makes of the socket
///   and the peer.
/// - `local_addr`, `peer_addr`, `shutdown`, `peek`, `take_error`, `set_nonblocking`,
///   `set_read_timeout` and `set_write_timeout` (a zero timeout refused), `read_timeout`,
///   `write_timeout`, `try_clone` (through `$ty::from_socket(socket)`), and for seqpacket
///   connections `send`, `recv`, `max_message_size`.
macro_rules! socket_methods {
    (@ $ty:ident, bind ($kind:expr, nonblocking: $nb:expr) $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn bind(ep: &$crate::Endpoint) -> $crate::Result<$ty> {
            $ty::bind_with_backlog(ep, $crate::DEFAULT_BACKLOG)
        }

        #[doc = "Binds to `ep` and listens with the given backlog."]
        #[doc = ""]
        #[doc = "# Errors"]
        #[doc = ""]
        #[doc = concat!("As [`", stringify!($ty), "::bind`](Self::bind).")]
        pub fn bind_with_backlog(ep: &$crate::Endpoint, backlog: i32) -> $crate::Result<$ty> {
            let socket = $crate::socket::listen_kind_with(ep, $kind, backlog, $nb, |_| Ok(()))?;
            // A port or CID of "any" is resolved by the kernel: report what it chose.
            let local = $crate::socket::local_endpoint(&socket).unwrap_or_else(|_| ep.clone());
            Ok($ty { socket, local })
        }
    };
    (@ $ty:ident, accept ($conn:ident, nonblocking: $nb:expr, $wrap:expr) $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn accept(&self) -> $crate::Result<($conn, $crate::Endpoint)> {
            let wrap: fn(::socket2::Socket, &$crate::Endpoint) -> $conn = $wrap;
            let (socket, peer) = $crate::socket::accept(&self.socket, &self.local, $nb)?;
            Ok((wrap(socket, &peer), peer))
        }
    };
    (@ $ty:ident, local_addr () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn local_addr(&self) -> $crate::Result<$crate::Endpoint> {
            $crate::socket::local_endpoint(&self.socket)
        }
    };
    (@ $ty:ident, peer_addr () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn peer_addr(&self) -> $crate::Result<$crate::Endpoint> {
            $crate::socket::peer_endpoint(&self.socket)
        }
    };
    (@ $ty:ident, shutdown () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
            self.socket.shutdown(how)
        }
    };
    (@ $ty:ident, peek () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn peek(&self, buf: &mut [u8]) -> std::io::Result<usize> {
            $crate::sys::peek(&self.socket, buf)
        }
    };
    (@ $ty:ident, take_error () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
            self.socket.take_error()
        }
    };
    (@ $ty:ident, set_nonblocking () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
            self.socket.set_nonblocking(nonblocking)
        }
    };
    (@ $ty:ident, set_read_timeout () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn set_read_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            $crate::impl_macros::reject_zero(timeout)?;
            self.socket.set_read_timeout(timeout)
        }
    };
    (@ $ty:ident, set_write_timeout () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn set_write_timeout(
            &self,
            timeout: Option<std::time::Duration>,
        ) -> std::io::Result<()> {
            $crate::impl_macros::reject_zero(timeout)?;
            self.socket.set_write_timeout(timeout)
        }
    };
    (@ $ty:ident, read_timeout () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            self.socket.read_timeout()
        }
    };
    (@ $ty:ident, write_timeout () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
            self.socket.write_timeout()
        }
    };
    (@ $ty:ident, try_clone () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn try_clone(&self) -> std::io::Result<$ty> {
            self.socket.try_clone().map($ty::from_socket)
        }
    };
    (@ $ty:ident, send () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn send(&self, buf: &[u8]) -> std::io::Result<()> {
            $crate::message::send(&self.socket, buf)
        }
    };
    (@ $ty:ident, recv () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn recv(&self, buf: &mut [u8]) -> std::io::Result<$crate::Message> {
            $crate::message::recv(&self.socket, buf)
        }
    };
    (@ $ty:ident, max_message_size () $(#[$doc:meta])*) => {
        $(#[$doc])*
        pub fn max_message_size(&self) -> std::io::Result<usize> {
            $crate::message::max_message_size(&self.socket)
        }
    };
    ($ty:ident { $( $(#[$doc:meta])* $name:ident $(( $($arg:tt)* ))? ; )* }) => {
        impl $ty {
            $( $crate::impl_macros::socket_methods!(@ $ty, $name ($($($arg)*)?) $(#[$doc])*); )*
        }
    };
}

/// std rejects a zero timeout rather than treating it as "forever": so do we.
pub(crate) fn reject_zero(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a zero timeout",
        ));
    }
    Ok(())
}

pub(crate) use {impl_fd_traits, impl_stream_io, socket_methods};
