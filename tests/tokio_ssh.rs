//! SSH over the tokio path's `Listener` (`examples/ssh.rs`, russh), answered by the real
//! OpenSSH client (`.ci/run` installs `openssh-client`; a missing `ssh` fails the test): its
//! `echo` command returns stdin byte for byte, several sessions at once, and an unknown
//! command is an exit status, not a dropped connection. tcp on 127.0.0.1.

#[allow(dead_code)] // its `main` is the example's, not ours
#[path = "../examples/ssh.rs"]
mod example;
mod util;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use uring_vsock::tokio::Listener;
use uring_vsock::Endpoint;
use util::{checksum, pattern};

/// Serves the example on a new tcp listener; returns its port.
fn start() -> u16 {
    let listener = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).expect("bind");
    let Endpoint::Tcp(addr) = listener.local_addr().unwrap() else {
        panic!("not tcp")
    };
    tokio::spawn(example::serve(
        listener,
        example::config().expect("a host key"),
    ));
    addr.port()
}

/// Runs `ssh ... 127.0.0.1 COMMAND` with `stdin` (under the watchdog) and returns its output.
async fn ssh(port: u16, command: &str, stdin: Vec<u8>) -> Output {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-p", &port.to_string()])
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
        // The host key is new each start.
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "ConnectTimeout=30", "uring-vsock@127.0.0.1", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let run = move || {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running ssh (.ci/run installs openssh-client): {e}"));
        let mut input = child.stdin.take().unwrap();
        // A thread feeds stdin while `wait_with_output` drains stdout: no pipe deadlock.
        let feeder = std::thread::spawn(move || input.write_all(&stdin));
        let out = child.wait_with_output().expect("ssh's output");
        feeder.join().unwrap().expect("ssh took its stdin");
        out
    };
    tokio::time::timeout(util::WATCHDOG, tokio::task::spawn_blocking(run))
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", util::WATCHDOG))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_echo_returns_stdin_byte_for_byte() {
    let port = start();
    let sessions: Vec<_> = (0..4u64)
        .map(|i| {
            tokio::spawn(async move {
                let data = pattern(i, 256 * 1024 + i as usize * 777);
                let out = ssh(port, "echo", data.clone()).await;
                assert!(
                    out.status.success(),
                    "session {i}: {:?} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(out.stdout.len(), data.len(), "session {i}");
                assert_eq!(checksum(&out.stdout), checksum(&data), "session {i}");
            })
        })
        .collect();
    for s in sessions {
        s.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_command_is_exit_status_127_and_the_server_goes_on() {
    let port = start();
    let out = ssh(port, "rm -rf /", Vec::new()).await;
    assert_eq!(
        out.status.code(),
        Some(example::UNKNOWN_COMMAND as i32),
        "{out:?}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "unknown command \"rm -rf /\"\n"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    let out = ssh(port, "echo", b"still here".to_vec()).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"still here");
}
