//! [`Region`]: page-aligned anonymous memory that the kernel reads and writes through a ring
//! (registered buffers, the provided-buffer ring). Mapped with `mmap` so it is page aligned and
//! zeroed, and unmapped only when the owner drops it, which the worker does after the last
//! completion that could touch it.

use std::io;
use std::ptr::NonNull;

/// An anonymous private mapping of `len` bytes.
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    /// Maps `len` bytes (rounded up to whole pages by the kernel), zeroed.
    pub(crate) fn new(len: usize) -> io::Result<Region> {
        let len = len.max(1);
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
        // the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Region { ptr, len })
    }

    /// The first byte.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length asked for.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: ptr/len are the mapping made in `new`; owners drop a Region only after every
        // kernel operation using it has completed (or leak it when that cannot be known).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The bytes of `size` rounded up to the page size.
pub(crate) fn page_round(size: usize) -> usize {
    const PAGE: usize = 4096;
    size.div_ceil(PAGE).saturating_mul(PAGE)
}
