//! The seqpacket contract tests' adapters: one server and one client per path (blocking,
//! epoll, engine), speaking a small protocol so the client can check what the server's
//! path received.
//!
//! Each client message starts with a kind byte:
//! - `E`: the server replies with a [`Report`] header followed by the bytes it received;
//! - `R`: the report alone (for messages too large to echo);
//! - `Q`: no reply (the client closes after a run of these);
//! - `C`: the report, then the server closes the connection.
//!
//! On the end of the connection (EOF, or after `C`) the server sends a [`Summary`] of every
//! message it received on a channel.

#![allow(dead_code)] // each test uses a subset

pub mod blocking;
pub mod engine;
pub mod epoll;

use std::io;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use uring_vsock::Endpoint;

use crate::util::{self, TempDir, Transport};

/// The report header's size.
pub const REPORT: usize = 24;

/// What a server got for one message: the reply's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub message_len: u32,
    pub received: u32,
    pub truncated: bool,
    pub checksum: u64,
}

impl Report {
    pub fn encode(&self) -> [u8; REPORT] {
        let mut h = [0; REPORT];
        h[0..4].copy_from_slice(&self.message_len.to_le_bytes());
        h[4..8].copy_from_slice(&self.received.to_le_bytes());
        h[8] = u8::from(self.truncated);
        h[16..24].copy_from_slice(&self.checksum.to_le_bytes());
        h
    }

    pub fn decode(b: &[u8]) -> Report {
        assert!(
            b.len() >= REPORT,
            "a reply of {} bytes has no report",
            b.len()
        );
        Report {
            message_len: u32::from_le_bytes(b[0..4].try_into().unwrap()),
            received: u32::from_le_bytes(b[4..8].try_into().unwrap()),
            truncated: b[8] == 1,
            checksum: u64::from_le_bytes(b[16..24].try_into().unwrap()),
        }
    }
}

/// Everything a server's connection received, counted when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub messages: u64,
    /// A running checksum over each message's length and bytes, in order.
    pub chain: u64,
    /// The connection ended with the peer's EOF (not a `C` message or an error).
    pub eof: bool,
}

impl Summary {
    /// Adds one message (as the client does for what it sent).
    pub fn add(&mut self, data: &[u8]) {
        self.messages += 1;
        let mut framed = self.chain.to_le_bytes().to_vec();
        framed.extend_from_slice(&(data.len() as u32).to_le_bytes());
        framed.extend_from_slice(data);
        self.chain = util::checksum(&framed);
    }
}

/// What a server does with one received message.
pub struct Step {
    pub reply: Option<Vec<u8>>,
    pub close: bool,
}

/// The protocol, shared by every server: what to reply to `data` (the bytes received of a
/// message of `message_len`).
pub fn respond(tally: &mut Summary, data: &[u8], message_len: usize, truncated: bool) -> Step {
    tally.add(data);
    let report = Report {
        message_len: message_len as u32,
        received: data.len() as u32,
        truncated,
        checksum: util::checksum(data),
    }
    .encode();
    let with = |echo: bool| {
        let mut r = report.to_vec();
        if echo {
            r.extend_from_slice(data);
        }
        Some(r)
    };
    match data.first() {
        Some(b'E') => Step {
            reply: with(true),
            close: false,
        },
        Some(b'Q') => Step {
            reply: None,
            close: false,
        },
        Some(b'C') => Step {
            reply: with(false),
            close: true,
        },
        // 'R', or a message cut before its kind byte (a zero-length server buffer).
        _ => Step {
            reply: with(false),
            close: false,
        },
    }
}

/// One message or the end, as a client received it.
#[derive(Debug)]
pub enum Event {
    Msg {
        data: Vec<u8>,
        message_len: usize,
        truncated: bool,
    },
    Eof,
}

/// A running server: where to connect, and the summaries of its connections.
pub struct Server {
    pub ep: Endpoint,
    pub summaries: Receiver<Summary>,
    /// What keeps it running (an engine), dropped with the server.
    pub _keep: Option<Box<dyn std::any::Any>>,
}

impl Server {
    /// The summary of the next connection that ends, within the watchdog.
    pub fn summary(&self) -> Summary {
        self.summaries
            .recv_timeout(util::WATCHDOG)
            .expect("no summary from the server within the watchdog")
    }
}

/// A client connection of a path.
pub trait Client {
    /// Sends one message.
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// The next message or the end; `TimedOut` when nothing came within `wait`.
    fn recv_within(&mut self, wait: Duration) -> io::Result<Event>;
    /// Sends a message longer than the connection allows and returns the typed error's text,
    /// after checking the error is the path's typed one.
    fn send_too_large(&mut self, msg: &[u8]) -> String;
    /// Closes the connection (gracefully: what was sent is delivered first).
    fn close(self: Box<Self>);
}

/// A path under test.
pub trait SeqpacketPath {
    /// The smallest receive buffer a client of this path can have.
    const SMALLEST_RECV_BUF: usize;
    /// A server on a fresh endpoint of `t` whose receives use `recv_buf`-byte buffers.
    fn serve(t: Transport, dir: &TempDir, recv_buf: usize) -> Server;
    /// A client connected to `ep` whose receives use `recv_buf`-byte buffers.
    fn connect(ep: &Endpoint, recv_buf: usize) -> Box<dyn Client>;
    /// The errors of a seqpacket listen and connect on `ep` (a family with no seqpacket).
    fn unsupported(ep: &Endpoint) -> (uring_vsock::Error, uring_vsock::Error);
}

/// The largest message a connection to `ep`'s family allows by default (the kernel's bound:
/// unix `SO_SNDBUF` − 32, vsock the buffer size), read from a fresh socket.
pub fn default_max_message(ep: &Endpoint) -> usize {
    use socket2::{Domain, Socket, Type};
    use uring_vsock::VsockOptions;
    match ep {
        Endpoint::Vsock(_) => {
            let s = Socket::new(Domain::VSOCK, Type::SEQPACKET, None).unwrap();
            s.vsock_buffer_size().unwrap() as usize
        }
        _ => {
            let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
            s.send_buffer_size().unwrap() - 32
        }
    }
}

/// The connect endpoint of a listener bound on `bound`.
pub fn client_endpoint(bound: &Endpoint) -> Endpoint {
    util::connect_endpoint(bound)
}
