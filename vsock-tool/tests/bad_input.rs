//! Bad input gets one clear line on stderr and a non-zero exit, never a panic.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use support::{TempDir, BIN};

fn run(args: &[&str]) -> Output {
    run_as(args, None)
}

/// Runs the tool, as user `uid` when given (needs root).
fn run_as(args: &[&str], uid: Option<u32>) -> Output {
    let mut cmd = Command::new(BIN);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_child(&mut child);
    child.wait_with_output().unwrap()
}

/// One line, starting with `vsock-tool: ` and containing `needle`; exit status `code`.
fn assert_one_line(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("vsock-tool: ") && err.contains(needle),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unknown_endpoints_are_usage_errors() {
    let out = run(&["proxy", "tcp:127.0.0.1:0", "nosuch:thing"]);
    assert_one_line(&out, 2, "bad endpoint 'nosuch:thing' for TARGET");
    let out = run(&["cat", "vsock:x:1"]);
    assert_one_line(&out, 2, "for ENDPOINT");
}

#[test]
fn nothing_listening_fails_the_connect() {
    let dir = TempDir::new();
    let dead = dir.unix("nobody").to_string();
    let out = run(&["cat", &dead]);
    assert_one_line(&out, 1, &format!("connect {dead}"));
}

#[test]
fn permission_denied_on_a_unix_path() {
    // root passes every permission check: the tool then runs as nobody.
    let uid = is_root().then_some(65534);
    let dir = TempDir::new();
    let locked = dir.0.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let ep = format!("unix:{}", locked.join("x.sock").display());
    let out = run_as(&["proxy", &ep, "tcp:127.0.0.1:1"], uid);
    assert_one_line(&out, 1, "Permission denied");
    let out = run_as(&["cat", "--listen", &ep], uid);
    assert_one_line(&out, 1, "Permission denied");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn out_of_range_options_are_refused_by_name() {
    let out = run(&[
        "proxy",
        "--max-conns",
        "0",
        "tcp:127.0.0.1:0",
        "tcp:127.0.0.1:1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--max-conns"), "{err}");
    let out = run(&[
        "proxy",
        "--drain-timeout",
        "1e99h",
        "tcp:127.0.0.1:0",
        "tcp:127.0.0.1:1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--drain-timeout"), "{err}");
}

#[test]
fn info_reports_without_connecting() {
    let out = run(&["info"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("local CID:"), "{text}");
    assert!(text.contains("transport vsock_loopback"), "{text}");
    assert!(text.contains("io_uring:"), "{text}");
}

/// A zero connect timeout would fail every connection: refused as a usage error.
#[test]
fn a_zero_connect_timeout_is_refused() {
    for args in [
        &[
            "proxy",
            "--connect-timeout",
            "0",
            "tcp:127.0.0.1:0",
            "tcp:127.0.0.1:1",
        ][..],
        &["cat", "--connect-timeout", "0ms", "tcp:127.0.0.1:1"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vsock-tool"))
            .args(args)
            .output()
            .expect("run vsock-tool");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("above zero"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
