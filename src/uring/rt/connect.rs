//! [`AsyncConn::connect`]: an outgoing connection made from a task, through its worker's
//! ring (the core's connect, with its linked timeout), served by the task that awaits it.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::super::core::Core;
use super::super::handle::ConnHandle;
use super::bridge::{Bridge, ConnShared};
use super::executor;
use super::AsyncConn;
use crate::{Endpoint, Error, Result};

/// A connect a task asked for, for the worker's core to start.
pub(crate) struct PendingConnect {
    ep: Endpoint,
    timeout: Option<Duration>,
    shared: Rc<ConnShared>,
    reply: Sender<Result<ConnHandle>>,
}

/// Connects waiting for the core (started at the executor's next flush).
#[derive(Default)]
pub(crate) struct Connects(RefCell<Vec<PendingConnect>>);

impl Connects {
    /// Starts every pending connect; whether there were any.
    pub(crate) fn start(&self, core: &mut Core) -> bool {
        // In the order asked for; starting one runs no user code, so none is added meanwhile.
        let pending = std::mem::take(&mut *self.0.borrow_mut());
        let any = !pending.is_empty();
        for pc in pending {
            if pc.shared.st.borrow().want.abort {
                continue; // its task gave up before the connect started: never dialed
            }
            let handler = Box::new(Bridge::client(Rc::clone(&pc.shared)));
            let started = core.connect(
                pc.ep,
                crate::socket::SocketKind::Stream,
                pc.timeout,
                handler,
                pc.reply,
            );
            // The connection's id from its start (it keeps it when it opens), so a task that
            // gives up can abort the dial through the executor's flush (see `Orphan`).
            if let Some(index) = started {
                pc.shared.id.set(Some(core.conn_id(index)));
            }
        }
        any
    }
}

impl AsyncConn {
    /// Connects to `ep` through this worker's ring, giving up after `timeout`; the
    /// connection lives on this worker, served by the calling task. Only from a task on an
    /// engine worker. Dropping the future gives up: a dial under way is cut (its socket
    /// closed), and a connection that opened meanwhile is reset.
    ///
    /// # Errors
    ///
    /// `connect ENDPOINT: …` with the kernel's error (`ConnectionRefused`, `ConnectionReset`
    /// for a vsock port with no listener), `TimedOut` after `timeout`, `InvalidInput` for a
    /// tcp host name (resolve it before: a lookup would block the worker), `Unsupported` off
    /// the engine's workers, `NotConnected` when the worker is shutting down.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use uring_vsock::uring::{AsyncConn, Engine};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let engine = Engine::builder().workers(1).build()?;
    /// let ep: uring_vsock::Endpoint = "tcp:127.0.0.1:0".parse()?;
    /// let server = engine.listen_async(&ep, |conn: AsyncConn| async move {
    ///     while let Ok(Some(buf)) = conn.recv().await {
    ///         let _ = conn.send(buf.into()).await;
    ///     }
    /// })?;
    /// let echoed = engine
    ///     .spawn_on(0, move || async move {
    ///         let conn = AsyncConn::connect(&server, Some(Duration::from_secs(5))).await?;
    ///         let (res, _) = conn.send(b"ping".to_vec().into()).await;
    ///         res?;
    ///         let buf = conn.recv().await?.expect("an echo before EOF");
    ///         Ok::<_, std::io::Error>(buf.to_vec())
    ///     })?
    ///     .wait()??;
    /// assert_eq!(echoed, b"ping");
    /// # Ok(()) }
    /// ```
    pub async fn connect(ep: &Endpoint, timeout: Option<Duration>) -> Result<AsyncConn> {
        let fail =
            |kind, msg: &str| Error::new("connect", Some(ep.clone()), io::Error::new(kind, msg));
        if matches!(ep, Endpoint::TcpHost(..)) {
            return Err(fail(
                io::ErrorKind::InvalidInput,
                "a tcp host name: resolve it before connecting from a task (a lookup would block the worker)",
            ));
        }
        let Some(ex) = executor::current() else {
            return Err(fail(
                io::ErrorKind::Unsupported,
                "AsyncConn::connect: not on an engine worker",
            ));
        };
        if ex.stopped() {
            return Err(fail(
                io::ErrorKind::NotConnected,
                "the engine worker is shutting down",
            ));
        }
        let shared = ConnShared::new();
        let (reply, rx): (_, Receiver<Result<ConnHandle>>) = crossbeam_channel::bounded(1);
        ex.connects.0.borrow_mut().push(PendingConnect {
            ep: ep.clone(),
            timeout,
            shared: Rc::clone(&shared),
            reply,
        });
        let mut orphan = Orphan(Some(Rc::clone(&shared)));
        let res = poll_fn(|cx| match rx.try_recv() {
            Ok(Ok(_handle)) => {
                // The id was set when the connect started (`Connects::start`).
                let id = shared.id.get().expect("set when the connect started");
                Poll::Ready(Ok(AsyncConn::new(Rc::clone(&shared), id, ep.clone())))
            }
            Ok(Err(e)) => Poll::Ready(Err(e)),
            Err(crossbeam_channel::TryRecvError::Disconnected) => Poll::Ready(Err(fail(
                io::ErrorKind::NotConnected,
                "the engine worker stopped before the connect finished",
            ))),
            Err(crossbeam_channel::TryRecvError::Empty) => {
                let mut st = shared.st.borrow_mut();
                if !st.state_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    st.state_wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await;
        orphan.0 = None;
        res
    }
}

/// Aborts a connect whose future was dropped before it finished, at the executor's next
/// flush: a dial under way is cut (its socket closed with a reset, its slot freed), and a
/// connection that opened before its task took it is reset, since no task can serve it. A
/// connect not started yet never starts (see `Connects::start`).
struct Orphan(Option<Rc<ConnShared>>);

impl Drop for Orphan {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            // Never borrowed here (a drop runs outside the state's borrows); had it been, the
            // abort would wait for the connection's end instead of panicking in a drop.
            let Ok(mut st) = shared.st.try_borrow_mut() else {
                return;
            };
            st.want.abort = true;
            drop(st);
            if shared.id.get().is_some() {
                shared.mark_dirty();
            }
        }
    }
}
