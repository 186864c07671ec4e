//! [`Handshake`]: the host side of the hybrid vsock handshake as a sans-I/O state machine. It
//! makes the request line and parses the reply from whatever bytes the driver hands it, and
//! says where the reply ends, so no byte of the stream that follows is ever taken for it.

use std::fmt;
use std::io;

/// The longest reply accepted, newline included. Firecracker's is `OK <u32>\n`, at most 14
/// bytes; anything past this bound is an [`HandshakeErrorKind::Oversized`] reply.
pub const MAX_REPLY: usize = 64;

/// What the reply must start with.
const OK: &[u8] = b"OK ";

/// The reply parser of one host → guest connect: `CONNECT <port>\n` out, `OK <host_port>\n`
/// back.
///
/// It does no I/O: the driver sends [`Handshake::request`], then feeds received bytes to
/// [`Handshake::feed`], reading at most [`Handshake::wants`] bytes at a time so it never reads
/// past the longest reply. When the reply is complete, [`Step::Done`] says how many of the
/// bytes fed last belong to it; the rest are the guest's first stream bytes.
///
/// # Examples
///
/// ```
/// use uring_vsock::hybrid::{Handshake, Step};
///
/// let mut hs = Handshake::new(5000);
/// assert_eq!(hs.request(), b"CONNECT 5000\n");
/// assert_eq!(hs.feed(b"OK 10")?, Step::NeedMore);
/// // The guest wrote right after the reply: those bytes are not the reply's.
/// let input = b"73\nhello";
/// let Step::Done { host_port, consumed } = hs.feed(input)? else { unreachable!() };
/// assert_eq!(host_port, 1073);
/// assert_eq!(&input[consumed..], b"hello");
/// # Ok::<(), uring_vsock::hybrid::HandshakeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Handshake {
    port: u32,
    /// The reply so far, without its newline.
    line: Vec<u8>,
    /// The host port, once the reply is complete.
    done: Option<u32>,
    /// The error, once there is one: feeding more returns it again.
    failed: Option<HandshakeError>,
}

/// What [`Handshake::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every byte fed is part of the reply, which is not complete yet.
    NeedMore,
    /// The reply is complete: the guest accepted the connection.
    Done {
        /// The host-side port the VMM reports (`OK <host_port>`).
        host_port: u32,
        /// How many of the bytes fed last were the reply's; the bytes after them belong to
        /// the stream.
        consumed: usize,
    },
}

impl Handshake {
    /// A handshake that asks for guest port `port`.
    pub fn new(port: u32) -> Handshake {
        Handshake {
            port,
            line: Vec::with_capacity(MAX_REPLY),
            done: None,
            failed: None,
        }
    }

    /// The guest port asked for.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The request line to send first: `CONNECT <port>\n`.
    pub fn request(&self) -> Vec<u8> {
        format!("CONNECT {}\n", self.port).into_bytes()
    }

    /// The most bytes the rest of the reply can have (0 once it is complete): a driver that
    /// reads no more than this never reads past a reply of the longest allowed length.
    pub fn wants(&self) -> usize {
        match (self.done, &self.failed) {
            (None, None) => MAX_REPLY.saturating_sub(self.line.len()),
            _ => 0,
        }
    }

