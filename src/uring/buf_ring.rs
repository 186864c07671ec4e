//! The provided-buffer ring of a worker: `entries` receive buffers that the kernel picks from
//! for multishot receives, and [`RecvBuf`], one such buffer lent to the application.
//!
//! Ownership: a buffer whose id is in the ring (between head and tail) belongs to the kernel,
//! which may write it at any time. A completion hands buffer ids back to us (one, or with
//! receive bundles several consecutive ring entries); each becomes a [`RecvBuf`] and stays
//! ours (nobody else can name it) until the `RecvBuf` is dropped, which queues the id to go
//! back at the tail. So the kernel never writes a buffer the application reads, and a buffer
//! is never in the ring twice.
//!
//! Bundles: a bundle completion names only its first buffer; the others are the ring entries
//! after it, in ring order. So the ring keeps which id it put at each entry, and returned ids
//! are put back ([`publish`](BufRing::publish)) only when the worker has seen every completion
//! the kernel posted: then no entry a completion still has to name is overwritten. (The ring
//! has as many entries as buffers, so the tail never laps an entry the kernel took from
//! without us having seen its completion.)

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::recv_side::RecvShare;
use super::region::{page_round, Region};

/// One entry of the ring as the kernel reads it (`struct io_uring_buf`). The crate keeps its
/// own copy private, so the layout is defined here; the tail of the ring overlays the `resv`
/// field of entry 0, which is why entries are written field by field and never as a whole.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// The offset of the ring's tail (the `resv` field of entry 0).
const TAIL_OFFSET: usize = 14;

/// The ring and its buffers; shared (`Rc`) by the worker and every outstanding [`RecvBuf`].
pub(crate) struct BufRing {
    entries_mem: Region,
    bufs: Region,
    entries: u16,
    buf_size: u32,
    bgid: u16,
    /// Our copy of the tail; the kernel only reads the one in `entries_mem`.
    tail: Cell<u16>,
    /// Buffers currently given to the kernel.
    in_ring: Cell<u32>,
    /// Which buffer id each ring entry was given (by entry index), and where each buffer id
    /// went (its tail value when pushed): how a bundle's later buffers are found.
    entry_bid: Box<[Cell<u16>]>,
    bid_pos: Box<[Cell<u16>]>,
    /// Whether each buffer id is ours (out of the ring): a bundle that names one twice is
    /// refused instead of handing out a buffer the kernel may write.
    ours: Box<[Cell<bool>]>,
    /// Ids given back by dropped [`RecvBuf`]s, for the next [`publish`](Self::publish).
    returned: RefCell<Vec<u16>>,
    /// Index of `bufs` in the ring's registered-buffer table, once registered.
    fixed_index: Cell<Option<u16>>,
    /// Receives take bundles of buffers from this ring.
    bundles: Cell<bool>,
}

