//! Sans-I/O connection logic: what each end of a workload sends, expects and verifies,
//! written once and driven by every backend.
//!
//! A backend only moves bytes: it asks a session what it wants next ([`Session::next`]),
//! does that, and reports back ([`Session::on_sent`], [`Session::on_recv`],
//! [`Session::on_eof`]). So a backend cannot change what is measured or verified, and a new
//! backend is one file of I/O.

mod client;
mod outbox;
mod server;
mod source;

pub use client::ClientSession;
pub use outbox::Outbox;
pub use server::{ServerCounts, ServerSession, ServerStats};
pub use source::{Outcome, SessionPlan, SessionSource};

use std::time::Instant;

use crate::error::Result;

/// What a session wants its driver to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Want<'a> {
    /// Write (some prefix of) these bytes, then call [`Session::on_sent`] with the count:
    /// from [`Outbox::as_slice`], or copied from [`Outbox::parts`] into the backend's own
    /// buffers.
    Send(&'a mut Outbox),
    /// Read what arrives, then call [`Session::on_recv`] or, at end of stream,
    /// [`Session::on_eof`].
    Recv,
    /// Do nothing with this connection until this time (open-loop pacing), then ask again.
    Wait(Instant),
    /// Close the connection: the session is over.
    Done,
}

/// One end of one connection, as a state machine over bytes.
pub trait Session: Send {
    /// What to do next. `now` is the driver's clock, used for pacing and deadlines.
    fn next(&mut self, now: Instant) -> Want<'_>;
    /// `n` bytes of the last [`Want::Send`] were written, at `now`.
    fn on_sent(&mut self, n: usize, now: Instant);
    /// `data` arrived at `now`.
    ///
    /// # Errors
    ///
    /// The data broke the protocol or failed verification: close the connection.
    fn on_recv(&mut self, data: &[u8], now: Instant) -> Result<()>;
    /// The peer closed its end.
    ///
    /// # Errors
    ///
    /// The peer closed in the middle of a message or before the session was done.
    fn on_eof(&mut self) -> Result<()>;
}
