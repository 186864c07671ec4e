//! The engine's `SOCK_SEQPACKET` listen and connect: message-keeping connections on the same
//! workers, handlers and API as streams (see [`Engine::listen`] and [`Engine::connect`]).

use std::time::Duration;

use super::core::Handler;
use super::engine::Engine;
use super::handle::ConnHandle;
use crate::socket::SocketKind;
use crate::{Endpoint, Result};

impl Engine {
    /// Listens on `ep` with a `SOCK_SEQPACKET` socket (vsock or unix) and serves each
    /// accepted connection as [`listen`](Self::listen) does, keeping message boundaries:
    ///
    /// - each [`on_recv`](Handler::on_recv) buffer is exactly one message (a single receive
    ///   per message, never multishot nor a bundle), and
    ///   [`RecvBuf::truncated`](crate::uring::RecvBuf::truncated) says when the message was
    ///   longer than the buffer (its tail is discarded by the kernel;
    ///   [`RecvBuf::message_len`](crate::uring::RecvBuf::message_len) is its full length).
    ///   The buffers are the builder's [`recv_buffers`](crate::uring::EngineBuilder::recv_buffers)
    ///   size: make it the largest message expected.
    /// - each send ([`Conn::send`](crate::uring::Conn::send),
    ///   [`ConnHandle::send`]) is one message ([`Conn::send_copy`](crate::uring::Conn::send_copy)
    ///   splits at the pool's buffer size: one message per buffer). One longer than the
    ///   connection allows (see [`Message`](crate::Message#message-semantics): unix
    ///   `SO_SNDBUF` − 32, vsock the buffer size) closes the connection with a send error
    ///   as its [`CloseReason`](crate::uring::CloseReason) that names `EMSGSIZE` (os error
    ///   90) and says why. On
    ///   vsock, keep the bytes in flight below the peer's buffer size: the kernel's
    ///   nonblocking seqpacket send may put out part of a message that finds too little
    ///   credit; the engine never sends the rest (it would arrive as a second message) and
    ///   fails the connection with an error saying how much went out.
    ///
    /// # Errors
    ///
    /// `socket ENDPOINT: …` with `Unsupported` for tcp and hybrid endpoints (no seqpacket
    /// there); the bind or listen error; `NotConnected` once shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use uring_vsock::blocking::SeqpacketConn;
    /// use uring_vsock::uring::{Conn, Engine, Handler, RecvBuf};
    ///
    /// /// Replies to each message with its length and whether it was truncated.
    /// struct Sizes;
    /// impl Handler for Sizes {
    ///     fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
    ///         let reply = format!("{} {}", buf.message_len(), buf.truncated());
    ///         let _ = conn.send(reply.into_bytes()); // one message
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("uv-engine-sq-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
    /// std::fs::create_dir_all(&dir)?;
    /// let ep: uring_vsock::Endpoint = format!("unix:{}", dir.join("sq").display()).parse()?;
    /// let engine = Engine::builder().workers(1).recv_buffers(64, 1024).build()?;
    /// engine.listen_seqpacket(&ep, |_peer| Sizes)?;
    ///
    /// let client = SeqpacketConn::connect(&ep)?;
    /// let mut reply = [0; 32];
    /// client.send(&[7; 100])?;
    /// let n = client.recv(&mut reply)?.len;
    /// assert_eq!(&reply[..n], b"100 false");
    /// client.send(&[7; 3000])?; // longer than the engine's 1 KiB buffers
    /// let n = client.recv(&mut reply)?.len;
    /// assert_eq!(&reply[..n], b"3000 true");
    /// engine.shutdown();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn listen_seqpacket<F, H>(&self, ep: &Endpoint, factory: F) -> Result<Endpoint>
    where
        F: Fn(&Endpoint) -> H + Send + Sync + 'static,
        H: Handler,
    {
        self.listen_kind(ep, SocketKind::Seqpacket, factory)
    }

    /// Connects a `SOCK_SEQPACKET` socket to `ep` (vsock or unix) as
    /// [`connect`](Self::connect) does; the connection keeps message boundaries as
    /// [`listen_seqpacket`](Self::listen_seqpacket)'s do (one message per receive, truncation
    /// reported, one message per send).
    ///
    /// # Errors
    ///
    /// `socket ENDPOINT: …` with `Unsupported` for tcp and hybrid endpoints; otherwise as
    /// [`connect`](Self::connect).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use uring_vsock::blocking::SeqpacketListener;
    /// use uring_vsock::uring::{Conn, Engine, Handler, RecvBuf};
    ///
    /// struct Collect(std::sync::mpsc::Sender<Vec<u8>>);
    /// impl Handler for Collect {
    ///     fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
    ///         let _ = self.0.send(buf.to_vec()); // one message per buffer
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("uv-engine-sqc-doc-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
    /// std::fs::create_dir_all(&dir)?;
    /// let ep: uring_vsock::Endpoint = format!("unix:{}", dir.join("sq").display()).parse()?;
    /// let listener = SeqpacketListener::bind(&ep)?;
    /// let engine = Engine::builder().workers(1).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let conn = engine.connect_seqpacket(&ep, Some(Duration::from_secs(5)), move || Collect(tx))?;
    /// let (server, _) = listener.accept()?;
    /// server.send(b"one")?;
    /// server.send(b"two")?;
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5))?, b"one");
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5))?, b"two");
    /// conn.send(b"three".to_vec())?;
    /// let mut buf = [0; 8];
    /// assert_eq!(server.recv(&mut buf)?.len, 5);
    /// engine.shutdown();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn connect_seqpacket<F, H>(
        &self,
        ep: &Endpoint,
        timeout: Option<Duration>,
        make: F,
    ) -> Result<ConnHandle>
    where
        F: FnOnce() -> H + Send + 'static,
        H: Handler,
    {
        self.connect_kind(ep, SocketKind::Seqpacket, timeout, make)
    }
}
