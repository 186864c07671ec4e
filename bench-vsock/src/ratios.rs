//! Backend-vs-backend ratios: the library's paths against each other and against what
//! users pick instead, per configuration, paired by repeat.

use crate::backend::BackendKind;
use crate::results::{Ratio, RunResult};
use crate::summary::Spread;

/// Which backends are measured, and against which, given those present: the uring
/// backends against every other; without them, the library's best path present against
/// the rest; and the library's tokio path against tokio's own sockets (tokio-vsock on
/// vsock), the comparison issue 8 asks for; and `uring` against its A/B variants.
fn pairs(present: &[BackendKind]) -> Vec<(BackendKind, BackendKind)> {
    use BackendKind::*;
    let mut subjects: Vec<BackendKind> = [Uring, UringSpin]
        .into_iter()
        .filter(|k| present.contains(k))
        .collect();
    if subjects.is_empty() {
        subjects.extend([Epoll, Blocking].into_iter().find(|k| present.contains(k)));
    }
    let mut out = Vec::new();
    for &s in &subjects {
        for b in [Blocking, Epoll, Tokio, TokioOurs] {
            if b != s && present.contains(&b) && !subjects.contains(&b) {
                out.push((s, b));
            }
        }
    }
    if present.contains(&TokioOurs) && present.contains(&Tokio) {
        out.push((TokioOurs, Tokio));
    }
    for variant in [UringNoHandoff, UringNoFiles] {
        if present.contains(&Uring) && present.contains(&variant) {
            out.push((Uring, variant));
        }
    }
    out
}

/// The ratios of `runs`: for each transport and configuration and each pair of backends,
/// msgs/s, p99 and CPU per message of subject / baseline per repeat, as median and range.
pub fn ratios(runs: &[RunResult]) -> Vec<Ratio> {
    let mut present: Vec<BackendKind> =
        runs.iter().filter_map(|r| r.backend.parse().ok()).collect();
    present.sort();
    present.dedup();
    let mut configs: Vec<(String, String)> = Vec::new();
    for r in runs {
        let key = (r.transport.clone(), r.label());
        if !configs.contains(&key) {
            configs.push(key);
        }
    }
    let mut out = Vec::new();
    for (transport, config) in &configs {
        let of = |b: BackendKind| -> Vec<&RunResult> {
            runs.iter()
                .filter(|r| {
                    &r.transport == transport && &r.label() == config && r.backend == b.name()
                })
                .collect()
        };
        for (subject, baseline) in pairs(&present) {
            let (s, b) = (of(subject), of(baseline));
            let paired: Vec<(&RunResult, &RunResult)> = s
                .iter()
                .filter_map(|x| b.iter().find(|y| y.repeat == x.repeat).map(|y| (*x, *y)))
                .collect();
            if paired.is_empty() {
                continue;
            }
            for (metric, f) in [
                (
                    "msgs_per_s",
                    (|r: &RunResult| r.msgs_per_s) as fn(&RunResult) -> f64,
                ),
                ("p99_us", |r: &RunResult| r.p99_us),
                ("cpu_us_per_msg", |r: &RunResult| r.cpu_us_per_msg),
            ] {
                let spread = Spread::of(
                    paired
                        .iter()
                        .filter(|(_, y)| f(y) > 0.0)
                        .map(|(x, y)| f(x) / f(y)),
                );
                out.push(Ratio {
                    transport: transport.clone(),
                    config: config.clone(),
                    subject: subject.name().to_owned(),
                    baseline: baseline.name().to_owned(),
                    metric: metric.to_owned(),
                    median: spread.median,
                    min: spread.min,
                    max: spread.max,
                    repeats: paired.len(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use BackendKind::*;

    #[test]
    fn uring_is_measured_against_every_other_path() {
        let all = [Uring, UringSpin, Epoll, Blocking, Tokio, TokioOurs];
        let p = pairs(&all);
        assert!(p.contains(&(Uring, TokioOurs)));
        assert!(
            p.contains(&(TokioOurs, Tokio)),
            "ours vs tokio-vsock: {p:?}"
        );
        assert_eq!(pairs(&[Tokio, TokioOurs]), vec![(TokioOurs, Tokio)]);
        assert!(p.contains(&(Uring, Blocking)));
        assert!(p.contains(&(Uring, Epoll)));
        assert!(p.contains(&(Uring, Tokio)));
        assert!(p.contains(&(UringSpin, Tokio)));
        assert!(!p.contains(&(Uring, UringSpin)));
        assert_eq!(pairs(&[Blocking, Tokio]), vec![(Blocking, Tokio)]);
        assert_eq!(
            pairs(&[Epoll, Blocking, Tokio]),
            vec![(Epoll, Blocking), (Epoll, Tokio)]
        );
    }

    #[test]
    fn uring_is_measured_against_its_ab_variants_only() {
        let p = pairs(&[Uring, UringNoHandoff, UringNoFiles]);
        assert_eq!(p, vec![(Uring, UringNoHandoff), (Uring, UringNoFiles)]);
        let p = pairs(&[Uring, Epoll, UringNoFiles]);
        assert_eq!(p, vec![(Uring, Epoll), (Uring, UringNoFiles)]);
        assert!(pairs(&[UringNoHandoff, UringNoFiles]).is_empty());
    }
}
