//! [`VsockAddr`]: a vsock context ID (CID), port and flags, printed and parsed the way users of
//! the Go `mdlayher/vsock` library know (`host(2):1024`, `vm(3):1024`).

use std::fmt;
use std::str::FromStr;

/// A vsock socket address: context ID, port and `svm_flags`.
///
/// The CID names a machine (the hypervisor, the host, a VM); the port names a socket on it.
///
/// # Examples
///
/// ```
/// use uring_vsock::VsockAddr;
///
/// let addr: VsockAddr = "vm(3):1024".parse()?;
/// assert_eq!(addr, VsockAddr::new(3, 1024));
/// assert_eq!(addr.to_string(), "vm(3):1024");
/// assert_eq!("host:80".parse::<VsockAddr>()?.cid(), VsockAddr::CID_HOST);
/// # Ok::<(), uring_vsock::AddrParseError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VsockAddr {
    cid: u32,
    port: u32,
    flags: u8,
}

impl VsockAddr {
    /// `VMADDR_CID_ANY`: bind to any local CID.
    pub const CID_ANY: u32 = libc::VMADDR_CID_ANY;
    /// `VMADDR_CID_HYPERVISOR` (0): the hypervisor.
    pub const CID_HYPERVISOR: u32 = libc::VMADDR_CID_HYPERVISOR;
    /// `VMADDR_CID_LOCAL` (1): this machine, through the loopback transport.
    pub const CID_LOCAL: u32 = libc::VMADDR_CID_LOCAL;
    /// `VMADDR_CID_HOST` (2): the host, seen from a guest.
    pub const CID_HOST: u32 = libc::VMADDR_CID_HOST;
    /// `VMADDR_PORT_ANY`: let the kernel pick a port.
    pub const PORT_ANY: u32 = libc::VMADDR_PORT_ANY;
    /// `VMADDR_FLAG_TO_HOST`: route the connection to the host even when the CID is not
    /// `CID_HOST`, as enclaves and sibling VMs need (the host forwards it).
    pub const FLAG_TO_HOST: u8 = 0x01;

    /// An address with no flags.
    ///
    /// ```
    /// let a = uring_vsock::VsockAddr::new(3, 1024);
    /// assert_eq!((a.cid(), a.port(), a.flags()), (3, 1024, 0));
    /// ```
    pub const fn new(cid: u32, port: u32) -> VsockAddr {
        VsockAddr {
            cid,
            port,
            flags: 0,
        }
    }

    /// The same address with `svm_flags` set to `flags` (for example [`Self::FLAG_TO_HOST`]).
    ///
    /// ```
    /// use uring_vsock::VsockAddr;
    /// let a = VsockAddr::new(5, 80).with_flags(VsockAddr::FLAG_TO_HOST);
    /// assert_eq!(a.flags(), VsockAddr::FLAG_TO_HOST);
    /// ```
    pub const fn with_flags(self, flags: u8) -> VsockAddr {
        VsockAddr { flags, ..self }
    }

    /// The context ID.
    pub const fn cid(&self) -> u32 {
        self.cid
    }

    /// The port.
    pub const fn port(&self) -> u32 {
        self.port
    }

    /// The `svm_flags` byte.
    pub const fn flags(&self) -> u8 {
        self.flags
    }
}

/// The name the Go library gives a CID, if it has one.
fn cid_name(cid: u32) -> Option<&'static str> {
    match cid {
        VsockAddr::CID_HYPERVISOR => Some("hypervisor"),
        VsockAddr::CID_LOCAL => Some("local"),
        VsockAddr::CID_HOST => Some("host"),
        _ => None,
    }
}

impl fmt::Display for VsockAddr {
    /// `host(2):1024`, `vm(3):1024`, `any:1024`; the port `PORT_ANY` prints as `any`.
    /// Flags are not printed (see `Debug`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cid, cid_name(self.cid)) {
            (VsockAddr::CID_ANY, _) => f.write_str("any")?,
            (cid, Some(name)) => write!(f, "{name}({cid})")?,
            (cid, None) => write!(f, "vm({cid})")?,
        }
        match self.port {
            VsockAddr::PORT_ANY => f.write_str(":any"),
            port => write!(f, ":{port}"),
        }
    }
}

impl fmt::Debug for VsockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VsockAddr({self}")?;
        if self.flags != 0 {
            write!(f, ", flags={:#04x}", self.flags)?;
        }
        f.write_str(")")
    }
}

