//! The host's end of the virtio testbed's control channel: the guest agent's serial port,
//! which QEMU serves as a unix socket (`ctl.sock`). One connection per test process (QEMU
//! takes one client at a time); requests carry ids, so tests may wait on several at once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::virtio::Testbed;

/// How long the guest may take to boot and answer its first `PING`.
const BOOT: Duration = Duration::from_secs(300);

pub struct Control {
    writer: Mutex<UnixStream>,
    /// Per id sent: its reply once it has come. A line for an id not sent is dropped, so a
    /// line garbled on the serial port (once: `32 OK pong`, a boot-time `PING` reply that
    /// lost bytes) cannot answer a later
    /// command; the first reply for an id wins.
    replies: Mutex<HashMap<u64, Option<String>>>,
    arrived: Condvar,
    next: AtomicU64,
}

/// The process's control channel, connected and answering (first use waits for the guest).
pub fn control() -> &'static Control {
    static CONTROL: OnceLock<&'static Control> = OnceLock::new();
    CONTROL.get_or_init(|| {
        let path = Testbed::from_env().control_sock();
        let s = UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("connect the control socket {}: {e}", path.display()));
        let c: &'static Control = Box::leak(Box::new(Control {
            writer: Mutex::new(s.try_clone().expect("clone the control socket")),
            replies: Mutex::new(HashMap::new()),
            arrived: Condvar::new(),
            next: AtomicU64::new(1),
        }));
        thread::spawn(move || c.read_replies(s));
        // The guest drops what arrives before its agent opens the port: ask until it answers.
        let start = Instant::now();
        loop {
            let id = c.send("PING");
            if let Some(r) = c.wait_for(id, Duration::from_secs(2)) {
                assert!(r.starts_with("OK pong"), "PING answered {r:?}");
                break;
            }
            assert!(
                start.elapsed() < BOOT,
                "the guest agent did not answer in {BOOT:?}"
            );
        }
        c
    })
}

impl Control {
    fn read_replies(&self, s: UnixStream) {
        for line in BufReader::new(s).split(b'\n') {
            let Ok(line) = line else { return };
            let text = String::from_utf8_lossy(&line).trim().to_string();
            let Some((id, rest)) = text.split_once(' ') else {
                continue;
            };
            let Ok(id) = id.parse() else { continue };
            // Only replies: anything else on the port (a stray echo at boot) is noise.
            if !(rest.starts_with("OK") || rest.starts_with("ERR")) {
                continue;
            }
            if let Some(slot @ None) = self.replies.lock().unwrap().get_mut(&id) {
                *slot = Some(rest.to_string());
                self.arrived.notify_all();
            }
        }
    }

    /// Sends a command; returns its id for [`Control::wait`].
    pub fn send(&self, cmd: &str) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.replies.lock().unwrap().insert(id, None);
        let mut w = self.writer.lock().unwrap();
        w.write_all(format!("{id} {cmd}\n").as_bytes())
            .unwrap_or_else(|e| panic!("send `{cmd}` to the guest agent: {e}"));
        id
    }

    fn wait_for(&self, id: u64, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut replies = self.replies.lock().unwrap();
        loop {
            if let Some(r) = replies.get_mut(&id).and_then(Option::take) {
                replies.remove(&id);
                return Some(r);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            replies = self.arrived.wait_timeout(replies, left).unwrap().0;
        }
    }

    /// The reply to command `id`, failing the test after `timeout`.
    pub fn wait(&self, id: u64, timeout: Duration) -> String {
        self.wait_for(id, timeout)
            .unwrap_or_else(|| panic!("the guest agent did not answer command {id} in {timeout:?}"))
    }

    /// Sends `cmd` and returns its reply (within `timeout`).
    pub fn request(&self, cmd: &str, timeout: Duration) -> String {
        let id = self.send(cmd);
        self.wait(id, timeout)
    }

    /// As [`Control::request`], for a command that must succeed: the reply after `OK `.
    pub fn ok(&self, cmd: &str) -> String {
        let r = self.request(cmd, Duration::from_secs(60));
        r.strip_prefix("OK ")
            .unwrap_or_else(|| panic!("`{cmd}` failed in the guest: {r}"))
            .to_string()
    }
}
