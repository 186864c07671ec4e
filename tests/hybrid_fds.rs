//! Failed hybrid handshakes close every fd they opened, on every path (alone in this binary,
//! so no other test opens or closes fds under the count).

mod hybrid_support;
mod util;

use std::time::Duration;

use hybrid_support::{assert_handshake_error, exchange, FakeVmm, Reply, PATHS};
use uring_vsock::hybrid::HandshakeErrorKind;

#[test]
fn hybrid_failed_handshakes_leak_no_fd() {
    for path in PATHS {
        for (reply, kind) in [
            (b"NO\n".to_vec(), HandshakeErrorKind::Malformed),
            (Vec::new(), HandshakeErrorKind::Refused),
        ] {
            util::fds_unchanged(|| {
                let vmm = FakeVmm::start(Reply::Raw(reply.clone()));
                let err = exchange(path, &vmm.ep, Duration::from_secs(20), b"x")
                    .expect_err("the handshake fails");
                assert_handshake_error(&err, &vmm.ep, kind);
                vmm.finish();
            });
        }
    }
}
