//! The HTTP example served by the engine, checked by curl (over a unix socket) and by our
//! client (keep-alive, many requests on one connection).

mod engine_support;
#[path = "../examples/http.rs"]
mod http;
mod util;

use std::io::BufReader;
use std::process::Command;

use engine_support::connect;

use uring_vsock::uring::Engine;
use uring_vsock::Endpoint;
use util::{bind_endpoint, TempDir, Transport};

/// An engine of `workers` workers serving the HTTP example on a fresh `transport` endpoint
/// (in the returned folder, which must outlive it), and that endpoint.
fn serve_http(workers: usize, transport: Transport) -> (TempDir, Engine, Endpoint) {
    let dir = TempDir::new();
    let e = Engine::builder().workers(workers).build().unwrap();
    let ep = e
        .listen(&bind_endpoint(transport, &dir), |_| http::Http::default())
        .unwrap();
    (dir, e, ep)
}

/// The example's body byte at offset `i`: the digits 0 to 9, over and over.
fn body_byte(i: usize) -> u8 {
    b'0' + (i % 10) as u8
}

#[test]
fn engine_http_curl_over_unix_socket_keep_alive() {
    util::fds_unchanged(|| {
        let curl = Command::new("sh")
            .args(["-c", "command -v curl"])
            .output()
            .unwrap();
        assert!(
            curl.status.success(),
            "curl is needed for this test and was not found on PATH (install curl)"
        );
        let (_dir, e, ep) = serve_http(2, Transport::Unix);
        let Endpoint::Unix(path) = &ep else {
            unreachable!()
        };
        // Two URLs in one curl run: the second reuses the connection (keep-alive).
        let out = Command::new("curl")
            // Bounded: a hung server fails curl (and the test) instead of hanging it.
            .args(["-sS", "-v", "--max-time", "120", "--unix-socket"])
            .arg(path)
            .args(["http://localhost/", "http://localhost/bytes/100000"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "curl failed: {stderr}");
        let body = out.stdout;
        let hello = b"hello from uring-vsock\n";
        assert_eq!(&body[..hello.len()], hello);
        let bytes: Vec<u8> = (0..100_000).map(body_byte).collect();
        assert!(body[hello.len()..] == bytes[..], "second body differs");
        assert!(
            stderr.contains("Re-using existing connection") || stderr.contains("Reusing existing"),
            "no keep-alive: {stderr}"
        );
        assert_eq!(e.stats().accepted, 1, "both requests on one connection");
    });
}

#[test]
fn engine_http_our_client_many_requests_one_connection_tcp() {
    util::fds_unchanged(|| {
        let (_dir, _engine, ep) = serve_http(1, Transport::Tcp);
        let mut s = BufReader::new(connect(&ep));
        for i in 0..200usize {
            let (code, body) = http::get(&mut s, &format!("/bytes/{}", i * 97)).unwrap();
            assert_eq!(code, 200);
            assert_eq!(body.len(), i * 97);
            assert!(body.iter().enumerate().all(|(j, &b)| b == body_byte(j)));
        }
        let (code, _) = http::get(&mut s, "/missing").unwrap();
        assert_eq!(code, 404);
    });
}

/// Reads one response head from `s`: (status, Content-Length).
fn read_head(s: &mut BufReader<uring_vsock::blocking::Stream>) -> (u16, usize) {
    use std::io::BufRead;
    let mut line = String::new();
    s.read_line(&mut line).unwrap();
    let code = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        s.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            return (code, len);
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
}

/// `HEAD` gets the headers `GET` would (the length included) and no body: the next response
/// on the same keep-alive connection starts right after them.
#[test]
fn engine_http_head_has_no_body_and_keep_alive_goes_on() {
    use std::io::Write;
    util::fds_unchanged(|| {
        let (_dir, _engine, ep) = serve_http(1, Transport::Unix);
        let mut s = BufReader::new(connect(&ep));
        for path in ["/", "/bytes/5000"] {
            write!(s.get_mut(), "HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let (code, len) = read_head(&mut s);
            assert_eq!(code, 200, "{path}");
            assert!(len > 0, "HEAD {path} says the GET's length");
            // The very next bytes are the GET's response, not a body.
            let (code, body) = http::get(&mut s, path).unwrap();
            assert_eq!((code, body.len()), (200, len), "GET {path} after HEAD");
        }
    });
}

/// The resident set size of this process, from /proc.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Pipelined requests for large bodies from clients that do not read yet: the server
/// answers one at a time and makes bodies as sends complete, so its memory does not grow
/// with what was asked (2 clients x 2 x 64 MiB = 256 MiB asked; the old example built every
/// body at once); then every byte arrives.
#[test]
fn engine_http_pipelined_large_bodies_keep_memory_bounded() {
    util::fds_unchanged(pipelined_large_bodies);
}

fn pipelined_large_bodies() {
    use std::io::{Read, Write};
    let (_dir, e, ep) = serve_http(2, Transport::Unix);
    let n = http::MAX_BODY;
    let before = rss_bytes();
    let mut clients: Vec<_> = (0..2)
        .map(|_| {
            let mut c = connect(&ep);
            for _ in 0..2 {
                write!(c, "GET /bytes/{n} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            }
            c
        })
        .collect();
    // Let the server run until the clients' receive buffers are full and it waits.
    engine_support::wait_until("the server has sent what the sockets hold", || {
        e.stats().sent_bytes >= 2 * 64 * 1024
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the server's memory grew {} MiB for unread pipelined responses",
        grown >> 20
    );
    // Now read everything: 2 whole responses per client, every body byte checked.
    let readers: Vec<_> = clients
        .drain(..)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = BufReader::new(c);
                for _ in 0..2 {
                    let (code, len) = read_head(&mut s);
                    assert_eq!((code, len), (200, n));
                    let mut left = len;
                    let mut pos = 0usize;
                    let mut buf = vec![0u8; 256 * 1024];
                    while left > 0 {
                        let k = s.read(&mut buf[..left.min(256 * 1024)]).unwrap();
                        assert!(k > 0, "EOF inside a body");
                        assert!(buf[..k]
                            .iter()
                            .enumerate()
                            .all(|(j, &b)| b == body_byte(pos + j)));
                        pos += k;
                        left -= k;
                    }
                }
            })
        })
        .collect();
    for r in readers {
        r.join().expect("a reader's checks");
    }
    e.shutdown();
}
