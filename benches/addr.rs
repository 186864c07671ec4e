//! Address parse and format: the cost of `Endpoint` and `VsockAddr` text round trips.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use uring_vsock::{Endpoint, VsockAddr};

fn parse_and_format(c: &mut Criterion) {
    for text in [
        "vsock:3:5000",
        "vsock:any:5000",
        "unix:/tmp/bench.sock",
        "unix:@bench",
        "tcp:127.0.0.1:8080",
    ] {
        c.bench_function(&format!("parse {text}"), |b| {
            b.iter(|| black_box(text).parse::<Endpoint>().unwrap())
        });
        let ep: Endpoint = text.parse().unwrap();
        c.bench_function(&format!("format {text}"), |b| {
            b.iter(|| black_box(&ep).to_string())
        });
    }
    c.bench_function("parse VsockAddr 3:1024", |b| {
        b.iter(|| black_box("3:1024").parse::<VsockAddr>().unwrap())
    });
}

criterion_group!(benches, parse_and_format);
criterion_main!(benches);
