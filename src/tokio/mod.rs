//! The tokio path (cargo feature `tokio`): an async [`Listener`] and [`Stream`] over vsock,
//! unix, tcp and hybrid vsock, with tokio's `AsyncRead`/`AsyncWrite`.
//!
//! Built on the same socket setup as the other paths (close-on-exec set atomically, the vsock
//! options, typed errors naming the operation and endpoint) and on tokio's
//! [`AsyncFd`]: the runtime's poller waits for readiness, the
//! calling task does the syscalls. So it serves whatever runs on tokio: axum (feature
//! `axum`: [`Listener`] is an `axum::serve::Listener`), tonic (feature `tonic`:
//! [`Listener::incoming`] for `serve_with_incoming`, [`Stream`] is `Connected`, and
//! `Connector` dials any endpoint for tonic's channel and hyper-util's client), hyper, or plain
//! tasks.
//!
//! Beyond a thin wrapper:
//! - [`Stream::connect_timeout`] has a deadline that covers the whole connect (and a hybrid
//!   endpoint's handshake); dropping the future cancels it and closes the socket.
//! - `ENOBUFS` on a write is backpressure when vsock is short of memory: the write waits a
//!   little and retries (a bounded number of times). When it is the kernel's reset of a
//!   connection whose receive queue held too many small packets unread (Linux 6.12.92+; the
//!   socket's pending error says so), the data is gone and the write fails, saying why.
//! - Setup errors are [`crate::Error`]s with operation, endpoint and errno.
//!
//! Every call needs a tokio runtime with IO and time enabled (`Runtime::new`,
//! `#[tokio::main]` or `Builder::enable_all`). Outside any runtime, constructors return an
//! error; a runtime built without IO makes tokio itself panic.
//!
//! # Examples
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use uring_vsock::tokio::{Listener, Stream};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     // vsock:any:5000 on a VM; tcp here, so the example runs anywhere.
//!     let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
//!     let ep = listener.local_addr()?;
//!     let server = tokio::spawn(async move {
//!         let (mut conn, _peer) = listener.accept().await?;
//!         let mut buf = Vec::new();
//!         conn.read_to_end(&mut buf).await?; // until the client's shutdown
//!         conn.write_all(&buf).await?;
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//!     });
//!     let mut client = Stream::connect(&ep).await?;
//!     client.write_all(b"ping").await?;
//!     client.shutdown().await?; // AsyncWriteExt::shutdown: SHUT_WR
//!     let mut back = Vec::new();
//!     client.read_to_end(&mut back).await?;
//!     assert_eq!(back, b"ping");
//!     server.await?.map_err(|e| e.to_string())?;
//!     Ok(())
//! })
//! # }
//! ```

#[cfg(feature = "axum")]
mod axum;
mod connect;
mod io;
mod listener;
mod split;
mod stream;
#[cfg(feature = "tonic")]
mod tonic;

pub use listener::{Incoming, Listener};
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use stream::Stream;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use tonic::{Connecting, Connector, PeerEndpoint};

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use ::tokio::io::unix::AsyncFd;
use socket2::Socket;

use crate::{Endpoint, Error, Result};

/// Registers the nonblocking `socket` with the current runtime's poller; `op` and `ep` name
/// the call for the error. The socket is closed on error.
fn register(socket: Socket, op: &'static str, ep: Option<&Endpoint>) -> Result<AsyncFd<Socket>> {
    // AsyncFd::new panics outside a runtime: say so as an error instead.
    if ::tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::new(
            op,
            ep.cloned(),
            std::io::Error::other("not inside a tokio runtime (uring_vsock::tokio needs one)"),
        ));
    }
    // SAFETY: the `Socket` owns its fd and never swaps it, so the fd stays open and the same
    // for the AsyncFd's whole life (until it is dropped or `into_inner` returns the socket).
    unsafe { AsyncFd::register(socket) }
        .map_err(|e| Error::new(op, ep.cloned(), std::io::Error::from(e)))
}

/// `AsFd` and `AsRawFd` through an `io: AsyncFd<Socket>` field (or one behind an `Arc`).
macro_rules! impl_as_fd {
    ($($ty:ty),*) => {$(
        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.io.get_ref().as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.io.get_ref().as_raw_fd()
            }
        }
    )*};
}

impl_as_fd!(
    Listener,
    Stream,
    OwnedReadHalf,
    OwnedWriteHalf,
    ReadHalf<'_>,
    WriteHalf<'_>
);

/// Every type of this path can move between tasks and threads.
const _: () = {
    const fn send_sync<T: Send + Sync + Unpin>() {}
    send_sync::<Listener>();
    send_sync::<Incoming>();
    send_sync::<Stream>();
    send_sync::<OwnedReadHalf>();
    send_sync::<OwnedWriteHalf>();
};
