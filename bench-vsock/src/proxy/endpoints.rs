//! A proxy's endpoints: where it listens (a fresh endpoint of the server's transport) and
//! how each proxy's command line spells an endpoint.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

use uring_vsock::{Endpoint, VsockAddr};

use super::ProxyKind;
use crate::backend::BACKLOG;
use crate::error::{Context, Error, Result};

/// Where a proxy in front of a server at `server` listens: a fresh abstract unix name, a
/// free port on the server's tcp address, or a free vsock port (any CID). The port is
/// found by binding port 0 and closing again (socat cannot report the port it chose); only
/// a bind, nothing is sent.
///
/// # Errors
///
/// A hybrid server (a VMM's socket, not a transport a proxy listens on), or no free port.
pub(super) fn listen_for(server: &Endpoint) -> Result<Endpoint> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    match server {
        Endpoint::Unix(_) | Endpoint::UnixAbstract(_) => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("bench-vsock-proxy-{}-{n}", std::process::id());
            Ok(Endpoint::UnixAbstract(name.into_bytes()))
        }
        Endpoint::Tcp(addr) => {
            let probe = TcpListener::bind(SocketAddr::new(addr.ip(), 0)).context(format!(
                "finding a free tcp port on {} for the proxy",
                addr.ip()
            ))?;
            Ok(Endpoint::Tcp(probe.local_addr()?))
        }
        Endpoint::Vsock(_) => {
            let any = Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, VsockAddr::PORT_ANY));
            let probe = uring_vsock::blocking::Listener::bind(&any)
                .context("finding a free vsock port for the proxy")?;
            match probe.local_addr()? {
                Endpoint::Vsock(a) => Ok(Endpoint::Vsock(VsockAddr::new(
                    VsockAddr::CID_ANY,
                    a.port(),
                ))),
                other => Err(Error::new(format!(
                    "a vsock listener reported a {other} address"
                ))),
            }
        }
        Endpoint::Hybrid(_) => Err(Error::new(
            "--via runs a proxy on the server's transport: not on a hybrid endpoint \
             (a VMM's socket); use unix, tcp or vsock",
        )),
        Endpoint::TcpHost(..) => Err(unresolved(server)),
    }
}

/// A tcp host name here: the command line resolves names (`parse::endpoint`), so this is a
/// harness defect, reported rather than guessed around.
fn unresolved(ep: &Endpoint) -> Error {
    Error::new(format!("{ep}: host name not resolved before the run"))
}

/// An endpoint in our string syntax (what `vsock-tool` parses).
fn ours(ep: &Endpoint) -> String {
    match ep {
        Endpoint::Vsock(a) if a.cid() == VsockAddr::CID_ANY => format!("vsock:any:{}", a.port()),
        Endpoint::Vsock(a) => format!("vsock:{}:{}", a.cid(), a.port()),
        other => other.to_string(),
    }
}

/// socat's address for listening on `ep`, forking a child per connection (the line
/// operators use), with the servers' listen backlog: socat's default of 5 resets
/// connections of an rr run's 256 arriving at once (a full accept queue), which would
/// measure the backlog, not the proxy.
fn socat_listen(ep: &Endpoint) -> Result<String> {
    let l = match ep {
        Endpoint::UnixAbstract(name) => {
            format!("ABSTRACT-LISTEN:{},fork", String::from_utf8_lossy(name))
        }
        Endpoint::Unix(path) => format!("UNIX-LISTEN:{},fork", path.display()),
        Endpoint::Tcp(SocketAddr::V4(a)) => {
            format!(
                "TCP-LISTEN:{},fork,reuseaddr,bind={},nodelay",
                a.port(),
                a.ip()
            )
        }
        Endpoint::Tcp(SocketAddr::V6(a)) => {
            format!(
                "TCP6-LISTEN:{},fork,reuseaddr,bind=[{}],nodelay",
                a.port(),
                a.ip()
            )
        }
        Endpoint::Vsock(a) => format!("VSOCK-LISTEN:{},fork", a.port()),
        Endpoint::Hybrid(_) => return Err(Error::new("socat cannot listen on a hybrid endpoint")),
        Endpoint::TcpHost(..) => return Err(unresolved(ep)),
    };
    Ok(format!("{l},backlog={BACKLOG}"))
}

