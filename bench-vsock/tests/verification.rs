//! The sessions catch a transport that loses, corrupts or duplicates bytes: an in-memory
//! "backend" that damages data in transit must fail the run.

use std::sync::Arc;
use std::time::Instant;

use bench_vsock::session::{ServerSession, Session, SessionPlan, SessionSource, Want};
use bench_vsock::wire::Mode;

/// What the in-memory link does to the n-th byte chunk sent client → server.
#[derive(Clone, Copy)]
enum Damage {
    None,
    FlipByteInChunk(usize),
    DropChunk(usize),
}

/// Drives one client and one server session against each other in memory, delivering
/// each send whole; returns the first error either end reported.
fn pump(mode: Mode, size: usize, count: u64, damage: Damage) -> bench_vsock::Result<SessionSource> {
    let source = SessionSource::new(SessionPlan {
        mode,
        size,
        sessions: 1,
        per_session: Some(count),
        deadline: None,
        interval: None,
        from_connect: false,
    });
    let mut client = source.next_session().unwrap();
    let mut server = ServerSession::new();
    let mut chunk = 0;
    for _ in 0..100_000 {
        let now = Instant::now();
        let mut progressed = false;
        if let Want::Send(bytes) = client.next(now) {
            let mut data = bytes.to_vec();
            let n = data.len();
            client.on_sent(n, now);
            match damage {
                Damage::FlipByteInChunk(k) if k == chunk => {
                    let last = data.len() - 1;
                    data[last] ^= 0x40;
                }
                Damage::DropChunk(k) if k == chunk => data.clear(),
                _ => {}
            }
            chunk += 1;
            if !data.is_empty() {
                server.on_recv(&data, now)?;
            }
            progressed = true;
        }
        if let Want::Send(bytes) = server.next(now) {
            let data = bytes.to_vec();
            server.on_sent(data.len(), now);
            client.on_recv(&data, now)?;
            progressed = true;
        }
        if client.next(now) == Want::Done {
            server.on_eof()?;
            let _ = client.bytes_verified();
            return Ok(source);
        }
        if !progressed {
            return Err(bench_vsock::Error::new("both ends wait: data was lost"));
        }
    }
    Err(bench_vsock::Error::new("did not finish"))
}

#[test]
fn clean_link_verifies_everything() {
    let source = pump(Mode::Echo, 100, 5, Damage::None).unwrap();
    assert_eq!(source.finish().unwrap().bytes_verified, 500);
    let source = pump(Mode::Sink, 4096, 3, Damage::None).unwrap();
    assert_eq!(source.finish().unwrap().bytes_verified, 3 * 4096);
}

#[test]
fn corruption_is_caught() {
    // Chunk 0 is the header; chunk 2 is the second message.
    let e = pump(Mode::Echo, 100, 5, Damage::FlipByteInChunk(2)).unwrap_err();
    assert!(e.message().contains("corrupted"), "{e}");
    let e = pump(Mode::Sink, 4096, 3, Damage::FlipByteInChunk(1)).unwrap_err();
    assert!(e.message().contains("corrupted"), "{e}");
}

#[test]
fn loss_is_caught() {
    // A lost echo request leaves both ends waiting.
    assert!(pump(Mode::Echo, 100, 5, Damage::DropChunk(3)).is_err());
    // A lost stream frame shifts the rest of the stream off the pattern.
    let e = pump(Mode::Sink, 4096, 3, Damage::DropChunk(2)).unwrap_err();
    assert!(
        e.message().contains("corrupted") || e.message().contains("acked"),
        "{e}"
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
