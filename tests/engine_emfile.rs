//! Accepting when the process is out of fds: the multishot accept fails with `EMFILE`. The
//! listener then waits a moment (50 ms) before accepting again instead of re-arming into the
//! same failure at once (a busy loop; its absence is not asserted, as that would need
//! timing), and serves the connection once fds are free again. Its own binary: it lowers the
//! process's `RLIMIT_NOFILE`.

mod engine_support;
mod util;

use std::net::TcpStream;

use engine_support::{echo_over, wait_until, Echo};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::Engine;
use uring_vsock::Endpoint;
use util::open_fds;

fn set_nofile_soft(n: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit through valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur;
        lim.rlim_cur = n;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

#[test]
fn engine_accept_recovers_after_emfile() {
    util::fds_unchanged(|| {
        let e = Engine::builder().workers(1).build().unwrap();
        // Take every fd left under a lowered limit, then give back one for the listener and one
        // for the client. The kernel reads the limit when an accept is submitted, so the listener
        // is made (and its accept armed) after lowering it; the client's handshake completes in
        // the kernel, and the engine's accept of it finds no fd.
        let old = set_nofile_soft(open_fds() as u64 + 8);
        let mut hogs = Vec::new();
        while let Ok(f) = std::fs::File::open("/dev/null") {
            hogs.push(f);
            assert!(hogs.len() < 64, "the fd limit does not bite");
        }
        hogs.pop();
        let ep = e
            .listen(&"tcp:127.0.0.1:0".parse().unwrap(), |_| Echo::new())
            .unwrap();
        let Endpoint::Tcp(addr) = &ep else {
            unreachable!()
        };
        hogs.pop();
        let client = TcpStream::connect(addr).unwrap();
        // Wait until accept has failed, backed off and failed again.
        wait_until("accept to fail and back off twice", || {
            e.stats().accept_backoffs >= 2
        });
        assert_eq!(e.stats().accepted, 0);
        drop(hogs);
        set_nofile_soft(old);
        // The backoff ends, accept is re-armed and takes the waiting connection: it echoes.
        echo_over(Stream::from(std::os::fd::OwnedFd::from(client)), 5, 1 << 20);
        let s = e.stats();
        assert_eq!(s.accepted, 1, "{s:?}");
        assert!(s.accept_errors >= s.accept_backoffs, "{s:?}");
    });
}
