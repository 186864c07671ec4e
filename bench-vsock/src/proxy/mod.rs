//! Running workloads through a proxy (`--via`): the server listens on its endpoint, a proxy
//! process listens on a second endpoint of the same transport and forwards to it, and the
//! clients connect to the proxy. Two proxies: ours (`vsock-tool proxy LISTEN TARGET`) and
//! Debian's `socat` (`…-LISTEN:…,fork …-CONNECT:…`), the line operators run today.
//!
//! [`Proxy`] is one running proxy process: started and waited for with a deadline, its CPU
//! time read from `/proc` (a proxy's CPU is part of what a proxied message costs), killed
//! when dropped.

mod cpu;
mod endpoints;
mod process;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use process::Proxy;

/// The name of our proxy's program.
pub const OURS_PROGRAM: &str = "vsock-tool";

/// A proxy to run through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyKind {
    /// This project's `vsock-tool proxy`.
    Ours,
    /// Debian's `socat`, forking a process per connection.
    Socat,
}

impl ProxyKind {
    /// Every proxy, in report order.
    pub const ALL: [ProxyKind; 2] = [ProxyKind::Ours, ProxyKind::Socat];

    /// The name `--via` takes and reports show.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Ours => "ours",
            ProxyKind::Socat => "socat",
        }
    }
}

impl fmt::Display for ProxyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProxyKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<ProxyKind> {
        ProxyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::new(format!(
                    "unknown proxy {s:?}: expected ours (vsock-tool proxy) or socat"
                ))
            })
    }
}

/// A proxy and the program that runs it, found before anything is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Which proxy.
    pub kind: ProxyKind,
    /// Its executable.
    pub program: PathBuf,
}

impl Via {
    /// Finds the program of `kind`: for ours, `via_bin` if given, else `vsock-tool` next to
    /// this executable (the same target folder; a test binary's is one folder up); for
    /// socat, `socat` on `PATH`.
    ///
    /// # Errors
    ///
    /// The program is missing: the error says where it looked and how to get it.
    pub fn find(kind: ProxyKind, via_bin: Option<&Path>) -> Result<Via> {
        let program = match kind {
            ProxyKind::Ours => find_ours(via_bin)?,
            ProxyKind::Socat => find_socat()?,
        };
        Ok(Via { kind, program })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_ours(via_bin: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = via_bin {
        return if is_executable(p) {
            Ok(p.to_owned())
        } else {
            Err(Error::new(format!(
                "--via-bin {}: no executable there (the `vsock-tool` binary for --via ours)",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::new(format!("--via ours: finding this executable: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates: Vec<PathBuf> = std::iter::once(dir)
        .chain(dir.parent().filter(|_| dir.ends_with("deps")))
        .map(|d| d.join(OURS_PROGRAM))
        .collect();
    candidates
        .iter()
        .find(|p| is_executable(p))
        .cloned()
        .ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Error::new(format!(
                "--via ours: {OURS_PROGRAM} not found (looked for {}); build it in the same \
                 profile (`cargo build --release -p {OURS_PROGRAM}`) or give --via-bin PATH",
                looked.join(", ")
            ))
        })
}

fn find_socat() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("socat"))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            Error::new(
                "--via socat: socat is not installed (not on PATH); install it \
                 (`apt-get install socat`) or leave socat out of --via",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for k in ProxyKind::ALL {
            assert_eq!(k.name().parse::<ProxyKind>().unwrap(), k);
        }
        let e = "nginx".parse::<ProxyKind>().unwrap_err();
        assert!(e.message().contains("unknown proxy \"nginx\""), "{e}");
    }

    #[test]
    fn a_missing_via_bin_is_named() {
        let e = Via::find(ProxyKind::Ours, Some(Path::new("/nonexistent/vsock-tool"))).unwrap_err();
        assert!(
            e.message().contains("--via-bin /nonexistent/vsock-tool"),
            "{e}"
        );
    }
}
