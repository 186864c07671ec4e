//! `vsock-tool`: parse, run, print one error line, exit with the command's status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = vsock_tool::Cli::parse();
    match vsock_tool::run(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            eprintln!("vsock-tool: {e}");
            ExitCode::from(e.status().code())
        }
    }
}
