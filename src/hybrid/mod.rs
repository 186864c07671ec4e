//! The host side of hybrid vsock, as Firecracker, Cloud Hypervisor and rust-vmm's
//! `vhost-device-vsock` expose it: each guest is a unix socket, not `AF_VSOCK`.
//!
//! - Host → guest: connect to the VMM's socket (`uds_path`), send `CONNECT <port>\n`, read
//!   `OK <host_port>\n`; from then on the stream is the guest's vsock connection. When nothing
//!   listens on that guest port, the VMM closes the connection.
//! - Guest → host: a guest's connect to CID 2 port `P` arrives as a unix connection to
//!   `<uds_path>_<P>`.
//!
//! Every path takes [`Endpoint::Hybrid`](crate::Endpoint::Hybrid) (`hybrid:UDS_PATH:PORT`)
//! for both: connects run the handshake (within the connect's deadline, and on the engine's
//! ring), listeners bind `<uds_path>_<port>`. [`Handshake`] is the handshake alone, without
//! I/O, for other runtimes. Bytes the guest sends right after `OK` are never lost: the
//! reply is peeked and only its own bytes are consumed, so they are the stream's first bytes.
//!
//! # Errors
//!
//! A missing socket is `connect <endpoint>: ... (os error 2)` (`ENOENT`); the handshake's
//! failures are `handshake <endpoint>: ...` with a [`HandshakeError`] inside (refused,
//! malformed, oversized; [`HandshakeError::of`] finds it), or `TimedOut` at the deadline.
//!
//! # Examples
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use uring_vsock::blocking::Stream;
//! use uring_vsock::hybrid::{HandshakeError, HandshakeErrorKind};
//!
//! let ep = "hybrid:/run/vm0.sock:5000".parse()?;
//! match Stream::connect_timeout(&ep, Duration::from_secs(2)) {
//!     Ok(mut conn) => conn.write_all(b"hello guest")?,
//!     Err(e) if HandshakeError::of(e.io_error()).map(|h| h.kind())
//!         == Some(HandshakeErrorKind::Refused) => println!("nothing listens on guest port 5000"),
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod addr;
pub(crate) mod connector;
pub(crate) mod drive;
mod handshake;

pub use addr::HybridAddr;
pub use handshake::{Handshake, HandshakeError, HandshakeErrorKind, Step, MAX_REPLY};
