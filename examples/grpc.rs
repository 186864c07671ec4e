//! A gRPC service and client with tonic over any endpoint uring-vsock takes: vsock, unix, tcp
//! or hybrid vsock.
//!
//! ```text
//! cargo run --example grpc -- --listen vsock:any:50051     # in a guest
//! cargo run --example grpc -- --connect vsock:3:50051      # from the host
//! cargo run --example grpc -- --listen unix:/tmp/grpc.sock &
//! cargo run --example grpc -- --connect unix:/tmp/grpc.sock hello
//! ```
//!
//! The service, as protobuf would declare it:
//!
//! ```proto
//! package demo;
//! service Echo {
//!   rpc Echo(EchoRequest) returns (EchoReply);            // the payload back, its checksum, the peer
//!   rpc Generate(GenerateRequest) returns (stream Chunk); // `chunks` chunks of a seeded pattern
//! }
//! message EchoRequest { bytes payload = 1; }
//! message EchoReply { bytes payload = 1; fixed64 checksum = 2; string peer = 3; }
//! message GenerateRequest { uint64 seed = 1; uint32 chunks = 2; uint32 chunk_size = 3; }
//! message Chunk { uint32 index = 1; bytes data = 2; fixed64 checksum = 3; }
//! ```
//!
//! Why the service code is written here rather than generated: `tonic-prost-build` needs
//! `protoc` or `protox` in a `build.rs`, and a package's build-dependencies cannot be
//! dev-only, so every user of the library would compile them. The messages are `prost`
//! derives and the two methods' glue is the few lines below, in the shape of tonic's
//! generated code (`tonic::server::Grpc` on the server, `tonic::client::Grpc` on the client).

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, BoxStream, Service, StdError};
use tonic::server::{NamedService, ServerStreamingService, UnaryService};
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;
use uring_vsock::tokio::{Connector, Listener, PeerEndpoint};
use uring_vsock::Endpoint;

/// `Echo.Echo`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
}

/// `Echo.Echo`'s reply: the payload as received, its [`checksum`], and the client's endpoint
/// as the server saw it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
    #[prost(fixed64, tag = "2")]
    pub checksum: u64,
    #[prost(string, tag = "3")]
    pub peer: String,
}

/// `Echo.Generate`'s request: `chunks` chunks of `chunk_size` bytes of [`pattern`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenerateRequest {
    #[prost(uint64, tag = "1")]
    pub seed: u64,
    #[prost(uint32, tag = "2")]
    pub chunks: u32,
    #[prost(uint32, tag = "3")]
    pub chunk_size: u32,
}

/// One message of `Echo.Generate`'s stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chunk {
    #[prost(uint32, tag = "1")]
    pub index: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(fixed64, tag = "3")]
    pub checksum: u64,
}

/// The largest `chunk_size` and `chunks` `Generate` accepts (under tonic's 4 MiB message
/// limit; a bound on the work one call asks for).
pub const MAX_CHUNK_SIZE: u32 = 1 << 20;
pub const MAX_CHUNKS: u32 = 100_000;

const ECHO: &str = "/demo.Echo/Echo";
const GENERATE: &str = "/demo.Echo/Generate";

/// FNV-1a 64 of `data`: what both sides compare.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bytes of chunk `index` of a `Generate` stream with `seed` (xorshift64*, so a client
/// can check every byte from its request alone).
pub fn pattern(seed: u64, index: u32, len: usize) -> Vec<u8> {
    let mut x = (seed ^ (u64::from(index) << 32 | 0x9e37_79b9)) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// The `demo.Echo` service, for `Server::add_service`.
#[derive(Clone, Debug, Default)]
pub struct EchoServer;

impl UnaryService<EchoRequest> for EchoServer {
    type Response = EchoReply;
    type Future = BoxFuture<Response<EchoReply>, Status>;

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let peer = PeerEndpoint::of(&req).map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        let payload = req.into_inner().payload;
        let checksum = checksum(&payload);
        Box::pin(async move {
            Ok(Response::new(EchoReply {
                payload,
                checksum,
                peer,
            }))
        })
    }
}

impl ServerStreamingService<GenerateRequest> for EchoServer {
    type Response = Chunk;
    type ResponseStream = BoxStream<Chunk>;
    type Future = BoxFuture<Response<BoxStream<Chunk>>, Status>;

    fn call(&mut self, req: Request<GenerateRequest>) -> Self::Future {
        let GenerateRequest {
            seed,
            chunks,
            chunk_size,
        } = req.into_inner();
        Box::pin(async move {
            if chunk_size > MAX_CHUNK_SIZE || chunks > MAX_CHUNKS {
                return Err(Status::invalid_argument(format!(
                    "chunk_size {chunk_size} (at most {MAX_CHUNK_SIZE}) or chunks {chunks} \
                     (at most {MAX_CHUNKS}) too large"
                )));
            }
            // Made one chunk at a time, as the client reads them.
            let stream = tonic::codegen::tokio_stream::iter((0..chunks).map(move |index| {
                let data = pattern(seed, index, chunk_size as usize);
                let checksum = checksum(&data);
                Ok(Chunk {
                    index,
                    data,
                    checksum,
                })
            }));
            Ok(Response::new(Box::pin(stream) as BoxStream<Chunk>))
        })
    }
}

