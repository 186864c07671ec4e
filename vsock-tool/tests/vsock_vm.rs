//! `cat` and `proxy` over real vsock, in the test VM only (`tools/vm-test -p vsock-tool`):
//! the loopback transport, CID 1. On the host these are ignored: a vsock connect there
//! would leave the machine.

mod support;

use support::{Proxy, TempDir, WATCHDOG};
use uring_vsock::{Endpoint, VsockAddr};

fn any(port: u32) -> Endpoint {
    Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, port))
}

fn local(port: u32) -> Endpoint {
    Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, port))
}

#[test]
#[ignore = "vsock traffic: runs in the VM (tools/vm-test -p vsock-tool)"]
fn proxy_vsock_listener_to_unix_target() {
    support::require_vm();
    let dir = TempDir::new();
    let reply_len = 2 << 20;
    let (target, got) = support::duplex_server(&dir.unix("t"), reply_len);
    let proxy = Proxy::start(&any(7001), &target, &["--workers", "2"]);
    assert!(proxy.ep.is_vsock(), "{}", proxy.ep);
    for (seed, len) in [(1u64, 8usize), (2, 3 << 20)] {
        support::exchange(&local(7001), seed, len, reply_len, &got);
    }
}

#[test]
#[ignore = "vsock traffic: runs in the VM (tools/vm-test -p vsock-tool)"]
fn proxy_tcp_listener_to_vsock_target() {
    support::require_vm();
    let reply_len = 1 << 20;
    let (_bound, got) = support::duplex_server(&any(7002), reply_len);
    let proxy = Proxy::start(&"tcp:127.0.0.1:0".parse().unwrap(), &local(7002), &[]);
    for (seed, len) in [(3u64, 100usize), (4, 2 << 20)] {
        support::exchange(&proxy.ep, seed, len, reply_len, &got);
    }
}

#[test]
#[ignore = "vsock traffic: runs in the VM (tools/vm-test -p vsock-tool)"]
fn cat_over_vsock() {
    support::require_vm();
    let reply_len = 1 << 20;
    let (_bound, got) = support::request_server(&any(7003), reply_len);
    let seed = 11u64;
    let mut data = support::pattern(12, 2 << 20);
    data[..8].copy_from_slice(&seed.to_le_bytes());
    let mut child = std::process::Command::new(support::BIN)
        .args(["cat", &local(7003).to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &sent).unwrap());
    let mut out = child.stdout.take().unwrap();
    let r = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).unwrap();
        v
    });
    let status = support::wait_child(&mut child);
    w.join().unwrap();
    let reply = r.join().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(reply.len(), reply_len);
    assert_eq!(
        support::checksum(&reply),
        support::checksum(&support::pattern(seed, reply_len))
    );
    let rep = got.recv_timeout(WATCHDOG).unwrap();
    assert_eq!((rep.len, rep.sum), (data.len(), support::checksum(&data)));
}
