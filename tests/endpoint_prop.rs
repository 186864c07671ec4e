//! Property tests of address and endpoint parsing: every valid endpoint prints and parses
//! back to itself, whatever parses prints to a string that parses to the same endpoint, and
//! no string at all makes a parser panic. Parsing never does I/O (a tcp host name stays a
//! name), so these run with no network.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use proptest::prelude::*;
use uring_vsock::hybrid::HybridAddr;
use uring_vsock::{Endpoint, VsockAddr};

/// A unix path `Display` prints as itself: no NUL (refused), not starting with `@` (that
/// spelling means the abstract namespace), short enough for `sun_path`.
fn unix_path() -> impl Strategy<Value = PathBuf> {
    "[A-Za-z0-9_./:-][A-Za-z0-9_./:@ -]{0,100}".prop_map(PathBuf::from)
}

/// A DNS name: labels of letters, digits, `_` and inner `-`, not all digits.
fn host_name() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z_][a-z0-9_-]{0,20}[a-z0-9]", 1..4).prop_map(|l| l.join("."))
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(c, p)| Endpoint::Vsock(VsockAddr::new(c, p))),
        unix_path().prop_map(Endpoint::Unix),
        "[ -~]{1,100}".prop_map(|n| Endpoint::UnixAbstract(n.into_bytes())),
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| Endpoint::Tcp(SocketAddr::from((Ipv4Addr::from(ip), p)))),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| Endpoint::Tcp(SocketAddr::from((Ipv6Addr::from(ip), p)))),
        (host_name(), any::<u16>()).prop_map(|(h, p)| Endpoint::TcpHost(h, p)),
        (unix_path(), any::<u32>())
            .prop_map(|(path, p)| Endpoint::Hybrid(HybridAddr::new(path, p))),
    ]
}

/// Strings near the grammar (a scheme, separators, digits, signs, brackets, NULs) and any
/// string at all.
fn near_endpoint_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "(vsock|unix|tcp|hybrid|udp|)(:|://|:@|::)?[0-9a-z:@/\\[\\]().+ %\\-\u{0}]{0,40}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn endpoint_display_parses_back_to_the_same_endpoint(ep in endpoint()) {
        let shown = ep.to_string();
        prop_assert_eq!(shown.parse::<Endpoint>(), Ok(ep), "{}", shown);
    }

    #[test]
    fn vsock_addr_display_parses_back(cid: u32, port: u32) {
        let a = VsockAddr::new(cid, port);
        prop_assert_eq!(a.to_string().parse::<VsockAddr>(), Ok(a));
    }

    #[test]
    fn whatever_parses_prints_back_to_itself(s in near_endpoint_string()) {
        // Never a panic; an accepted string is a fixed point of print-then-parse.
        if let Ok(ep) = s.parse::<Endpoint>() {
            let shown = ep.to_string();
            prop_assert_eq!(shown.parse::<Endpoint>(), Ok(ep.clone()), "{:?} printed as {:?}", s, shown);
            // A path the kernel would cut at a NUL is never accepted.
            prop_assert!(
                !matches!(&ep, Endpoint::Unix(p) if p.as_os_str().as_encoded_bytes().contains(&0)),
                "{:?} accepted with a NUL", s
            );
        }
        let _ = s.parse::<VsockAddr>();
    }

    #[test]
    fn a_nul_anywhere_in_a_path_is_refused(
        path in "[a-z/]{0,20}",
        tail in "[a-z/]{0,20}",
        port in 0u32..10,
    ) {
        let with_nul = format!("{path}\u{0}{tail}");
        let unix = format!("unix:{with_nul}");
        prop_assert!(unix.parse::<Endpoint>().is_err(), "{:?}", unix);
        let hybrid = format!("hybrid:{with_nul}:{port}");
        prop_assert!(hybrid.parse::<Endpoint>().is_err(), "{:?}", hybrid);
    }

    #[test]
    fn tcp_ports_are_bare_digits(ip: [u8; 4], port: u16, sign in "[+ -]") {
        let ip = Ipv4Addr::from(ip);
        let good = format!("tcp:{ip}:{port}");
        prop_assert_eq!(
            good.parse::<Endpoint>(),
            Ok(Endpoint::Tcp(SocketAddr::from((ip, port))))
        );
        let signed = format!("tcp:{ip}:{sign}{port}");
        prop_assert!(signed.parse::<Endpoint>().is_err(), "{:?}", signed);
    }
}
