//! The server backends and HTTP versions of `bench-vsock http`, as the command line and the
//! reports name them.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Which hyper server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerKind {
    /// hyper on the io_uring engine (`rt::HttpServer` on `Engine::listen_async`).
    Engine,
    /// hyper on the library's tokio path (`uring_vsock::tokio::Listener`).
    TokioOurs,
    /// hyper on tokio's own sockets (tokio::net; tokio-vsock for vsock).
    Tokio,
}

impl ServerKind {
    /// Every server, in report order.
    pub const ALL: [ServerKind; 3] = [ServerKind::Engine, ServerKind::TokioOurs, ServerKind::Tokio];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Engine => "engine",
            ServerKind::TokioOurs => "tokio-ours",
            ServerKind::Tokio => "tokio",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServerKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<ServerKind> {
        ServerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::new(format!(
                    "unknown server {s:?}: expected one of engine, tokio-ours, tokio"
                ))
            })
    }
}

/// The HTTP version of a run's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// HTTP/1.1 with keep-alive: one request at a time per connection.
    H1,
    /// HTTP/2 with prior knowledge (h2c, no upgrade): one stream at a time per connection.
    H2,
}

impl Proto {
    /// Both, in report order.
    pub const ALL: [Proto; 2] = [Proto::H1, Proto::H2];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Proto::H1 => "h1",
            Proto::H2 => "h2",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Proto {
    type Err = Error;

    fn from_str(s: &str) -> Result<Proto> {
        Proto::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::new(format!(
                    "unknown HTTP version {s:?}: expected h1 (HTTP/1.1) or h2 (HTTP/2, prior knowledge)"
                ))
            })
    }
}

/// A comma-separated list of names, without repeats: `engine,tokio`.
///
/// # Errors
///
/// An unknown name, a name given twice, or an empty list; `what` names the items.
pub fn list<T: FromStr<Err = Error> + PartialEq>(s: &str, what: &str) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let item: T = name.parse().map_err(|e: Error| e.to_string())?;
        if out.contains(&item) {
            return Err(format!("{what} {name:?} given twice"));
        }
        out.push(item);
    }
    if out.is_empty() {
        return Err(format!("empty {what} list"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_refuse_repeats() {
        for k in ServerKind::ALL {
            assert_eq!(k.name().parse::<ServerKind>(), Ok(k));
        }
        for p in Proto::ALL {
            assert_eq!(p.name().parse::<Proto>(), Ok(p));
        }
        assert_eq!(
            list::<ServerKind>("engine, tokio", "server"),
            Ok(vec![ServerKind::Engine, ServerKind::Tokio])
        );
        assert!(list::<ServerKind>("engine,engine", "server")
            .unwrap_err()
            .contains("given twice"));
        assert!(list::<ServerKind>("uring", "server")
            .unwrap_err()
            .contains("unknown server \"uring\""));
        assert!(list::<Proto>("h3", "HTTP version")
            .unwrap_err()
            .contains("unknown HTTP version \"h3\""));
        assert!(list::<Proto>(",", "HTTP version")
            .unwrap_err()
            .contains("empty"));
    }
}
