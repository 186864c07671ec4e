//! The host's side of the virtio tests (tests/virtio.rs), through the library's hybrid
//! endpoint on every path: clients connect with `Endpoint::Hybrid` (the `CONNECT`
//! handshake), servers for guest clients listen on its listen form (`vm.sock_<port>`).
//! Mounted by tests/virtio.rs only (it uses that binary's `servers` and `engine_support`).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use uring_vsock::hybrid::HybridAddr;
use uring_vsock::{blocking, Endpoint, Result};

use crate::servers::{self, Mode, ServerStats};
use crate::util::engine_path::EnginePath;
use crate::util::path::{Blocking, Epoll, PathUnderTest};
use crate::util::virtio::Testbed;
use crate::util::virtio_control::control;
use crate::util::WATCHDOG;

/// Generous: an answer is expected, under TCG.
pub const HANDSHAKE: Duration = Duration::from_secs(30);

/// A host client path: blocking (`blocking::Stream::connect_timeout`), epoll
/// (`epoll::Stream::connect_timeout`), or the engine (`Engine::connect` with a timeout, and
/// the contract tests' forwarding client handler).
pub trait HostPath: PathUnderTest {
    /// The path's name, as the guest agent and the test names spell it.
    const NAME: &'static str;
    /// Bounds the stream's I/O by [`WATCHDOG`] (epoll and the engine have their own).
    fn watchdog(_s: &Self::Stream) {}
}

impl HostPath for Blocking {
    const NAME: &'static str = "blocking";
    fn watchdog(s: &blocking::Stream) {
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        s.set_write_timeout(Some(WATCHDOG)).unwrap();
    }
}

impl HostPath for Epoll {
    const NAME: &'static str = "epoll";
}

impl HostPath for EnginePath {
    const NAME: &'static str = "engine";
}

/// The device's host socket (`vm.sock`).
pub fn vm_sock() -> PathBuf {
    Testbed::from_env().vm_sock()
}

/// `hybrid:<vm.sock>:<port>`: guest port `port` for a connect, host port `port` for a listener.
pub fn hybrid(port: u32) -> Endpoint {
    Endpoint::Hybrid(HybridAddr::new(vm_sock(), port))
}

/// A guest port (or host port socket) no earlier run of this binary (in the same testbed) has
/// used: the runner starts several processes against one guest.
pub fn fresh_port() -> u32 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 256, "more than 256 ports in one run");
    1_000_000 + (std::process::id() % 10_000_000) * 256 + n as u32
}

/// Connects to guest port `port` on path `P` within [`HANDSHAKE`].
pub fn try_connect<P: HostPath>(port: u32, timeout: Duration) -> Result<P::Stream> {
    P::connect_timeout(&hybrid(port), timeout)
}

/// A host client on path `P` through the device to guest `port`, its I/O bounded.
pub fn connect<P: HostPath>(port: u32) -> P::Stream {
    let s = try_connect::<P>(port, HANDSHAKE)
        .unwrap_or_else(|e| panic!("{} hybrid connect to guest port {port}: {e}", P::NAME));
    P::watchdog(&s);
    s
}

/// Starts an echo server on `path` in the guest (`mode` for each connection); returns its port.
pub fn serve_in_guest(path: &str, mode: Mode) -> u32 {
    let port = fresh_port();
    match mode {
        Mode::Echo => control().ok(&format!("SERVE {path} {port}")),
        Mode::AbortAfter(n) => control().ok(&format!("SERVE {path} {port} {n}")),
    };
    port
}

/// Waits until the guest server on `port` reports stats for which `cond` holds.
pub fn wait_guest_stats(port: u32, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let s = control().ok(&format!("STATS {port}"));
        if cond(&s) {
            return s;
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "{what}: guest server stats stay `{s}`"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// An echo server on the host for guest clients, on one path, listening on the hybrid
/// listen form `vm.sock_<port>` (the library's `Listener::bind` / `Engine::listen` of
/// `hybrid:<vm.sock>:<port>`).
pub struct HostServer {
    pub port: u32,
    pub stats: Arc<ServerStats>,
}

impl HostServer {
    pub fn start(path: &str) -> HostServer {
        let stats = Arc::new(ServerStats::default());
        // A port whose socket file is free (earlier runs' files may remain).
        let port = (0..16)
            .map(|_| fresh_port())
            .find(|&port| {
                servers::serve(path, &hybrid(port), Mode::Echo, Arc::clone(&stats)).is_ok()
            })
            .unwrap_or_else(|| panic!("no free host port socket for a {path} server"));
        HostServer { port, stats }
    }

    /// Bytes echoed so far, over all connections.
    pub fn progress(&self) -> u64 {
        self.stats.bytes.load(Ordering::SeqCst)
    }

    /// Waits until the server's stats line satisfies `cond`; returns it.
    pub fn wait_stats(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.stats.line();
            if cond(&s) {
                return s;
            }
            assert!(
                start.elapsed() < WATCHDOG,
                "{what}: host server stats stay `{s}`"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        // The blocking and epoll servers' threads outlive the test; the engine's listener
        // lives until the process ends. The file goes, so no later run meets it.
        let _ = std::fs::remove_file(Testbed::from_env().host_port_sock(self.port));
    }
}

/// Whether `e` is the typed refusal of a hybrid handshake (nothing listens on the port).
pub fn is_refused(e: &uring_vsock::Error) -> bool {
    use uring_vsock::hybrid::{HandshakeError, HandshakeErrorKind};
    e.kind() == io::ErrorKind::ConnectionRefused
        && HandshakeError::of(e.io_error()).map(|h| h.kind()) == Some(HandshakeErrorKind::Refused)
}
