//! A connection's send direction as a state machine: buffers queued in order, a chain of
//! linked sends in the kernel, and finished sends waiting for their zero-copy notifications
//! or for delivery to the handler. It does no I/O: [`SendQueue::start`] says what to submit,
//! [`SendQueue::on_complete`] and [`SendQueue::on_notif`] take the completions, and
//! [`SendQueue::pop_done`] hands back what is finished.
//!
//! Order: the kernel orders linked SQEs, but not two chains in flight on one socket (a send
//! that waits for room could be overtaken by a later one that finds it). So a chain is started
//! only when the previous one has fully completed, and a chain cut short (a short send, an
//! `EOPNOTSUPP` zero-copy refusal, a link cancelled behind them) puts its unfinished sends
//! back at the front of the queue, each with the bytes already written skipped.
//!
//! Buffers: a buffer is in exactly one of `queued`, `chain` or `done`; it leaves `done` only
//! when no notification is owed for any send of it, so the kernel never reads memory the
//! application has back.

use std::collections::VecDeque;
use std::io;

use super::completion::errno_error;
use super::send_buf::SendBuf;

/// Most bytes one send SQE asks for.
pub(crate) const MAX_SEND: usize = 1 << 30;

/// How sends are built on this connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendSettings {
    /// Zero-copy sends are supported by the kernel and wanted.
    pub zc: bool,
    /// Registered buffers at least this long go zero-copy.
    pub zc_threshold: usize,
    /// Most sends in one chain.
    pub max_chain: usize,
    /// Most bytes one send asks for ([`MAX_SEND`]; smaller in tests). A send capped by it
    /// ends its chain: the kernel sees it complete, so a send linked behind it would run
    /// before the buffer's rest.
    pub max_send: usize,
}

/// One send to submit: the bytes, and whether it is zero-copy from registered buffer `fixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubmitSend {
    /// The tag its completions carry.
    pub seq: u32,
    pub ptr: *const u8,
    pub len: u32,
    pub fixed: Option<u16>,
    pub zc: bool,
    /// Linked to the next send of the chain.
    pub link: bool,
}

/// What a final send completion means for the connection.
#[derive(Debug)]
pub(crate) enum SendEvent {
    /// Nothing beyond starting the next chain, if the queue has one ([`SendQueue::start`]).
    Nothing,
    /// A send failed: the connection closes with this error.
    Failed(io::Error),
}

/// A buffer waiting to be sent, with the bytes already written.
struct Pending {
    buf: SendBuf,
    from_handle: bool,
    off: usize,
    /// Names the buffer in [`SendQueue::owed`].
    id: u32,
}

/// A buffer in the current chain.
struct InChain {
    p: Pending,
    seq: u32,
    zc: bool,
    /// Bytes its SQE asked for.
    asked: u32,
    /// Its final completion is in.
    completed: bool,
    /// Set when it finished: all written, or failed.
    outcome: Option<io::Result<usize>>,
}

/// A finished send.
pub(crate) struct Done {
    pub buf: SendBuf,
    pub from_handle: bool,
    pub res: io::Result<usize>,
    id: u32,
}

/// The send direction of one connection.
pub(crate) struct SendQueue {
    queued: VecDeque<Pending>,
    chain: VecDeque<InChain>,
    done: VecDeque<Done>,
    /// Final completions due for the chain in the kernel.
    chain_due: usize,
    seq: u32,
    next_id: u32,
    /// Zero-copy notifications still due: (send tag, buffer id). A list of the queue's own
    /// rather than one per buffer, so steady-state sending allocates nothing.
    owed: Vec<(u32, u32)>,
    /// Zero-copy is still allowed on this socket (`EOPNOTSUPP` turns it off).
    zc_ok: bool,
    /// The connection is closing: cancelled sends are finished, not retried.
    closing: bool,
    /// Each send is one message (seqpacket): a short send fails the connection, since
    /// sending the rest would make it a second message.
    messages: bool,
    /// The chain in the kernel was cut by a failed or short send.
    cut: bool,
    /// Scratch space for the unfinished sends of a chain that ended (kept: no allocation).
    retry: VecDeque<Pending>,
}

impl SendQueue {
    /// An empty queue whose send tags start at `first_seq`.
    pub(crate) fn new(first_seq: u32) -> SendQueue {
        SendQueue {
            queued: VecDeque::new(),
            chain: VecDeque::new(),
            done: VecDeque::new(),
            chain_due: 0,
            seq: first_seq,
            next_id: 0,
            owed: Vec::new(),
            zc_ok: true,
            closing: false,
            messages: false,
            cut: false,
            retry: VecDeque::new(),
        }
    }

    /// This queue's sends are messages (seqpacket): see the field.
    pub(crate) fn messages(mut self) -> SendQueue {
        self.messages = true;
        self
    }

    /// The tag the next send after this queue's last would get.
    pub(crate) fn next_seq(&self) -> u32 {
        self.seq.wrapping_add(1)
    }

