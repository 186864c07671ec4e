//! The guest agent of the virtio testbed: reads commands from the control serial port and
//! runs the guest's side of each host test, replying on the same port.
//!
//! Lines: `<id> <COMMAND> <args...>` in, `<id> OK k=v...` or `<id> ERR k=v... msg=...` out.
//! - `PING` → `OK pong`
//! - `SERVE <path> <port> [<abort_after>]` → an echo server on `vsock:any:<port>` (see
//!   [`servers`]), `OK` once it listens; with `abort_after`, each connection is aborted once
//!   that many bytes have arrived
//! - `STATS <port>` → that server's counts ([`servers::ServerStats::line`])
//! - `ECHO <path> <port> <bytes> <seed> <connect_ms> <io_ms>` → connect to CID 2 `<port>` on
//!   `<path>` within `connect_ms`, echo `<bytes>` checked (`io_ms` > 0: a read and write
//!   timeout, blocking path only), reply with the counts and checksums or the error's kind
//!   and how long it took
//! - `QUIT` → `OK failures=<n>`, and the agent returns `n` (panics, server failures)

pub mod servers;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use uring_vsock::{Endpoint, VsockAddr};

use crate::util::engine_path::EnginePath;
use crate::util::path::{Blocking, Epoll, PathUnderTest};
use crate::util::virtio::{echo_through, CONTROL_TTY};
use servers::{Mode, ServerStats};

#[derive(Default)]
struct Agent {
    servers: Mutex<HashMap<u32, Arc<ServerStats>>>,
    panics: AtomicU64,
}

/// Runs until `QUIT`; returns the failures seen (handler panics, server failures).
pub fn run() -> u64 {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open(CONTROL_TTY)
        .unwrap_or_else(|e| panic!("open {CONTROL_TTY}: {e}"));
    make_raw(&tty);
    let out = Arc::new(Mutex::new(tty.try_clone().expect("clone the tty")));
    let agent = Arc::new(Agent::default());
    eprintln!("virtio agent: listening for commands on {CONTROL_TTY}");
    let mut lines = BufReader::new(tty);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) => panic!("{CONTROL_TTY} closed"),
            Ok(_) => {}
            Err(e) => panic!("read {CONTROL_TTY}: {e}"),
        }
        let text = String::from_utf8_lossy(&line).trim().to_string();
        let mut words = text.split_whitespace().map(str::to_string);
        let (Some(id), Some(cmd)) = (words.next(), words.next()) else {
            continue;
        };
        let args: Vec<String> = words.collect();
        eprintln!("virtio agent: {text}");
        if cmd == "QUIT" {
            let failures = agent.panics.load(Ordering::SeqCst)
                + agent
                    .servers
                    .lock()
                    .unwrap()
                    .values()
                    .map(|s| s.failures.load(Ordering::SeqCst))
                    .sum::<u64>();
            reply(&out, &id, &format!("OK failures={failures}"));
            return failures;
        }
        let (agent, out) = (Arc::clone(&agent), Arc::clone(&out));
        thread::spawn(move || {
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                agent.handle(&cmd, &args)
            }));
            let text = res.unwrap_or_else(|_| {
                agent.panics.fetch_add(1, Ordering::SeqCst);
                "ERR kind=Panic msg=the command panicked (see the console)".to_string()
            });
            reply(&out, &id, &text);
        });
    }
}

/// Raw mode on the open port (no echo, no line editing, no CR/LF mapping): the tty's
/// settings may be reset when it is opened, so they are set on the fd that stays open.
fn make_raw(tty: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a termios to write to / read from.
    let ok = unsafe {
        libc::tcgetattr(tty.as_raw_fd(), &mut t) == 0 && {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(tty.as_raw_fd(), libc::TCSANOW, &t) == 0
        }
    };
    assert!(
        ok,
        "raw mode on {CONTROL_TTY}: {}",
        std::io::Error::last_os_error()
    );
}

