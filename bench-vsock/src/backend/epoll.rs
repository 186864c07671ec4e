//! The library's epoll path (`uring_vsock::epoll`, mio underneath): `--workers` event-loop
//! threads per side, each running its share of the connections, edge-triggered.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use uring_vsock::epoll::{SeqpacketConn, Stream};
use uring_vsock::Endpoint;

use super::seqpacket::stream_or_seqpacket;
use super::threads::ThreadServer;
use super::{tune, Backend, BackendKind, Server};
use crate::error::{Error, Result};
use crate::session::{ClientSession, ServerSession, ServerStats, Session, SessionSource, Want};
use crate::sockets::{SocketOpts, MAX_SEQPACKET_MESSAGE};

/// Read buffer: a whole 64 KiB message, the largest of a seqpacket run.
const READ_BUF: usize = MAX_SEQPACKET_MESSAGE;
/// The listener's token in every server worker's poll.
const LISTENER: Token = Token(usize::MAX);
/// How often a server worker looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// epoll_wait counts whole milliseconds: within this of a pacing deadline, poll without
/// sleeping so open-loop sends are not up to a millisecond late.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// The epoll backend.
#[derive(Debug)]
pub(crate) struct Epoll {
    /// The run's socket options, for both ends.
    opts: SocketOpts,
}

/// The epoll backend: the library's epoll path is in this build.
pub(crate) fn open(opts: SocketOpts) -> Result<Box<dyn Backend>> {
    Ok(Box::new(Epoll { opts }))
}

stream_or_seqpacket!(epoll: Sock, Listen);

impl Sock {
    fn connect(ep: &Endpoint, opts: &SocketOpts) -> uring_vsock::Result<Sock> {
        Ok(if opts.seqpacket {
            Sock::Seqpacket(SeqpacketConn::connect(ep)?)
        } else {
            Sock::Stream(Stream::connect(ep)?)
        })
    }

    fn connect_result(&self) -> uring_vsock::Result<()> {
        match self {
            Sock::Stream(s) => s.connect_result(),
            Sock::Seqpacket(s) => s.connect_result(),
        }
    }

    fn register(&self, poll: &Poll, token: Token) -> std::io::Result<()> {
        let fd = self.as_fd().as_raw_fd();
        poll.registry().register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    fn deregister(&self, poll: &Poll) {
        let fd = self.as_fd().as_raw_fd();
        let _ = poll.registry().deregister(&mut SourceFd(&fd));
    }
}

/// A connection and the session it runs.
struct Conn<S> {
    stream: Sock,
    session: S,
    connecting: bool,
    wait: Option<Instant>,
}

/// Where a connection stopped.
enum Step {
    /// The socket would block: wait for its next readiness event.
    Blocked,
    /// The session is pacing: come back at its `wait` time.
    Wait,
    /// The session is over.
    Done,
}

impl<S: Session> Conn<S> {
    /// Moves the session on until the socket would block, it waits, or it ends.
    fn advance(&mut self, buf: &mut [u8]) -> Result<Step> {
        if self.connecting {
            match self.stream.connect_result() {
                Ok(()) => self.connecting = false,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Step::Blocked),
                Err(e) => return Err(e.into()),
            }
        }
        self.wait = None;
        loop {
            let now = Instant::now();
            match self.session.next(now) {
                Want::Send(out) => match self.stream.write(out.as_slice()) {
                    Ok(n) => self.session.on_sent(n, Instant::now()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Step::Blocked),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::from(e).context("write")),
                },
                Want::Recv => match self.stream.read(buf) {
                    Ok(0) => self.session.on_eof()?,
                    Ok(n) => self.session.on_recv(&buf[..n], Instant::now())?,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Step::Blocked),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::from(e).context("read")),
                },
                Want::Wait(t) => {
                    self.wait = Some(t);
                    return Ok(Step::Wait);
                }
                Want::Done => return Ok(Step::Done),
            }
        }
    }
}