    /// Sends queued, in the kernel, or finished and not yet handed back.
    pub(crate) fn len(&self) -> usize {
        self.queued.len() + self.chain.len() + self.done.len()
    }

    /// Sends queued or in the kernel (not yet finished).
    pub(crate) fn unfinished(&self) -> usize {
        self.queued.len() + self.chain.len()
    }

    /// Whether a chain is in the kernel.
    pub(crate) fn in_kernel(&self) -> bool {
        !self.chain.is_empty()
    }

    /// Nothing queued, in the kernel, or waiting: the write side is idle.
    pub(crate) fn is_idle(&self) -> bool {
        self.len() == 0
    }

    /// Queues `buf` after what is queued.
    pub(crate) fn push(&mut self, buf: SendBuf, from_handle: bool) {
        self.next_id = self.next_id.wrapping_add(1);
        self.queued.push_back(Pending {
            buf,
            from_handle,
            off: 0,
            id: self.next_id,
        });
    }

    /// The next chain to submit into `out` (cleared first), if none is in the kernel: up to
    /// `max_chain` queued sends, each linked to the next. Empty buffers finish at once.
    pub(crate) fn start(&mut self, s: &SendSettings, out: &mut Vec<SubmitSend>) {
        out.clear();
        if self.in_kernel() || self.closing {
            return;
        }
        while out.len() < s.max_chain.max(1) {
            let Some(p) = self.queued.pop_front() else {
                break;
            };
            let (ptr, len, fixed) = p.buf.raw();
            if p.off >= len {
                self.done.push_back(Done {
                    buf: p.buf,
                    from_handle: p.from_handle,
                    res: Ok(len),
                    id: p.id,
                });
                continue;
            }
            let rest = (len - p.off).min(s.max_send.max(1));
            let capped = rest < len - p.off;
            let zc = s.zc && self.zc_ok && rest >= s.zc_threshold && fixed.is_some();
            self.seq = self.seq.wrapping_add(1);
            out.push(SubmitSend {
                seq: self.seq,
                // In bounds: off < len.
                ptr: ptr.wrapping_add(p.off),
                len: rest as u32,
                fixed,
                zc,
                link: true,
            });
            self.chain.push_back(InChain {
                p,
                seq: self.seq,
                zc,
                asked: rest as u32,
                completed: false,
                outcome: None,
            });
            if capped {
                break;
            }
        }
        if let Some(last) = out.last_mut() {
            last.link = false;
        }
        self.chain_due = out.len();
        self.cut = false;
    }

    /// Whether the chain in the kernel was cut (a send in it failed or fell short): the
    /// kernel cancels its later sends itself.
    pub(crate) fn cut(&self) -> bool {
        self.cut
    }

