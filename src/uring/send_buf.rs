//! [`SendBuf`]: bytes to send on a connection, in a pooled registered buffer, a received
//! buffer sent back as is, or a plain `Vec`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::buf_ring::RecvBuf;
use super::pool_shared::PoolShared;

/// Bytes to send. Made by [`Conn::send_buf`](crate::uring::Conn::send_buf) /
/// [`BufferPool::get`](crate::uring::BufferPool::get) (a registered pool buffer: filled with
/// [`extend_from_slice`](Self::extend_from_slice)), from a [`RecvBuf`] (echoing received bytes
/// without a copy), or from a `Vec<u8>`.
///
/// Ownership: the application owns it until it passes it to
/// [`Conn::send`](crate::uring::Conn::send); the engine then owns it (the kernel reads it)
/// until the send completes, and gives it back in
/// [`Handler::on_sent`](crate::uring::Handler::on_sent) with the outcome. Dropping it returns
/// pooled memory to its pool (or a received buffer to its ring).
///
/// ```
/// use uring_vsock::uring::SendBuf;
///
/// let buf = SendBuf::from(b"ping".to_vec());
/// assert_eq!(&buf[..], b"ping");
/// assert!(!buf.is_registered());
/// ```
pub struct SendBuf {
    inner: Inner,
}

enum Inner {
    Pooled {
        pool: Rc<PoolShared>,
        idx: u16,
        len: usize,
    },
    Recv(RecvBuf),
    Vec(Vec<u8>),
}

impl SendBuf {
    pub(crate) fn pooled(pool: Rc<PoolShared>, idx: u16) -> SendBuf {
        SendBuf {
            inner: Inner::Pooled { pool, idx, len: 0 },
        }
    }

    /// Bytes to send.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many bytes it can hold: the pool's buffer size, the received length, or the
    /// `Vec`'s capacity.
    pub fn capacity(&self) -> usize {
        match &self.inner {
            Inner::Pooled { pool, .. } => pool.size(),
            Inner::Recv(r) => r.len(),
            Inner::Vec(v) => v.capacity(),
        }
    }

    /// Whether the memory is registered with the ring (pool and received buffers are), which
    /// lets large sends go zero-copy.
    pub fn is_registered(&self) -> bool {
        !matches!(self.inner, Inner::Vec(_))
    }

    /// Appends as much of `data` as fits and returns how much that was. A `Vec` buffer grows
    /// to take all of it; a received buffer is read-only and takes nothing.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        match &mut self.inner {
            Inner::Pooled { pool, idx, len } => {
                let n = data.len().min(pool.size() - *len);
                // SAFETY: the buffer is ours (out of the free list, not in a send), and
                // `len + n <= size` keeps the copy inside it.
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), pool.buf_ptr(*idx).add(*len), n)
                };
                *len += n;
                n
            }
            Inner::Recv(_) => 0,
            Inner::Vec(v) => {
                v.extend_from_slice(data);
                data.len()
            }
        }
    }

    /// Empties the buffer (a received buffer becomes empty too).
    pub fn clear(&mut self) {
        match &mut self.inner {
            Inner::Pooled { len, .. } => *len = 0,
            Inner::Recv(_) => self.inner = Inner::Vec(Vec::new()),
            Inner::Vec(v) => v.clear(),
        }
    }

    /// The bytes, copied out if they are not already a `Vec`.
    pub fn into_vec(mut self) -> Vec<u8> {
        match &mut self.inner {
            Inner::Vec(v) => std::mem::take(v),
            _ => self.as_slice().to_vec(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match &self.inner {
            // SAFETY: the first `len` bytes of the pooled buffer were written by
            // extend_from_slice; the pool memory lives while we hold `pool`.
            Inner::Pooled { pool, idx, len } => unsafe {
                std::slice::from_raw_parts(pool.buf_ptr(*idx), *len)
            },
            Inner::Recv(r) => r,
            Inner::Vec(v) => v,
        }
    }

    /// Address, length and registered-buffer index of the bytes, for building a send.
    pub(crate) fn raw(&self) -> (*const u8, usize, Option<u16>) {
        match &self.inner {
            Inner::Pooled { pool, idx, len } => (pool.buf_ptr(*idx), *len, pool.fixed_index(*idx)),
            Inner::Recv(r) => r.fixed(),
            Inner::Vec(v) => (v.as_ptr(), v.len(), None),
        }
    }
}

impl Deref for SendBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for SendBuf {
    /// The bytes, writable. A received buffer is first copied into a `Vec` (it is read-only).
    fn deref_mut(&mut self) -> &mut [u8] {
        if let Inner::Recv(r) = &self.inner {
            self.inner = Inner::Vec(r.to_vec());
        }
        match &mut self.inner {
            // SAFETY: as in as_slice, and we hold the only reference to this buffer.
            Inner::Pooled { pool, idx, len } => unsafe {
                std::slice::from_raw_parts_mut(pool.buf_ptr(*idx), *len)
            },
            Inner::Vec(v) => v,
            Inner::Recv(_) => unreachable!("converted above"),
        }
    }
}

impl Drop for SendBuf {
    fn drop(&mut self) {
        if let Inner::Pooled { pool, idx, .. } = &self.inner {
            pool.put(*idx);
        }
    }
}

impl From<RecvBuf> for SendBuf {
    fn from(buf: RecvBuf) -> SendBuf {
        SendBuf {
            inner: Inner::Recv(buf),
        }
    }
}

impl From<Vec<u8>> for SendBuf {
    fn from(v: Vec<u8>) -> SendBuf {
        SendBuf {
            inner: Inner::Vec(v),
        }
    }
}

impl fmt::Debug for SendBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Pooled { .. } => "pooled",
            Inner::Recv(_) => "received",
            Inner::Vec(_) => "vec",
        };
        f.debug_struct("SendBuf")
            .field("kind", &kind)
            .field("len", &self.len())
            .finish()
    }
}
