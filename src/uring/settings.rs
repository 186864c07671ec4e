//! [`Settings`]: an engine's settings once [`EngineBuilder`](super::EngineBuilder) has
//! checked them; what the workers and the core run with. And [`SocketSettings`], the
//! socket options engine sockets get.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use super::ring::TaskRunMode;
use crate::{Endpoint, Error, Result, VsockOptions};

pub(crate) type ThreadHook = Arc<dyn Fn(usize) + Send + Sync>;

/// Engine settings. The builder holds one as its setters fill it in; what workers and the
/// core take is the copy its validation returns (checked, sized to the memory-lock limit,
/// `recv_share` filled in).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) workers: usize,
    pub(crate) pin: Option<Vec<usize>>,
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: u32,
    pub(crate) recv_buffers: usize,
    pub(crate) recv_buffer_size: usize,
    /// Most received buffers one connection holds at once.
    pub(crate) recv_share: u32,
    pub(crate) send_buffers: usize,
    pub(crate) send_buffer_size: usize,
    pub(crate) spin: Option<Duration>,
    pub(crate) sends_per_conn: usize,
    pub(crate) zero_copy_threshold: usize,
    pub(crate) task_run: Option<TaskRunMode>,
    /// Receive bundles wanted (used where the kernel has them).
    pub(crate) recv_bundles: bool,
    /// Accepted connections go to their worker by ring message (where the kernel has it).
    pub(crate) ring_handoff: bool,
    /// Connections' sockets go into a registered file table (where the kernel has it).
    pub(crate) registered_files: bool,
    /// A sleeping worker's minimum wait for a batch of completions (where the kernel has
    /// it); checked by validation to be at most one second.
    pub(crate) min_wait: Option<Duration>,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) socket: SocketSettings,
}

impl Settings {
    /// Most sends linked in one chain: the connection's limit, and a quarter of the
    /// submission queue so a chain always fits in one submission.
    pub(crate) fn max_send_chain(&self) -> usize {
        self.sends_per_conn
            .min((self.sq_entries as usize / 4).max(1))
            .min(256)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("workers", &self.workers)
            .field("recv_buffers", &(self.recv_buffers, self.recv_buffer_size))
            .field("recv_share", &self.recv_share)
            .field("send_buffers", &(self.send_buffers, self.send_buffer_size))
            .field("sends_per_conn", &self.sends_per_conn)
            .finish_non_exhaustive()
    }
}

/// Socket options of engine sockets: set on listeners (accepted sockets inherit them) and
/// on connecting sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketSettings {
    /// `TCP_NODELAY` on tcp sockets.
    pub(crate) nodelay: bool,
    pub(crate) backlog: i32,
    /// `SO_SNDBUF`.
    pub(crate) send_buffer: Option<usize>,
    /// `SO_RCVBUF`.
    pub(crate) recv_buffer: Option<usize>,
    /// `SO_VM_SOCKETS_BUFFER_SIZE` (and the max, when above it) on vsock sockets.
    pub(crate) vsock_buffer: Option<u64>,
}

impl Default for SocketSettings {
    fn default() -> SocketSettings {
        SocketSettings {
            nodelay: true,
            backlog: crate::DEFAULT_BACKLOG,
            send_buffer: None,
            recv_buffer: None,
            vsock_buffer: None,
        }
    }
}

impl SocketSettings {
    /// Sets the options on `socket`, a socket for `ep`; errors name the option, `op` and `ep`.
    pub(crate) fn apply(&self, socket: &Socket, ep: &Endpoint, op: &'static str) -> Result<()> {
        let fail = |what: &'static str| {
            move |e: std::io::Error| Error::new(op, Some(ep.clone()), annotate(what, e))
        };
        if let Endpoint::Tcp(_) = ep {
            if self.nodelay {
                socket.set_tcp_nodelay(true).map_err(fail("TCP_NODELAY"))?;
            }
        }
        if let Some(n) = self.send_buffer {
            socket.set_send_buffer_size(n).map_err(fail("SO_SNDBUF"))?;
        }
        if let Some(n) = self.recv_buffer {
            socket.set_recv_buffer_size(n).map_err(fail("SO_RCVBUF"))?;
        }
        if let (Some(n), Endpoint::Vsock(_)) = (self.vsock_buffer, ep) {
            // The kernel clamps the size to the max (256 KiB by default): raise it first.
            if socket
                .vsock_buffer_max_size()
                .map_err(fail("SO_VM_SOCKETS_BUFFER_MAX_SIZE"))?
                < n
            {
                socket
                    .set_vsock_buffer_max_size(n)
                    .map_err(fail("SO_VM_SOCKETS_BUFFER_MAX_SIZE"))?;
            }
            socket
                .set_vsock_buffer_size(n)
                .map_err(fail("SO_VM_SOCKETS_BUFFER_SIZE"))?;
        }
        Ok(())
    }
}

/// `e` with the option's name in front.
fn annotate(what: &'static str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("setsockopt {what}: {e}"))
}
