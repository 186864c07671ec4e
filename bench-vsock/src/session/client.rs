//! The client end of a connection: sends patterned messages, checks what comes back, times
//! each message; in source mode (`stream --reverse`) asks the server for data and checks it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::source::{SessionPlan, Shared};
use super::{Outbox, Session, Want};
use crate::error::{Error, Result};
use crate::pattern;
use crate::wire::{Ack, Header, Mode, ACK_LEN, FRAME_PREFIX_LEN, HEADER_LEN, REQUEST_LEN};

/// Latencies are handed to the shared histograms in batches, so 256 connections do not
/// take a lock per message.
const BATCH: usize = 256;
/// Source mode: about this many bytes per request (at least one message). Two requests are
/// kept outstanding, so the server always has the next one when it finishes a batch.
const REQUEST_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sending the header.
    Header,
    /// Between messages: the next one starts on the next call to `next`.
    Idle,
    /// Sending a message (echo) or frame (sink).
    Message,
    /// Waiting for the echo of the message just sent.
    Echo,
    /// Sending the zero-length frame that ends a sink stream.
    End,
    /// Waiting for the server's ack of a sink stream.
    Ack,
    /// Source mode: sending a request for more messages.
    Request,
    /// Source mode: reading what was requested.
    Pull,
    /// Over.
    Done,
}

/// The client end of one connection of a workload.
#[derive(Debug)]
pub struct ClientSession {
    mode: Mode,
    size: usize,
    limit: Option<u64>,
    deadline: Option<Instant>,
    interval: Option<Duration>,
    from_connect: bool,
    shared: Arc<Shared>,
    state: State,
    out: Outbox,
    /// Pattern offsets of the next byte to send and to receive.
    send_at: u64,
    recv_at: u64,
    echo_got: usize,
    ack: Vec<u8>,
    created: Instant,
    next_intended: Instant,
    intended: Instant,
    started: Instant,
    samples: Vec<(u64, u64)>,
    messages: u64,
    payload: u64,
    verified: u64,
    /// Source mode: messages requested so far.
    requested: u64,
}

impl ClientSession {
    pub(crate) fn new(
        plan: &SessionPlan,
        index: u64,
        seed: u32,
        created: Instant,
        shared: Arc<Shared>,
    ) -> ClientSession {
        let header = Header {
            mode: plan.mode,
            size: plan.size as u32,
            seed,
        };
        // Open loop: spread the connections' first sends over one interval, so the offered
        // load is smooth rather than a burst from every connection at once.
        let phase = plan.interval.map_or(Duration::ZERO, |iv| {
            iv.mul_f64((index % plan.sessions) as f64 / plan.sessions as f64)
        });
        let mut out = Outbox::default();
        out.reserve(HEADER_LEN.max(FRAME_PREFIX_LEN).max(REQUEST_LEN));
        out.push(&header.encode());
        ClientSession {
            mode: plan.mode,
            size: plan.size,
            limit: if plan.from_connect {
                Some(1)
            } else {
                plan.per_session
            },
            deadline: if plan.from_connect {
                None
            } else {
                plan.deadline
            },
            interval: plan.interval,
            from_connect: plan.from_connect,
            shared,
            state: State::Header,
            out,
            send_at: u64::from(seed),
            recv_at: u64::from(seed),
            echo_got: 0,
            ack: Vec::new(),
            created,
            next_intended: created + phase,
            intended: created,
            started: created,
            samples: Vec::with_capacity(BATCH),
            messages: 0,
            payload: 0,
            verified: 0,
            requested: 0,
        }
    }

    /// Payload bytes this session checked (itself, or acked by the server).
    pub fn bytes_verified(&self) -> u64 {
        self.verified
    }

