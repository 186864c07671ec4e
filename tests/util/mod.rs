//! Shared test helpers: where we run (host or the vsock VM), endpoints per transport,
//! checksums, and fd counting.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub mod path;

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

/// A fresh directory under the system temp dir, removed by the OS eventually; tests delete
/// their sockets through [`TempDir`]'s drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "uring-vsock-test-{}-{}",
            std::process::id(),
            unique()
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
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

/// An endpoint of family `t` where nothing listens.
pub fn dead_endpoint(t: Transport, dir: &TempDir) -> Endpoint {
    match t {
        Transport::Unix => Endpoint::Unix(dir.0.join("nobody.sock")),
        Transport::Tcp => {
            // Bind then drop: the port is free, and nothing listens on it.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            Endpoint::Tcp(l.local_addr().unwrap())
        }
        Transport::Vsock => {
            require_vm();
            Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, 30_000 + unique()))
        }
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
