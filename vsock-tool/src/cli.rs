//! The command line: clap definitions, and their conversion to each command's options
//! (endpoints parsed here, so a bad one is one line naming the argument).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use uring_vsock::Endpoint;

use crate::cat::CatOptions;
use crate::error::ToolError;
use crate::proxy::ProxyOptions;

/// vsock (and unix, tcp) streams for operators: cat, proxy, info.
///
/// Endpoints: `vsock:CID:PORT`, `unix:/path`, `unix:@abstract`, `tcp:HOST:PORT`,
/// `hybrid:/vmm.sock:PORT`.
#[derive(Debug, Parser)]
#[command(name = "vsock-tool", version)]
pub struct Cli {
    /// What to log on stderr: off, error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: log::LevelFilter,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// stdin to the stream, the stream to stdout (or a child's stdio with --exec); usable
    /// as an SSH ProxyCommand.
    Cat(CatArgs),
    /// Accepts on LISTEN and forwards each connection to TARGET, both ways.
    Proxy(ProxyArgs),
    /// This machine's vsock: local CID, loaded transports, io_uring features. Connects
    /// nothing.
    Info,
}

/// `cat`'s arguments.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// Where to connect (or, with --listen, where to accept one connection).
    pub endpoint: String,
    /// Accept one connection on ENDPOINT instead of connecting to it.
    #[arg(long)]
    pub listen: bool,
    /// Run CMD (through `sh -c`) and connect its stdin and stdout to the stream.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Give up connecting after this long (e.g. 5s, 500ms; not zero).
    #[arg(long, value_parser = parse_timeout, default_value = "10s")]
    pub connect_timeout: Duration,
}

/// `proxy`'s arguments.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where to accept clients.
    pub listen: String,
    /// Where each client's connection goes.
    pub target: String,
    /// Engine worker threads (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Most client connections open at once; more are closed at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,
    /// Give up connecting to TARGET after this long (not zero); the client is reset then.
    #[arg(long, value_parser = parse_timeout, default_value = "10s")]
    pub connect_timeout: Duration,
    /// On SIGTERM or SIGINT, how long open connections may take to finish.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,
    /// The log level of the per-connection lines (opened, closed with byte counts).
    #[arg(long, default_value = "info")]
    pub conn_log_level: log::Level,
    /// A socket file already at a unix LISTEN path is refused (EADDRINUSE); with this it is
    /// removed if nothing listens on it (a connect is refused).
    #[arg(long)]
    pub unlink_stale: bool,
}

impl CatArgs {
    /// The options `cat` runs with.
    ///
    /// # Errors
    ///
    /// A bad endpoint, naming it.
    pub fn options(&self) -> Result<CatOptions, ToolError> {
        Ok(CatOptions {
            endpoint: endpoint(&self.endpoint, "ENDPOINT")?,
            listen: self.listen,
            exec: self.exec.clone(),
            connect_timeout: self.connect_timeout,
        })
    }
}

impl ProxyArgs {
    /// The options `proxy` runs with.
    ///
    /// # Errors
    ///
    /// A bad endpoint, naming it.
    pub fn options(&self) -> Result<ProxyOptions, ToolError> {
        Ok(ProxyOptions {
            listen: endpoint(&self.listen, "LISTEN")?,
            // Resolved once, here: the engine dials from its workers, which never block on
            // DNS (a tcp host name reaching a worker is refused as unresolved).
            target: endpoint(&self.target, "TARGET")?.resolve().map_err(|e| {
                ToolError::setup(format!(
                    "TARGET '{}': resolving the host name: {e}",
                    self.target
                ))
            })?,
            workers: self.workers.map(usize::from),
            max_conns: self.max_conns as usize,
            connect_timeout: self.connect_timeout,
            drain_timeout: self.drain_timeout,
            conn_log_level: self.conn_log_level,
            unlink_stale: self.unlink_stale,
        })
    }
}

fn endpoint(s: &str, what: &str) -> Result<Endpoint, ToolError> {
    s.parse()
        .map_err(|e| ToolError::usage(format!("bad endpoint '{s}' for {what}: {e}")))
}

/// A connect timeout: as [`parse_duration`], but not zero (a connect with no time at all
/// would fail every connection).
///
/// # Errors
///
/// As [`parse_duration`], and zero.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: a connect timeout must be above zero")),
        d => Ok(d),
    }
}

/// Parses `1.5s`, `500ms`, `2m`, `1h` or plain seconds (`10`).
///
/// # Errors
///
/// A message saying what is wrong (clap adds the argument's name).
///
/// ```
/// use std::time::Duration;
/// use vsock_tool::cli::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
/// assert!(parse_duration("-1s").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" => 1e-6,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("'{s}': unknown unit (use ms, s, m or h)")),
    };
    let n: f64 = num.parse().map_err(|_| {
        format!(
            "'{s}': not a number of {}",
            if unit.is_empty() { "s" } else { unit }
        )
    })?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("'{s}': out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "1x", "1e999s", "99999999999999999999999h", "--1"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_line_parses_and_bad_endpoints_name_their_argument() {
        let cli = Cli::try_parse_from([
            "vsock-tool",
            "proxy",
            "--max-conns",
            "5",
            "tcp:127.0.0.1:0",
            "vsock:3:22",
        ])
        .unwrap();
        let Command::Proxy(p) = cli.command else {
            panic!("proxy")
        };
        let o = p.options().unwrap();
        assert_eq!(o.max_conns, 5);
        assert_eq!(o.target, "vsock:3:22".parse().unwrap());
        let cli = Cli::try_parse_from(["vsock-tool", "proxy", "tcp:127.0.0.1:0", "bogus"]).unwrap();
        let Command::Proxy(p) = cli.command else {
            panic!("proxy")
        };
        let err = p.options().unwrap_err().to_string();
        assert!(err.starts_with("bad endpoint 'bogus' for TARGET"), "{err}");
        assert!(
            Cli::try_parse_from(["vsock-tool", "proxy", "--max-conns", "0", "a", "b"]).is_err()
        );
        assert!(Cli::try_parse_from(["vsock-tool", "proxy", "--workers", "0", "a", "b"]).is_err());
    }
}
