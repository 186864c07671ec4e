//! `user_data` encoding: which operation a completion belongs to. Each connection has at most
//! one receive and one chain of sends in flight (plus zero-copy notifications), so the connection slab
//! is the in-flight table: `user_data` names the op kind, a tag, and the slab index, and the
//! state an op needs (its buffer above all) lives in the connection slot it names.

/// What an in-flight operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// The read of the worker's wake-up socket.
    Wake = 1,
    /// A listener's multishot accept (index: listener slot).
    Accept = 2,
    /// A connection's multishot receive (tag: connection generation).
    Recv = 3,
    /// A connection's send (tag: send sequence number, also on its zero-copy notification).
    Send = 4,
    /// An `ASYNC_CANCEL` (its result is not needed: the cancelled op's own completion is).
    Cancel = 5,
    /// A connection's connect (tag: connection generation).
    Connect = 6,
    /// The linked timeout of a connect (tag: connection generation).
    ConnectTimeout = 7,
    /// A listener's pause before re-arming its accept after running out of fds or memory
    /// (index: listener slot).
    AcceptBackoff = 8,
    /// An `ASYNC_CANCEL` of a connection's send (tag: the send's sequence number), counted
    /// among the connection's ops.
    CancelSend = 9,
    /// An accepted connection handed to this worker by a ring message (index: listener
    /// slot; the completion's result is the fd). Not one of this worker's ops.
    Handoff = 10,
    /// A ring message handing an accepted connection to another worker (index: the
    /// pending hand-off's slot).
    HandoffSent = 11,
    /// A `FILES_UPDATE` of the registered file table (index: the slot; tag 1: a socket
    /// put in, 0: the slot cleared). Not counted among the connection's ops: it reads only
    /// the core's table or a static.
    FilesUpdate = 12,
    /// An `ASYNC_CANCEL` of a connection's connect op (tag: connection generation); not
    /// counted among the connection's ops (see `core/connect_cancel.rs`).
    CancelConnect = 13,
    /// The pause before a connect's cancel is aimed again (tag: connection generation);
    /// not counted among the connection's ops, its timespec is a static.
    ConnectCancelRetry = 14,
}

/// A decoded `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Op {
    pub kind: Kind,
    /// 24 bits: a generation or sequence number.
    pub tag: u32,
    pub index: u32,
}

const TAG_MASK: u32 = (1 << 24) - 1;

impl Op {
    pub(crate) fn new(kind: Kind, tag: u32, index: u32) -> Op {
        Op {
            kind,
            tag: tag & TAG_MASK,
            index,
        }
    }

    pub(crate) fn encode(self) -> u64 {
        ((self.kind as u64) << 56) | ((self.tag as u64) << 32) | self.index as u64
    }

    /// `None` for a `user_data` we did not make.
    pub(crate) fn decode(user_data: u64) -> Option<Op> {
        let kind = match (user_data >> 56) as u8 {
            1 => Kind::Wake,
            2 => Kind::Accept,
            3 => Kind::Recv,
            4 => Kind::Send,
            5 => Kind::Cancel,
            6 => Kind::Connect,
            7 => Kind::ConnectTimeout,
            8 => Kind::AcceptBackoff,
            9 => Kind::CancelSend,
            10 => Kind::Handoff,
            11 => Kind::HandoffSent,
            12 => Kind::FilesUpdate,
            13 => Kind::CancelConnect,
            14 => Kind::ConnectCancelRetry,
            _ => return None,
        };
        Some(Op {
            kind,
            tag: ((user_data >> 32) as u32) & TAG_MASK,
            index: user_data as u32,
        })
    }

    /// Whether `tag` (a full counter) names this op's tag.
    pub(crate) fn tag_matches(&self, tag: u32) -> bool {
        self.tag == tag & TAG_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_truncates_tag() {
        for kind in [
            Kind::Wake,
            Kind::Accept,
            Kind::Recv,
            Kind::Send,
            Kind::Cancel,
            Kind::Connect,
            Kind::ConnectTimeout,
            Kind::AcceptBackoff,
            Kind::CancelSend,
            Kind::Handoff,
            Kind::HandoffSent,
            Kind::FilesUpdate,
            Kind::CancelConnect,
            Kind::ConnectCancelRetry,
        ] {
            let op = Op::new(kind, 0x0123_4567, u32::MAX - 3);
            let back = Op::decode(op.encode()).unwrap();
            assert_eq!(back, op);
            assert_eq!(back.tag, 0x23_4567);
            assert!(back.tag_matches(0x0123_4567));
            assert!(!back.tag_matches(0x0123_4568));
        }
        assert_eq!(Op::decode(0), None);
        assert_eq!(Op::decode(0xff << 56), None);
    }
}
