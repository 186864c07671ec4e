//! [`Proxy`]: one running proxy process in front of a server.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uring_vsock::Endpoint;

use super::{cpu, endpoints, ProxyKind, Via};
use crate::error::{Context, Error, Result};
use crate::transport::connect_to;

/// How long a proxy may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a forking proxy may take to reap its connections' processes after a run.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a proxy may take to end after `SIGTERM` before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// The last lines of a proxy's stderr kept for error messages.
const TAIL: usize = 10;

/// A proxy process listening in front of a server; killed when dropped.
#[derive(Debug)]
pub struct Proxy {
    kind: ProxyKind,
    child: Child,
    endpoint: Endpoint,
    probes: u64,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Proxy {
    /// Starts `via`'s proxy forwarding to `server` (an address clients can connect to) and
    /// waits, up to `READY_TIMEOUT` (10 s), until it listens: ours says `listening on ENDPOINT`
    /// on stderr; socat says nothing, so it is connected to (and that connection reaches
    /// the server: see [`Proxy::probes`]).
    ///
    /// # Errors
    ///
    /// The program would not start, exited, or did not listen in time; the error has the
    /// command line and the end of its stderr.
    pub fn start(via: &Via, server: &Endpoint) -> Result<Proxy> {
        let listen = endpoints::listen_for(server)?;
        let args = endpoints::args(via.kind, &listen, server)?;
        let line = format!("{} {}", via.program.display(), args.join(" "));
        let mut child = Command::new(&via.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context(format!("starting the proxy: {line}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let lines = drain(child.stderr.take(), tail.clone());
        let mut proxy = Proxy {
            kind: via.kind,
            child,
            endpoint: connect_to(&listen),
            probes: 0,
            tail,
        };
        let ready = match via.kind {
            ProxyKind::Ours => proxy.await_line(&lines),
            ProxyKind::Socat => proxy.await_connect(),
        };
        ready.map_err(|e| {
            Error::new(format!("proxy `{line}`: {}{}", e.message(), proxy.stderr()))
        })?;
        Ok(proxy)
    }

    /// Where clients connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Which proxy this is.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// How many connections the readiness check made through the proxy to the server (1
    /// for socat, 0 for ours): the server counts them as ended connections.
    pub fn probes(&self) -> u64 {
        self.probes
    }

    /// The CPU time the proxy has used, its ended connection processes included (it waits
    /// for a forking proxy to reap them first).
    ///
    /// # Errors
    ///
    /// The proxy has exited, or its connection processes did not end in time.
    pub fn cpu(&mut self) -> Result<Duration> {
        self.check_alive()?;
        if self.kind == ProxyKind::Socat {
            cpu::wait_childless(self.child.id(), REAP_TIMEOUT)?;
        }
        cpu::cpu_of(self.child.id())
    }

    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::new(format!(
                "the {} proxy exited ({status}){}",
                self.kind,
                self.stderr()
            ))),
            Err(e) => Err(Error::new(format!(
                "waiting on the {} proxy: {e}",
                self.kind
            ))),
        }
    }

    fn stderr(&self) -> String {
        let tail = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ends: {}", Vec::from(tail).join(" | "))
        }
    }

    /// Waits for `listening on ENDPOINT` and connects there (parsed, so a port the proxy
    /// chose is found).
    fn await_line(&mut self, lines: &mpsc::Receiver<String>) -> Result<()> {
        let give_up = Instant::now() + READY_TIMEOUT;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(at) = l.find("listening on ") {
                        let said = l[at + "listening on ".len()..].trim();
                        if let Ok(ep) = said.parse::<Endpoint>() {
                            self.endpoint = connect_to(&ep);
                        }
                        return Ok(());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(Error::new(format!(
                        "did not say `listening on ...` within {READY_TIMEOUT:?}"
                    )))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Its stderr closed: it exited (give it a moment to be reaped).
                    std::thread::sleep(Duration::from_millis(50));
                    self.check_alive()?;
                    return Err(Error::new("closed its stderr before listening"));
                }
            }
        }
    }

    /// Connects until the proxy accepts (then closes at once: the server sees an empty,
    /// clean connection).
    fn await_connect(&mut self) -> Result<()> {
        let give_up = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            let attempt = uring_vsock::blocking::Stream::connect_timeout(
                &self.endpoint,
                Duration::from_secs(1),
            );
            match attempt {
                Ok(_) => {
                    self.probes = 1;
                    return Ok(());
                }
                Err(e) if Instant::now() >= give_up => {
                    return Err(Error::new(format!(
                        "not listening at {} after {READY_TIMEOUT:?} (last: {e})",
                        self.endpoint
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for Proxy {
    /// Asks the proxy to end (`SIGTERM`: a forking one ends its connection processes, a
    /// draining one has no connections left), then kills it if it has not within
    /// `STOP_TIMEOUT` (2 s).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill(2) on our own child, not yet reaped (so the pid is still
                // its); no memory involved.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let give_up = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Best effort: it has usually exited by now.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `stderr` line by line on a thread for as long as the proxy writes (so it never
/// blocks on a full pipe): every line goes to the returned channel and the last few to
/// `tail`.
fn drain(
    stderr: Option<std::process::ChildStderr>,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(stderr) = stderr {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut t) = tail.lock() {
                    if t.len() == TAIL {
                        t.pop_front();
                    }
                    t.push_back(line.clone());
                }
                // Nobody listens once the proxy is ready: keep draining anyway.
                let _ = tx.send(line);
            }
        });
    }
    rx
}
