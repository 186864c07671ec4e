//! Shared helpers of vsock-tool's tests: running the built binary (with a deadline on every
//! wait), servers to proxy to, data and checksums.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::Endpoint;

/// How long any wait may take before the test fails instead of hanging. A watchdog, not a
/// speed assertion.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vsock-tool");

/// The marker `tools/vm-run` puts on the guest's kernel command line.
const VM_MARKER: &str = "uring_vsock_vm=1";

/// Refuses to go on outside the VM: on the host a vsock connect leaves the machine.
pub fn require_vm() {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    assert!(
        cmdline.split_whitespace().any(|w| w == VM_MARKER),
        "refusing vsock traffic: not in the test VM. Run tools/vm-test -p vsock-tool."
    );
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        // A name left by an earlier process with this pid is skipped: its files would clash.
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("vsock-tool-test-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => return TempDir(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("creating {}: {e}", dir.display()),
            }
        }
    }

    /// A unix endpoint in this directory.
    pub fn unix(&self, name: &str) -> Endpoint {
        Endpoint::Unix(self.0.join(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `vsock-tool proxy`, killed on drop. Its stderr lines arrive on `lines`.
pub struct Proxy {
    pub child: Child,
    /// Where clients connect (the bound endpoint it printed).
    pub ep: Endpoint,
    pub lines: mpsc::Receiver<String>,
}

impl Proxy {
    /// Starts `vsock-tool [ARGS] proxy [OPTS] LISTEN TARGET` and waits for its
    /// `listening on` line.
    pub fn start(listen: &Endpoint, target: &Endpoint, opts: &[&str]) -> Proxy {
        let mut child = Command::new(BIN)
            .arg("proxy")
            .args(opts)
            .arg(listen.to_string())
            .arg(target.to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vsock-tool proxy");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[proxy] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut proxy = Proxy {
            child,
            ep: listen.clone(),
            lines,
        };
        let line = proxy.wait_line("listening on ");
        proxy.ep = line["listening on ".len()..]
            .trim()
            .parse()
            .expect("an endpoint");
        proxy
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with '{needle}' from the proxy: {e}"),
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and still hold (not reaped) and a valid signal.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Every stderr line still to come, until the process has exited and its stderr closed
    /// (within the watchdog).
    pub fn rest_of_lines(&mut self) -> Vec<String> {
        let deadline = Instant::now() + WATCHDOG;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(e) => panic!("the proxy's stderr did not close: {e}"),
            }
        }
    }

    /// Waits for the process to exit, within the watchdog.
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_child(&mut self.child)
    }

    /// The proxy's resident set size, from /proc/PID/status.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the proxy is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `vsock-tool ARGS` to its exit (within the watchdog) with stdin closed; its output.
pub fn run_tool(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vsock-tool");
    wait_child(&mut child);
    child.wait_with_output().expect("the tool's output")
}

/// Waits for `child` to exit within the watchdog (killing it then, and failing).
pub fn wait_child(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {WATCHDOG:?}", child.id());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// FNV-1a 64.
pub fn checksum(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A xorshift generator for data and chunk sizes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A size in `1..=max`.
    pub fn size(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    (0..len).map(|_| r.next() as u8).collect()
}

/// Writes `data` in random chunk sizes (seeded), then shuts the write side.
pub fn write_chunked(mut s: &Stream, data: &[u8], seed: u64) {
    let mut r = Rng::new(seed ^ 0xc0ffee);
    let mut rest = data;
    while !rest.is_empty() {
        let n = r.size(100_000).min(rest.len());
        s.write_all(&rest[..n]).expect("write through the proxy");
        rest = &rest[n..];
    }
    s.shutdown(Shutdown::Write).expect("shutdown write");
}

/// What a [`duplex_server`] connection received.
#[derive(Debug, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub sum: u64,
}

/// A server on `ep` that, per connection, writes `pattern(seed, reply_len)` (seed = the first
/// 8 bytes it reads, little endian) in random chunks then shuts its write side, while reading
/// everything until EOF; each connection's [`Received`] goes to the channel. Returns the
/// bound endpoint.
pub fn duplex_server(ep: &Endpoint, reply_len: usize) -> (Endpoint, mpsc::Receiver<Received>) {
    server(ep, reply_len, false)
}

/// A [`duplex_server`] that replies only after the client's EOF (request, then response):
/// for `cat`, which ends at the peer's EOF.
pub fn request_server(ep: &Endpoint, reply_len: usize) -> (Endpoint, mpsc::Receiver<Received>) {
    server(ep, reply_len, true)
}

fn server(
    ep: &Endpoint,
    reply_len: usize,
    after_eof: bool,
) -> (Endpoint, mpsc::Receiver<Received>) {
    let l = Listener::bind(ep).expect("bind the target");
    let local = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let tx = tx.clone();
            thread::spawn(move || {
                s.set_read_timeout(Some(WATCHDOG)).unwrap();
                let mut seed = [0u8; 8];
                if (&s).read_exact(&mut seed).is_err() {
                    return;
                }
                let seed = u64::from_le_bytes(seed);
                let writer = s.try_clone().unwrap();
                let reply = move || write_chunked(&writer, &pattern(seed, reply_len), seed);
                let (w, reply) = if after_eof {
                    (None, Some(reply))
                } else {
                    (Some(thread::spawn(reply)), None)
                };
                let mut got = seed.to_le_bytes().to_vec();
                let _ = (&s).read_to_end(&mut got);
                if let Some(w) = w {
                    let _ = w.join();
                }
                if let Some(reply) = reply {
                    reply();
                }
                let _ = tx.send(Received {
                    len: got.len(),
                    sum: checksum(&got),
                });
            });
        }
    });
    (local, rx)
}

/// One checksummed exchange through `ep` with a [`duplex_server`]: sends `len` bytes (the
/// first 8 are the seed) in random chunks and half-closes, reads the reply to EOF; checks the
/// reply and what the server got.
pub fn exchange(
    ep: &Endpoint,
    seed: u64,
    len: usize,
    reply_len: usize,
    got: &mpsc::Receiver<Received>,
) {
    let s = Stream::connect(ep).expect("connect to the proxy");
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut data = pattern(seed.wrapping_add(1), len.max(8));
    data[..8].copy_from_slice(&seed.to_le_bytes());
    let writer = s.try_clone().unwrap();
    let sent = data.clone();
    let w = thread::spawn(move || write_chunked(&writer, &sent, seed));
    let mut reply = Vec::new();
    (&s).read_to_end(&mut reply).expect("the reply, then EOF");
    w.join().expect("writer");
    assert_eq!(reply.len(), reply_len, "reply length");
    assert_eq!(
        checksum(&reply),
        checksum(&pattern(seed, reply_len)),
        "reply checksum"
    );
    let r = got.recv_timeout(WATCHDOG).expect("the server's report");
    assert_eq!(
        r,
        Received {
            len: data.len(),
            sum: checksum(&data)
        },
        "what the server received"
    );
}
