//! Receive bundles: where the kernel's bundle receives fill several buffers
//! (`RingFeatures::recv_bundle`, tried at build), a unix connection's completions carry
//! several ring buffers; tcp connections and `recv_bundles(false)` take one buffer per
//! completion (multishot). Either way every byte arrives in order, checked end to end.

mod engine_support;
mod util;

use engine_support::{echo_client, Echo, MIB};
use uring_vsock::uring::{Engine, EngineStats};
use util::{bind_endpoint, TempDir, Transport};

fn echo_with(t: Transport, bundles: bool) -> EngineStats {
    let dir = TempDir::new();
    let e = Engine::builder()
        .workers(1)
        .recv_bundles(bundles)
        .build()
        .expect("engine");
    let ep = e
        .listen(&bind_endpoint(t, &dir), |_| Echo::new())
        .expect("listen");
    // Random write sizes up to ~70 KB, echoed and checksummed by the client.
    echo_client(&ep, 7, 64 * MIB);
    let s = e.stats();
    assert!(s.recv_bytes >= 64 * MIB, "{s:?}");
    s
}

fn kernel_fills_bundles() -> bool {
    let e = Engine::builder().workers(1).build().expect("engine");
    e.features().recv_bundle
}

#[test]
fn engine_recv_bundles_unix_carry_several_buffers_intact() {
    let on = echo_with(Transport::Unix, true);
    if kernel_fills_bundles() {
        assert!(
            on.recv_bundle_bufs > 0,
            "bundles on and filled by this kernel, yet no completion carried several \
             buffers: {on:?}"
        );
    } else {
        assert_eq!(on.recv_bundle_bufs, 0, "{on:?}");
        println!("note: this kernel's bundle receives fill one buffer: multishot receives");
    }
}

/// The kernel retries a tcp bundle receive that filled every buffer for what the socket still
/// holds, past the receive's length: tcp keeps multishot receives, so its share holds.
#[test]
fn engine_recv_tcp_takes_no_bundles_intact() {
    let on = echo_with(Transport::Tcp, true);
    assert_eq!(on.recv_bundle_bufs, 0, "{on:?}");
}

#[test]
fn engine_recv_without_bundles_takes_one_buffer_per_completion() {
    let off = echo_with(Transport::Unix, false);
    assert_eq!(off.recv_bundle_bufs, 0, "{off:?}");
}
