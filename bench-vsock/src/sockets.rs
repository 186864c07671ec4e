//! Socket options of a run that every backend applies on both ends: the vsock buffer size
//! (`--vsock-buffer-size`) and the socket type (`--seqpacket`). Setting an option sends
//! nothing.

use std::os::fd::BorrowedFd;

use uring_vsock::{Endpoint, VsockOptions};

use crate::error::{Context, Result};

/// The smallest `--vsock-buffer-size`: the kernel's default minimum
/// (`SO_VM_SOCKETS_BUFFER_MIN_SIZE`, 128 bytes); it silently raises anything smaller.
pub const MIN_VSOCK_BUFFER: u64 = 128;
/// The largest `--vsock-buffer-size`, 1 GiB. The kernel takes any `u64`, but virtio's
/// transport clamps the buffer to `u32::MAX` (`VIRTIO_VSOCK_MAX_BUF_SIZE`, the width of the
/// header's credit field), and the buffer is a credit the peer may fill with queued data,
/// so 1 GiB per socket is past anything a run can use.
pub const MAX_VSOCK_BUFFER: u64 = 1 << 30;
/// The largest message of a `--seqpacket` run, 64 KiB: one receive buffer of every
/// backend (and one engine send buffer) holds a whole message, and both families carry it
/// at their default buffer sizes (unix `SO_SNDBUF` − 32, vsock 256 KiB).
pub const MAX_SEQPACKET_MESSAGE: usize = 64 * 1024;

/// The socket options of a run, the same on client and server sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketOpts {
    /// `SO_VM_SOCKETS_BUFFER_SIZE` (after raising `SO_VM_SOCKETS_BUFFER_MAX_SIZE` to it) of
    /// vsock sockets; `None` leaves the kernel's default (256 KiB).
    pub vsock_buffer: Option<u64>,
    /// `SOCK_SEQPACKET` sockets instead of `SOCK_STREAM` (`--seqpacket`): each protocol
    /// unit (the header, a request, its echo) is one message.
    pub seqpacket: bool,
}

impl SocketOpts {
    /// Sets these options on `fd`, a socket (connected or not, or a listener) of `ep`:
    /// the vsock buffer on vsock endpoints only (the settings refuse it for others).
    ///
    /// # Errors
    ///
    /// The kernel refused an option; the error names it, the value and the endpoint.
    pub fn apply(&self, fd: BorrowedFd<'_>, ep: &Endpoint) -> Result<()> {
        if let (Some(n), Endpoint::Vsock(_)) = (self.vsock_buffer, ep) {
            // The max first: the kernel clamps the size to it (256 KiB by default).
            fd.set_vsock_buffer_max_size(n).context(format!(
                "setting SO_VM_SOCKETS_BUFFER_MAX_SIZE to {n} on {ep}"
            ))?;
            fd.set_vsock_buffer_size(n)
                .context(format!("setting SO_VM_SOCKETS_BUFFER_SIZE to {n} on {ep}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use socket2::{Domain, Socket, Type};
    use uring_vsock::VsockAddr;

    use super::*;

    fn vsock_ep() -> Endpoint {
        Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, 1234))
    }

    // Creates an AF_VSOCK socket and sets options on it, never connecting or sending: safe
    // on the host (the name leaves out the word that marks tests for the VM).
    #[test]
    fn the_buffer_size_reaches_an_unconnected_socket_past_the_default_max() {
        let socket = Socket::new(Domain::VSOCK, Type::STREAM, None).expect("an AF_VSOCK socket");
        let before = socket.vsock_buffer_size().unwrap();
        let n = 4 << 20; // past the 256 KiB default max, so the max must be raised first
        assert_ne!(before, n);
        let opts = SocketOpts {
            vsock_buffer: Some(n),
            ..SocketOpts::default()
        };
        opts.apply(socket.as_fd(), &vsock_ep()).unwrap();
        assert_eq!(socket.vsock_buffer_max_size().unwrap(), n);
        assert_eq!(socket.vsock_buffer_size().unwrap(), n);
    }

    #[test]
    fn no_buffer_size_leaves_the_kernel_default() {
        let socket = Socket::new(Domain::VSOCK, Type::STREAM, None).expect("an AF_VSOCK socket");
        let before = socket.vsock_buffer_size().unwrap();
        SocketOpts::default()
            .apply(socket.as_fd(), &vsock_ep())
            .unwrap();
        assert_eq!(socket.vsock_buffer_size().unwrap(), before);
    }

    #[test]
    fn the_buffer_size_is_not_set_on_other_families() {
        // A unix socket would refuse the vsock option: apply must not try.
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        let opts = SocketOpts {
            vsock_buffer: Some(1 << 20),
            ..SocketOpts::default()
        };
        let ep = Endpoint::UnixAbstract(b"bench-vsock-sockets-test".to_vec());
        opts.apply(socket.as_fd(), &ep).unwrap();
        assert!(socket.vsock_buffer_size().is_err());
    }
}
