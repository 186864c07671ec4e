//! tonic and hyper-util integration (feature `tonic`): gRPC servers and clients over any
//! endpoint.
//!
//! - Serving: [`Listener::incoming`](super::Listener::incoming) is the stream of connections
//!   that `tonic::transport::Server::serve_with_incoming` takes; [`Stream`] is tonic's
//!   `Connected`, so each request carries the peer's endpoint as a [`PeerEndpoint`] extension.
//! - Dialing: [`Connector`] is a `tower::Service<Uri>` that connects to one fixed [`Endpoint`]
//!   (a URI cannot name a vsock or unix address, so the URI only fills the `:authority`), for
//!   `tonic::transport::Endpoint::connect_with_connector` and for hyper-util's legacy
//!   `Client::builder(..).build(connector)`.
//!
//! A server, and a client whose call reaches it (an empty router answers `Unimplemented`):
//!
//! ```
//! use tonic::transport::{Endpoint as Channel, Server};
//! use uring_vsock::tokio::{Connector, Listener};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     // vsock:any:50051 on a VM; tcp here, so the example runs anywhere.
//!     let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
//!     let ep = listener.local_addr()?;
//!     tokio::spawn(
//!         Server::builder()
//!             .add_routes(tonic::service::Routes::default()) // add_service(YourServer::new(..))
//!             .serve_with_incoming(listener.incoming()),
//!     );
//!     let channel = Channel::from_static("http://uring-vsock")
//!         .connect_with_connector(Connector::new(ep))
//!         .await?;
//!     let mut grpc = tonic::client::Grpc::new(channel); // or YourClient::new(channel)
//!     grpc.ready().await?;
//!     let path = http::uri::PathAndQuery::from_static("/demo.Demo/Call");
//!     let codec = tonic_prost::ProstCodec::<(), ()>::default();
//!     let status = grpc.unary(tonic::Request::new(()), path, codec).await.unwrap_err();
//!     assert_eq!(status.code(), tonic::Code::Unimplemented);
//!     Ok(())
//! })
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected as HyperConnected, Connection};
use hyper_util::rt::TokioIo;

use super::Stream;
use crate::{Endpoint, Result};

/// The peer's endpoint of a connection (feature `tonic`): tonic's connect info for our
/// [`Stream`], in every request's extensions; on the client side, hyper-util puts the
/// server's in every response's extensions.
///
/// `None` when `getpeername` failed (the peer was already gone when the connection was
/// served); the failure is logged at debug level.
///
/// ```
/// use uring_vsock::tokio::PeerEndpoint;
///
/// // In a tonic service method:
/// fn who(req: &tonic::Request<()>) -> String {
///     match PeerEndpoint::of(req) {
///         Some(peer) => format!("hello {peer}"),
///         None => "hello stranger".to_owned(),
///     }
/// }
/// assert_eq!(who(&tonic::Request::new(())), "hello stranger");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEndpoint(pub Option<Endpoint>);

impl PeerEndpoint {
    /// The peer's endpoint of `stream`.
    fn of_stream(stream: &Stream) -> PeerEndpoint {
        match stream.peer_addr() {
            Ok(ep) => PeerEndpoint(Some(ep)),
            Err(e) => {
                log::debug!("{e}: no peer endpoint for the connection info");
                PeerEndpoint(None)
            }
        }
    }

    /// The peer's endpoint of the connection that carried `req`; `None` when the request
    /// did not come through our [`Stream`] or the endpoint was unknown.
    pub fn of<T>(req: &tonic::Request<T>) -> Option<&Endpoint> {
        req.extensions().get::<PeerEndpoint>()?.0.as_ref()
    }
}

impl tonic::transport::server::Connected for Stream {
    type ConnectInfo = PeerEndpoint;

    /// The peer's endpoint, read once per connection.
    fn connect_info(&self) -> PeerEndpoint {
        PeerEndpoint::of_stream(self)
    }
}

impl Connection for Stream {
    /// A plain connection (no proxy, no ALPN), with the server's [`PeerEndpoint`] as extra
    /// response extension.
    fn connected(&self) -> HyperConnected {
        HyperConnected::new().extra(PeerEndpoint::of_stream(self))
    }
}

