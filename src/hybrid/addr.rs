//! [`HybridAddr`]: a guest vsock port behind a VMM's hybrid vsock unix socket.

use std::fmt;
use std::path::{Path, PathBuf};

/// A guest's vsock port reached through its VMM's unix socket (Firecracker, Cloud
/// Hypervisor, `vhost-device-vsock`): the endpoint family `hybrid:UDS_PATH:PORT`.
///
/// Connecting reaches guest port `port` through `uds_path` (the `CONNECT` handshake);
/// listening accepts the guest's connects to the host (CID 2) port `port`, which the VMM
/// forwards to a unix socket at [`HybridAddr::listen_path`], `<uds_path>_<port>`.
///
/// ```
/// use uring_vsock::hybrid::HybridAddr;
///
/// let addr = HybridAddr::new("/run/vm0.sock", 5000);
/// assert_eq!(addr.listen_path(), std::path::Path::new("/run/vm0.sock_5000"));
/// assert_eq!(addr.to_string(), "/run/vm0.sock:5000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HybridAddr {
    uds_path: PathBuf,
    port: u32,
}

impl HybridAddr {
    /// The guest port `port` behind the VMM socket `uds_path`.
    pub fn new(uds_path: impl Into<PathBuf>, port: u32) -> HybridAddr {
        HybridAddr {
            uds_path: uds_path.into(),
            port,
        }
    }

    /// The VMM's unix socket, where host → guest connects go.
    pub fn uds_path(&self) -> &Path {
        &self.uds_path
    }

    /// The vsock port: the guest's for a connect, the host's for a listener.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Where a host listener for guest → host connects to `port` binds: `<uds_path>_<port>`.
    pub fn listen_path(&self) -> PathBuf {
        let mut path = self.uds_path.clone().into_os_string();
        path.push(format!("_{}", self.port));
        PathBuf::from(path)
    }
}

impl fmt::Display for HybridAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uds_path.display(), self.port)
    }
}
