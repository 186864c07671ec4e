//! Tests of the blocking path's own API beyond the shared contract: fd hygiene, socket
//! activation, timeouts, vectored I/O, cloning; and vsock options and the local CID.

mod util;

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::{Endpoint, VsockAddr, VsockOptions};
use util::activation::{assert_refused, inherited_listener, not_listeners};
use util::{bind_endpoint, connect_endpoint, is_cloexec, pattern, TempDir, Transport};

fn unix_pair(dir: &TempDir) -> (Listener, Stream, Stream) {
    let l = Listener::bind(&bind_endpoint(Transport::Unix, dir)).unwrap();
    let c = Stream::connect(&l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (l, c, s)
}

#[test]
fn every_fd_is_close_on_exec() {
    let dir = TempDir::new();
    let (l, c, s) = unix_pair(&dir);
    assert!(is_cloexec(&l), "listener");
    assert!(is_cloexec(&c), "connected");
    assert!(is_cloexec(&s), "accepted");
    assert!(is_cloexec(&c.try_clone().unwrap()), "cloned stream");
    assert!(is_cloexec(&l.try_clone().unwrap()), "cloned listener");
    let timed = Stream::connect_timeout(&l.local_addr().unwrap(), Duration::from_secs(5)).unwrap();
    assert!(is_cloexec(&timed), "connected with a timeout");
}

/// Connects to the adopted listener `l` (at `ep`) and checks that the accepted stream gets
/// the client's bytes.
fn accepts_on(l: &Listener, ep: &Endpoint) {
    let mut c = Stream::connect(&connect_endpoint(ep)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    c.write_all(b"activated").unwrap();
    let mut buf = [0; 9];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"activated", "{ep}");
}

#[test]
fn from_fd_adopts_unix_tcp_and_vsock_listeners() {
    let dir = TempDir::new();
    for t in [Transport::Unix, Transport::Tcp, Transport::Vsock] {
        let (fd, ep) = inherited_listener(t, &dir);
        let l = Listener::from_fd(fd).unwrap();
        assert_eq!(l.local_addr().unwrap(), ep, "{t:?}");
        // vsock accepts only in the VM: see vsock_adopted_listener_accepts.
        if t != Transport::Vsock {
            accepts_on(&l, &ep);
        }
    }
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn vsock_adopted_listener_accepts() {
    let dir = TempDir::new();
    let (fd, ep) = inherited_listener(Transport::Vsock, &dir);
    accepts_on(&Listener::from_fd(fd).unwrap(), &ep);
}

#[test]
fn from_fd_refuses_what_is_not_a_listening_stream_socket() {
    let dir = TempDir::new();
    for (what, fd, want) in not_listeners(&dir) {
        let err = Listener::from_fd(fd).map(drop).unwrap_err();
        assert_refused(what, &err, want);
    }
}

#[test]
fn bind_errors_name_the_endpoint() {
    let dir = TempDir::new();
    let (l, _c, _s) = unix_pair(&dir);
    let ep = l.local_addr().unwrap();
    let err = Listener::bind(&ep).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
    assert_eq!(
        err.to_string(),
        format!("bind {ep}: Address already in use (os error 98)")
    );
    let missing_dir: Endpoint = "unix:/nonexistent-dir/x.sock".parse().unwrap();
    let err = Listener::bind(&missing_dir).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bind unix:/nonexistent-dir/x.sock: "),
        "{err}"
    );
}

#[test]
fn incoming_yields_each_connection() {
    let dir = TempDir::new();
    let l = Listener::bind(&bind_endpoint(Transport::Unix, &dir)).unwrap();
    let ep = l.local_addr().unwrap();
    let clients: Vec<Stream> = (0..3).map(|_| Stream::connect(&ep).unwrap()).collect();
    for (i, mut c) in clients.into_iter().enumerate() {
        c.write_all(&[i as u8]).unwrap();
    }
    let mut seen: Vec<u8> = l
        .incoming()
        .take(3)
        .map(|s| {
            let mut b = [0];
            s.unwrap().read_exact(&mut b).unwrap();
            b[0]
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
}

#[test]
fn nonblocking_accept_and_read_would_block() {
    let dir = TempDir::new();
    let (l, c, _s) = unix_pair(&dir);
    l.set_nonblocking(true).unwrap();
    let err = l.accept().map(drop).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    c.set_nonblocking(true).unwrap();
    let err = (&c).read(&mut [0; 4]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn read_timeout_expires_and_zero_is_rejected() {
    let dir = TempDir::new();
    let (_l, mut c, _s) = unix_pair(&dir);
    assert_eq!(c.read_timeout().unwrap(), None);
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(20)));
    assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_secs(3)));
    let err = c.read(&mut [0; 4]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    let err = c.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = c.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = Stream::connect_timeout(&_l.local_addr().unwrap(), Duration::ZERO).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn vectored_io_moves_every_slice() {
    let dir = TempDir::new();
    let (_l, mut c, mut s) = unix_pair(&dir);
    let (a, b) = (pattern(7, 1000), pattern(8, 3000));
    let n = c
        .write_vectored(&[IoSlice::new(&a), IoSlice::new(&b)])
        .unwrap();
    assert_eq!(n, 4000);
    let (mut x, mut y) = (vec![0; 2500], vec![0; 1500]);
    let mut got = 0;
    while got < 4000 {
        let (head, tail) = (x.len().min(got), got.saturating_sub(x.len()));
        got += s
            .read_vectored(&mut [
                IoSliceMut::new(&mut x[head..]),
                IoSliceMut::new(&mut y[tail..]),
            ])
            .unwrap();
    }
    let joined: Vec<u8> = x.iter().chain(&y).copied().collect();
    let sent: Vec<u8> = a.iter().chain(&b).copied().collect();
    assert_eq!(joined, sent);
}

#[test]
fn clone_shares_the_connection_and_fd_conversions_round_trip() {
    let dir = TempDir::new();
    let (_l, c, mut s) = unix_pair(&dir);
    let mut writer = c.try_clone().unwrap();
    assert_ne!(writer.as_raw_fd(), c.as_raw_fd());
    writer.write_all(b"from clone").unwrap();
    let mut buf = [0; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from clone");

    let raw = c.into_raw_fd();
    // SAFETY: raw came from into_raw_fd just above and has no other owner.
    let mut back = unsafe { Stream::from_raw_fd(raw) };
    back.write_all(b"raw").unwrap();
    let owned: OwnedFd = back.into();
    let mut again = Stream::from(owned);
    again.write_all(b"owned").unwrap();
    let mut buf = [0; 8];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"rawowned");
}

#[test]
fn vsock_options_round_trip_on_an_unconnected_socket() {
    // Creating a vsock socket and setting options sends nothing: safe on the host.
    let socket = match Socket::new(Domain::VSOCK, Type::STREAM, None) {
        Ok(s) => s,
        Err(e) => panic!("AF_VSOCK sockets cannot be created here: {e}"),
    };
    socket.set_vsock_buffer_max_size(1 << 20).unwrap();
    socket.set_vsock_buffer_size(512 * 1024).unwrap();
    assert_eq!(socket.vsock_buffer_size().unwrap(), 512 * 1024);
    socket.set_vsock_buffer_min_size(4096).unwrap();
    assert_eq!(socket.vsock_buffer_min_size().unwrap(), 4096);
    assert_eq!(socket.vsock_buffer_max_size().unwrap(), 1 << 20);
    socket
        .set_vsock_connect_timeout(Duration::from_millis(1500))
        .unwrap();
    assert_eq!(
        socket.vsock_connect_timeout().unwrap(),
        Duration::from_millis(1500)
    );
    let unix = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    assert!(
        unix.vsock_buffer_size().is_err(),
        "vsock options on a unix socket"
    );
}

/// Binds a vsock stream socket to `cid` on any port: binding sends nothing, and the kernel
/// lets a socket bind only to a CID of this machine (or `CID_ANY`).
fn bind_vsock(cid: u32) -> io::Result<()> {
    let socket = Socket::new(Domain::VSOCK, Type::STREAM, None)?;
    let addr = VsockAddr::new(cid, VsockAddr::PORT_ANY);
    socket.bind(&Endpoint::Vsock(addr).to_sock_addr()?)
}

/// Whether a transport that gives this machine a CID of its own is loaded: a guest's
/// (virtio, VMCI, Hyper-V) or a host's (vhost). Without one the kernel reports `CID_ANY`.
fn has_cid_transport() -> bool {
    [
        "vmw_vsock_virtio_transport",
        "vmw_vsock_vmci_transport",
        "hv_sock",
        "vhost_vsock",
    ]
    .iter()
    .any(|m| std::path::Path::new("/sys/module").join(m).exists())
}

#[test]
fn local_cid_is_a_cid_this_machine_binds_or_the_error_opening_dev_vsock() {
    check_local_cid();
}

/// Checks `local_cid` against what the environment says, found without the library.
fn check_local_cid() {
    let result = uring_vsock::local_cid();
    match std::fs::File::open("/dev/vsock") {
        Err(open) => {
            let e = result.expect_err("local_cid succeeded though /dev/vsock cannot be opened");
            assert_eq!(e.raw_os_error(), open.raw_os_error(), "{e}");
            assert_eq!(e.to_string(), format!("local_cid /dev/vsock: {open}"));
        }
        Ok(_) => {
            let cid = result.expect("/dev/vsock opens: local_cid must succeed");
            if has_cid_transport() {
                assert!(
                    cid > VsockAddr::CID_LOCAL && cid != VsockAddr::CID_ANY,
                    "{cid}"
                );
                bind_vsock(cid).expect("the local CID is bindable");
                // The bind is a real test: a CID of another machine is refused.
                let other = if cid == u32::MAX - 1 { 3 } else { cid + 1 };
                let err = bind_vsock(other).expect_err("bound another machine's CID");
                assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{err}");
            } else {
                // The kernel falls back to the loopback transport's CID (1), then to CID_ANY
                // (af_vsock.c, IOCTL_VM_SOCKETS_GET_LOCAL_CID).
                let loopback = std::path::Path::new("/sys/module/vsock_loopback").exists();
                let want = if loopback {
                    VsockAddr::CID_LOCAL
                } else {
                    VsockAddr::CID_ANY
                };
                assert_eq!(
                    cid, want,
                    "the CID with no guest or host transport (loopback {loopback})"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn vsock_vm_has_loopback_and_local_cid_agrees_with_its_transports() {
    util::require_vm();
    assert!(uring_vsock::loopback_available());
    bind_vsock(VsockAddr::CID_LOCAL).expect("loopback makes CID 1 local");
    // The VM has only the loopback transport: its CID (1) is the local CID.
    assert_eq!(uring_vsock::local_cid().unwrap(), VsockAddr::CID_LOCAL);
    check_local_cid();
}

/// `SO_VM_SOCKETS_BUFFER_SIZE` is the credit a vsock peer gets: against a reader that does
/// not read, a nonblocking writer queues exactly the buffer size before `WouldBlock`, 16 KiB
/// with a small buffer and 1 MiB with a large one (set on both ends: newer kernels also cap a
/// sender's credit to its own buffer). The queued bytes then arrive intact.
#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn vsock_buffer_size_bounds_what_a_writer_can_queue() {
    let dir = TempDir::new();
    let l = Listener::bind(&bind_endpoint(Transport::Vsock, &dir)).unwrap();
    let ep = connect_endpoint(&l.local_addr().unwrap());
    let mut queued = Vec::new();
    for size in [16 * 1024u64, 1 << 20] {
        let mut c = Stream::connect(&ep).unwrap();
        let (mut s, _) = l.accept().unwrap();
        for end in [&c, &s] {
            end.set_vsock_buffer_max_size(size.max(256 * 1024)).unwrap();
            end.set_vsock_buffer_size(size).unwrap();
            assert_eq!(end.vsock_buffer_size().unwrap(), size);
        }
        // Every vsock packet carries its sender's buffer size: one byte from the reader brings
        // the writer its new credit before it writes.
        s.write_all(b"s").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        c.set_nonblocking(true).unwrap();
        let n = util::sockopt::fill_until_would_block(&c, 4096);
        let mut got = vec![1u8; n];
        s.read_exact(&mut got).unwrap();
        assert!(
            got.iter().all(|&b| b == 0),
            "size {size}: the bytes changed"
        );
        assert_eq!(
            util::sockopt::peek_len(&s),
            0,
            "size {size}: more than was queued"
        );
        queued.push((size, n));
    }
    assert_eq!(
        queued,
        [(16 * 1024, 16 * 1024), (1 << 20, 1 << 20)],
        "(buffer size, bytes queued before WouldBlock)"
    );
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn vsock_sequential_connections_each_get_their_own_data() {
    let dir = TempDir::new();
    let l = Listener::bind(&bind_endpoint(Transport::Vsock, &dir)).unwrap();
    let ep = connect_endpoint(&l.local_addr().unwrap());
    for i in 0..50u64 {
        let mut c = Stream::connect(&ep).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let data = pattern(i, 4096);
        c.write_all(&data).unwrap();
        drop(c);
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(
            util::checksum(&got),
            util::checksum(&data),
            "connection {i}"
        );
    }
}

#[test]
#[ignore = "needs vsock loopback; run tools/vm-test"]
fn vsock_connect_timeout_raises_the_kernel_connect_timeout_to_a_longer_deadline() {
    let dir = TempDir::new();
    let l = Listener::bind(&bind_endpoint(Transport::Vsock, &dir)).unwrap();
    let ep = connect_endpoint(&l.local_addr().unwrap());
    let kernel_default = Duration::from_secs(2);
    // Both paths: a deadline past the kernel's 2 s is what the kernel now waits; a shorter
    // one leaves the kernel's (our poll ends the wait first).
    for (deadline, want) in [
        (Duration::from_secs(30), Duration::from_secs(30)),
        (Duration::from_secs(1), kernel_default),
    ] {
        let c = Stream::connect_timeout(&ep, deadline).unwrap();
        assert_eq!(c.vsock_connect_timeout().unwrap(), want, "blocking");
        let e = uring_vsock::epoll::Stream::connect_timeout(&ep, deadline).unwrap();
        assert_eq!(e.vsock_connect_timeout().unwrap(), want, "epoll");
        let _ = (l.accept().unwrap(), l.accept().unwrap());
    }
}
