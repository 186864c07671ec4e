//! [`EngineBuilder`]: workers, pinning, ring and buffer sizes, spin budget, socket options;
//! its checks (and the memory-lock budget that makes an engine that cannot register its
//! buffers fail at build time rather than at run time) are in `validate.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::engine::Engine;
use super::ring::TaskRunMode;
use super::settings::{Settings, SocketSettings};
use super::validate;
use crate::Result;

/// Sends of registered buffers at least this long go zero-copy (`SEND_ZC`) on tcp and vsock.
///
/// Measured with `cargo bench --bench engine_zc` (criterion, one engine worker streaming
/// 64 MiB over tcp loopback from 16 pool buffers to a blocking reader; kernel 6.18, 2 vCPUs),
/// mean MiB/s, copy vs zero-copy: 4 KiB 1042 vs 2 (buffers wait for notifications, the pool
/// runs dry); 16 KiB 2436 vs 1852; 64 KiB 2294 vs 2910; 256 KiB 2239 vs 1751 (noisy). Zero-copy
/// never wins below 64 KiB, so that is the threshold; over loopback the kernel copies at
/// delivery anyway, so the gain is for real NICs and vsock transports.
pub const DEFAULT_ZERO_COPY_THRESHOLD: usize = 64 * 1024;

/// Settings of an [`Engine`]; get one from [`Engine::builder`].
///
/// Registered memory per worker is `recv_buffers × recv_buffer_size` (the provided-buffer
/// ring) plus `send_buffers × send_buffer_size` (the send pool). It must fit under
/// `RLIMIT_MEMLOCK` for all workers together unless the process has `CAP_IPC_LOCK`; when the
/// sizes were left at their defaults and do not fit, the builder halves the buffer counts
/// until they do (down to 8 each), and otherwise [`build`](Self::build) fails saying what was
/// asked and what the limit is.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use uring_vsock::uring::Engine;
///
/// let engine = Engine::builder()
///     .workers(2)
///     .recv_buffers(64, 16 * 1024)
///     .send_buffers(16, 64 * 1024)
///     .spin(Duration::from_micros(50))
///     .build()?;
/// assert_eq!(engine.workers(), 2);
/// # Ok::<(), uring_vsock::Error>(())
/// ```
#[derive(Clone)]
pub struct EngineBuilder {
    /// What the setters set; [`validated`](Self::validated) checks it and fills in the rest.
    pub(crate) settings: Settings,
    /// `None`: a quarter of the receive ring (known once the ring is sized).
    pub(crate) recv_share: Option<usize>,
    /// Buffer counts were set, so they are not sized down to fit the memory-lock limit.
    pub(crate) buffers_explicit: bool,
}

impl Default for EngineBuilder {
    fn default() -> EngineBuilder {
        EngineBuilder {
            settings: Settings {
                workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
                pin: None,
                sq_entries: 512,
                cq_entries: 4096,
                recv_buffers: 128,
                recv_buffer_size: 16 * 1024,
                // Set by validation, from `recv_share` or the ring's size.
                recv_share: 0,
                send_buffers: 32,
                send_buffer_size: 64 * 1024,
                spin: None,
                sends_per_conn: 16,
                zero_copy_threshold: DEFAULT_ZERO_COPY_THRESHOLD,
                task_run: None,
                recv_bundles: true,
                ring_handoff: true,
                registered_files: true,
                min_wait: None,
                on_thread_start: None,
                socket: SocketSettings::default(),
            },
            recv_share: None,
            buffers_explicit: false,
        }
    }
}

impl EngineBuilder {
    /// Number of worker threads, each with its own ring (default: available cores).
    pub fn workers(mut self, n: usize) -> Self {
        self.settings.workers = n;
        self
    }

    /// Pins worker `i` to CPU `cpus[i % cpus.len()]`.
    pub fn pin_to_cpus(mut self, cpus: Vec<usize>) -> Self {
        self.settings.pin = Some(cpus);
        self
    }

