//! Waiting for SIGTERM or SIGINT: the proxy's cue to drain.

use std::io::Read;
use std::os::unix::net::UnixStream;

use signal_hook::consts::{SIGINT, SIGTERM};

/// SIGTERM and SIGINT, caught (instead of killing the process) from the moment this is made
/// for the rest of the process's life: the handlers stay registered.
pub struct Termination {
    reader: UnixStream,
}

impl Termination {
    /// Catches SIGTERM and SIGINT through a self-pipe (signal-hook's), so a thread can wait
    /// for them with a plain blocking read.
    ///
    /// # Errors
    ///
    /// The socketpair's or the handler registration's error.
    pub fn catch() -> std::io::Result<Termination> {
        let (reader, writer) = UnixStream::pair()?;
        signal_hook::low_level::pipe::register(SIGTERM, writer.try_clone()?)?;
        signal_hook::low_level::pipe::register(SIGINT, writer)?;
        Ok(Termination { reader })
    }

    /// Blocks until one of the signals has arrived (at once if one came already).
    pub fn wait(&mut self) {
        let mut b = [0u8; 1];
        // A read error (none expected on a socketpair) counts as a signal: better to drain
        // than to spin.
        let _ = self.reader.read(&mut b);
    }
}