impl<B> Service<http::Request<B>> for EchoServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<http::Response<Body>, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move {
            Ok(match req.uri().path() {
                ECHO => {
                    let codec = ProstCodec::<EchoReply, EchoRequest>::default();
                    tonic::server::Grpc::new(codec).unary(svc, req).await
                }
                GENERATE => {
                    let codec = ProstCodec::<Chunk, GenerateRequest>::default();
                    tonic::server::Grpc::new(codec)
                        .server_streaming(svc, req)
                        .await
                }
                other => Status::unimplemented(format!("no method {other}")).into_http(),
            })
        })
    }
}

impl NamedService for EchoServer {
    const NAME: &'static str = "demo.Echo";
}

/// Serves `demo.Echo` on `listener` until the future is dropped.
pub async fn serve(listener: Listener) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_service(EchoServer)
        .serve_with_incoming(listener.incoming())
        .await
}

/// A `demo.Echo` client. Cloning is cheap; clones share the connection (HTTP/2 streams).
#[derive(Clone, Debug)]
pub struct EchoClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl EchoClient {
    /// Connects to `ep` (within 10 s).
    pub async fn connect(ep: Endpoint) -> Result<EchoClient, tonic::transport::Error> {
        let connector = Connector::new(ep).timeout(Duration::from_secs(10));
        // The URI names no address (the connector has it); its authority is the :authority.
        let channel = tonic::transport::Endpoint::from_static("http://uring-vsock")
            .connect_with_connector(connector)
            .await?;
        Ok(EchoClient::new(channel))
    }

    /// A client on an existing channel.
    pub fn new(channel: Channel) -> EchoClient {
        EchoClient {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    /// `Echo.Echo`.
    pub async fn echo(&mut self, payload: Vec<u8>) -> Result<EchoReply, Status> {
        self.ready().await?;
        let path = http::uri::PathAndQuery::from_static(ECHO);
        let codec = ProstCodec::<EchoRequest, EchoReply>::default();
        let req = Request::new(EchoRequest { payload });
        Ok(self.grpc.unary(req, path, codec).await?.into_inner())
    }

    /// `Echo.Generate`: the stream of chunks.
    pub async fn generate(&mut self, req: GenerateRequest) -> Result<Streaming<Chunk>, Status> {
        self.ready().await?;
        let path = http::uri::PathAndQuery::from_static(GENERATE);
        let codec = ProstCodec::<GenerateRequest, Chunk>::default();
        let resp = self.grpc.server_streaming(Request::new(req), path, codec);
        Ok(resp.await?.into_inner())
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))
    }
}

/// Reads a `Generate` stream to its end, checking every chunk against [`pattern`]; returns
/// the number of bytes.
pub async fn check_generated(
    mut stream: Streaming<Chunk>,
    req: &GenerateRequest,
) -> Result<u64, String> {
    let mut bytes = 0u64;
    let mut next = 0u32;
    while let Some(chunk) = stream.message().await.map_err(|s| s.to_string())? {
        let want = pattern(req.seed, next, req.chunk_size as usize);
        if chunk.index != next || chunk.data != want || chunk.checksum != checksum(&want) {
            return Err(format!("chunk {next} differs (got index {})", chunk.index));
        }
        bytes += chunk.data.len() as u64;
        next += 1;
    }
    if next != req.chunks {
        return Err(format!("{next} chunks of {}", req.chunks));
    }
    Ok(bytes)
}

/// `--connect`: one echo of `message` and one generated stream, both checked.
async fn client(ep: Endpoint, message: String) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = EchoClient::connect(ep).await?;
    let sent = message.into_bytes();
    let reply = client.echo(sent.clone()).await?;
    if reply.payload != sent || reply.checksum != checksum(&sent) {
        return Err("the echo differs from what was sent".into());
    }
    println!(
        "echo: {:?} ({} bytes, checksum ok); the server sees us as {}",
        String::from_utf8_lossy(&reply.payload),
        sent.len(),
        reply.peer
    );
    let req = GenerateRequest {
        seed: 42,
        chunks: 16,
        chunk_size: 64 * 1024,
    };
    let bytes = check_generated(client.generate(req.clone()).await?, &req).await?;
    println!(
        "generate: {} chunks, {bytes} bytes, all checked",
        req.chunks
    );
    Ok(())
}

const USAGE: &str = "usage: grpc --listen ENDPOINT | --connect ENDPOINT [MESSAGE]
  (ENDPOINT: vsock:any:50051, vsock:3:50051, unix:/tmp/grpc.sock, tcp:127.0.0.1:50051)";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = |s: &String| s.parse::<Endpoint>();
    let result: Result<(), Box<dyn std::error::Error>> = match args.as_slice() {
        [flag, ep] if flag == "--listen" => match parsed(ep) {
            Ok(ep) => {
                async {
                    let listener = Listener::bind(&ep)?;
                    eprintln!("serving demo.Echo on {}", listener.local_addr()?);
                    serve(listener).await?;
                    Ok(())
                }
                .await
            }
            Err(e) => Err(e.into()),
        },
        [flag, ep, rest @ ..] if flag == "--connect" && rest.len() <= 1 => match parsed(ep) {
            Ok(ep) => client(ep, rest.first().cloned().unwrap_or("hello".into())).await,
            Err(e) => Err(e.into()),
        },
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        // tonic's errors say little at the top: print the chain down to the OS error, each
        // message once (ours already ends with the OS error's).
        let mut msg = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let s_msg = s.to_string();
            if !msg.contains(&s_msg) {
                msg += &format!(": {s_msg}");
            }
            source = s.source();
        }
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
