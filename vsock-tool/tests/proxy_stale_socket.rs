//! `vsock-tool proxy` with a file already at its unix listen path: refused as socat refuses
//! it (`EADDRINUSE`, naming the path), unless `--unlink-stale`, which removes a socket that
//! nothing listens on, and only that.

mod support;

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use support::{Proxy, TempDir, WATCHDOG};
use uring_vsock::blocking::Stream;
use uring_vsock::Endpoint;

/// A socket file nothing listens on, as a killed proxy leaves it.
fn stale_socket(path: &Path) {
    drop(UnixListener::bind(path).unwrap());
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(meta.file_type().is_socket(), "a socket file stays");
}

/// The tool failed setup (status 1) with one line naming `path` and containing `needle`.
fn assert_refused(out: &std::process::Output, path: &Path, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "names the path: {err}"
    );
    assert!(err.contains(needle), "says {needle:?}: {err}");
}

fn proxy_args(listen: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["proxy".to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("unix:{}", listen.display()));
    args.push("tcp:127.0.0.1:1".to_owned());
    args
}

fn run(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::run_tool(&args)
}

#[test]
fn a_stale_socket_file_is_refused_by_default_naming_the_path() {
    let dir = TempDir::new();
    let path = dir.0.join("front");
    stale_socket(&path);
    let out = run(&proxy_args(&path, &[]));
    assert_refused(&out, &path, "Address already in use");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--unlink-stale"), "says what to do: {err}");
    assert!(path.exists(), "the file is left as it was");
}

#[test]
fn unlink_stale_removes_a_socket_nothing_listens_on_and_serves() {
    let dir = TempDir::new();
    let path = dir.0.join("front");
    stale_socket(&path);
    let (target, got) = support::duplex_server(&dir.unix("t"), 1000);
    let proxy = Proxy::start(&Endpoint::Unix(path.clone()), &target, &["--unlink-stale"]);
    support::exchange(&proxy.ep, 11, 5000, 1000, &got);
}

#[test]
fn unlink_stale_refuses_a_socket_something_listens_on() {
    let dir = TempDir::new();
    let path = dir.0.join("front");
    let live = UnixListener::bind(&path).unwrap();
    let out = run(&proxy_args(&path, &["--unlink-stale"]));
    assert_refused(&out, &path, "something listens there");
    // The listener keeps its path: the probe is queued (the tool has exited), and a new
    // client gets in after it. Non-blocking accepts: each connection is queued already.
    live.set_nonblocking(true).unwrap();
    let _probe = live.accept().expect("the probe's connection, queued");
    let ep = Endpoint::Unix(path.clone());
    let _client = Stream::connect_timeout(&ep, WATCHDOG).expect("the live listener's path");
    live.accept().expect("the new client, queued");
}

#[test]
fn unlink_stale_leaves_a_file_that_is_not_a_socket() {
    let dir = TempDir::new();
    let path = dir.0.join("front");
    std::fs::write(&path, b"keep me").unwrap();
    let out = run(&proxy_args(&path, &["--unlink-stale"]));
    assert_refused(&out, &path, "not a socket");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}
