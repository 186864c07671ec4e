//! `bench-vsock`: the latency and throughput harness of uring-vsock.
//!
//! Each backend (the library's `uring`, `uring-spin`, `epoll`, `blocking` and `tokio-ours`
//! paths, and `tokio` — tokio::net, tokio-vsock — as what users pick instead) runs the same
//! workloads — `pingpong`, `stream`, `rr` (closed or open loop), `connect` — over vsock,
//! unix or tcp, directly or through a proxy (`--via`: [`proxy`], [`proxied`]); pingpong and rr
//! also on seqpacket sockets (`--seqpacket`, unix or vsock), and vsock with a larger buffer on
//! both ends (`--vsock-buffer-size`: [`sockets`]). The workloads are
//! sans-I/O state machines ([`session`]) that verify every byte, so the backends only move
//! bytes ([`backend`]). Results ([`results`]) go to a terminal table, JSON, `.hgrm`
//! files, SVG plots and RESULTS.md ([`report`]). `http` measures hyper servers on the
//! engine and on tokio with a load generator on the engine ([`http`]).
//!
//! `main` only parses ([`cli::Cli`]) and calls [`app::execute`].
#![deny(missing_docs)]

pub mod app;
pub mod backend;
pub mod ceiling;
pub mod cli;
pub mod counters;
pub mod error;
pub mod http;
pub mod latency;
pub mod limits;
pub mod machine;
pub mod parse;
pub mod pattern;
pub mod proxied;
pub mod proxy;
pub mod ratios;
pub mod report;
pub mod results;
pub mod roles;
pub mod runner;
pub mod rusage;
pub mod scaling;
pub mod session;
pub mod settings;
pub mod sockets;
pub mod summary;
pub mod transport;
pub mod wire;
pub mod workload;

pub use error::{Error, Result};