/// The poll timeout for the earliest pacing deadline among `conns`, capped at `cap`.
fn timeout<S>(conns: &HashMap<Token, Conn<S>>, cap: Option<Duration>) -> Option<Duration> {
    let now = Instant::now();
    let next = conns.values().filter_map(|c| c.wait).min();
    let until = next.map(|t| t.saturating_duration_since(now));
    let until = until.map(|d| {
        if d <= TIMER_SLACK {
            Duration::ZERO
        } else {
            d - TIMER_SLACK
        }
    });
    match (until, cap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Tokens of connections whose pacing deadline has come, plus those with events.
fn ready<S>(events: &Events, conns: &HashMap<Token, Conn<S>>) -> Vec<Token> {
    let now = Instant::now();
    let mut tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
    tokens.extend(
        conns
            .iter()
            .filter(|(_, c)| c.wait.is_some_and(|t| t <= now))
            .map(|(t, _)| *t),
    );
    tokens
}

fn start_client(
    poll: &Poll,
    ep: &Endpoint,
    opts: &SocketOpts,
    source: &SessionSource,
    conns: &mut HashMap<Token, Conn<ClientSession>>,
    token: Token,
) {
    let Some(session) = source.next_session() else {
        return;
    };
    let started = Sock::connect(ep, opts)
        .map_err(Error::from)
        .and_then(|stream| {
            tune(stream.as_fd(), ep, opts)?;
            stream.register(poll, token)?;
            Ok(stream)
        });
    match started {
        Ok(stream) => {
            conns.insert(
                token,
                Conn {
                    stream,
                    session,
                    connecting: true,
                    wait: None,
                },
            );
        }
        Err(e) => source.fail(e.context(format!("epoll client to {ep}"))),
    }
}

/// One client worker: runs `slots` connections (tokens 0..slots) to the end of the source.
fn client_worker(
    ep: &Endpoint,
    opts: &SocketOpts,
    source: &SessionSource,
    slots: usize,
) -> Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns = HashMap::new();
    let mut buf = vec![0; READ_BUF];
    for slot in 0..slots {
        start_client(&poll, ep, opts, source, &mut conns, Token(slot));
    }
    while !conns.is_empty() {
        poll.poll(&mut events, timeout(&conns, None)).or_else(|e| {
            if e.kind() == ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        for token in ready(&events, &conns) {
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            match conn.advance(&mut buf) {
                Ok(Step::Blocked | Step::Wait) => continue,
                Ok(Step::Done) => {}
                Err(e) => source.fail(e.context(format!("epoll client to {ep}"))),
            }
            if let Some(conn) = conns.remove(&token) {
                conn.stream.deregister(&poll);
            }
            // The slot's next session gets a new connection (the connect workload).
            start_client(&poll, ep, opts, source, &mut conns, token);
        }
    }
    Ok(())
}

/// One server worker: every worker polls the shared listener (edge-triggered, each in its
/// own epoll set) and accepts until it would block, so connections spread over workers
/// without an acceptor thread.
fn server_worker(
    listener: &Listen,
    local: &Endpoint,
    opts: &SocketOpts,
    stop: &AtomicBool,
    stats: &ServerStats,
) -> Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<Token, Conn<ServerSession>> = HashMap::new();
    let mut buf = vec![0; READ_BUF];
    let mut next = 0usize;
    let fd = listener.as_fd().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
    while !stop.load(Ordering::Relaxed) || !conns.is_empty() {
        poll.poll(&mut events, timeout(&conns, Some(STOP_POLL)))
            .or_else(|e| {
                if e.kind() == ErrorKind::Interrupted {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        let mut tokens = ready(&events, &conns);
        if let Some(i) = tokens.iter().position(|t| *t == LISTENER) {
            tokens.swap_remove(i);
            loop {
                match listener.accept() {
                    Ok(stream) => {
                        let token = Token(next);
                        next = next.wrapping_add(1) % (usize::MAX - 1);
                        tune(stream.as_fd(), local, opts)?;
                        stream.register(&poll, token)?;
                        conns.insert(
                            token,
                            Conn {
                                stream,
                                session: ServerSession::new(),
                                connecting: false,
                                wait: None,
                            },
                        );
                        tokens.push(token);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        stats.fail(format!("accept on {local}: {e}"));
                        break;
                    }
                }
            }
        }
        for token in tokens {
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            let result = match conn.advance(&mut buf) {
                Ok(Step::Blocked | Step::Wait) => continue,
                Ok(Step::Done) => Ok(()),
                Err(e) => Err(e),
            };
            if let Some(conn) = conns.remove(&token) {
                stats.record(&conn.session, &result);
                conn.stream.deregister(&poll);
            }
        }
    }
    Ok(())
}

impl Backend for Epoll {
    fn kind(&self) -> BackendKind {
        BackendKind::Epoll
    }

    fn serve(&self, listen: &Endpoint, workers: usize) -> Result<Box<dyn Server>> {
        let (listener, endpoint) = Listen::bind(listen, &self.opts)?;
        let (local, opts) = (endpoint.clone(), self.opts);
        let server = ThreadServer::start("epoll-server", endpoint, workers, move |stop, stats| {
            if let Err(e) = server_worker(&listener, &local, &opts, stop, stats) {
                stats.fail(e.context("epoll server worker"));
            }
        })?;
        Ok(Box::new(server))
    }

    fn run_clients(
        &self,
        connect: &Endpoint,
        source: Arc<SessionSource>,
        slots: usize,
        workers: usize,
    ) {
        let workers = workers.clamp(1, slots.max(1));
        let source = &*source;
        thread::scope(|scope| {
            for w in 0..workers {
                // Spread the slots evenly: worker w runs slots w, w + workers, ...
                let mine = (slots + workers - 1 - w) / workers;
                let spawned = thread::Builder::new()
                    .name(format!("epoll-client-{w}"))
                    .spawn_scoped(scope, move || {
                        if let Err(e) = client_worker(connect, &self.opts, source, mine) {
                            source.fail(e.context("epoll client worker"));
                        }
                    });
                if let Err(e) = spawned {
                    source.fail(Error::from(e).context("spawning an epoll client thread"));
                }
            }
        });
    }
}
