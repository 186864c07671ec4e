//! Shared helpers: a fresh results folder per test, and running a command line in-process.
#![allow(dead_code)]

use std::path::PathBuf;

use bench_vsock::cli::Cli;
use clap::Parser;

/// The marker `tools/vm-run` puts on the guest's kernel command line.
pub const VM_MARKER: &str = "uring_vsock_vm=1";

/// Refuses to go on outside the test VM: on the host a vsock connect leaves the machine.
pub fn require_vm() {
    let in_vm = std::fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|w| w == VM_MARKER))
        .unwrap_or(false);
    assert!(
        in_vm,
        "refusing vsock traffic: not in the test VM (no `{VM_MARKER}` on the kernel command \
         line). Run tools/vm-test."
    );
}

/// Runs `cmd` to its end with its output captured, killing it and failing the test if it
/// takes longer than `limit`.
pub fn output_within(
    cmd: &mut std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::process::Stdio;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}")),
        Err(_) => {
            // The waiting thread still owns the child: end it by its pid.
            // SAFETY: kill(2) on a pid we spawned and have not reaped; no memory involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {limit:?}; killed");
        }
    }
}

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

/// The committed JSON Schema of reports.
pub fn schema() -> serde_json::Value {
    serde_json::from_str(include_str!("../schema/report.schema.json")).unwrap()
}

/// Every error the schema validator finds in `report`, with where it is.
pub fn validate(report: &serde_json::Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema()).expect("the schema compiles");
    validator
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Runs `report` on the JSON report `json`; returns the RESULTS.md it writes beside it.
pub fn results_md(json: &std::path::Path) -> String {
    let md = json.with_file_name("RESULTS.md");
    let (r, _, stderr) = run(&[
        "report",
        "--json",
        json.to_str().unwrap(),
        "--out",
        md.to_str().unwrap(),
    ]);
    r.unwrap_or_else(|e| panic!("report {}: {e}\n{stderr}", json.display()));
    std::fs::read_to_string(&md).unwrap()
}

/// Reads a JSON report.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A finished run that wrote a report: see [`run_to_report`].
pub struct Ran {
    /// The run's results folder (`--out`).
    pub dir: PathBuf,
    /// The JSON report it wrote (`--json`).
    pub report: serde_json::Value,
    /// What it printed.
    pub stdout: String,
    /// What it logged.
    pub stderr: String,
}

/// Runs the command line `args` with `--out` and `--json` into a fresh folder for `test`,
/// and reads the report; a failed run fails the test, with its stderr.
pub fn run_to_report(test: &str, args: &[&str]) -> Ran {
    let dir = fresh_dir(test);
    let json = dir.join("r.json");
    let mut all = args.to_vec();
    all.extend([
        "--out",
        dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let (r, stdout, stderr) = run(&all);
    r.unwrap_or_else(|e| panic!("{all:?}: {e}\n{stderr}"));
    let report = read_json(&json);
    Ran {
        dir,
        report,
        stdout,
        stderr,
    }
}

/// Runs `args` for `backend` and returns the report's runs.
pub fn runs_of(test: &str, backend: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = args.to_vec();
    all.extend(["--backends", backend, "--warmup", "0"]);
    let Ran {
        dir,
        report,
        stdout,
        ..
    } = run_to_report(&format!("{test}-{backend}"), &all);
    assert!(
        stdout.contains(backend),
        "table names the backend: {stdout}"
    );
    assert!(dir.join("report.json").exists());
    let runs = report["runs"].as_array().unwrap().clone();
    assert!(!runs.is_empty());
    for r in &runs {
        assert_eq!(r["backend"], backend);
        assert!(r["bytes_verified"].as_u64().unwrap() > 0, "{r}");
        assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
        assert!(r["p50_us"].as_f64().unwrap() > 0.0);
        assert!(r["p99_us"].as_f64().unwrap() >= r["p50_us"].as_f64().unwrap());
        assert!(r["msgs_per_s"].as_f64().unwrap() > 0.0);
        // The server's own count of the bytes it checked matches the client's (a reverse
        // stream's server sends, and the client checks).
        let checked = if r["workload"] == "stream-reverse" {
            serde_json::json!(0)
        } else {
            r["bytes_verified"].clone()
        };
        assert_eq!(r["server"]["bytes_verified"], checked, "{r}");
        assert!(r["server"]["connections"].as_u64().unwrap() >= 1, "{r}");
        let hgrm = dir.join(r["hgrm"].as_str().unwrap());
        let text = std::fs::read_to_string(hgrm).unwrap();
        assert!(text.contains("Percentile") && text.contains("#[Max"));
    }
    runs
}

/// Asserts that an open-loop run was paced: a connection's n-th message is not sent before
/// n - 1 intervals (connections / rate) have passed since the run started, so a run of N
/// messages per connection lasts at least (N - 1) intervals. A run that ignored the rate
/// (closed loop) finishes far sooner.
pub fn assert_paced(r: &serde_json::Value) {
    let conns = r["conns"].as_u64().unwrap();
    let rate = r["rate"].as_u64().expect("an open-loop run");
    let per_conn = r["messages"].as_u64().unwrap().div_ceil(conns);
    let interval = conns as f64 / rate as f64;
    let least = (per_conn - 1) as f64 * interval;
    let took = r["duration_s"].as_f64().unwrap();
    assert!(
        took >= least,
        "{per_conn} messages per connection at {rate}/s over {conns} connections take at \
         least {least} s when paced; the run took {took} s: {r}"
    );
}

/// A `bench-vsock serve` child process, killed when dropped if still running.
pub struct Serve {
    /// The child.
    pub child: std::process::Child,
    /// The endpoint it serves.
    pub endpoint: String,
}

impl Serve {
    /// Starts `bench-vsock serve` on a fresh abstract unix name with `backend`, exiting
    /// after `max_conns` connections, and waits (up to 30 s) until it says it listens.
    pub fn start(name: &str, backend: &str, max_conns: u32) -> Serve {
        let endpoint = format!("unix:@bench-vsock-{name}-{}", std::process::id());
        Serve::start_on(endpoint, backend, max_conns)
    }

    /// [`Serve::start`] on `endpoint`.
    pub fn start_on(endpoint: String, backend: &str, max_conns: u32) -> Serve {
        Serve::start_with(endpoint, backend, max_conns, &[])
    }

    /// [`Serve::start_on`] with `extra` options of `serve`.
    pub fn start_with(endpoint: String, backend: &str, max_conns: u32, extra: &[&str]) -> Serve {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bench-vsock"))
            .args(["serve", "--listen", &endpoint, "--backend", backend])
            .args(["--max-conns", &max_conns.to_string()])
            .args(extra)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn bench-vsock serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr).lines();
            let _ = tx.send(lines.next());
            // Keep draining, so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let serve = Serve { child, endpoint };
        let first = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("bench-vsock serve said nothing within 30 s");
        let first = first.expect("serve's stderr").expect("serve's first line");
        assert!(first.starts_with("serving on "), "{first}");
        serve
    }

    /// Waits (up to 30 s) for the server to exit by itself; whether it succeeded.
    pub fn wait(mut self) -> bool {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for serve") {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < give_up,
                "bench-vsock serve did not exit within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
