//! The library's io_uring engine (`uring_vsock::uring`): one engine for the server and one
//! for the clients, each with `--workers` workers; connections are completion handlers that
//! drive the sessions on the worker threads.
//!
//! - [`server`]: `engine.listen`, a [`ServerSession`](crate::session::ServerSession) per
//!   accepted connection.
//! - [`slots`]: the client side's connection slots, a new `engine.connect` per session.
//! - [`client`]: the handler running one client session.
//! - [`drive`]: moving a session's bytes through a connection, shared by both ends.
//! - [`pacer`]: the timer of open-loop runs, which the engine does not have.
//!
//! `uring-spin` is the same with the engine's adaptive spin of [`SPIN`]; `uring-nohandoff`
//! and `uring-nofiles` turn one engine feature off (the ring hand-off of accepted sockets,
//! registered files), for A/B runs against `uring`.

mod client;
mod drive;
mod pacer;
mod server;
mod slots;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use uring_vsock::uring::{Engine, EngineStats};
use uring_vsock::Endpoint;

use super::{Backend, BackendKind, Server};
use crate::error::{Context, Result};
use crate::session::SessionSource;
use crate::sockets::{SocketOpts, MAX_SEQPACKET_MESSAGE};

/// The spin budget of `uring-spin`: how long a worker keeps polling its ring after the last
/// completion before sleeping in the kernel. A request/response round trip on unix or
/// loopback tcp takes tens of microseconds, so 100 µs covers the wait for the next message
/// of a busy connection without burning a core through the idle gaps of open-loop pacing
/// (the engine's own round-trip bench uses 200 µs; half of it measured the same there).
pub const SPIN: Duration = Duration::from_micros(100);
/// Receive buffers per worker of a seqpacket run's engines, each [`MAX_SEQPACKET_MESSAGE`].
const SEQPACKET_RECV_BUFFERS: usize = 32;

/// The uring backend and its variants (`kind` says which).
#[derive(Debug)]
pub(crate) struct Uring {
    kind: BackendKind,
    /// The client engine of the last `run_clients`, kept for the next one with as many
    /// workers: a run's measured phase then does not pay for starting an engine (a few
    /// milliseconds) after its warmup did. Shut down when the backend is dropped.
    clients: Mutex<Option<Engine>>,
    /// The run's socket options, for both engines.
    opts: SocketOpts,
}

/// The uring backend of `kind` (`uring`, `uring-spin`, `uring-nohandoff` or
/// `uring-nofiles`): the engine is in this build.
pub(crate) fn open(kind: BackendKind, opts: SocketOpts) -> Result<Box<dyn Backend>> {
    Ok(Box::new(Uring {
        kind,
        clients: Mutex::new(None),
        opts,
    }))
}

impl Uring {
    /// An engine with `workers` workers (at least one) and this variant's settings.
    fn engine(&self, workers: usize) -> Result<Engine> {
        let mut builder = Engine::builder().workers(workers.max(1));
        builder = match self.kind {
            BackendKind::UringSpin => builder.spin(SPIN),
            BackendKind::UringNoHandoff => builder.ring_handoff(false),
            BackendKind::UringNoFiles => builder.registered_files(false),
            _ => builder,
        };
        // The engine sets it (max first) on its vsock listeners and connects.
        if let Some(n) = self.opts.vsock_buffer {
            builder = builder.vsock_buffer_size(n);
        }
        if self.opts.seqpacket {
            // A receive buffer holds one whole message: the largest a seqpacket run sends,
            // in as many bytes as the default ring (128 x 16 KiB).
            builder = builder.recv_buffers(SEQPACKET_RECV_BUFFERS, MAX_SEQPACKET_MESSAGE);
        }
        builder
            .build()
            .context(format!("starting the {} engine", self.kind()))
    }
}

impl Uring {
    /// The clients' engine for `workers` workers: the one kept from the last run if it has
    /// as many, else a new one.
    fn clients_engine<'a>(
        &self,
        clients: &'a mut Option<Engine>,
        workers: usize,
    ) -> Result<&'a Engine> {
        if clients
            .as_ref()
            .is_none_or(|e| e.workers() != workers.max(1))
        {
            // The old one first: both at once might not fit the memory-lock limit.
            *clients = None;
            *clients = Some(self.engine(workers)?);
        }
        Ok(clients.as_ref().expect("set above"))
    }
}

impl Backend for Uring {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn serve(&self, listen: &Endpoint, workers: usize) -> Result<Box<dyn Server>> {
        let engine = self.engine(workers)?;
        Ok(Box::new(server::UringServer::start(
            engine,
            listen,
            self.opts.seqpacket,
        )?))
    }

    fn engine_stats(&self, workers: usize) -> Result<Option<EngineStats>> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Some(self.clients_engine(&mut clients, workers)?.stats()))
    }

    fn run_clients(
        &self,
        connect: &Endpoint,
        source: Arc<SessionSource>,
        slots: usize,
        workers: usize,
    ) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        match self.clients_engine(&mut clients, workers) {
            Ok(engine) => slots::run(
                engine,
                connect,
                &source,
                slots,
                workers,
                self.opts.seqpacket,
            ),
            Err(e) => source.fail(e),
        }
    }
}
