//! Property tests of the hybrid handshake parser: however a valid reply and the stream bytes
//! after it are split into reads, the result is the same host port and the bytes after the
//! reply are exactly the payload; any input ends in a result within the reply bound, never
//! a panic; and hybrid endpoints print and parse back the same.

use proptest::prelude::*;
use uring_vsock::hybrid::{Handshake, HandshakeErrorKind, Step, MAX_REPLY};

/// Feeds `input` in pieces cut at `cuts` (as a driver reading it would), at most `wants()`
/// bytes at a time; returns the host port and the bytes after the reply.
fn feed_split(input: &[u8], cuts: &[usize]) -> Result<(u32, Vec<u8>), HandshakeErrorKind> {
    let mut hs = Handshake::new(5000);
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut from = 0;
    for to in bounds {
        while from < to {
            let n = (to - from).min(hs.wants().max(1));
            let piece = &input[from..from + n];
            match hs.feed(piece).map_err(|e| e.kind())? {
                Step::NeedMore => from += n,
                Step::Done {
                    host_port,
                    consumed,
                } => return Ok((host_port, input[from + consumed..].to_vec())),
            }
        }
    }
    Err(hs.eof().kind())
}

proptest! {
    #[test]
    fn hybrid_reply_splits_do_not_matter(
        host_port: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let input = [format!("OK {host_port}\n").into_bytes(), payload.clone()].concat();
        let whole = feed_split(&input, &[]);
        prop_assert_eq!(&whole, &Ok((host_port, payload)));
        prop_assert_eq!(feed_split(&input, &cuts), whole);
    }

    #[test]
    fn hybrid_any_reply_ends_within_the_bound(
        input in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let split = feed_split(&input, &cuts);
        prop_assert_eq!(&split, &feed_split(&input, &[]), "splits change nothing");
        match split {
            Ok((port, rest)) => {
                // A reply was accepted: it is the newline-ended prefix, within the bound.
                let reply = &input[..input.len() - rest.len()];
                prop_assert!(reply.len() <= MAX_REPLY);
                let digits = reply
                    .strip_prefix(b"OK ")
                    .and_then(|r| r.strip_suffix(b"\n"))
                    .map(|d| String::from_utf8_lossy(d).into_owned());
                prop_assert_eq!(digits.and_then(|d| d.parse::<u32>().ok()), Some(port));
            }
            Err(HandshakeErrorKind::Oversized) => {
                prop_assert!(input.len() >= MAX_REPLY);
                prop_assert!(!input[..MAX_REPLY].contains(&b'\n'));
            }
            Err(_) => {}
        }
    }
}

proptest! {
    #[test]
    fn hybrid_endpoint_round_trips(path in "[a-zA-Z0-9/_.: -]{1,100}", port: u32) {
        use uring_vsock::hybrid::HybridAddr;
        use uring_vsock::Endpoint;
        let ep = Endpoint::Hybrid(HybridAddr::new(&path, port));
        let text = ep.to_string();
        prop_assert_eq!(&text, &format!("hybrid:{path}:{port}"));
        prop_assert_eq!(text.parse::<Endpoint>(), Ok(ep));
    }
}
