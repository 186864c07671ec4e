//! Counters each worker keeps (relaxed atomics, written by the worker only) and the
//! [`EngineStats`] snapshot that sums them, so spinning's CPU cost and the buffer pressure are
//! visible.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one worker.
#[derive(Default, Debug)]
pub(crate) struct WorkerStats {
    pub spins: AtomicU64,
    pub spin_nanos: AtomicU64,
    pub sleeps: AtomicU64,
    pub completions: AtomicU64,
    pub accepted: AtomicU64,
    pub connected: AtomicU64,
    pub connect_polls: AtomicU64,
    pub closed: AtomicU64,
    pub open: AtomicU64,
    pub recv_bytes: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub enobufs: AtomicU64,
    pub zc_sends: AtomicU64,
    pub copy_sends: AtomicU64,
    pub handler_panics: AtomicU64,
    pub accept_errors: AtomicU64,
    pub zero_copy_fallbacks: AtomicU64,
    pub accept_backoffs: AtomicU64,
    pub recvs_cancelled: AtomicU64,
    pub enters: AtomicU64,
    pub send_chains: AtomicU64,
    pub recv_share_pauses: AtomicU64,
    pub own_buffer_recvs: AtomicU64,
    pub stray_notifs: AtomicU64,
    pub recv_bundle_bufs: AtomicU64,
    pub send_overflow_resets: AtomicU64,
    pub ring_handoffs: AtomicU64,
    pub channel_handoffs: AtomicU64,
    pub handoffs_refused: AtomicU64,
    pub registered_files: AtomicU64,
    pub file_update_errors: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> EngineStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            spins: g(&self.spins),
            spin_time_ns: g(&self.spin_nanos),
            sleeps: g(&self.sleeps),
            completions: g(&self.completions),
            accepted: g(&self.accepted),
            connected: g(&self.connected),
            connect_polls: g(&self.connect_polls),
            closed: g(&self.closed),
            open: g(&self.open),
            recv_bytes: g(&self.recv_bytes),
            sent_bytes: g(&self.sent_bytes),
            enobufs: g(&self.enobufs),
            zero_copy_sends: g(&self.zc_sends),
            copy_sends: g(&self.copy_sends),
            handler_panics: g(&self.handler_panics),
            accept_errors: g(&self.accept_errors),
            zero_copy_fallbacks: g(&self.zero_copy_fallbacks),
            accept_backoffs: g(&self.accept_backoffs),
            recvs_cancelled: g(&self.recvs_cancelled),
            enters: g(&self.enters),
            send_chains: g(&self.send_chains),
            recv_share_pauses: g(&self.recv_share_pauses),
            own_buffer_recvs: g(&self.own_buffer_recvs),
            stray_notifs: g(&self.stray_notifs),
            recv_bundle_bufs: g(&self.recv_bundle_bufs),
            send_overflow_resets: g(&self.send_overflow_resets),
            ring_handoffs: g(&self.ring_handoffs),
            channel_handoffs: g(&self.channel_handoffs),
            handoffs_refused: g(&self.handoffs_refused),
            registered_files: g(&self.registered_files),
            file_update_errors: g(&self.file_update_errors),
        }
    }
}

