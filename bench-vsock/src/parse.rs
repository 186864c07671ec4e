//! Value parsers for the command line: sizes, durations, backend lists, endpoints. Each
//! error says what was wrong and what is accepted.

use std::time::Duration;

use uring_vsock::Endpoint;

use crate::backend::BackendKind;
use crate::limits::{MAX_CONNS, MAX_REPEAT, MAX_WORKERS};
use crate::proxy::ProxyKind;
use crate::sockets::{MAX_VSOCK_BUFFER, MIN_VSOCK_BUFFER};
use crate::wire::MAX_MESSAGE;

/// Parses a byte size: a number with an optional `k`, `m` or `g` suffix (powers of 1024,
/// any case, optionally followed by `b` or `ib`): `64`, `4k`, `64KiB`, `1m`. Between 1 byte
/// and 64 MiB (the largest message the protocol carries).
pub fn size(s: &str) -> Result<usize, String> {
    let n = bytes(s, 1, MAX_MESSAGE as u64).map_err(|e| {
        e.unwrap_or_else(|| format!("size {s:?} out of range: must be 1 byte to 64m"))
    })?;
    // At most MAX_MESSAGE, so it fits.
    Ok(n as usize)
}

/// Parses `--vsock-buffer-size`: a byte size as [`size`] takes it, from
/// [`MIN_VSOCK_BUFFER`] (128 bytes) to [`MAX_VSOCK_BUFFER`] (1 GiB).
pub fn vsock_buffer(s: &str) -> Result<u64, String> {
    bytes(s, MIN_VSOCK_BUFFER, MAX_VSOCK_BUFFER).map_err(|e| {
        e.unwrap_or_else(|| {
            format!(
                "vsock buffer size {s:?} out of range: must be 128 bytes (the kernel's minimum) \
                 to 1g"
            )
        })
    })
}

/// A byte size with a suffix, within `min..=max`: `Err(Some(why))` when it does not parse,
/// `Err(None)` when it is out of range (the caller says the range).
fn bytes(s: &str, min: u64, max: u64) -> Result<u64, Option<String>> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (digits, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = digits.parse().map_err(|_| {
        Some(format!(
            "bad size {s:?}: expected a number with an optional k, m or g suffix, like 64, 4k, 1m"
        ))
    })?;
    n.checked_mul(mult)
        .filter(|b| (min..=max).contains(b))
        .ok_or(None)
}

/// Parses a comma-separated list of sizes: `64,4k,64k,1m`.
pub fn sizes(s: &str) -> Result<Vec<usize>, String> {
    let list: Vec<usize> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(size)
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("empty size list: expected e.g. 64,4k,64k".into());
    }
    Ok(list)
}

/// Parses `http --bodies`: a list of sizes as [`sizes`] takes them, each at most 16 MiB
/// (the service's largest body).
pub fn bodies(s: &str) -> Result<Vec<usize>, String> {
    let list = sizes(s)?;
    if let Some(big) = list.iter().find(|&&n| n > crate::http::service::MAX_BODY) {
        return Err(format!(
            "body size {} is above the limit of 16m (the largest body the service makes)",
            crate::workload::human_size(*big as u64)
        ));
    }
    Ok(list)
}

/// Parses a comma-separated list of connection counts, each as [`conns`] takes it, without
/// repeats: `1,256`.
pub fn conns_list(s: &str) -> Result<Vec<u64>, String> {
    let mut list = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n = conns(p)?;
        if list.contains(&n) {
            return Err(format!("connection count {n} given twice"));
        }
        list.push(n);
    }
    if list.is_empty() {
        return Err("empty connection list: expected e.g. 1,256".into());
    }
    Ok(list)
}

/// Parses a duration: a number with `ms`, `s` or `m`, or a bare number of seconds:
/// `500ms`, `2s`, `1.5`, `1m`. Above zero and at most an hour.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 500ms, 2s, 1.5s or 1m"))?;
    let secs = v * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(format!(
            "duration {s:?} out of range: must be above 0 and at most 1 hour"
        ));
    }
    // At least a millisecond: below that a run is one message, reported as if measured.
    let d = Duration::from_secs_f64(secs);
    if d < Duration::from_millis(1) {
        return Err(format!(
            "duration {s:?} is shorter than 1ms: a run that short measures nothing"
        ));
    }
    Ok(d)
}

