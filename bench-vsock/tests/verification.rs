//! The sessions catch a transport that loses or corrupts bytes: an in-memory link that
//! damages one chunk in transit must make the right end report the right byte, or leave
//! both ends waiting where a loss cannot be seen from the data.

use std::sync::Arc;
use std::time::Instant;

use bench_vsock::session::{ServerSession, Session, SessionPlan, SessionSource, Want};
use bench_vsock::wire::Mode;
use bench_vsock::Error;

/// Which way a chunk travels.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Client to server: the header is chunk 0, then one chunk per message, frame or
    /// source request.
    ToServer,
    /// Server to client: one chunk per echo or source message, or the ack.
    ToClient,
}

/// What the link does to the n-th chunk going one way.
#[derive(Clone, Copy)]
enum Damage {
    None,
    /// Flips a bit of the chunk's last byte.
    Flip(Dir, usize),
    /// Loses the chunk.
    Drop(Dir, usize),
}

/// How a pumped connection ended.
#[derive(Debug)]
enum End {
    /// Both ends finished; the payload bytes each verified.
    Clean { client: u64, server: u64 },
    /// The client reported this error.
    Client(Error),
    /// The server reported this error.
    Server(Error),
    /// Neither end can move (each waits for the other), after each verified this much.
    Stalled { client: u64, server: u64 },
}

/// Carries one chunk, damaged or not; `None` when it is lost.
fn carry(data: &[u8], dir: Dir, index: usize, damage: Damage) -> Option<Vec<u8>> {
    let mut data = data.to_vec();
    match damage {
        Damage::Flip(d, k) if d == dir && k == index => {
            let last = data.len() - 1;
            data[last] ^= 0x40;
        }
        Damage::Drop(d, k) if d == dir && k == index => return None,
        _ => {}
    }
    Some(data)
}

/// Drives one client and one server session against each other in memory, each send
/// delivered whole (or damaged as `damage` says). Returns the source (for its outcome)
/// and how the connection ended.
fn pump(mode: Mode, size: usize, count: u64, damage: Damage) -> (SessionSource, End) {
    pump_plan(
        SessionPlan {
            mode,
            size,
            sessions: 1,
            per_session: Some(count),
            deadline: None,
            interval: None,
            from_connect: false,
        },
        damage,
    )
}

/// [`pump`] with a plan of its own.
fn pump_plan(plan: SessionPlan, damage: Damage) -> (SessionSource, End) {
    let source = SessionSource::new(plan);
    let mut client = source.next_session().unwrap();
    let mut server = ServerSession::new();
    let (mut up, mut down) = (0, 0);
    // Each turn moves at least one chunk or ends, so this bounds a broken session.
    for _ in 0..100_000 {
        let now = Instant::now();
        let mut moved = false;
        if let Want::Send(out) = client.next(now) {
            // Copied out the way the uring backend fills its send buffers.
            let bytes: Vec<u8> = out.parts().flatten().copied().collect();
            let data = carry(&bytes, Dir::ToServer, up, damage);
            let n = bytes.len();
            client.on_sent(n, now);
            up += 1;
            moved = true;
            if let Some(data) = data {
                if let Err(e) = server.on_recv(&data, now) {
                    return (source, End::Server(e));
                }
            }
        }
        if let Want::Send(out) = server.next(now) {
            // As the blocking, epoll and tokio backends take it.
            let bytes = out.as_slice();
            let data = carry(bytes, Dir::ToClient, down, damage);
            let n = bytes.len();
            server.on_sent(n, now);
            down += 1;
            moved = true;
            if let Some(data) = data {
                if let Err(e) = client.on_recv(&data, now) {
                    return (source, End::Client(e));
                }
            }
        }
        if client.next(now) == Want::Done {
            // The client closes; the server sees the end of the stream.
            if let Err(e) = server.on_eof() {
                return (source, End::Server(e));
            }
            assert!(client.is_done());
            let end = End::Clean {
                client: client.bytes_verified(),
                server: server.bytes_verified(),
            };
            return (source, end);
        }
        if !moved {
            assert!(!client.is_done());
            let end = End::Stalled {
                client: client.bytes_verified(),
                server: server.bytes_verified(),
            };
            return (source, end);
        }
    }
    panic!("the sessions neither finished nor stalled in 100000 turns");
}

fn error(end: End, server: bool) -> String {
    match (end, server) {
        (End::Server(e), true) | (End::Client(e), false) => e.message().to_owned(),
        (end, _) => panic!(
            "expected the {} to fail, got {end:?}",
            if server { "server" } else { "client" }
        ),
    }
}

#[test]
fn clean_link_verifies_every_byte_on_both_ends() {
    let (source, end) = pump(Mode::Echo, 100, 5, Damage::None);
    assert!(
        matches!(
            end,
            End::Clean {
                client: 500,
                server: 500
            }
        ),
        "{end:?}"
    );
    let outcome = source.finish().unwrap();
    assert_eq!((outcome.bytes_verified, outcome.messages), (500, 5));
    assert_eq!(outcome.payload_bytes, 2 * 500);

    let (source, end) = pump(Mode::Sink, 4096, 3, Damage::None);
    // The server checks every byte; the client counts what the server's ack vouches for.
    assert!(
        matches!(
            end,
            End::Clean {
                client: 12288,
                server: 12288
            }
        ),
        "{end:?}"
    );
    assert_eq!(source.finish().unwrap().bytes_verified, 3 * 4096);
}

