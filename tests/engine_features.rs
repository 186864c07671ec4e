//! What `Engine::features()` reports agrees with what the kernel offers, found out here
//! independently of the engine: rings this test sets up itself through the `io-uring` crate,
//! and the kernel release (`uname`), whose version floors each feature.

mod util;

use io_uring::{opcode, IoUring, Probe};
use uring_vsock::uring::{Engine, TaskRunMode};

/// The best task-run mode this kernel accepts, found by setting up a small ring in each.
fn kernel_task_run() -> TaskRunMode {
    let defer: std::io::Result<IoUring> = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .build(8);
    if defer.is_ok() {
        return TaskRunMode::DeferTaskrun;
    }
    let coop: std::io::Result<IoUring> = IoUring::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(8);
    if coop.is_ok() {
        TaskRunMode::CoopTaskrun
    } else {
        TaskRunMode::Default
    }
}

/// (major, minor) of the running kernel, from `uname`.
fn kernel_version() -> (u32, u32) {
    // SAFETY: uname fills the zeroed struct it is given; all-zero is a valid utsname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    assert_eq!(unsafe { libc::uname(&mut u) }, 0, "uname failed");
    // SAFETY: the kernel NUL-terminates `release`, which lives as long as `u`.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor)
}

#[test]
fn engine_features_match_an_independent_probe_of_the_kernel() {
    util::fds_unchanged(|| {
        let e = Engine::builder().workers(1).build().expect("engine");
        let f = e.features().clone();
        assert_eq!(
            f.task_run,
            kernel_task_run(),
            "the engine's mode differs from the best this kernel sets up: {f}"
        );
        let ring = IoUring::new(8).expect("a plain ring");
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .expect("register_probe");
        assert_eq!(
            f.send_zc,
            probe.is_supported(opcode::SendZc::CODE),
            "send_zc differs from the opcode probe: {f}"
        );
        assert_eq!(
            f.no_drop,
            ring.params().is_feature_nodrop(),
            "no_drop differs from the ring's features: {f}"
        );
        assert_eq!(
            f.registered_ring_fd,
            ring.submitter().register_ring_fd().is_ok(),
            "registered_ring_fd differs from a registration tried here: {f}"
        );
        if !ring.params().is_feature_recvsend_bundle() {
            assert!(
                !f.recv_bundle,
                "bundles claimed without the kernel's flag: {f}"
            );
        }
        drop(ring);
        // The release floors what the kernel must have (so both probes being wrong the same
        // way fails too): DEFER_TASKRUN since 6.1, SEND_ZC since 6.0, ring fds since 5.18,
        // NODROP since 5.5.
        let v = kernel_version();
        if v >= (6, 1) {
            assert_eq!(f.task_run, TaskRunMode::DeferTaskrun, "kernel {v:?}: {f}");
        }
        if v >= (6, 0) {
            assert!(f.send_zc, "kernel {v:?} has SEND_ZC: {f}");
        }
        if v >= (5, 18) {
            assert!(f.registered_ring_fd, "kernel {v:?} registers ring fds: {f}");
        }
        assert!(f.no_drop, "kernel {v:?} has NODROP: {f}");
        // Bundle receives fill several buffers on unix by 6.18 (seen here; a 6.12 guest
        // fills one) and exist only from 6.10.
        if v >= (6, 18) {
            assert!(f.recv_bundle, "kernel {v:?} fills bundle receives: {f}");
        }
        if v < (6, 10) {
            assert!(!f.recv_bundle, "kernel {v:?} has no bundles: {f}");
        }
        let shown = f.to_string();
        assert!(shown.contains(&format!("{:?}", f.task_run)), "{shown}");
        assert!(shown.contains(&format!("send_zc {}", f.send_zc)), "{shown}");
    });
}