/// Dials one fixed [`Endpoint`] for tonic's channel and hyper-util's legacy client (feature
/// `tonic`): a `tower::Service<Uri>` whose connections are [`Stream`]s in hyper-util's
/// [`TokioIo`].
///
/// The URI a call gets is not dialed: it cannot carry a vsock, unix or hybrid address, so the
/// endpoint is fixed here (tonic and hyper still send the URI's authority as `:authority` or
/// `Host`). Cloning is cheap; each clone dials the same endpoint.
///
/// # Errors
///
/// A failed connect is this crate's [`Error`](crate::Error) (`connect <endpoint>: ...` with
/// the OS error), the source of tonic's `transport::Error` or hyper-util's client error:
/// walk `std::error::Error::source` and downcast to read its endpoint and errno.
///
/// # Examples
///
/// A hyper-util client (with hyper-util's `client-legacy` and `http1` features):
///
/// ```
/// use http_body_util::{BodyExt, Empty};
/// use hyper::body::Bytes;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use uring_vsock::tokio::{Connector, Listener};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// tokio::runtime::Runtime::new()?.block_on(async {
///     let listener = Listener::bind(&"tcp:127.0.0.1:0".parse()?)?;
///     let ep = listener.local_addr()?;
///     let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
///     tokio::spawn(async move { axum::serve(listener, app).await });
///     let client = Client::builder(TokioExecutor::new())
///         .build::<_, Empty<Bytes>>(Connector::new(ep).timeout(std::time::Duration::from_secs(5)));
///     let resp = client.get("http://uring-vsock/".parse()?).await?;
///     assert_eq!(resp.into_body().collect().await?.to_bytes(), "hi");
///     Ok(())
/// })
/// # }
/// ```
///
/// A tonic channel that dials only when first used:
///
/// ```
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let ep = "vsock:2:50051".parse()?; // the host, from a guest
/// let connector = uring_vsock::tokio::Connector::new(ep);
/// let channel = tonic::transport::Endpoint::from_static("http://host")
///     .connect_with_connector_lazy(connector);
/// # drop(channel);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Connector {
    endpoint: Endpoint,
    timeout: Option<Duration>,
}

impl Connector {
    /// A connector to `endpoint`, connecting as [`Stream::connect`] does (as long as the
    /// kernel waits; tonic's `Endpoint::connect_timeout` still applies on top).
    pub fn new(endpoint: Endpoint) -> Connector {
        Connector {
            endpoint,
            timeout: None,
        }
    }

    /// Connects within `timeout`, as [`Stream::connect_timeout`] (the deadline covers a hybrid
    /// endpoint's handshake too). A zero timeout makes every connect fail with
    /// `InvalidInput`.
    pub fn timeout(mut self, timeout: Duration) -> Connector {
        self.timeout = Some(timeout);
        self
    }

    /// The endpoint it dials.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = crate::Error;
    type Future = Connecting;

    /// Always ready: each call is its own connect.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Connecting {
        let (ep, timeout) = (self.endpoint.clone(), self.timeout);
        Connecting(Box::pin(async move {
            let stream = match timeout {
                Some(t) => Stream::connect_timeout(&ep, t).await?,
                None => Stream::connect(&ep).await?,
            };
            Ok(TokioIo::new(stream))
        }))
    }
}

/// A connect in progress, from [`Connector`] (feature `tonic`). Dropping it cancels the
/// connect and closes the socket.
pub struct Connecting(Pin<Box<dyn Future<Output = Result<TokioIo<Stream>>> + Send>>);

impl Future for Connecting {
    type Output = Result<TokioIo<Stream>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting").finish_non_exhaustive()
    }
}

/// What tonic and hyper-util ask of a connector: it and its future move between threads, the
/// future is `Unpin`.
const _: () = {
    const fn send_unpin<T: Send + Unpin>() {}
    const fn send_sync<T: Send + Sync>() {}
    send_unpin::<Connecting>();
    send_sync::<Connector>();
    send_sync::<PeerEndpoint>();
};