    /// Feeds received bytes.
    ///
    /// # Errors
    ///
    /// [`HandshakeErrorKind::Malformed`] as soon as the bytes cannot be an `OK <port>\n`
    /// reply, [`HandshakeErrorKind::Oversized`] when [`MAX_REPLY`] bytes pass without a
    /// newline. After [`Step::Done`], feeding returns `Done` again with nothing consumed;
    /// after an error, the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, HandshakeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let step = self.feed_line(input);
        if let Err(err) = &step {
            self.failed = Some(err.clone());
        }
        step
    }

    fn feed_line(&mut self, input: &[u8]) -> Result<Step, HandshakeError> {
        if let Some(host_port) = self.done {
            return Ok(Step::Done {
                host_port,
                consumed: 0,
            });
        }
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                let host_port = self.parse_line()?;
                self.done = Some(host_port);
                return Ok(Step::Done {
                    host_port,
                    consumed: i + 1,
                });
            }
            if self.line.len() + 1 >= MAX_REPLY {
                self.line.push(b);
                return Err(self.error(HandshakeErrorKind::Oversized));
            }
            self.line.push(b);
            // Fail early on a reply that cannot start with "OK ", rather than waiting for a
            // newline that may never come.
            let n = self.line.len().min(OK.len());
            if self.line[..n] != OK[..n] {
                // Show the rest of the line at hand too, within the bound, for the message.
                let rest = input[i + 1..]
                    .split(|&b| b == b'\n')
                    .next()
                    .unwrap_or_default();
                let room = MAX_REPLY - 1 - self.line.len();
                self.line.extend_from_slice(&rest[..rest.len().min(room)]);
                return Err(self.error(HandshakeErrorKind::Malformed));
            }
        }
        Ok(Step::NeedMore)
    }

    /// The error for the VMM closing the connection now: [`HandshakeErrorKind::Refused`]
    /// before any reply byte (what the VMM does when nothing listens on the guest port),
    /// [`HandshakeErrorKind::Malformed`] in the middle of one.
    pub fn eof(&self) -> HandshakeError {
        if self.line.is_empty() {
            self.error(HandshakeErrorKind::Refused)
        } else {
            self.error(HandshakeErrorKind::Malformed)
        }
    }

    /// `OK <digits>` (without the newline), the digits a `u32`.
    fn parse_line(&self) -> Result<u32, HandshakeError> {
        self.line
            .strip_prefix(OK)
            .filter(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
            .ok_or_else(|| self.error(HandshakeErrorKind::Malformed))
    }

    fn error(&self, kind: HandshakeErrorKind) -> HandshakeError {
        HandshakeError {
            kind,
            port: self.port,
            reply: self.line.clone(),
        }
    }
}

/// Why a hybrid handshake failed; [`HandshakeError`] has the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeErrorKind {
    /// The VMM closed the connection before `OK`: nothing listens on that guest port (or no
    /// guest is there). As an [`io::Error`]: `ConnectionRefused`.
    Refused,
    /// The reply is not `OK <port>\n`. As an [`io::Error`]: `InvalidData`.
    Malformed,
    /// No newline within [`MAX_REPLY`] bytes. As an [`io::Error`]: `InvalidData`.
    Oversized,
}

/// A failed hybrid handshake: the kind, the guest port asked for, and the reply received.
///
/// Connects on every path return it inside their [`crate::Error`] (operation `handshake`);
/// [`HandshakeError::of`] finds it there.
///
/// ```
/// use uring_vsock::hybrid::{Handshake, HandshakeErrorKind};
///
/// let err = Handshake::new(5000).feed(b"ERR\n").unwrap_err();
/// assert_eq!(err.kind(), HandshakeErrorKind::Malformed);
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    kind: HandshakeErrorKind,
    port: u32,
    reply: Vec<u8>,
}

impl HandshakeError {
    /// What went wrong.
    pub fn kind(&self) -> HandshakeErrorKind {
        self.kind
    }

    /// The guest port the connect asked for.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The reply bytes received before the error (at most [`MAX_REPLY`]).
    pub fn reply(&self) -> &[u8] {
        &self.reply
    }

    /// The errno this error stands for: `ECONNREFUSED`, `EPROTO` (malformed) or `EMSGSIZE`.
    pub fn errno(&self) -> i32 {
        match self.kind {
            HandshakeErrorKind::Refused => libc::ECONNREFUSED,
            HandshakeErrorKind::Malformed => libc::EPROTO,
            HandshakeErrorKind::Oversized => libc::EMSGSIZE,
        }
    }

