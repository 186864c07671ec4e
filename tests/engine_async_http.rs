//! hyper on the engine (examples/http_engine.rs): curl over unix with HTTP/1.1 and HTTP/2,
//! pipelined requests, 1,000 keep-alive connections, a slow client that neither stalls the
//! others on its worker nor holds its connection past the header timeout, a malformed
//! request answered with 400; our client over vsock in the VM.

mod engine_support;
#[path = "../examples/http_engine.rs"]
mod example;
mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine_support::{connect, WATCHDOG};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::rt::HttpServer;
use uring_vsock::uring::Engine;
use uring_vsock::Endpoint;
use util::{bind_endpoint, connect_endpoint, TempDir, Transport};

fn server(t: Transport, dir: &TempDir, workers: usize, http: HttpServer) -> (Engine, Endpoint) {
    let e = Engine::builder().workers(workers).build().unwrap();
    let local = example::serve(&e, &bind_endpoint(t, dir), http).unwrap();
    (e, connect_endpoint(&local))
}

/// Reads one response (status line, headers, a content-length body).
fn read_response(r: &mut impl BufRead) -> (u16, Vec<u8>) {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .read_until(b'\n', &mut line)
            .expect("read a response line");
        assert!(
            n > 0,
            "EOF inside a response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let status = resp.parse(&head).expect("a valid response head");
    assert!(status.is_complete());
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .expect("content-length");
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("the body");
    (resp.code.expect("status"), body)
}

fn get(path: &str, close: bool) -> String {
    let conn = if close { "connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n{conn}\r\n")
}

fn curl(sock: &std::path::Path, extra: &[&str], url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--unix-socket"])
        .arg(sock)
        .args(extra)
        .args(["-w", "\n%{http_version}", url])
        .output()
        .expect("run curl (is it installed? .ci/run installs it)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, version) = text.rsplit_once('\n').unwrap();
    (body.to_owned(), version.to_owned())
}

#[test]
fn curl_over_unix_http1_and_http2() {
    let dir = TempDir::new();
    let (_e, ep) = server(Transport::Unix, &dir, 2, HttpServer::new());
    let Endpoint::Unix(sock) = &ep else {
        unreachable!()
    };
    let (body, v) = curl(sock, &[], "http://x/hello");
    assert_eq!(
        (body.starts_with("hello unix:"), v.as_str()),
        (true, "1.1"),
        "{body}"
    );
    let (body, v) = curl(sock, &["--http2-prior-knowledge"], "http://x/hello");
    assert_eq!(
        (body.starts_with("hello unix:"), v.as_str()),
        (true, "2"),
        "{body}"
    );
    let (body, v) = curl(sock, &["--http2-prior-knowledge"], "http://x/bytes/300000");
    assert_eq!((body.len(), v.as_str()), (300_000, "2"));
    assert!(body.bytes().all(|b| b == b'x'));
    // Several requests on one connection (keep-alive), and a POST body echoed back.
    let (body, _) = curl(sock, &["-d", "ping-pong"], "http://x/echo");
    assert_eq!(body, "ping-pong");
}

#[test]
fn pipelined_requests_get_their_responses_in_order() {
    for t in [Transport::Unix, Transport::Tcp] {
        let dir = TempDir::new();
        let (_e, ep) = server(t, &dir, 1, HttpServer::new());
        let mut c = connect(&ep);
        let reqs = [
            get("/bytes/10", false),
            get("/bytes/70000", false),
            get("/hello", false),
            get("/bytes/3", true),
        ];
        c.write_all(reqs.concat().as_bytes()).unwrap();
        let mut r = BufReader::new(c);
        for want in [10, 70_000] {
            let (status, body) = read_response(&mut r);
            assert_eq!((status, body.len()), (200, want), "{t:?}");
        }
        let (status, body) = read_response(&mut r);
        assert_eq!(status, 200);
        assert!(body.starts_with(b"hello "), "{t:?}");
        let (status, body) = read_response(&mut r);
        assert_eq!((status, body), (200, b"xxx".to_vec()));
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "bytes after the last response: {rest:?}");
    }
}

/// A client that sends its requests and shuts its write side at once (a half-close, as
/// `nc -N` does) still gets every response, then the server's close (without half-close,
/// hyper took the early EOF for a cut connection and answered nothing).
#[test]
fn a_client_that_half_closes_after_its_requests_gets_every_response() {
    for t in [Transport::Unix, Transport::Tcp] {
        let dir = TempDir::new();
        let (e, ep) = server(t, &dir, 1, HttpServer::new());
        for _ in 0..20 {
            let mut c = connect(&ep);
            let reqs = [get("/bytes/70000", false), get("/bytes/5", false)];
            c.write_all(reqs.concat().as_bytes()).unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut r = BufReader::new(c);
            for want in [70_000, 5] {
                let (status, body) = read_response(&mut r);
                assert_eq!((status, body.len()), (200, want), "{t:?}");
                assert!(body.iter().all(|&b| b == b'x'), "{t:?}");
            }
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert!(
                rest.is_empty(),
                "{t:?}: bytes after the last response: {rest:?}"
            );
        }
        assert_eq!(e.stats().handler_panics, 0);
    }
}

#[test]
fn a_thousand_keep_alive_connections() {
    util::raise_nofile(4096);
    let dir = TempDir::new();
    let (_e, ep) = server(Transport::Unix, &dir, 2, HttpServer::new());
    let mut conns: Vec<BufReader<Stream>> =
        (0..1000).map(|_| BufReader::new(connect(&ep))).collect();
    for round in 0..2 {
        for (i, c) in conns.iter_mut().enumerate() {
            c.get_mut()
                .write_all(get(&format!("/bytes/{}", i + round), false).as_bytes())
                .unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            let (status, body) = read_response(c);
            assert_eq!(
                (status, body.len()),
                (200, i + round),
                "connection {i}, round {round}"
            );
        }
    }
}

#[test]
fn a_slow_client_neither_stalls_others_nor_outlives_the_header_timeout() {
    let dir = TempDir::new();
    let http = HttpServer::new().header_timeout(Some(Duration::from_secs(1)));
    let (_e, ep) = server(Transport::Unix, &dir, 1, http);
    let slow = connect(&ep);
    let cut = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut r = slow.try_clone().unwrap();
        let cut = Arc::clone(&cut);
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let res = r.read_to_end(&mut sink);
            cut.store(true, Ordering::Release);
            res.map(|_| sink)
        })
    };
    let writer = {
        let mut w = slow.try_clone().unwrap();
        let cut = Arc::clone(&cut);
        std::thread::spawn(move || {
            let mut sent = 0;
            let head = b"GET /hello HTTP/1.1\r\nhost: x\r\nx-pad: ";
            // One byte per 100 ms, a head that never ends, until the server cuts it.
            let start = std::time::Instant::now();
            while !cut.load(Ordering::Acquire) && start.elapsed() < WATCHDOG {
                let b = head.get(sent).copied().unwrap_or(b'a');
                if w.write_all(&[b]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            sent
        })
    };
    // Meanwhile its worker (the only one) serves others.
    for _ in 0..20 {
        let mut c = BufReader::new(connect(&ep));
        c.get_mut()
            .write_all(get("/bytes/1000", true).as_bytes())
            .unwrap();
        let (status, body) = read_response(&mut c);
        assert_eq!((status, body.len()), (200, 1000));
    }
    let got = reader.join().unwrap();
    let sent = writer.join().unwrap();
    let got = got.expect("the slow connection ends (EOF or a 408), not the watchdog");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "answer to the slow client: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        cut.load(Ordering::Acquire),
        "the server must cut the slow client (sent {sent} bytes)"
    );
}

