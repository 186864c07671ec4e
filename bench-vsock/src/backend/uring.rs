//! The io_uring engine: not on `main` yet.

use super::Backend;
use crate::error::{Error, Result};

/// The uring backend (`spin`: adaptive spinning), once `uring_vsock::uring` lands.
pub(crate) fn open(spin: bool) -> Result<Box<dyn Backend>> {
    let name = if spin { "uring-spin" } else { "uring" };
    Err(Error::new(format!(
        "backend {name} is not available: uring_vsock::uring (the engine) has not landed in this build"
    )))
}
