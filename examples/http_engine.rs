//! An axum `Router` served by hyper on the io_uring engine: each connection is a task on its
//! worker (HTTP/1.1 keep-alive, or HTTP/2 with prior knowledge), over any endpoint.
//!
//! ```text
//! cargo run --example http_engine -- unix:/tmp/web.sock [WORKERS]
//! curl --unix-socket /tmp/web.sock http://x/hello
//! curl --http2-prior-knowledge --unix-socket /tmp/web.sock http://x/bytes/100000 | wc -c
//! cargo run --example http_engine -- vsock:any:8080   # in a guest
//! ```
//!
//! Routes: `GET /hello` (`hello <peer>`), `GET /bytes/N` (N bytes of `x`, N at most 16 MiB),
//! `POST /echo` (the body back).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tower_service::Service;
use uring_vsock::uring::rt::HttpServer;
use uring_vsock::uring::{AsyncConn, Engine};
use uring_vsock::Endpoint;

/// The largest body `GET /bytes/N` makes (memory per request stays bounded).
pub const MAX_BYTES: usize = 16 << 20;

/// The routes; the peer's endpoint comes as an `Extension`.
pub fn app() -> Router {
    Router::new()
        .route(
            "/hello",
            get(|Extension(peer): Extension<Endpoint>| async move { format!("hello {peer}") }),
        )
        .route("/bytes/{n}", get(bytes))
        .route("/echo", post(|body: Bytes| async move { body }))
}

async fn bytes(Path(n): Path<usize>) -> Result<Vec<u8>, (StatusCode, String)> {
    if n > MAX_BYTES {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_BYTES} bytes"),
        ));
    }
    Ok(vec![b'x'; n])
}

/// Serves [`app`] on `ep` with `http`'s settings; returns the bound endpoint.
pub fn serve(engine: &Engine, ep: &Endpoint, http: HttpServer) -> uring_vsock::Result<Endpoint> {
    let router = app();
    engine.listen_async(ep, move |conn: AsyncConn| {
        let router = router.clone().layer(Extension(conn.peer().clone()));
        let http = http.clone();
        async move {
            let svc = hyper::service::service_fn(move |req| {
                let mut router = router.clone();
                async move { Ok::<_, Infallible>(router.call(req).await.unwrap_or_else(|e| match e {})) }
            });
            if let Err(e) = http.serve(conn, svc).await {
                log::debug!("http connection: {e}");
            }
        }
    })
}

#[allow(dead_code)] // the tests include this file for `app` and `serve`
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(arg) = args.next() else {
        eprintln!("usage: http_engine ENDPOINT [WORKERS]   (unix:/tmp/web.sock, tcp:127.0.0.1:8080, vsock:any:8080)");
        std::process::exit(2);
    };
    let result = (|| {
        let ep: Endpoint = arg.parse()?;
        let workers = match args.next() {
            Some(w) => w.parse().map_err(|e| format!("WORKERS {w:?}: {e}"))?,
            None => 2,
        };
        let engine = Engine::builder().workers(workers).build()?;
        let local = serve(
            &engine,
            &ep,
            HttpServer::new().header_timeout(Some(Duration::from_secs(10))),
        )?;
        eprintln!("serving on {local} with {workers} workers (ctrl-c stops)");
        loop {
            std::thread::park();
        }
        #[allow(unreachable_code)]
        Ok::<(), Box<dyn std::error::Error>>(())
    })();
    if let Err(e) = result {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}
