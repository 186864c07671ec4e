//! `vsock-tool`: the operator's commands over [`uring_vsock`] — `cat` (stdin/stdout or a
//! child's stdio to one stream), `proxy` (any endpoint to any endpoint, on the io_uring
//! engine) and `info` (what this machine has for vsock). `main.rs` only parses the command
//! line and calls [`run`]; everything else lives here so tests can drive it.
//!
//! # Examples
//!
//! ```
//! use clap::Parser;
//! let cli = vsock_tool::Cli::try_parse_from(["vsock-tool", "info"]).unwrap();
//! let mut out = Vec::new();
//! let status = vsock_tool::info::run(&mut out).unwrap();
//! assert_eq!(status.code(), 0);
//! assert!(String::from_utf8(out).unwrap().contains("local CID"));
//! # let _ = cli;
//! ```

pub mod cat;
pub mod cli;
pub mod error;
pub mod exit;
pub mod info;
pub mod proxy;
pub mod signals;

pub use cli::{Cli, Command};
pub use error::ToolError;
pub use exit::Status;

/// Runs the parsed command line: sets up logging, then the command.
///
/// # Errors
///
/// What stopped the command before it could serve (a bad endpoint, a failed connect,
/// listen or engine setup), as one line for stderr.
pub fn run(cli: Cli) -> Result<Status, ToolError> {
    env_logger::Builder::new()
        .filter_level(cli.log_level)
        .format_timestamp_millis()
        .init();
    match cli.command {
        Command::Cat(args) => cat::run(&args.options()?),
        Command::Proxy(args) => proxy::run(&args.options()?, |local| {
            // The one line scripts (and bench-vsock --via) wait for.
            cat::say(&format!("listening on {local}"));
        }),
        Command::Info => info::run(&mut std::io::stdout().lock()),
    }
}