/// Counters of an engine (summed over workers) or of one worker, from
/// [`Engine::stats`](crate::uring::Engine::stats) and
/// [`Engine::worker_stats`](crate::uring::Engine::worker_stats).
///
/// ```
/// use uring_vsock::uring::EngineStats;
/// let total: EngineStats = [EngineStats::default(), EngineStats::default()].into_iter().sum();
/// assert_eq!(total.sleeps, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Idle loop turns spent polling for completions instead of sleeping.
    pub spins: u64,
    /// Nanoseconds spent in those spins: the CPU cost of the spin budget.
    pub spin_time_ns: u64,
    /// Times the worker blocked in the kernel waiting for a completion.
    pub sleeps: u64,
    /// Completions processed.
    pub completions: u64,
    /// Connections accepted (counted by the worker that accepted them).
    pub accepted: u64,
    /// Outgoing connections established.
    pub connected: u64,
    /// Connects that the kernel left under way (`EALREADY`, seen on vsock) and that the
    /// engine finished by polling for writability.
    pub connect_polls: u64,
    /// Connections closed.
    pub closed: u64,
    /// Connections open now.
    pub open: u64,
    /// Bytes received.
    pub recv_bytes: u64,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// Multishot receives ended by an empty provided-buffer ring (`ENOBUFS`); each is re-armed
    /// at once, into a buffer of the connection's own if the ring is still empty.
    pub enobufs: u64,
    /// Sends done zero-copy (`SEND_ZC` from a registered buffer).
    pub zero_copy_sends: u64,
    /// Sends done by copying (`SEND`).
    pub copy_sends: u64,
    /// Handler calls that panicked (each closed its connection).
    pub handler_panics: u64,
    /// Accept completions that failed (e.g. `EMFILE`); the accept is re-armed.
    pub accept_errors: u64,
    /// Connections whose zero-copy send the socket refused (`EOPNOTSUPP`, e.g. unix), which then send by copying.
    pub zero_copy_fallbacks: u64,
    /// Times accepting paused for a moment after running out of fds or memory (`EMFILE`, `ENFILE`, `ENOMEM`, `ENOBUFS`) instead of failing again at once.
    pub accept_backoffs: u64,
    /// Receives stopped in flight by the engine's own cancel ([`Conn::pause_recv`] or a
    /// close): their final completion came back `ECANCELED`. Data already received was
    /// delivered; the rest stays in the socket.
    ///
    /// [`Conn::pause_recv`]: crate::uring::Conn::pause_recv
    pub recvs_cancelled: u64,
    /// io_uring_enter calls the worker made (submitting, waiting, or both at once).
    pub enters: u64,
    /// Chains of linked sends submitted (each carries one or more of a connection's queued sends, in order).
    pub send_chains: u64,
    /// Times a connection stopped receiving because it held its whole share of receive buffers ([`EngineBuilder::recv_buffers_per_connection`](crate::uring::EngineBuilder::recv_buffers_per_connection)); it resumes once it gives half back.
    pub recv_share_pauses: u64,
    /// Receives made into a buffer of the connection's own because the shared ring was empty (so no connection waits on buffers others hold).
    pub own_buffer_recvs: u64,
    /// Zero-copy notifications that no send was waiting for (the kernel posts one for a zero-copy send cut from its chain although its completion promised none); ignored.
    pub stray_notifs: u64,
    /// Receive buffers that arrived in bundles of two or more (one completion carrying several ring buffers; see [`EngineBuilder::recv_bundles`](crate::uring::EngineBuilder::recv_bundles)).
    pub recv_bundle_bufs: u64,
    /// Sends that failed with `ENOBUFS`: the kernel had reset the connection because more
    /// packets waited unread in its receive queue than its buffer size allows (vsock on
    /// Linux 6.12.94+, when a peer sends small packets while the connection is not read).
    /// Each closed its connection with that error; the stream had lost data, so nothing is
    /// retried.
    pub send_overflow_resets: u64,
    /// Accepted connections handed to another worker by ring message (`MSG_RING`; see
    /// [`EngineBuilder::ring_handoff`](crate::uring::EngineBuilder::ring_handoff)), counted
    /// by the acceptor.
    pub ring_handoffs: u64,
    /// Accepted connections handed to another worker through its channel and wake-up
    /// socket (no `MSG_RING`, or `ring_handoff(false)`), counted by the acceptor.
    pub channel_handoffs: u64,
    /// Ring hand-offs the kernel refused (e.g. the target's completion queue overflowing);
    /// the acceptor served each connection itself.
    pub handoffs_refused: u64,
    /// Connections whose socket went into the worker's registered file table (once busy),
    /// so their later receives and sends named it as a direct descriptor (see
    /// [`EngineBuilder::registered_files`](crate::uring::EngineBuilder::registered_files)).
    pub registered_files: u64,
    /// Updates of a registered file table that the kernel refused (each logged; a refused
    /// registration fails its connection's ops, which closes it with their error).
    pub file_update_errors: u64,
}

impl std::iter::Sum for EngineStats {
    fn sum<I: Iterator<Item = EngineStats>>(iter: I) -> EngineStats {
        iter.fold(EngineStats::default(), |a, b| EngineStats {
            spins: a.spins + b.spins,
            spin_time_ns: a.spin_time_ns + b.spin_time_ns,
            sleeps: a.sleeps + b.sleeps,
            completions: a.completions + b.completions,
            accepted: a.accepted + b.accepted,
            connected: a.connected + b.connected,
            connect_polls: a.connect_polls + b.connect_polls,
            closed: a.closed + b.closed,
            open: a.open + b.open,
            recv_bytes: a.recv_bytes + b.recv_bytes,
            sent_bytes: a.sent_bytes + b.sent_bytes,
            enobufs: a.enobufs + b.enobufs,
            zero_copy_sends: a.zero_copy_sends + b.zero_copy_sends,
            copy_sends: a.copy_sends + b.copy_sends,
            handler_panics: a.handler_panics + b.handler_panics,
            accept_errors: a.accept_errors + b.accept_errors,
            zero_copy_fallbacks: a.zero_copy_fallbacks + b.zero_copy_fallbacks,
            accept_backoffs: a.accept_backoffs + b.accept_backoffs,
            recvs_cancelled: a.recvs_cancelled + b.recvs_cancelled,
            enters: a.enters + b.enters,
            send_chains: a.send_chains + b.send_chains,
            recv_share_pauses: a.recv_share_pauses + b.recv_share_pauses,
            own_buffer_recvs: a.own_buffer_recvs + b.own_buffer_recvs,
            stray_notifs: a.stray_notifs + b.stray_notifs,
            recv_bundle_bufs: a.recv_bundle_bufs + b.recv_bundle_bufs,
            send_overflow_resets: a.send_overflow_resets + b.send_overflow_resets,
            ring_handoffs: a.ring_handoffs + b.ring_handoffs,
            channel_handoffs: a.channel_handoffs + b.channel_handoffs,
            handoffs_refused: a.handoffs_refused + b.handoffs_refused,
            registered_files: a.registered_files + b.registered_files,
            file_update_errors: a.file_update_errors + b.file_update_errors,
        })
    }
}
