//! Shared test helpers: where we run (host or the vsock VM), endpoints per transport,
//! checksums, and fd counting.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod activation;
pub mod engine_path;
pub mod path;
pub mod sockopt;
pub mod tokio_path;
pub mod virtio;
pub mod virtio_control;

use uring_vsock::{Endpoint, VsockAddr};

/// The marker `tools/vm-run` puts on the guest's kernel command line.
pub const VM_MARKER: &str = "uring_vsock_vm=1";

/// Whether we run inside the vsock test VM.
pub fn in_vm() -> bool {
    fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|w| w == VM_MARKER))
        .unwrap_or(false)
}

/// Refuses to go on outside the VM: on the host a vsock connect leaves the machine.
pub fn require_vm() {
    assert!(
        in_vm(),
        "refusing vsock traffic: not in the test VM (no `{VM_MARKER}` on the kernel command \
         line). Run tools/vm-test."
    );
}

/// The stream families every path is tested over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
    Vsock,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A process-unique small number, for paths and ports.
pub fn unique() -> u32 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fresh, empty directory under the system temp dir, deleted with its sockets on drop. It
/// also holds the socket that keeps [`dead_endpoint`]'s tcp port dead for as long as the
/// test holds the directory.
pub struct TempDir(pub PathBuf, OnceLock<socket2::Socket>);

impl TempDir {
    pub fn new() -> TempDir {
        // A name can be taken by an earlier process that had this pid and never dropped its
        // directory (killed, or a thread still held it at exit): its socket files would make
        // this test's bind fail with EADDRINUSE. Only a directory this call creates is used.
        loop {
            let dir = std::env::temp_dir().join(format!(
                "uring-vsock-test-{}-{}",
                std::process::id(),
                unique()
            ));
            match fs::create_dir(&dir) {
                Ok(()) => return TempDir(dir, OnceLock::new()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("creating {}: {e}", dir.display()),
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An endpoint to bind a listener on for `t`. Unix sockets go in `dir`; tcp uses an
/// ephemeral loopback port; vsock binds CID_ANY on a port unique to this process (only in the
/// VM: this calls [`require_vm`]).
pub fn bind_endpoint(t: Transport, dir: &TempDir) -> Endpoint {
    match t {
        Transport::Unix => Endpoint::Unix(dir.0.join(format!("s{}.sock", unique()))),
        Transport::Tcp => "tcp:127.0.0.1:0".parse().unwrap(),
        Transport::Vsock => {
            require_vm();
            Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, 20_000 + unique()))
        }
    }
}

/// The endpoint a client connects to, given the listener's local endpoint. vsock listeners
/// report CID_ANY: clients reach them through CID_LOCAL (loopback).
pub fn connect_endpoint(local: &Endpoint) -> Endpoint {
    match local {
        Endpoint::Vsock(a) => {
            require_vm();
            Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, a.port()))
        }
        other => other.clone(),
    }
}

/// An endpoint of family `t` where nothing listens, for as long as `dir` lives. The tcp port
/// is bound (without `SO_REUSEADDR`, never listening) by a socket `dir` holds: nothing else
/// can take the port, so a connect to it is refused; a port merely freed could be reused.
pub fn dead_endpoint(t: Transport, dir: &TempDir) -> Endpoint {
    match t {
        Transport::Unix => Endpoint::Unix(dir.0.join("nobody.sock")),
        Transport::Tcp => {
            let bound = dir.1.get_or_init(|| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .unwrap();
                let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
                s.bind(&any.into()).unwrap();
                s
            });
            Endpoint::Tcp(bound.local_addr().unwrap().as_socket().unwrap())
        }
        Transport::Vsock => {
            require_vm();
            Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, 30_000 + unique()))
        }
    }
}

/// How long a test waits for something the kernel does at once (a queued connection, a
/// readiness) before failing instead of hanging. A watchdog, not a speed assertion.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// A listener whose backlog is full: bound with backlog 0, which queues one connection, and
/// `held`, that connection, never accepted. A further connect gets no answer (tcp drops its
/// SYN, unix waits for room) or, on vsock, a reset. Deterministic: no timeout decides when
/// the backlog is full.
pub struct FullBacklog {
    pub listener: uring_vsock::blocking::Listener,
    pub held: uring_vsock::blocking::Stream,
    /// Where clients connect.
    pub ep: Endpoint,
}

impl FullBacklog {
    pub fn new(t: Transport, dir: &TempDir) -> FullBacklog {
        use uring_vsock::blocking::{Listener, Stream};
        let listener = Listener::bind_with_backlog(&bind_endpoint(t, dir), 0).unwrap();
        let ep = connect_endpoint(&listener.local_addr().unwrap());
        let held = Stream::connect(&ep).unwrap();
        // tcp queues the connection when the client's ACK is processed, which may be just
        // after connect returns: wait until the listener has it.
        wait_readable(
            &listener,
            "the held connection never reached the accept queue",
        );
        FullBacklog { listener, held, ep }
    }
}

/// Waits until `fd` is readable (for a listener: a connection is queued), failing with
/// `what` after [`WATCHDOG`].
pub fn wait_readable(fd: &impl std::os::fd::AsRawFd, what: &str) {
    let start = Instant::now();
    loop {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        if n > 0 {
            return;
        }
        assert!(start.elapsed() < WATCHDOG, "{what} (waited {WATCHDOG:?})");
    }
}

/// FNV-1a 64: a cheap checksum for end-to-end byte checks.
pub fn checksum(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `len` pseudo-random bytes from `seed` (xorshift), so every connection sends distinct data.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Raises the soft open-file limit to at least `n` (up to the hard limit).
pub fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit through valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// The number of open fds of this process.
pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Serializes the tests of one binary that count fds: parallel tests would open and close
/// fds under each other's counts.
static FD_COUNTED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` (one test's body) alone among the fd-counting tests of this binary and asserts
/// that it leaves the process with as many open fds as it found.
pub fn fds_unchanged(f: impl FnOnce()) {
    let _serial = FD_COUNTED.lock().unwrap_or_else(|p| p.into_inner());
    let before = open_fds();
    f();
    let after = open_fds();
    assert_eq!(before, after, "fds leaked (before {before}, after {after})");
}

/// As [`fds_unchanged`], for a body whose threads finish closing fds after it returns
/// (detached workers): waits for the count to come back, failing after a watchdog.
pub fn fds_unchanged_eventually(f: impl FnOnce()) {
    let _serial = FD_COUNTED.lock().unwrap_or_else(|p| p.into_inner());
    let before = open_fds();
    f();
    let start = std::time::Instant::now();
    while open_fds() != before {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "fds leaked (before {before}, still {} after 60 s)",
            open_fds()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether `fd` has close-on-exec set.
pub fn is_cloexec(fd: &impl std::os::fd::AsRawFd) -> bool {
    // SAFETY: F_GETFD reads the fd's flags; no memory is passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0, "fcntl F_GETFD failed");
    flags & libc::FD_CLOEXEC != 0
}
