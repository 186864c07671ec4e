//! The epoll path (cargo feature `epoll`, on by default): readiness-based, nonblocking
//! [`Listener`] and [`Stream`] that register with a [`mio::Poll`] (epoll underneath), over
//! vsock, unix or tcp; and [`SeqpacketListener`] and [`SeqpacketConn`] for message-keeping
//! `SOCK_SEQPACKET` connections over vsock or unix.
//!
//! Every socket is nonblocking from `socket(2)`/`accept4(2)` on, but for
//! [`Stream::connect_timeout`]'s, which waits for its connect and is nonblocking from then
//! on. Calls that cannot proceed return [`std::io::ErrorKind::WouldBlock`]; register the
//! socket with a `mio::Poll` and retry after a readiness event. mio is edge-triggered: after
//! an event, keep calling until `WouldBlock`.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use mio::{Events, Interest, Poll, Token};
//! use uring_vsock::epoll::{Listener, Stream};
//!
//! let mut poll = Poll::new()?;
//! let mut events = Events::with_capacity(8);
//! let mut listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
//! poll.registry().register(&mut listener, Token(0), Interest::READABLE)?;
//! let mut client = Stream::connect(&listener.local_addr()?)?;
//! poll.registry().register(&mut client, Token(1), Interest::WRITABLE)?;
//!
//! let mut server = None;
//! let mut connected = false;
//! while server.is_none() || !connected {
//!     poll.poll(&mut events, None)?;
//!     for event in &events {
//!         match event.token() {
//!             Token(0) => server = Some(listener.accept()?.0),
//!             _ => connected = client.connect_result().is_ok(),
//!         }
//!     }
//! }
//! client.write_all(b"ready")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod listener;
mod seqpacket_conn;
mod seqpacket_listener;
mod stream;

pub use listener::Listener;
pub use seqpacket_conn::SeqpacketConn;
pub use seqpacket_listener::SeqpacketListener;
pub use stream::Stream;

/// Implements `mio::event::Source` for a type with a `socket: socket2::Socket` field by
/// registering its fd, so a listener or stream can be registered directly.
macro_rules! source_by_fd {
    ($ty:ty) => {
        impl mio::event::Source for $ty {
            fn register(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                use std::os::fd::AsRawFd;
                mio::unix::SourceFd(&self.socket.as_raw_fd()).register(registry, token, interests)
            }

            fn reregister(
                &mut self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                use std::os::fd::AsRawFd;
                mio::unix::SourceFd(&self.socket.as_raw_fd()).reregister(registry, token, interests)
            }

            fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
                use std::os::fd::AsRawFd;
                mio::unix::SourceFd(&self.socket.as_raw_fd()).deregister(registry)
            }
        }
    };
}
use source_by_fd;
