//! The engine's seqpacket server (`Engine::listen_seqpacket`) and client
//! (`Engine::connect_seqpacket`), each on an engine of its own so its receive buffers can be
//! sized per test.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use uring_vsock::uring::{CloseReason, Conn, ConnHandle, Engine, Handler, RecvBuf};
use uring_vsock::Endpoint;

use super::{respond, Client, Event, SeqpacketPath, Server, Summary};
use crate::util::{self, TempDir, Transport};

pub struct EnginePath;

/// An engine of one worker whose receive buffers are `size` bytes.
fn engine(size: usize) -> Engine {
    Engine::builder()
        .workers(1)
        .recv_buffers(16, size)
        .build()
        .expect("engine")
}

struct ServerConn {
    tally: Summary,
    done: Option<Sender<Summary>>,
}

impl ServerConn {
    fn finish(&mut self) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(self.tally);
        }
    }
}

impl Handler for ServerConn {
    fn on_recv(&mut self, conn: &mut Conn<'_>, buf: RecvBuf) {
        let step = respond(&mut self.tally, &buf, buf.message_len(), buf.truncated());
        if let Some(r) = step.reply {
            // The client keeps a few messages in flight: a full queue is a failure here.
            assert!(conn.send(r).is_ok(), "server: send queue full");
        }
        if step.close {
            conn.close();
            self.finish();
        }
    }

    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        self.tally.eof = true;
        self.finish();
        conn.shutdown_write();
    }

    fn on_close(&mut self, _conn: &mut Conn<'_>, _reason: &CloseReason) {
        self.finish();
    }
}

enum ClientEvent {
    Event(Event),
    Closed(CloseReason),
}

struct ClientConn(Sender<ClientEvent>);

impl Handler for ClientConn {
    fn on_recv(&mut self, _conn: &mut Conn<'_>, buf: RecvBuf) {
        let _ = self.0.send(ClientEvent::Event(Event::Msg {
            data: buf.to_vec(),
            message_len: buf.message_len(),
            truncated: buf.truncated(),
        }));
    }

    fn on_peer_shutdown(&mut self, conn: &mut Conn<'_>) {
        let _ = self.0.send(ClientEvent::Event(Event::Eof));
        conn.shutdown_write();
    }

    fn on_close(&mut self, _conn: &mut Conn<'_>, reason: &CloseReason) {
        let _ = self.0.send(ClientEvent::Closed(reason.clone()));
    }
}

impl SeqpacketPath for EnginePath {
    /// The engine's buffers are at least one byte.
    const SMALLEST_RECV_BUF: usize = 1;

    fn serve(t: Transport, dir: &TempDir, recv_buf: usize) -> Server {
        let engine = engine(recv_buf);
        let (tx, summaries) = mpsc::channel();
        let bound = engine
            .listen_seqpacket(&util::bind_endpoint(t, dir), move |_peer| ServerConn {
                tally: Summary::default(),
                done: Some(tx.clone()),
            })
            .unwrap();
        Server {
            ep: super::client_endpoint(&bound),
            summaries,
            _keep: Some(Box::new(engine)),
        }
    }

    fn connect(ep: &Endpoint, recv_buf: usize) -> Box<dyn Client> {
        let engine = engine(recv_buf.max(1));
        let (tx, events) = mpsc::channel();
        let handle = engine
            .connect_seqpacket(ep, Some(util::WATCHDOG), move || ClientConn(tx))
            .unwrap();
        Box::new(EngineClient {
            handle,
            events,
            engine,
        })
    }

    fn unsupported(ep: &Endpoint) -> (uring_vsock::Error, uring_vsock::Error) {
        let engine = engine(1024);
        let listen = engine.listen_seqpacket(ep, |_| ClientConn(mpsc::channel().0));
        let connect =
            engine.connect_seqpacket(ep, Some(util::WATCHDOG), || ClientConn(mpsc::channel().0));
        (listen.unwrap_err(), connect.unwrap_err())
    }
}

struct EngineClient {
    handle: ConnHandle,
    events: Receiver<ClientEvent>,
    /// Dropped last: shutting it down closes the connection.
    engine: Engine,
}

impl Client for EngineClient {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.handle.send(msg.to_vec()).map_err(io::Error::other)
    }

    fn recv_within(&mut self, wait: Duration) -> io::Result<Event> {
        match self.events.recv_timeout(wait) {
            Ok(ClientEvent::Event(e)) => Ok(e),
            Ok(ClientEvent::Closed(reason)) => {
                Err(io::Error::other(format!("the connection closed: {reason}")))
            }
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    fn send_too_large(&mut self, msg: &[u8]) -> String {
        // The engine queues the send; the kernel's EMSGSIZE closes the connection, saying so.
        self.handle.send(msg.to_vec()).expect("queued");
        match self.events.recv_timeout(util::WATCHDOG) {
            Ok(ClientEvent::Closed(reason)) => {
                assert!(
                    matches!(reason, CloseReason::Error(_)),
                    "an over-size message closes with an error: {reason:?}"
                );
                reason.to_string()
            }
            Ok(ClientEvent::Event(e)) => panic!("over-size send: unexpected {e:?}"),
            Err(_) => panic!("over-size send: the connection did not close within the watchdog"),
        }
    }

    fn close(self: Box<Self>) {
        self.handle.close();
        // Graceful: the engine must not shut down (which resets) before the sends are out.
        let start = Instant::now();
        while self.handle.closed().is_none() {
            assert!(
                start.elapsed() < util::WATCHDOG,
                "close: not closed within the watchdog"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(self.engine);
    }
}
