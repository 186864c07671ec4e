//! Checks every response the load generator gets: status 200, the content-length (when
//! sent) and the body, exactly the bytes asked for, each the pattern's byte at its offset.
//! A response that fails is an error that fails the run, never a number in it.

use hyper::http::response::Parts;
use hyper::StatusCode;

use crate::error::{Error, Result};
use crate::pattern;

/// Checks a response's head against a request for `want` bytes.
///
/// # Errors
///
/// A status other than 200, or a content-length that is not `want`.
pub fn check_head(head: &Parts, want: usize) -> Result<()> {
    if head.status != StatusCode::OK {
        return Err(Error::new(format!(
            "GET of {want} bytes answered {} instead of 200 OK",
            head.status
        )));
    }
    if let Some(len) = head.headers.get(hyper::header::CONTENT_LENGTH) {
        let len = len.to_str().ok().and_then(|s| s.parse::<u64>().ok());
        if len != Some(want as u64) {
            return Err(Error::new(format!(
                "GET of {want} bytes answered with content-length {len:?}"
            )));
        }
    }
    Ok(())
}

/// A body being checked as its pieces arrive (no copy: each piece is compared where it
/// lies).
#[derive(Debug, Clone)]
pub struct BodyCheck {
    want: u64,
    got: u64,
}

impl BodyCheck {
    /// A check of a body that should be `want` bytes of the pattern.
    pub fn new(want: usize) -> BodyCheck {
        BodyCheck {
            want: want as u64,
            got: 0,
        }
    }

    /// Checks the next piece.
    ///
    /// # Errors
    ///
    /// The body runs past `want` bytes, or a byte differs from the pattern (the error says
    /// which).
    pub fn feed(&mut self, piece: &[u8]) -> Result<()> {
        let end = self.got + piece.len() as u64;
        if end > self.want {
            return Err(Error::new(format!(
                "body longer than the {} bytes asked for: {end} bytes so far",
                self.want
            )));
        }
        if let Some(at) = pattern::mismatch(self.got, piece) {
            return Err(Error::new(format!(
                "body of {} bytes differs from the pattern at byte {at}",
                self.want
            )));
        }
        self.got = end;
        Ok(())
    }

    /// The body has ended: the bytes checked.
    ///
    /// # Errors
    ///
    /// It ended short of `want` bytes.
    pub fn finish(self) -> Result<u64> {
        if self.got != self.want {
            return Err(Error::new(format!(
                "body ended after {} of the {} bytes asked for",
                self.got, self.want
            )));
        }
        Ok(self.got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::service;

    fn check_in_pieces(body: &[u8], want: usize, piece: usize) -> Result<u64> {
        let mut c = BodyCheck::new(want);
        for p in body.chunks(piece.max(1)) {
            c.feed(p)?;
        }
        c.finish()
    }

    #[test]
    fn a_whole_body_passes_in_any_pieces() {
        let body = service::body(100_000);
        for piece in [1, 7, 4096, 65536, 100_000] {
            assert_eq!(check_in_pieces(&body, 100_000, piece), Ok(100_000));
        }
        assert_eq!(check_in_pieces(&[], 0, 1), Ok(0));
    }

    #[test]
    fn a_corrupted_short_long_or_shifted_body_is_rejected() {
        let good = service::body(65536).to_vec();
        let mut bad = good.clone();
        bad[40_000] ^= 0x20;
        let e = check_in_pieces(&bad, 65536, 4096).unwrap_err();
        assert!(e.message().contains("at byte 40000"), "{e}");
        let e = check_in_pieces(&good[..65535], 65536, 4096).unwrap_err();
        assert!(
            e.message().contains("ended after 65535 of the 65536"),
            "{e}"
        );
        let e = check_in_pieces(&good, 64, 4096).unwrap_err();
        assert!(e.message().contains("longer than the 64 bytes"), "{e}");
        // The right length from the wrong place in the pattern.
        let e = check_in_pieces(&good[1..], 65535, 4096).unwrap_err();
        assert!(e.message().contains("at byte 0"), "{e}");
    }

    #[test]
    fn the_head_must_be_200_with_the_right_length() {
        let head = |status: u16, len: Option<&str>| {
            let mut b = hyper::Response::builder().status(status);
            if let Some(l) = len {
                b = b.header("content-length", l);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert_eq!(check_head(&head(200, Some("64")), 64), Ok(()));
        assert_eq!(check_head(&head(200, None), 64), Ok(()));
        let e = check_head(&head(404, Some("64")), 64).unwrap_err();
        assert!(e.message().contains("404 Not Found"), "{e}");
        let e = check_head(&head(200, Some("63")), 64).unwrap_err();
        assert!(e.message().contains("content-length Some(63)"), "{e}");
        assert!(check_head(&head(200, Some("x")), 64).is_err());
    }
}