    /// Whether the session finished its protocol.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether to start no more messages. The deadline stops a session only once it has
    /// completed a message: on a slow machine, setting up many connections can outlast a
    /// short run, which must still measure (and verify) something on each.
    fn should_stop(&self, now: Instant) -> bool {
        self.limit.is_some_and(|n| self.messages >= n)
            || (self.messages > 0 && self.deadline.is_some_and(|d| now >= d))
            || self.shared.aborted()
    }

    fn start_message(&mut self, now: Instant) {
        self.started = now;
        self.out.clear();
        if self.mode == Mode::Sink {
            self.out.push(&(self.size as u32).to_le_bytes());
        }
        // The payload is made only as the backend copies it out (see `Outbox`).
        self.out.set_body(self.send_at, self.size);
        self.send_at += self.size as u64;
        self.state = State::Message;
    }

    fn finish_message(&mut self, now: Instant, payload: u64) {
        let begin = if self.from_connect {
            self.created
        } else {
            self.intended
        };
        let corrected = now.saturating_duration_since(begin).as_nanos() as u64;
        let uncorrected = now.saturating_duration_since(self.started).as_nanos() as u64;
        self.samples.push((corrected, uncorrected));
        if self.samples.len() >= BATCH {
            self.flush();
        }
        self.messages += 1;
        self.payload += payload;
        self.state = State::Idle;
    }

    fn flush(&mut self) {
        self.shared.record(&self.samples);
        self.samples.clear();
    }

    /// Source mode, between requests: ask for more while the run goes on and at most one
    /// request is outstanding beyond the one being read; else read what is owed; else end.
    fn source_next(&mut self, now: Instant) {
        let per_request = (REQUEST_BYTES / self.size).max(1) as u64;
        let owed = self.requested - self.messages;
        // Past the deadline, one message still completes if none was asked for yet (as in
        // `should_stop`), and no more than that.
        let past = self.deadline.is_some_and(|d| now >= d);
        let more = !self.shared.aborted()
            && self.limit.is_none_or(|n| self.requested < n)
            && !(past && self.requested > 0);
        if more && owed <= per_request {
            let count = if past { 1 } else { per_request };
            let count = match self.limit {
                Some(n) => count.min(n - self.requested),
                None => count,
            };
            if self.requested == 0 {
                self.started = now;
            }
            self.requested += count;
            self.out.clear();
            // `per_request` is at most REQUEST_BYTES, so it fits a u32.
            self.out.push(&(count as u32).to_le_bytes());
            self.state = State::Request;
        } else if owed > 0 {
            self.state = State::Pull;
        } else {
            self.done();
        }
    }

    /// Source mode: `data` arrived; checks it and completes the messages it finishes.
    fn pulled(&mut self, data: &[u8], now: Instant) -> Result<()> {
        let size = self.size as u64;
        // In source mode `send_at` stays at the seed: `recv_at - send_at` is what arrived.
        let owed = self.requested * size - (self.recv_at - self.send_at);
        if data.len() as u64 > owed {
            return Err(Error::new(format!(
                "server sent {} bytes more than the {} requested",
                data.len() as u64 - owed,
                self.requested * size
            )));
        }
        if let Some(at) = pattern::mismatch(self.recv_at, data) {
            return Err(Error::new(format!(
                "stream from the server corrupted at stream offset {at} (byte {} of the stream)",
                at - self.send_at
            )));
        }
        self.recv_at += data.len() as u64;
        self.verified += data.len() as u64;
        let completed = (self.recv_at - self.send_at) / size;
        while self.messages < completed {
            // Each message's time runs from the previous one's end (or the first request).
            let took = now.saturating_duration_since(self.started).as_nanos() as u64;
            self.samples.push((took, took));
            if self.samples.len() >= BATCH {
                self.flush();
            }
            self.messages += 1;
            self.payload += size;
            self.started = now;
        }
        if self.state == State::Pull {
            self.state = State::Idle;
        }
        Ok(())
    }

    fn done(&mut self) {
        self.state = State::Done;
        self.flush();
        self.shared
            .add_totals(self.messages, self.payload, self.verified);
    }
}

