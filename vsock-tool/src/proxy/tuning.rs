//! The proxy's engine: receive buffers sized for forwarding.
//!
//! Each received buffer is forwarded as one send, and a connection queues at most
//! `sends_per_connection` (16) of them. With the engine's default 16 KiB buffers that queue
//! is 256 KiB, about one unix socket buffer (`wmem_default`, 208 KiB): the target's queue was
//! full whenever its socket was, so the client's receiving was paused at nearly every
//! socket-full moment (8,200 pauses in 30,000 64 KiB messages), and the stream moved in
//! alternate gulps, each costing a wake-up on both sides. And linked sends go one per
//! `io_uring_enter` (the kernel issues the next link from task work the worker runs on its
//! next enter), so every 16 KiB cost a round trip. 64 KiB buffers (the send pool's size) make
//! the queue 1 MiB and a send carry four times as much: in the same run, no pauses, a third
//! of the sends and enters, half the context switches.

use uring_vsock::uring::{Engine, EngineBuilder};

/// Receive buffers per worker: the default's bytes (128 × 16 KiB) in 64 KiB buffers.
pub(super) const RECV_BUFFERS: usize = 32;
/// The size of each.
pub(super) const RECV_BUFFER_SIZE: usize = 64 * 1024;

/// The proxy's engine with `workers` workers (`None`: one per core). Explicit buffer sizes
/// are not sized down to the memory-lock limit as the defaults are, so if they do not fit,
/// the engine is built with the defaults instead (logged at debug).
///
/// # Errors
///
/// The engine's own, from the build with the defaults.
pub(super) fn engine(workers: Option<usize>) -> uring_vsock::Result<Engine> {
    let mut base = Engine::builder();
    if let Some(n) = workers {
        base = base.workers(n);
    }
    match forwarding(base.clone()).build() {
        Ok(engine) => Ok(engine),
        Err(e) => {
            log::debug!("proxy engine with {RECV_BUFFERS} x {RECV_BUFFER_SIZE} B receive buffers: {e}; using the defaults");
            base.build()
        }
    }
}

/// `builder` with the proxy's receive buffers.
fn forwarding(builder: EngineBuilder) -> EngineBuilder {
    builder.recv_buffers(RECV_BUFFERS, RECV_BUFFER_SIZE)
}