impl BufRing {
    /// Allocates a ring of `entries` (a power of two, at most 32768) buffers of `buf_size`
    /// bytes for buffer group `bgid`, all buffers owned by us until [`fill`](Self::fill).
    pub(crate) fn new(entries: u16, buf_size: u32, bgid: u16) -> io::Result<Rc<BufRing>> {
        if !entries.is_power_of_two() || entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("provided-buffer ring entries must be a power of two up to 32768, not {entries}"),
            ));
        }
        let entries_mem = Region::new(entries as usize * std::mem::size_of::<RingEntry>())?;
        // Up to 2^47 bytes: too much for a 32-bit usize.
        let bytes = (entries as usize)
            .checked_mul(buf_size as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("receive ring of {entries} x {buf_size} bytes does not fit in memory"),
                )
            })?;
        let bufs = Region::new(bytes)?;
        Ok(Rc::new(BufRing {
            entries_mem,
            bufs,
            entries,
            buf_size,
            bgid,
            tail: Cell::new(0),
            in_ring: Cell::new(0),
            entry_bid: (0..entries).map(|_| Cell::new(0)).collect(),
            bid_pos: (0..entries).map(|_| Cell::new(0)).collect(),
            ours: (0..entries).map(|_| Cell::new(true)).collect(),
            returned: RefCell::new(Vec::with_capacity(entries as usize)),
            fixed_index: Cell::new(None),
            bundles: Cell::new(false),
        }))
    }

    /// Registers the ring with the kernel under its group id.
    pub(crate) fn register(&self, submitter: &io_uring::Submitter<'_>) -> io::Result<()> {
        // SAFETY: entries_mem holds `entries` ring entries, is page aligned and lives as long
        // as this BufRing, which the worker keeps until the ring fd is closed.
        unsafe {
            submitter.register_buf_ring_with_flags(
                self.entries_mem.as_ptr() as u64,
                self.entries,
                self.bgid,
                0,
            )
        }
    }

    /// Gives every buffer to the kernel (after registration).
    pub(crate) fn fill(&self) {
        for bid in 0..self.entries {
            self.push(bid);
        }
        self.store_tail();
    }

    /// Puts the buffers given back since the last call into the ring. Call only when every
    /// completion the kernel posted has been taken (see the module docs).
    pub(crate) fn publish(&self) {
        let mut returned = self.returned.borrow_mut();
        if returned.is_empty() {
            return;
        }
        for bid in returned.drain(..) {
            self.push(bid);
        }
        self.store_tail();
    }

    /// The buffer group id receives name.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Buffers the kernel can pick from once the returned ones are published (usually before
    /// anything staged now is submitted; when not, a receive may find the ring empty and is
    /// simply re-armed).
    pub(crate) fn available(&self) -> u32 {
        self.in_ring.get() + self.returned.borrow().len() as u32
    }

    /// Makes receives from this ring take bundles (the kernel has them, and they are wanted).
    pub(crate) fn set_bundles(&self, on: bool) {
        self.bundles.set(on);
    }

    /// Whether receives from this ring take bundles.
    pub(crate) fn bundles(&self) -> bool {
        self.bundles.get()
    }

    /// How many buffers the ring has.
    pub(crate) fn entries(&self) -> u32 {
        u32::from(self.entries)
    }

    /// The size of each buffer.
    pub(crate) fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// The iovec covering every buffer, for the registered-buffer table (so a received buffer
    /// can be sent back with a fixed-buffer send).
    pub(crate) fn iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.bufs.as_ptr().cast(),
            iov_len: self.bufs.len(),
        }
    }

    /// Records where `iovec` sits in the registered-buffer table.
    pub(crate) fn set_fixed_index(&self, index: u16) {
        self.fixed_index.set(Some(index));
    }

    /// Bytes of memory the kernel pins for this ring (for the memory-lock budget).
    pub(crate) fn locked_bytes(entries: usize, buf_size: usize) -> usize {
        page_round(entries.saturating_mul(std::mem::size_of::<RingEntry>()))
            .saturating_add(page_round(entries.saturating_mul(buf_size)))
    }

    /// Takes buffer `bid`, which a completion says holds `len` received bytes, for the
    /// connection whose share `share` is.
    pub(crate) fn take(
        self: &Rc<Self>,
        bid: u16,
        len: u32,
        share: Option<Rc<RecvShare>>,
    ) -> Option<RecvBuf> {
        if bid >= self.entries || len > self.buf_size || self.ours[bid as usize].get() {
            log::error!("uring-vsock: a receive completion named buffer {bid} ({len} bytes), which is not in the ring");
            return None;
        }
        self.ours[bid as usize].set(true);
        self.in_ring.set(self.in_ring.get() - 1);
        Some(RecvBuf {
            data: Data::Ring {
                ring: Rc::clone(self),
                bid,
            },
            len,
            msg_len: len,
            share,
        })
    }

    /// Takes the buffers of a bundle completion: `len` bytes from buffer `first` on, filling
    /// each ring entry after it in turn, for the connection whose share `share` is. `None`
    /// (nothing taken) if the completion names buffers that are not in the ring, which would
    /// mean the ring's bookkeeping broke.
    pub(crate) fn take_bundle(
        self: &Rc<Self>,
        first: u16,
        len: u32,
        share: &Rc<RecvShare>,
    ) -> Option<Bundle> {
        let count = len.div_ceil(self.buf_size);
        let start = self.bid_pos.get(first as usize)?.get();
        let in_ring = |i: u32| !self.ours[self.bid_at(start, i) as usize].get();
        // The entry recorded for `first` must still hold it (the ring was not refilled there
        // before this completion), and every buffer named must be in the ring.
        let here = self.bid_at(start, 0) == first;
        if !here || count == 0 || count > self.in_ring.get() || !(0..count).all(in_ring) {
            log::error!(
                "uring-vsock: a receive bundle of {len} bytes from buffer {first} names buffers \
                 the ring does not hold"
            );
            return None;
        }
        for i in 0..count {
            self.ours[self.bid_at(start, i) as usize].set(true);
        }
        self.in_ring.set(self.in_ring.get() - count);
        Some(Bundle {
            ring: Rc::clone(self),
            share: Rc::clone(share),
            start,
            next: 0,
            count,
            left: len,
        })
    }

    /// The buffer id at ring position `start + i`.
    fn bid_at(&self, start: u16, i: u32) -> u16 {
        self.entry_bid[(start.wrapping_add(i as u16) & (self.entries - 1)) as usize].get()
    }

    /// Writes buffer `bid` into the entry at the tail and moves our tail past it; the kernel
    /// sees it at the next [`store_tail`](Self::store_tail).
    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let idx = (tail & (self.entries - 1)) as usize;
        let base = self.entries_mem.as_ptr().cast::<RingEntry>();
        // SAFETY: idx < entries, so the entry lies inside entries_mem. The entry is past the
        // published tail, so the kernel does not read it until the tail store; fields are
        // written one by one so entry 0's `resv` (the shared tail) is not touched.
        unsafe {
            let entry = base.add(idx);
            std::ptr::addr_of_mut!((*entry).addr).write(self.buf_ptr(bid) as u64);
            std::ptr::addr_of_mut!((*entry).len).write(self.buf_size);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.entry_bid[idx].set(bid);
        self.bid_pos[bid as usize].set(tail);
        self.ours[bid as usize].set(false);
        self.tail.set(tail.wrapping_add(1));
        self.in_ring.set(self.in_ring.get() + 1);
    }

    /// Publishes our tail to the kernel.
    fn store_tail(&self) {
        // SAFETY: the tail is a 2-byte aligned u16 at offset 14 of the page-aligned mapping,
        // which the kernel reads atomically; the release store publishes the entries written
        // before it.
        unsafe {
            let tail_ptr = self
                .entries_mem
                .as_ptr()
                .add(TAIL_OFFSET)
                .cast::<AtomicU16>();
            (*tail_ptr).store(self.tail.get(), Ordering::Release);
        }
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY (of the arithmetic): bid < entries, so the offset is inside `bufs`.
        self.bufs
            .as_ptr()
            .wrapping_add(bid as usize * self.buf_size as usize)
    }
}