fn reply(out: &Mutex<File>, id: &str, text: &str) {
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = out.write_all(format!("{id} {text}\n").as_bytes());
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i)
        .ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what} {:?}", args[i]))
}

impl Agent {
    fn handle(&self, cmd: &str, args: &[String]) -> String {
        let res = match cmd {
            "PING" => Ok("pong".to_string()),
            "SERVE" => self.serve(args),
            "STATS" => self.stats(args),
            "ECHO" => echo(args),
            other => Err(format!("unknown command {other}")),
        };
        res.map(|s| format!("OK {s}"))
            .unwrap_or_else(|e| format!("ERR kind=Command msg={e}"))
    }

    fn serve(&self, args: &[String]) -> Result<String, String> {
        let path: String = arg(args, 0, "path")?;
        let port: u32 = arg(args, 1, "port")?;
        let mode = match args.len() {
            2 => Mode::Echo,
            _ => Mode::AbortAfter(arg(args, 2, "abort_after")?),
        };
        let stats = Arc::new(ServerStats::default());
        let any = Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, port));
        servers::serve(&path, &any, mode, Arc::clone(&stats))?;
        self.servers.lock().unwrap().insert(port, stats);
        Ok(format!("listening={port}"))
    }

    fn stats(&self, args: &[String]) -> Result<String, String> {
        let port: u32 = arg(args, 0, "port")?;
        let servers = self.servers.lock().unwrap();
        let s = servers.get(&port).ok_or(format!("no server on {port}"))?;
        Ok(s.line())
    }
}

fn echo(args: &[String]) -> Result<String, String> {
    let path: String = arg(args, 0, "path")?;
    let port: u32 = arg(args, 1, "port")?;
    let bytes: u64 = arg(args, 2, "bytes")?;
    let seed: u64 = arg(args, 3, "seed")?;
    let connect = Duration::from_millis(arg(args, 4, "connect_ms")?);
    let io_ms: u64 = arg(args, 5, "io_ms")?;
    let ep = Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_HOST, port));
    match path.as_str() {
        "blocking" => echo_on::<Blocking>(&ep, bytes, seed, connect, |s| {
            if io_ms > 0 {
                let t = Some(Duration::from_millis(io_ms));
                s.set_read_timeout(t)
                    .and_then(|()| s.set_write_timeout(t))
                    .expect("timeouts");
            }
        }),
        "epoll" => echo_on::<Epoll>(&ep, bytes, seed, connect, |_| {}),
        "engine" => echo_on::<EnginePath>(&ep, bytes, seed, connect, |_| {}),
        other => Err(format!("unknown path {other}")),
    }
}

/// The guest client's side of `ECHO`: the reply line either way (a failed connect or
/// transfer is a result the host checks, not a command error).
fn echo_on<P: PathUnderTest>(
    ep: &Endpoint,
    bytes: u64,
    seed: u64,
    connect: Duration,
    setup: impl FnOnce(&P::Stream),
) -> Result<String, String> {
    let start = Instant::now();
    let mut s = match P::connect_timeout(ep, connect) {
        Ok(s) => s,
        Err(e) => {
            let ms = start.elapsed().as_millis();
            return Ok(format!(
                "result=connect_err kind={:?} after_ms={ms} msg={e}",
                e.kind()
            ));
        }
    };
    setup(&s);
    let connect_ms = start.elapsed().as_millis();
    let progress = AtomicU64::new(0);
    match echo_through(&mut s, seed, bytes, 64 * 1024, &progress) {
        Ok(e) => Ok(format!(
            "result=echoed connect_ms={connect_ms} sent={} sent_sum={} received={} received_sum={}",
            e.sent, e.sent_sum, e.received, e.received_sum
        )),
        Err(e) => Ok(format!(
            "result=io_err kind={:?} received={} msg={e}",
            e.kind(),
            progress.load(Ordering::Relaxed)
        )),
    }
}
