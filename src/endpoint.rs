//! [`Endpoint`]: a stream socket address of any family we serve (vsock, unix, tcp, and hybrid
//! vsock behind a VMM's unix socket), so every path and the CLI run the same code over another
//! address family.

use std::ffi::OsStr;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::str::FromStr;

use socket2::{Domain, SockAddr};

use crate::addr::{AddrParseError, AddrParseErrorKind};
use crate::hybrid::HybridAddr;
use crate::VsockAddr;

/// Where a stream socket listens or connects: `vsock:CID:PORT`, `unix:/path`, `unix:@name`
/// (abstract), `tcp:IP:PORT` or `tcp:HOST:PORT`, or `hybrid:UDS_PATH:PORT` (a guest's vsock
/// port behind its VMM's unix socket; see [`crate::hybrid`]).
///
/// Parsing never does I/O: a tcp host name stays a name ([`Endpoint::TcpHost`]) until a
/// connect or bind resolves it (or [`Endpoint::resolve`] does).
///
/// # Examples
///
/// ```
/// use uring_vsock::{Endpoint, VsockAddr};
///
/// let ep: Endpoint = "vsock:host:5000".parse()?;
/// assert_eq!(ep, Endpoint::Vsock(VsockAddr::new(2, 5000)));
/// assert_eq!(ep.to_string(), "vsock:host(2):5000");
///
/// let ep: Endpoint = "unix:@bench".parse()?;
/// assert_eq!(ep, Endpoint::UnixAbstract(b"bench".to_vec()));
///
/// let ep: Endpoint = "tcp:127.0.0.1:80".parse()?;
/// assert_eq!(ep.to_string(), "tcp:127.0.0.1:80");
///
/// // Firecracker / Cloud Hypervisor / vhost-device-vsock: connects reach guest port 5000
/// // through the VMM's socket; a listener takes the guest's connects to host port 5000 on
/// // /run/vm0.sock_5000.
/// let ep: Endpoint = "hybrid:/run/vm0.sock:5000".parse()?;
/// assert_eq!(ep, Endpoint::Hybrid(uring_vsock::hybrid::HybridAddr::new("/run/vm0.sock", 5000)));
/// assert_eq!(ep.to_string(), "hybrid:/run/vm0.sock:5000");
/// # Ok::<(), uring_vsock::AddrParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An `AF_VSOCK` address.
    Vsock(VsockAddr),
    /// An `AF_UNIX` path; empty for an unnamed socket (a client that never bound).
    Unix(PathBuf),
    /// An `AF_UNIX` name in the abstract namespace (without the leading NUL).
    UnixAbstract(Vec<u8>),
    /// A TCP address.
    Tcp(SocketAddr),
    /// A TCP host name and port, not yet resolved: every connect and bind resolves it first
    /// (blocking DNS on the blocking and epoll paths and in [`Engine::connect`]'s caller, the
    /// runtime's resolver on the tokio path) and takes the first address.
    ///
    /// [`Engine::connect`]: crate::uring::Engine::connect
    TcpHost(String, u16),
    /// Hybrid vsock: a guest port behind a VMM's unix socket. A connect is a unix connect to
    /// the socket plus the `CONNECT` handshake; a listener binds `<uds_path>_<port>`.
    Hybrid(HybridAddr),
}

impl Endpoint {
    /// The socket domain (address family) of this endpoint.
    ///
    /// ```
    /// let ep: uring_vsock::Endpoint = "vsock:3:1".parse()?;
    /// assert_eq!(ep.domain(), socket2::Domain::VSOCK);
    /// # Ok::<(), uring_vsock::AddrParseError>(())
    /// ```
    pub fn domain(&self) -> Domain {
        match self {
            Endpoint::Vsock(_) => Domain::VSOCK,
            Endpoint::Unix(_) | Endpoint::UnixAbstract(_) | Endpoint::Hybrid(_) => Domain::UNIX,
            Endpoint::Tcp(SocketAddr::V4(_)) => Domain::IPV4,
            Endpoint::Tcp(SocketAddr::V6(_)) => Domain::IPV6,
            // Its family is known once resolved; nothing makes a socket for it before.
            Endpoint::TcpHost(..) => Domain::IPV4,
        }
    }

