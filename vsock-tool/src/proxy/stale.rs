//! A socket file already at the proxy's unix listen path. By default the proxy refuses it,
//! as socat does (`EADDRINUSE`, naming the path): it may be another proxy's. With
//! `--unlink-stale` it is removed, but only when it is a socket that nothing listens on: a
//! connect to it is refused (`ECONNREFUSED`). A connect that succeeds, or waits (a full
//! backlog), means a listener: refused. Anything that is not a socket is never removed.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use uring_vsock::blocking::Stream;
use uring_vsock::Endpoint;

use crate::error::ToolError;

/// How long the probe's connect may wait: a listener with a full backlog keeps it waiting.
const PROBE: Duration = Duration::from_millis(500);

/// Makes `listen` ready to bind: nothing to do unless it is a unix path where a file exists;
/// then refuses, or (`unlink_stale`) removes a stale socket.
///
/// # Errors
///
/// The path exists (`EADDRINUSE`) and `unlink_stale` is off; or, with it, the file is not a
/// socket, something listens on it, or the probe or the removal failed. Each names the
/// path.
pub(super) fn prepare(listen: &Endpoint, unlink_stale: bool) -> Result<(), ToolError> {
    let Endpoint::Unix(path) = listen else {
        return Ok(());
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(path, format!("stat: {e}"))),
    };
    let in_use = io::Error::from_raw_os_error(libc::EADDRINUSE);
    if !unlink_stale {
        return Err(fail(
            path,
            format!(
                "{in_use}: the file exists (a stale socket? --unlink-stale removes it if \
                 nothing listens there)"
            ),
        ));
    }
    if !meta.file_type().is_socket() {
        return Err(fail(
            path,
            format!("{in_use}: not a socket, so --unlink-stale leaves it"),
        ));
    }
    match Stream::connect_timeout(listen, PROBE) {
        Ok(_) => Err(fail(path, format!("{in_use}: something listens there"))),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(fail(
            path,
            format!("{in_use}: something listens there (its backlog is full)"),
        )),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            std::fs::remove_file(path)
                .map_err(|e| fail(path, format!("remove the stale socket: {e}")))?;
            log::info!("removed the stale socket {}", path.display());
            Ok(())
        }
        Err(e) => Err(fail(path, format!("probe for a listener: {e}"))),
    }
}

fn fail(path: &Path, what: String) -> ToolError {
    ToolError::setup(format!("listen unix:{}: {what}", path.display()))
}
