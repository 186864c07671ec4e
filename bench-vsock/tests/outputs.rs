//! Report paths are checked before a run measures, so a bad one costs nothing; every write
//! error names its file; a failed run leaves earlier reports as they were.

mod common;

use common::{fresh_dir, run};

/// A quick pingpong over unix writing into `out`, plus any extra options.
fn pingpong(out: &str, extra: &[&str]) -> (bench_vsock::Result<()>, String, String) {
    let mut args = vec![
        "pingpong",
        "--transport",
        "unix",
        "--backends",
        "blocking",
        "--count",
        "5",
        "--warmup",
        "0",
        "--out",
        out,
    ];
    args.extend(extra);
    run(&args)
}

/// The plan line `measure` prints before its first run: absent, nothing was measured.
fn measured(log: &str) -> bool {
    log.lines()
        .any(|l| l.ends_with(" runs") || l.contains(" runs, about "))
}

#[test]
fn an_unwritable_json_path_fails_before_measuring() {
    let dir = fresh_dir("out-json-parent");
    // A regular file where a folder should be: unwritable even for root.
    let file = dir.join("plain");
    std::fs::write(&file, "x").unwrap();
    let json = file.join("r.json");
    let (r, _, log) = pingpong(dir.to_str().unwrap(), &["--json", json.to_str().unwrap()]);
    let e = r.unwrap_err();
    assert!(
        e.message()
            .starts_with(&format!("creating {}: ", file.display())),
        "{e}"
    );
    assert!(!measured(&log), "measured before failing: {log}");
}

#[test]
fn an_unwritable_results_folder_fails_before_measuring() {
    let dir = fresh_dir("out-dir");
    let file = dir.join("plain");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("results");
    let (r, _, log) = pingpong(out.to_str().unwrap(), &[]);
    let e = r.unwrap_err();
    assert!(
        e.message()
            .starts_with(&format!("creating {}: ", out.join("hgrm").display())),
        "{e}"
    );
    assert!(!measured(&log), "measured before failing: {log}");
}

#[test]
fn a_full_device_is_named_in_the_error() {
    let dir = fresh_dir("out-full");
    let (r, stdout, log) = pingpong(dir.to_str().unwrap(), &["--json", "/dev/full"]);
    let e = r.unwrap_err();
    assert!(e.message().starts_with("writing /dev/full: "), "{e}");
    assert!(measured(&log), "{log}");
    // The measurements were printed before the files were written.
    assert!(stdout.contains("pingpong 64 B"), "{stdout}");
    // The folder's own report was written before the extra JSON failed.
    assert!(dir.join("report.json").exists());
}

#[test]
fn a_failed_run_keeps_earlier_reports_and_leaves_no_empty_one() {
    let dir = fresh_dir("out-failed");
    let old = dir.join("old.json");
    std::fs::write(&old, "{\"earlier\": true}").unwrap();
    let out = dir.join("results");
    // Nobody listens there: the run fails at its first connect.
    let (r, _, _) = run(&[
        "pingpong",
        "--connect",
        &format!("unix:@bench-vsock-nobody-{}", std::process::id()),
        "--backends",
        "blocking",
        "--count",
        "1",
        "--warmup",
        "0",
        "--out",
        out.to_str().unwrap(),
        "--json",
        old.to_str().unwrap(),
    ]);
    let e = r.unwrap_err();
    assert!(e.message().contains("connect"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&old).unwrap(),
        "{\"earlier\": true}"
    );
    assert!(!out.join("report.json").exists());
}
