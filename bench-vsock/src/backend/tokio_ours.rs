//! The library's own tokio path, `uring_vsock::tokio` (its `Listener` and `Stream`, built
//! on our socket layer and tokio's `AsyncFd`), on a multi-threaded runtime of `--workers`
//! threads: the same driver as the `tokio` backend, so the two differ in their sockets only.

use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::task::JoinSet;
use uring_vsock::tokio::{Listener, Stream};
use uring_vsock::Endpoint;

use super::tokio_common::{drive, run_clients, runtime, serve_conn, start_server, Accept, Dial};
use super::{tune, Backend, BackendKind, Server, BACKLOG, CONNECT_TIMEOUT};
use crate::error::Result;
use crate::session::{ServerStats, Session, SessionSource};
use crate::sockets::SocketOpts;

/// The `tokio-ours` backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokioOurs {
    /// The run's socket options, for both ends.
    pub(crate) opts: SocketOpts,
}

/// Our listener, the endpoint it listens on (for `TCP_NODELAY` on accepted tcp) and the
/// run's socket options.
struct OursListener {
    listener: Listener,
    endpoint: Endpoint,
    opts: SocketOpts,
}

impl Accept for OursListener {
    type Conn = Stream;

    async fn accept(&self) -> Result<Stream> {
        let (s, _) = self.listener.accept().await?;
        tune(s.as_fd(), &self.endpoint, &self.opts)?;
        Ok(s)
    }

    fn spawn(conn: Stream, conns: &mut JoinSet<()>, stats: Arc<ServerStats>) {
        conns.spawn(serve_conn(conn, stats));
    }
}

impl Dial for TokioOurs {
    async fn connect_and_drive(
        self,
        ep: &Endpoint,
        session: &mut dyn Session,
        buf: &mut [u8],
    ) -> Result<()> {
        // The library's deadline covers a hybrid endpoint's handshake too.
        let mut s = Stream::connect_timeout(ep, CONNECT_TIMEOUT).await?;
        tune(s.as_fd(), ep, &self.opts)?;
        drive(&mut s, session, buf).await
    }
}

impl Backend for TokioOurs {
    fn kind(&self) -> BackendKind {
        BackendKind::TokioOurs
    }

    fn serve(&self, listen: &Endpoint, workers: usize) -> Result<Box<dyn Server>> {
        let rt = runtime(workers, "tokio-ours-server")?;
        let listener = {
            let _in_runtime = rt.enter();
            Listener::bind_with_backlog(listen, BACKLOG)?
        };
        let endpoint = listener.local_addr()?;
        // On the listener too, so accepted sockets start with them.
        tune(listener.as_fd(), &endpoint, &self.opts)?;
        let listener = OursListener {
            listener,
            endpoint: endpoint.clone(),
            opts: self.opts,
        };
        Ok(start_server(rt, listener, endpoint, "tokio-ours accept"))
    }

    fn run_clients(
        &self,
        connect: &Endpoint,
        source: Arc<SessionSource>,
        slots: usize,
        workers: usize,
    ) {
        run_clients(*self, "tokio-ours", connect, source, slots, workers);
    }
}
