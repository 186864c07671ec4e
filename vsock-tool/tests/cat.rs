//! `vsock-tool cat` on the host: stdin to the socket and the socket to stdout with
//! half-close both ways, `--listen`, `--exec`, and the exit status saying how it ended.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::process::{Child, Command, Stdio};
use std::thread;

use support::{TempDir, BIN, WATCHDOG};
use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::Endpoint;

/// Starts `vsock-tool cat ARGS` with piped stdio.
fn cat(args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("cat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Feeds `input` to the child's stdin (then EOF) and collects its stdout and exit code.
fn finish(mut child: Child, input: Vec<u8>) -> (Vec<u8>, Option<i32>) {
    let mut stdin = child.stdin.take().unwrap();
    let w = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let r = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let status = support::wait_child(&mut child);
    w.join().unwrap();
    (r.join().unwrap(), status.code())
}

/// Waits for `cat --listen`'s `listening on` line; returns the endpoint.
fn listening(child: &mut Child) -> Endpoint {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    line.strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("not a listening line: {line:?}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn cat_connects_and_passes_half_close_both_ways() {
    let dir = TempDir::new();
    let reply_len = 1 << 20;
    let (ep, got) = support::request_server(&dir.unix("t"), reply_len);
    let seed = 5u64;
    let mut data = support::pattern(9, 3 << 20);
    data[..8].copy_from_slice(&seed.to_le_bytes());
    let (out, code) = finish(cat(&[&ep.to_string()]), data.clone());
    assert_eq!(code, Some(0));
    assert_eq!(out.len(), reply_len);
    assert_eq!(
        support::checksum(&out),
        support::checksum(&support::pattern(seed, reply_len))
    );
    let r = got.recv_timeout(WATCHDOG).unwrap();
    assert_eq!((r.len, r.sum), (data.len(), support::checksum(&data)));
}

#[test]
fn cat_listen_serves_one_connection() {
    let dir = TempDir::new();
    let mut child = cat(&["--listen", &dir.unix("l").to_string()]);
    let ep = listening(&mut child);
    let data = support::pattern(3, 500_000);
    let client = thread::spawn(move || {
        let s = Stream::connect(&ep).unwrap();
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        // cat's stdin first, to its EOF (its SHUT_WR); then ours: our EOF ends cat, and
        // whatever of its stdin were still unsent would be dropped.
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        (&s).write_all(b"from the client").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        got
    });
    let (out, code) = finish(child, data.clone());
    assert_eq!(code, Some(0));
    assert_eq!(out, b"from the client");
    assert_eq!(
        support::checksum(&client.join().unwrap()),
        support::checksum(&data)
    );
}

#[test]
fn cat_exec_wires_the_child_and_exits_with_its_status() {
    let dir = TempDir::new();
    let mut child = cat(&[
        "--listen",
        &dir.unix("x").to_string(),
        "--exec",
        "tr a-z A-Z; exit 7",
    ]);
    let ep = listening(&mut child);
    let s = Stream::connect(&ep).unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    (&s).write_all(b"hello").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    assert_eq!(got, b"HELLO");
    let (_, code) = finish(child, Vec::new());
    assert_eq!(code, Some(7), "the child's status");
}

#[test]
fn cat_exits_3_when_the_peer_resets() {
    let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
    let ep = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        let mut b = [0u8; 4];
        (&s).read_exact(&mut b).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        // Unread bytes and linger 0: a reset.
    });
    let mut child = cat(&[&ep.to_string()]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"abcdefgh").unwrap();
    server.join().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = support::wait_child(&mut child);
    drop(stdin);
    assert_eq!(status.code(), Some(3), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("socket: ") && err.contains("reset"), "{err}");
}