    /// The tags of the sends in the kernel, for cancelling them.
    pub(crate) fn in_kernel_seqs(&self) -> impl Iterator<Item = u32> + '_ {
        self.chain.iter().filter(|c| !c.completed).map(|c| c.seq)
    }

    /// Whether `tag_matches(seq)` names a send of this queue in the kernel.
    pub(crate) fn owns(&self, tag_matches: impl Fn(u32) -> bool) -> Option<u32> {
        self.chain
            .iter()
            .find(|c| !c.completed && tag_matches(c.seq))
            .map(|c| c.seq)
    }

    /// From now on cancelled or cut sends finish with an error instead of being retried.
    pub(crate) fn set_closing(&mut self) {
        self.closing = true;
    }

    /// Takes the final completion of send `seq` (`more`: a zero-copy notification follows).
    pub(crate) fn on_complete(&mut self, seq: u32, res: i32, more: bool) -> SendEvent {
        let Some(c) = self.chain.iter_mut().find(|c| c.seq == seq && !c.completed) else {
            return SendEvent::Nothing;
        };
        c.completed = true;
        self.chain_due = self.chain_due.saturating_sub(1);
        if more {
            self.owed.push((seq, c.p.id));
        }
        let len = c.p.buf.len();
        let mut failed = None;
        // Anything but a send done in full for what it asked breaks the link, cancels too.
        if res < 0 || (res as u32) < c.asked {
            self.cut = true;
        }
        if res >= 0 {
            c.p.off += res as usize;
            if c.p.off >= len {
                c.outcome = Some(Ok(len));
            } else if res == 0 {
                let e = io::Error::new(io::ErrorKind::WriteZero, "send: wrote 0 bytes");
                failed = Some(io::Error::new(e.kind(), e.to_string()));
                c.outcome = Some(Err(e));
            } else if self.messages {
                // A part of a message went out (vsock seqpacket short of credit): the rest
                // sent now would arrive as a message of its own, so the stream is broken.
                let e = io::Error::other(format!(
                    "send: the kernel took {} of a {len}-byte message; the rest would arrive \
                     as a separate message (keep bytes in flight below the peer's buffer size)",
                    c.p.off
                ));
                failed = Some(io::Error::new(e.kind(), e.to_string()));
                c.outcome = Some(Err(e));
            }
            // Else short: retried from `off` in the next chain.
        } else if res == -libc::ECANCELED {
            // Cancelled by a close, or cut from a chain whose earlier send fell short.
            if self.closing {
                c.outcome = Some(Err(partial(errno_error("send", libc::ECANCELED), c)));
            }
        } else if res == -libc::EOPNOTSUPP && c.zc && !self.closing {
            // SEND_ZC is not supported on this family (AF_UNIX): copy from now on.
            self.zc_ok = false;
        } else {
            // Every other error fails the connection, `ENOBUFS` too: on a send it means the
            // kernel reset the connection (see `errno_error`), so there is nothing to retry.
            let e = errno_error("send", -res);
            failed = Some(io::Error::new(e.kind(), e.to_string()));
            c.outcome = Some(Err(partial(e, c)));
        }
        self.retire_finished();
        if let Some(e) = failed {
            return SendEvent::Failed(e);
        }
        if self.chain_due > 0 {
            return SendEvent::Nothing;
        }
        // The chain is over: what did not finish goes back to the front, in order.
        // Front to back, so finished ones come back in order; the retried ones then go back
        // to the queue's front in their order.
        while let Some(c) = self.chain.pop_front() {
            match c.outcome {
                Some(res) => self.done.push_back(done_of(c.p, res)),
                None if self.closing => {
                    let e = partial(errno_error("send", libc::ECANCELED), &c);
                    self.done.push_back(done_of(c.p, Err(e)));
                }
                None => self.retry.push_back(c.p),
            }
        }
        while let Some(p) = self.retry.pop_back() {
            self.queued.push_front(p);
        }
        SendEvent::Nothing
    }

    /// Takes the zero-copy notification of the send whose tag matches: the kernel is done
    /// with its buffer. Returns whether one was due for that send.
    pub(crate) fn on_notif(&mut self, tag_matches: impl Fn(u32) -> bool) -> bool {
        match self.owed.iter().position(|&(seq, _)| tag_matches(seq)) {
            Some(i) => {
                self.owed.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether a notification is due for buffer `id`.
    fn owes(&self, id: u32) -> bool {
        self.owed.iter().any(|&(_, b)| b == id)
    }

    /// The oldest finished send, once the kernel no longer reads its buffer: sends come back
    /// in the order they were queued.
    pub(crate) fn pop_done(&mut self) -> Option<Done> {
        if self.owes(self.done.front()?.id) {
            return None;
        }
        self.done.pop_front()
    }

    /// Queued sends never submitted (on close), oldest first; the caller fails them.
    pub(crate) fn take_queued(&mut self) -> Option<(SendBuf, bool, usize)> {
        if self.queued.front().is_some_and(|p| self.owes(p.id)) {
            // A cut zero-copy send back in the queue: its notification is still due.
            return None;
        }
        self.queued
            .pop_front()
            .map(|p| (p.buf, p.from_handle, p.off))
    }

    /// Moves the chain's finished head into `done`, in order.
    fn retire_finished(&mut self) {
        while self.chain.front().is_some_and(|c| c.outcome.is_some()) {
            let c = self.chain.pop_front().expect("front checked");
            let res = c.outcome.expect("checked");
            self.done.push_back(done_of(c.p, res));
        }
    }
}

fn done_of(p: Pending, res: io::Result<usize>) -> Done {
    Done {
        buf: p.buf,
        from_handle: p.from_handle,
        res,
        id: p.id,
    }
}

/// `e`, saying how much of the buffer went out before it, as a [`PartialSend`] source.
fn partial(e: io::Error, c: &InChain) -> io::Error {
    partial_error(e, c.p.off, c.p.buf.len())
}

/// Wraps `e` in a [`PartialSend`] that says `sent` of `len` bytes were written.
pub(crate) fn partial_error(e: io::Error, sent: usize, len: usize) -> io::Error {
    io::Error::new(
        e.kind(),
        PartialSend {
            sent,
            len,
            source: e,
        },
    )
}

/// The error of a send that did not finish, with how many of its bytes went out before it
/// stopped: the payload of the `io::Error` that [`Handler::on_sent`] gets.
///
/// ```
/// # use uring_vsock::uring::PartialSend;
/// fn bytes_written(res: &std::io::Result<usize>) -> usize {
///     match res {
///         Ok(n) => *n,
///         Err(e) => PartialSend::of(e).map_or(0, |p| p.sent),
///     }
/// }
/// ```
///
/// [`Handler::on_sent`]: crate::uring::Handler::on_sent
#[derive(Debug)]
pub struct PartialSend {
    /// Bytes of the buffer written before the send stopped.
    pub sent: usize,
    /// The buffer's length.
    pub len: usize,
    source: io::Error,
}

impl PartialSend {
    /// The partial-send details of an `on_sent` error, if it carries them.
    pub fn of(e: &io::Error) -> Option<&PartialSend> {
        e.get_ref()?.downcast_ref::<PartialSend>()
    }
}

impl std::fmt::Display for PartialSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} after {} of {} bytes",
            self.source, self.sent, self.len
        )
    }
}

impl std::error::Error for PartialSend {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
#[path = "send_queue_model_tests.rs"]
mod model_tests;
