//! Moving a session's bytes through an engine connection, the same for both ends.
//!
//! Sends are handed to the engine, which owns them until written and writes a connection's
//! sends in order; so a session is told its bytes are sent ([`Session::on_sent`]) once they
//! are queued, and moves on to what comes next (usually receiving) while they go out. What
//! the queue cannot take now stays in the session (it asks for the rest again), and the
//! connection's next `on_sent` completion drives it on: nothing is dropped.

use std::time::Instant;

use uring_vsock::uring::{Conn, RecvBuf, SendBuf};

use crate::error::{Error, Result};
use crate::session::{Outbox, Session, Want};

/// The most one heap buffer carries when the worker's send pool is empty: the pool's
/// default buffer size.
const HEAP_CHUNK: usize = 64 * 1024;

/// Where a session stopped after [`advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Waiting for the connection: bytes to arrive, or room in the send queue (the next
    /// `on_sent` brings it).
    Pending,
    /// Pacing: nothing to do until this time.
    Wait(Instant),
    /// The session is over.
    Done,
}

/// Moves `session` on until it waits for the connection, paces, or ends.
pub(super) fn advance(session: &mut impl Session, conn: &mut Conn<'_>) -> Step {
    loop {
        match session.next(Instant::now()) {
            Want::Send(out) => {
                let n = queue(conn, out);
                if n == 0 {
                    return Step::Pending;
                }
                session.on_sent(n, Instant::now());
            }
            Want::Recv => return Step::Pending,
            Want::Wait(until) => return Step::Wait(until),
            Want::Done => return Step::Done,
        }
    }
}

/// Copies as much of what `out` holds as the connection's send queue takes into send
/// buffers, straight from its parts (the pattern's table for a payload: no buffer in
/// between), and queues them; returns how much was queued.
///
/// Buffers come from the worker's registered pool. When other connections hold all of it
/// and this one has nothing in flight, a heap buffer is used instead: otherwise no
/// completion of this connection would ever come to retry from, and it would stall.
fn queue(conn: &mut Conn<'_>, out: &Outbox) -> usize {
    let total = out.len();
    let mut parts = out.parts();
    let mut part: &[u8] = &[];
    let mut taken = 0;
    while taken < total && conn.can_send() {
        let mut buf = match conn.send_buf() {
            Some(buf) => buf,
            None if conn.sends_queued() == 0 => {
                SendBuf::from(Vec::with_capacity((total - taken).min(HEAP_CHUNK)))
            }
            None => break,
        };
        let room = buf.capacity().min(total - taken);
        let mut filled = 0;
        while filled < room {
            if part.is_empty() {
                part = parts.next().expect("parts hold `total` bytes");
            }
            let n = buf.extend_from_slice(&part[..part.len().min(room - filled)]);
            part = &part[n..];
            filled += n;
        }
        if conn.send(buf).is_err() {
            // `can_send` said yes, so the connection is closing: its close reports why.
            break;
        }
        taken += filled;
    }
    taken
}

/// Hands `buf` to `session`: on a seqpacket connection it is one whole message, and a
/// truncated one (longer than the engine's receive buffers) fails the connection, its tail
/// lost. A stream's buffers are never truncated.
pub(super) fn receive(session: &mut impl Session, buf: &RecvBuf) -> Result<()> {
    if buf.truncated() {
        return Err(Error::new(format!(
            "a seqpacket message of {} bytes was truncated to the engine's {}-byte receive \
             buffer",
            buf.message_len(),
            buf.len()
        )));
    }
    session.on_recv(buf, Instant::now())
}

/// Ends a connection whose session is done: closes it at once when nothing is left to
/// send (as the other backends drop their socket), else shuts down the write side so the
/// queued bytes go out first and the engine closes once the peer has closed too.
pub(super) fn finish(conn: &mut Conn<'_>) {
    if conn.sends_queued() == 0 {
        conn.close();
    } else {
        conn.shutdown_write();
    }
}
