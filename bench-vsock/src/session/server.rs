//! The server end of a connection: reads the header, then echoes or sinks, checking every
//! byte against the pattern, or (source mode) sends the pattern the client asks for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Outbox, Session, Want};
use crate::error::{Error, Result};
use crate::pattern;
use crate::wire::{Ack, Header, Mode, FRAME_PREFIX_LEN, HEADER_LEN, MAX_MESSAGE, REQUEST_LEN};

/// What a server saw over all its connections.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections that ended cleanly.
    pub connections: AtomicU64,
    /// Connections that ended, cleanly or not.
    pub ended: AtomicU64,
    /// Payload bytes checked against the pattern.
    pub bytes_verified: AtomicU64,
    /// Connection errors (protocol or verification), for the server's report.
    pub errors: Mutex<Vec<String>>,
}

/// What a server saw, at one moment or over a run: its own view of the connections and
/// bytes, to check the clients' against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounts {
    /// Connections that ended cleanly.
    pub connections: u64,
    /// Payload bytes the server checked against the pattern.
    pub bytes_verified: u64,
}

impl ServerCounts {
    /// What was counted since `earlier`.
    pub fn since(self, earlier: ServerCounts) -> ServerCounts {
        ServerCounts {
            connections: self.connections.saturating_sub(earlier.connections),
            bytes_verified: self.bytes_verified.saturating_sub(earlier.bytes_verified),
        }
    }
}

impl ServerStats {
    /// Records how a connection ended.
    pub fn record(&self, session: &ServerSession, result: &Result<()>) {
        self.bytes_verified
            .fetch_add(session.verified, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.connections.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.fail(e),
        }
        // Last, so whoever sees the count sees the bytes and the outcome too.
        self.ended.fetch_add(1, Ordering::Release);
    }

