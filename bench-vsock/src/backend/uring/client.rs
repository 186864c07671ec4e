//! The handler running one client session on its connection's worker.
//!
//! The session sits behind a mutex because in an open-loop run the pacer thread moves it on
//! too (see [`pacer`](super::pacer)); on the worker the lock is uncontended but for those
//! moments.

use std::io;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Handler, RecvBuf, SendBuf, SendError};
use uring_vsock::Endpoint;

use super::drive::{self, Step};
use super::pacer::{Timed, Timers};
use crate::error::Error;
use crate::session::{ClientSession, Session, SessionSource, Want};

/// How soon the pacer tries again when a connection's handle queue is full (it is not in a
/// request/response run: each message waits for its echo).
const FULL_RETRY: Duration = Duration::from_micros(50);

/// What every client connection of one run shares.
pub(super) struct ClientRun {
    /// Where sessions come from, and where their errors go.
    pub(super) source: Arc<SessionSource>,
    /// Where the connections go (for error messages).
    pub(super) endpoint: Endpoint,
    /// The pacer of an open-loop run.
    pub(super) timers: Option<Timers>,
    /// Whether the connections are seqpacket ones.
    pub(super) seqpacket: bool,
}

/// One session and the state its connection and the pacer share.
pub(super) struct ClientCell(Mutex<ClientState>);

struct ClientState {
    session: ClientSession,
    /// For the pacer's sends; set when the connection opens.
    handle: Option<ConnHandle>,
    /// Whether a pacing deadline is set (so it is set once).
    waiting: bool,
    /// The first protocol or verification error: the connection is closed for it.
    error: Option<Error>,
}

impl ClientCell {
    /// A cell for a session about to connect.
    pub(super) fn new(session: ClientSession) -> Arc<ClientCell> {
        Arc::new(ClientCell(Mutex::new(ClientState {
            session,
            handle: None,
            waiting: false,
            error: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, ClientState> {
        // A panic while holding it closed that connection; the state is still readable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Timed for ClientCell {
    /// The session's pacing deadline came: send its next message through the handle.
    fn fire(&self) -> Option<Instant> {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.waiting = false;
        if st.error.is_some() {
            return None;
        }
        let handle = st.handle.clone()?;
        loop {
            let data = match st.session.next(Instant::now()) {
                // A handle cannot reach the worker's registered pool: one heap buffer,
                // filled straight from the session's parts.
                Want::Send(out) => {
                    let mut data = Vec::with_capacity(out.len());
                    out.parts().for_each(|p| data.extend_from_slice(p));
                    data
                }
                // The reply drives it on, on the worker.
                Want::Recv => return None,
                Want::Wait(at) => {
                    st.waiting = true;
                    return Some(at);
                }
                Want::Done => {
                    // Close gracefully: the server closes on the EOF, and the handler's
                    // `on_peer_shutdown` then closes this end.
                    handle.shutdown_write();
                    return None;
                }
            };
            let n = data.len();
            match handle.try_send(data) {
                Ok(()) => st.session.on_sent(n, Instant::now()),
                Err(SendError::Full(_)) => {
                    st.waiting = true;
                    return Some(Instant::now() + FULL_RETRY);
                }
                // Its handler's `on_close` reports why.
                Err(SendError::Closed(_)) => return None,
            }
        }
    }
}

/// The handler of one client connection.
pub(super) struct ClientConn {
    cell: Arc<ClientCell>,
    run: Arc<ClientRun>,
    /// Told when this connection is over, so its slot starts the next session.
    freed: Sender<()>,
    /// Whether the connection opened (only then does its slot wait for it).
    opened: bool,
    /// Whether `on_close` reported the outcome.
    reported: bool,
}

impl ClientConn {
    /// The handler for `cell`'s session; `freed` hears when it is over.
    pub(super) fn new(cell: Arc<ClientCell>, run: Arc<ClientRun>, freed: Sender<()>) -> Self {
        ClientConn {
            cell,
            run,
            freed,
            opened: false,
            reported: false,
        }
    }

    fn drive(&self, st: &mut ClientState, conn: &mut Conn<'_>) {
        if st.error.is_some() {
            return;
        }
        match drive::advance(&mut st.session, conn) {
            Step::Pending => {}
            Step::Wait(at) => {
                if !st.waiting {
                    st.waiting = true;
                    match &self.run.timers {
                        Some(timers) => timers.at(at, self.cell.clone()),
                        None => self.fail(st, conn, Error::new("a session paced without a pacer")),
                    }
                }
            }
            Step::Done => drive::finish(conn),
        }
    }

    fn fail(&self, st: &mut ClientState, conn: &mut Conn<'_>, error: Error) {
        st.error.get_or_insert(error);
        conn.close();
    }

    fn report(&mut self, result: Result<(), Error>) {
        if self.reported {
            return;
        }
        self.reported = true;
        if let Err(e) = result {
            let ep = &self.run.endpoint;
            self.run
                .source
                .fail(e.context(format!("uring client to {ep}")));
        }
    }
}

impl Handler for ClientConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.opened = true;
        let mut st = self.cell.lock();
        st.handle = Some(conn.handle());
        self.drive(&mut st, conn);
    }

    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        let mut st = self.cell.lock();
        if st.error.is_some() {
            return;
        }
        match drive::receive(&mut st.session, &buf) {
            Ok(()) => self.drive(&mut st, conn),
            Err(e) => self.fail(&mut st, conn, e),
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, res: io::Result<usize>) {
        // A failed send closes the connection, whose reason says why.
        if res.is_ok() {
            let mut st = self.cell.lock();
            self.drive(&mut st, conn);
        }
    }

    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        let mut st = self.cell.lock();
        if st.error.is_some() {
            return;
        }
        match st.session.on_eof() {
            Ok(()) => self.drive(&mut st, conn),
            Err(e) => self.fail(&mut st, conn, e),
        }
    }

    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let result = {
            let mut st = self.cell.lock();
            match st.error.take() {
                Some(e) => Err(e),
                None if st.session.is_done() => Ok(()),
                None => Err(Error::new(format!(
                    "connection {reason} before its session ended"
                ))),
            }
        };
        self.report(result);
    }
}

impl Drop for ClientConn {
    fn drop(&mut self) {
        if !self.opened {
            // The connect failed: the slot heard it from `Engine::connect`.
            return;
        }
        // Without `on_close` only when a handler call panicked.
        self.report(Err(Error::new("a handler panicked")));
        // The slot's thread outlives its connections; a failed send means it is gone.
        let _ = self.freed.send(());
    }
}
