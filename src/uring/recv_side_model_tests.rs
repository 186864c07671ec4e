//! Model-based property tests of [`RecvSide`] and its [`RecvShare`]: random sequences of arms,
//! completions (data with and without `F_MORE`, one or several ring buffers, `ENOBUFS`, EOF,
//! errors, cancels), a handler that keeps and drops buffers in any order, pauses, resumes and
//! closes, against a simulated kernel with a finite provided-buffer ring and a model of what
//! the connection holds.
//!
//! Invariants: at most one receive is in the kernel; a receive is armed exactly when the model
//! says it may be (not paused, throttled, after EOF or closing), from the ring when it has
//! buffers and into an own buffer otherwise; the own buffer comes back with the receive's
//! final completion and not before, the same memory the kernel was given; the share counts
//! exactly the buffers the handler holds, throttles at its limit and lists the connection for
//! a resume once, at half; a cancel is asked for at most once per receive; received byte
//! counts add up; and a connection that holds nothing is never left unable to receive.

use std::rc::Rc;

use proptest::prelude::*;

use super::{Arm, RecvEvent, RecvShare, RecvSide, ResumeList};

#[derive(Debug, Clone)]
enum Step {
    Arm,
    /// The armed receive completes with data: bytes, ring buffers (for a ring receive), more.
    Data(usize, u32, bool),
    /// The armed receive ends: 0 EOF, 1 ECONNRESET, 2 ECANCELED (only once asked for).
    End(u8),
    /// The handler drops the buffer at this index (modulo how many it holds).
    Drop(usize),
    Pause,
    Resume,
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Arm),
        6 => (1usize..=4 * OWN, 1u32..4, any::<bool>()).prop_map(|(n, b, m)| Step::Data(n, b, m)),
        1 => (0u8..3).prop_map(Step::End),
        5 => any::<usize>().prop_map(Step::Drop),
        1 => Just(Step::Pause),
        1 => Just(Step::Resume),
        1 => Just(Step::Close),
    ]
}

/// Bytes of an own buffer and of a ring buffer.
const OWN: usize = 64;

/// What the kernel has: the receive armed (and the own buffer it was given), free ring buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum InKernel {
    None,
    Ring,
    Own { ptr: usize, len: usize },
}

struct World {
    r: RecvSide,
    resume: ResumeList,
    limit: u32,
    ring_free: u32,
    k: InKernel,
    /// A cancel of the receive in the kernel was asked for.
    cancel_asked: bool,
    /// Buffers the handler holds: `true` for a ring buffer, `false` for an own one.
    held: Vec<bool>,
    paused: bool,
    eof: bool,
    closed: bool,
    /// Throttled, per the model: set at the limit, cleared at half.
    throttled: bool,
    resumes_due: usize,
    bytes_in: usize,
    bytes_delivered: usize,
}

impl World {
    fn new(limit: u32, ring: u32) -> World {
        let resume: ResumeList = Rc::default();
        let share = RecvShare::new(limit, (3, 9), Rc::clone(&resume));
        World {
            r: RecvSide::new(share, false),
            resume,
            limit: limit.max(1),
            ring_free: ring,
            k: InKernel::None,
            cancel_asked: false,
            held: Vec::new(),
            paused: false,
            eof: false,
            closed: false,
            throttled: false,
            resumes_due: 0,
            bytes_in: 0,
            bytes_delivered: 0,
        }
    }

    fn may_arm(&self) -> bool {
        self.k == InKernel::None && !self.paused && !self.eof && !self.closed && !self.throttled
    }

    fn arm(&mut self) {
        let expect = self.may_arm();
        match self.r.arm(self.ring_free, OWN) {
            None => assert!(!expect, "no receive armed although one may be"),
            Some(a) => {
                assert!(expect, "a receive armed when none may be ({:?})", self.k);
                self.k = match a {
                    Arm::Ring => {
                        assert!(self.ring_free > 0, "a ring receive with an empty ring");
                        InKernel::Ring
                    }
                    Arm::Own { ptr, len } => {
                        assert_eq!(self.ring_free, 0, "an own buffer while the ring has some");
                        assert_eq!(len, OWN);
                        InKernel::Own {
                            ptr: ptr as usize,
                            len,
                        }
                    }
                };
                self.cancel_asked = false;
            }
        }
        assert_eq!(self.r.is_armed(), self.k != InKernel::None);
    }

    /// The model's part of a completion handing over `ring` ring buffers and maybe the own one.
    fn give(&mut self, ring: u32, own: bool) -> bool {
        let mut filled = false;
        let kinds = std::iter::repeat_n(true, ring as usize).chain(own.then_some(false));
        for is_ring in kinds {
            self.held.push(is_ring);
            if self.held.len() as u32 >= self.limit && !self.throttled {
                self.throttled = true;
                filled = true;
            }
        }
        filled
    }

