//! `proxy`: accepts on one endpoint and forwards each connection to another, both ways, on
//! the io_uring engine with every worker. Each target connection is dialed from the client
//! connection's worker ([`Conn::connect`](uring_vsock::uring::Conn::connect)), so buffers
//! move between the two without a copy (see `pair.rs`).
//!
//! On SIGTERM or SIGINT the proxy drains: new clients are turned away (reset at once: the
//! engine has no call to close a listener early), open connections may finish within
//! `--drain-timeout`, then the engine shuts down (cutting what is left) and the process
//! exits. A second SIGTERM or SIGINT exits at once (`force.rs`).

mod force;
mod live;
mod pair;
mod stale;
mod tuning;
mod turned_away;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use uring_vsock::Endpoint;

use crate::error::ToolError;
use crate::exit::Status;
use crate::signals::Termination;
use force::Force;
use live::Live;
use pair::{Shared, Side};

/// What `proxy` does.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Where clients connect.
    pub listen: Endpoint,
    /// Where their connections go.
    pub target: Endpoint,
    /// Engine workers (`None`: one per core).
    pub workers: Option<usize>,
    /// Most clients at once.
    pub max_conns: usize,
    /// How long a connect to the target may take.
    pub connect_timeout: Duration,
    /// How long open connections may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// The level of the per-connection lines.
    pub conn_log_level: log::Level,
    /// Remove a stale socket file at a unix `listen` path (one nothing listens on) instead
    /// of refusing it.
    pub unlink_stale: bool,
}

/// Runs the proxy until SIGTERM or SIGINT and the drain; `ready` is called with the bound
/// endpoint once clients can connect. A second signal during the drain exits the process
/// at once with [`Status::Forced`].
///
/// # Errors
///
/// The engine's setup, the listen (e.g. permission denied on a unix path, or a file
/// already there: see [`ProxyOptions::unlink_stale`]) or the signal setup, as one line.
pub fn run(opts: &ProxyOptions, ready: impl FnOnce(&Endpoint)) -> Result<Status, ToolError> {
    let mut term =
        Termination::catch().map_err(|e| ToolError::setup(format!("catch SIGTERM: {e}")))?;
    stale::prepare(&opts.listen, opts.unlink_stale)?;
    raise_nofile();
    let engine = tuning::engine(opts.workers)?;
    let live = Arc::new(Live::default());
    let shared = Arc::new(Shared {
        target: opts.target.clone(),
        connect_timeout: opts.connect_timeout,
        level: opts.conn_log_level,
        max_conns: opts.max_conns,
        live: Arc::clone(&live),
        draining: Default::default(),
        turned_away: Default::default(),
    });
    let factory_shared = Arc::clone(&shared);
    let local = engine.listen(&opts.listen, move |peer| {
        Side::client(&factory_shared, peer)
    })?;
    log::info!(
        "proxy {local} -> {} on {} workers ({})",
        opts.target,
        engine.workers(),
        engine.features()
    );
    ready(&local);
    term.wait();
    shared.draining.store(true, Ordering::Relaxed);
    let force = Force::arm(term, local.clone(), Arc::clone(&shared));
    log::info!("draining {} connections", live.count());
    let left = live.wait_empty(opts.drain_timeout);
    log::debug!("engine stats: {:?}", engine.stats());
    engine.shutdown();
    force.disarm();
    shared.turned_away.flush();
    remove_socket_file(&local);
    if left > 0 {
        log::warn!("drain timeout: {left} connections cut");
        return Ok(Status::Cut);
    }
    Ok(Status::Clean)
}

/// Removes the socket file of a unix listener, so the next proxy can bind the path.
fn remove_socket_file(local: &Endpoint) {
    if let Endpoint::Unix(path) = local {
        let _ = std::fs::remove_file(path);
    }
}

/// Raises the soft open-file limit to the hard one: each proxied connection takes two fds.
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit through a valid pointer.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    if !ok {
        log::warn!(
            "raise RLIMIT_NOFILE: {}; proxying fewer connections",
            std::io::Error::last_os_error()
        );
    }
}