/// Why a string is not a vsock address; [`AddrParseError`] says which.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrParseErrorKind {
    /// The string is empty.
    Empty,
    /// There is no `:PORT` part.
    MissingPort,
    /// The CID part is neither a number nor a known name.
    BadCid(String),
    /// The port part is not a number (or `any`).
    BadPort(String),
    /// `name(N)` where `N` is not that name's CID, e.g. `host(3)`.
    NameMismatch(String),
    /// An endpoint string (`vsock:`, `unix:`, `tcp:`) is malformed; the text says how.
    BadEndpoint(String),
}

/// A string that is not a vsock address or endpoint; its message names the bad part.
///
/// ```
/// let err = "3:x".parse::<uring_vsock::VsockAddr>().unwrap_err();
/// assert_eq!(err.to_string(), r#"vsock address "3:x": port "x" is not a number"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrParseError {
    input: String,
    kind: AddrParseErrorKind,
}

impl AddrParseError {
    pub(crate) fn new(input: &str, kind: AddrParseErrorKind) -> AddrParseError {
        AddrParseError {
            input: input.to_owned(),
            kind,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &AddrParseErrorKind {
        &self.kind
    }

    /// The whole string that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for AddrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let input = &self.input;
        match &self.kind {
            AddrParseErrorKind::Empty => write!(f, "vsock address {input:?}: empty"),
            AddrParseErrorKind::MissingPort => {
                write!(f, "vsock address {input:?}: missing \":PORT\"")
            }
            AddrParseErrorKind::BadCid(c) => write!(
                f,
                "vsock address {input:?}: CID {c:?} is not a number or one of any, hypervisor, local, host, vm(N)"
            ),
            AddrParseErrorKind::BadPort(p) => {
                write!(f, "vsock address {input:?}: port {p:?} is not a number")
            }
            AddrParseErrorKind::NameMismatch(c) => write!(
                f,
                "vsock address {input:?}: CID {c:?}: the name does not match the number"
            ),
            AddrParseErrorKind::BadEndpoint(why) => write!(f, "endpoint {input:?}: {why}"),
        }
    }
}

impl std::error::Error for AddrParseError {}

/// Parses `N`, `any`, `hypervisor`, `local`, `host`, and `name(N)` (`vm(3)`, `host(2)`).
fn parse_cid(s: &str) -> Result<u32, AddrParseErrorKind> {
    let bad = || AddrParseErrorKind::BadCid(s.to_owned());
    if let Some((name, rest)) = s.split_once('(') {
        let num = rest.strip_suffix(')').ok_or_else(bad)?;
        let cid: u32 = num.parse().map_err(|_| bad())?;
        let expected = match name {
            "vm" => cid_name(cid).is_none() && cid != VsockAddr::CID_ANY,
            "hypervisor" | "local" | "host" => cid_name(cid) == Some(name),
            _ => return Err(bad()),
        };
        return if expected {
            Ok(cid)
        } else {
            Err(AddrParseErrorKind::NameMismatch(s.to_owned()))
        };
    }
    match s {
        "any" => Ok(VsockAddr::CID_ANY),
        "hypervisor" => Ok(VsockAddr::CID_HYPERVISOR),
        "local" => Ok(VsockAddr::CID_LOCAL),
        "host" => Ok(VsockAddr::CID_HOST),
        _ if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn parse_port(s: &str) -> Result<u32, AddrParseErrorKind> {
    match s {
        "any" => Ok(VsockAddr::PORT_ANY),
        _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map_err(|_| AddrParseErrorKind::BadPort(s.to_owned())),
        _ => Err(AddrParseErrorKind::BadPort(s.to_owned())),
    }
}

impl FromStr for VsockAddr {
    type Err = AddrParseError;

    /// Accepts `vm(3):1024`, `host(2):1024`, `any:1024`, `3:1024`, `vsock://3:1024` and the
    /// names `any`, `host`, `local`, `hypervisor` for the CID; the port may be `any`.
    fn from_str(input: &str) -> Result<VsockAddr, AddrParseError> {
        let s = input.strip_prefix("vsock://").unwrap_or(input);
        parse_bare(s).map_err(|kind| AddrParseError::new(input, kind))
    }
}

/// `CID:PORT` with no scheme prefix (the prefix is stripped once, by the caller).
pub(crate) fn parse_bare(s: &str) -> Result<VsockAddr, AddrParseErrorKind> {
    if s.is_empty() {
        return Err(AddrParseErrorKind::Empty);
    }
    let (cid, port) = s.rsplit_once(':').ok_or(AddrParseErrorKind::MissingPort)?;
    Ok(VsockAddr::new(parse_cid(cid)?, parse_port(port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_go_names() {
        assert_eq!(VsockAddr::new(2, 1024).to_string(), "host(2):1024");
        assert_eq!(VsockAddr::new(3, 1024).to_string(), "vm(3):1024");
        assert_eq!(VsockAddr::new(1, 1024).to_string(), "local(1):1024");
        assert_eq!(VsockAddr::new(0, 1024).to_string(), "hypervisor(0):1024");
        assert_eq!(
            VsockAddr::new(VsockAddr::CID_ANY, 1024).to_string(),
            "any:1024"
        );
        assert_eq!(
            VsockAddr::new(7, VsockAddr::PORT_ANY).to_string(),
            "vm(7):any"
        );
    }

    #[test]
    fn parse_accepts_every_documented_form() {
        let cases = [
            ("vm(3):1024", VsockAddr::new(3, 1024)),
            ("host(2):1024", VsockAddr::new(2, 1024)),
            ("local(1):1", VsockAddr::new(1, 1)),
            ("hypervisor(0):9", VsockAddr::new(0, 9)),
            ("any:1024", VsockAddr::new(VsockAddr::CID_ANY, 1024)),
            ("3:1024", VsockAddr::new(3, 1024)),
            ("vsock://3:1024", VsockAddr::new(3, 1024)),
            ("host:5000", VsockAddr::new(2, 5000)),
            ("local:5000", VsockAddr::new(1, 5000)),
            ("hypervisor:5000", VsockAddr::new(0, 5000)),
            ("4294967295:1", VsockAddr::new(VsockAddr::CID_ANY, 1)),
            ("3:any", VsockAddr::new(3, VsockAddr::PORT_ANY)),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<VsockAddr>(), Ok(want), "{s}");
        }
    }

    #[test]
    fn display_round_trips_through_parse() {
        for cid in [0, 1, 2, 3, 77, VsockAddr::CID_ANY] {
            for port in [0, 1024, VsockAddr::PORT_ANY] {
                let a = VsockAddr::new(cid, port);
                assert_eq!(a.to_string().parse::<VsockAddr>(), Ok(a));
            }
        }
    }

    #[test]
    fn parse_errors_name_the_bad_part() {
        let cases = [
            ("3:x", r#"vsock address "3:x": port "x" is not a number"#),
            ("", r#"vsock address "": empty"#),
            ("vsock://", r#"vsock address "vsock://": empty"#),
            ("3", r#"vsock address "3": missing ":PORT""#),
            ("3:", r#"vsock address "3:": port "" is not a number"#),
            ("3:-1", r#"vsock address "3:-1": port "-1" is not a number"#),
            (
                "3:4294967296",
                r#"vsock address "3:4294967296": port "4294967296" is not a number"#,
            ),
            (
                "x:1",
                r#"vsock address "x:1": CID "x" is not a number or one of any, hypervisor, local, host, vm(N)"#,
            ),
            (
                "vm(x):1",
                r#"vsock address "vm(x):1": CID "vm(x)" is not a number or one of any, hypervisor, local, host, vm(N)"#,
            ),
            (
                "vm(3:1",
                r#"vsock address "vm(3:1": CID "vm(3" is not a number or one of any, hypervisor, local, host, vm(N)"#,
            ),
            (
                "host(3):1",
                r#"vsock address "host(3):1": CID "host(3)": the name does not match the number"#,
            ),
            (
                "vm(2):1",
                r#"vsock address "vm(2):1": CID "vm(2)": the name does not match the number"#,
            ),
            (
                "vsock://vsock://3:4",
                r#"vsock address "vsock://vsock://3:4": CID "vsock://3" is not a number or one of any, hypervisor, local, host, vm(N)"#,
            ),
            (
                "+3:1",
                r#"vsock address "+3:1": CID "+3" is not a number or one of any, hypervisor, local, host, vm(N)"#,
            ),
        ];
        for (s, want) in cases {
            let err = s.parse::<VsockAddr>().unwrap_err();
            assert_eq!(err.to_string(), want);
            assert_eq!(err.input(), s);
        }
        assert_eq!(
            "3:x".parse::<VsockAddr>().unwrap_err().kind(),
            &AddrParseErrorKind::BadPort("x".into())
        );
    }

    #[test]
    fn flags_show_in_debug_only() {
        let a = VsockAddr::new(5, 80).with_flags(VsockAddr::FLAG_TO_HOST);
        assert_eq!(a.to_string(), "vm(5):80");
        assert_eq!(format!("{a:?}"), "VsockAddr(vm(5):80, flags=0x01)");
        assert_ne!(a, VsockAddr::new(5, 80));
    }
}
