//! `axum::serve` over the tokio path's `Listener`, with the example's API
//! (`examples/axum.rs`), answered by real clients: `curl --unix-socket` and a hyper client
//! over our `Stream`; HTTP/1.1 and h2c (HTTP/2 prior knowledge). The peer's endpoint reaches
//! handlers as connect info. A peer that resets mid-request fails only its own request.

#[allow(dead_code)] // its `main` is the example's, not ours
#[path = "../examples/axum.rs"]
mod example;
mod util;

use std::process::Command;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use uring_vsock::tokio::{Listener, Stream};
use uring_vsock::Endpoint;
use util::{bind_endpoint, TempDir, Transport};

/// Serves the example's API on a new listener of `t`; returns where it listens.
fn start(t: Transport, dir: &TempDir) -> Endpoint {
    let listener = Listener::bind(&bind_endpoint(t, dir)).expect("bind");
    let ep = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Err(e) = example::serve(listener).await {
            panic!("axum::serve failed: {e}");
        }
    });
    ep
}

/// One HTTP/1.1 request over a new connection of ours; returns the status and the body.
async fn request(stream: Stream, req: Request<Full<Bytes>>) -> (StatusCode, String) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("a response");
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
    )
}

fn post_sum(body: String) -> Request<Full<Bytes>> {
    Request::post("/sum")
        .header("host", "uring-vsock")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn hyper_client_is_answered(t: Transport) {
    let dir = TempDir::new();
    let ep = start(t, &dir);
    // connect info: the handler sees this client's endpoint.
    let stream = Stream::connect(&ep).await.expect("connect");
    let me = stream.local_addr().unwrap();
    let hello = Request::get("/hello")
        .header("host", "uring-vsock")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body) = request(stream, hello).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let want = match t {
        Transport::Unix => "unix:(unnamed)".to_owned(),
        _ => me.to_string(),
    };
    assert_eq!(v["hello"], want.as_str(), "{body}");
    // A body of some size, checked end to end through its sum.
    let numbers: Vec<i64> = (0..10_000).map(|i| i * 7 - 3_000).collect();
    let req = post_sum(serde_json::json!({ "numbers": numbers }).to_string());
    let (status, body) = request(Stream::connect(&ep).await.unwrap(), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply: example::SumReply = serde_json::from_str(&body).unwrap();
    assert_eq!(
        reply,
        example::SumReply {
            count: numbers.len(),
            sum: numbers.iter().sum(),
        }
    );
    // Bad input is an HTTP error, and the server keeps serving.
    let req = post_sum(format!("{{\"numbers\":[{},1]}}", i64::MAX));
    let (status, body) = request(Stream::connect(&ep).await.unwrap(), req).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("64-bit"), "{body}");
    let (status, _) = request(Stream::connect(&ep).await.unwrap(), post_sum("{".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_over_unix() {
    tokio::time::timeout(util::WATCHDOG, hyper_client_is_answered(Transport::Unix))
        .await
        .expect("the exchange finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_over_tcp() {
    tokio::time::timeout(util::WATCHDOG, hyper_client_is_answered(Transport::Tcp))
        .await
        .expect("the exchange finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vsock loopback; run tools/vm-test"]
async fn hyper_client_over_vsock() {
    util::require_vm();
    let dir = TempDir::new();
    // The listener reports CID_ANY: connect through loopback.
    let listener = Listener::bind(&bind_endpoint(Transport::Vsock, &dir)).unwrap();
    let ep = util::connect_endpoint(&listener.local_addr().unwrap());
    tokio::spawn(example::serve(listener));
    let numbers: Vec<i64> = (1..=1000).collect();
    let req = post_sum(serde_json::json!({ "numbers": numbers }).to_string());
    let stream = Stream::connect_timeout(&ep, util::WATCHDOG).await.unwrap();
    let (status, body) = tokio::time::timeout(util::WATCHDOG, request(stream, req))
        .await
        .expect("the exchange finished in time");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"count":1000,"sum":500500}"#);
}

/// What one curl request got: the status, the HTTP version curl spoke, the body.
#[derive(Debug)]
struct Curled {
    status: u16,
    version: String,
    body: String,
}

/// Runs the real curl against the unix socket `ep` (under the watchdog): `route` with `args`
/// before it. curl must be installed (`.ci/run` installs it): a missing curl fails the test.
async fn curl(ep: &Endpoint, route: &str, args: &[&str]) -> Curled {
    let Endpoint::Unix(path) = ep else {
        panic!("not a unix endpoint: {ep}")
    };
    let mut cmd = Command::new("curl");
    cmd.args([
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--unix-socket",
    ])
    .arg(path)
    // The status and version after the body, on a line of their own.
    .args(["--write-out", "\n%{http_code} %{http_version}"])
    .args(args)
    .arg(format!("http://uring-vsock{route}"));
    let what = format!("{cmd:?}");
    let out = tokio::time::timeout(
        util::WATCHDOG,
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} did not finish in time"))
    .unwrap()
    .unwrap_or_else(|e| panic!("running curl (.ci/run installs it): {e}"));
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert!(
        out.status.success(),
        "{what} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, tail) = stdout.rsplit_once('\n').expect("the --write-out line");
    let (status, version) = tail.split_once(' ').expect("status and version");
    Curled {
        status: status.parse().expect("a status code"),
        version: version.to_owned(),
        body: body.to_owned(),
    }
}

/// The example's routes through curl speaking `protocol` (`--http1.1` or
/// `--http2-prior-knowledge`, which is h2c: HTTP/2 without TLS, no upgrade); curl must report
/// speaking `version`.
async fn curl_gets_the_api(protocol: &str, version: &str) {
    let dir = TempDir::new();
    let ep = start(Transport::Unix, &dir);
    let json = ["-H", "content-type: application/json", "-d"];
    let hello = curl(&ep, "/hello", &[protocol]).await;
    let sum = curl(
        &ep,
        "/sum",
        &[&[protocol][..], &json, &[r#"{"numbers":[40,2,-5]}"#]].concat(),
    )
    .await;
    let overflow = format!("{{\"numbers\":[{},1]}}", i64::MAX);
    let too_big = curl(
        &ep,
        "/sum",
        &[&[protocol][..], &json, &[&overflow]].concat(),
    )
    .await;
    for c in [&hello, &sum, &too_big] {
        assert_eq!(c.version, version, "{c:?}");
    }
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, r#"{"hello":"unix:(unnamed)"}"#)
    );
    assert_eq!(
        (sum.status, sum.body.as_str()),
        (200, r#"{"count":3,"sum":37}"#)
    );
    assert_eq!(
        (too_big.status, too_big.body.as_str()),
        (422, "the sum does not fit in a 64-bit integer")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http1_over_a_unix_socket() {
    curl_gets_the_api("--http1.1", "1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_h2c_prior_knowledge_over_a_unix_socket() {
    curl_gets_the_api("--http2-prior-knowledge", "2").await;
}

/// `fut`'s output, or a failed test after the watchdog.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(util::WATCHDOG, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {:?}", util::WATCHDOG))
}

/// Whether `err` or one of its sources is an I/O error of `kind`.
fn caused_by(err: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>().map(|io| io.kind()) == Some(kind) {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A client resets its connection (tcp, `SO_LINGER` 0) while its request body is half sent:
/// the handler reading that body gets the reset as an error (no panic, no hang), and the
/// server goes on serving a request that was in flight on another connection meanwhile and
/// new ones after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_reset_mid_request_fails_only_that_request() {
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    /// What the upload handler saw: it started, then its body ended with this.
    #[derive(Debug)]
    enum Seen {
        Started,
        Body(Result<usize, axum::Error>),
    }
    let (tx, mut seen) = mpsc::unbounded_channel();
    let app = example::app().route(
        "/upload",
        post(move |body: axum::body::Body| async move {
            let _ = tx.send(Seen::Started);
            let got = body.collect().await.map(|b| b.to_bytes().len());
            let _ = tx.send(Seen::Body(got));
        }),
    );
    let dir = TempDir::new();
    let listener = Listener::bind(&bind_endpoint(Transport::Tcp, &dir)).expect("bind");
    let ep = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<Endpoint>(),
        )
        .await
    });

    // Another client's request, in flight (headers and half the body sent) across the reset.
    let numbers: Vec<i64> = (1..=2000).collect();
    let body = serde_json::json!({ "numbers": numbers }).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut other = Stream::connect(&ep).await.expect("connect");
    let head = format!(
        "POST /sum HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    other.write_all(head.as_bytes()).await.unwrap();
    other.write_all(first).await.unwrap();

    // The resetting client: the handler is reading its body when the RST arrives.
    let mut victim = Stream::connect(&ep).await.expect("connect");
    victim
        .write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
        .await
        .unwrap();
    victim.write_all(&[7; 1000]).await.unwrap();
    let started = within("the upload handler's start", seen.recv()).await;
    assert!(matches!(started, Some(Seen::Started)), "{started:?}");
    socket2::SockRef::from(&victim)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(victim); // with linger 0: a reset, not a FIN
    let ended = within("the upload handler's end", seen.recv()).await;
    match ended {
        Some(Seen::Body(Err(e))) => assert!(
            caused_by(&e, std::io::ErrorKind::ConnectionReset),
            "not a reset: {e:?}"
        ),
        other => panic!("the handler saw {other:?}, not the reset"),
    }

    // The request in flight completes.
    other.write_all(rest).await.unwrap();
    let mut reply = Vec::new();
    within("the other reply", other.read_to_end(&mut reply))
        .await
        .expect("the other reply");
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.ends_with(r#"{"count":2000,"sum":2001000}"#),
        "{reply}"
    );
    // And a new one is served.
    let req = post_sum(r#"{"numbers":[1,2,3]}"#.to_owned());
    let conn = Stream::connect(&ep).await.unwrap();
    let (status, body) = within("a new request", request(conn, req)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"count":3,"sum":6}"#);
}
