//! [`BufferPool`]: a worker's fixed set of equal-size send buffers, registered with its ring
//! so sends from them can be zero-copy (`SEND_ZC` with a buffer index).
//!
//! Ownership: a free buffer's index is in the free list and nobody holds it. [`BufferPool::get`]
//! moves one index into a [`SendBuf`]; while a send is in flight the worker holds that
//! `SendBuf` in the connection's send state (so the kernel's reads of it are covered), and
//! hands it back to the application with the send's outcome; dropping the `SendBuf` puts the
//! index back in the free list. No allocation happens on get or put.

use std::fmt;
use std::io;
use std::rc::Rc;

use super::pool_shared::PoolShared;
use super::region::{page_round, Region};
use super::send_buf::SendBuf;

/// A pool of `count` buffers of `size` bytes each, handed out as empty [`SendBuf`]s.
///
/// Each worker of an [`Engine`](crate::uring::Engine) has one (registered with its ring) and
/// hands buffers out through [`Conn::send_buf`](crate::uring::Conn::send_buf). A pool can also
/// be made on its own, e.g. to measure it. It is single-threaded (not `Send`).
///
/// # Examples
///
/// ```
/// use uring_vsock::uring::BufferPool;
///
/// let pool = BufferPool::new(2, 4096)?;
/// let mut buf = pool.get().expect("a free buffer");
/// assert_eq!(buf.extend_from_slice(b"hello"), 5);
/// assert_eq!(&buf[..], b"hello");
/// assert_eq!(pool.available(), 1);
/// drop(buf); // back to the pool
/// assert_eq!(pool.available(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct BufferPool {
    shared: Rc<PoolShared>,
}

impl BufferPool {
    /// Allocates `count` (at most 16384) buffers of `size` bytes (at most 1 GiB).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a count or size out of range, or the `mmap` error.
    pub fn new(count: usize, size: usize) -> io::Result<BufferPool> {
        if count == 0 || count > 16384 || size == 0 || size > (1 << 30) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("buffer pool of {count} x {size} bytes: count must be 1..=16384 and size 1..=1GiB"),
            ));
        }
        // In range above, but count * size can still overflow a 32-bit usize.
        let bytes = count.checked_mul(size).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("buffer pool of {count} x {size} bytes does not fit in memory"),
            )
        })?;
        Ok(BufferPool {
            shared: Rc::new(PoolShared::new(Region::new(bytes)?, size, count)),
        })
    }

    /// An empty buffer of [`buffer_size`](Self::buffer_size) capacity, or `None` when all are
    /// in use (they come back as sends complete and their `SendBuf`s are dropped).
    pub fn get(&self) -> Option<SendBuf> {
        let idx = self.shared.take()?;
        Some(SendBuf::pooled(Rc::clone(&self.shared), idx))
    }

    /// Buffers free now.
    pub fn available(&self) -> usize {
        self.shared.available()
    }

    /// Buffers in the pool.
    pub fn count(&self) -> usize {
        self.shared.count()
    }

    /// Bytes per buffer.
    pub fn buffer_size(&self) -> usize {
        self.shared.size()
    }

    /// One iovec per buffer, in index order, for `register_buffers`.
    pub(crate) fn iovecs(&self) -> impl Iterator<Item = libc::iovec> + '_ {
        (0..self.shared.count()).map(|i| libc::iovec {
            iov_base: self.shared.buf_ptr(i as u16).cast(),
            iov_len: self.shared.size(),
        })
    }

    /// Records that buffer 0 is entry `base` of the registered-buffer table.
    pub(crate) fn set_fixed_base(&self, base: u16) {
        self.shared.set_fixed_base(base);
    }

    /// Bytes of memory the kernel pins for a pool of this shape.
    pub(crate) fn locked_bytes(count: usize, size: usize) -> usize {
        page_round(count.saturating_mul(size))
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("count", &self.shared.count())
            .field("size", &self.shared.size())
            .field("available", &self.available())
            .finish()
    }
}
