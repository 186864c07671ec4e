//! The blocking path's seqpacket server (a thread) and client.

use std::io;
use std::sync::mpsc;
use std::time::Duration;

use uring_vsock::blocking::{SeqpacketConn, SeqpacketListener};
use uring_vsock::{Endpoint, MessageTooLarge};

use super::{respond, Client, Event, SeqpacketPath, Server, Summary};
use crate::util::{self, TempDir, Transport};

pub struct Blocking;

impl SeqpacketPath for Blocking {
    const SMALLEST_RECV_BUF: usize = 0;

    fn serve(t: Transport, dir: &TempDir, recv_buf: usize) -> Server {
        let listener = SeqpacketListener::bind(&util::bind_endpoint(t, dir)).unwrap();
        let ep = super::client_endpoint(&listener.local_addr().unwrap());
        let (tx, summaries) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((conn, _)) = listener.accept() else {
                return;
            };
            // A server that waits forever would hang the test: the watchdog ends it.
            conn.set_read_timeout(Some(util::WATCHDOG)).unwrap();
            let mut buf = vec![0; recv_buf];
            let mut tally = Summary::default();
            loop {
                let msg = conn.recv(&mut buf).expect("server recv");
                if msg.is_eof() {
                    tally.eof = true;
                    break;
                }
                let step = respond(&mut tally, &buf[..msg.len], msg.message_len, msg.truncated);
                if let Some(r) = step.reply {
                    conn.send(&r).expect("server reply");
                }
                if step.close {
                    break;
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
        let conn = SeqpacketConn::connect_timeout(ep, util::WATCHDOG).unwrap();
        assert_eq!(
            conn.max_message_size().unwrap(),
            super::default_max_message(ep),
            "max_message_size is the kernel's bound"
        );
        Box::new(BlockingClient {
            conn,
            buf: vec![0; recv_buf],
        })
    }

    fn unsupported(ep: &Endpoint) -> (uring_vsock::Error, uring_vsock::Error) {
        (
            SeqpacketListener::bind(ep).unwrap_err(),
            SeqpacketConn::connect(ep).unwrap_err(),
        )
    }
}

struct BlockingClient {
    conn: SeqpacketConn,
    buf: Vec<u8>,
}

impl Client for BlockingClient {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.conn.send(msg)
    }

    fn recv_within(&mut self, wait: Duration) -> io::Result<Event> {
        self.conn.set_read_timeout(Some(wait))?;
        match self.conn.recv(&mut self.buf) {
            Ok(m) if m.is_eof() => Ok(Event::Eof),
            Ok(m) => Ok(Event::Msg {
                data: self.buf[..m.len].to_vec(),
                message_len: m.message_len,
                truncated: m.truncated,
            }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::TimedOut.into()),
            Err(e) => Err(e),
        }
    }

    fn send_too_large(&mut self, msg: &[u8]) -> String {
        typed_too_large(
            self.conn.send(msg),
            msg.len(),
            self.conn.max_message_size().ok(),
        )
    }

    fn close(self: Box<Self>) {}
}

/// Checks that `res` is the typed over-size error for a message of `len` bytes.
pub fn typed_too_large(res: io::Result<()>, len: usize, max: Option<usize>) -> String {
    let err = res.expect_err("an over-size send must fail");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let typed = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<MessageTooLarge>())
        .unwrap_or_else(|| panic!("not a MessageTooLarge: {err:?}"));
    assert_eq!(typed.len, len);
    assert_eq!(typed.max, max);
    err.to_string()
}
