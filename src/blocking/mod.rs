//! The blocking path: a std-like [`Listener`] and [`Stream`] over vsock, unix or tcp, and
//! [`SeqpacketListener`] and [`SeqpacketConn`] for message-keeping `SOCK_SEQPACKET`
//! connections over vsock or unix.
//!
//! Each call blocks the calling thread (or honours the socket's timeouts and nonblocking mode,
//! as std does). Writes never raise `SIGPIPE`: a write to a closed peer is an `EPIPE` error.

mod listener;
mod seqpacket_conn;
mod seqpacket_listener;
mod stream;

pub use listener::{Incoming, Listener};
pub use seqpacket_conn::SeqpacketConn;
pub use seqpacket_listener::SeqpacketListener;
pub use stream::Stream;
