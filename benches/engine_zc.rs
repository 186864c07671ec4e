//! Where zero-copy sends start to pay: an engine client streams 64 MiB over tcp loopback from
//! registered pool buffers of a given size to a blocking reader, with zero-copy forced on
//! (threshold 0) or off (threshold usize::MAX).
//!
//! Results are recorded on `DEFAULT_ZERO_COPY_THRESHOLD` (src/uring/builder.rs).

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use uring_vsock::blocking::Listener;
use uring_vsock::uring::{CloseReason, Conn, Engine, Handler, RecvBuf, SendBuf};

const TOTAL: u64 = 64 << 20;

struct Pump {
    left: u64,
    done: mpsc::Sender<()>,
}

impl Pump {
    fn pump(&mut self, conn: &mut Conn<'_>) {
        while self.left > 0 && conn.can_send() {
            let Some(mut buf) = conn.send_buf() else {
                return;
            };
            let n = (buf.capacity() as u64).min(self.left) as usize;
            // Pool buffers are zeroed memory: "fill" them without touching the bytes.
            buf.extend_from_slice(&ZEROS[..n]);
            self.left -= n as u64;
            let _ = conn.send(buf);
        }
        if self.left == 0 && conn.sends_queued() == 0 {
            conn.close();
        }
    }
}

static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];

impl Handler for Pump {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.pump(conn);
    }
    fn on_recv(&mut self, _conn: &mut Conn<'_>, _buf: RecvBuf) {}
    fn on_sent(&mut self, conn: &mut Conn<'_>, _buf: SendBuf, _res: std::io::Result<usize>) {
        self.pump(conn);
    }
    fn on_close(&mut self, _conn: &mut Conn<'_>, _reason: &CloseReason) {
        let _ = self.done.send(());
    }
}

fn stream_once(e: &Engine, l: &Listener) {
    let ep = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    e.connect(&ep, Some(Duration::from_secs(5)), move || Pump {
        left: TOTAL,
        done: tx,
    })
    .unwrap();
    let (mut s, _) = l.accept().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < TOTAL {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "early EOF");
        got += n as u64;
    }
    rx.recv().unwrap();
}

fn zero_copy_threshold(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_64MiB_tcp");
    g.throughput(Throughput::Bytes(TOTAL)).sample_size(10);
    let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
    for size in [4 << 10, 16 << 10, 64 << 10, 256 << 10] {
        for (mode, threshold) in [("copy", usize::MAX), ("zerocopy", 0)] {
            let e = Engine::builder()
                .workers(1)
                .send_buffers(16, size)
                .zero_copy_threshold(threshold)
                .sends_per_connection(16)
                .build()
                .unwrap();
            g.bench_with_input(BenchmarkId::new(mode, size), &size, |b, _| {
                b.iter(|| stream_once(&e, &l))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, zero_copy_threshold);
criterion_main!(benches);
