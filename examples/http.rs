//! HTTP/1.1 served by the io_uring engine, with keep-alive (`httparse` parses requests).
//!
//! ```text
//! cargo run --example http -- serve unix:/tmp/http.sock   # curl --unix-socket /tmp/http.sock http://x/
//! cargo run --example http -- serve tcp:127.0.0.1:8080
//! cargo run --example http -- get ENDPOINT /path          # our client
//! cargo run --example http                                # serve + get in-process
//! ```
//!
//! Routes: `/` says hello; `/bytes/N` returns N bytes (`0123456789` repeated, N at most
//! 64 MiB). `HEAD` gets the same headers and no body.
//!
//! Memory per connection is bounded whatever the client does: one request is answered at a
//! time (pipelined ones wait, unread, in the kernel: receiving pauses while a response is
//! going out), and a large body is made in 64 KiB pieces as the sends before it complete.
#![allow(dead_code)] // the tests include this file as a module and use parts of it

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};

use uring_vsock::uring::{Conn, Handler, RecvBuf, SendBuf};

/// Largest request head accepted; longer is a 431.
const MAX_HEAD: usize = 16 * 1024;
/// Largest `/bytes/N` body.
pub const MAX_BODY: usize = 64 << 20;
/// A streamed body is made in pieces of this size ...
const PIECE: usize = 64 * 1024;
/// ... with at most this many of them queued at once.
const PIECES_QUEUED: usize = 4;

/// One HTTP/1.1 connection: answers pipelined requests one at a time, in order.
#[derive(Default)]
pub struct Http {
    /// Received bytes not parsed yet (at most one request head beyond `MAX_HEAD`: receiving
    /// pauses while a response is going out or the head is incomplete and too long).
    pending: Vec<u8>,
    out: VecDeque<SendBuf>,
    /// The `/bytes/N` body still to make: (bytes left, offset in the digit pattern).
    body: Option<(usize, usize)>,
    /// No more requests: the last response said `Connection: close`, or was an error.
    close_after: bool,
    /// The peer shut its side: answer what is pending, then close.
    peer_done: bool,
    paused: bool,
    shut: bool,
}

impl Http {
    fn respond(&mut self, status: &str, body: &[u8], keep_alive: bool, head: bool) {
        self.head(status, body.len(), keep_alive);
        if !head && !body.is_empty() {
            self.out.push_back(SendBuf::from(body.to_vec()));
        }
    }