/// Parses a warmup: like [`duration`], but `0` turns warmup off.
pub fn warmup(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches(['m', 's']).trim() == "0" {
        return Ok(Duration::ZERO);
    }
    duration(s)
}

/// Parses a comma-separated list of backends, without repeats: `uring,epoll,tokio`.
pub fn backends(s: &str) -> Result<Vec<BackendKind>, String> {
    let mut list = Vec::new();
    for name in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let kind: BackendKind = name.parse().map_err(|e: crate::Error| e.to_string())?;
        if list.contains(&kind) {
            return Err(format!("backend {name:?} given twice"));
        }
        list.push(kind);
    }
    if list.is_empty() {
        return Err("empty backend list: expected e.g. blocking,tokio".into());
    }
    Ok(list)
}

/// Parses a comma-separated list of proxies, without repeats: `ours,socat`.
pub fn proxies(s: &str) -> Result<Vec<ProxyKind>, String> {
    let mut list = Vec::new();
    for name in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let kind: ProxyKind = name.parse().map_err(|e: crate::Error| e.to_string())?;
        if list.contains(&kind) {
            return Err(format!("proxy {name:?} given twice"));
        }
        list.push(kind);
    }
    if list.is_empty() {
        return Err("empty proxy list: expected ours, socat or ours,socat".into());
    }
    Ok(list)
}

/// Parses an endpoint: `vsock:CID:PORT`, `unix:/path`, `unix:@name`, `tcp:HOST:PORT`,
/// `hybrid:UDS_PATH:PORT` (a guest port behind a Firecracker / Cloud Hypervisor /
/// vhost-device-vsock socket).
///
/// A tcp host name is resolved here, once, so every backend and every repeat dials the same
/// address (and a bad name fails before anything is measured).
pub fn endpoint(s: &str) -> Result<Endpoint, String> {
    let ep: Endpoint = s
        .parse()
        .map_err(|e: uring_vsock::AddrParseError| e.to_string())?;
    ep.resolve()
        .map_err(|e| format!("endpoint {s:?}: resolving the host name: {e}"))
}