#[test]
fn a_malformed_request_gets_400_and_the_server_goes_on() {
    let dir = TempDir::new();
    let (_e, ep) = server(Transport::Tcp, &dir, 1, HttpServer::new());
    let mut bad = connect(&ep);
    bad.write_all(b"GARBAGE \x01\x02 nonsense\r\n\r\n").unwrap();
    let mut r = BufReader::new(bad);
    let (status, _) = read_response(&mut r);
    assert_eq!(status, 400);
    let mut c = BufReader::new(connect(&ep));
    c.get_mut()
        .write_all(get("/bytes/5", true).as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut c), (200, b"xxxxx".to_vec()));
    // Too large a body is refused with a message, not served.
    let mut c = BufReader::new(connect(&ep));
    c.get_mut()
        .write_all(get("/bytes/999999999999", true).as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut c).0, 400);
}

#[test]
#[ignore = "needs vsock: run with tools/vm-test"]
fn our_client_over_vsock() {
    util::require_vm();
    let dir = TempDir::new();
    let (_e, ep) = server(Transport::Vsock, &dir, 2, HttpServer::new());
    let mut c = BufReader::new(connect(&ep));
    for n in [0usize, 1, 65_536, 1_000_000] {
        c.get_mut()
            .write_all(get(&format!("/bytes/{n}"), false).as_bytes())
            .unwrap();
        let (status, body) = read_response(&mut c);
        assert_eq!((status, body.len()), (200, n));
        assert!(body.iter().all(|&b| b == b'x'));
    }
}