    /// Submission-queue entries per ring (default 512, at least 8; rounded up to a power of
    /// two).
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.settings.sq_entries = n;
        self
    }

    /// Completion-queue entries per ring (default 4096).
    pub fn completion_entries(mut self, n: u32) -> Self {
        self.settings.cq_entries = n;
        self
    }

    /// The provided-buffer ring of each worker: `count` (a power of two) buffers of `size`
    /// bytes (default 128 × 16 KiB).
    pub fn recv_buffers(mut self, count: usize, size: usize) -> Self {
        self.settings.recv_buffers = count;
        self.settings.recv_buffer_size = size;
        self.buffers_explicit = true;
        self
    }

    /// The registered send pool of each worker: `count` buffers of `size` bytes
    /// (default 32 × 64 KiB).
    pub fn send_buffers(mut self, count: usize, size: usize) -> Self {
        self.settings.send_buffers = count;
        self.settings.send_buffer_size = size;
        self.buffers_explicit = true;
        self
    }

    /// Adaptive spin: after the last completion a worker keeps polling for `budget` before it
    /// sleeps in the kernel. Costs CPU (see [`EngineStats::spin_time_ns`]) for lower latency.
    /// Off by default.
    ///
    /// [`EngineStats::spin_time_ns`]: crate::uring::EngineStats::spin_time_ns
    pub fn spin(mut self, budget: Duration) -> Self {
        self.settings.spin = (!budget.is_zero()).then_some(budget);
        self
    }

    /// Sends a connection may have queued or in flight at once (default 16, at most 65536);
    /// past it [`Conn::send`](crate::uring::Conn::send) hands the buffer back. Up to this
    /// many (and a quarter of the ring's entries) go to the kernel at once as a linked chain.
    pub fn sends_per_connection(mut self, n: usize) -> Self {
        self.settings.sends_per_conn = n;
        self
    }

    /// Most received buffers one connection may hold at once (default: a quarter of the
    /// receive ring). A connection that holds this many stops receiving, alone, until it has
    /// given half of them back, so one that keeps what it receives (an echo whose peer does
    /// not read) never starves the others. When the shared ring is empty anyway, a receive
    /// goes into a buffer of the connection's own.
    pub fn recv_buffers_per_connection(mut self, n: usize) -> Self {
        self.recv_share = Some(n);
        self
    }

    /// `TCP_NODELAY` on tcp connections (default on: the engine sends whole messages).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.settings.socket.nodelay = on;
        self
    }

    /// The listen backlog of [`Engine::listen`] (default [`crate::DEFAULT_BACKLOG`]; the
    /// kernel caps it at `net.core.somaxconn`).
    pub fn listen_backlog(mut self, n: u32) -> Self {
        self.settings.socket.backlog = n.min(i32::MAX as u32) as i32;
        self
    }

    /// `SO_SNDBUF` and `SO_RCVBUF` of engine sockets, in bytes (default: the kernel's).
    pub fn socket_buffers(mut self, send: Option<usize>, recv: Option<usize>) -> Self {
        self.settings.socket.send_buffer = send;
        self.settings.socket.recv_buffer = recv;
        self
    }

    /// `SO_VM_SOCKETS_BUFFER_SIZE` of vsock sockets (raising the max when needed). The
    /// kernel's 256 KiB default caps a vsock stream's window; newer kernels also cap the
    /// sender's credit to its own buffer, so set it on both ends.
    pub fn vsock_buffer_size(mut self, bytes: u64) -> Self {
        self.settings.socket.vsock_buffer = Some(bytes);
        self
    }

    /// Forces the rings' task-run mode instead of the best one probing finds (to measure
    /// one against another); [`build`](Self::build) fails if the kernel refuses it.
    pub fn task_run(mut self, mode: TaskRunMode) -> Self {
        self.settings.task_run = Some(mode);
        self
    }

    /// Whether receives take bundles of buffers (default on; used where the kernel's bundle
    /// receives fill several buffers, [`RingFeatures::recv_bundle`](crate::uring::RingFeatures),
    /// and not on tcp). Each ring receive is then a single receive whose one completion
    /// carries as many buffers as the socket had data for, up to what is left of the
    /// connection's share. Otherwise, and on tcp (whose bundle receives the kernel extends
    /// past their length), multishot receives take one buffer per completion. Off: multishot
    /// everywhere (to measure one against the other).
    pub fn recv_bundles(mut self, on: bool) -> Self {
        self.settings.recv_bundles = on;
        self
    }

    /// Whether the acceptor hands accepted connections to their workers by ring message
    /// (default on; used where the kernel has it, [`RingFeatures::msg_ring`]): the fd goes
    /// into the target worker's completion queue, which wakes it without a channel and a
    /// wake-up write. Off, or on a kernel without it: through the worker's channel and
    /// wake-up socket (to measure one against the other). Either way the acceptor picks the
    /// least-loaded worker, itself included.
    ///
    /// [`RingFeatures::msg_ring`]: crate::uring::RingFeatures::msg_ring
    pub fn ring_handoff(mut self, on: bool) -> Self {
        self.settings.ring_handoff = on;
        self
    }

    /// Whether busy connections' sockets go into each worker's registered file table
    /// (default on; used where the kernel has it, [`RingFeatures::registered_files`]):
    /// receives and sends then name the socket as a direct descriptor, which saves the
    /// kernel an fd lookup and a file reference per operation. A socket goes in once its
    /// connection has made 16 receives and sends (putting it in and taking it out are two
    /// updates, which a connection that exchanges a message and closes would not win back),
    /// and its slot is cleared as it closes. A worker's table has a slot per connection up
    /// to 16,384 (and `RLIMIT_NOFILE`); connections past it, and connects and handshakes,
    /// use the fd. Counted in [`EngineStats::registered_files`]. Off: the fd everywhere (to
    /// measure one against the other).
    ///
    /// [`RingFeatures::registered_files`]: crate::uring::RingFeatures::registered_files
    /// [`EngineStats::registered_files`]: crate::uring::EngineStats::registered_files
    pub fn registered_files(mut self, on: bool) -> Self {
        self.settings.registered_files = on;
        self
    }

    /// Min-wait batching (`IORING_FEAT_MIN_TIMEOUT`, kernel 6.12+; reported in
    /// [`RingFeatures::min_wait`]): a worker with nothing to do sleeps until one completion
    /// per open connection has arrived, but no longer than `wait` once at least one has (and
    /// as long as it takes for the first). Fewer wake-ups and larger batches when many
    /// connections are busy, for up to `wait` of added latency. Off by default (zero turns it
    /// off): it is for many-connection loads, where it should be measured; a kernel without
    /// the feature ignores it.
    ///
    /// # Errors
    ///
    /// [`build`](Self::build) fails with `InvalidInput` for a `wait` above one second.
    ///
    /// [`RingFeatures::min_wait`]: crate::uring::RingFeatures::min_wait
    pub fn min_wait(mut self, wait: Duration) -> Self {
        self.settings.min_wait = (!wait.is_zero()).then_some(wait);
        self
    }

    /// Registered sends at least this long go zero-copy on tcp and vsock (default
    /// [`DEFAULT_ZERO_COPY_THRESHOLD`]); `usize::MAX` turns zero-copy off.
    pub fn zero_copy_threshold(mut self, bytes: usize) -> Self {
        self.settings.zero_copy_threshold = bytes;
        self
    }

    /// Runs `hook(worker_index)` on each worker thread when it starts (e.g. to set thread
    /// priorities, or to mark the thread for an allocation counter).
    pub fn on_thread_start(mut self, hook: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.settings.on_thread_start = Some(Arc::new(hook));
        self
    }

    /// Starts the workers: probes the kernel, creates each ring on its own thread, registers
    /// the buffers.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for bad sizes; `OutOfMemory` when the registered buffers exceed
    /// `RLIMIT_MEMLOCK` (the message says what was asked and the limit); the kernel's error
    /// when a ring cannot be set up.
    pub fn build(self) -> Result<Engine> {
        let cfg = self.validated()?;
        Engine::start(cfg)
    }

    /// Checks sizes and the memory-lock budget, sizing defaults down when they do not fit.
    pub(crate) fn validated(self) -> Result<Settings> {
        self.validated_with(validate::memlock_limit())
    }

    /// As [`validated`](Self::validated) with the memory-lock limit given.
    fn validated_with(self, limit: Option<usize>) -> Result<Settings> {
        validate::validate(self.settings, self.recv_share, self.buffers_explicit, limit)
    }

    /// Registered (pinned) bytes for all workers.
    #[cfg(test)]
    fn locked_bytes(&self) -> usize {
        validate::locked_bytes(&self.settings)
    }
}

