//! axum 0.8 integration (feature `axum`): `axum::serve(listener, app)` over any endpoint, with
//! the peer's [`Endpoint`] as connect info.
//!
//! ```no_run
//! use axum::{extract::ConnectInfo, routing::get, Router};
//! use uring_vsock::{tokio::Listener, Endpoint};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route(
//!     "/",
//!     get(|ConnectInfo(peer): ConnectInfo<Endpoint>| async move { format!("hello {peer}\n") }),
//! );
//! let listener = Listener::bind(&"vsock:any:8080".parse()?)?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<Endpoint>()).await?;
//! # Ok(())
//! # }
//! ```

use std::io;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;

use super::listener::{is_connection_error, ACCEPT_ERROR_PAUSE};
use super::{Listener, Stream};
use crate::Endpoint;

impl axum::serve::Listener for Listener {
    type Io = Stream;
    type Addr = Endpoint;

    /// Accepts the next connection. axum's contract is that this never fails: errors are
    /// logged (and, unless they concern only that connection, paused after) and retried.
    async fn accept(&mut self) -> (Stream, Endpoint) {
        loop {
            match Listener::accept(self).await {
                Ok(conn) => return conn,
                Err(e) if is_connection_error(e.kind()) => {
                    log::debug!("{e}; accepting the next connection");
                }
                Err(e) => {
                    log::error!("{e}; accepting again in {ACCEPT_ERROR_PAUSE:?}");
                    ::tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Endpoint> {
        Listener::local_addr(self).map_err(io::Error::from)
    }
}

impl Connected<IncomingStream<'_, Listener>> for Endpoint {
    /// The peer's endpoint, as `accept` returned it.
    fn connect_info(stream: IncomingStream<'_, Listener>) -> Endpoint {
        stream.remote_addr().clone()
    }
}
