//! The one place that turns a completion's errno into an [`io::Error`], with a message that
//! says what happened in engine terms (e.g. `ENOBUFS` on a receive means the worker's
//! provided-buffer ring ran dry, which the engine treats as backpressure).

use std::io;

/// An [`io::Error`] for errno `errno` of operation `op`. A plain OS error keeps its errno
/// (`raw_os_error`); one the engine has more to say about (`ENOBUFS`, `ECANCELED`,
/// `EOPNOTSUPP`, `ETIME`) keeps its kind and says what it means, naming `op`. The caller's
/// [`crate::Error`] adds the operation and endpoint for the rest.
pub(crate) fn errno_error(op: &'static str, errno: i32) -> io::Error {
    let os = io::Error::from_raw_os_error(errno);
    let why = match errno {
        libc::ENOBUFS => "the provided-buffer ring was empty: all receive buffers are held",
        libc::ECANCELED => "cancelled: the connection is closing",
        libc::EOPNOTSUPP => "not supported on this socket family",
        libc::ETIME => "deadline passed",
        _ => return os,
    };
    io::Error::new(os.kind(), format!("{op}: {os} ({why})"))
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
}
