//! The halves of a [`Stream`]: borrowed ([`ReadHalf`], [`WriteHalf`]) for one task, owned
//! ([`OwnedReadHalf`], [`OwnedWriteHalf`]) for two.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::io::{self as rw, impl_read, impl_write, Backoff, StreamFd};
use super::Stream;
use crate::{socket, Endpoint, Result};

/// The read half of [`Stream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a> {
    pub(super) io: &'a StreamFd,
}

/// The write half of [`Stream::split`]; `AsyncWriteExt::shutdown` shuts down the stream's
/// write side.
#[derive(Debug)]
pub struct WriteHalf<'a> {
    pub(super) io: &'a StreamFd,
    pub(super) backoff: &'a mut Backoff,
}

/// The read half of [`Stream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    pub(super) io: Arc<StreamFd>,
}

/// The write half of [`Stream::into_split`]. Dropping it does not shut the stream down;
/// `AsyncWriteExt::shutdown` does (`SHUT_WR`).
#[derive(Debug)]
pub struct OwnedWriteHalf {
    pub(super) io: Arc<StreamFd>,
    pub(super) backoff: Backoff,
}

/// [`OwnedReadHalf::reunite`] was given halves of two different streams; here they are back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of different streams")
    }
}

impl std::error::Error for ReuniteError {}

impl OwnedReadHalf {
    /// Joins the halves back into the [`Stream`] they came from.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], holding both halves, when they are not of the same stream.
    pub fn reunite(self, write: OwnedWriteHalf) -> std::result::Result<Stream, ReuniteError> {
        if !Arc::ptr_eq(&self.io, &write.io) {
            return Err(ReuniteError(self, write));
        }
        drop(self);
        let OwnedWriteHalf { io, backoff } = write;
        let io = Arc::into_inner(io).expect("both halves given, so this is the last reference");
        Ok(Stream { io, backoff })
    }

    /// Waits for queued bytes and copies them without consuming them (see [`Stream::peek`]).
    ///
    /// # Errors
    ///
    /// The `recv` error.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        super::stream::peek(&self.io, buf).await
    }
}

/// The address accessors every half has.
macro_rules! impl_addrs {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// The peer's endpoint (see [`Stream::peer_addr`]).
            ///
            /// # Errors
            ///
            /// `getpeername` failures.
            pub fn peer_addr(&self) -> Result<Endpoint> {
                socket::peer_endpoint(self.io.get_ref())
            }

            /// This side's endpoint (see [`Stream::local_addr`]).
            ///
            /// # Errors
            ///
            /// `getsockname` failures.
            pub fn local_addr(&self) -> Result<Endpoint> {
                socket::local_endpoint(self.io.get_ref())
            }
        }
    )*};
}

impl_addrs!(ReadHalf<'_>, WriteHalf<'_>, OwnedReadHalf, OwnedWriteHalf);

impl_read!(ReadHalf<'_>, OwnedReadHalf);
impl_write!(WriteHalf<'_>, OwnedWriteHalf);
