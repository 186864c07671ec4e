//! Receive bundles: with them (where the kernel has capped multishot bundle receives) one
//! completion carries several ring buffers; without them, one. Either way every byte arrives
//! in order, checked end to end, over unix and tcp.

mod engine_support;
mod util;

use engine_support::{echo_client, Echo, MIB};
use uring_vsock::uring::Engine;
use util::{bind_endpoint, TempDir, Transport};

fn echo_with(t: Transport, bundles: bool) -> uring_vsock::uring::EngineStats {
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

fn bundles_used_where_the_kernel_has_them(t: Transport) {
    let have = Engine::builder()
        .workers(1)
        .build()
        .expect("engine")
        .features()
        .recv_bundle;
    let on = echo_with(t, true);
    if have {
        assert!(
            on.recv_bundle_bufs > 0,
            "bundles on and supported, yet no completion carried several buffers: {on:?}"
        );
    } else {
        assert_eq!(on.recv_bundle_bufs, 0, "{on:?}");
        println!("note: this kernel has no capped multishot bundle receive");
    }
}

#[test]
fn engine_recv_bundles_unix_intact() {
    bundles_used_where_the_kernel_has_them(Transport::Unix);
}

#[test]
fn engine_recv_bundles_tcp_intact() {
    bundles_used_where_the_kernel_has_them(Transport::Tcp);
}

#[test]
fn engine_recv_without_bundles_takes_one_buffer_per_completion() {
    let off = echo_with(Transport::Unix, false);
    assert_eq!(off.recv_bundle_bufs, 0, "{off:?}");
}
