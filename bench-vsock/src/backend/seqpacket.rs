//! What the seqpacket runs of every backend share: a received message is the bytes a
//! session gets, and a truncated one fails the connection (its tail is lost, so nothing
//! after it could verify).

use std::io;

use uring_vsock::Message;

/// The bytes of received message `m` that landed in a `cap`-byte buffer: 0 at the end of
/// the stream, as a stream read says it.
///
/// # Errors
///
/// The message was longer than the buffer (`InvalidData`, naming both lengths).
pub(super) fn received(m: Message, cap: usize) -> io::Result<usize> {
    if m.truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a seqpacket message of {} bytes was truncated to the {cap}-byte receive buffer",
                m.message_len
            ),
        ));
    }
    Ok(m.len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_message_is_its_bytes_and_a_truncated_one_an_error() {
        let whole = Message {
            len: 64,
            message_len: 64,
            truncated: false,
        };
        assert_eq!(received(whole, 64).unwrap(), 64);
        let eof = Message {
            len: 0,
            message_len: 0,
            truncated: false,
        };
        assert_eq!(received(eof, 64).unwrap(), 0);
        let cut = Message {
            len: 16,
            message_len: 100,
            truncated: true,
        };
        let e = received(cut, 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            e.to_string(),
            "a seqpacket message of 100 bytes was truncated to the 16-byte receive buffer"
        );
    }
}
