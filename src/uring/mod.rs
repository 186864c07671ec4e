//! The io_uring engine: thread-per-core workers serving stream connections (vsock, unix,
//! tcp) with completion callbacks.
//!
//! - [`Engine`] (built by [`EngineBuilder`]) runs the workers. Each owns one ring
//!   (`SINGLE_ISSUER | DEFER_TASKRUN` where the kernel has it, see [`RingFeatures`]), a
//!   [`BufferPool`] of registered send buffers and a provided-buffer ring that multishot
//!   receives fill.
//! - A busy connection's socket goes into its worker's registered file table where the
//!   kernel has one (direct descriptors; [`EngineBuilder::registered_files`]).
//! - A connection lives on one worker. Its [`Handler`] gets the completions there: opened,
//!   bytes received ([`RecvBuf`]), send finished ([`SendBuf`] back), peer shut down, a
//!   read or write deadline passed ([`Deadline`]), closed ([`CloseReason`]). It acts through
//!   [`Conn`].
//! - A [`ConnHandle`] drives a connection from any thread (send, shut down, close).
//! - [`Engine::listen`] binds a listener; [`Engine::listen_fd`] serves one made elsewhere
//!   (socket activation).
//! - [`rt`]: the engine as an async runtime: a local executor per worker
//!   ([`Engine::spawn_on`], [`Engine::listen_async`] with an [`AsyncConn`] per connection),
//!   timers and deadlines, tokio and hyper I/O adapters (`rt::ConnIo`, features `tokio`,
//!   `hyper`).
//!
//! Buffer ownership is always one owner at a time: the kernel (a receive buffer in the ring,
//! a send buffer in flight), the engine (a queued send), or the application (a `RecvBuf` it
//! was given, a `SendBuf` it made or got back). Nothing the kernel may still touch is freed
//! or reused before its completion; closing a connection cancels its operations and waits
//! for their completions.
//!
//! # Example
//!
//! An echo server, and a blocking client to try it (the README's example):
//!
#![doc = include_str!("README-snippet.md")]

mod buf_pool;
mod buf_ring;
mod builder;
mod completion;
mod conn;
mod core;
mod engine;
mod engine_seqpacket;
#[cfg(test)]
mod fault_tests;
mod handle;
mod mailbox;
mod on_worker;
mod op;
mod pool_shared;
mod recv_side;
mod region;
mod ring;
pub mod rt;
mod send_buf;
mod send_queue;
mod settings;
mod spin;
mod stats;
mod submit;
mod validate;
mod worker;

pub use buf_pool::BufferPool;
pub use buf_ring::RecvBuf;
pub use builder::{EngineBuilder, DEFAULT_ZERO_COPY_THRESHOLD};
pub use conn::{CloseReason, ConnId, Deadline};
pub use core::{Conn, Handler};
pub use engine::Engine;
pub use handle::{ConnHandle, SendError};
pub use ring::{RingFeatures, TaskRunMode};
pub use rt::AsyncConn;
pub use send_buf::SendBuf;
pub use send_queue::PartialSend;
pub use stats::EngineStats;
