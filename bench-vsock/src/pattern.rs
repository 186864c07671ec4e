//! The byte pattern every workload sends and checks, so a backend cannot look faster by
//! losing, reordering or corrupting data.
//!
//! Byte `o` of a connection's stream is `(o + seed) % 251`: a prime period, so a shift by any
//! whole message or buffer size (usually a power of two) shows up as a mismatch.

use std::sync::OnceLock;

/// The pattern's period: a prime, so no power-of-two size is a multiple of it.
const PERIOD: usize = 251;
/// The longest piece filled or checked with one copy or compare.
const PIECE: usize = 64 * 1024;

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| (0..PERIOD + PIECE).map(|i| (i % PERIOD) as u8).collect())
}

/// The pattern's bytes from stream offset `offset`, `len` at most [`PIECE`].
fn piece(offset: u64, len: usize) -> &'static [u8] {
    let start = (offset % PERIOD as u64) as usize;
    &table()[start..start + len]
}

/// Fills `buf` with the pattern's bytes starting at stream offset `offset`.
pub fn fill(offset: u64, buf: &mut [u8]) {
    let mut at = offset;
    for chunk in buf.chunks_mut(PIECE) {
        chunk.copy_from_slice(piece(at, chunk.len()));
        at += chunk.len() as u64;
    }
}

/// The pattern's `len` bytes from stream offset `offset`, as slices of a static table in
/// order (each at most 64 KiB): a caller copies them straight to where they go, with no
/// buffer of its own in between.
pub fn pieces(offset: u64, len: usize) -> impl Iterator<Item = &'static [u8]> {
    let mut at = offset;
    let mut left = len;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(PIECE);
        let p = piece(at, n);
        at += n as u64;
        left -= n;
        Some(p)
    })
}

/// Appends the pattern's `len` bytes from stream offset `offset` to `out`: one pass, no
/// zeroing first.
pub fn extend(out: &mut Vec<u8>, offset: u64, len: usize) {
    out.reserve(len);
    for p in pieces(offset, len) {
        out.extend_from_slice(p);
    }
}

/// The stream offset of the first byte of `data` that differs from the pattern at `offset`,
/// or `None` when all match.
pub fn mismatch(offset: u64, data: &[u8]) -> Option<u64> {
    let mut at = offset;
    for chunk in data.chunks(PIECE) {
        let want = piece(at, chunk.len());
        if chunk != want {
            let i = chunk
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Some(at + i as u64);
        }
        at += chunk.len() as u64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_check_round_trips_across_pieces() {
        let mut buf = vec![0; 3 * PIECE + 17];
        fill(1000, &mut buf);
        assert_eq!(mismatch(1000, &buf), None);
        assert_eq!(buf[0], (1000 % 251) as u8);
        // The same bytes checked as two parts at their own offsets.
        let (a, b) = buf.split_at(PIECE + 5);
        assert_eq!(mismatch(1000, a), None);
        assert_eq!(mismatch(1000 + a.len() as u64, b), None);
    }

    #[test]
    fn pieces_and_extend_make_the_same_bytes_as_fill() {
        for (offset, len) in [(0, 0), (5, 1), (250, 3 * PIECE + 9), (1 << 40, PIECE)] {
            let mut filled = vec![0; len];
            fill(offset, &mut filled);
            let joined: Vec<u8> = pieces(offset, len).flatten().copied().collect();
            assert_eq!(joined, filled, "pieces at {offset} for {len}");
            assert!(pieces(offset, len).all(|p| !p.is_empty() && p.len() <= PIECE));
            let mut extended = b"head".to_vec();
            extend(&mut extended, offset, len);
            assert_eq!(&extended[..4], b"head");
            assert_eq!(&extended[4..], &filled[..]);
        }
    }

    #[test]
    fn finds_corruption_and_shifts() {
        let mut buf = vec![0; 4096];
        fill(7, &mut buf);
        buf[3000] ^= 1;
        assert_eq!(mismatch(7, &buf), Some(3007));
        fill(7, &mut buf);
        // Data from the wrong place in the stream (a lost or repeated 4 KiB write).
        assert_eq!(mismatch(7 + 4096, &buf), Some(7 + 4096));
    }
}
