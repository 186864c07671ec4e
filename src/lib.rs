//! uring-vsock: fast, correct Linux AF_VSOCK streams.
#![deny(missing_docs)]
