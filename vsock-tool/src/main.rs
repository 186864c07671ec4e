//! `vsock-tool`: parse, run, print one error line, exit with the command's status.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vsock_tool::Cli::parse();
    match vsock_tool::run(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            // Not eprintln!: a closed stderr must not turn the exit status into a panic's.
            let _ = writeln!(std::io::stderr(), "vsock-tool: {e}");
            ExitCode::from(e.status().code())
        }
    }
}