    /// The endpoint with a tcp host name resolved (blocking DNS, first address), or a clone
    /// of it when it is not a [`Endpoint::TcpHost`].
    ///
    /// # Errors
    ///
    /// The resolver's error, or `NotFound` when the name has no address.
    ///
    /// ```
    /// use uring_vsock::Endpoint;
    /// let ep: Endpoint = "tcp:localhost:8080".parse()?;
    /// assert_eq!(ep, Endpoint::TcpHost("localhost".into(), 8080));
    /// match ep.resolve()? {
    ///     Endpoint::Tcp(addr) => assert!(addr.ip().is_loopback()),
    ///     other => panic!("{other}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resolve(&self) -> std::io::Result<Endpoint> {
        match self {
            Endpoint::TcpHost(host, port) => (host.as_str(), *port)
                .to_socket_addrs()?
                .next()
                .map(Endpoint::Tcp)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("host {host:?} resolves to no address"),
                    )
                }),
            other => Ok(other.clone()),
        }
    }

    /// Whether this is a vsock endpoint.
    pub fn is_vsock(&self) -> bool {
        matches!(self, Endpoint::Vsock(_))
    }

    /// The kernel socket address connects go to: for [`Endpoint::Hybrid`], the VMM's socket
    /// (a listener binds [`HybridAddr::listen_path`] instead).
    ///
    /// # Errors
    ///
    /// `InvalidInput` when a unix path or abstract name does not fit in `sun_path`, or for an
    /// unresolved [`Endpoint::TcpHost`] (see [`Endpoint::resolve`]).
    ///
    /// ```
    /// let ep: uring_vsock::Endpoint = "vsock:3:1024".parse()?;
    /// assert_eq!(ep.to_sock_addr()?.as_vsock_address(), Some((3, 1024)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_sock_addr(&self) -> std::io::Result<SockAddr> {
        match self {
            Endpoint::Vsock(addr) => Ok(crate::sys::vsock_sock_addr(addr)),
            Endpoint::Unix(path) => SockAddr::unix(path),
            Endpoint::UnixAbstract(name) => {
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(0);
                bytes.extend_from_slice(name);
                SockAddr::unix(OsStr::from_bytes(&bytes))
            }
            Endpoint::Tcp(addr) => Ok(SockAddr::from(*addr)),
            Endpoint::TcpHost(host, _) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("host name {host:?} not resolved (Endpoint::resolve)"),
            )),
            Endpoint::Hybrid(h) => SockAddr::unix(h.uds_path()),
        }
    }

    /// The kernel socket address a listener binds: [`Endpoint::to_sock_addr`], but for
    /// [`Endpoint::Hybrid`], `<uds_path>_<port>`.
    pub(crate) fn listen_sock_addr(&self) -> std::io::Result<SockAddr> {
        match self {
            Endpoint::Hybrid(h) => SockAddr::unix(h.listen_path()),
            other => other.to_sock_addr(),
        }
    }

    /// The endpoint a kernel socket address names, or `None` for a family we do not serve.
    ///
    /// ```
    /// use uring_vsock::{Endpoint, VsockAddr};
    /// let sa = socket2::SockAddr::vsock(3, 1024);
    /// assert_eq!(Endpoint::from_sock_addr(&sa), Some(Endpoint::Vsock(VsockAddr::new(3, 1024))));
    /// ```
    pub fn from_sock_addr(addr: &SockAddr) -> Option<Endpoint> {
        if let Some(vsock) = crate::sys::vsock_addr_of(addr) {
            return Some(Endpoint::Vsock(vsock));
        }
        if let Some(ip) = addr.as_socket() {
            return Some(Endpoint::Tcp(ip));
        }
        if addr.is_unix() {
            if let Some(name) = addr.as_abstract_namespace() {
                return Some(Endpoint::UnixAbstract(name.to_vec()));
            }
            let path = addr.as_pathname().map(PathBuf::from).unwrap_or_default();
            return Some(Endpoint::Unix(path));
        }
        None
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Vsock(addr) => write!(f, "vsock:{addr}"),
            Endpoint::Unix(path) if path.as_os_str().is_empty() => f.write_str("unix:(unnamed)"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::UnixAbstract(name) => {
                write!(f, "unix:@{}", String::from_utf8_lossy(name))
            }
            Endpoint::Tcp(addr) => write!(f, "tcp:{addr}"),
            Endpoint::TcpHost(host, port) => write!(f, "tcp:{host}:{port}"),
            Endpoint::Hybrid(h) => write!(f, "hybrid:{h}"),
        }
    }
}

