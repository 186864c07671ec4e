//! The harness's own ceiling: how fast the work every stream byte costs the harness, with
//! no socket, goes on one thread. The client makes each frame (a length prefix and the
//! pattern, as [`Outbox::as_slice`](crate::session::Outbox::as_slice) makes it) and the
//! server checks the payload against the pattern; a stream run cannot move payload faster
//! than this on one core, so reports show it beside the stream figures.

use std::time::{Duration, Instant};

use crate::pattern;
use crate::wire::FRAME_PREFIX_LEN;

/// How long one measurement runs.
pub const PROBE: Duration = Duration::from_millis(25);
/// Frames between looks at the clock, so reading it costs nothing next to small frames.
const FRAMES_PER_LOOK: u32 = 16;

/// Payload GB/s (10^9 bytes) of making and checking `size`-byte stream frames for about
/// `probe`.
///
/// # Panics
///
/// If a frame does not match the pattern it was made from (a bug in [`pattern`]).
pub fn stream_gbytes_per_s(size: usize, probe: Duration) -> f64 {
    let mut frame = Vec::with_capacity(FRAME_PREFIX_LEN + size);
    let mut at = 0u64;
    let start = Instant::now();
    let mut bytes = 0u64;
    loop {
        for _ in 0..FRAMES_PER_LOOK {
            frame.clear();
            frame.extend_from_slice(&(size as u32).to_le_bytes());
            pattern::extend(&mut frame, at, size);
            let payload = std::hint::black_box(&frame[FRAME_PREFIX_LEN..]);
            assert_eq!(pattern::mismatch(at, payload), None, "pattern at {at}");
            at += size as u64;
            bytes += size as u64;
        }
        let elapsed = start.elapsed();
        if elapsed >= probe {
            return bytes as f64 / elapsed.as_secs_f64() / 1e9;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_a_positive_finite_rate_for_any_size() {
        for size in [1, 64, 70 * 1024] {
            let g = stream_gbytes_per_s(size, Duration::from_millis(1));
            assert!(g.is_finite() && g > 0.0, "{size}: {g}");
        }
    }
}