/// The buffers of one bundle completion, already ours, handed out in order as [`RecvBuf`]s;
/// those not handed out go back to the ring when it is dropped.
pub(crate) struct Bundle {
    ring: Rc<BufRing>,
    share: Rc<RecvShare>,
    start: u16,
    next: u32,
    count: u32,
    /// Received bytes not yet handed out.
    left: u32,
}

impl Bundle {
    /// How many buffers the bundle holds.
    pub(crate) fn len(&self) -> u32 {
        self.count
    }
}

impl Iterator for Bundle {
    type Item = RecvBuf;

    fn next(&mut self) -> Option<RecvBuf> {
        if self.next == self.count {
            return None;
        }
        let bid = self.ring.bid_at(self.start, self.next);
        let len = self.left.min(self.ring.buf_size);
        self.next += 1;
        self.left -= len;
        Some(RecvBuf {
            data: Data::Ring {
                ring: Rc::clone(&self.ring),
                bid,
            },
            len,
            msg_len: len,
            share: Some(Rc::clone(&self.share)),
        })
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        // Each buffer not handed out is given back (to the ring and to the share) as a
        // dropped RecvBuf would be.
        for buf in self.by_ref() {
            drop(buf);
        }
    }
}

/// Received bytes in a buffer of the worker's provided-buffer ring.
///
/// Owned by the application from `on_recv` until dropped: keep it, read it, or send it back
/// without a copy ([`Conn::send`](crate::uring::Conn::send) takes it through
/// [`SendBuf::from`](crate::uring::SendBuf)). Dropping it returns the buffer to the ring for the
/// next receive. It lives on the worker thread (it is not `Send`). A connection may hold a
/// bounded number at once (the builder's `recv_buffers_per_connection`): past it, its
/// receiving pauses until it gives half of them back, so a connection that keeps what it
/// receives never holds up the others.
///
/// ```
/// fn checksum(buf: &uring_vsock::uring::RecvBuf) -> u64 {
///     buf.iter().map(|&b| b as u64).sum()
/// }
/// ```
pub struct RecvBuf {
    data: Data,
    len: u32,
    /// A seqpacket message's full length (the completion's result, `MSG_TRUNC`); `len` for
    /// stream bytes.
    msg_len: u32,
    /// The receiving connection's share, given back on drop.
    share: Option<Rc<RecvShare>>,
}