    /// Records an error of the server outside a connection's session (accept, spawn).
    pub fn fail(&self, e: impl std::fmt::Display) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.to_string());
    }

    /// The errors so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The counts now.
    pub fn counts(&self) -> ServerCounts {
        ServerCounts {
            connections: self.connections.load(Ordering::Relaxed),
            bytes_verified: self.bytes_verified.load(Ordering::Relaxed),
        }
    }

    /// Waits until at least `n` connections have ended, up to `timeout`; whether they
    /// did. (A client's connection ends on the server a little after the client closes.)
    pub fn wait_ended(&self, n: u64, timeout: Duration) -> bool {
        let give_up = Instant::now() + timeout;
        while self.ended.load(Ordering::Acquire) < n {
            if Instant::now() >= give_up {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// The server's errors as one error, or `Ok` if it saw none.
    ///
    /// # Errors
    ///
    /// The server saw a failed connection: the count and the first error.
    pub fn result(&self) -> Result<()> {
        let errors = self.errors();
        match errors.first() {
            None => Ok(()),
            Some(first) => Err(Error::new(format!(
                "server saw {} failed connection(s), first: {first}",
                errors.len()
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    EchoRecv,
    EchoSend,
    FramePrefix,
    FramePayload {
        left: usize,
    },
    AckSend,
    AwaitClose,
    /// Source mode: sending what was requested, reading requests as they come.
    Source,
    Done,
}

/// The server end of one connection.
#[derive(Debug)]
pub struct ServerSession {
    state: State,
    head: Vec<u8>,
    size: usize,
    at: u64,
    /// Bytes of the message being received (echo).
    echo_got: usize,
    /// The echo or the ack being sent.
    out: Outbox,
    sunk: u64,
    verified: u64,
    /// Source mode: messages requested and not yet started.
    owed: u64,
}

impl Default for ServerSession {
    fn default() -> Self {
        ServerSession::new()
    }
}

impl ServerSession {
    /// A session waiting for its header.
    pub fn new() -> ServerSession {
        ServerSession {
            state: State::Header,
            head: Vec::with_capacity(HEADER_LEN),
            size: 0,
            at: 0,
            echo_got: 0,
            out: Outbox::default(),
            sunk: 0,
            verified: 0,
            owed: 0,
        }
    }

    /// Payload bytes this session checked.
    pub fn bytes_verified(&self) -> u64 {
        self.verified
    }

    fn check(&mut self, data: &[u8]) -> Result<()> {
        if let Some(at) = pattern::mismatch(self.at, data) {
            return Err(Error::new(format!(
                "client data corrupted at stream offset {at}: closing"
            )));
        }
        self.at += data.len() as u64;
        self.verified += data.len() as u64;
        Ok(())
    }

    /// Consumes from `data` what the current state takes; returns how much.
    fn step(&mut self, data: &[u8]) -> Result<usize> {
        match self.state {
            State::Header | State::FramePrefix => {
                let want = if self.state == State::Header {
                    HEADER_LEN
                } else {
                    FRAME_PREFIX_LEN
                };
                let n = data.len().min(want - self.head.len());
                self.head.extend_from_slice(&data[..n]);
                if self.head.len() == want {
                    if self.state == State::Header {
                        self.start(Header::decode(
                            self.head.as_slice().try_into().expect("header length"),
                        )?)?;
                    } else {
                        self.frame(u32::from_le_bytes(
                            self.head.as_slice().try_into().expect("4 bytes"),
                        ) as usize)?;
                    }
                    self.head.clear();
                }
                Ok(n)
            }
            State::EchoRecv => {
                let n = data.len().min(self.size - self.echo_got);
                self.check(&data[..n])?;
                self.echo_got += n;
                if self.echo_got == self.size {
                    // The echo is the message's bytes, which matched the pattern: sent
                    // from the pattern, so no backend copies the message twice.
                    self.out.clear();
                    self.out.set_body(self.at - self.size as u64, self.size);
                    self.echo_got = 0;
                    self.state = State::EchoSend;
                }
                Ok(n)
            }
            State::FramePayload { left } => {
                let n = data.len().min(left);
                self.check(&data[..n])?;
                self.sunk += n as u64;
                self.state = if n == left {
                    State::FramePrefix
                } else {
                    State::FramePayload { left: left - n }
                };
                Ok(n)
            }
            State::Source => {
                // Requests may arrive while a batch is going out (the client keeps two
                // outstanding, and some backends read eagerly): they queue up.
                let n = data.len().min(REQUEST_LEN - self.head.len());
                self.head.extend_from_slice(&data[..n]);
                if self.head.len() == REQUEST_LEN {
                    let count =
                        u32::from_le_bytes(self.head.as_slice().try_into().expect("4 bytes"));
                    self.head.clear();
                    if count == 0 {
                        return Err(Error::new("client requested 0 messages"));
                    }
                    self.owed = self.owed.saturating_add(u64::from(count));
                }
                Ok(n)
            }
            State::EchoSend | State::AckSend | State::AwaitClose | State::Done => {
                Err(Error::new(format!(
                    "client sent {} bytes before its previous message was answered",
                    data.len()
                )))
            }
        }
    }

    fn start(&mut self, header: Header) -> Result<()> {
        self.size = header.size as usize;
        self.at = u64::from(header.seed);
        self.state = match header.mode {
            Mode::Echo => State::EchoRecv,
            Mode::Sink => State::FramePrefix,
            Mode::Source => State::Source,
        };
        Ok(())
    }

    fn frame(&mut self, len: usize) -> Result<()> {
        if len > MAX_MESSAGE {
            return Err(Error::new(format!(
                "frame of {len} bytes is over the limit"
            )));
        }
        self.state = if len == 0 {
            let ack = Ack {
                bytes: self.sunk,
                status: 0,
            };
            self.out.clear();
            self.out.push(&ack.encode());
            State::AckSend
        } else {
            State::FramePayload { left: len }
        };
        Ok(())
    }
}

impl Session for ServerSession {
    fn next(&mut self, _now: Instant) -> Want<'_> {
        match self.state {
            State::EchoSend | State::AckSend => Want::Send(&mut self.out),
            State::Source => {
                if self.out.is_empty() && self.owed > 0 {
                    // One message at a time from the pattern: memory stays at one message
                    // whatever the client asks for.
                    self.out.clear();
                    self.out.set_body(self.at, self.size);
                    self.at += self.size as u64;
                    self.owed -= 1;
                }
                if self.out.is_empty() {
                    Want::Recv
                } else {
                    Want::Send(&mut self.out)
                }
            }
            State::Done => Want::Done,
            _ => Want::Recv,
        }
    }

    fn on_sent(&mut self, n: usize, _now: Instant) {
        self.out.advance(n);
        if self.out.is_empty() {
            self.state = match self.state {
                State::EchoSend => {
                    self.out.clear();
                    State::EchoRecv
                }
                State::AckSend => State::AwaitClose,
                s => s,
            };
        }
    }

    fn on_recv(&mut self, mut data: &[u8], _now: Instant) -> Result<()> {
        while !data.is_empty() {
            let n = self.step(data)?;
            data = &data[n..];
        }
        Ok(())
    }

    fn on_eof(&mut self) -> Result<()> {
        let clean = match self.state {
            // Closing between messages (or before any) is how a client ends.
            State::Header | State::FramePrefix => self.head.is_empty(),
            State::EchoRecv => self.echo_got == 0,
            State::AwaitClose | State::Done => true,
            State::Source => self.head.is_empty() && self.owed == 0 && self.out.is_empty(),
            _ => false,
        };
        if clean {
            self.state = State::Done;
            Ok(())
        } else if self.state == State::Source {
            Err(Error::new(format!(
                "client closed with {} requested message(s) not yet sent",
                self.owed + u64::from(!self.out.is_empty())
            )))
        } else {
            Err(Error::new(format!(
                "client closed in the middle of a message (state {:?})",
                self.state
            )))
        }
    }
}