    /// The handshake error inside `err` (an [`io::Error`] from a connect, or the one a
    /// [`crate::Error`] wraps), if there is one.
    ///
    /// ```
    /// use uring_vsock::hybrid::{HandshakeError, Handshake};
    /// let io: std::io::Error = Handshake::new(1).eof().into();
    /// assert!(HandshakeError::of(&io).is_some());
    /// ```
    pub fn of(err: &io::Error) -> Option<&HandshakeError> {
        err.get_ref()?.downcast_ref::<HandshakeError>()
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (port, reply) = (self.port, self.reply.escape_ascii());
        match self.kind {
            HandshakeErrorKind::Refused => write!(
                f,
                "the VMM closed the connection before OK: nothing listens on guest port {port} \
                 (ECONNREFUSED)"
            ),
            HandshakeErrorKind::Malformed => write!(
                f,
                "reply \"{reply}\" to CONNECT {port} is not \"OK <port>\\n\" (EPROTO)"
            ),
            HandshakeErrorKind::Oversized => write!(
                f,
                "reply to CONNECT {port} has no newline in {MAX_REPLY} bytes: \"{reply}\" \
                 (EMSGSIZE)"
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<HandshakeError> for io::Error {
    fn from(err: HandshakeError) -> io::Error {
        let kind = match err.kind {
            HandshakeErrorKind::Refused => io::ErrorKind::ConnectionRefused,
            HandshakeErrorKind::Malformed | HandshakeErrorKind::Oversized => {
                io::ErrorKind::InvalidData
            }
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(reply: &[u8]) -> HandshakeErrorKind {
        Handshake::new(1).feed(reply).unwrap_err().kind()
    }

    #[test]
    fn good_replies() {
        let mut hs = Handshake::new(52);
        assert_eq!(hs.request(), b"CONNECT 52\n");
        assert_eq!(
            hs.feed(b"OK 4294967295\n"),
            Ok(Step::Done {
                host_port: u32::MAX,
                consumed: 14
            })
        );
        assert_eq!(hs.wants(), 0);
        assert_eq!(
            hs.feed(b"more"),
            Ok(Step::Done {
                host_port: u32::MAX,
                consumed: 0
            })
        );
    }

    #[test]
    fn bad_replies_are_typed() {
        assert_eq!(
            kind_of(b"ERR"),
            HandshakeErrorKind::Malformed,
            "fails early"
        );
        assert_eq!(kind_of(b"ok 1\n"), HandshakeErrorKind::Malformed);
        assert_eq!(kind_of(b"OK\n"), HandshakeErrorKind::Malformed);
        assert_eq!(kind_of(b"OK \n"), HandshakeErrorKind::Malformed);
        assert_eq!(kind_of(b"OK 1x\n"), HandshakeErrorKind::Malformed);
        assert_eq!(kind_of(b"OK 4294967296\n"), HandshakeErrorKind::Malformed);
        assert_eq!(kind_of(b"OK 1\r\n"), HandshakeErrorKind::Malformed);
        let long = [b"OK ".as_slice(), &[b'7'; MAX_REPLY]].concat();
        assert_eq!(kind_of(&long), HandshakeErrorKind::Oversized);
        // The longest accepted line: 63 bytes and the newline.
        let most = [b"OK ".as_slice(), &[b'0'; MAX_REPLY - 5], b"1\n"].concat();
        assert_eq!(most.len(), MAX_REPLY);
        assert!(matches!(
            Handshake::new(1).feed(&most),
            Ok(Step::Done { host_port: 1, .. })
        ));
        let mut hs = Handshake::new(9);
        assert_eq!(hs.eof().kind(), HandshakeErrorKind::Refused);
        hs.feed(b"OK 1").unwrap();
        let cut = hs.eof();
        assert_eq!(cut.kind(), HandshakeErrorKind::Malformed);
        let mut sticky = Handshake::new(1);
        let first = sticky.feed(&[b'O'; 3]).unwrap_err();
        assert_eq!(sticky.feed(b"K 1\n"), Err(first), "an error stays");
        assert_eq!(sticky.wants(), 0);
        assert_eq!(cut.reply(), b"OK 1");
        assert_eq!(cut.errno(), libc::EPROTO);
        assert!(cut.to_string().contains("CONNECT 9"), "{cut}");
    }
}
