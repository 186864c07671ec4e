//! [`Force`]: a second SIGTERM or SIGINT while the proxy drains (or shuts the engine down
//! after it) ends the process at once, with [`Status::Forced`], the way an operator who
//! presses Ctrl-C twice expects: the open connections are cut by the exit itself (the
//! kernel closes their sockets), and the unix socket file is removed as on a clean exit.
//! It exits from a thread of its own, since the main thread may be blocked in the drain's
//! wait or the engine's shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use uring_vsock::Endpoint;

use super::pair::Shared;
use crate::exit::Status;
use crate::signals::Termination;

/// Armed after the first signal; [`disarm`](Self::disarm)ed when the proxy is done.
pub(super) struct Force {
    done: Arc<AtomicBool>,
}

impl Force {
    /// Waits for the next signal on `term` in a thread that then exits the process.
    pub(super) fn arm(mut term: Termination, local: Endpoint, shared: Arc<Shared>) -> Force {
        let done = Arc::new(AtomicBool::new(false));
        let finished = Arc::clone(&done);
        let spawned = std::thread::Builder::new()
            .name("vsock-tool-force".into())
            .spawn(move || {
                term.wait();
                if finished.load(Ordering::Acquire) {
                    return;
                }
                log::warn!(
                    "second signal: exiting at once, cutting {} connections",
                    shared.live.count()
                );
                shared.turned_away.flush();
                super::remove_socket_file(&local);
                std::process::exit(i32::from(Status::Forced.code()));
            });
        if let Err(e) = spawned {
            log::warn!(
                "spawn the second-signal thread: {e}; a second signal will not force the exit"
            );
        }
        Force { done }
    }

    /// The proxy is done: a signal from now on changes nothing.
    pub(super) fn disarm(self) {
        self.done.store(true, Ordering::Release);
    }
}
