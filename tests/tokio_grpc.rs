//! gRPC and HTTP clients over the tokio path (feature `tonic`): the example's tonic service
//! (`examples/grpc.rs`) served with `serve_with_incoming` on our `Listener` and called through
//! our `Connector`; hyper-util's legacy client through the same connector against axum on our
//! `Listener`. Unix and tcp on the host, vsock in the VM. Payloads are checked end to end.

#[allow(dead_code)] // its `main` is the example's, not ours
#[path = "../examples/grpc.rs"]
mod example;
mod util;

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use example::{EchoClient, GenerateRequest};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tonic::codegen::http::Uri;
use tonic::codegen::Service;
use uring_vsock::tokio::{Connector, Listener, PeerEndpoint, Stream};
use uring_vsock::Endpoint;
use util::{bind_endpoint, checksum, connect_endpoint, dead_endpoint, pattern, TempDir, Transport};

/// Runs `fut` under the watchdog: a hang fails with `what`.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(util::WATCHDOG, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {:?}", util::WATCHDOG))
}

/// Serves the example's gRPC service on a new listener of `t`; returns where to connect.
fn start_grpc(t: Transport, dir: &TempDir) -> Endpoint {
    let listener = Listener::bind(&bind_endpoint(t, dir)).expect("bind");
    let ep = connect_endpoint(&listener.local_addr().unwrap());
    tokio::spawn(async move {
        if let Err(e) = example::serve(listener).await {
            panic!("tonic serve_with_incoming failed: {e}");
        }
    });
    ep
}

/// This crate's error somewhere in `e`'s source chain.
fn ours<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a uring_vsock::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(found) = err.downcast_ref::<uring_vsock::Error>() {
            return Some(found);
        }
        cur = err.source();
    }
    None
}

