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

/// A stdin that fails to read (here a directory: EISDIR) ends `cat` with status 4 and one
/// line naming the local stream, instead of waiting forever for a peer that waits for EOF.
#[test]
fn cat_with_a_broken_stdin_exits_4_instead_of_hanging() {
    let dir = TempDir::new();
    let l = Listener::bind(&dir.unix("d")).unwrap();
    let ep = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        // Waits for cat's EOF (an echo server would), then ends.
        let mut sink = Vec::new();
        let _ = (&s).read_to_end(&mut sink);
    });
    let mut child = Command::new(BIN)
        .args(["cat", &ep.to_string()])
        .stdin(std::fs::File::open(&dir.0).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = support::wait_child(&mut child).code();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("local stream"), "{err}");
    server.join().unwrap();
}

/// A `--exec` child that exits before the peer's reply is written to it: the command's
/// status is still the child's (its closed stdin is how it ended, not a local failure).
#[test]
fn cat_exec_child_that_exits_early_keeps_its_status() {
    let dir = TempDir::new();
    let l = Listener::bind(&dir.unix("e")).unwrap();
    let ep = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        // Replies after the child has gone (it exits right after its one line).
        thread::sleep(std::time::Duration::from_millis(200));
        let _ = (&s).write_all(&[b'x'; 256 * 1024]);
        got
    });
    let child = cat(&["--exec", "echo hi; exit 5", &ep.to_string()]);
    let (_, code) = finish(child, Vec::new());
    assert_eq!(code, Some(5), "the child's status");
    assert_eq!(server.join().unwrap(), b"hi\n");
}

/// A closed stderr (`2>&1 | head -c1`) never turns an error exit into a panic (101).
#[test]
fn cat_with_a_closed_stderr_exits_with_its_status_not_a_panic() {
    let dir = TempDir::new();
    let mut child = Command::new(BIN)
        .args(["cat", &dir.unix("nobody").to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take()); // the reading end goes: writes to stderr fail with EPIPE
    let code = support::wait_child(&mut child).code();
    assert_eq!(code, Some(1), "a failed connect, not a panic");
}

/// `cat --listen`: the socket file is gone once the connection is in (a rerun binds again),
/// and a peer that sends its request and half-closes at once still gets what cat's stdin
/// had ready (cat gives stdin's copy a grace period after the peer's EOF).
#[test]
fn cat_listen_removes_its_socket_and_answers_a_peer_that_half_closes_at_once() {
    let dir = TempDir::new();
    let path = dir.unix("h");
    for round in 0..2 {
        let mut child = cat(&["--listen", &path.to_string()]);
        let ep = listening(&mut child);
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"from the listener").unwrap();
        let s = Stream::connect(&ep).unwrap();
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        (&s).write_all(b"request").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"from the listener", "round {round}");
        drop(stdin);
        let mut out = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        let code = support::wait_child(&mut child).code();
        assert_eq!((out.as_slice(), code), (&b"request"[..], Some(0)));
        let Endpoint::Unix(p) = &path else {
            unreachable!()
        };
        assert!(!p.exists(), "the socket file is left behind");
    }
}