impl From<VsockAddr> for Endpoint {
    fn from(addr: VsockAddr) -> Endpoint {
        Endpoint::Vsock(addr)
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint::Tcp(addr)
    }
}

/// The longest unix path (or abstract name plus its NUL) that fits in `sun_path`.
const SUN_PATH_LEN: usize = 108;

impl FromStr for Endpoint {
    type Err = AddrParseError;

    /// Parses `vsock:CID:PORT` (any form [`VsockAddr`] accepts, also `vsock://CID:PORT`),
    /// `unix:/path`, `unix:@abstract`, `tcp:IP:PORT` (`[v6]:port` for IPv6), `tcp:HOST:PORT`
    /// (a DNS name, kept unresolved: [`Endpoint::TcpHost`]) and `hybrid:UDS_PATH:PORT` (the
    /// path may contain `:`). Ports are decimal digits only (no sign); paths hold no NUL.
    /// Nothing is resolved or touched.
    fn from_str(input: &str) -> Result<Endpoint, AddrParseError> {
        let bad = |what: &str| {
            AddrParseError::new(input, AddrParseErrorKind::BadEndpoint(what.to_owned()))
        };
        let (scheme, rest) = input.split_once(':').ok_or_else(|| {
            bad("expected vsock:CID:PORT, unix:PATH, tcp:HOST:PORT or hybrid:PATH:PORT")
        })?;
        match scheme {
            "vsock" => {
                let addr = rest.strip_prefix("//").unwrap_or(rest);
                crate::addr::parse_bare(addr)
                    .map(Endpoint::Vsock)
                    .map_err(|kind| AddrParseError::new(input, kind))
            }
            "unix" => {
                if let Some(name) = rest.strip_prefix('@') {
                    // Abstract names are bytes, NULs included: the kernel takes the length.
                    if name.is_empty() {
                        return Err(bad("empty abstract unix name"));
                    }
                    if name.len() >= SUN_PATH_LEN {
                        return Err(bad("abstract unix name longer than 107 bytes"));
                    }
                    Ok(Endpoint::UnixAbstract(name.as_bytes().to_vec()))
                } else if rest.is_empty() {
                    Err(bad("empty unix path"))
                } else if rest.contains('\0') {
                    // The kernel would stop at the NUL and bind a different path.
                    Err(bad("unix path contains a NUL byte"))
                } else if rest.len() >= SUN_PATH_LEN {
                    Err(bad("unix path longer than 107 bytes"))
                } else {
                    Ok(Endpoint::Unix(PathBuf::from(rest)))
                }
            }
            "tcp" => parse_tcp(rest).map_err(|kind| AddrParseError::new(input, kind)),
            "hybrid" => parse_hybrid(rest)
                .map(Endpoint::Hybrid)
                .map_err(|kind| AddrParseError::new(input, kind)),
            _ => Err(bad(&format!(
                "unknown scheme {scheme:?}: expected vsock, unix, tcp or hybrid"
            ))),
        }
    }
}

