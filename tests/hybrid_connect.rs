//! Host → guest connects through a hybrid vsock endpoint on every path, against a fake VMM
//! that answers well or badly: the guest's bytes right after `OK` are never lost, and every
//! bad answer is a typed error with its operation, endpoint and errno, within the deadline.

mod hybrid_support;
mod util;

use std::io;
use std::time::Duration;

use hybrid_support::{assert_handshake_error, exchange, FakeVmm, Path, Reply, PATHS, PORT};
use uring_vsock::hybrid::HandshakeErrorKind;
use uring_vsock::Endpoint;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Connects on `path` to a VMM giving `reply`; the connect's error.
fn connect_err(path: Path, reply: Reply) -> (uring_vsock::Error, Endpoint) {
    let vmm = FakeVmm::start(reply);
    let err = exchange(path, &vmm.ep, TIMEOUT, b"x").expect_err("the connect must fail");
    let ep = vmm.ep.clone();
    let served = vmm.finish();
    if !served.request.is_empty() {
        assert_eq!(served.request, format!("CONNECT {PORT}\n").as_bytes());
    }
    (err, ep)
}

#[test]
fn hybrid_ok_with_data_in_the_same_write_loses_nothing() {
    for path in PATHS {
        for pieces in [1, 3] {
            let payload = util::pattern(u64::from(PORT) + pieces as u64, 300_000);
            let send = util::pattern(7, 4096);
            let vmm = FakeVmm::start(Reply::Ok {
                payload: payload.clone(),
                pieces,
            });
            let got = exchange(path, &vmm.ep, TIMEOUT, &send)
                .unwrap_or_else(|e| panic!("{path:?}, {pieces} pieces: {e}"));
            assert_eq!(
                got,
                util::checksum(&payload),
                "{path:?}, {pieces} pieces: the guest's bytes after OK"
            );
            let served = vmm.finish();
            assert_eq!(served.request, b"CONNECT 5000\n", "{path:?}");
            assert_eq!(served.received, util::checksum(&send), "{path:?}");
        }
    }
}

#[test]
fn hybrid_garbage_reply_is_malformed() {
    for path in PATHS {
        let (err, ep) = connect_err(path, Reply::Raw(b"HELLO there\n".to_vec()));
        assert_handshake_error(&err, &ep, HandshakeErrorKind::Malformed);
        let (err, ep) = connect_err(path, Reply::Raw(b"OK 12x\n".to_vec()));
        assert_handshake_error(&err, &ep, HandshakeErrorKind::Malformed);
    }
}

#[test]
fn hybrid_reply_without_newline_then_eof_is_malformed() {
    for path in PATHS {
        let (err, ep) = connect_err(path, Reply::Raw(b"OK 12".to_vec()));
        assert_handshake_error(&err, &ep, HandshakeErrorKind::Malformed);
        assert!(err.to_string().contains("OK 12"), "{err}");
    }
}

#[test]
fn hybrid_eof_before_ok_is_refused() {
    for path in PATHS {
        // As Firecracker does with no guest listener: reads the request, closes.
        let (err, ep) = connect_err(path, Reply::Raw(Vec::new()));
        assert_handshake_error(&err, &ep, HandshakeErrorKind::Refused);
        // Closed with the request unread: the client may see a reset; still a refusal.
        let (err, ep) = connect_err(path, Reply::CloseUnread);
        assert_handshake_error(&err, &ep, HandshakeErrorKind::Refused);
    }
}

#[test]
fn hybrid_long_reply_is_oversized() {
    for path in PATHS {
        // Held open: the bound, not an EOF, ends the handshake.
        let long = [b"OK ".as_slice(), &[b'1'; 200]].concat();
        let (err, ep) = connect_err(path, Reply::RawHold(long));
        assert_handshake_error(&err, &ep, HandshakeErrorKind::Oversized);
    }
}

#[test]
fn hybrid_silent_vmm_times_out_at_the_deadline() {
    for path in PATHS {
        let vmm = FakeVmm::start(Reply::RawHold(Vec::new()));
        let err = exchange(path, &vmm.ep, Duration::from_millis(300), b"x")
            .expect_err("a VMM that never answers");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{path:?}: {err}");
        assert_eq!(err.endpoint(), Some(&vmm.ep), "{path:?}: {err}");
        if path == Path::EpollPoll {
            // No deadline in the library here: the test's loop timed out, while
            // connect_result said WouldBlock.
            assert_eq!(err.op(), "test connect loop");
        } else {
            assert_eq!(err.op(), "handshake", "{path:?}: {err}");
            assert!(err.to_string().contains("timed out"), "{path:?}: {err}");
        }
        assert_eq!(vmm.finish().request, b"CONNECT 5000\n", "{path:?}");
    }
}

#[test]
fn hybrid_missing_socket_is_enoent() {
    let dir = util::TempDir::new();
    let ep: Endpoint = format!("hybrid:{}/none.sock:{PORT}", dir.0.display())
        .parse()
        .unwrap();
    for path in PATHS {
        let err = exchange(path, &ep, TIMEOUT, b"x").expect_err("no socket file");
        assert_eq!(err.op(), "connect", "{path:?}: {err}");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{path:?}: {err}");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{path:?}: {err}");
        assert_eq!(err.endpoint(), Some(&ep), "{path:?}: {err}");
    }
}
