//! The client side's connection slots: each runs the sessions it takes from the source one
//! after another, a new `engine.connect` per session.
//!
//! `Engine::connect` blocks until connected and cannot be called from a handler, so slots
//! are kept by a few starter threads (one per engine worker): each opens connections for
//! its share of the slots, then waits for them to end and opens the next.

use std::io::ErrorKind;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use uring_vsock::uring::Engine;
use uring_vsock::Endpoint;

use super::client::{ClientCell, ClientConn, ClientRun};
use super::pacer::Pacer;
use crate::backend::CONNECT_TIMEOUT;
use crate::error::Error;
use crate::session::SessionSource;

/// How long a starter waits before retrying a unix connect that found the listen backlog
/// full (`EAGAIN`: the engine's connects do not wait for room).
const BACKLOG_RETRY: Duration = Duration::from_millis(1);

/// Runs `slots` connections at a time on `engine` until `source` has no sessions left.
pub(super) fn run(
    engine: &Engine,
    ep: &Endpoint,
    source: &Arc<SessionSource>,
    slots: usize,
    workers: usize,
    seqpacket: bool,
) {
    let pacer = match source.plan().interval {
        None => None,
        Some(_) => match Pacer::start() {
            Ok(p) => Some(p),
            Err(e) => return source.fail(e),
        },
    };
    let run = Arc::new(ClientRun {
        source: source.clone(),
        endpoint: ep.clone(),
        timers: pacer.as_ref().map(|p| p.timers().clone()),
        seqpacket,
    });
    let starters = workers.clamp(1, slots.max(1));
    thread::scope(|scope| {
        for s in 0..starters {
            // Spread the slots evenly: starter s keeps slots s, s + starters, ...
            let mine = (slots + starters - 1 - s) / starters;
            let run = &run;
            let spawned = thread::Builder::new()
                .name(format!("uring-slots-{s}"))
                .spawn_scoped(scope, move || keep_slots(engine, run, mine));
            if let Err(e) = spawned {
                source.fail(Error::from(e).context("spawning a uring client thread"));
            }
        }
    });
    if let Some(p) = pacer {
        p.stop();
    }
}

/// Keeps `slots` connections running until the source runs dry.
fn keep_slots(engine: &Engine, run: &Arc<ClientRun>, slots: usize) {
    let (freed, ended) = mpsc::channel();
    let mut open = 0usize;
    for _ in 0..slots {
        open += usize::from(start(engine, run, &freed));
    }
    while open > 0 {
        // Cannot fail: `freed` is ours too. Every opened connection sends once, when its
        // handler is dropped after it closed.
        let _ = ended.recv();
        open -= 1;
        open += usize::from(start(engine, run, &freed));
    }
}

/// Connects a new connection for the next session; false when there is none (or the
/// connect failed, which fails the run).
fn start(engine: &Engine, run: &Arc<ClientRun>, freed: &Sender<()>) -> bool {
    let Some(session) = run.source.next_session() else {
        return false;
    };
    let cell = ClientCell::new(session);
    let give_up = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let (cell, conn_run, freed) = (cell.clone(), run.clone(), freed.clone());
        let make = move || ClientConn::new(cell, conn_run, freed);
        let connected = if run.seqpacket {
            engine.connect_seqpacket(&run.endpoint, Some(CONNECT_TIMEOUT), make)
        } else {
            engine.connect(&run.endpoint, Some(CONNECT_TIMEOUT), make)
        };
        match connected {
            Ok(_handle) => return true,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < give_up => {
                thread::sleep(BACKLOG_RETRY);
            }
            Err(e) => {
                run.source.fail(
                    Error::from(e).context(format!("uring client connecting to {}", run.endpoint)),
                );
                return false;
            }
        }
    }
}
