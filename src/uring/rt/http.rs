//! hyper on the engine (feature `hyper`): the worker as hyper's executor ([`LocalExec`]) and
//! timer ([`WorkerTimer`]), and [`HttpServer`], which serves an [`AsyncConn`] with hyper's
//! HTTP/1.1 (keep-alive) or HTTP/2 (prior knowledge) server connection on its worker.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::service::HttpService;

use super::conn_io::ConnIo;
use super::executor::spawn_local;
use super::timer::{sleep, sleep_until, Sleep};
use super::AsyncConn;

/// hyper's executor on an engine worker: each future hyper spawns (an HTTP/2 stream) becomes
/// a task on the calling worker, so it need not be `Send`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        if let Err(e) = spawn_local(fut) {
            log::warn!("uring-vsock: hyper spawned a task off the engine's workers: {e}");
        }
    }
}

/// hyper's timer on an engine worker: [`rt::sleep`](super::sleep).
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerTimer;

impl hyper::rt::Timer for WorkerTimer {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep(d))
    }

    fn sleep_until(&self, at: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(at))
    }
}

impl hyper::rt::Sleep for Sleep {}

/// The HTTP/2 connection preface a client with prior knowledge starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves HTTP on an [`AsyncConn`] with hyper, on the connection's worker: HTTP/1.1 with
/// keep-alive, or HTTP/2 when the client starts with the HTTP/2 preface (prior knowledge,
/// as `curl --http2-prior-knowledge`). A client that does not send a complete request head
/// within the header timeout is cut off (slow clients cannot hold a connection forever).
///
/// # Examples
///
/// A hyper service on the engine, asked by a blocking client:
///
/// ```
/// use std::convert::Infallible;
/// use std::io::{Read, Write};
/// use uring_vsock::uring::{rt::HttpServer, AsyncConn, Engine};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::builder().workers(1).build()?;
/// let ep: uring_vsock::Endpoint = "tcp:127.0.0.1:0".parse()?;
/// let local = engine.listen_async(&ep, |conn: AsyncConn| async move {
///     let hello = hyper::service::service_fn(|_req| async {
///         Ok::<_, Infallible>(hyper::Response::new("hello".to_string()))
///     });
///     let _ = HttpServer::new().serve(conn, hello).await;
/// })?;
///
/// let mut c = uring_vsock::blocking::Stream::connect(&local)?;
/// c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")?;
/// let mut reply = String::new();
/// c.read_to_string(&mut reply)?;
/// assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
/// assert!(reply.ends_with("hello"), "{reply}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HttpServer {
    header_timeout: Option<Duration>,
}

impl Default for HttpServer {
    fn default() -> HttpServer {
        HttpServer::new()
    }
}

impl HttpServer {
    /// HTTP/1.1 and HTTP/2, with a header timeout of 30 s.
    pub fn new() -> HttpServer {
        HttpServer {
            header_timeout: Some(Duration::from_secs(30)),
        }
    }

    /// How long a client has to send a request head, from the connection's start or, with
    /// keep-alive, from the previous response (`None`: forever).
    pub fn header_timeout(mut self, d: Option<Duration>) -> HttpServer {
        self.header_timeout = d;
        self
    }

    /// Serves `conn` with `service` until the client closes (or the connection fails).
    ///
    /// # Errors
    ///
    /// hyper's error for the connection (a malformed request is answered with 400 first,
    /// then ends it); a receive error (`TimedOut` past the header timeout) before the first
    /// request.
    pub async fn serve<S, B>(
        &self,
        conn: AsyncConn,
        service: S,
    ) -> Result<(), Box<dyn StdError + Send + Sync>>
    where
        S: HttpService<Incoming, ResBody = B> + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        S::Future: 'static,
        B: Body + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        // The first bytes say which protocol; they stay in the stream.
        conn.set_read_deadline(
            self.header_timeout
                .and_then(|d| Instant::now().checked_add(d)),
        );
        let first = conn.recv().await?;
        conn.set_read_deadline(None);
        let Some(first) = first else {
            return Ok(()); // closed before a request
        };
        let h2 =
            first.len() >= 3 && H2_PREFACE.starts_with(&first[..first.len().min(H2_PREFACE.len())]);
        let io = ConnIo::with_received(conn, first);
        if h2 {
            hyper::server::conn::http2::Builder::new(LocalExec)
                .timer(WorkerTimer)
                .serve_connection(io, service)
                .await?;
        } else {
            // Half-close allowed: a client's EOF while hyper still waits for a response's
            // flush (our sends complete a turn after the client may have read them) must not
            // end the connection with "connection closed before message completed"; it
            // also serves clients that shut their write side after their requests.
            hyper::server::conn::http1::Builder::new()
                .timer(WorkerTimer)
                .header_read_timeout(self.header_timeout)
                .keep_alive(true)
                .half_close(true)
                .serve_connection(io, service)
                .await?;
        }
        Ok(())
    }
}
