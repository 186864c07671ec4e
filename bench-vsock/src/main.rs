//! `bench-vsock`: parse, run, and on failure say why and exit non-zero.

use clap::Parser;

fn main() {
    let cli = bench_vsock::cli::Cli::parse();
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let result = bench_vsock::app::execute(
        cli,
        &command_line,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    if let Err(e) = result {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}