/// Parses a positive count (messages, rates).
pub fn positive(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err(format!("{s:?} must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("bad number {s:?}: expected a whole number >= 1")),
    }
}

/// A positive count of at most `max` `what` (clap names the flag in front of the error).
fn bounded(s: &str, max: u64, what: &str) -> Result<u64, String> {
    let n = positive(s)?;
    if n > max {
        return Err(format!("{n} is above the limit of {max} {what}"));
    }
    Ok(n)
}

/// Parses `--conns`: 1 to [`MAX_CONNS`].
pub fn conns(s: &str) -> Result<u64, String> {
    bounded(s, MAX_CONNS, "connections")
}

/// Parses `--workers`: 1 to [`MAX_WORKERS`].
pub fn workers(s: &str) -> Result<u64, String> {
    bounded(s, MAX_WORKERS, "workers")
}

/// Parses `--repeat`: 1 to [`MAX_REPEAT`].
pub fn repeat(s: &str) -> Result<u64, String> {
    bounded(s, MAX_REPEAT, "repeats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(size("64"), Ok(64));
        assert_eq!(size("4k"), Ok(4096));
        assert_eq!(size("4K"), Ok(4096));
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("64kb"), Ok(65536));
        assert_eq!(size("1m"), Ok(1 << 20));
        assert_eq!(size("64m"), Ok(64 << 20));
        assert_eq!(sizes("64,4k, 64k,1m"), Ok(vec![64, 4096, 65536, 1 << 20]));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert!(size("0").unwrap_err().contains("out of range"));
        assert!(size("65m").unwrap_err().contains("out of range"));
        assert!(size("1g").unwrap_err().contains("out of range"));
        assert!(size("99999999999999999999k")
            .unwrap_err()
            .contains("bad size"));
        assert!(size("4x").unwrap_err().contains("bad size"));
        assert!(size("k").unwrap_err().contains("bad size"));
        assert!(size("-1").unwrap_err().contains("bad size"));
        assert!(sizes(",").unwrap_err().contains("empty"));
        assert!(sizes("64,abc").unwrap_err().contains("\"abc\""));
    }

    #[test]
    fn vsock_buffer_sizes_are_bounded_by_what_the_kernel_takes() {
        assert_eq!(vsock_buffer("1m"), Ok(1 << 20));
        assert_eq!(vsock_buffer("128"), Ok(128));
        assert_eq!(vsock_buffer("1g"), Ok(1 << 30));
        assert_eq!(vsock_buffer("256KiB"), Ok(256 << 10));
        for bad in ["0", "127", "1025m", "2g", "18446744073709551615k"] {
            let e = vsock_buffer(bad).unwrap_err();
            assert!(
                e.contains("out of range") && e.contains("128 bytes"),
                "{bad}: {e}"
            );
        }
        assert!(vsock_buffer("lots").unwrap_err().contains("bad size"));
        assert!(vsock_buffer("-1").unwrap_err().contains("bad size"));
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert!(duration("0s").unwrap_err().contains("out of range"));
        assert!(duration("2h").unwrap_err().contains("bad duration"));
        assert!(duration("-1s").unwrap_err().contains("out of range"));
        assert!(duration("61m").unwrap_err().contains("out of range"));
        assert!(duration("1e-300").unwrap_err().contains("shorter than 1ms"));
        assert!(duration("0.0000001ms")
            .unwrap_err()
            .contains("shorter than 1ms"));
        assert_eq!(duration("1ms"), Ok(Duration::from_millis(1)));
        assert_eq!(warmup("0"), Ok(Duration::ZERO));
        assert_eq!(warmup("0s"), Ok(Duration::ZERO));
        assert_eq!(warmup("100ms"), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn backend_lists_parse_and_refuse_repeats() {
        assert_eq!(
            backends("blocking, tokio"),
            Ok(vec![BackendKind::Blocking, BackendKind::Tokio])
        );
        assert_eq!(
            backends("uring,uring-spin,epoll"),
            Ok(vec![
                BackendKind::Uring,
                BackendKind::UringSpin,
                BackendKind::Epoll
            ])
        );
        assert!(backends("tokio,tokio").unwrap_err().contains("twice"));
        assert!(backends("nope")
            .unwrap_err()
            .contains("unknown backend \"nope\""));
        assert!(backends("").unwrap_err().contains("empty"));
    }

    #[test]
    fn endpoints_and_counts() {
        assert_eq!(
            endpoint("unix:@x"),
            Ok(Endpoint::UnixAbstract(b"x".to_vec()))
        );
        assert!(endpoint("udp:1:2").unwrap_err().contains("unknown scheme"));
        assert_eq!(
            endpoint("hybrid:/run/vm0.sock:5000"),
            Ok(Endpoint::Hybrid(uring_vsock::hybrid::HybridAddr::new(
                "/run/vm0.sock",
                5000
            )))
        );
        assert_eq!(positive("256"), Ok(256));
        assert!(positive("0").unwrap_err().contains("at least 1"));
        assert!(positive("x").unwrap_err().contains("bad number"));
    }

    #[test]
    fn counts_that_size_a_run_are_bounded() {
        assert_eq!(conns("4096"), Ok(4096));
        assert_eq!(
            conns("200000").unwrap_err(),
            "200000 is above the limit of 4096 connections"
        );
        assert_eq!(workers("256"), Ok(256));
        assert!(workers("100000")
            .unwrap_err()
            .contains("limit of 256 workers"));
        assert!(repeat("99999999999999999999")
            .unwrap_err()
            .contains("bad number"));
        assert!(repeat("1001")
            .unwrap_err()
            .contains("limit of 1000 repeats"));
        assert!(conns("0").unwrap_err().contains("at least 1"));
        assert_eq!(conns_list("1, 256"), Ok(vec![1, 256]));
        assert!(conns_list("1,1").unwrap_err().contains("given twice"));
        assert!(conns_list("1,5000").unwrap_err().contains("limit of 4096"));
        assert!(conns_list(",").unwrap_err().contains("empty"));
        assert_eq!(bodies("64,64k,16m"), Ok(vec![64, 65536, 16 << 20]));
        assert!(bodies("17m").unwrap_err().contains("limit of 16m"));
        assert!(bodies("0").unwrap_err().contains("out of range"));
    }
}
