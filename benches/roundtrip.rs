//! One 64-byte round trip per path over unix: the blocking and epoll paths (each with a
//! blocking echo thread on the other end, so only the client side differs). vsock is never
//! used here: the host may have no loopback transport.

use std::io::{ErrorKind, Read, Write};
use std::thread;

use criterion::{criterion_group, criterion_main, Criterion};
use uring_vsock::blocking::{Listener, Stream};
use uring_vsock::Endpoint;

/// An echo server for one connection; returns where it listens.
fn echo_server(name: &str) -> Endpoint {
    let ep: Endpoint = format!("unix:@bench-vsock-criterion-{}-{name}", std::process::id())
        .parse()
        .unwrap();
    let listener = Listener::bind(&ep).unwrap();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        while conn.read_exact(&mut buf).is_ok() {
            if conn.write_all(&buf).is_err() {
                break;
            }
        }
    });
    ep
}

fn blocking(c: &mut Criterion) {
    let ep = echo_server("blocking");
    let mut s = Stream::connect(&ep).unwrap();
    let (msg, mut back) = ([7u8; 64], [0u8; 64]);
    c.bench_function("round trip 64 B blocking unix", |b| {
        b.iter(|| {
            s.write_all(&msg).unwrap();
            s.read_exact(&mut back).unwrap();
        })
    });
}

fn epoll(c: &mut Criterion) {
    let ep = echo_server("epoll");
    let mut s = uring_vsock::epoll::Stream::connect(&ep).unwrap();
    let mut poll = mio::Poll::new().unwrap();
    let mut events = mio::Events::with_capacity(4);
    poll.registry()
        .register(
            &mut s,
            mio::Token(0),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )
        .unwrap();
    let (msg, mut back) = ([7u8; 64], [0u8; 64]);
    c.bench_function("round trip 64 B epoll unix", |b| {
        b.iter(|| {
            let mut sent = 0;
            while sent < msg.len() {
                match s.write(&msg[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        poll.poll(&mut events, None).unwrap()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            let mut got = 0;
            while got < back.len() {
                match s.read(&mut back[got..]) {
                    Ok(0) => panic!("echo closed"),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        poll.poll(&mut events, None).unwrap()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
    });
}

criterion_group!(benches, blocking, epoll);
criterion_main!(benches);
