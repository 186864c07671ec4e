//! A peer that resets, over unix and tcp: mid-stream (the receive sees it) and while a large
//! send waits in the kernel with receiving paused (the send sees it, and its error closes the
//! connection). The engine serves on.

mod engine_support;
mod util;

use std::io::{self, Read, Write};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use engine_support::{connect, echo_client, listen_reporting_echo, recv_or_hang, Gen, Sum, MIB};
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf, SendBuf};
use util::{bind_endpoint, TempDir, Transport};

fn engine() -> Engine {
    Engine::builder().workers(1).build().expect("engine")
}

#[test]
fn engine_peer_reset_mid_stream_tcp() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = engine();
        let (ep, rx) = listen_reporting_echo(&e, &bind_endpoint(Transport::Tcp, &dir));
        let mut c = connect(&ep);
        let mut chunk = vec![0u8; 64 * 1024];
        Gen::new(3).fill(&mut chunk);
        c.write_all(&chunk).unwrap();
        let mut back = vec![0u8; 1024];
        c.read_exact(&mut back).unwrap(); // mid-stream: the echo is flowing
        c.write_all(&chunk).unwrap();
        // SO_LINGER 0: close sends a reset.
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
        let reason = recv_or_hang(&rx, "the server's close");
        assert!(matches!(reason, CloseReason::Reset), "{reason}");
        // The engine serves on.
        echo_client(&ep, 4, MIB);
    });
}

#[test]
fn engine_peer_reset_mid_stream_unix() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = engine();
        let (ep, rx) = listen_reporting_echo(&e, &bind_endpoint(Transport::Unix, &dir));
        let mut c = connect(&ep);
        let mut chunk = vec![0u8; 64 * 1024];
        Gen::new(3).fill(&mut chunk);
        c.write_all(&chunk).unwrap();
        let mut back = vec![0u8; 1024];
        c.read_exact(&mut back).unwrap();
        // Closing with unread echo in our receive queue resets a unix stream.
        drop(c);
        let reason = recv_or_hang(&rx, "the server's close");
        assert!(matches!(reason, CloseReason::Reset), "{reason}");
        echo_client(&ep, 4, MIB);
    });
}

/// What a [`DoomedSend`] saw: each `on_sent` (length and checksum of the buffer that came
/// back, and the result), then the close reason.
type DoomedReport = (Vec<(usize, (u64, u64), io::Result<usize>)>, CloseReason);

/// Sends one large unregistered buffer (so a plain, copying send) to a peer that goes away
/// before reading it all. Receiving is paused from the start, so only the send can see the
/// peer go.
struct DoomedSend {
    data: Option<Vec<u8>>,
    sent: Vec<(usize, (u64, u64), io::Result<usize>)>,
    done: mpsc::Sender<DoomedReport>,
}

impl Handler for DoomedSend {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.pause_recv();
        let buf = SendBuf::from(self.data.take().expect("one connection"));
        assert!(!buf.is_registered());
        conn.send(buf).expect("an empty queue takes a send");
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {
        panic!("receiving is paused");
    }
    fn on_sent(&mut self, _conn: &mut Conn<'_>, buf: SendBuf, res: io::Result<usize>) {
        let mut sum = Sum::default();
        sum.add(&buf);
        self.sent.push((buf.len(), sum.value(), res));
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self
            .done
            .send((std::mem::take(&mut self.sent), reason.clone()));
    }
}

#[test]
fn engine_plain_send_error_closes_with_it() {
    util::fds_unchanged(|| {
        let dir = TempDir::new();
        let e = engine();
        // Far more than the socket buffers hold: the send is in the kernel, waiting for room,
        // when the peer goes.
        let mut payload = vec![0u8; 16 * MIB as usize];
        Gen::new(41).fill(&mut payload);
        let mut sum = Sum::default();
        sum.add(&payload);
        let (tx, rx) = mpsc::channel();
        let handler = Mutex::new(Some((payload.clone(), tx)));
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), move |_| {
                let (data, done) = handler.lock().unwrap().take().expect("one connection");
                DoomedSend {
                    data: Some(data),
                    sent: Vec::new(),
                    done,
                }
            })
            .unwrap();
        let mut c = connect(&ep);
        let mut head = vec![0u8; 64 * 1024];
        c.read_exact(&mut head).unwrap(); // the send is under way
        assert!(head[..] == payload[..head.len()], "the first bytes differ");
        drop(c); // unread data in its queue: the peer resets
        let (sent, reason) = recv_or_hang(&rx, "the close");
        assert_eq!(sent.len(), 1, "one on_sent per send: {sent:?}");
        let (len, back, res) = &sent[0];
        assert_eq!(*len, payload.len(), "the buffer came back whole");
        assert_eq!(*back, sum.value(), "the buffer came back unchanged");
        let err = res.as_ref().expect_err("the send failed");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "the send's own error, not a cancel: {err}"
        );
        // The send's error closed the connection (receiving was paused, so nothing else saw
        // the peer go); a retry would have kept it open.
        assert!(matches!(reason, CloseReason::Reset), "{reason}");
        let s = e.stats();
        assert_eq!(s.zero_copy_sends, 0, "{s:?}");
        assert!(s.copy_sends >= 1, "{s:?}");
    });
}