#[test]
fn a_session_whose_deadline_passed_while_connecting_still_completes_one_message() {
    // A slow machine's connects can outlast a short timed run: it must still measure.
    for (mode, size) in [(Mode::Echo, 64), (Mode::Sink, 4096), (Mode::Source, 4096)] {
        let plan = SessionPlan {
            mode,
            size,
            sessions: 1,
            per_session: None,
            deadline: Some(Instant::now()),
            interval: None,
            from_connect: false,
        };
        let (source, end) = pump_plan(plan, Damage::None);
        assert!(matches!(end, End::Clean { .. }), "{end:?}");
        let outcome = source.finish().expect("one message verified");
        assert_eq!((outcome.messages, outcome.bytes_verified), (1, size as u64));
    }
}

#[test]
fn corruption_on_the_way_in_is_caught_by_the_server_at_its_byte() {
    // Chunk 0 is the header; chunk 2 is the second message, bytes 100..200 of the stream.
    let (_, end) = pump(Mode::Echo, 100, 5, Damage::Flip(Dir::ToServer, 2));
    assert_eq!(
        error(end, true),
        "client data corrupted at stream offset 199: closing"
    );
    // Chunk 1 is the first frame: its last byte is payload byte 4095.
    let (_, end) = pump(Mode::Sink, 4096, 3, Damage::Flip(Dir::ToServer, 1));
    assert_eq!(
        error(end, true),
        "client data corrupted at stream offset 4095: closing"
    );
}

#[test]
fn corruption_on_the_way_back_is_caught_by_the_client_at_its_byte() {
    // Chunk 1 is the second echo, bytes 100..200 of the stream.
    let (_, end) = pump(Mode::Echo, 100, 5, Damage::Flip(Dir::ToClient, 1));
    assert_eq!(
        error(end, false),
        "echo corrupted at stream offset 199 (byte 99 of the 100-byte echo)"
    );
    // A damaged ack (its status word) fails the stream even though every byte arrived.
    let (_, end) = pump(Mode::Sink, 4096, 3, Damage::Flip(Dir::ToClient, 0));
    let e = error(end, false);
    assert!(
        e.starts_with("server acked 12288 bytes with status "),
        "{e}"
    );
    assert!(e.ends_with(", but 12288 were sent"), "{e}");
}

#[test]
fn loss_of_an_echo_request_or_reply_leaves_both_ends_waiting() {
    // The third request is lost: two round trips were verified on both ends, then the
    // client waits for an echo the server never had (a real backend's IO timeout ends it).
    let (_, end) = pump(Mode::Echo, 100, 5, Damage::Drop(Dir::ToServer, 3));
    assert!(
        matches!(
            end,
            End::Stalled {
                client: 200,
                server: 200
            }
        ),
        "{end:?}"
    );
    // The second echo is lost: the server verified two requests, the client one echo.
    let (_, end) = pump(Mode::Echo, 100, 5, Damage::Drop(Dir::ToClient, 1));
    assert!(
        matches!(
            end,
            End::Stalled {
                client: 100,
                server: 200
            }
        ),
        "{end:?}"
    );
}

#[test]
fn loss_of_a_stream_frame_shifts_the_rest_off_the_pattern() {
    // Frame 2 (chunk 2) is lost: frame 3's first byte arrives where frame 2's was due.
    let (_, end) = pump(Mode::Sink, 4096, 3, Damage::Drop(Dir::ToServer, 2));
    assert_eq!(
        error(end, true),
        "client data corrupted at stream offset 4096: closing"
    );
}

#[test]
fn a_reverse_stream_is_verified_by_the_client() {
    // The server sends what the client asks for; the client checks every byte of it.
    let (source, end) = pump(Mode::Source, 4096, 3, Damage::None);
    assert!(
        matches!(
            end,
            End::Clean {
                client: 12288,
                server: 0
            }
        ),
        "{end:?}"
    );
    let outcome = source.finish().unwrap();
    assert_eq!((outcome.messages, outcome.bytes_verified), (3, 12288));
    assert_eq!(outcome.payload_bytes, 12288);
    // More messages than one request holds (1 MiB per request): several requests, in order.
    let (source, end) = pump(Mode::Source, 1000, 3000, Damage::None);
    assert!(
        matches!(
            end,
            End::Clean {
                client: 3_000_000,
                ..
            }
        ),
        "{end:?}"
    );
    assert_eq!(source.finish().unwrap().messages, 3000);
}

#[test]
fn corruption_or_loss_in_a_reverse_stream_is_caught_by_the_client_at_its_byte() {
    // Chunk 1 is the second message: its last byte is stream byte 8191.
    let (_, end) = pump(Mode::Source, 4096, 3, Damage::Flip(Dir::ToClient, 1));
    assert_eq!(
        error(end, false),
        "stream from the server corrupted at stream offset 8191 (byte 8191 of the stream)"
    );
    // The second message is lost: the third's first byte arrives where it was due.
    let (_, end) = pump(Mode::Source, 1000, 3, Damage::Drop(Dir::ToClient, 1));
    assert_eq!(
        error(end, false),
        "stream from the server corrupted at stream offset 1000 (byte 1000 of the stream)"
    );
    // A damaged request (chunk 1, the first after the header) asks for far more than the
    // client wants: the client closes once it has its 3 messages, and the server says what
    // it was still asked for.
    let (_, end) = pump(Mode::Source, 1000, 3, Damage::Flip(Dir::ToServer, 1));
    assert_eq!(
        error(end, true),
        format!(
            "client closed with {} requested message(s) not yet sent",
            (3 | 0x4000_0000) - 3
        )
    );
}

#[test]
fn a_run_that_verified_nothing_is_an_error() {
    let source = Arc::new(SessionSource::new(SessionPlan {
        mode: Mode::Echo,
        size: 64,
        sessions: 1,
        per_session: Some(1),
        deadline: None,
        interval: None,
        from_connect: false,
    }));
    let e = source.finish().unwrap_err();
    assert!(e.message().contains("verified no bytes"), "{e}");
}
