//! The thin layer of raw calls that `socket2` does not cover: `sockaddr_vm` with flags, the
//! `/dev/vsock` local-CID ioctl, and `AF_VSOCK`-level socket options.

use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use socket2::{SockAddr, SockAddrStorage};

use crate::VsockAddr;

/// Turns a `-1` return into the thread's last OS error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `sockaddr_vm` for `addr`, flags included (`svm_flags` is the first byte after `svm_cid`,
/// which libc still calls `svm_zero[0]`).
pub(crate) fn vsock_sock_addr(addr: &VsockAddr) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_vm is a sockaddr type of this platform; storage is zeroed and large
    // enough for it.
    let vm = unsafe { storage.view_as::<libc::sockaddr_vm>() };
    vm.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    vm.svm_cid = addr.cid();
    vm.svm_port = addr.port();
    vm.svm_zero[0] = addr.flags();
    let len = mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
    // SAFETY: the first `len` bytes of storage are an initialised sockaddr_vm.
    unsafe { SockAddr::new(storage, len) }
}

/// The vsock address in `addr`, flags included, if it is `AF_VSOCK`.
pub(crate) fn vsock_addr_of(addr: &SockAddr) -> Option<VsockAddr> {
    if addr.family() != libc::AF_VSOCK as libc::sa_family_t
        || (addr.len() as usize) < mem::size_of::<libc::sockaddr_vm>()
    {
        return None;
    }
    // SAFETY: the family is AF_VSOCK and the length covers a sockaddr_vm, so the storage holds
    // one; the storage is aligned for every sockaddr type.
    let vm = unsafe { &*(addr.as_ptr() as *const libc::sockaddr_vm) };
    Some(VsockAddr::new(vm.svm_cid, vm.svm_port).with_flags(vm.svm_zero[0]))
}

/// `IOCTL_VM_SOCKETS_GET_LOCAL_CID`, `_IO(7, 0xb9)`: not exported by libc.
const IOCTL_VM_SOCKETS_GET_LOCAL_CID: libc::c_ulong = 0x7b9;

/// Asks `/dev/vsock` for this machine's CID.
pub(crate) fn local_cid(dev: &File) -> io::Result<u32> {
    let mut cid: libc::c_uint = 0;
    // SAFETY: the ioctl writes one c_uint through the pointer, which is valid for that write.
    check(unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            IOCTL_VM_SOCKETS_GET_LOCAL_CID as _,
            &mut cid,
        )
    })?;
    Ok(cid)
}

// AF_VSOCK-level option names from <linux/vm_sockets.h>; libc does not export them.
pub(crate) const SO_VM_SOCKETS_BUFFER_SIZE: libc::c_int = 0;
pub(crate) const SO_VM_SOCKETS_BUFFER_MIN_SIZE: libc::c_int = 1;
pub(crate) const SO_VM_SOCKETS_BUFFER_MAX_SIZE: libc::c_int = 2;
/// The 64-bit `struct __kernel_sock_timeval` variant (`SO_VM_SOCKETS_CONNECT_TIMEOUT_NEW`).
const SO_VM_SOCKETS_CONNECT_TIMEOUT_NEW: libc::c_int = 8;

/// Reads an `AF_VSOCK`-level `u64` option.
pub(crate) fn get_vsock_u64(fd: impl AsFd, name: libc::c_int) -> io::Result<u64> {
    let mut value: u64 = 0;
    let mut len = mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes passed; the kernel writes at most
    // `len` bytes.
    check(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::AF_VSOCK,
            name,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Sets an `AF_VSOCK`-level `u64` option.
pub(crate) fn set_vsock_u64(fd: impl AsFd, name: libc::c_int, value: u64) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, which outlives the call.
    check(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::AF_VSOCK,
            name,
            (&value as *const u64).cast(),
            mem::size_of::<u64>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `struct __kernel_sock_timeval`: 64-bit seconds and microseconds on every architecture.
#[repr(C)]
#[derive(Default)]
struct SockTimeval {
    tv_sec: i64,
    tv_usec: i64,
}

/// Reads `SO_VM_SOCKETS_CONNECT_TIMEOUT`.
pub(crate) fn get_vsock_connect_timeout(fd: impl AsFd) -> io::Result<Duration> {
    let mut tv = SockTimeval::default();
    let mut len = mem::size_of::<SockTimeval>() as libc::socklen_t;
    // SAFETY: tv and len are valid for writes of the sizes passed.
    check(unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::AF_VSOCK,
            SO_VM_SOCKETS_CONNECT_TIMEOUT_NEW,
            (&mut tv as *mut SockTimeval).cast(),
            &mut len,
        )
    })?;
    Ok(Duration::new(tv.tv_sec as u64, (tv.tv_usec * 1000) as u32))
}

/// Sets `SO_VM_SOCKETS_CONNECT_TIMEOUT`.
pub(crate) fn set_vsock_connect_timeout(fd: impl AsFd, timeout: Duration) -> io::Result<()> {
    let tv = SockTimeval {
        tv_sec: i64::try_from(timeout.as_secs())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "timeout too large"))?,
        tv_usec: i64::from(timeout.subsec_micros()),
    };
    // SAFETY: the pointer and length describe `tv`, which outlives the call.
    check(unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::AF_VSOCK,
            SO_VM_SOCKETS_CONNECT_TIMEOUT_NEW,
            (&tv as *const SockTimeval).cast(),
            mem::size_of::<SockTimeval>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `accept4(2)` with `flags` (`SOCK_CLOEXEC`, and `SOCK_NONBLOCK` when asked), so the new fd
/// never exists without close-on-exec.
pub(crate) fn accept4(
    fd: impl AsFd,
    flags: libc::c_int,
) -> io::Result<(std::os::fd::OwnedFd, SockAddr)> {
    use std::os::fd::FromRawFd;
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: accept4 writes at most `*len` bytes of address into the zeroed storage that
    // try_init provides, and sets `*len` to the address length.
    let (new_fd, addr) = unsafe {
        SockAddr::try_init(|storage, len| check(libc::accept4(raw, storage.cast(), len, flags)))
    }?;
    // SAFETY: accept4 returned a new fd that nothing else owns.
    Ok((unsafe { std::os::fd::OwnedFd::from_raw_fd(new_fd) }, addr))
}

/// `recv(2)` with `MSG_PEEK`: copies queued bytes into `buf` without consuming them.
pub(crate) fn peek(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, valid for writes for the whole call.
    let n = unsafe {
        libc::recv(
            fd.as_fd().as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The events `fd` has now, of `events` plus the ones `poll(2)` always reports (`POLLHUP`,
/// `POLLERR`, `POLLNVAL`): a poll that does not wait.
#[cfg(feature = "uring")]
pub(crate) fn poll_now(fd: impl AsFd, events: libc::c_short) -> io::Result<libc::c_short> {
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `p` is one valid pollfd, alive for the call; nfds is 1; a zero timeout.
    check(unsafe { libc::poll(&mut p, 1, 0) })?;
    Ok(p.revents)
}