    /// Queues the status line and headers of a response with a `len`-byte body.
    fn head(&mut self, status: &str, len: usize, keep_alive: bool) {
        let r = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nContent-Type: text/plain\r\n{}\r\n",
            if keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            }
        );
        self.out.push_back(SendBuf::from(r.into_bytes()));
        if !keep_alive {
            self.close_after = true;
        }
    }

    fn route(&mut self, path: &str, keep_alive: bool, head: bool) {
        if path == "/" {
            self.respond("200 OK", b"hello from uring-vsock\n", keep_alive, head);
        } else if let Some(n) = path
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let n = n.min(MAX_BODY);
            self.head("200 OK", n, keep_alive);
            if !head && n > 0 {
                self.body = Some((n, 0));
            }
        } else {
            self.respond("404 Not Found", b"not found\n", keep_alive, head);
        }
    }

    /// Parses one complete request from `pending` and queues its response; `false` when
    /// there is none (yet).
    fn parse_one(&mut self) -> bool {
        if self.close_after || self.pending.is_empty() {
            return false;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&self.pending) {
            Ok(httparse::Status::Complete(len)) => {
                let path = req.path.unwrap_or("/").to_owned();
                let http10 = req.version == Some(0);
                let conn_hdr = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("connection"))
                    .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase());
                let keep_alive = match conn_hdr.as_deref() {
                    Some("close") => false,
                    Some("keep-alive") => true,
                    _ => !http10,
                };
                // Request bodies are not supported by these routes: GET/HEAD only.
                let method = req.method.map(str::to_owned);
                self.pending.drain(..len);
                match method.as_deref() {
                    Some("GET") => self.route(&path, keep_alive, false),
                    Some("HEAD") => self.route(&path, keep_alive, true),
                    _ => self.respond("405 Method Not Allowed", b"GET only\n", false, false),
                }
                true
            }
            Ok(httparse::Status::Partial) if self.pending.len() > MAX_HEAD => {
                self.respond("431 Request Header Fields Too Large", b"", false, false);
                true
            }
            Ok(httparse::Status::Partial) => false,
            Err(_) => {
                self.respond("400 Bad Request", b"bad request\n", false, false);
                true
            }
        }
    }

    /// Sends what is queued, makes the body's next pieces as room frees up, then takes the
    /// next request; pauses receiving while busy.
    fn flush(&mut self, conn: &mut Conn<'_>) {
        loop {
            while let Some(buf) = self.out.pop_front() {
                if let Err(buf) = conn.send(buf) {
                    self.out.push_front(buf);
                    return self.pace(conn);
                }
            }
            if let Some((left, pos)) = self.body {
                if conn.sends_queued() >= PIECES_QUEUED {
                    return self.pace(conn);
                }
                let n = left.min(PIECE);
                let piece: Vec<u8> = (pos..pos + n).map(|i| b'0' + (i % 10) as u8).collect();
                self.out.push_back(SendBuf::from(piece));
                self.body = (left > n).then_some((left - n, pos + n));
                continue;
            }
            if !self.parse_one() {
                break;
            }
        }
        let idle = self.out.is_empty() && self.body.is_none();
        // With the peer done, every complete request has been answered by now: what is left
        // in `pending` can never complete.
        if idle && !self.shut && (self.close_after || self.peer_done) {
            self.shut = true;
            conn.shutdown_write();
        }
        self.pace(conn);
    }

    /// Receives only while idle with room for a request head.
    fn pace(&mut self, conn: &mut Conn<'_>) {
        let busy = !self.out.is_empty() || self.body.is_some() || self.pending.len() > MAX_HEAD;
        if busy && !self.paused {
            self.paused = true;
            conn.pause_recv();
        } else if !busy && self.paused {
            self.paused = false;
            conn.resume_recv();
        }
    }
}

impl Handler for Http {
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        if !self.close_after {
            self.pending.extend_from_slice(&buf);
        }
        self.flush(conn);
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, _res: io::Result<usize>) {
        self.flush(conn);
    }
    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        self.peer_done = true;
        self.flush(conn);
    }
}

/// A minimal HTTP/1.1 client over any stream: sends GET `path` (keep-alive) and reads one
/// response with a Content-Length body. Returns (status code, body).
pub fn get<S: Read + Write>(stream: &mut BufReader<S>, path: &str) -> io::Result<(u16, Vec<u8>)> {
    write!(
        stream.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: uring-vsock\r\n\r\n"
    )?;
    let mut status_line = String::new();
    stream.read_line(&mut status_line)?;
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad length"))?;
            }
        }
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body)?;
    Ok((code, body))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use uring_vsock::uring::Engine;
    use uring_vsock::Endpoint;

    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let engine = Engine::new()?;
            let ep: Endpoint = args.get(1).ok_or("serve ENDPOINT")?.parse()?;
            let local = engine.listen(&ep, |_| Http::default())?;
            println!("http serving on {local}");
            loop {
                std::thread::park();
            }
        }
        Some("get") => {
            let ep: Endpoint = args.get(1).ok_or("get ENDPOINT PATH")?.parse()?;
            let path = args.get(2).map_or("/", String::as_str);
            let mut s = BufReader::new(uring_vsock::blocking::Stream::connect(&ep)?);
            let (code, body) = get(&mut s, path)?;
            println!("{code}\n{}", String::from_utf8_lossy(&body));
            Ok(())
        }
        Some(other) => {
            Err(format!("unknown command {other}: serve ENDPOINT | get ENDPOINT PATH").into())
        }
        None => {
            let engine = Engine::builder().workers(1).build()?;
            let dir = std::env::temp_dir().join(format!("uring-vsock-http-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let ep = engine.listen(&Endpoint::Unix(dir.join("http.sock")), |_| Http::default())?;
            let mut s = BufReader::new(uring_vsock::blocking::Stream::connect(&ep)?);
            for path in ["/", "/bytes/20", "/nope"] {
                let (code, body) = get(&mut s, path)?;
                println!("GET {path} -> {code} {:?}", String::from_utf8_lossy(&body));
            }
            drop(s);
            engine.shutdown();
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
    }
}
