//! The tokio path leaks no fd when a connect is cancelled: dropping a pending
//! `connect_timeout` future (mid-connect, or mid hybrid handshake) closes its socket. Its own
//! binary, since every test here counts the process's fds.

#[path = "hybrid_support/mod.rs"]
mod hybrid_support;
mod util;

use std::time::Duration;

use uring_vsock::tokio::Stream;
use util::{open_fds, FullBacklog, TempDir, Transport};

/// Polls a connect to `ep` until it is pending, then drops it. With `count`, the fd count
/// shows the pending connect holding one socket and the drop closing it (when a peer in this
/// process opens fds meanwhile, the caller's `fds_unchanged` checks the total instead).
async fn cancel_a_pending_connect(ep: &uring_vsock::Endpoint, count: bool) {
    let before = open_fds();
    let mut connect = Box::pin(Stream::connect_timeout(ep, util::WATCHDOG));
    // Nothing answers, so the connect is still pending when this gives up.
    let polled = tokio::time::timeout(Duration::from_millis(100), &mut connect).await;
    assert!(
        polled.is_err(),
        "the connect finished: {:?}",
        polled.map(|r| r.map(drop))
    );
    if count {
        assert_eq!(
            open_fds(),
            before + 1,
            "the pending connect holds its socket"
        );
    }
    drop(connect);
    if count {
        assert_eq!(open_fds(), before, "dropping the connect closed its socket");
    }
}

/// A runtime for one test. The first runtime of the process opens tokio's process-wide
/// signal pipe (the dev-dependency has `signal`), which stays open: [`warm_up`] does that
/// before any count.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Builds and drops a first runtime; every test calls it before counting, so none counts
/// while it runs.
fn warm_up() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| drop(runtime()));
}

fn cancel_on_a_full_backlog(t: Transport) {
    warm_up();
    util::fds_unchanged(|| {
        // Made (and dropped) inside: the runtime's own fds are counted too.
        let rt = runtime();
        let dir = TempDir::new();
        // tcp drops the SYN; unix waits for room: no answer either way.
        let full = FullBacklog::new(t, &dir);
        rt.block_on(cancel_a_pending_connect(&full.ep, true));
    });
}

#[test]
fn connect_timeout_cancelled_by_drop_closes_its_socket_unix() {
    cancel_on_a_full_backlog(Transport::Unix);
}

#[test]
fn connect_timeout_cancelled_by_drop_closes_its_socket_tcp() {
    cancel_on_a_full_backlog(Transport::Tcp);
}

#[test]
fn hybrid_handshake_cancelled_by_drop_closes_its_socket() {
    use hybrid_support::{FakeVmm, Reply};
    warm_up();
    util::fds_unchanged(|| {
        // Made (and dropped) inside: the runtime's own fds are counted too.
        let rt = runtime();
        // A VMM that accepts and never answers: the connect waits in the handshake.
        let vmm = FakeVmm::start(Reply::RawHold(Vec::new()));
        rt.block_on(cancel_a_pending_connect(&vmm.ep, false));
        vmm.finish();
    });
}
