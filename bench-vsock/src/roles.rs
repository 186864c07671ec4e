//! The server role for real deployments: `bench-vsock serve`.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use crate::backend;
use crate::cli::ServeArgs;
use crate::error::{Error, Result};
use crate::sockets::SocketOpts;

/// Serves the bench protocol on `args.listen` until killed (or `--max-conns` connections
/// ended), saying on `log` where it listens and, every few seconds when something changed,
/// what it has verified.
///
/// # Errors
///
/// The backend is not in this build or the listen failed; with `--max-conns`, a failed
/// connection.
pub fn serve(args: &ServeArgs, log: &mut dyn Write) -> Result<()> {
    if args.vsock_buffer_size.is_some() && !args.listen.is_vsock() {
        return Err(Error::new(format!(
            "--vsock-buffer-size applies to vsock endpoints, not {}",
            args.listen
        )));
    }
    let opts = SocketOpts {
        vsock_buffer: args.vsock_buffer_size,
        seqpacket: args.seqpacket,
    };
    let backend = backend::open(args.backend, opts)?;
    let server = backend.serve(&args.listen, args.workers as usize)?;
    writeln!(
        log,
        "serving on {} with backend {} ({} workers)",
        server.endpoint(),
        args.backend,
        args.workers
    )?;
    let stats = server.stats().clone();
    let mut last = (0, 0, 0);
    loop {
        thread::sleep(Duration::from_millis(100));
        let conns = stats.connections.load(Ordering::Relaxed);
        let errors = stats.errors().len() as u64;
        let now = (conns, errors, stats.bytes_verified.load(Ordering::Relaxed));
        if args.max_conns.is_some_and(|m| conns + errors >= m) {
            break;
        }
        if now != last {
            writeln!(
                log,
                "connections {}  failed {}  bytes verified {}",
                now.0, now.1, now.2
            )?;
            last = now;
            thread::sleep(Duration::from_secs(2));
        }
    }
    server.stop()
}