/// Checks that `e` holds our connect error for `dead`, with the errno of `t`'s family.
fn assert_connect_error(e: &(dyn StdError + 'static), dead: &Endpoint, t: Transport) {
    let found = ours(e).unwrap_or_else(|| panic!("no uring_vsock::Error in the chain of {e:?}"));
    assert_eq!(found.op(), "connect", "{found}");
    assert_eq!(found.endpoint(), Some(dead), "{found}");
    let want = match t {
        Transport::Unix => libc::ENOENT,
        Transport::Tcp => libc::ECONNREFUSED,
        Transport::Vsock => libc::ECONNRESET,
    };
    assert_eq!(found.raw_os_error(), Some(want), "{found}");
}

/// A unary echo, a checked stream, a rejected request, and many concurrent calls on one
/// connection and on several, every payload checked.
async fn grpc_calls_are_answered(t: Transport) {
    let dir = TempDir::new();
    let ep = start_grpc(t, &dir);
    let mut client = within("connect", EchoClient::connect(ep.clone()))
        .await
        .expect("connect");
    let sent = pattern(1, 256 * 1024);
    let reply = within("echo", client.echo(sent.clone()))
        .await
        .expect("echo");
    assert_eq!(reply.payload.len(), sent.len());
    assert!(reply.payload == sent, "the echoed payload differs");
    assert_eq!(reply.checksum, example::checksum(&sent));
    let peer: Endpoint = reply.peer.parse().expect("the peer is an endpoint");
    assert_eq!(peer.domain(), ep.domain(), "peer {peer} of {ep}");

    let req = GenerateRequest {
        seed: 7,
        chunks: 32,
        chunk_size: 32 * 1024 + 5,
    };
    let stream = within("generate", client.generate(req.clone()))
        .await
        .expect("generate");
    let bytes = within("the stream", example::check_generated(stream, &req))
        .await
        .expect("every chunk as generated");
    assert_eq!(bytes, 32 * (32 * 1024 + 5));

    // Bad input is a gRPC status, and the server keeps serving.
    let too_big = GenerateRequest {
        seed: 0,
        chunks: 1,
        chunk_size: example::MAX_CHUNK_SIZE + 1,
    };
    let status = within("bad generate", client.generate(too_big))
        .await
        .expect_err("too large a chunk is refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");

    // 200 calls at once over this connection (HTTP/2 streams), and 4 more connections with
    // 25 each; each payload distinct and checked.
    let mut clients = vec![client];
    for _ in 0..4 {
        let c = within("connect", EchoClient::connect(ep.clone())).await;
        clients.push(c.expect("connect"));
    }
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..300u64 {
        let mut c = if i < 200 {
            clients[0].clone()
        } else {
            clients[1 + (i as usize % 4)].clone()
        };
        calls.spawn(async move {
            let sent = pattern(1000 + i, 1 + (i as usize * 997) % 8_000);
            let reply = c
                .echo(sent.clone())
                .await
                .map_err(|s| format!("{i}: {s}"))?;
            if reply.payload != sent || reply.checksum != example::checksum(&sent) {
                return Err(format!("call {i}: reply differs"));
            }
            Ok(sent.len())
        });
    }
    let mut done = 0;
    while let Some(r) = within("concurrent calls", calls.join_next()).await {
        r.expect("no call panicked").expect("every call answered");
        done += 1;
    }
    assert_eq!(done, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_unix() {
    grpc_calls_are_answered(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tcp() {
    grpc_calls_are_answered(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn grpc_over_vsock() {
    util::require_vm();
    grpc_calls_are_answered(Transport::Vsock).await;
}

/// A connector that hands tonic one stream we connected, so the test knows its endpoint.
struct Preconnected(Arc<Mutex<Option<Stream>>>);

impl Service<Uri> for Preconnected {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<TokioIo<Stream>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let stream = self.0.lock().unwrap().take();
        std::future::ready(
            stream
                .map(TokioIo::new)
                .ok_or(io::Error::other("used once")),
        )
    }
}

/// The service sees this client's endpoint as connect info.
async fn grpc_connect_info_is_the_peer(t: Transport) {
    let dir = TempDir::new();
    let ep = start_grpc(t, &dir);
    let stream = within("connect", Stream::connect(&ep))
        .await
        .expect("connect");
    let me = stream.local_addr().unwrap();
    let grpc_ep = tonic::transport::Endpoint::from_static("http://uring-vsock");
    let connector = Preconnected(Arc::new(Mutex::new(Some(stream))));
    let channel = within("channel", grpc_ep.connect_with_connector(connector))
        .await
        .expect("channel");
    let reply = within("echo", EchoClient::new(channel).echo(b"who".to_vec()))
        .await
        .expect("echo");
    let want = match t {
        Transport::Unix => "unix:(unnamed)".to_owned(), // an unbound client
        _ => me.to_string(),
    };
    assert_eq!(reply.peer, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_connect_info_over_unix() {
    grpc_connect_info_is_the_peer(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_connect_info_over_tcp() {
    grpc_connect_info_is_the_peer(Transport::Tcp).await;
}

async fn grpc_connect_to_nothing_is_a_typed_error(t: Transport) {
    let dir = TempDir::new();
    let dead = dead_endpoint(t, &dir);
    let err = within("connect", EchoClient::connect(dead.clone()))
        .await
        .expect_err("nothing listens");
    assert_connect_error(&err, &dead, t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_connect_to_nothing_over_unix() {
    grpc_connect_to_nothing_is_a_typed_error(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_connect_to_nothing_over_tcp() {
    grpc_connect_to_nothing_is_a_typed_error(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn grpc_connect_to_nothing_over_vsock() {
    util::require_vm();
    grpc_connect_to_nothing_is_a_typed_error(Transport::Vsock).await;
    // And the hyper client, from the same connector.
    let dir = TempDir::new();
    let dead = dead_endpoint(Transport::Vsock, &dir);
    hyper_connect_to_nothing(Transport::Vsock, dead).await;
}

/// A listener whose every connection is reset once `after` bytes of the request came in.
fn start_resetting(t: Transport, dir: &TempDir, after: usize) -> Endpoint {
    let listener = Listener::bind(&bind_endpoint(t, dir)).expect("bind");
    let ep = connect_endpoint(&listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut got = vec![0; after];
            conn.read_exact(&mut got)
                .await
                .expect("the request's start");
            // Linger 0: tcp sends RST; unix resets a peer whose data is left unread.
            let socket = socket2::Socket::from(OwnedFd::from(conn));
            socket.set_linger(Some(std::time::Duration::ZERO)).unwrap();
            drop(socket);
        }
    });
    ep
}

async fn grpc_reset_mid_request_is_an_error(t: Transport) {
    let dir = TempDir::new();
    let ep = start_resetting(t, &dir, 4096);
    // The HTTP/2 handshake is smaller than 4096 bytes: the reset comes during the call.
    let mut client = within("connect", EchoClient::connect(ep))
        .await
        .expect("connect");
    let status = within("echo", client.echo(pattern(2, 1 << 20)))
        .await
        .expect_err("a reset connection answers nothing");
    assert_reset(&status);
}

/// `e` comes from the peer's reset: its chain holds a reset (or the broken pipe a write
/// after it meets).
fn assert_reset(e: &(dyn StdError + 'static)) {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            let kind = io.kind();
            assert!(
                matches!(
                    kind,
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ),
                "{e:?}"
            );
            return;
        }
        cur = err.source();
    }
    panic!("no io::Error in the chain of {e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reset_mid_request_over_unix() {
    grpc_reset_mid_request_is_an_error(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reset_mid_request_over_tcp() {
    grpc_reset_mid_request_is_an_error(Transport::Tcp).await;
}

// ---- hyper-util's legacy client through our connector, against axum on our listener ----

/// `POST /echo`: the body back, with its checksum and the client's endpoint in headers.
fn start_axum(t: Transport, dir: &TempDir) -> Endpoint {
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(
            |ConnectInfo(peer): ConnectInfo<Endpoint>, body: Bytes| async move {
                let mut headers = HeaderMap::new();
                headers.insert("x-checksum", checksum(&body).to_string().parse().unwrap());
                headers.insert("x-peer", peer.to_string().parse().unwrap());
                (headers, body)
            },
        ),
    );
    let listener = Listener::bind(&bind_endpoint(t, dir)).expect("bind");
    let ep = connect_endpoint(&listener.local_addr().unwrap());
    let svc = app.into_make_service_with_connect_info::<Endpoint>();
    tokio::spawn(async move { axum::serve(listener, svc).await });
    ep
}

type HyperClient = Client<Connector, Full<Bytes>>;

fn hyper_client(ep: Endpoint) -> HyperClient {
    Client::builder(TokioExecutor::new()).build(Connector::new(ep).timeout(util::WATCHDOG))
}

/// POSTs `body`; checks the echo, its checksum and the server's endpoint in the response.
async fn post_echo(client: &HyperClient, ep: &Endpoint, body: Vec<u8>) -> Result<(), String> {
    let req = hyper::Request::post("http://uring-vsock/echo")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("status {}", resp.status()));
    }
    // The connector's connection info: the server's endpoint, as this side sees it.
    let server = resp.extensions().get::<PeerEndpoint>().cloned();
    if server != Some(PeerEndpoint(Some(ep.clone()))) {
        return Err(format!(
            "the response's PeerEndpoint is {server:?}, not {ep}"
        ));
    }
    let sum = resp.headers()["x-checksum"].to_str().unwrap().to_owned();
    let peer = resp.headers()["x-peer"].to_str().unwrap().to_owned();
    let got = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let got = got.to_bytes();
    if got.len() != body.len() || got != body || sum != checksum(&body).to_string() {
        return Err(format!("echo of {} bytes differs", body.len()));
    }
    match peer.parse::<Endpoint>() {
        Ok(p) if p.domain() == ep.domain() => Ok(()),
        _ => Err(format!("x-peer {peer} is not an endpoint like {ep}")),
    }
}

async fn hyper_client_is_answered(t: Transport) {
    let dir = TempDir::new();
    let ep = start_axum(t, &dir);
    let client = hyper_client(ep.clone());
    within("post", post_echo(&client, &ep, pattern(3, 300_000)))
        .await
        .expect("one echo");
    // Concurrent requests: the pool opens connections as needed; every body checked.
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..64u64 {
        let (client, ep) = (client.clone(), ep.clone());
        posts.spawn(async move {
            let body = pattern(100 + i, 1 + (i as usize * 4099) % 50_000);
            post_echo(&client, &ep, body).await
        });
    }
    let mut done = 0;
    while let Some(r) = within("concurrent posts", posts.join_next()).await {
        r.expect("no post panicked").expect("every post answered");
        done += 1;
    }
    assert_eq!(done, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_over_unix() {
    hyper_client_is_answered(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_over_tcp() {
    hyper_client_is_answered(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn hyper_client_over_vsock() {
    util::require_vm();
    hyper_client_is_answered(Transport::Vsock).await;
}

async fn hyper_connect_to_nothing(t: Transport, dead: Endpoint) {
    let client = hyper_client(dead.clone());
    let req = hyper::Request::get("http://uring-vsock/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = within("get", client.request(req))
        .await
        .expect_err("nothing listens");
    assert!(err.is_connect(), "{err:?}");
    assert_connect_error(&err, &dead, t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_connect_to_nothing_over_unix() {
    let dir = TempDir::new();
    hyper_connect_to_nothing(Transport::Unix, dead_endpoint(Transport::Unix, &dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_connect_to_nothing_over_tcp() {
    let dir = TempDir::new();
    hyper_connect_to_nothing(Transport::Tcp, dead_endpoint(Transport::Tcp, &dir)).await;
}

async fn hyper_reset_mid_request_is_an_error(t: Transport) {
    let dir = TempDir::new();
    let ep = start_resetting(t, &dir, 1024);
    let client = hyper_client(ep);
    let req = hyper::Request::post("http://uring-vsock/echo")
        .body(Full::new(Bytes::from(pattern(4, 1 << 20))))
        .unwrap();
    let err = within("post", client.request(req))
        .await
        .expect_err("a reset connection answers nothing");
    assert!(!err.is_connect(), "the connect worked: {err:?}");
    assert_reset(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_reset_mid_request_over_unix() {
    hyper_reset_mid_request_is_an_error(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_reset_mid_request_over_tcp() {
    hyper_reset_mid_request_is_an_error(Transport::Tcp).await;
}

/// A zero connect timeout is a typed error naming the endpoint, not a panic or a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_zero_connect_timeout_is_a_typed_error() {
    let dir = TempDir::new();
    let ep = start_axum(Transport::Unix, &dir);
    let client: HyperClient = Client::builder(TokioExecutor::new())
        .build(Connector::new(ep.clone()).timeout(std::time::Duration::ZERO));
    let req = hyper::Request::get("http://uring-vsock/echo")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = within("get", client.request(req))
        .await
        .expect_err("no deadline");
    let found = ours(&err).unwrap_or_else(|| panic!("no uring_vsock::Error in {err:?}"));
    assert_eq!(found.kind(), io::ErrorKind::InvalidInput, "{found}");
    assert_eq!(found.endpoint(), Some(&ep));
}