/// `IP:PORT`, `[V6]:PORT` or `HOST:PORT`, the port decimal digits only.
fn parse_tcp(rest: &str) -> Result<Endpoint, AddrParseErrorKind> {
    let bad = |what: String| AddrParseErrorKind::BadEndpoint(what);
    let (host, port) = rest
        .rsplit_once(':')
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| bad("tcp needs HOST:PORT with a port from 0 to 65535".into()))?;
    let port: u16 = port
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse().ok())
        .flatten()
        .ok_or_else(|| bad(format!("tcp port {port:?} is not a number from 0 to 65535")))?;
    if let Some(v6) = host.strip_prefix('[') {
        let ip = v6
            .strip_suffix(']')
            .and_then(|ip| ip.parse::<std::net::Ipv6Addr>().ok())
            .ok_or_else(|| bad(format!("tcp host {host:?} is not an IPv6 address")))?;
        return Ok(Endpoint::Tcp(SocketAddr::from((ip, port))));
    }
    if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
        return Ok(Endpoint::Tcp(SocketAddr::from((ip, port))));
    }
    if host.contains(':') {
        return Err(bad(format!(
            "tcp host {host:?}: an IPv6 address goes in brackets, [ADDR]:PORT"
        )));
    }
    if !is_host_name(host) {
        return Err(bad(format!(
            "tcp host {host:?} is neither an IP address nor a DNS name"
        )));
    }
    Ok(Endpoint::TcpHost(host.to_owned(), port))
}

