//! Engine micro-benchmarks: buffer pool get/put, and one echo round trip through the engine
//! (unix socket, 64-byte message), with and without the adaptive spin, and with each
//! task-run mode the kernel offers (to pick the default by measurement).

use std::io::{Read, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use uring_vsock::blocking::Stream;
use uring_vsock::uring::{BufferPool, Conn, Engine, Handler, RecvBuf, TaskRunMode};
use uring_vsock::Endpoint;

fn pool_get_put(c: &mut Criterion) {
    let pool = BufferPool::new(64, 16 * 1024).unwrap();
    c.bench_function("buffer_pool_get_put", |b| {
        b.iter(|| {
            let buf = pool.get().expect("free buffer");
            std::hint::black_box(&buf);
            drop(buf);
        })
    });
}

struct Echo;

impl Handler for Echo {
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        // One message in flight at a time: the queue never fills.
        let _ = conn.send(buf);
    }
}

fn round_trip(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("uring-vsock-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // left by a killed run with this pid
    std::fs::create_dir_all(&dir).unwrap();
    for (name, spin, mode) in [
        ("engine_echo_round_trip_unix", None, None),
        (
            "engine_echo_round_trip_unix_coop_taskrun",
            None,
            Some(TaskRunMode::CoopTaskrun),
        ),
        (
            "engine_echo_round_trip_unix_spin",
            Some(Duration::from_micros(200)),
            None,
        ),
    ] {
        let mut b = Engine::builder().workers(1);
        if let Some(s) = spin {
            b = b.spin(s);
        }
        if let Some(m) = mode {
            b = b.task_run(m);
        }
        let e = b.build().unwrap();
        let ep = e
            .listen(&Endpoint::Unix(dir.join(format!("{name}.sock"))), |_| Echo)
            .unwrap();
        let mut s = Stream::connect(&ep).unwrap();
        let msg = [7u8; 64];
        let mut back = [0u8; 64];
        c.bench_function(name, |b| {
            b.iter(|| {
                s.write_all(&msg).unwrap();
                s.read_exact(&mut back).unwrap();
            })
        });
        let st = e.stats();
        eprintln!(
            "{name}: spins {} ({} ms spinning), sleeps {}",
            st.spins,
            st.spin_time_ns / 1_000_000,
            st.sleeps
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, pool_get_put, round_trip);
criterion_main!(benches);
