//! The I/O paths under test. Each backend moves bytes for [`crate::session`] state machines,
//! on the client side ([`Backend::run_clients`]) and the server side ([`Backend::serve`]);
//! what is sent, verified and timed is the sessions' business, the same for all.
//!
//! Adding a backend is one file: implement [`Backend`] and list it in [`open`].

mod blocking;
mod epoll;
mod seqpacket;
mod threads;
mod tokio;
mod tokio_common;
mod tokio_ours;
mod uring;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use uring_vsock::uring::EngineStats;
use uring_vsock::Endpoint;

use crate::error::{Error, Result};
use crate::session::{ServerStats, SessionSource};
use crate::sockets::SocketOpts;

/// How long one read or write may block before the connection is declared stuck: a bound
/// so a broken peer fails the run instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Listen backlog: room for an `rr` run's 256 connections arriving at once.
pub const BACKLOG: i32 = 1024;
/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend by name, as `--backends` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// The io_uring engine, default mode.
    Uring,
    /// The io_uring engine with adaptive spinning.
    UringSpin,
    /// The library's epoll (mio) path.
    Epoll,
    /// The library's blocking path, a thread per connection.
    Blocking,
    /// What users pick instead: tokio's sockets (tokio-vsock for vsock).
    Tokio,
    /// The library's tokio path (`uring_vsock::tokio`), on the same driver as `tokio`.
    TokioOurs,
    /// The io_uring engine without the ring hand-off of accepted sockets
    /// (`EngineBuilder::ring_handoff(false)`): an A/B variant, never in a default run.
    UringNoHandoff,
    /// The io_uring engine without registered files
    /// (`EngineBuilder::registered_files(false)`): an A/B variant, never in a default run.
    UringNoFiles,
}

impl BackendKind {
    /// Every backend, in report order.
    pub const ALL: [BackendKind; 8] = [
        BackendKind::Uring,
        BackendKind::UringSpin,
        BackendKind::Epoll,
        BackendKind::Blocking,
        BackendKind::Tokio,
        BackendKind::TokioOurs,
        BackendKind::UringNoHandoff,
        BackendKind::UringNoFiles,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Uring => "uring",
            BackendKind::UringSpin => "uring-spin",
            BackendKind::Epoll => "epoll",
            BackendKind::Blocking => "blocking",
            BackendKind::Tokio => "tokio",
            BackendKind::TokioOurs => "tokio-ours",
            BackendKind::UringNoHandoff => "uring-nohandoff",
            BackendKind::UringNoFiles => "uring-nofiles",
        }
    }

    /// Whether a run without `--backends` includes it: every backend but the engine's A/B
    /// variants (`uring-nohandoff`, `uring-nofiles`), which exist to show what one engine
    /// feature buys against `uring` and are run by name.
    pub fn in_default_run(self) -> bool {
        !matches!(
            self,
            BackendKind::UringNoHandoff | BackendKind::UringNoFiles
        )
    }

    /// Whether it has `SOCK_SEQPACKET` connections (`--seqpacket`): tokio and
    /// tokio-vsock have none, nor does the library's tokio path yet.
    pub fn has_seqpacket(self) -> bool {
        !matches!(self, BackendKind::Tokio | BackendKind::TokioOurs)
    }

    /// Whether this build can run it (every backend can now; kept so a backend whose library
    /// path is missing from a build is skipped rather than failing a default run).
    pub fn available(self) -> bool {
        open(self, SocketOpts::default()).is_ok()
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<BackendKind> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::new(format!(
                    "unknown backend {s:?}: expected one of uring, uring-spin, epoll, blocking, tokio, \
                     tokio-ours, uring-nohandoff, uring-nofiles"
                ))
            })
    }
}

/// A running server of some backend.
pub trait Server: Send {
    /// Where it listens (with the real port of a `tcp:...:0` listen address).
    fn endpoint(&self) -> &Endpoint;
    /// What it has seen so far.
    fn stats(&self) -> &Arc<ServerStats>;
    /// Its io_uring engine's counters so far, for backends that have one.
    fn engine_stats(&self) -> Option<EngineStats> {
        None
    }
    /// Stops accepting, waits for its connections to end, and returns.
    ///
    /// # Errors
    ///
    /// A connection of it failed verification or the protocol.
    fn stop(self: Box<Self>) -> Result<()>;
}