impl Engine {
    /// A builder with defaults (one worker per core, no spinning).
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// An engine with default settings.
    ///
    /// # Errors
    ///
    /// As [`EngineBuilder::build`].
    pub fn new() -> Result<Engine> {
        Engine::builder().build()
    }
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("workers", &self.settings.workers)
            .field("pin", &self.settings.pin)
            .field("sq_entries", &self.settings.sq_entries)
            .field("cq_entries", &self.settings.cq_entries)
            .field(
                "recv_buffers",
                &(self.settings.recv_buffers, self.settings.recv_buffer_size),
            )
            .field(
                "send_buffers",
                &(self.settings.send_buffers, self.settings.send_buffer_size),
            )
            .field("spin", &self.settings.spin)
            .field("sends_per_conn", &self.settings.sends_per_conn)
            .field("zero_copy_threshold", &self.settings.zero_copy_threshold)
            .field("ring_handoff", &self.settings.ring_handoff)
            .field("registered_files", &self.settings.registered_files)
            .field("min_wait", &self.settings.min_wait)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::buf_pool::BufferPool;
    use super::super::buf_ring::BufRing;
    use super::*;
    use std::io;

    #[test]
    fn memlock_message_says_what_and_limit() {
        let b = EngineBuilder::default()
            .workers(4)
            .recv_buffers(1024, 64 * 1024);
        let asked = b.locked_bytes();
        let msg = validate::memlock_message(&b.settings, asked, 8 << 20);
        assert!(msg.contains("4 workers"), "{msg}");
        assert!(msg.contains("RLIMIT_MEMLOCK is 8192 KiB"), "{msg}");
    }

