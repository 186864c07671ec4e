//! [`Status`]: how a command ended, as the process's exit status.

/// How a command ended. [`code`](Self::code) is the process's exit status.
///
/// | code | meaning |
/// |------|---------|
/// | 0 | both directions ended with EOF (`proxy`: drained in time) |
/// | 1 | setup failed: connect, listen, engine (the stderr line says which) |
/// | 2 | bad command line |
/// | 3 | the connection broke: reset or an I/O error on the socket |
/// | 4 | a local stream failed: reading stdin or writing stdout (or the child's pipes) |
/// | 5 | `proxy`: connections still open at the drain timeout were cut |
/// | 6 | `proxy`: a second SIGTERM or SIGINT during the drain: exited at once, cutting what was open |
/// | other | `cat --exec`: the child's own status (128 + signal if it was killed) |
///
/// ```
/// use vsock_tool::Status;
/// assert_eq!(Status::Clean.code(), 0);
/// assert_eq!(Status::Forced.code(), 6);
/// assert_eq!(Status::Child(7).code(), 7);
/// assert_eq!(Status::Child(300).code(), 255);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Both directions ended with EOF.
    Clean,
    /// Setup failed.
    Failed,
    /// A bad command line.
    Usage,
    /// The connection broke (reset, socket I/O error).
    Broken,
    /// stdin, stdout or the child's pipes failed.
    LocalIo,
    /// The proxy's drain timeout cut connections.
    Cut,
    /// A second SIGTERM or SIGINT during the proxy's drain: it exited at once.
    Forced,
    /// `cat --exec`: the child's exit status.
    Child(i32),
}

impl Status {
    /// The exit status, 0–255 (a child's status out of range saturates).
    pub fn code(self) -> u8 {
        match self {
            Status::Clean => 0,
            Status::Failed => 1,
            Status::Usage => 2,
            Status::Broken => 3,
            Status::LocalIo => 4,
            Status::Cut => 5,
            Status::Forced => 6,
            Status::Child(c) => c.clamp(0, 255) as u8,
        }
    }
}
