//! [`PoolShared`]: a send pool's memory and free list, shared by the
//! [`BufferPool`](super::BufferPool) that hands buffers out and the
//! [`SendBuf`](super::SendBuf)s that hold them (a dropped `SendBuf` puts its index back).

use std::cell::{Cell, RefCell};

use super::region::Region;

/// `count` buffers of `size` bytes in one region; a free buffer's index is in `free`.
pub(crate) struct PoolShared {
    mem: Region,
    size: usize,
    count: usize,
    free: RefCell<Vec<u16>>,
    /// Index of buffer 0 in the ring's registered-buffer table, once registered.
    fixed_base: Cell<Option<u16>>,
}

impl PoolShared {
    pub(crate) fn new(mem: Region, size: usize, count: usize) -> PoolShared {
        PoolShared {
            mem,
            size,
            count,
            free: RefCell::new((0..count as u16).rev().collect()),
            fixed_base: Cell::new(None),
        }
    }

    /// A free buffer's index, now the caller's.
    pub(crate) fn take(&self) -> Option<u16> {
        self.free.borrow_mut().pop()
    }

    pub(crate) fn available(&self) -> usize {
        self.free.borrow().len()
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn set_fixed_base(&self, base: u16) {
        self.fixed_base.set(Some(base));
    }

    pub(crate) fn buf_ptr(&self, idx: u16) -> *mut u8 {
        self.mem.as_ptr().wrapping_add(idx as usize * self.size)
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn fixed_index(&self, idx: u16) -> Option<u16> {
        self.fixed_base.get().map(|b| b + idx)
    }

    pub(crate) fn put(&self, idx: u16) {
        self.free.borrow_mut().push(idx);
    }
}
