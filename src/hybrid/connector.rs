//! [`Connector`]: the I/O plan of a hybrid connect, after the unix connect, for any driver
//! (a blocking or nonblocking socket, the engine's ring). It says what to do next; the driver
//! does it and reports back.
//!
//! The reply is read with `MSG_PEEK` and only its bytes are then consumed, so whatever the
//! guest sends after `OK` stays queued in the socket: the stream's first bytes reach the
//! application through its ordinary reads (or the engine's receives), on every path, with no
//! side buffer to hand over.

use std::io;

use super::handshake::{Handshake, HandshakeError, Step};

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send [`Connector::unsent`] (report with [`Connector::sent`]).
    Send,
    /// Peek at most this many bytes (report with [`Connector::peeked`]; none is EOF).
    Peek(usize),
    /// Receive (consume) exactly this many bytes, already peeked (report with
    /// [`Connector::consumed`]).
    Consume(usize),
    /// The handshake is done; the stream is the guest's connection.
    Done,
}

/// The state of one hybrid handshake.
#[derive(Debug)]
pub(crate) struct Connector {
    handshake: Handshake,
    request: Vec<u8>,
    sent: usize,
    /// Peeked reply bytes still to be consumed.
    to_consume: usize,
    finished: bool,
}

impl Connector {
    pub(crate) fn new(port: u32) -> Connector {
        let handshake = Handshake::new(port);
        let request = handshake.request();
        Connector {
            handshake,
            request,
            sent: 0,
            to_consume: 0,
            finished: false,
        }
    }

    /// What to do next.
    pub(crate) fn action(&self) -> Action {
        if self.sent < self.request.len() {
            Action::Send
        } else if self.to_consume > 0 {
            Action::Consume(self.to_consume)
        } else if self.finished {
            Action::Done
        } else {
            Action::Peek(self.handshake.wants())
        }
    }

    /// The part of the request not sent yet.
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.request[self.sent..]
    }

    /// `n` bytes of the request went out.
    pub(crate) fn sent(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.request.len());
    }

    /// A peek returned `bytes` (empty: the VMM closed the connection).
    pub(crate) fn peeked(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        if bytes.is_empty() {
            return Err(self.handshake.eof());
        }
        match self.handshake.feed(bytes)? {
            Step::NeedMore => self.to_consume = bytes.len(),
            Step::Done { consumed, .. } => {
                self.to_consume = consumed;
                self.finished = true;
            }
        }
        Ok(())
    }

    /// `n` peeked bytes were consumed.
    pub(crate) fn consumed(&mut self, n: usize) {
        self.to_consume = self.to_consume.saturating_sub(n);
    }

    /// The error to report for an I/O error `err` during the handshake: a VMM that hangs up
    /// before reading the request (`ECONNRESET`, `EPIPE`) refused the connection like one
    /// that closes after it.
    pub(crate) fn io_error(&self, err: io::Error) -> io::Error {
        match err.raw_os_error() {
            Some(libc::ECONNRESET | libc::EPIPE) => self.handshake.eof().into(),
            _ => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hybrid::HandshakeErrorKind;

    #[test]
    fn plans_send_peek_consume() {
        let mut c = Connector::new(7);
        assert_eq!(c.action(), Action::Send);
        assert_eq!(c.unsent(), b"CONNECT 7\n");
        c.sent(3);
        assert_eq!(c.unsent(), b"NECT 7\n");
        c.sent(7);
        assert_eq!(c.action(), Action::Peek(64));
        c.peeked(b"OK").unwrap();
        assert_eq!(c.action(), Action::Consume(2));
        c.consumed(2);
        assert_eq!(c.action(), Action::Peek(62));
        c.peeked(b" 9\ndata").unwrap();
        assert_eq!(
            c.action(),
            Action::Consume(3),
            "the stream's bytes stay queued"
        );
        c.consumed(3);
        assert_eq!(c.action(), Action::Done);
    }

    #[test]
    fn hang_ups_are_refusals() {
        let mut c = Connector::new(7);
        c.sent(10);
        assert_eq!(
            c.peeked(b"").unwrap_err().kind(),
            HandshakeErrorKind::Refused
        );
        let reset = c.io_error(io::Error::from_raw_os_error(libc::ECONNRESET));
        assert_eq!(reset.kind(), io::ErrorKind::ConnectionRefused);
        let other = c.io_error(io::Error::from_raw_os_error(libc::EBADF));
        assert_eq!(other.raw_os_error(), Some(libc::EBADF));
    }
}
