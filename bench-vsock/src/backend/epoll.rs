//! The library's epoll path (`uring_vsock::epoll`, mio underneath): `--workers` event-loop
//! threads per side, each running its share of the connections, edge-triggered.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use uring_vsock::epoll::{Listener, Stream};
use uring_vsock::Endpoint;

use super::threads::ThreadServer;
use super::{tune, Backend, BackendKind, Server, BACKLOG};
use crate::error::{Error, Result};
use crate::session::{ClientSession, ServerSession, ServerStats, Session, SessionSource, Want};

const READ_BUF: usize = 64 * 1024;
/// The listener's token in every server worker's poll.
const LISTENER: Token = Token(usize::MAX);
/// How often a server worker looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// epoll_wait counts whole milliseconds: within this of a pacing deadline, poll without
/// sleeping so open-loop sends are not up to a millisecond late.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// The epoll backend.
#[derive(Debug)]
pub(crate) struct Epoll;

/// The epoll backend: the library's epoll path is in this build.
pub(crate) fn open() -> Result<Box<dyn Backend>> {
    Ok(Box::new(Epoll))
}

/// A connection and the session it runs.
struct Conn<S> {
    stream: Stream,
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
                Want::Send(out) => match (&self.stream).write(out.as_slice()) {
                    Ok(n) => self.session.on_sent(n, Instant::now()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Step::Blocked),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::from(e).context("write")),
                },
                Want::Recv => match (&self.stream).read(buf) {
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
    source: &SessionSource,
    conns: &mut HashMap<Token, Conn<ClientSession>>,
    token: Token,
) {
    let Some(session) = source.next_session() else {
        return;
    };
    let started = Stream::connect(ep)
        .map_err(Error::from)
        .and_then(|mut stream| {
            tune(stream.as_fd(), ep)?;
            poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
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
fn client_worker(ep: &Endpoint, source: &SessionSource, slots: usize) -> Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns = HashMap::new();
    let mut buf = vec![0; READ_BUF];
    for slot in 0..slots {
        start_client(&poll, ep, source, &mut conns, Token(slot));
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
            if let Some(mut conn) = conns.remove(&token) {
                let _ = poll.registry().deregister(&mut conn.stream);
            }
            // The slot's next session gets a new connection (the connect workload).
            start_client(&poll, ep, source, &mut conns, token);
        }
    }
    Ok(())
}

/// One server worker: every worker polls the shared listener (edge-triggered, each in its
/// own epoll set) and accepts until it would block, so connections spread over workers
/// without an acceptor thread.
fn server_worker(listener: &Listener, stop: &AtomicBool, stats: &ServerStats) -> Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<Token, Conn<ServerSession>> = HashMap::new();
    let mut buf = vec![0; READ_BUF];
    let mut next = 0usize;
    let fd = listener.as_raw_fd();
    let local = listener.local_addr()?;
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
                    Ok((mut stream, _)) => {
                        let token = Token(next);
                        next = next.wrapping_add(1) % (usize::MAX - 1);
                        tune(stream.as_fd(), &local)?;
                        poll.registry().register(
                            &mut stream,
                            token,
                            Interest::READABLE | Interest::WRITABLE,
                        )?;
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
            if let Some(mut conn) = conns.remove(&token) {
                stats.record(&conn.session, &result);
                let _ = poll.registry().deregister(&mut conn.stream);
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
        let listener = Listener::bind_with_backlog(listen, BACKLOG)?;
        let endpoint = listener.local_addr()?;
        let server = ThreadServer::start("epoll-server", endpoint, workers, move |stop, stats| {
            if let Err(e) = server_worker(&listener, stop, stats) {
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
                        if let Err(e) = client_worker(connect, source, mine) {
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
