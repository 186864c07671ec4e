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
use util::{bind_endpoint, TempDir, Transport};

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
        let dir = TempDir::new();
        let e = Engine::builder().workers(2).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Unix, &dir), |_| {
                http::Http::default()
            })
            .unwrap();
        let uring_vsock::Endpoint::Unix(path) = &ep else {
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
        let bytes: Vec<u8> = (0..100_000).map(|i| b'0' + (i % 10) as u8).collect();
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
        let dir = TempDir::new();
        let e = Engine::builder().workers(1).build().unwrap();
        let ep = e
            .listen(&bind_endpoint(Transport::Tcp, &dir), |_| {
                http::Http::default()
            })
            .unwrap();
        let mut s = BufReader::new(connect(&ep));
        for i in 0..200usize {
            let (code, body) = http::get(&mut s, &format!("/bytes/{}", i * 97)).unwrap();
            assert_eq!(code, 200);
            assert_eq!(body.len(), i * 97);
            assert!(body
                .iter()
                .enumerate()
                .all(|(j, &b)| b == b'0' + (j % 10) as u8));
        }
        let (code, _) = http::get(&mut s, "/missing").unwrap();
        assert_eq!(code, 404);
    });
}