    fn complete(&mut self, res: i32, more: bool, ring_bufs: u32) {
        let was = std::mem::replace(&mut self.k, InKernel::None);
        let own_back = matches!(was, InKernel::Own { .. }) && !more;
        let filled = self.give(ring_bufs, own_back && res > 0);
        let step = self.r.complete(res, more, ring_bufs);
        if more {
            self.k = was;
        }
        assert_eq!(step.ended, !more);
        assert_eq!(step.share_filled, filled, "share filled");
        match (&was, &step.own) {
            (InKernel::Own { ptr, len }, Some(b)) => {
                assert!(!more);
                assert_eq!(
                    (b.as_ptr() as usize, b.len()),
                    (*ptr, *len),
                    "the same buffer back"
                );
            }
            (InKernel::Own { .. }, None) => panic!("an own receive ended without its buffer"),
            (_, Some(_)) => panic!("an own buffer back from a ring receive"),
            _ => {}
        }
        let expect_cancel = filled && more && was == InKernel::Ring && !self.cancel_asked;
        assert_eq!(step.cancel, expect_cancel, "cancel when the share fills");
        if step.cancel {
            self.cancel_asked = true;
        }
        if !more {
            self.cancel_asked = false;
        }
        match step.event {
            RecvEvent::Data(n) => {
                assert_eq!(n as i32, res);
                self.bytes_delivered += n;
            }
            RecvEvent::Eof { first } => {
                assert_eq!(res, 0);
                assert_eq!(first, !self.eof, "EOF reported first once");
                self.eof = true;
            }
            RecvEvent::NoBuffers => assert_eq!(res, -libc::ENOBUFS),
            RecvEvent::Cancelled => assert_eq!(res, -libc::ECANCELED),
            RecvEvent::Failed(e) => assert_eq!(-e, res),
        }
        // An EOF's empty ring buffer is dropped at once, as the core does.
        if res == 0 && ring_bufs > 0 {
            self.drop_at(self.held.len() - 1);
        }
        assert_eq!(self.r.is_armed(), self.k != InKernel::None);
    }

    fn data(&mut self, n: usize, bufs: u32, more: bool) {
        match self.k {
            InKernel::None => {}
            InKernel::Own { len, .. } => {
                let n = n.min(len);
                self.bytes_in += n;
                self.complete(n as i32, false, 0);
            }
            InKernel::Ring if self.ring_free == 0 => {
                // The ring ran dry: the multishot receive ends.
                self.complete(-libc::ENOBUFS, false, 0);
            }
            InKernel::Ring => {
                let bufs = bufs.min(self.ring_free);
                let n = n.clamp(bufs as usize, bufs as usize * OWN);
                self.ring_free -= bufs;
                self.bytes_in += n;
                self.complete(n as i32, more, bufs);
            }
        }
    }

    fn end(&mut self, how: u8) {
        if self.k == InKernel::None {
            return;
        }
        match how {
            0 => {
                let bufs = u32::from(self.k == InKernel::Ring && self.ring_free > 0);
                self.ring_free -= bufs;
                self.complete(0, false, bufs);
            }
            1 => self.complete(-libc::ECONNRESET, false, 0),
            _ if self.cancel_asked => self.complete(-libc::ECANCELED, false, 0),
            _ => {}
        }
    }

    fn drop_at(&mut self, i: usize) {
        if self.held.remove(i) {
            self.ring_free += 1;
        }
        self.r.share.give_back();
        if self.throttled && self.held.len() as u32 <= self.limit / 2 {
            self.throttled = false;
            self.resumes_due += 1;
        }
        assert_eq!(
            self.resume.borrow().len(),
            self.resumes_due,
            "resume listed at half"
        );
    }

    fn want_cancel(&mut self, asked: bool) {
        let expect = self.k != InKernel::None && !self.cancel_asked;
        assert_eq!(asked, expect, "cancel on pause/close");
        if asked {
            self.cancel_asked = true;
        }
    }

    fn check(&self) {
        assert_eq!(
            self.r.share.held.get() as usize,
            self.held.len(),
            "share counts what is held"
        );
        assert_eq!(self.r.share.throttled(), self.throttled, "throttled");
        assert_eq!(
            self.bytes_in, self.bytes_delivered,
            "every received byte reported"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn recv_side_follows_the_model(
        limit in 1u32..8,
        ring in 0u32..6,
        steps in prop::collection::vec(step(), 1..120),
    ) {
        let mut w = World::new(limit, ring);
        for s in steps {
            match s {
                Step::Arm => w.arm(),
                Step::Data(n, b, m) => w.data(n, b, m),
                Step::End(how) => w.end(how),
                Step::Drop(i) if !w.held.is_empty() => {
                    let i = i % w.held.len();
                    w.drop_at(i);
                }
                Step::Drop(_) => {}
                Step::Pause => {
                    let asked = w.r.pause();
                    w.paused = true;
                    w.want_cancel(asked);
                }
                Step::Resume => {
                    w.r.resume();
                    w.paused = false;
                }
                Step::Close => {
                    let asked = w.r.close();
                    w.closed = true;
                    w.want_cancel(asked);
                }
            }
            w.check();
        }
        // Drain: the kernel ends what it has, the handler gives everything back; a connection
        // that holds nothing and may receive is armed again.
        if w.k != InKernel::None {
            w.complete(-libc::ECANCELED, false, 0);
        }
        while !w.held.is_empty() {
            w.drop_at(0);
        }
        w.check();
        prop_assert!(!w.r.share.throttled(), "throttled while holding nothing");
        w.paused = false;
        w.r.resume();
        w.arm();
        prop_assert_eq!(w.r.is_armed(), !w.eof && !w.closed, "able to receive again");
    }
}
