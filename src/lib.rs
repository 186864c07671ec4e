//! uring-vsock: fast, correct Linux `AF_VSOCK` streams.
//!
//! Layers, bottom up:
//! - [`VsockAddr`] and [`Endpoint`]: addresses (vsock, hybrid vsock behind a VMM's unix
//!   socket in [`hybrid`], and unix and tcp for testing and benchmarking on machines without
//!   vsock); [`Error`]: errors with operation and endpoint;
//!   [`VsockOptions`]: vsock socket options; [`local_cid`].
//! - The I/O paths over the same stream sockets, side by side: [`blocking`] (std-like),
//!   `epoll` (readiness-based, nonblocking, with mio) and `uring` (a thread-per-core
//!   io_uring engine with completion callbacks and registered buffers); and
//!   `uring_vsock::tokio` (async streams on tokio's poller; feature `axum` adds
//!   `axum::serve` over them, feature `tonic` gRPC servers and clients).
//!
//! # Cargo features
//!
//! A user depends only on the paths they use:
//!
//! | feature | default | gives | pulls in |
//! | --- | --- | --- | --- |
//! | (none) | always | [`blocking`], [`hybrid`], addresses, options, errors | `libc`, `socket2`, `log` |
//! | `epoll` | yes | `uring_vsock::epoll` | `mio` |
//! | `uring` | yes | `uring_vsock::uring` | `io-uring`, `crossbeam-channel` |
//! | `tokio` | no | `uring_vsock::tokio` | `tokio`, `futures-core` |
//! | `axum` | no | `axum::serve` over `uring_vsock::tokio::Listener` (implies `tokio`) | `axum` |
//! | `tonic` | no | tonic's `Connected` and a client connector for the tokio path (implies `tokio`) | `tonic`, `hyper-util`, `http`, `tower-service` |
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use uring_vsock::blocking::{Listener, Stream};
//!
//! let listener = Listener::bind(&"vsock:any:5000".parse()?)?;
//! let (mut conn, peer) = listener.accept()?;
//! println!("accepted {peer}");
//! let mut buf = [0; 4];
//! conn.read_exact(&mut buf)?;
//! conn.write_all(&buf)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

mod addr;
mod endpoint;
mod error;
mod impl_macros;
mod local;
mod message;
mod options;
mod socket;
mod sys;

pub mod blocking;
#[cfg(feature = "epoll")]
#[cfg_attr(docsrs, doc(cfg(feature = "epoll")))]
pub mod epoll;
pub mod hybrid;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(feature = "uring")]
#[cfg_attr(docsrs, doc(cfg(feature = "uring")))]
pub mod uring;

pub use addr::{AddrParseError, AddrParseErrorKind, VsockAddr};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use local::{local_cid, loopback_available};
pub use message::{Message, MessageTooLarge};
pub use options::VsockOptions;
pub use socket::DEFAULT_BACKLOG;

/// Compiles and runs the README's Rust examples as doctests, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
