//! The epoll path's seqpacket server (a thread with its own poll) and client.

use std::io;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use uring_vsock::epoll::{SeqpacketConn, SeqpacketListener};
use uring_vsock::Endpoint;

use super::{respond, Client, Event, SeqpacketPath, Server, Summary};
use crate::util::{self, TempDir, Transport};

pub struct Epoll;

/// Waits for any event on `poll` for at most `wait` (a wake-up to retry, not a verdict:
/// callers retry their call after it either way, so a lost edge costs a timeout, no hang).
fn wait(poll: &mut Poll, events: &mut Events, wait: Duration) {
    poll.poll(events, Some(wait.min(Duration::from_millis(100))))
        .expect("poll");
}

/// Sends `msg`, waiting for room (on the poll) at most the watchdog.
fn send_waiting(
    conn: &SeqpacketConn,
    poll: &mut Poll,
    events: &mut Events,
    msg: &[u8],
) -> io::Result<()> {
    let start = Instant::now();
    loop {
        match conn.send(msg) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    start.elapsed() < util::WATCHDOG,
                    "no room to send within the watchdog"
                );
                wait(poll, events, util::WATCHDOG);
            }
            res => return res,
        }
    }
}

impl SeqpacketPath for Epoll {
    const SMALLEST_RECV_BUF: usize = 0;

    fn serve(t: Transport, dir: &TempDir, recv_buf: usize) -> Server {
        let mut listener = SeqpacketListener::bind(&util::bind_endpoint(t, dir)).unwrap();
        let ep = super::client_endpoint(&listener.local_addr().unwrap());
        let (tx, summaries) = mpsc::channel();
        std::thread::spawn(move || {
            let mut poll = Poll::new().unwrap();
            let mut events = Events::with_capacity(8);
            poll.registry()
                .register(&mut listener, Token(0), Interest::READABLE)
                .unwrap();
            let start = Instant::now();
            let mut conn = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if start.elapsed() > util::WATCHDOG {
                            return; // nobody came: the test has failed elsewhere
                        }
                        wait(&mut poll, &mut events, util::WATCHDOG);
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            poll.registry()
                .register(&mut conn, Token(1), Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            let mut buf = vec![0; recv_buf];
            let mut tally = Summary::default();
            let mut idle = Instant::now();
            loop {
                match conn.recv(&mut buf) {
                    Ok(msg) if msg.is_eof() => {
                        tally.eof = true;
                        break;
                    }
                    Ok(msg) => {
                        idle = Instant::now();
                        let step =
                            respond(&mut tally, &buf[..msg.len], msg.message_len, msg.truncated);
                        if let Some(r) = step.reply {
                            send_waiting(&conn, &mut poll, &mut events, &r).expect("server reply");
                        }
                        if step.close {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(
                            idle.elapsed() < util::WATCHDOG,
                            "server: nothing within the watchdog"
                        );
                        wait(&mut poll, &mut events, util::WATCHDOG);
                    }
                    Err(e) => panic!("server recv: {e}"),
                }
            }
            let _ = tx.send(tally);
        });
        Server {
            ep,
            summaries,
            _keep: None,
        }
    }

    fn connect(ep: &Endpoint, recv_buf: usize) -> Box<dyn Client> {
        // The nonblocking connect, driven to its end on the poll.
        let mut conn = SeqpacketConn::connect(ep).unwrap();
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut conn, Token(0), Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        let mut client = EpollClient {
            conn,
            poll,
            events: Events::with_capacity(8),
            buf: vec![0; recv_buf],
        };
        let start = Instant::now();
        loop {
            match client.conn.connect_result() {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        start.elapsed() < util::WATCHDOG,
                        "connect: not done within the watchdog"
                    );
                    wait(&mut client.poll, &mut client.events, util::WATCHDOG);
                }
                Err(e) => panic!("connect: {e}"),
            }
        }
        assert_eq!(
            client.conn.max_message_size().unwrap(),
            super::default_max_message(ep)
        );
        Box::new(client)
    }

    fn unsupported(ep: &Endpoint) -> (uring_vsock::Error, uring_vsock::Error) {
        (
            SeqpacketListener::bind(ep).unwrap_err(),
            SeqpacketConn::connect(ep).unwrap_err(),
        )
    }
}

struct EpollClient {
    conn: SeqpacketConn,
    poll: Poll,
    events: Events,
    buf: Vec<u8>,
}

impl Client for EpollClient {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        send_waiting(&self.conn, &mut self.poll, &mut self.events, msg)
    }

    fn recv_within(&mut self, within: Duration) -> io::Result<Event> {
        let start = Instant::now();
        loop {
            match self.conn.recv(&mut self.buf) {
                Ok(m) if m.is_eof() => return Ok(Event::Eof),
                Ok(m) => {
                    return Ok(Event::Msg {
                        data: self.buf[..m.len].to_vec(),
                        message_len: m.message_len,
                        truncated: m.truncated,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = within.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                    wait(&mut self.poll, &mut self.events, left);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send_too_large(&mut self, msg: &[u8]) -> String {
        let max = self.conn.max_message_size().ok();
        super::blocking::typed_too_large(self.conn.send(msg), msg.len(), max)
    }

    fn close(self: Box<Self>) {}
}
