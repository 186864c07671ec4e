//! [`ConnHandle`]: drives a connection from any thread. Requests go to the connection's
//! worker through a [`RequestSink`] (its mailbox); the handle's shared state says when the
//! connection closed and bounds the bytes a handle may have queued.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

use super::conn::{CloseReason, ConnId};
use super::on_worker::on_worker;
use crate::Result;

/// What a handle asks of its connection's worker, in the order asked.
pub(crate) enum Request {
    Send(Vec<u8>),
    ShutdownWrite,
    Close,
    Abort,
    ResumeRecv,
}

/// Where a handle's requests go: its connection's worker (the mailbox implements it), which
/// is woken for them.
pub(crate) trait RequestSink: Send + Sync {
    /// Queues `req` for connection `id`; gives it back if the worker is gone.
    fn request(&self, id: ConnId, req: Request) -> std::result::Result<(), Request>;
}

/// State a connection shares with its handles.
pub(crate) struct HandleShared {
    pub(crate) id: ConnId,
    pub(crate) link: Arc<dyn RequestSink>,
    pub(crate) state: Mutex<HandleState>,
    pub(crate) changed: Condvar,
    pub(crate) max_queued: usize,
}

pub(crate) struct HandleState {
    /// Handle sends queued on the worker and not yet completed.
    pub(crate) queued: usize,
    pub(crate) closed: Option<CloseReason>,
}

