//! The virtio-vsock testbed (`tools/vm-virtio`): a 6.1 guest whose `/dev/vsock` is a real
//! virtio device served on the host by `vhost-device-vsock`. Host tests (tests/virtio.rs) are
//! the peers, over unix sockets only; the guest agent (tests/virtio_guest.rs) runs the guest's
//! side on every path, commanded over a second serial port that does not go through the
//! device (so a frozen or killed device never cuts the control channel).
//!
//! Shared by both sides: where we run, the control protocol's line format, a byte stream
//! both ends can regenerate, and a windowed checksummed echo. The host's clients and servers
//! (the library's hybrid endpoint on every path) are in `virtio_host.rs`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The marker `tools/vm-virtio` adds to the guest's kernel command line (beside
/// [`super::VM_MARKER`]).
pub const VIRTIO_MARKER: &str = "uring_vsock_virtio=1";

/// The guest's serial port for the control channel (the console is ttyS0).
pub const CONTROL_TTY: &str = "/dev/ttyS1";

/// Env vars `tools/vm-virtio` gives the host tests: the testbed's directory (holding `vm.sock`
/// and `ctl.sock`) and the device process's pid.
pub const ENV_DIR: &str = "URING_VSOCK_VIRTIO_DIR";
pub const ENV_DEVICE_PID: &str = "URING_VSOCK_VIRTIO_DEVICE_PID";

/// Whether we run in the virtio testbed's guest.
pub fn in_virtio_guest() -> bool {
    fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|w| w == VIRTIO_MARKER))
        .unwrap_or(false)
}

/// Refuses to go on outside the virtio guest.
pub fn require_virtio_guest() {
    assert!(
        in_virtio_guest(),
        "not in the virtio testbed's guest (no `{VIRTIO_MARKER}` on the kernel command line): \
         run tools/vm-virtio"
    );
}

/// The host side of a running testbed, from the env `tools/vm-virtio` sets.
pub struct Testbed {
    pub dir: PathBuf,
    pub device_pid: i32,
}

impl Testbed {
    /// Fails the test (with a hint) outside `tools/vm-virtio`.
    pub fn from_env() -> Testbed {
        let dir = std::env::var_os(ENV_DIR).unwrap_or_else(|| {
            panic!("{ENV_DIR} is not set: the virtio tests run only under tools/vm-virtio")
        });
        let pid = std::env::var(ENV_DEVICE_PID)
            .unwrap_or_else(|_| panic!("{ENV_DEVICE_PID} is not set (tools/vm-virtio sets it)"));
        Testbed {
            dir: PathBuf::from(dir),
            device_pid: pid
                .parse()
                .unwrap_or_else(|_| panic!("{ENV_DEVICE_PID}={pid} is not a pid")),
        }
    }

    /// The device's host-side socket (`--uds-path`): host clients connect here.
    pub fn vm_sock(&self) -> PathBuf {
        self.dir.join("vm.sock")
    }

    /// Where a guest connect to CID 2 port `port` arrives (`<uds_path>_<port>`).
    pub fn host_port_sock(&self, port: u32) -> PathBuf {
        self.dir.join(format!("vm.sock_{port}"))
    }