/// socat's address for connecting to `ep`.
fn socat_connect(ep: &Endpoint) -> Result<String> {
    Ok(match ep {
        Endpoint::UnixAbstract(name) => {
            format!("ABSTRACT-CONNECT:{}", String::from_utf8_lossy(name))
        }
        Endpoint::Unix(path) => format!("UNIX-CONNECT:{}", path.display()),
        Endpoint::Tcp(SocketAddr::V4(a)) => format!("TCP:{}:{},nodelay", a.ip(), a.port()),
        Endpoint::Tcp(SocketAddr::V6(a)) => format!("TCP6:[{}]:{},nodelay", a.ip(), a.port()),
        Endpoint::Vsock(a) => format!("VSOCK-CONNECT:{}:{}", a.cid(), a.port()),
        Endpoint::Hybrid(_) => return Err(Error::new("socat cannot connect to a hybrid endpoint")),
        Endpoint::TcpHost(..) => return Err(unresolved(ep)),
    })
}

/// The proxy's arguments: listen on `listen`, forward to `target`.
///
/// # Errors
///
/// An endpoint the proxy cannot spell (hybrid, for socat).
pub(super) fn args(kind: ProxyKind, listen: &Endpoint, target: &Endpoint) -> Result<Vec<String>> {
    Ok(match kind {
        ProxyKind::Ours => vec!["proxy".to_owned(), ours(listen), ours(target)],
        ProxyKind::Socat => vec![socat_listen(listen)?, socat_connect(target)?],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn each_proxy_spells_each_transport() {
        let (l, t) = (ep("unix:@p"), ep("unix:@s"));
        assert_eq!(
            args(ProxyKind::Ours, &l, &t).unwrap(),
            ["proxy", "unix:@p", "unix:@s"]
        );
        assert_eq!(
            args(ProxyKind::Socat, &l, &t).unwrap(),
            ["ABSTRACT-LISTEN:p,fork,backlog=1024", "ABSTRACT-CONNECT:s"]
        );
        let (l, t) = (ep("tcp:127.0.0.1:5001"), ep("tcp:127.0.0.1:5000"));
        assert_eq!(
            args(ProxyKind::Socat, &l, &t).unwrap(),
            [
                "TCP-LISTEN:5001,fork,reuseaddr,bind=127.0.0.1,nodelay,backlog=1024",
                "TCP:127.0.0.1:5000,nodelay"
            ]
        );
        assert_eq!(
            args(ProxyKind::Ours, &l, &t).unwrap(),
            ["proxy", "tcp:127.0.0.1:5001", "tcp:127.0.0.1:5000"]
        );
        let l = Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, 5001));
        let t = Endpoint::Vsock(VsockAddr::new(1, 5000));
        assert_eq!(
            args(ProxyKind::Ours, &l, &t).unwrap(),
            ["proxy", "vsock:any:5001", "vsock:1:5000"]
        );
        assert_eq!(
            args(ProxyKind::Socat, &l, &t).unwrap(),
            [
                "VSOCK-LISTEN:5001,fork,backlog=1024",
                "VSOCK-CONNECT:1:5000"
            ]
        );
        // Both spellings parse back in ours.
        assert_eq!(ours(&l).parse::<Endpoint>().unwrap(), l);
        assert_eq!(ours(&t).parse::<Endpoint>().unwrap(), t);
    }

    #[test]
    fn the_listen_endpoint_is_fresh_and_of_the_same_transport() {
        let a = listen_for(&ep("unix:@server")).unwrap();
        let b = listen_for(&ep("unix:/tmp/server.sock")).unwrap();
        assert!(matches!(a, Endpoint::UnixAbstract(_)));
        assert_ne!(a, b);
        match listen_for(&ep("tcp:127.0.0.1:5000")).unwrap() {
            Endpoint::Tcp(addr) => {
                assert_eq!(addr.ip().to_string(), "127.0.0.1");
                assert_ne!(addr.port(), 0);
            }
            other => panic!("{other}"),
        }
        let e = listen_for(&ep("hybrid:/tmp/vm.sock:5000")).unwrap_err();
        assert!(e.message().contains("hybrid"), "{e}");
    }
}
