//! The load generator: hyper's client connections (`hyper::client::conn::http1` and
//! `http2`, prior knowledge) over [`ConnIo`] on an engine of its own, with [`LocalExec`] and
//! [`WorkerTimer`], so no request waits on a thread hop and the generator is not the
//! bottleneck (its CPU is measured and reported beside the server's).
//!
//! Each connection runs one request at a time. Closed loop: the next request goes as soon
//! as the last response is verified. Open loop (`rate`): request `k` of connection `i` is
//! due at `begin + (i + k·conns) / rate`; a late one goes at once, and its latency is
//! measured from when it was due (coordinated-omission corrected), so a server that falls
//! behind shows it. An overloaded server stretches an open-loop run: every request due
//! before the end is sent.
//!
//! Every connection is up before the clock starts; the warmup is the requests due before
//! the start, on the same connections, unmeasured (but verified). A connection ends with a
//! lingering close ([`Linger`]). A watchdog on the calling thread fails the run when
//! requests (or closes) are in flight and none has finished for [`IO_TIMEOUT`]: there is no
//! timer per request, so the workers' timers serve the open loop's pacing alone.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response, Uri};
use uring_vsock::uring::rt::{self, ConnIo, LocalExec, WorkerTimer};
use uring_vsock::uring::{AsyncConn, Engine};
use uring_vsock::Endpoint;

use super::kinds::Proto;
use super::linger::Linger;
use super::service;
use super::verify::{check_head, BodyCheck};
use crate::backend::{CONNECT_TIMEOUT, IO_TIMEOUT};
use crate::error::{Context, Error, Result};
use crate::latency::new_histogram;
use crate::rusage::{process_cpu, thread_cpu};
use crate::workload::Length;

/// How often a connection that is up looks whether the clock has started.
const START_POLL: Duration = Duration::from_micros(200);
/// How long the connections of a run may take to come up, all together.
const SETUP_LIMIT: Duration = Duration::from_secs(30);
/// How often the watchdog looks at the run's progress.
const WATCH: Duration = Duration::from_millis(10);

/// One run's load.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where the server listens.
    pub ep: Endpoint,
    /// The HTTP version.
    pub proto: Proto,
    /// The body each request asks for, bytes.
    pub body: usize,
    /// Keep-alive connections.
    pub conns: usize,
    /// Open loop: requests per second over all connections.
    pub rate: Option<u64>,
    /// How long it measures.
    pub length: Length,
    /// Unmeasured requests before the start, for this long.
    pub warmup: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub struct Measured {
    /// Latency from the intended send time, ns.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time, ns.
    pub uncorrected: Histogram<u64>,
    /// Requests answered and verified in the measured phase.
    pub requests: u64,
    /// Body bytes verified in the measured phase.
    pub bytes_verified: u64,
    /// The measured phase's length, s.
    pub seconds: f64,
    /// The load generator's threads' CPU time over the measured phase, s.
    pub client_cpu_s: f64,
    /// The whole process's CPU time over the measured phase, s.
    pub process_cpu_s: f64,
}

/// What every connection of a run shares, across the generator's workers.
#[derive(Default)]
struct Shared {
    /// Connections handshaken.
    ready: AtomicUsize,
    /// The measured phase's start, set once every connection is up.
    start: OnceLock<Instant>,
    /// Set at the first failure: every connection stops.
    stop: AtomicBool,
    /// The first failure.
    error: Mutex<Option<String>>,
    /// Requests sent and not answered yet, and connections closing: what the watchdog
    /// waits for.
    in_flight: AtomicUsize,
    /// Requests answered and closes finished (warmup included): the watchdog's progress.
    finished: AtomicU64,
}

