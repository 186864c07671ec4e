//! Model-based property tests of [`SendQueue`]: random sequences of pushes, chain starts,
//! completions (full, short, `EOPNOTSUPP`, errors, `ENOBUFS` resets, link cancels), zero-copy
//! notifications
//! (due and stray), closes and deliveries, against a simulated kernel that executes a chain
//! in order and a model of the byte stream.
//!
//! `ENOBUFS` on a send is the kernel resetting the connection (vsock, Linux 6.12.94+: see
//! `completion.rs`): the model's socket is dead after it, so a send submitted after one (a
//! retry) fails the test, and the connection must fail with a reset.
//!
//! Invariants: the bytes the kernel writes are exactly a prefix of the bytes pushed, in order,
//! never twice; every buffer comes back exactly once, and never while a notification is
//! still due for it; a cut send says how much of it went out.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;

use super::super::buf_pool::BufferPool;
use super::{PartialSend, SendEvent, SendQueue, SendSettings, SubmitSend};

#[derive(Debug, Clone)]
enum Step {
    Push(usize),
    Start,
    /// The chain's head completes: 0 full, 1 short, 2 EOPNOTSUPP (zero-copy only), 3 EPIPE,
    /// 5 ENOBUFS (the kernel reset the connection).
    Complete(u8, usize),
    Notif,
    Close(usize),
    Deliver,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1usize..4096).prop_map(Step::Push),
        3 => Just(Step::Start),
        5 => (0u8..4, any::<usize>()).prop_map(|(k, n)| Step::Complete(k, n)),
        1 => any::<usize>().prop_map(|n| Step::Complete(5, n)),
        2 => Just(Step::Notif),
        1 => any::<usize>().prop_map(Step::Close),
        2 => Just(Step::Deliver),
    ]
}

/// The kernel's side: the chain it runs, the bytes it wrote, notifications due.
#[derive(Default)]
struct Kernel {
    chain: VecDeque<SubmitSend>,
    stream: Vec<u8>,
    /// (seq, buffer address) of notifications due; `stray`: posted although not promised.
    notifs: Vec<(u32, usize, bool)>,
    /// The socket was reset (a send failed with `ENOBUFS`): no send may run on it again.
    reset: bool,
}

struct World {
    q: SendQueue,
    k: Kernel,
    pool: BufferPool,
    settings: SendSettings,
    pushed: Vec<u8>,
    next_byte: u8,
    closing: bool,
    /// Buffers in the queue, by address (a pool buffer is pushed again only once back).
    live: HashMap<usize, usize>,
    pushes: usize,
    /// The push number of the last buffer that came back: they come back in order.
    last_back: usize,
    /// Bytes accounted by returned buffers: `Ok(len)` or a `PartialSend`'s `sent`.
    accounted: usize,
}