impl HandleShared {
    pub(crate) fn new(
        id: ConnId,
        link: Arc<dyn RequestSink>,
        max_queued: usize,
    ) -> Arc<HandleShared> {
        Arc::new(HandleShared {
            id,
            link,
            state: Mutex::new(HandleState {
                queued: 0,
                closed: None,
            }),
            changed: Condvar::new(),
            max_queued,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HandleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle send finished (sent or not).
    pub(crate) fn send_done(&self) {
        let mut st = self.lock();
        st.queued = st.queued.saturating_sub(1);
        drop(st);
        self.changed.notify_all();
    }

    pub(crate) fn set_closed(&self, reason: CloseReason) {
        let mut st = self.lock();
        st.closed = Some(reason);
        st.queued = 0;
        drop(st);
        self.changed.notify_all();
    }
}

/// Why a [`ConnHandle::send`] did not queue the bytes (they are given back).
#[derive(Debug)]
pub enum SendError {
    /// The connection has as many handle sends queued as allowed; retry after some complete.
    Full(Vec<u8>),
    /// The connection is closed (or its engine shut down).
    Closed(Vec<u8>),
}

impl SendError {
    /// The bytes that were not queued.
    pub fn into_inner(self) -> Vec<u8> {
        match self {
            SendError::Full(v) | SendError::Closed(v) => v,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("connection send queue is full"),
            SendError::Closed(_) => f.write_str("connection is closed"),
        }
    }
}

impl std::error::Error for SendError {}

/// Drives a connection from any thread: send, half-close, close, wait for the close.
///
/// Cheap to clone; `Send + Sync`. Requests are carried out in order on the connection's
/// worker. A handle's bytes are owned by the engine from [`send`](Self::send) until written
/// (they are not passed to [`Handler::on_sent`](super::Handler::on_sent)); a connection closing drops what was not
/// written yet.
///
/// # Examples
///
/// ```
/// use uring_vsock::uring::{Conn, Engine, Handler, RecvBuf};
///
/// struct Print;
/// impl Handler for Print {
///     fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
///         println!("{} bytes", buf.len());
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("uv-handle-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
/// std::fs::create_dir_all(&dir)?;
/// let ep = uring_vsock::Endpoint::Unix(dir.join("s"));
/// let engine = Engine::builder().workers(1).build()?;
/// engine.listen(&ep, |_peer| Print)?;
/// let conn = engine.connect(&ep, None, || Print)?;
/// conn.send(b"hello".to_vec())?;
/// conn.close();
/// conn.wait_closed()?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConnHandle {
    pub(crate) shared: Arc<HandleShared>,
}

impl ConnHandle {
    /// The connection this drives.
    pub fn id(&self) -> ConnId {
        self.shared.id
    }

    /// Queues `data`, waiting while the connection already has the most handle sends queued
    /// (the engine's sends-per-connection setting). On an engine worker thread (in a
    /// handler) it never waits, since the wait could be for that very worker: it is
    /// [`try_send`](Self::try_send) there.
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] with the bytes when the connection is closed;
    /// [`SendError::Full`] only when called on a worker thread.
    pub fn send(&self, data: Vec<u8>) -> std::result::Result<(), SendError> {
        if on_worker() {
            return self.try_send(data);
        }
        let mut st = self.shared.lock();
        while st.closed.is_none() && st.queued >= self.shared.max_queued {
            st = self
                .shared
                .changed
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
        self.queue_locked(st, data)
    }

    /// Queues `data` if there is room now.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when there is no room, [`SendError::Closed`] when closed.
    pub fn try_send(&self, data: Vec<u8>) -> std::result::Result<(), SendError> {
        let st = self.shared.lock();
        if st.closed.is_none() && st.queued >= self.shared.max_queued {
            return Err(SendError::Full(data));
        }
        self.queue_locked(st, data)
    }

    fn queue_locked(
        &self,
        mut st: std::sync::MutexGuard<'_, HandleState>,
        data: Vec<u8>,
    ) -> std::result::Result<(), SendError> {
        if st.closed.is_some() {
            return Err(SendError::Closed(data));
        }
        st.queued += 1;
        drop(st);
        match self
            .shared
            .link
            .request(self.shared.id, Request::Send(data))
        {
            Ok(()) => Ok(()),
            Err(Request::Send(data)) => {
                self.shared.send_done();
                Err(SendError::Closed(data))
            }
            Err(_) => unreachable!("request gives back the request it was given"),
        }
    }

    /// Shuts down the write side once everything queued before is sent (the peer reads EOF);
    /// receiving goes on.
    pub fn shutdown_write(&self) {
        let _ = self
            .shared
            .link
            .request(self.shared.id, Request::ShutdownWrite);
    }

    /// Closes the connection gracefully once everything queued before is sent (FIN after the
    /// data), as [`Conn::close`](crate::uring::Conn::close); the handler's `on_close` gets
    /// [`CloseReason::Local`].
    pub fn close(&self) {
        let _ = self.shared.link.request(self.shared.id, Request::Close);
    }

    /// Closes the connection at once with a reset, as [`Conn::abort`](crate::uring::Conn::abort);
    /// the handler's `on_close` gets [`CloseReason::Aborted`].
    pub fn abort(&self) {
        let _ = self.shared.link.request(self.shared.id, Request::Abort);
    }

    /// Re-arms receiving after [`Conn::pause_recv`](crate::uring::Conn::pause_recv).
    pub fn resume_recv(&self) {
        let _ = self
            .shared
            .link
            .request(self.shared.id, Request::ResumeRecv);
    }

    /// Why the connection closed, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.shared.lock().closed.clone()
    }

    /// Blocks until the connection has closed (every operation completed, socket closed)
    /// and says why.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when called on an engine worker thread (in a handler), where waiting
    /// could be for that very worker; use [`closed`](Self::closed) there.
    pub fn wait_closed(&self) -> Result<CloseReason> {
        if on_worker() {
            return Err(crate::Error::new(
                "wait_closed",
                None,
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "ConnHandle::wait_closed blocks: not callable on an engine worker \
                         (connection {})",
                        self.shared.id
                    ),
                ),
            ));
        }
        let mut st = self.shared.lock();
        loop {
            if let Some(r) = &st.closed {
                return Ok(r.clone());
            }
            st = self
                .shared
                .changed
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}