/// Counts one request (or close) in flight until dropped.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> InFlight<'a> {
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    fn fail(&self, why: String) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        e.get_or_insert(why);
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn take_error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What the connections of one worker measured.
#[derive(Debug, Clone)]
struct Tally {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    requests: u64,
    bytes: u64,
    last: Option<Instant>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            requests: 0,
            bytes: 0,
            last: None,
        }
    }

    fn record(&mut self, corrected: Duration, uncorrected: Duration, bytes: u64, at: Instant) {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.corrected.saturating_record(ns(corrected));
        self.uncorrected.saturating_record(ns(uncorrected));
        self.requests += 1;
        self.bytes += bytes;
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }

    fn merge(&mut self, other: &Tally) {
        // Both histograms have the same bounds: adding cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.last = match (self.last, other.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The load generator: an engine of `workers` workers, kept across runs.
pub struct LoadGen {
    engine: Engine,
}

impl LoadGen {
    /// Starts the generator's engine.
    ///
    /// # Errors
    ///
    /// The engine could not start.
    pub fn new(workers: usize) -> Result<LoadGen> {
        let engine = Engine::builder()
            .workers(workers)
            .build()
            .context("starting the load generator's engine")?;
        Ok(LoadGen { engine })
    }

    /// The CPU time the generator's worker threads have used so far, each read on its
    /// worker.
    fn cpu(&self) -> Result<Duration> {
        let mut total = Duration::ZERO;
        for w in 0..self.engine.workers() {
            let h = self
                .engine
                .spawn_on(w, || async { thread_cpu() })
                .context("reading the load generator's CPU time")?;
            total += h
                .wait_timeout(IO_TIMEOUT)
                .context("reading the load generator's CPU time")?;
        }
        Ok(total)
    }

    /// Runs `job`.
    ///
    /// # Errors
    ///
    /// A connect, handshake or request failed or timed out, or a response did not verify:
    /// the first such error, with the connection it happened on.
    pub fn run(&self, job: &Job) -> Result<Measured> {
        let shared = Arc::new(Shared::default());
        let workers = self.engine.workers();
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (job, shared) = (job.clone(), Arc::clone(&shared));
            let h = self
                .engine
                .spawn_on(w, move || worker(w, workers, job, shared))
                .context("starting the load generator's connections")?;
            handles.push(h);
        }
        let setup = Instant::now() + SETUP_LIMIT;
        while shared.ready.load(Ordering::Relaxed) < job.conns && !shared.stopped() {
            if Instant::now() > setup {
                shared.fail(format!(
                    "only {} of {} connections were up after {SETUP_LIMIT:?}",
                    shared.ready.load(Ordering::Relaxed),
                    job.conns
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // A millisecond ahead, so every connection sees the start before its first
        // measured request is due.
        let start = Instant::now() + job.warmup + Duration::from_millis(1);
        let _ = shared.start.set(start);
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
        let (cpu0, client0) = (process_cpu(), self.cpu()?);
        watch(&shared, &handles)?;
        let mut tally = Tally::new();
        for h in handles {
            match h.wait_timeout(IO_TIMEOUT) {
                Ok(t) => tally.merge(&t),
                Err(e) => shared.fail(format!("a load generator worker: {e}")),
            }
        }
        let (cpu1, client1) = (process_cpu(), self.cpu()?);
        if let Some(e) = shared.take_error() {
            return Err(Error::new(e));
        }
        let ran = tally
            .last
            .map_or(0.0, |l| l.saturating_duration_since(start).as_secs_f64());
        let seconds = match (job.length, job.rate) {
            // Closed loop: requests sent before the end, over the planned length.
            (Length::Time(d), None) => d.as_secs_f64(),
            (Length::Time(d), Some(_)) => ran.max(d.as_secs_f64()),
            (Length::Count(_), _) => ran,
        };
        Ok(Measured {
            corrected: tally.corrected,
            uncorrected: tally.uncorrected,
            requests: tally.requests,
            bytes_verified: tally.bytes,
            seconds,
            client_cpu_s: client1.saturating_sub(client0).as_secs_f64(),
            process_cpu_s: cpu1.saturating_sub(cpu0).as_secs_f64(),
        })
    }
}

/// Waits until every worker is done.
///
/// # Errors
///
/// Requests or closes were in flight and none finished for [`IO_TIMEOUT`]: the run is
/// stuck (its tasks are left to the engine's shutdown).
fn watch(shared: &Shared, handles: &[rt::JoinHandle<Tally>]) -> Result<()> {
    let mut seen = (shared.finished.load(Ordering::Relaxed), Instant::now());
    while !handles.iter().all(rt::JoinHandle::is_finished) {
        std::thread::sleep(WATCH);
        let finished = shared.finished.load(Ordering::Relaxed);
        let in_flight = shared.in_flight.load(Ordering::Relaxed);
        if finished != seen.0 || in_flight == 0 {
            seen = (finished, Instant::now());
        } else if seen.1.elapsed() > IO_TIMEOUT {
            shared.fail(format!(
                "{in_flight} requests or closes in flight and none finished for {IO_TIMEOUT:?}"
            ));
            let why = shared.take_error().unwrap_or_default();
            return Err(Error::new(why));
        }
    }
    Ok(())
}

/// One worker's share of the connections (`w`, `w + workers`, ...), each a task on it.
async fn worker(w: usize, workers: usize, job: Job, shared: Arc<Shared>) -> Tally {
    let tally = Rc::new(RefCell::new(Tally::new()));
    let job = Rc::new(job);
    let mut tasks = Vec::new();
    for i in (w..job.conns).step_by(workers.max(1)) {
        let (job, shared2, tally) = (Rc::clone(&job), Arc::clone(&shared), Rc::clone(&tally));
        let task = rt::spawn(async move {
            if let Err(e) = connection(i, &job, &shared2, &tally).await {
                shared2.fail(format!("connection {i}: {e}"));
            }
        });
        match task {
            Ok(t) => tasks.push(t),
            Err(e) => shared.fail(format!("starting connection {i}: {e}")),
        }
    }
    for t in tasks {
        if let Err(e) = t.await {
            shared.fail(format!("a connection task: {e}"));
        }
    }
    let out = tally.borrow().clone();
    out
}

/// A connection's request sender, either version.
enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    async fn send(&mut self, req: Request<Empty<Bytes>>) -> hyper::Result<Response<Incoming>> {
        match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

fn hyper_err(what: &'static str) -> impl Fn(hyper::Error) -> Error {
    move |e| Error::new(format!("{what}: {e}"))
}

/// Connects, handshakes, waits for the start, runs the requests, then closes cleanly.
async fn connection(i: usize, job: &Job, shared: &Shared, tally: &RefCell<Tally>) -> Result<()> {
    let conn = AsyncConn::connect(&job.ep, Some(CONNECT_TIMEOUT)).await?;
    let io = Linger::new(ConnIo::new(conn));
    let (mut sender, driver) = match job.proto {
        Proto::H1 => {
            let (s, c) = http1::handshake(io)
                .await
                .map_err(hyper_err("HTTP/1.1 handshake"))?;
            (Sender::H1(s), rt::spawn(c)?)
        }
        Proto::H2 => {
            let (s, c) = http2::Builder::new(LocalExec)
                .timer(WorkerTimer)
                .handshake(io)
                .await
                .map_err(hyper_err("HTTP/2 handshake"))?;
            (Sender::H2(s), rt::spawn(c)?)
        }
    };
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let start = loop {
        if shared.stopped() {
            return Ok(());
        }
        if let Some(s) = shared.start.get() {
            break *s;
        }
        rt::sleep(START_POLL).await;
    };
    let result = requests(i, job, shared, tally, &mut sender, start).await;
    // Without its sender the connection ends cleanly: HTTP/1.1 closes, HTTP/2 says GOAWAY.
    drop(sender);
    let closing = InFlight::new(shared);
    let ended = driver.await;
    drop(closing);
    result?;
    match ended {
        Err(e) => Err(Error::new(format!("the connection's task: {e}"))),
        Ok(Err(e)) => Err(Error::new(format!("the connection ended with: {e}"))),
        Ok(Ok(())) => Ok(()),
    }
}

/// Connection `i`'s requests: unmeasured ones due before `start`, then measured ones until
/// the end (or its share of the count).
async fn requests(
    i: usize,
    job: &Job,
    shared: &Shared,
    tally: &RefCell<Tally>,
    sender: &mut Sender,
    start: Instant,
) -> Result<()> {
    let begin = start.checked_sub(job.warmup).unwrap_or(start);
    let conns = job.conns.max(1) as u64;
    let (end, quota) = match job.length {
        Length::Time(d) => (Some(start + d), u64::MAX),
        Length::Count(n) => (None, n / conns + u64::from((i as u64) < n % conns)),
    };
    let path = service::path(job.body);
    let uri: Uri = match job.proto {
        Proto::H1 => path.parse(),
        // HTTP/2 carries the scheme and authority as pseudo-headers.
        Proto::H2 => format!("http://bench{path}").parse(),
    }
    .map_err(|e| Error::new(format!("the request's URI: {e}")))?;
    let mut done = 0;
    for k in 0u64.. {
        if shared.stopped() {
            return Ok(());
        }
        let intended = match job.rate {
            Some(rate) => {
                begin + Duration::from_secs_f64((i as u64 + k * conns) as f64 / rate as f64)
            }
            None => Instant::now(),
        };
        if intended > Instant::now() {
            rt::sleep_until(intended).await;
        }
        let measured = intended >= start;
        if measured && (end.is_some_and(|e| intended >= e) || done >= quota) {
            return Ok(());
        }
        let mut req = Request::get(uri.clone());
        if job.proto == Proto::H1 {
            req = req.header(hyper::header::HOST, "bench");
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| Error::new(format!("building the request: {e}")))?;
        let sent = Instant::now();
        let in_flight = InFlight::new(shared);
        let bytes = get(sender, req, job.body).await?;
        drop(in_flight);
        if measured {
            let now = Instant::now();
            tally
                .borrow_mut()
                .record(now - intended, now - sent, bytes, now);
            done += 1;
        }
    }
    Ok(())
}

/// Sends `req` and checks the response: status, length and every body byte.
async fn get(sender: &mut Sender, req: Request<Empty<Bytes>>, want: usize) -> Result<u64> {
    let resp = sender.send(req).await.map_err(hyper_err("request"))?;
    let (head, mut body) = resp.into_parts();
    check_head(&head, want)?;
    let mut check = BodyCheck::new(want);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(hyper_err("reading the body"))?;
        if let Ok(data) = frame.into_data() {
            check.feed(&data)?;
        }
    }
    check.finish()
}
