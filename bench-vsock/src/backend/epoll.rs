//! The library's epoll (mio) path: not on `main` yet.

use super::Backend;
use crate::error::{Error, Result};

/// The epoll backend, once `uring_vsock::epoll` lands.
pub(crate) fn open() -> Result<Box<dyn Backend>> {
    Err(Error::new(
        "backend epoll is not available: uring_vsock::epoll has not landed in this build",
    ))
}
