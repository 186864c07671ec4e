//! `cat`: one stream between stdin/stdout (or a child's stdio) and an endpoint.
//!
//! This uses the blocking path, two threads, not the engine: it is one connection, and its
//! other ends are pipes or ttys the engine does not serve, so every byte would be copied
//! between them and the engine's buffers anyway; two threads do the same copies with less
//! machinery.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::Endpoint;

use crate::error::ToolError;
use crate::exit::Status;

/// What `cat` does.
#[derive(Debug, Clone)]
pub struct CatOptions {
    /// Where to connect, or to accept one connection with `listen`.
    pub endpoint: Endpoint,
    /// Accept one connection instead of connecting.
    pub listen: bool,
    /// A command (run by `sh -c`) whose stdin and stdout are wired to the stream.
    pub exec: Option<String>,
    /// How long a connect may take.
    pub connect_timeout: Duration,
}

/// How one direction ended.
#[derive(Debug)]
enum End {
    /// EOF read and passed on.
    Eof,
    /// Reading or writing the socket failed.
    Socket(io::Error),
    /// Reading or writing the local side failed.
    Local(io::Error),
}

/// Runs `cat`: connects (or accepts one connection, printing `listening on ENDPOINT` on
/// stderr once bound, and removing a unix socket file once the connection is in), then
/// copies both ways. stdin's EOF shuts the socket's write side; the peer's EOF ends the
/// command once everything it sent is written and flushed and stdin's copy has had
/// [`UP_GRACE`] to finish (what stdin still has unsent after that is dropped, as with
/// socat's `-t 0.5`: a peer that wants all of stdin reads to its EOF before shutting down
/// itself). With `--exec`, the child's stdin is closed then and the command ends with the
/// child, whose status is the command's (also when it exits without reading everything).
///
/// # Errors
///
/// The connect, listen, accept or spawn error, as one line.
pub fn run(opts: &CatOptions) -> Result<Status, ToolError> {
    let stream = if opts.listen {
        let listener = Listener::bind(&opts.endpoint)?;
        say(&format!("listening on {}", listener.local_addr()?));
        let (stream, peer) = listener.accept()?;
        log::info!("accepted {peer}");
        // One connection only: the socket file has done its work (a rerun can bind again).
        drop(listener);
        if let Endpoint::Unix(path) = &opts.endpoint {
            if let Err(e) = std::fs::remove_file(path) {
                log::debug!("remove {}: {e}", path.display());
            }
        }
        stream
    } else {
        Stream::connect_timeout(&opts.endpoint, opts.connect_timeout)?
    };
    match &opts.exec {
        None => Ok(copy_both(stream, io::stdin(), io::stdout(), None)),
        Some(cmd) => {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| ToolError::setup(format!("spawn sh -c '{cmd}': {e}")))?;
            let (input, output) = (child.stdout.take(), child.stdin.take());
            let (Some(input), Some(output)) = (input, output) else {
                return Err(ToolError::setup("spawn: the child's pipes are missing"));
            };
            Ok(copy_both(stream, input, output, Some(child)))
        }
    }
}

/// Copies `input` → `stream` on a thread and `stream` → `output` here; returns once the
/// stream's EOF (or a failure) is through. With a `child`, its stdin is closed then and its
/// status is the command's.
fn copy_both(
    stream: Stream,
    input: impl Read + Send + 'static,
    mut output: impl Write,
    child: Option<Child>,
) -> Status {
    let up = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => {
            say(&format!("vsock-tool: dup socket: {e}"));
            return Status::Failed;
        }
    };
    let upward = thread::spawn(move || up_copy(input, up));
    let down = down_copy(&stream, &mut output, child.is_some());
    drop(output); // the child's stdin: it reads EOF
                  // A child's output is sent to its end (its stdout closes when it exits), as ssh does: it
                  // may answer what it read before the EOF. stdin gets a grace period to send what it
                  // has, then the peer's EOF ends the command.
    if child.is_none() {
        let grace = Instant::now() + UP_GRACE;
        while !upward.is_finished() && Instant::now() < grace {
            thread::sleep(Duration::from_millis(5));
        }
    }
    let up = if child.is_some() || upward.is_finished() {
        upward.join().ok()
    } else {
        None
    };
    let status = status_of(&down, up.as_ref());
    // One line saying what broke; a clean end says nothing.
    if let Some(line) = [Some(&down), up.as_ref()]
        .into_iter()
        .flatten()
        .find_map(End::failure)
    {
        say(&format!("vsock-tool: {line}"));
    }
    match (status, child) {
        (Status::Clean, Some(mut child)) => match child.wait() {
            Ok(s) => Status::Child(exit_code(s)),
            Err(_) => Status::LocalIo,
        },
        (status, Some(mut child)) => {
            let _ = child.kill();
            let _ = child.wait();
            status
        }
        (status, None) => status,
    }
}

impl End {
    fn failure(&self) -> Option<String> {
        match self {
            End::Eof => None,
            End::Socket(e) => Some(format!("socket: {e}")),
            End::Local(e) => Some(format!("local stream: {e}")),
        }
    }
}

/// The status of the two directions' ends (`up` when it has ended).
fn status_of(down: &End, up: Option<&End>) -> Status {
    match (down, up) {
        (End::Socket(_), _) | (_, Some(End::Socket(_))) => Status::Broken,
        (End::Local(_), _) | (_, Some(End::Local(_))) => Status::LocalIo,
        (End::Eof, _) => Status::Clean,
    }
}

/// How long, after the peer's EOF, stdin's copy may take to send what it has.
pub const UP_GRACE: Duration = Duration::from_millis(500);

/// One line on stderr; a closed stderr is no reason to fail (or to panic, as `eprintln!`
/// does).
pub(crate) fn say(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

fn up_copy(mut input: impl Read, mut sock: Stream) -> End {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // stdin is broken (a directory, a hung-up tty): nothing more will come, and
                // the other direction must not wait for a peer that waits for our EOF.
                let _ = sock.shutdown(Shutdown::Both);
                return End::Local(e);
            }
        };
        if let Err(e) = sock.write_all(&buf[..n]) {
            return End::Socket(e);
        }
    }
    match sock.shutdown(Shutdown::Write) {
        // The peer may be gone already: nothing left to shut.
        Ok(()) => End::Eof,
        Err(e) if e.kind() == io::ErrorKind::NotConnected => End::Eof,
        Err(e) => End::Socket(e),
    }
}

/// `child`: `output` is a child's stdin, and a child that stops reading (exits) is how it
/// ends, not a failure: its status says how it went.
fn down_copy(mut sock: &Stream, output: &mut impl Write, child: bool) -> End {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return End::Socket(e),
        };
        // Flushed per chunk: an interactive peer (ssh) must see each reply at once.
        match output.write_all(&buf[..n]).and_then(|()| output.flush()) {
            Ok(()) => {}
            Err(e) if child && e.kind() == io::ErrorKind::BrokenPipe => return End::Eof,
            Err(e) => return End::Local(e),
        }
    }
    match output.flush() {
        Ok(()) => End::Eof,
        Err(e) => End::Local(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_failure_outranks_a_local_one() {
        let e = || io::Error::other("x");
        assert_eq!(status_of(&End::Eof, None), Status::Clean);
        assert_eq!(status_of(&End::Eof, Some(&End::Eof)), Status::Clean);
        assert_eq!(
            status_of(&End::Local(e()), Some(&End::Socket(e()))),
            Status::Broken
        );
        assert_eq!(
            status_of(&End::Eof, Some(&End::Local(e()))),
            Status::LocalIo
        );
    }
}
