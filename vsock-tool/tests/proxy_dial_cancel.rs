//! `vsock-tool proxy` while its dial to the target waits (a unix target whose backlog is
//! full): a client gone before the target answered frees its `--max-conns` slot and has its
//! dial cancelled at once; a client that sent something, or only shut its write side,
//! keeps its dial, and what it sent reaches the target once there is room.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;

use support::{Proxy, TempDir, WATCHDOG};
use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::Endpoint;

/// A unix listener with a full backlog: backlog 0 and one connection it has not accepted,
/// so a connect to it waits for room.
struct FullTarget {
    listener: Listener,
    held: Stream,
    ep: Endpoint,
}

impl FullTarget {
    fn new(dir: &TempDir) -> FullTarget {
        let listener = Listener::bind_with_backlog(&dir.unix("target"), 0).unwrap();
        let ep = listener.local_addr().unwrap();
        let held = Stream::connect(&ep).unwrap();
        FullTarget { listener, held, ep }
    }

    /// Makes room (accepts the held connection), then serves the next connection: reads it
    /// to EOF, answers with the FNV checksum of what it read, and reports what it read.
    fn go_live(self) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _room = self.listener.accept().expect("accept the held connection");
            drop(self.held);
            let (s, _) = self.listener.accept().expect("accept a dial");
            s.set_read_timeout(Some(WATCHDOG)).unwrap();
            let mut got = Vec::new();
            let _ = (&s).read_to_end(&mut got);
            let _ = (&s).write_all(&support::checksum(&got).to_le_bytes());
            let _ = s.shutdown(Shutdown::Write);
            let _ = tx.send(got);
        });
        rx
    }
}

/// One connection's worth: sends `data`, shuts its write side, reads the answer.
fn ask(ep: &Endpoint, data: &[u8]) -> Vec<u8> {
    let c = Stream::connect(ep).unwrap();
    c.set_read_timeout(Some(WATCHDOG)).unwrap();
    (&c).write_all(data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    (&c).read_to_end(&mut answer)
        .expect("the target's answer through the proxy, within the watchdog");
    answer
}

fn start(listen: &Endpoint, target: &FullTarget) -> Proxy {
    // A long connect timeout: nothing here may wait for it.
    let opts = [
        "--max-conns",
        "1",
        "--connect-timeout",
        "600s",
        "--workers",
        "1",
        "--log-level",
        "debug",
    ];
    Proxy::start(listen, &target.ep, &opts)
}

#[test]
fn proxy_frees_the_slot_and_cancels_the_dial_of_a_client_gone_before_the_target_answered() {
    let dir = TempDir::new();
    let target = FullTarget::new(&dir);
    let mut proxy = start(&dir.unix("front"), &target);
    let c1 = Stream::connect(&proxy.ep).unwrap();
    proxy.wait_line("dialing");
    // A unix client's close, with nothing sent: a hang-up the proxy sees at once.
    drop(c1);
    proxy.wait_line("client gone before the target answered: dial cancelled");
    let closed = proxy.wait_line(" bytes up, ");
    assert!(
        closed.contains(": 0 bytes up") && closed.contains("target aborted"),
        "the pair ends with its dial cut: {closed}"
    );
    // Room at the target now: a dial still waiting would get in first, and read nothing.
    let got = target.go_live();
    // With --max-conns 1, a second client is served only if the first one's slot is free.
    let data = support::pattern(7, 100_000);
    let answer = ask(&proxy.ep, &data);
    let at_target = got.recv_timeout(WATCHDOG).expect("the target's report");
    assert_eq!(
        at_target.len(),
        data.len(),
        "the first connection the target accepted after the held one is the second client's"
    );
    assert_eq!(support::checksum(&at_target), support::checksum(&data));
    assert_eq!(answer, support::checksum(&data).to_le_bytes());
}

#[test]
fn proxy_keeps_the_dial_of_a_client_that_only_shut_its_write_side() {
    let dir = TempDir::new();
    let target = FullTarget::new(&dir);
    let mut proxy = start(&dir.unix("front"), &target);
    let c = Stream::connect(&proxy.ep).unwrap();
    c.set_read_timeout(Some(WATCHDOG)).unwrap();
    proxy.wait_line("dialing");
    let data = support::pattern(8, 50_000);
    (&c).write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    // The proxy has the client's EOF while the dial still waits...
    proxy.wait_line("client: EOF");
    // ...and the target, once it has room, gets the request and the answer gets back.
    let got = target.go_live();
    let mut answer = Vec::new();
    (&c).read_to_end(&mut answer)
        .expect("the answer, within the watchdog");
    let at_target = got.recv_timeout(WATCHDOG).expect("the target's report");
    assert_eq!(support::checksum(&at_target), support::checksum(&data));
    assert_eq!(answer, support::checksum(&data).to_le_bytes());
}

#[test]
fn proxy_delivers_what_a_client_sent_before_closing_while_the_dial_waited() {
    let dir = TempDir::new();
    let target = FullTarget::new(&dir);
    let mut proxy = start(&dir.unix("front"), &target);
    let c = Stream::connect(&proxy.ep).unwrap();
    proxy.wait_line("dialing");
    let data = support::pattern(9, 30_000);
    (&c).write_all(&data).unwrap();
    // Fire and forget: the client closes, its bytes are still on their way.
    drop(c);
    proxy.wait_line("client: EOF");
    let got = target.go_live();
    let at_target = got.recv_timeout(WATCHDOG).expect("the target's report");
    assert_eq!(at_target.len(), data.len());
    assert_eq!(support::checksum(&at_target), support::checksum(&data));
}