    /// The QEMU end of the guest's control serial port.
    pub fn control_sock(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    /// Sends `sig` to the device process.
    pub fn signal_device(&self, sig: libc::c_int) {
        // SAFETY: kill takes no memory; the pid is the device tools/vm-virtio started.
        let rc = unsafe { libc::kill(self.device_pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.device_pid,
            io::Error::last_os_error()
        );
        if sig == libc::SIGSTOP {
            self.wait_stopped();
        }
    }

    /// Waits until every thread of the device is stopped: `kill` only queues the signal, and
    /// a thread still running could serve a request the test means to meet a frozen device.
    fn wait_stopped(&self) {
        let tasks = PathBuf::from(format!("/proc/{}/task", self.device_pid));
        let stopped = || {
            fs::read_dir(&tasks).is_ok_and(|dir| {
                dir.flatten().all(|t| {
                    // `pid (comm) S ...`: the state follows the last `)`.
                    fs::read_to_string(t.path().join("stat")).is_ok_and(|st| {
                        st.rsplit_once(')').is_some_and(|(_, rest)| {
                            matches!(rest.trim_start().chars().next(), Some('T' | 't'))
                        })
                    })
                })
            })
        };
        wait_until("the device stopped after SIGSTOP", stopped);
    }
}

/// A reply line's fields (`<id> OK k=v ...`), by key.
pub fn field<'a>(reply: &'a str, key: &str) -> Option<&'a str> {
    reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// [`field`], parsed as a number; panics naming the reply when missing.
pub fn num(reply: &str, key: &str) -> u64 {
    field(reply, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric `{key}=` in reply `{reply}`"))
}

/// FNV-1a 64, incremental: the same value as [`super::checksum`] over the whole stream,
/// however it is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn add(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A deterministic byte stream for `seed` (xorshift64), splittable anywhere: the receiver
/// regenerates it to check every byte.
pub struct Bytes {
    x: u64,
    word: [u8; 8],
    used: usize,
}

impl Bytes {
    pub fn new(seed: u64) -> Bytes {
        Bytes {
            x: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            word: [0; 8],
            used: 8,
        }
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.x ^= self.x << 13;
                self.x ^= self.x >> 7;
                self.x ^= self.x << 17;
                self.word = self.x.to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

/// What a checked echo moved: bytes each way and their checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echoed {
    pub sent: u64,
    pub sent_sum: u64,
    pub received: u64,
    pub received_sum: u64,
}

/// In-flight bytes (sent, not yet echoed) an echo client allows: small enough that the
/// device never backs up toward a reader that is not reading (its EPOLLOUT stall).
pub const WINDOW: u64 = 128 * 1024;

/// Sends `total` bytes of [`Bytes`]`(seed)` in random chunk sizes (1..=`max_chunk`) and
/// reads the echo back, at most [`WINDOW`] bytes ahead, checking every byte as it comes.
/// `progress` counts the bytes echoed so far (for tests that act mid-stream). Ends without
/// any shutdown (the device has no half-close): the caller drops the stream once it returns.
///
/// # Errors
/// The stream's error, `UnexpectedEof` when the echo ends early, `InvalidData` at the first
/// byte that differs (with its offset).
pub fn echo_through(
    s: &mut (impl Read + Write),
    seed: u64,
    total: u64,
    max_chunk: usize,
    progress: &AtomicU64,
) -> io::Result<Echoed> {
    let mut tx = Bytes::new(seed);
    let mut rx = Bytes::new(seed);
    let mut rng = seed ^ 0x5deece66d | 1;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        1 + (rng % n as u64) as usize
    };
    let (mut out, mut inb, mut want) = (
        vec![0u8; max_chunk],
        vec![0u8; max_chunk],
        vec![0; max_chunk],
    );
    let (mut sent_sum, mut received_sum) = (Fnv::default(), Fnv::default());
    let (mut sent, mut received) = (0u64, 0u64);
    // Bytes generated but not yet accepted by a (partial) write.
    let (mut pending, mut pending_at) = (0usize, 0usize);
    while received < total {
        if sent < total && sent - received < WINDOW {
            if pending_at == pending {
                let room = (WINDOW - (sent - received)).min(total - sent) as usize;
                pending = next(max_chunk).min(room);
                pending_at = 0;
                tx.fill(&mut out[..pending]);
                sent_sum.add(&out[..pending]);
            }
            let n = s.write(&out[pending_at..pending])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "echo: write of 0"));
            }
            pending_at += n;
            sent += n as u64;
            continue;
        }
        let n = next(max_chunk).min((sent - received) as usize);
        let got = s.read(&mut inb[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("echo ended after {received} of {total} bytes ({sent} sent)"),
            ));
        }
        rx.fill(&mut want[..got]);
        if let Some(i) = (0..got).find(|&i| inb[i] != want[i]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("echo differs at byte {}", received + i as u64),
            ));
        }
        received_sum.add(&inb[..got]);
        received += got as u64;
        progress.store(received, Ordering::Relaxed);
    }
    Ok(Echoed {
        sent,
        sent_sum: sent_sum.0,
        received,
        received_sum: received_sum.0,
    })
}

/// The checksum [`echo_through`] reports for `total` bytes of `seed`'s stream.
pub fn stream_sum(seed: u64, total: u64) -> u64 {
    let mut b = Bytes::new(seed);
    let mut sum = Fnv::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = total;
    while left > 0 {
        let n = (left as usize).min(buf.len());
        b.fill(&mut buf[..n]);
        sum.add(&buf[..n]);
        left -= n as u64;
    }
    sum.0
}

/// Polls `cond` until it holds, failing with `what` after [`super::WATCHDOG`].
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < super::WATCHDOG,
            "{what}: not within {:?}",
            super::WATCHDOG
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
