//! Which socket family a local run uses, and where its server listens. Choosing never
//! sends anything.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use uring_vsock::{Endpoint, VsockAddr};

use crate::error::{Error, Result};

/// A socket family for local runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `AF_UNIX` (abstract names).
    Unix,
    /// TCP on 127.0.0.1.
    Tcp,
    /// `AF_VSOCK` through the loopback transport (only where it is loaded).
    Vsock,
}

impl Transport {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            Transport::Vsock => "vsock",
        }
    }

    /// The transport of an endpoint.
    pub fn of(ep: &Endpoint) -> Transport {
        match ep {
            // Hybrid vsock is a unix socket here, but the guest's end is a vsock transport.
            Endpoint::Vsock(_) | Endpoint::Hybrid(_) => Transport::Vsock,
            Endpoint::Unix(_) | Endpoint::UnixAbstract(_) => Transport::Unix,
            Endpoint::Tcp(_) | Endpoint::TcpHost(..) => Transport::Tcp,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The transport as a report names it: [`Transport::of`]'s name, except `hybrid` for a
/// hybrid endpoint (the host side of a VMM's virtio-vsock device, a unix socket with a
/// handshake), so host ↔ guest runs are never folded in with loopback vsock ones.
pub fn report_name(ep: &Endpoint) -> &'static str {
    match ep {
        Endpoint::Hybrid(_) => "hybrid",
        other => Transport::of(other).name(),
    }
}

/// The transport to use when none is given, and a line saying why. vsock only through the
/// loopback transport; without it a vsock connect would leave the machine, so unix.
pub fn default_transport() -> (Transport, String) {
    if uring_vsock::loopback_available() {
        (
            Transport::Vsock,
            "transport: vsock (loopback transport loaded)".to_owned(),
        )
    } else {
        (
            Transport::Unix,
            "transport: unix (no vsock loopback here: /sys/module/vsock_loopback is missing)"
                .to_owned(),
        )
    }
}

/// Where a local server of this transport listens: a fresh abstract unix name, an ephemeral
/// port on 127.0.0.1, or any vsock port.
///
/// # Errors
///
/// vsock without the loopback transport: refused before anything is sent.
pub fn local_listen(t: Transport) -> Result<Endpoint> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    match t {
        Transport::Unix => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("bench-vsock-{}-{n}", std::process::id());
            Ok(Endpoint::UnixAbstract(name.into_bytes()))
        }
        Transport::Tcp => Ok(Endpoint::Tcp(([127, 0, 0, 1], 0).into())),
        Transport::Vsock => {
            require_loopback()?;
            Ok(Endpoint::Vsock(VsockAddr::new(
                VsockAddr::CID_ANY,
                VsockAddr::PORT_ANY,
            )))
        }
    }
}

/// Refuses local vsock runs where there is no loopback transport.
///
/// # Errors
///
/// The loopback transport is not loaded.
pub fn require_loopback() -> Result<()> {
    if uring_vsock::loopback_available() {
        Ok(())
    } else {
        Err(Error::new(
            "local vsock runs need the vsock loopback transport, which is not loaded here \
             (/sys/module/vsock_loopback); use --transport unix|tcp, or run `bench-vsock serve` \
             on the other side and --connect vsock:CID:PORT",
        ))
    }
}

/// The address a local client connects to for a server listening at `server`: a vsock
/// server bound to any CID is reached through the local CID.
pub fn connect_to(server: &Endpoint) -> Endpoint {
    match server {
        Endpoint::Vsock(a) if a.cid() == VsockAddr::CID_ANY => {
            Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, a.port()))
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sends nothing either way, so it runs on the host too (its name leaves out the word
    // that marks tests for the VM); in the VM it checks the loopback branch.
    #[test]
    fn the_default_transport_follows_the_loopback_module() {
        let (t, why) = default_transport();
        if uring_vsock::loopback_available() {
            assert_eq!(t, Transport::Vsock);
            assert!(why.contains("loopback transport loaded"), "{why}");
        } else {
            assert_eq!(t, Transport::Unix);
            assert!(why.contains("no vsock loopback"), "{why}");
            assert!(local_listen(Transport::Vsock).is_err());
        }
    }

    #[test]
    fn local_unix_names_are_fresh() {
        let a = local_listen(Transport::Unix).unwrap();
        let b = local_listen(Transport::Unix).unwrap();
        assert_ne!(a, b);
        assert_eq!(Transport::of(&a), Transport::Unix);
    }

    #[test]
    fn a_server_on_any_cid_is_reached_through_the_local_cid() {
        let server = Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, 1234));
        assert_eq!(
            connect_to(&server),
            Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_LOCAL, 1234))
        );
    }
}