/// A DNS name as resolvers take it: dot-separated labels of letters, digits, `-` and `_`
/// (not at a label's ends for `-`), at most 63 bytes each and 253 in all; not all digits and
/// dots (that would be a malformed IPv4 address, not a name).
fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `UDS_PATH:PORT`: the port is after the last `:`, so the path may hold `:`s.
fn parse_hybrid(rest: &str) -> Result<HybridAddr, AddrParseErrorKind> {
    let bad = |what: &str| AddrParseErrorKind::BadEndpoint(what.to_owned());
    let (path, port) = rest
        .rsplit_once(':')
        .ok_or(AddrParseErrorKind::MissingPort)?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrParseErrorKind::BadPort(port.to_owned()));
    }
    let port: u32 = port
        .parse()
        .map_err(|_| AddrParseErrorKind::BadPort(port.to_owned()))?;
    if path.is_empty() {
        return Err(bad("empty hybrid vsock socket path"));
    }
    if path.contains('\0') {
        return Err(bad("hybrid vsock socket path contains a NUL byte"));
    }
    if path.len() >= SUN_PATH_LEN {
        return Err(bad("hybrid vsock socket path longer than 107 bytes"));
    }
    Ok(HybridAddr::new(path, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_family() {
        let cases = [
            ("vsock:3:1024", Endpoint::Vsock(VsockAddr::new(3, 1024))),
            ("vsock://3:1024", Endpoint::Vsock(VsockAddr::new(3, 1024))),
            (
                "vsock:any:5000",
                Endpoint::Vsock(VsockAddr::new(VsockAddr::CID_ANY, 5000)),
            ),
            ("vsock:vm(9):1", Endpoint::Vsock(VsockAddr::new(9, 1))),
            ("unix:/tmp/a.sock", Endpoint::Unix("/tmp/a.sock".into())),
            ("unix:rel.sock", Endpoint::Unix("rel.sock".into())),
            ("unix:@name", Endpoint::UnixAbstract(b"name".to_vec())),
            (
                "tcp:127.0.0.1:80",
                Endpoint::Tcp("127.0.0.1:80".parse().unwrap()),
            ),
            ("tcp:[::1]:443", Endpoint::Tcp("[::1]:443".parse().unwrap())),
            (
                "hybrid:/run/vm0.sock:5000",
                Endpoint::Hybrid(HybridAddr::new("/run/vm0.sock", 5000)),
            ),
            (
                "hybrid:rel:with:colons.sock:4294967295",
                Endpoint::Hybrid(HybridAddr::new("rel:with:colons.sock", u32::MAX)),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<Endpoint>().as_ref(), Ok(&want), "{s}");
            assert_eq!(want.to_string().parse::<Endpoint>(), Ok(want.clone()));
        }
        // A name stays a name: parsing does no I/O; resolving is a separate, explicit step.
        let local: Endpoint = "tcp:localhost:8080".parse().unwrap();
        assert_eq!(local, Endpoint::TcpHost("localhost".into(), 8080));
        assert_eq!(local.to_string(), "tcp:localhost:8080");
        match local.resolve().unwrap() {
            Endpoint::Tcp(a) => {
                assert!(a.ip().is_loopback());
                assert_eq!(a.port(), 8080);
            }
            other => panic!("localhost resolved to {other:?}"),
        }
        assert!(
            local.to_sock_addr().is_err(),
            "an unresolved name has no sockaddr"
        );
        // A name that cannot resolve still parses: nothing is looked up.
        let nowhere: Endpoint = "tcp:no-such-host.invalid:1".parse().unwrap();
        assert_eq!(nowhere, Endpoint::TcpHost("no-such-host.invalid".into(), 1));
    }

    #[test]
    fn adversarial_strings_are_refused_naming_the_bad_part() {
        let cases = [
            ("unix:/tmp/a\0b", "unix path contains a NUL byte"),
            (
                "hybrid:/run/a\0b.sock:5",
                "hybrid vsock socket path contains a NUL byte",
            ),
            (
                "vsock://vsock://3:4",
                "CID \"vsock://3\" is not a number or one of any, hypervisor, local, host, vm(N)",
            ),
            (
                "vsock:vsock://3:4",
                "CID \"vsock://3\" is not a number or one of any, hypervisor, local, host, vm(N)",
            ),
            (
                "tcp:127.0.0.1:+80",
                "tcp port \"+80\" is not a number from 0 to 65535",
            ),
            (
                "tcp:127.0.0.1:-1",
                "tcp port \"-1\" is not a number from 0 to 65535",
            ),
            (
                "tcp:127.0.0.1: 80",
                "tcp port \" 80\" is not a number from 0 to 65535",
            ),
            (
                "tcp:[::1]:+443",
                "tcp port \"+443\" is not a number from 0 to 65535",
            ),
            ("tcp::80", "tcp needs HOST:PORT with a port from 0 to 65535"),
            ("tcp:[::1:80", "tcp host \"[::1\" is not an IPv6 address"),
            (
                "tcp:[1.2.3.4]:80",
                "tcp host \"[1.2.3.4]\" is not an IPv6 address",
            ),
            (
                "tcp:::1:80",
                "tcp host \"::1\": an IPv6 address goes in brackets, [ADDR]:PORT",
            ),
            (
                "tcp:1.2.3.256:80",
                "tcp host \"1.2.3.256\" is neither an IP address nor a DNS name",
            ),
            (
                "tcp:a b:80",
                "tcp host \"a b\" is neither an IP address nor a DNS name",
            ),
            (
                "tcp:-x.example:80",
                "tcp host \"-x.example\" is neither an IP address nor a DNS name",
            ),
            (
                "tcp:a..b:80",
                "tcp host \"a..b\" is neither an IP address nor a DNS name",
            ),
            (
                "tcp:a/b:80",
                "tcp host \"a/b\" is neither an IP address nor a DNS name",
            ),
        ];
        for (s, want) in cases {
            let err = s.parse::<Endpoint>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.ends_with(want), "{s:?}: {msg}");
            assert_eq!(err.input(), s);
        }
        let long_label = format!("tcp:{}.example:80", "x".repeat(64));
        assert!(long_label.parse::<Endpoint>().is_err());
    }

    #[test]
    fn bad_endpoints_say_what_is_wrong() {
        let cases = [
            (
                "",
                "expected vsock:CID:PORT, unix:PATH, tcp:HOST:PORT or hybrid:PATH:PORT",
            ),
            (
                "nothing",
                "expected vsock:CID:PORT, unix:PATH, tcp:HOST:PORT or hybrid:PATH:PORT",
            ),
            (
                "udp:1.2.3.4:5",
                "unknown scheme \"udp\": expected vsock, unix, tcp or hybrid",
            ),
            ("unix:", "empty unix path"),
            ("unix:@", "empty abstract unix name"),
            (
                "tcp:127.0.0.1",
                "tcp needs HOST:PORT with a port from 0 to 65535",
            ),
            (
                "tcp:127.0.0.1:99999",
                "tcp port \"99999\" is not a number from 0 to 65535",
            ),
            ("vsock:3:x", "port \"x\" is not a number"),
            ("vsock:3", "missing \":PORT\""),
            ("hybrid:/run/vm.sock", "missing \":PORT\""),
            ("hybrid:/run/vm.sock:", "port \"\" is not a number"),
            ("hybrid:/run/vm.sock:+5", "port \"+5\" is not a number"),
            (
                "hybrid:/run/vm.sock:4294967296",
                "port \"4294967296\" is not a number",
            ),
            ("hybrid::5000", "empty hybrid vsock socket path"),
        ];
        for (s, want) in cases {
            let err = s.parse::<Endpoint>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.ends_with(want), "{s}: {msg}");
            assert!(msg.contains(&format!("{s:?}")), "{s}: {msg}");
        }
        let long = format!("unix:/{}", "x".repeat(120));
        assert!(long
            .parse::<Endpoint>()
            .unwrap_err()
            .to_string()
            .ends_with("longer than 107 bytes"));
        let long = format!("hybrid:/{}:1", "x".repeat(120));
        let err = long.parse::<Endpoint>().unwrap_err();
        assert!(matches!(err.kind(), AddrParseErrorKind::BadEndpoint(_)));
        assert!(err.to_string().ends_with("longer than 107 bytes"), "{err}");
        assert_eq!(
            "hybrid:/x:port".parse::<Endpoint>().unwrap_err().kind(),
            &AddrParseErrorKind::BadPort("port".into())
        );
    }

    #[test]
    fn hybrid_connects_to_the_vmm_socket_and_listens_beside_it() {
        let ep: Endpoint = "hybrid:/run/vm0.sock:5000".parse().unwrap();
        assert_eq!(ep.domain(), Domain::UNIX);
        let connect = ep.to_sock_addr().unwrap();
        assert_eq!(
            connect.as_pathname(),
            Some(std::path::Path::new("/run/vm0.sock"))
        );
        let listen = ep.listen_sock_addr().unwrap();
        assert_eq!(
            listen.as_pathname(),
            Some(std::path::Path::new("/run/vm0.sock_5000"))
        );
    }

    #[test]
    fn sock_addr_round_trips() {
        for s in [
            "vsock:3:1024",
            "unix:/tmp/x.sock",
            "unix:@abstract-name",
            "tcp:127.0.0.1:9",
            "tcp:[::1]:9",
        ] {
            let ep: Endpoint = s.parse().unwrap();
            let sa = ep.to_sock_addr().unwrap();
            assert_eq!(sa.domain(), ep.domain(), "{s}");
            assert_eq!(Endpoint::from_sock_addr(&sa), Some(ep), "{s}");
        }
        let flagged = Endpoint::Vsock(VsockAddr::new(5, 1).with_flags(VsockAddr::FLAG_TO_HOST));
        let sa = flagged.to_sock_addr().unwrap();
        assert_eq!(Endpoint::from_sock_addr(&sa), Some(flagged));
    }
}
