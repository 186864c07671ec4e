//! Shared helpers: a fresh results folder per test, and running a command line in-process.
#![allow(dead_code)]

use std::path::PathBuf;

use bench_vsock::cli::Cli;
use clap::Parser;

/// A fresh, empty folder for one test's results.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-vsock-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a bench-vsock command line in this process; returns (result, stdout, stderr).
pub fn run(args: &[&str]) -> (bench_vsock::Result<()>, String, String) {
    let argv: Vec<&str> = std::iter::once("bench-vsock")
        .chain(args.iter().copied())
        .collect();
    let cli = Cli::try_parse_from(&argv).expect("valid command line");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = bench_vsock::app::execute(cli, &argv.join(" "), &mut out, &mut err);
    (
        r,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Reads a JSON report.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