enum Data {
    /// A buffer of the worker's ring.
    Ring { ring: Rc<BufRing>, bid: u16 },
    /// A buffer of the connection's own, used when the ring was empty.
    Own(Box<[u8]>),
}

impl RecvBuf {
    /// `len` bytes a receive wrote into the connection's own buffer `buf`.
    pub(crate) fn own(buf: Box<[u8]>, len: usize, share: Option<Rc<RecvShare>>) -> RecvBuf {
        let len = len.min(buf.len()) as u32;
        RecvBuf {
            len,
            msg_len: len,
            data: Data::Own(buf),
            share,
        }
    }

    /// Marks the buffer as holding the start of a seqpacket message of `msg_len` bytes
    /// (the receive's result with `MSG_TRUNC`); longer than the buffer means truncated.
    pub(crate) fn with_message_len(mut self, msg_len: u32) -> RecvBuf {
        self.msg_len = msg_len.max(self.len);
        self
    }

    /// Whether the message was longer than this buffer: its tail was discarded by the
    /// kernel (seqpacket connections, [`Engine::listen_seqpacket`]). Stream bytes are never
    /// truncated (`false`).
    ///
    /// Raise the builder's `recv_buffers` size to the largest message expected.
    ///
    /// [`Engine::listen_seqpacket`]: crate::uring::Engine::listen_seqpacket
    ///
    /// ```
    /// fn on_message(buf: &uring_vsock::uring::RecvBuf) {
    ///     if buf.truncated() {
    ///         log::warn!("message of {} bytes cut to {}", buf.message_len(), buf.len());
    ///     }
    /// }
    /// ```
    pub fn truncated(&self) -> bool {
        self.msg_len > self.len
    }

    /// On a seqpacket connection, the full length of the message this buffer holds the start
    /// of (more than `len()` when [`truncated`](Self::truncated)); otherwise `len()`.
    pub fn message_len(&self) -> usize {
        self.msg_len as usize
    }

    /// The buffer's address, length, and registered-buffer index (for fixed sends).
    pub(crate) fn fixed(&self) -> (*const u8, usize, Option<u16>) {
        match &self.data {
            Data::Ring { ring, bid } => (
                ring.buf_ptr(*bid),
                self.len as usize,
                ring.fixed_index.get(),
            ),
            Data::Own(b) => (b.as_ptr(), self.len as usize, None),
        }
    }
}

impl Deref for RecvBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.data {
            // SAFETY: the buffer is out of the ring (we own it until drop), `len` bytes were
            // written by the completed receive, and the memory lives as long as `ring`, which
            // we hold.
            Data::Ring { ring, bid } => unsafe {
                std::slice::from_raw_parts(ring.buf_ptr(*bid), self.len as usize)
            },
            Data::Own(b) => &b[..self.len as usize],
        }
    }
}

impl fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RecvBuf");
        if let Data::Ring { bid, .. } = &self.data {
            d.field("bid", bid);
        } else {
            d.field("own", &true);
        }
        d.field("len", &self.len);
        if self.msg_len != self.len {
            d.field("message_len", &self.msg_len);
        }
        d.finish()
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        if let Data::Ring { ring, bid } = &self.data {
            ring.returned.borrow_mut().push(*bid);
        }
        if let Some(share) = &self.share {
            share.give_back();
        }
    }
}