    #[test]
    fn memlock_limit_fails_explicit_sizes_with_what_was_asked() {
        let b = EngineBuilder::default()
            .workers(2)
            .send_buffers(64, 1 << 20)
            .recv_buffers(128, 16 * 1024);
        let asked = b.locked_bytes();
        let e = b.validated_with(Some(8 << 20)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::OutOfMemory);
        let msg = e.to_string();
        assert!(msg.contains(&format!("need {} KiB", asked / 1024)), "{msg}");
        assert!(
            msg.contains("2 workers x (128 recv x 16384 B + 64 send x 1048576 B)"),
            "{msg}"
        );
        assert!(msg.contains("RLIMIT_MEMLOCK is 8192 KiB"), "{msg}");
    }

    #[test]
    fn memlock_limit_sizes_defaults_down() {
        let b = EngineBuilder::default().workers(2);
        let fitted = b.validated_with(Some(8 << 20)).unwrap();
        let locked = fitted.workers
            * (BufRing::locked_bytes(fitted.recv_buffers, fitted.recv_buffer_size)
                + BufferPool::locked_bytes(fitted.send_buffers, fitted.send_buffer_size));
        assert!(locked <= 8 << 20, "{fitted:?}");
        assert!(fitted.send_buffers >= 8 && fitted.recv_buffers >= 8);
        let unlimited = EngineBuilder::default().workers(2).validated_with(None);
        assert_eq!(unlimited.unwrap().send_buffers, 32);
    }

    #[test]
    fn rejects_what_the_kernel_would() {
        let e = EngineBuilder::default()
            .send_buffers(16384, 4096)
            .validated_with(None)
            .unwrap_err();
        assert!(e.to_string().contains("count must be 1..=16383"), "{e}");
        EngineBuilder::default()
            .send_buffers(16383, 4096)
            .validated_with(None)
            .unwrap();
        let e = EngineBuilder::default()
            .recv_buffers(32768, 64 * 1024)
            .validated_with(None)
            .unwrap_err();
        assert!(e.to_string().contains("caps at 1 GiB"), "{e}");
    }

    #[test]
    fn rejects_bad_sizes() {
        let e = EngineBuilder::default()
            .recv_buffers(100, 4096)
            .validated()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = EngineBuilder::default().workers(0).validated().unwrap_err();
        assert!(e.to_string().contains("workers"), "{e}");
    }
}
