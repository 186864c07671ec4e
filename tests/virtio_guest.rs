//! The virtio testbed's guest side: one long test that runs the guest agent
//! ([`virtio_agent`]) until the host tests (tests/virtio.rs) send `QUIT`. Only
//! `tools/vm-virtio` runs it, in a guest whose vsock is a real virtio device.

mod engine_support;
mod util;
mod virtio_agent;

#[test]
#[ignore = "the virtio testbed's guest agent: run by tools/vm-virtio"]
fn virtio_guest_agent() {
    util::virtio::require_virtio_guest();
    let failures = virtio_agent::run();
    assert_eq!(failures, 0, "the agent saw failures (see the console)");
}
