//! CPU time this process has used, for CPU cost per message.

use std::time::Duration;

/// User plus system CPU time of the whole process so far (`getrusage(RUSAGE_SELF)`): both
/// ends of a local run, every thread.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we own; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// User plus system CPU time of the calling thread alone (`getrusage(RUSAGE_THREAD)`): what
/// one engine worker has used, read on that worker.
pub fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we own; RUSAGE_THREAD is valid on Linux.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::thread_cpu;

    /// A thread started after the first reading burns CPU until its own time is above
    /// zero; the process's time must then have grown by at least that thread's time, which
    /// holds only if every thread's time counts. Bounded by wall time, so it cannot hang.
    #[test]
    fn cpu_time_counts_what_every_thread_burns() {
        let before = super::process_cpu();
        let burner = std::thread::spawn(|| {
            let give_up = Instant::now() + Duration::from_secs(30);
            let mut x = 0u64;
            while thread_cpu().is_zero() {
                assert!(
                    Instant::now() < give_up,
                    "thread CPU time stayed zero for 30 s"
                );
                for i in 0..100_000u64 {
                    x = x.wrapping_add(std::hint::black_box(i).wrapping_mul(i));
                }
                std::hint::black_box(x);
            }
            thread_cpu()
        });
        let burnt = burner.join().expect("burner thread");
        let after = super::process_cpu();
        assert!(after > before, "{after:?} <= {before:?}");
        // Each reading truncates its user and system times to whole microseconds.
        let resolution = Duration::from_micros(4);
        assert!(
            after - before + resolution >= burnt,
            "the process gained {:?}, less than the {burnt:?} one of its threads burnt",
            after - before
        );
    }
}
