//! The one service every server backend serves: `GET /bytes/N` answers N bytes of the
//! pattern ([`crate::pattern`], from offset 0); anything else is a 404 or, past
//! [`MAX_BODY`], a 400. The same function on every backend, so they differ in their I/O
//! alone.

use std::convert::Infallible;
use std::future::{ready, Ready};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::pattern;

/// The largest body the service makes (`--bodies` is bounded by it): memory per response
/// stays bounded.
pub const MAX_BODY: usize = 16 << 20;

const PREFIX: &str = "/bytes/";

/// The path that asks for `n` bytes.
pub fn path(n: usize) -> String {
    format!("{PREFIX}{n}")
}

/// `n` bytes of the pattern. Up to 64 KiB they are one slice of the pattern's static table:
/// no allocation and no copy per response; larger bodies are made for each response.
pub fn body(n: usize) -> Bytes {
    let mut pieces = pattern::pieces(0, n);
    match (pieces.next(), pieces.next()) {
        (None, _) => Bytes::new(),
        (Some(one), None) => Bytes::from_static(one),
        _ => {
            let mut v = Vec::new();
            pattern::extend(&mut v, 0, n);
            Bytes::from(v)
        }
    }
}

fn refuse(status: StatusCode, why: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(why.as_bytes())));
    *r.status_mut() = status;
    r
}

/// The response to `req`: its body has an exact length, so hyper sends a content-length on
/// HTTP/1.1 and HTTP/2 alike.
pub fn respond<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let n = match req.uri().path().strip_prefix(PREFIX) {
        Some(n) if req.method() == Method::GET => n.parse::<usize>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= MAX_BODY => Response::new(Full::new(body(n))),
        Some(_) => refuse(StatusCode::BAD_REQUEST, "at most 16 MiB\n"),
        None => refuse(StatusCode::NOT_FOUND, "GET /bytes/N only\n"),
    }
}

/// [`respond`] as a hyper service, the same on every server.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesService;

impl hyper::service::Service<Request<Incoming>> for BytesService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        ready(Ok(respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn bytes_n_is_the_pattern_and_the_rest_is_refused() {
        for n in [0, 1, 64, 64 << 10, (64 << 10) + 1, 1 << 20] {
            let r = respond(&get(&path(n)));
            assert_eq!(r.status(), StatusCode::OK);
            let b = body(n);
            assert_eq!(b.len(), n);
            assert_eq!(pattern::mismatch(0, &b), None, "{n}");
        }
        assert_eq!(respond(&get("/nope")).status(), StatusCode::NOT_FOUND);
        assert_eq!(respond(&get("/bytes/x")).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            respond(&get(&path(MAX_BODY + 1))).status(),
            StatusCode::BAD_REQUEST
        );
        let post = Request::post(path(4)).body(()).unwrap();
        assert_eq!(respond(&post).status(), StatusCode::NOT_FOUND);
    }
}
