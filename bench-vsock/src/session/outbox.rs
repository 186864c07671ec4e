//! [`Outbox`]: what a session has to send, and how much of it went. Protocol bytes (a
//! header, a frame prefix, an echo, an ack) are held as bytes; a message's pattern payload
//! is only described (where in the stream it starts, how long it is) until a backend
//! copies it out: straight into its own send buffers through [`Outbox::parts`], or once
//! into the session's buffer for a backend that writes one slice ([`Outbox::as_slice`]).

use crate::pattern;

/// The bytes a session wants sent, with a count of those already sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outbox {
    /// The protocol bytes, then the body once made.
    buf: Vec<u8>,
    /// How many protocol bytes lead.
    head: usize,
    /// The pattern offset of the body's first byte.
    body_at: u64,
    /// The body's length.
    body: usize,
    /// Whether `buf` holds the body after the head.
    made: bool,
    /// Bytes sent (taken by the backend) so far, head first.
    sent: usize,
}

impl Outbox {
    /// Empties it, for the next thing to send.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.body = 0;
        self.made = false;
        self.sent = 0;
    }

    /// Makes room for `n` protocol bytes ahead of time.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.buf.reserve(n);
    }

    /// Appends protocol bytes; they go before the body, so no body is set yet.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.body, 0, "protocol bytes after a body");
        self.buf.extend_from_slice(bytes);
        self.head += bytes.len();
    }

    /// Sets the body: the pattern's `len` bytes from stream offset `at`, after the
    /// protocol bytes.
    pub(crate) fn set_body(&mut self, at: u64, len: usize) {
        self.body_at = at;
        self.body = len;
        self.made = false;
    }

    /// Records that the backend took the next `n` bytes.
    pub(crate) fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.head + self.body);
    }

    /// Bytes still to send.
    pub fn len(&self) -> usize {
        self.head + self.body - self.sent
    }

    /// Whether everything was sent (or nothing was asked).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes still to send as one slice, for a backend that writes a slice. The body
    /// is made in the session's buffer the first time it is asked for (one pass, kept
    /// for the rest of the message's partial writes).
    pub fn as_slice(&mut self) -> &[u8] {
        if !self.made && self.body > 0 {
            self.buf.truncate(self.head);
            pattern::extend(&mut self.buf, self.body_at, self.body);
            self.made = true;
        }
        &self.buf[self.sent..]
    }

    /// The bytes still to send, in order, as slices to copy from: the protocol bytes, then
    /// the body straight from the pattern's table (or from the buffer, once made). A
    /// backend that fills its own send buffers copies each byte once this way.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let made = self.made || self.body == 0;
        let head_end = if made { self.buf.len() } else { self.head };
        let first = &self.buf[self.sent.min(head_end)..head_end];
        let skip = self.sent.saturating_sub(self.head);
        let body = if made {
            None
        } else {
            Some(pattern::pieces(
                self.body_at + skip as u64,
                self.body - skip,
            ))
        };
        // The table's static pieces, as the buffer's shorter lifetime (one item type).
        let body = body.into_iter().flatten().map(shorter);
        std::iter::once(first).filter(|p| !p.is_empty()).chain(body)
    }
}

fn shorter<'a>(piece: &'static [u8]) -> &'a [u8] {
    piece
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(at: u64, len: usize) -> Outbox {
        let mut o = Outbox::default();
        o.push(&(len as u32).to_le_bytes());
        o.set_body(at, len);
        o
    }

    fn joined(o: &Outbox) -> Vec<u8> {
        o.parts().flatten().copied().collect()
    }

    #[test]
    fn parts_and_the_slice_agree_at_every_point_of_a_message() {
        let len = 70 * 1024 + 3;
        let mut whole = (len as u32).to_le_bytes().to_vec();
        pattern::extend(&mut whole, 9, len);
        for sent in [0, 1, 4, 5, 64 * 1024, len + 3, len + 4] {
            // Parts before the body is made, then the slice, then parts again after it.
            let mut o = frame(9, len);
            o.advance(sent);
            assert_eq!(o.len(), whole.len() - sent);
            assert_eq!(joined(&o), whole[sent..], "parts at {sent}");
            assert_eq!(o.as_slice(), &whole[sent..], "slice at {sent}");
            assert_eq!(joined(&o), whole[sent..], "parts after the slice at {sent}");
        }
        let mut o = frame(9, len);
        o.advance(usize::MAX / 2);
        assert!(o.is_empty(), "never more sent than there was");
    }

    #[test]
    fn protocol_bytes_alone_and_nothing_at_all() {
        let mut o = Outbox::default();
        assert!(o.is_empty() && o.parts().next().is_none());
        o.push(b"ack!");
        o.push(b"more");
        assert_eq!(o.len(), 8);
        o.advance(3);
        assert_eq!(joined(&o), b"!more");
        assert_eq!(o.as_slice(), b"!more");
        o.clear();
        assert!(o.is_empty() && o.parts().next().is_none());
    }
}
