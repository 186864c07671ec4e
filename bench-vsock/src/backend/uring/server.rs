//! The server side: `engine.listen`, with a [`ServerSession`] per accepted connection
//! running in its handler on the connection's worker.

use std::io;
use std::sync::{Arc, Condvar, Mutex};

use uring_vsock::uring::{CloseReason, Conn, Engine, EngineStats, Handler, RecvBuf, SendBuf};
use uring_vsock::Endpoint;

use super::drive::{self, Step};
use crate::backend::{Server, IO_TIMEOUT};
use crate::error::{Context, Error, Result};
use crate::session::{ServerSession, ServerStats, Session};

/// What a server's connections share: the stats, and how many are still open, so
/// [`Server::stop`] can wait for them instead of cutting them off.
#[derive(Default)]
struct Served {
    stats: Arc<ServerStats>,
    open: Mutex<usize>,
    all_closed: Condvar,
}

/// A server running on its own engine.
pub(super) struct UringServer {
    engine: Engine,
    endpoint: Endpoint,
    served: Arc<Served>,
}

impl UringServer {
    /// Listens on `listen` with `engine`, a [`ServerConn`] per connection, on a seqpacket
    /// socket if `seqpacket`.
    pub(super) fn start(engine: Engine, listen: &Endpoint, seqpacket: bool) -> Result<UringServer> {
        let served = Arc::new(Served::default());
        let for_conns = served.clone();
        let factory = move |_peer: &Endpoint| ServerConn::new(for_conns.clone());
        let endpoint = if seqpacket {
            engine.listen_seqpacket(listen, factory)
        } else {
            engine.listen(listen, factory)
        }
        .context(format!("listening on {listen}"))?;
        Ok(UringServer {
            engine,
            endpoint,
            served,
        })
    }
}

impl Server for UringServer {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn stats(&self) -> &Arc<ServerStats> {
        &self.served.stats
    }

    fn engine_stats(&self) -> Option<EngineStats> {
        Some(self.engine.stats())
    }

    fn stop(self: Box<Self>) -> Result<()> {
        // Clients have closed their ends by now; their connections here close as the EOFs
        // are read. Wait for that (bounded, so a stuck peer cannot hang the run), then shut
        // the engine down, which closes anything left as failed.
        let open = self.served.open.lock().expect("open lock");
        let (open, _) = self
            .served
            .all_closed
            .wait_timeout_while(open, IO_TIMEOUT, |n| *n > 0)
            .expect("open lock");
        drop(open);
        self.engine.shutdown();
        self.served.stats.result()
    }
}

/// The handler of one accepted connection.
struct ServerConn {
    session: ServerSession,
    served: Arc<Served>,
    /// The first protocol or verification error: the connection is closed for it.
    error: Option<Error>,
    /// Whether the session reached its end.
    done: bool,
    /// Whether `on_close` recorded the outcome.
    recorded: bool,
}

impl ServerConn {
    fn new(served: Arc<Served>) -> ServerConn {
        *served.open.lock().expect("open lock") += 1;
        ServerConn {
            session: ServerSession::new(),
            served,
            error: None,
            done: false,
            recorded: false,
        }
    }

    fn drive(&mut self, conn: &mut Conn<'_>) {
        if self.done || self.error.is_some() {
            return;
        }
        match drive::advance(&mut self.session, conn) {
            // A server session never paces; both mean: wait for the connection.
            Step::Pending | Step::Wait(_) => {}
            Step::Done => {
                self.done = true;
                drive::finish(conn);
            }
        }
    }

    fn fail(&mut self, conn: &mut Conn<'_>, error: Error) {
        self.error.get_or_insert(error);
        conn.close();
    }

    fn record(&mut self, result: Result<()>) {
        if !self.recorded {
            self.recorded = true;
            self.served.stats.record(&self.session, &result);
        }
    }
}

impl Handler for ServerConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.drive(conn);
    }

    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        if self.error.is_some() {
            return;
        }
        match drive::receive(&mut self.session, &buf) {
            Ok(()) => self.drive(conn),
            Err(e) => self.fail(conn, e),
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, res: io::Result<usize>) {
        // A failed send closes the connection, whose reason says why.
        if res.is_ok() {
            self.drive(conn);
        }
    }

    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        if self.error.is_some() {
            return;
        }
        match self.session.on_eof() {
            Ok(()) => self.drive(conn),
            Err(e) => self.fail(conn, e),
        }
    }

    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let result = match self.error.take() {
            Some(e) => Err(e),
            None if self.done => Ok(()),
            None => Err(Error::new(format!(
                "uring server connection {reason} before its session ended"
            ))),
        };
        self.record(result);
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        // Without `on_close` only when a handler call panicked.
        self.record(Err(Error::new(
            "uring server connection: a handler panicked",
        )));
        let mut open = self.served.open.lock().expect("open lock");
        *open -= 1;
        if *open == 0 {
            self.served.all_closed.notify_all();
        }
    }
}
