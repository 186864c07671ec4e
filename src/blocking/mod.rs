//! The blocking path: a std-like [`Listener`] and [`Stream`] over vsock, unix or tcp.
//!
//! Each call blocks the calling thread (or honours the socket's timeouts and nonblocking mode,
//! as std does). Writes never raise `SIGPIPE`: a write to a closed peer is an `EPIPE` error.

mod listener;
mod stream;

pub use listener::{Incoming, Listener};
pub use stream::Stream;
