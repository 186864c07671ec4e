//! [`VsockOptions`]: the `AF_VSOCK`-level socket options, on any socket of any path.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::sys;

/// vsock socket options, for every type that holds a socket fd (blocking and epoll streams
/// and listeners, or a raw [`std::os::fd::OwnedFd`]).
///
/// On a socket of another family each call fails with the kernel's error (`EOPNOTSUPP` or
/// `ENOPROTOOPT`). See `vsock(7)`.
///
/// # Examples
///
/// ```
/// use socket2::{Domain, Socket, Type};
/// use uring_vsock::VsockOptions;
///
/// // Setting options sends nothing: it is safe on any machine with AF_VSOCK.
/// let socket = Socket::new(Domain::VSOCK, Type::STREAM, None)?;
/// socket.set_vsock_buffer_size(128 * 1024)?; // clamped to [min, max] (max: 256 KiB by default)
/// assert_eq!(socket.vsock_buffer_size()?, 128 * 1024);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait VsockOptions: AsFd {
    /// `SO_VM_SOCKETS_BUFFER_SIZE`: the stream's buffer size in bytes.
    fn vsock_buffer_size(&self) -> io::Result<u64> {
        sys::get_vsock_u64(self, sys::SO_VM_SOCKETS_BUFFER_SIZE)
    }

    /// Sets `SO_VM_SOCKETS_BUFFER_SIZE`; the kernel clamps it to `[min, max]`.
    fn set_vsock_buffer_size(&self, bytes: u64) -> io::Result<()> {
        sys::set_vsock_u64(self, sys::SO_VM_SOCKETS_BUFFER_SIZE, bytes)
    }

    /// `SO_VM_SOCKETS_BUFFER_MIN_SIZE`.
    fn vsock_buffer_min_size(&self) -> io::Result<u64> {
        sys::get_vsock_u64(self, sys::SO_VM_SOCKETS_BUFFER_MIN_SIZE)
    }

    /// Sets `SO_VM_SOCKETS_BUFFER_MIN_SIZE`.
    fn set_vsock_buffer_min_size(&self, bytes: u64) -> io::Result<()> {
        sys::set_vsock_u64(self, sys::SO_VM_SOCKETS_BUFFER_MIN_SIZE, bytes)
    }

    /// `SO_VM_SOCKETS_BUFFER_MAX_SIZE`.
    fn vsock_buffer_max_size(&self) -> io::Result<u64> {
        sys::get_vsock_u64(self, sys::SO_VM_SOCKETS_BUFFER_MAX_SIZE)
    }

    /// Sets `SO_VM_SOCKETS_BUFFER_MAX_SIZE`.
    fn set_vsock_buffer_max_size(&self, bytes: u64) -> io::Result<()> {
        sys::set_vsock_u64(self, sys::SO_VM_SOCKETS_BUFFER_MAX_SIZE, bytes)
    }

    /// `SO_VM_SOCKETS_CONNECT_TIMEOUT`: how long a blocking `connect` waits (kernel default 2 s).
    fn vsock_connect_timeout(&self) -> io::Result<Duration> {
        sys::get_vsock_connect_timeout(self)
    }

    /// Sets `SO_VM_SOCKETS_CONNECT_TIMEOUT` (microsecond resolution).
    fn set_vsock_connect_timeout(&self, timeout: Duration) -> io::Result<()> {
        sys::set_vsock_connect_timeout(self, timeout)
    }
}

impl<T: AsFd + ?Sized> VsockOptions for T {}
