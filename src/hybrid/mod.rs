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

mod addr;
pub(crate) mod connector;
pub(crate) mod drive;
mod handshake;

pub use addr::HybridAddr;
pub use handshake::{Handshake, HandshakeError, HandshakeErrorKind, Step, MAX_REPLY};
