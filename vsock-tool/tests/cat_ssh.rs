//! `vsock-tool cat` as an SSH `ProxyCommand`: a real OpenSSH client reaches a real `sshd`
//! (started here on 127.0.0.1 as the current user, with keys made for the test) through it,
//! and a binary stream goes there and back intact. Needs `ssh`, `ssh-keygen` and `sshd`
//! (`.ci/run` installs openssh-client and openssh-server).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use support::{TempDir, BIN, WATCHDOG};

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (install openssh-client)");
    assert!(st.success(), "ssh-keygen failed");
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn cat_is_an_ssh_proxy_command() {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "{} missing: install openssh-server",
        sshd.display()
    );
    let dir = TempDir::new();
    let d = &dir.0;
    keygen(&d.join("host"));
    keygen(&d.join("user"));
    std::fs::copy(d.join("user.pub"), d.join("authorized_keys")).unwrap();
    let host_pub = std::fs::read_to_string(d.join("host.pub")).unwrap();
    std::fs::write(d.join("known_hosts"), format!("vsock-tool-test {host_pub}")).unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let user = user.trim();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // sshd run as root wants its privilege-separation directory (the package's unit
        // makes it at boot).
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
         AuthorizedKeysFile {auth}\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n\
         AllowUsers {user}\n",
        host = d.join("host").display(),
        pid = d.join("sshd.pid").display(),
        auth = d.join("authorized_keys").display(),
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let mut server = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sshd");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let (tx, rx) = mpsc::channel();
    let err = server.stderr.take().unwrap();
    let _server = Kill(server);
    thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("[sshd] {line}");
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(WATCHDOG)
            .expect("sshd's 'Server listening' line");
        if line.contains("Server listening") {
            break;
        }
    }

    let data = support::pattern(7, 1 << 20);
    let mut ssh = Command::new("ssh")
        .args(["-F", "/dev/null", "-T", "-o", "BatchMode=yes"])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "HostKeyAlias=vsock-tool-test",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            d.join("known_hosts").display()
        ))
        .arg("-o")
        .arg(format!("ProxyCommand={BIN} cat tcp:127.0.0.1:{port}"))
        .arg("-i")
        .arg(d.join("user"))
        .args(["-l", user, "vsock-tool-test", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh (install openssh-client)");
    let mut stdin = ssh.stdin.take().unwrap();
    let sent = data.clone();
    let w = thread::spawn(move || {
        stdin.write_all(&sent).unwrap();
        // Dropped: EOF, so the remote cat ends.
    });
    let (otx, orx) = mpsc::channel();
    let mut child_out = ssh.stdout.take().unwrap();
    let mut child_err = ssh.stderr.take().unwrap();
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut child_out, &mut out);
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child_err, &mut err);
        let _ = otx.send((out, err));
    });
    let status = support::wait_child(&mut ssh);
    let (out, err) = orx.recv_timeout(WATCHDOG).expect("ssh's output");
    w.join().unwrap();
    assert!(status.success(), "ssh failed: {status}: {err}");
    assert_eq!(out.len(), data.len(), "ssh stderr: {err}");
    assert_eq!(support::checksum(&out), support::checksum(&data));
}
