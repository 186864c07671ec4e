//! An SSH server over any endpoint uring-vsock takes (vsock, unix, tcp or hybrid vsock), with
//! russh on the tokio path's `Listener`: the real OpenSSH client talks to it.
//!
//! ```text
//! cargo run --example ssh -- vsock:any:22          # in a guest
//! cargo run --example ssh -- tcp:127.0.0.1:2222
//! ssh -p 2222 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null 127.0.0.1 echo <file
//! ```
//!
//! A demonstration, not a shell: it has one command, `echo`, which sends its stdin back
//! until EOF and exits 0; any other command gets a message on stderr and exit status 127. It
//! accepts every user without authentication (`none`), so serve it only where any peer may
//! echo. The host key is a new Ed25519 key each start (its fingerprint is printed), hence the
//! `-o` options above.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId};
use uring_vsock::tokio::Listener;
use uring_vsock::Endpoint;

/// The exit status of a command this server does not have (a shell's "command not found").
pub const UNKNOWN_COMMAND: u32 = 127;

/// A server configuration with a new Ed25519 host key (from the OS's random source).
///
/// # Errors
///
/// Reading `/dev/urandom`.
pub fn config() -> std::io::Result<server::Config> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(server::Config {
        keys: vec![PrivateKey::from(Ed25519Keypair::from_seed(&seed))],
        // A client that goes quiet does not hold its task forever.
        inactivity_timeout: Some(Duration::from_secs(300)),
        ..Default::default()
    })
}

/// Serves SSH on `listener` until the future is dropped; each connection is its own task.
pub async fn serve(listener: Listener, config: server::Config) {
    let config = Arc::new(config);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and the like: pause rather than spin.
                eprintln!("{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let config = config.clone();
        tokio::spawn(async move {
            let handler = Connection {
                peer: peer.clone(),
                echoing: HashSet::new(),
            };
            let result = match server::run_stream(config, stream, handler).await {
                Ok(session) => session.await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                eprintln!("ssh session with {peer}: {e}");
            }
        });
    }
}

/// One client's session.
struct Connection {
    peer: Endpoint,
    /// The channels running `echo`.
    echoing: HashSet<ChannelId>,
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        eprintln!("{user} from {}", self.peer);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The data comes to `data` below: dropping the channel object keeps russh from
        // queueing a copy for a reader that never comes.
        drop(channel);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        if command == b"echo" {
            self.echoing.insert(channel);
            return Ok(());
        }
        let msg = format!("unknown command {:?}\n", String::from_utf8_lossy(command));
        session.extended_data(channel, 1, msg.into_bytes())?;
        finish(session, channel, UNKNOWN_COMMAND)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.echoing.contains(&channel) {
            session.data(channel, data.to_vec())?;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.echoing.remove(&channel) {
            finish(session, channel, 0)?;
        }
        Ok(())
    }
}

/// Ends a command: its exit status, EOF, close.
fn finish(session: &mut Session, channel: ChannelId, status: u32) -> Result<(), russh::Error> {
    session.exit_status_request(channel, status)?;
    session.eof(channel)?;
    session.close(channel)
}

#[tokio::main]
async fn main() {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: ssh ENDPOINT   (vsock:any:22, tcp:127.0.0.1:2222, unix:/tmp/ssh.sock)");
        std::process::exit(2);
    };
    let result = async {
        let ep: Endpoint = arg.parse()?;
        let config = config()?;
        let fingerprint = config.keys[0].public_key().fingerprint(HashAlg::Sha256);
        let listener = Listener::bind(&ep)?;
        eprintln!(
            "serving SSH on {} (host key {fingerprint})",
            listener.local_addr()?
        );
        tokio::select! {
            () = serve(listener, config) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}
