//! `axum::serve` over the tokio path's `Listener`, with the example's API
//! (`examples/axum.rs`), answered by real clients: `curl --unix-socket` and a hyper client
//! over our `Stream`. The peer's endpoint reaches handlers as connect info.

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

/// Runs curl with `args`; `None` (after saying so) when curl is not installed.
fn curl(args: &[&str]) -> Option<(bool, String)> {
    match Command::new("curl").args(args).output() {
        Ok(out) => Some((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: curl is not installed (.ci/run installs it)");
            None
        }
        Err(e) => panic!("running curl: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_a_unix_socket() {
    let dir = TempDir::new();
    let ep = start(Transport::Unix, &dir);
    let Endpoint::Unix(path) = ep else {
        panic!("not a unix endpoint: {ep}")
    };
    let path = path.to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args)
        })
    };
    let common = |p: &str| {
        vec![
            "--silent".to_owned(),
            "--show-error".to_owned(),
            "--max-time".to_owned(),
            "30".to_owned(),
            "--unix-socket".to_owned(),
            path.clone(),
            format!("http://uring-vsock{p}"),
        ]
    };
    let hello = tokio::time::timeout(util::WATCHDOG, run(common("/hello")))
        .await
        .expect("curl finished in time")
        .unwrap();
    let Some((ok, body)) = hello else { return };
    assert!(ok, "curl /hello failed: {body}");
    assert_eq!(body, r#"{"hello":"unix:(unnamed)"}"#);
    let mut args = common("/sum");
    args.extend(
        [
            "--http1.1",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"numbers":[40,2,-5]}"#,
        ]
        .map(String::from),
    );
    let (ok, body) = tokio::time::timeout(util::WATCHDOG, run(args))
        .await
        .expect("curl finished in time")
        .unwrap()
        .expect("curl was there a moment ago");
    assert!(ok, "curl /sum failed: {body}");
    assert_eq!(body, r#"{"count":3,"sum":37}"#);
}
