//! [`Error`]: an OS error with the operation and the endpoint it happened on, printed as
//! `connect vm(3):1024: Connection reset by peer (os error 104)`.

use std::fmt;
use std::io;

use crate::Endpoint;

/// A failed socket operation: what was done, on which endpoint, and the OS error.
///
/// Setup operations (bind, listen, connect, accept) return it so the message says where a
/// failure happened. It converts into [`io::Error`] (keeping the [`io::ErrorKind`]) for code
/// that only speaks `io::Result`.
///
/// # Examples
///
/// ```
/// use std::io;
/// use uring_vsock::{Endpoint, Error, VsockAddr};
///
/// let err = Error::new(
///     "connect",
///     Some(Endpoint::Vsock(VsockAddr::new(3, 1024))),
///     io::Error::from_raw_os_error(libc::ECONNRESET),
/// );
/// assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
/// assert!(err.to_string().starts_with("connect vm(3):1024: "));
/// ```
#[derive(Debug)]
pub struct Error {
    op: &'static str,
    endpoint: Option<Endpoint>,
    source: io::Error,
}

impl Error {
    /// Wraps `source`, an error of operation `op` (`"connect"`, `"bind"`, ...) on `endpoint`.
    pub fn new(op: &'static str, endpoint: Option<Endpoint>, source: io::Error) -> Error {
        Error {
            op,
            endpoint,
            source,
        }
    }

    /// A closure for `map_err` that wraps an [`io::Error`] of `op` on `endpoint`.
    pub(crate) fn with<'a>(
        op: &'static str,
        endpoint: &'a Endpoint,
    ) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::new(op, Some(endpoint.clone()), source)
    }

    /// The operation that failed.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The endpoint it failed on, when there is one.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.as_ref()
    }

    /// The error kind of the OS error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The errno, when the error came from the OS.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            // vsock endpoints print bare, as in the Go library; others keep their scheme.
            Some(Endpoint::Vsock(addr)) => write!(f, "{} {}: {}", self.op, addr, self.source),
            Some(ep) => write!(f, "{} {}: {}", self.op, ep, self.source),
            None => write!(f, "{}: {}", self.op, self.source),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

/// A `Result` whose error is [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VsockAddr;

    #[test]
    fn message_has_op_endpoint_and_errno() {
        let err = Error::new(
            "connect",
            Some(Endpoint::Vsock(VsockAddr::new(3, 1024))),
            io::Error::from_raw_os_error(libc::ECONNRESET),
        );
        assert_eq!(
            err.to_string(),
            "connect vm(3):1024: Connection reset by peer (os error 104)"
        );
        let unix = Error::new(
            "bind",
            Some(Endpoint::Unix("/tmp/x.sock".into())),
            io::Error::from_raw_os_error(libc::EADDRINUSE),
        );
        assert_eq!(
            unix.to_string(),
            "bind unix:/tmp/x.sock: Address already in use (os error 98)"
        );
        let bare = Error::new(
            "local_cid",
            None,
            io::Error::from_raw_os_error(libc::ENODEV),
        );
        assert_eq!(bare.to_string(), "local_cid: No such device (os error 19)");
    }

    #[test]
    fn converts_to_io_error_keeping_kind_and_message() {
        let err = Error::new(
            "connect",
            Some(Endpoint::Vsock(VsockAddr::new(3, 1))),
            io::Error::from_raw_os_error(libc::ETIMEDOUT),
        );
        assert_eq!(err.op(), "connect");
        assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
        let io: io::Error = err.into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert!(io.to_string().starts_with("connect vm(3):1: "));
    }
}