/// One I/O path, driving sessions on both ends.
pub trait Backend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Listens on `listen` and serves every connection with a new
    /// [`ServerSession`](crate::session::ServerSession), on up to `workers` threads where
    /// the backend has a choice, until [`Server::stop`].
    ///
    /// # Errors
    ///
    /// Binding or listening failed.
    fn serve(&self, listen: &Endpoint, workers: usize) -> Result<Box<dyn Server>>;

    /// The counters of the io_uring engine that runs this backend's clients with `workers`
    /// workers, starting it if it is not running yet (so a measured phase does not pay for
    /// it); `None` for backends without one.
    ///
    /// # Errors
    ///
    /// The engine could not start.
    fn engine_stats(&self, workers: usize) -> Result<Option<EngineStats>> {
        let _ = workers;
        Ok(None)
    }

    /// Runs `slots` connections at a time to `connect`, each running the sessions it takes
    /// from `source` one after another (a new connection per session), until the source
    /// has none left; returns when all are done. A session error goes to
    /// [`SessionSource::fail`] (which stops the others); so does a connect or I/O error.
    fn run_clients(
        &self,
        connect: &Endpoint,
        source: Arc<SessionSource>,
        slots: usize,
        workers: usize,
    );
}

/// The backend of this kind, setting `opts` on the sockets of both ends.
///
/// # Errors
///
/// The backend is not in this build (its library path has not landed yet), or `opts` asks
/// for seqpacket sockets it does not have.
pub fn open(kind: BackendKind, opts: SocketOpts) -> Result<Box<dyn Backend>> {
    if opts.seqpacket && !kind.has_seqpacket() {
        return Err(Error::new(format!(
            "backend {kind} has no seqpacket sockets: --seqpacket runs uring, uring-spin, \
             epoll and blocking"
        )));
    }
    match kind {
        BackendKind::Blocking => Ok(Box::new(blocking::Blocking { opts })),
        BackendKind::Tokio => Ok(Box::new(tokio::Tokio { opts })),
        BackendKind::TokioOurs => Ok(Box::new(tokio_ours::TokioOurs { opts })),
        BackendKind::Epoll => epoll::open(opts),
        BackendKind::Uring
        | BackendKind::UringSpin
        | BackendKind::UringNoHandoff
        | BackendKind::UringNoFiles => uring::open(kind, opts),
    }
}

/// Turns on `TCP_NODELAY` for tcp sockets (small request/response messages otherwise wait
/// for Nagle's algorithm and every backend would measure the same 40 ms), and sets the
/// run's socket options, `opts`.
pub(crate) fn tune(
    fd: std::os::fd::BorrowedFd<'_>,
    ep: &Endpoint,
    opts: &SocketOpts,
) -> Result<()> {
    if matches!(ep, Endpoint::Tcp(_)) {
        socket2::SockRef::from(&fd).set_tcp_nodelay(true)?;
    }
    opts.apply(fd, ep)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use socket2::{Domain, Socket, Type};
    use uring_vsock::{VsockAddr, VsockOptions};

    use super::*;

    // Creates an AF_VSOCK socket and sets options on it, never connecting or sending: safe
    // on the host.
    #[test]
    fn tune_sets_the_runs_vsock_buffer_on_vsock_sockets() {
        let socket = Socket::new(Domain::VSOCK, Type::STREAM, None).expect("an AF_VSOCK socket");
        let ep = Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, 1234));
        let opts = SocketOpts {
            vsock_buffer: Some(1 << 20),
            ..SocketOpts::default()
        };
        tune(socket.as_fd(), &ep, &opts).unwrap();
        assert_eq!(socket.vsock_buffer_size().unwrap(), 1 << 20);
        // And TCP_NODELAY still on tcp, where the vsock option is left alone.
        let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        tune(tcp.as_fd(), &"tcp:127.0.0.1:1".parse().unwrap(), &opts).unwrap();
        assert!(tcp.tcp_nodelay().unwrap());
    }

    #[test]
    fn ab_variants_parse_by_name_but_stay_out_of_default_runs() {
        for name in ["uring-nohandoff", "uring-nofiles"] {
            let k: BackendKind = name.parse().unwrap();
            assert_eq!(k.name(), name);
            assert!(!k.in_default_run(), "{name}");
        }
        let defaults: Vec<_> = BackendKind::ALL
            .into_iter()
            .filter(|k| k.in_default_run())
            .collect();
        assert_eq!(defaults.len(), 6, "{defaults:?}");
        let err = "uring-nope".parse::<BackendKind>().unwrap_err().to_string();
        assert!(err.contains("uring-nofiles"), "{err}");
    }
}
