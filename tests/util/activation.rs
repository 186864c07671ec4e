//! Socket activation cases shared by the blocking, epoll and engine tests: listeners of every
//! family made without the library (as a service manager would pass them), and fds that must
//! be refused.

use std::os::fd::{AsRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use uring_vsock::{Endpoint, VsockAddr};

use super::{TempDir, Transport};

/// A listening stream socket of family `t`, made with socket2 only, and its bound endpoint.
/// vsock binds `CID_ANY` on a port the kernel picks: binding and listening send nothing, so
/// this is safe on the host (accepting needs a connect, which is not).
pub fn inherited_listener(t: Transport, dir: &TempDir) -> (OwnedFd, Endpoint) {
    let (domain, addr) = match t {
        Transport::Unix => {
            let path = dir.0.join(format!("inherited{}.sock", super::unique()));
            (Domain::UNIX, SockAddr::unix(path).unwrap())
        }
        Transport::Tcp => {
            let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
            (Domain::IPV4, any.into())
        }
        Transport::Vsock => {
            let any = VsockAddr::new(VsockAddr::CID_ANY, VsockAddr::PORT_ANY);
            (Domain::VSOCK, Endpoint::Vsock(any).to_sock_addr().unwrap())
        }
    };
    let socket = Socket::new(domain, Type::STREAM, None).unwrap();
    socket.bind(&addr).unwrap();
    socket.listen(8).unwrap();
    let local = Endpoint::from_sock_addr(&socket.local_addr().unwrap()).unwrap();
    (socket.into(), local)
}

/// How adopting a refused fd must fail.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// `InvalidInput`, with this in the message.
    Invalid(&'static str),
    /// This errno.
    Errno(i32),
}

/// Fds that are not listening stream sockets of a served family, what each is, and how its
/// adoption must fail: wrong type, wrong state and wrong family, for each family.
pub fn not_listeners(dir: &TempDir) -> Vec<(&'static str, OwnedFd, Refusal)> {
    use Refusal::{Errno, Invalid};
    const NOT_STREAM: Refusal = Invalid("not a stream socket");
    const NOT_LISTENING: Refusal = Invalid("not listening");
    let socket = |d: Domain, t: Type| Socket::new(d, t, None).unwrap();

    let seqpacket = socket(Domain::UNIX, Type::SEQPACKET);
    let path = dir.0.join(format!("seqpacket{}.sock", super::unique()));
    seqpacket.bind(&SockAddr::unix(path).unwrap()).unwrap();
    seqpacket.listen(8).unwrap();

    let tcp_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_client = std::net::TcpStream::connect(tcp_listener.local_addr().unwrap()).unwrap();
    let (unix_a, _unix_b) = std::os::unix::net::UnixStream::pair().unwrap();
    let file = std::fs::File::open("/proc/self/cmdline").unwrap();
    // A listening MPTCP socket (an inet stream socket that is not tcp), where the kernel has
    // MPTCP.
    let mptcp = Socket::new(
        Domain::IPV4,
        Type::STREAM,
        Some(Protocol::from(libc::IPPROTO_MPTCP)),
    )
    .ok()
    .filter(|s| {
        s.bind(&SockAddr::from(
            "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
        ))
        .and_then(|()| s.listen(8))
        .is_ok()
    });
    let mut fds = vec![
        (
            "a udp socket",
            socket(Domain::IPV4, Type::DGRAM).into(),
            NOT_STREAM,
        ),
        (
            "a unix datagram socket",
            socket(Domain::UNIX, Type::DGRAM).into(),
            NOT_STREAM,
        ),
        (
            "a listening unix seqpacket socket",
            seqpacket.into(),
            NOT_STREAM,
        ),
        ("a connected tcp stream", tcp_client.into(), NOT_LISTENING),
        ("a connected unix stream", unix_a.into(), NOT_LISTENING),
        (
            "an unbound tcp socket",
            socket(Domain::IPV4, Type::STREAM).into(),
            NOT_LISTENING,
        ),
        (
            "an unbound vsock socket",
            socket(Domain::VSOCK, Type::STREAM).into(),
            NOT_LISTENING,
        ),
        (
            "a netlink socket",
            socket(Domain::from(libc::AF_NETLINK), Type::DGRAM).into(),
            Invalid("not vsock, unix or tcp"),
        ),
        ("a file", file.into(), Errno(libc::ENOTSOCK)),
    ];
    if let Some(m) = mptcp {
        fds.push(("a listening mptcp socket", m.into(), Invalid("not tcp")));
    }
    fds
}

/// Asserts that adopting `what` failed as `want` says, with the operation named.
pub fn assert_refused(what: &str, err: &uring_vsock::Error, want: Refusal) {
    assert_eq!(err.op(), "adopt listener", "{what}: {err}");
    match want {
        Refusal::Invalid(why) => {
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidInput,
                "{what}: {err}"
            );
            assert!(err.to_string().contains(why), "{what}: {err}");
        }
        Refusal::Errno(errno) => assert_eq!(err.raw_os_error(), Some(errno), "{what}: {err}"),
    }
}

/// Sets or clears an fd's file status flag `flag` (`O_NONBLOCK`), as whoever passes a
/// listener may have left it.
pub fn set_status_flag(fd: &impl AsRawFd, flag: i32, on: bool) {
    // SAFETY: F_GETFL/F_SETFL read and write the fd's status flags; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        assert!(flags >= 0, "fcntl F_GETFL failed");
        let flags = if on { flags | flag } else { flags & !flag };
        assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags), 0);
    }
}

/// Whether an fd's file status flag `flag` is set.
pub fn has_status_flag(fd: &impl AsRawFd, flag: i32) -> bool {
    // SAFETY: F_GETFL reads the fd's status flags; no memory is passed.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "fcntl F_GETFL failed");
    flags & flag != 0
}

/// Clears close-on-exec, as an fd inherited across `exec` arrives.
pub fn clear_cloexec(fd: &impl AsRawFd) {
    // SAFETY: F_SETFD writes the fd's descriptor flags; no memory is passed.
    assert_eq!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) }, 0);
}
