//! The wire protocol between `bench-vsock client` and `bench-vsock serve`.
//!
//! A connection starts with a 32-byte [`Header`] from the client:
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0..4   | magic `BVS1`                                       |
//! | 4      | mode: 1 = echo, 2 = sink, 3 = source               |
//! | 5..8   | zero                                               |
//! | 8..12  | message (or write) size, u32 little-endian         |
//! | 12..16 | seed: where this connection's pattern starts, u32  |
//! | 16..32 | zero                                               |
//!
//! Then, by mode:
//! - **echo** (`pingpong`, `rr`, `connect`): the client sends messages of exactly `size`
//!   bytes, one at a time; the server checks each against the pattern and sends it back
//!   whole (made from the pattern it matched: the same bytes, copied once). The client
//!   closes at a message boundary when done.
//! - **sink** (`stream`): the client sends frames, each a u32 little-endian length and that
//!   many bytes; a zero length ends the stream. The server checks every byte and answers the
//!   end with an [`Ack`]: 16 bytes, the payload byte count it verified (u64) and a status
//!   (u64, 0 = all bytes matched). Then the client closes.
//! - **source** (`stream --reverse`): the server sends and the client checks. The client
//!   asks for data with requests, each a u32 little-endian count of `size`-byte messages
//!   (at least 1); the server sends that many messages' worth of pattern bytes, unframed,
//!   answering requests in order. The client keeps up to two requests outstanding (so the
//!   server always has the next one when it finishes a batch: no idle gap), stops asking
//!   when done, reads everything it asked for, then closes.
//!
//! Every payload byte is [`crate::pattern`] at its offset in the connection's stream
//! (starting at the seed), so both ends verify what they receive. A server that finds a bad
//! byte closes the connection, which the client reports as an error.

use crate::error::{Error, Result};

/// The header's length on the wire.
pub const HEADER_LEN: usize = 32;
/// The ack's length on the wire.
pub const ACK_LEN: usize = 16;
/// A sink frame's length prefix.
pub const FRAME_PREFIX_LEN: usize = 4;
/// A source request's length: a u32 count of messages.
pub const REQUEST_LEN: usize = 4;
/// The largest message or frame a server accepts, so a bad header cannot make it allocate
/// without bound.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

const MAGIC: &[u8; 4] = b"BVS1";

/// What the server does with a connection's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send every message back.
    Echo = 1,
    /// Check framed data, answer the end with an ack.
    Sink = 2,
    /// Send the messages the client requests.
    Source = 3,
}

/// The header a client sends first on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the server does with the payload.
    pub mode: Mode,
    /// Message size (echo) or the largest frame (sink).
    pub size: u32,
    /// The pattern offset of the connection's first payload byte.
    pub seed: u32,
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..4].copy_from_slice(MAGIC);
        out[4] = self.mode as u8;
        out[8..12].copy_from_slice(&self.size.to_le_bytes());
        out[12..16].copy_from_slice(&self.seed.to_le_bytes());
        out
    }

    /// Parses a header.
    ///
    /// # Errors
    ///
    /// A wrong magic (not a bench-vsock client), unknown mode, or a size of 0 or above
    /// [`MAX_MESSAGE`].
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header> {
        if &bytes[..4] != MAGIC {
            return Err(Error::new(format!(
                "bad header magic {:02x?}: not a bench-vsock client (protocol BVS1)",
                &bytes[..4]
            )));
        }
        let mode = match bytes[4] {
            1 => Mode::Echo,
            2 => Mode::Sink,
            3 => Mode::Source,
            m => return Err(Error::new(format!("bad header: unknown mode {m}"))),
        };
        let size = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if size == 0 || size as usize > MAX_MESSAGE {
            return Err(Error::new(format!(
                "bad header: message size {size} not in 1..={MAX_MESSAGE}"
            )));
        }
        let seed = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        Ok(Header { mode, size, seed })
    }
}

/// The server's answer to the end of a sink stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Payload bytes the server received and verified.
    pub bytes: u64,
    /// 0 when every byte matched the pattern.
    pub status: u64,
}

impl Ack {
    /// The ack's bytes.
    pub fn encode(&self) -> [u8; ACK_LEN] {
        let mut out = [0; ACK_LEN];
        out[..8].copy_from_slice(&self.bytes.to_le_bytes());
        out[8..].copy_from_slice(&self.status.to_le_bytes());
        out
    }

    /// Parses an ack.
    pub fn decode(bytes: &[u8; ACK_LEN]) -> Ack {
        Ack {
            bytes: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            status: u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Header {
            mode: Mode::Sink,
            size: 65536,
            seed: 77,
        };
        assert_eq!(Header::decode(&h.encode()), Ok(h));
        let r = Header {
            mode: Mode::Source,
            ..h
        };
        assert_eq!(Header::decode(&r.encode()), Ok(r));
        let a = Ack {
            bytes: 1 << 40,
            status: 0,
        };
        assert_eq!(Ack::decode(&a.encode()), a);
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = Header {
            mode: Mode::Echo,
            size: 64,
            seed: 0,
        }
        .encode();
        let mut b = good;
        b[0] = b'X';
        assert!(Header::decode(&b).unwrap_err().message().contains("magic"));
        let mut b = good;
        b[4] = 9;
        assert!(Header::decode(&b).unwrap_err().message().contains("mode 9"));
        let mut b = good;
        b[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert!(Header::decode(&b).unwrap_err().message().contains("size 0"));
    }
}