impl Session for ClientSession {
    fn next(&mut self, now: Instant) -> Want<'_> {
        if self.state == State::Idle && self.mode == Mode::Source {
            self.source_next(now);
        } else if self.state == State::Idle {
            if self.should_stop(now) {
                if self.mode == Mode::Sink && self.messages > 0 {
                    self.out.clear();
                    self.out.push(&0u32.to_le_bytes());
                    self.state = State::End;
                } else {
                    self.done();
                }
            } else {
                match self.interval {
                    Some(iv) => {
                        if now < self.next_intended {
                            return Want::Wait(self.next_intended);
                        }
                        // Latency counts from when the message should have gone out, so a
                        // stall delays the schedule in the numbers too (wrk2's correction).
                        self.intended = self.next_intended;
                        self.next_intended += iv;
                    }
                    None => self.intended = now,
                }
                self.start_message(now);
            }
        }
        match self.state {
            State::Header | State::Message | State::End | State::Request => {
                Want::Send(&mut self.out)
            }
            State::Echo | State::Ack | State::Pull => Want::Recv,
            State::Done => Want::Done,
            State::Idle => unreachable!("Idle always moves on above"),
        }
    }

    fn on_sent(&mut self, n: usize, now: Instant) {
        self.out.advance(n);
        if !self.out.is_empty() {
            return;
        }
        match self.state {
            State::Header => self.state = State::Idle,
            State::Message if self.mode == Mode::Echo => {
                self.echo_got = 0;
                self.state = State::Echo;
            }
            State::Message => self.finish_message(now, self.size as u64),
            State::End => {
                self.ack.clear();
                self.state = State::Ack;
            }
            State::Request => self.state = State::Idle,
            _ => {}
        }
    }

    fn on_recv(&mut self, data: &[u8], now: Instant) -> Result<()> {
        match self.state {
            // A backend that reads eagerly may hand over data between requests or while one
            // goes out.
            State::Pull | State::Request | State::Idle if self.mode == Mode::Source => {
                self.pulled(data, now)
            }
            State::Echo => {
                if data.len() > self.size - self.echo_got {
                    return Err(Error::new(format!(
                        "server sent {} bytes more than the {}-byte echo",
                        data.len() - (self.size - self.echo_got),
                        self.size
                    )));
                }
                if let Some(at) = pattern::mismatch(self.recv_at, data) {
                    return Err(Error::new(format!(
                        "echo corrupted at stream offset {at} (byte {} of the {}-byte echo)",
                        at - self.recv_at + self.echo_got as u64,
                        self.size
                    )));
                }
                self.recv_at += data.len() as u64;
                self.echo_got += data.len();
                self.verified += data.len() as u64;
                if self.echo_got == self.size {
                    self.finish_message(now, 2 * self.size as u64);
                }
                Ok(())
            }
            State::Ack => {
                if self.ack.len() + data.len() > ACK_LEN {
                    return Err(Error::new("server sent more than its 16-byte ack"));
                }
                self.ack.extend_from_slice(data);
                if self.ack.len() == ACK_LEN {
                    let ack = Ack::decode(self.ack.as_slice().try_into().expect("16 bytes"));
                    let sent = self.messages * self.size as u64;
                    if ack.status != 0 || ack.bytes != sent {
                        return Err(Error::new(format!(
                            "server acked {} bytes with status {}, but {} were sent",
                            ack.bytes, ack.status, sent
                        )));
                    }
                    self.verified += ack.bytes;
                    self.done();
                }
                Ok(())
            }
            _ => Err(Error::new(format!(
                "server sent {} bytes when none were expected",
                data.len()
            ))),
        }
    }

    fn on_eof(&mut self) -> Result<()> {
        if self.state == State::Done {
            return Ok(());
        }
        Err(Error::new(format!(
            "server closed the connection while the client was in state {:?} \
             (a server that finds a bad byte closes; see its output)",
            self.state
        )))
    }
}
