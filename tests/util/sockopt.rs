//! Raw socket probes the vsock parity tests read the kernel through: `SO_RCVLOWAT`,
//! `SIOCOUTQ`, a nonblocking peek, a one-shot `poll(2)`, and filling a nonblocking writer
//! until the kernel refuses more.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Instant;

use super::WATCHDOG;

/// Sets `SO_RCVLOWAT` on `fd`.
pub fn set_rcvlowat(fd: &impl AsFd, bytes: i32) {
    // SAFETY: setsockopt reads one c_int through a valid pointer of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVLOWAT {bytes}: {}", io::Error::last_os_error());
}

/// `SIOCOUTQ` of `fd`: what the kernel still holds of what was written (its meaning depends
/// on the family; see the tests).
pub fn outq(fd: &impl AsFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the valid pointer passed.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// How many bytes are readable on `fd` right now (up to 1 MiB), by a nonblocking peek that
/// consumes nothing; 0 when none.
pub fn peek_len(fd: &impl AsFd) -> usize {
    let mut buf = vec![0u8; 1 << 20];
    // SAFETY: recv writes at most buf.len() bytes into buf, which lives across the call.
    let n = unsafe {
        libc::recv(
            fd.as_fd().as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "peek: {e}");
        return 0;
    }
    n as usize
}

/// Waits (bounded by [`WATCHDOG`]) until a nonblocking peek on `fd` sees `want` bytes.
pub fn wait_peek_len(fd: &impl AsFd, want: usize, what: &str) {
    let start = Instant::now();
    loop {
        let n = peek_len(fd);
        if n == want {
            return;
        }
        assert!(
            n < want,
            "{what}: {n} bytes readable, more than the {want} sent"
        );
        assert!(
            start.elapsed() < WATCHDOG,
            "{what}: only {n} of {want} bytes arrived"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The `revents` of one `poll(2)` of `fd` for `events`, waiting at most `timeout_ms`.
pub fn poll_once(fd: &impl AsFd, events: i16, timeout_ms: i32) -> i16 {
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    assert!(n >= 0, "poll: {}", io::Error::last_os_error());
    p.revents
}

/// Writes `chunk`-sized pieces of zeros to a nonblocking `w` until it returns `WouldBlock`;
/// returns how many bytes it took. Fails on any other error, or past [`WATCHDOG`] (a writer
/// the kernel never stops).
pub fn fill_until_would_block(mut w: impl Write, chunk: usize) -> usize {
    let block = vec![0u8; chunk];
    let (start, mut total) = (Instant::now(), 0);
    loop {
        match w.write(&block) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("write after {total} bytes: {e}"),
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "the writer never blocked ({total} bytes queued)"
        );
    }
}
