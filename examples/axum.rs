//! A small JSON API served with axum over any endpoint uring-vsock takes: vsock, unix, tcp or
//! hybrid vsock.
//!
//! ```text
//! cargo run --example axum -- vsock:any:8080        # in a guest; curl from the host over vsock
//! cargo run --example axum -- unix:/tmp/api.sock
//! curl --unix-socket /tmp/api.sock http://x/hello
//! curl --unix-socket /tmp/api.sock -d '{"numbers":[1,2,3]}' -H 'content-type: application/json' http://x/sum
//! curl --unix-socket /tmp/api.sock --http2-prior-knowledge http://x/hello    # h2c
//! ```
//!
//! It speaks HTTP/1.1 and HTTP/2 without TLS (h2c, prior knowledge) on the same listener.
//!
//! Routes: `GET /hello` (`{"hello":"<peer endpoint>"}`) and `POST /sum` (`{"numbers":[..]}`
//! gives `{"count":N,"sum":S}`; a sum that does not fit in an `i64` is a 422 with a message).

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uring_vsock::tokio::Listener;
use uring_vsock::Endpoint;

/// The body of `POST /sum`.
#[derive(Debug, Deserialize)]
pub struct SumRequest {
    pub numbers: Vec<i64>,
}

/// The answer of `POST /sum`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SumReply {
    pub count: usize,
    pub sum: i64,
}

/// The API, with the peer's endpoint as connect info.
pub fn app() -> Router {
    Router::new()
        .route(
            "/hello",
            get(|ConnectInfo(peer): ConnectInfo<Endpoint>| async move {
                Json(serde_json::json!({ "hello": peer.to_string() }))
            }),
        )
        .route("/sum", post(sum))
}

async fn sum(Json(req): Json<SumRequest>) -> Result<Json<SumReply>, (StatusCode, String)> {
    let sum = req
        .numbers
        .iter()
        .try_fold(0i64, |acc, &n| acc.checked_add(n))
        .ok_or((
            StatusCode::UNPROCESSABLE_ENTITY,
            "the sum does not fit in a 64-bit integer".to_owned(),
        ))?;
    Ok(Json(SumReply {
        count: req.numbers.len(),
        sum,
    }))
}

/// Serves [`app`] on `listener` until the future is dropped.
pub async fn serve(listener: Listener) -> std::io::Result<()> {
    axum::serve(
        listener,
        app().into_make_service_with_connect_info::<Endpoint>(),
    )
    .await
}

#[tokio::main]
async fn main() {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!(
            "usage: axum ENDPOINT   (vsock:any:8080, unix:/tmp/api.sock, tcp:127.0.0.1:8080)"
        );
        std::process::exit(2);
    };
    let result = async {
        let ep: Endpoint = arg.parse()?;
        let listener = Listener::bind(&ep)?;
        eprintln!("serving on {}", listener.local_addr()?);
        tokio::select! {
            served = serve(listener) => served?,
            _ = tokio::signal::ctrl_c() => eprintln!("interrupted"),
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}