impl World {
    fn new(max_chain: usize) -> World {
        let pool = BufferPool::new(64, 4096).unwrap();
        pool.set_fixed_base(0); // registered: zero-copy eligible
        World {
            q: SendQueue::new(5 << 16),
            k: Kernel::default(),
            pool,
            settings: SendSettings {
                zc: true,
                zc_threshold: 1000,
                max_chain,
                // Small, so sends capped by it are common.
                max_send: 1500,
            },
            pushed: Vec::new(),
            next_byte: 0,
            closing: false,
            live: HashMap::new(),
            pushes: 0,
            last_back: 0,
            accounted: 0,
        }
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Push(len) => {
                if self.closing {
                    return;
                }
                let Some(mut buf) = self.pool.get() else {
                    return;
                };
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        self.next_byte = self.next_byte.wrapping_add(1);
                        self.next_byte
                    })
                    .collect();
                assert_eq!(buf.extend_from_slice(&data), len);
                self.pushed.extend_from_slice(&data);
                self.pushes += 1;
                assert!(self
                    .live
                    .insert(buf.as_ptr() as usize, self.pushes)
                    .is_none());
                self.q.push(buf, false);
            }
            Step::Start => {
                let mut chain = Vec::new();
                self.q.start(&self.settings, &mut chain);
                if !chain.is_empty() {
                    assert!(self.k.chain.is_empty(), "a chain started while one runs");
                    assert!(
                        !self.k.reset,
                        "a send submitted after ENOBUFS reset the connection (retried)"
                    );
                    assert!(!chain.last().unwrap().link, "the last send is not linked");
                    assert!(chain[..chain.len() - 1].iter().all(|s| s.link));
                }
                self.k.chain.extend(chain);
            }
            Step::Complete(kind, n) => self.complete(kind, n),
            Step::Notif => {
                if let Some((seq, _, stray)) = self.k.notifs.pop() {
                    assert_eq!(self.q.on_notif(|s| s == seq), !stray, "notif of {seq}");
                }
            }
            Step::Close(n) => {
                self.closing = true;
                self.q.set_closing();
                // The engine cancels what is in the kernel: the head may have written part.
                while !self.k.chain.is_empty() {
                    self.complete(4, n);
                }
            }
            Step::Deliver => self.deliver(),
        }
    }

    /// The chain's head completes as `kind` says; a failure cancels the rest of the chain.
    fn complete(&mut self, kind: u8, n: usize) {
        let Some(s) = self.k.chain.pop_front() else {
            return;
        };
        let len = s.len as usize;
        let (res, written) = match kind {
            0 => (len as i32, len),
            1 if len > 1 => {
                let k = 1 + n % (len - 1);
                (k as i32, k)
            }
            2 if s.zc => (-libc::EOPNOTSUPP, 0),
            3 => (-libc::EPIPE, 0),
            5 => {
                self.k.reset = true;
                (-libc::ENOBUFS, 0)
            }
            // A cancel: nothing, or part of it already written (the kernel reports that).
            4 if n % 2 == 1 && len > 1 => {
                let k = 1 + n % (len - 1);
                (k as i32, k)
            }
            4 => (-libc::ECANCELED, 0),
            _ => (len as i32, len),
        };
        // SAFETY: the buffer is held by the queue while its send is in the chain; this reads
        // what the kernel would.
        let bytes = unsafe { std::slice::from_raw_parts(s.ptr, written) };
        self.k.stream.extend_from_slice(bytes);
        let more = s.zc;
        if more {
            self.k.notifs.push((s.seq, s.ptr as usize, false));
        }
        let failed = written < len;
        let ev = self.q.on_complete(s.seq, res, more);
        if res == -libc::ENOBUFS {
            match &ev {
                SendEvent::Failed(e) => assert!(
                    e.to_string().contains("reset the connection"),
                    "ENOBUFS fails the connection, saying it was reset: {e}"
                ),
                SendEvent::Nothing => panic!("ENOBUFS did not fail the connection"),
            }
        }
        self.on_event(ev);
        if failed {
            // The link is cut: every later send of the chain is cancelled unrun. A cut
            // zero-copy send gets no F_MORE but may still get a (stray) notification.
            while let Some(c) = self.k.chain.pop_front() {
                if c.zc {
                    self.k.notifs.push((c.seq, c.ptr as usize, true));
                }
                let ev = self.q.on_complete(c.seq, -libc::ECANCELED, false);
                self.on_event(ev);
            }
        }
    }

    fn on_event(&mut self, ev: SendEvent) {
        if let SendEvent::Failed(_) = ev {
            self.closing = true;
            self.q.set_closing();
        }
    }

    fn deliver(&mut self) {
        while let Some(d) = self.q.pop_done() {
            let (addr, len) = (d.buf.as_ptr() as usize, d.buf.len());
            let due = self
                .k
                .notifs
                .iter()
                .any(|&(_, a, stray)| !stray && a >= addr && a < addr + len.max(1));
            assert!(
                !due,
                "a buffer came back while the kernel may still read it"
            );
            self.came_back(addr);
            self.accounted += match &d.res {
                Ok(n) => {
                    assert_eq!(*n, len);
                    len
                }
                Err(e) => PartialSend::of(e).map_or(0, |p| {
                    assert_eq!(p.len, len);
                    p.sent
                }),
            };
            drop(d);
        }
    }

    /// Ends everything: close, all completions and due notifications in, everything back.
    fn finish(mut self) {
        self.run(&Step::Close(0));
        while !self.k.notifs.is_empty() {
            self.run(&Step::Notif);
        }
        self.deliver();
        while let Some((buf, _, sent)) = self.q.take_queued() {
            assert!(sent <= buf.len());
            self.accounted += sent;
            self.came_back(buf.as_ptr() as usize);
        }
        assert!(self.q.is_idle(), "nothing left in the queue");
        assert!(
            self.live.is_empty(),
            "every buffer came back: {:?}",
            self.live
        );
        assert_eq!(self.pool.available(), 64, "every pool buffer is back");
        assert_eq!(
            self.accounted,
            self.k.stream.len(),
            "outcomes account for every byte"
        );
    }

    fn came_back(&mut self, addr: usize) {
        let n = self
            .live
            .remove(&addr)
            .expect("a buffer came back twice, or one never pushed");
        assert!(
            n > self.last_back,
            "buffer {n} came back after {}",
            self.last_back
        );
        self.last_back = n;
    }

    fn check_stream(&self) {
        assert!(
            self.pushed.starts_with(&self.k.stream),
            "the kernel wrote bytes out of order or twice"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sends_stay_in_order_and_every_buffer_comes_back_once(
        max_chain in 1usize..8,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let mut w = World::new(max_chain);
        for s in &steps {
            w.run(s);
            w.check_stream();
        }
        w.finish();
    }
}

/// Without failures, everything pushed is written, whatever the chain length.
#[test]
fn a_clean_run_writes_everything() {
    let mut w = World::new(3);
    for i in 0..20 {
        w.run(&Step::Push(500 + i * 100));
    }
    while !w.q.is_idle() {
        w.run(&Step::Start);
        while !w.k.chain.is_empty() {
            w.run(&Step::Complete(0, 0));
        }
        while !w.k.notifs.is_empty() {
            w.run(&Step::Notif);
        }
        w.deliver();
    }
    assert_eq!(w.k.stream, w.pushed);
    assert_eq!(w.accounted, w.pushed.len());
}

/// In message mode (seqpacket) a short send fails the connection instead of sending the rest
/// as a second message; a full one completes. Stream mode retries the rest.
#[test]
fn short_send_of_a_message_fails_instead_of_splitting_it() {
    let pool = BufferPool::new(4, 4096).unwrap();
    let settings = SendSettings {
        zc: false,
        zc_threshold: usize::MAX,
        max_chain: 4,
        max_send: 4096,
    };
    for messages in [true, false] {
        let q = SendQueue::new(1 << 16);
        let mut q = if messages { q.messages() } else { q };
        let mut buf = pool.get().unwrap();
        assert_eq!(buf.extend_from_slice(&[7; 1000]), 1000);
        q.push(buf, false);
        let mut chain = Vec::new();
        q.start(&settings, &mut chain);
        assert_eq!(chain.len(), 1);
        let ev = q.on_complete(chain[0].seq, 600, false);
        match (messages, ev) {
            (true, SendEvent::Failed(e)) => {
                assert!(e.to_string().contains("600 of a 1000-byte message"), "{e}")
            }
            (false, SendEvent::Nothing) => {
                // The rest goes out in the next chain, from where it stopped.
                let mut again = Vec::new();
                q.start(&settings, &mut again);
                assert_eq!(again.len(), 1);
                assert_eq!(again[0].len, 400);
            }
            (m, ev) => panic!("messages {m}: {ev:?}"),
        }
    }
}
