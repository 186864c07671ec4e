//! A server run by plain threads, shared by the blocking and epoll backends: the threads
//! poll a stop flag, share the server's stats, and stopping joins them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use uring_vsock::Endpoint;

use super::Server;
use crate::error::{Context, Error, Result};
use crate::session::ServerStats;

/// Threads serving one listener until stopped.
pub(super) struct ThreadServer {
    name: &'static str,
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
    stats: Arc<ServerStats>,
    threads: Vec<JoinHandle<()>>,
}

impl ThreadServer {
    /// Starts `n` threads named `name-<i>`, each running `body` with the stop flag (which
    /// it polls, and returns once set and its connections are done) and the stats.
    ///
    /// # Errors
    ///
    /// A thread could not be spawned (those already running are stopped first).
    pub(super) fn start<F>(
        name: &'static str,
        endpoint: Endpoint,
        n: usize,
        body: F,
    ) -> Result<ThreadServer>
    where
        F: Fn(&AtomicBool, &Arc<ServerStats>) + Send + Sync + 'static,
    {
        let body = Arc::new(body);
        let mut server = ThreadServer {
            name,
            endpoint,
            stop: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(ServerStats::default()),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let (body, stop, stats) = (body.clone(), server.stop.clone(), server.stats.clone());
            let spawned = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || body(&stop, &stats))
                .context(format!("spawning a {name} thread"));
            match spawned {
                Ok(t) => server.threads.push(t),
                Err(e) => {
                    // Best effort: the spawn error is the one to report.
                    let _ = Box::new(server).stop();
                    return Err(e);
                }
            }
        }
        Ok(server)
    }
}

impl Server for ThreadServer {
    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }

    fn stop(self: Box<Self>) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let mut panicked = false;
        for t in self.threads {
            panicked |= t.join().is_err();
        }
        if panicked {
            return Err(Error::new(format!("a {} thread panicked", self.name)));
        }
        self.stats.result()
    }
}
