//! The library's blocking path: a thread per connection on both ends.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::Endpoint;

use super::threads::ThreadServer;
use super::{tune, Backend, BackendKind, Server, BACKLOG, CONNECT_TIMEOUT, IO_TIMEOUT};
use crate::error::{Context, Error, Result};
use crate::session::{ServerSession, ServerStats, Session, SessionSource, Want};

/// Per-connection read buffer: big enough for a 64 KiB message in one read.
const READ_BUF: usize = 64 * 1024;
/// Connection threads need little stack: buffers are on the heap, and 512 of them run at
/// once in an `rr` run.
const STACK: usize = 256 * 1024;
/// How often the accept loop looks at its stop flag.
const ACCEPT_POLL_MS: i32 = 50;

/// The blocking backend.
#[derive(Debug)]
pub(crate) struct Blocking;

/// Runs one session over a blocking stream until it is done.
fn drive(mut stream: &Stream, session: &mut dyn Session, buf: &mut [u8]) -> Result<()> {
    loop {
        let now = Instant::now();
        match session.next(now) {
            Want::Send(out) => {
                let n = stream.write(out.as_slice()).context("write")?;
                session.on_sent(n, Instant::now());
            }
            Want::Recv => match stream.read(buf) {
                Ok(0) => session.on_eof()?,
                Ok(n) => session.on_recv(&buf[..n], Instant::now())?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from(e).context("read")),
            },
            Want::Wait(until) => thread::sleep(until.saturating_duration_since(now)),
            Want::Done => return Ok(()),
        }
    }
}

fn connect(ep: &Endpoint) -> Result<Stream> {
    // A unix connect to a full backlog fails at once with EAGAIN when nonblocking, which is
    // how a connect with a timeout works; a plain blocking connect waits for room instead.
    let stream = if matches!(ep, Endpoint::Unix(_) | Endpoint::UnixAbstract(_)) {
        Stream::connect(ep)?
    } else {
        Stream::connect_timeout(ep, CONNECT_TIMEOUT)?
    };
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    tune(stream.as_fd(), ep)?;
    Ok(stream)
}

fn client_slot(ep: &Endpoint, source: &SessionSource) {
    let mut buf = vec![0; READ_BUF];
    while let Some(mut session) = source.next_session() {
        let result = connect(ep).and_then(|stream| drive(&stream, &mut session, &mut buf));
        if let Err(e) = result {
            source.fail(e.context(format!("blocking client to {ep}")));
        }
    }
}

impl Backend for Blocking {
    fn kind(&self) -> BackendKind {
        BackendKind::Blocking
    }

    fn serve(&self, listen: &Endpoint, _workers: usize) -> Result<Box<dyn Server>> {
        let listener = Listener::bind_with_backlog(listen, BACKLOG)?;
        let endpoint = listener.local_addr()?;
        let ep = endpoint.clone();
        let server = ThreadServer::start("blocking-accept", endpoint, 1, move |stop, stats| {
            accept_loop(&listener, &ep, stop, stats);
        })?;
        Ok(Box::new(server))
    }

    fn run_clients(&self, connect: &Endpoint, source: Arc<SessionSource>, slots: usize, _: usize) {
        let source = &*source;
        thread::scope(|scope| {
            for i in 0..slots {
                let spawned = thread::Builder::new()
                    .name(format!("blocking-client-{i}"))
                    .stack_size(STACK)
                    .spawn_scoped(scope, || client_slot(connect, source));
                if let Err(e) = spawned {
                    source.fail(Error::from(e).context("spawning a client thread"));
                    break;
                }
            }
        });
    }
}

/// Whether the listener has a connection waiting, within [`ACCEPT_POLL_MS`].
fn readable(listener: &Listener) -> bool {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, ACCEPT_POLL_MS) > 0 }
}

fn accept_loop(listener: &Listener, ep: &Endpoint, stop: &AtomicBool, stats: &Arc<ServerStats>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    // Polling with a timeout rather than blocking in accept lets `stop` end the loop
    // without connecting to ourselves.
    while !stop.load(Ordering::Relaxed) {
        if !readable(listener) {
            continue;
        }
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                stats.fail(format!("accept on {ep}: {e}"));
                continue;
            }
        };
        conns.retain(|h| !h.is_finished());
        let (conn_stats, conn_ep) = (stats.clone(), ep.clone());
        let spawned = thread::Builder::new()
            .name("blocking-conn".into())
            .stack_size(STACK)
            .spawn(move || serve_conn(stream, &conn_ep, &conn_stats));
        match spawned {
            Ok(h) => conns.push(h),
            Err(e) => stats.fail(format!("spawning a blocking connection thread: {e}")),
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

fn serve_conn(stream: Stream, ep: &Endpoint, stats: &ServerStats) {
    let mut session = ServerSession::new();
    let mut buf = vec![0; READ_BUF];
    let result = stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(Error::from)
        .and_then(|()| tune(stream.as_fd(), ep))
        .and_then(|()| drive(&stream, &mut session, &mut buf));
    stats.record(&session, &result);
}
