//! The command line, as clap parses it. [`crate::settings`] turns it into what to run.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use uring_vsock::Endpoint;

use crate::backend::BackendKind;
use crate::http::kinds::{Proto, ServerKind};
use crate::parse;
use crate::proxy::ProxyKind;
use crate::transport::Transport;

/// Latency and throughput of uring-vsock's I/O paths (uring, epoll, blocking) against tokio,
/// over vsock, unix and tcp. With no command: a quick `compare` on the safe default
/// transport (vsock loopback where loaded, else unix), reports under `results/`.
#[derive(Debug, Parser)]
#[command(name = "bench-vsock", version)]
pub struct Cli {
    /// What to run (default: a quick compare).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One connection, request/response of each --sizes.
    Pingpong(RunArgs),
    /// One-way bulk writes of each --sizes on --conns connections at once (default 1); the
    /// server acks what it checked. --reverse: the server sends, the client checks.
    Stream(RunArgs),
    /// Many connections (--conns) request/response: closed loop, or open loop at --rate.
    Rr(RunArgs),
    /// Connection setup rate: connect, one 64-byte round trip, close; --conns at a time.
    Connect(RunArgs),
    /// Every backend on pingpong, stream, rr and connect, interleaved and repeated, with
    /// ratios.
    Compare(RunArgs),
    /// The server role for real deployments: serve the bench protocol until killed.
    Serve(ServeArgs),
    /// The client role: run a workload against a `bench-vsock serve` at --connect.
    Client(ClientArgs),
    /// HTTP: hyper servers (on the engine, on the library's tokio path, on tokio's own
    /// sockets) answering keep-alive GETs of --bodies over HTTP/1.1 and HTTP/2 (prior
    /// knowledge) from --conns connections, closed loop and, with --rate, open loop; the load
    /// generator is hyper's client on its own engine; every body is verified. Interleaved
    /// repeats, medians, ratios and the targets.
    Http(HttpArgs),
    /// Write RESULTS.md (and its plots) from compare and http reports.
    Report(ReportArgs),
}

/// A workload, as `client --workload` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// See `bench-vsock pingpong --help`.
    Pingpong,
    /// See `bench-vsock stream --help`.
    Stream,
    /// See `bench-vsock rr --help`.
    Rr,
    /// See `bench-vsock connect --help`.
    Connect,
}

/// Options of every workload command.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Transport of the local server: unix, tcp, or vsock (needs the vsock loopback
    /// transport). Default: vsock if its loopback is loaded, else unix.
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// Where the local server listens (overrides --transport), e.g. tcp:127.0.0.1:0.
    #[arg(long, value_parser = parse::endpoint, value_name = "ENDPOINT")]
    pub listen: Option<Endpoint>,
    /// Run against a `bench-vsock serve` here instead of a local server.
    #[arg(long, value_parser = parse::endpoint, value_name = "ENDPOINT")]
    pub connect: Option<Endpoint>,
    /// Backends to run, comma-separated: uring, uring-spin, epoll, blocking, tokio (tokio::net,
    /// tokio-vsock), tokio-ours (the library's tokio path); and, by name only, the engine's
    /// A/B variants uring-nohandoff and uring-nofiles (one feature off, against uring).
    /// Default: all in this build but the A/B variants.
    #[arg(long, value_parser = backend_list, value_name = "LIST")]
    pub backends: Option<BackendList>,
    /// Message or write sizes, comma-separated, with k/m suffixes: 64,4k,64k,1m.
    #[arg(long, value_parser = size_list, value_name = "LIST")]
    pub sizes: Option<SizeList>,
    /// Concurrent connections (rr: 256; stream, connect: 1), at most 4096. stream: that many
    /// streams at once (GB/s is their sum).
    #[arg(long, value_parser = parse::conns, value_name = "N")]
    pub conns: Option<u64>,
    /// Worker threads of backends that have them (tokio, epoll, uring), per side, at most
    /// 256 (default 2).
    #[arg(long, value_parser = parse::workers, value_name = "N")]
    pub workers: Option<u64>,
    /// How long each measured run lasts: 500ms, 2s, 1m.
    #[arg(long, value_parser = parse::duration, value_name = "DURATION", conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Messages per run instead of a duration (spread over the connections; for connect,
    /// connections).
    #[arg(long, value_parser = parse::positive, value_name = "N")]
    pub count: Option<u64>,
    /// Unmeasured run before each measured one, on fresh connections; 0 for none.
    #[arg(long, value_parser = parse::warmup, value_name = "DURATION")]
    pub warmup: Option<Duration>,
    /// Runs of each backend and workload (compare reports medians over them), at most 1000.
    #[arg(long, value_parser = parse::repeat, value_name = "N")]
    pub repeat: Option<u64>,
    /// rr open loop: messages per second over all connections, latency measured from the
    /// intended send time (coordinated-omission corrected).
    #[arg(long, value_parser = parse::positive, value_name = "MSGS_PER_S")]
    pub rate: Option<u64>,
    /// stream: the server sends and the client checks (the other direction of a
    /// transport, which differs a lot on real ones: host → guest and guest → host).
    #[arg(long)]
    pub reverse: bool,
    /// Short runs, few sizes, three repeats: a first look in well under a minute per
    /// backend.
    #[arg(long)]
    pub quick: bool,
    /// compare: leave out the scaling runs (closed-loop rr of uring and epoll at 1 and 2
    /// workers, for the 2 ÷ 1 worker msgs/s figure).
    #[arg(long)]
    pub no_scaling: bool,
    /// Also run each configuration through a proxy, beside the direct run: ours
    /// (`vsock-tool proxy`), socat, or both (`ours,socat`). The proxy listens on a second
    /// endpoint of the server's transport and forwards to the server; clients connect to it.
    /// Local servers only.
    #[arg(long, value_parser = via_list, value_name = "LIST")]
    pub via: Option<ViaList>,
    /// The `vsock-tool` binary for `--via ours` (default: next to this executable).
    #[arg(long, value_name = "PATH")]
    pub via_bin: Option<PathBuf>,
    /// vsock only: SO_VM_SOCKETS_BUFFER_SIZE (after raising SO_VM_SOCKETS_BUFFER_MAX_SIZE
    /// to it) on the sockets of both ends, every backend, with k/m/g suffixes: 128 bytes
    /// to 1g (kernel default 256k, which caps a connection's window). Refused on unix, tcp
    /// and hybrid endpoints.
    #[arg(long, value_parser = parse::vsock_buffer, value_name = "BYTES")]
    pub vsock_buffer_size: Option<u64>,
    /// pingpong, rr (and compare's pingpong and rr runs): SOCK_SEQPACKET connections,
    /// each request and echo one message (at most 64k), on unix or vsock, with the
    /// backends that have them (uring, uring-spin, epoll, blocking).
    #[arg(long)]
    pub seqpacket: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Folder for report.json, report.html, the SVG plots and .hgrm files.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
}

/// A `--backends` list (a newtype, so clap takes the whole list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendList(pub Vec<BackendKind>);

/// A `--via` list (a newtype, so clap takes the whole list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaList(pub Vec<ProxyKind>);

fn via_list(s: &str) -> Result<ViaList, String> {
    parse::proxies(s).map(ViaList)
}

/// A `--sizes` list (a newtype, so clap takes the whole list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeList(pub Vec<usize>);

fn backend_list(s: &str) -> Result<BackendList, String> {
    parse::backends(s).map(BackendList)
}

fn size_list(s: &str) -> Result<SizeList, String> {
    parse::sizes(s).map(SizeList)
}

/// Options of `http`.
#[derive(Debug, Clone, Default, Args)]
pub struct HttpArgs {
    /// Transport of the local servers: unix, tcp, or vsock (needs the vsock loopback
    /// transport). Default: vsock if its loopback is loaded, else unix.
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// Servers to run, comma-separated: engine (hyper on the io_uring engine), tokio-ours
    /// (hyper on the library's tokio path), tokio (hyper on tokio::net, tokio-vsock).
    /// Default: all three.
    #[arg(long, value_parser = server_list, value_name = "LIST")]
    pub servers: Option<ServerList>,
    /// HTTP versions, comma-separated: h1 (HTTP/1.1 keep-alive), h2 (HTTP/2 with prior
    /// knowledge). Default: h1,h2.
    #[arg(long, value_parser = proto_list, value_name = "LIST")]
    pub proto: Option<ProtoList>,
    /// Keep-alive connections, comma-separated, each at most 4096 (default 1,256); one
    /// request at a time on each.
    #[arg(long, value_parser = conns_list, value_name = "LIST")]
    pub conns: Option<ConnsList>,
    /// Response body sizes (`GET /bytes/N`), comma-separated, with k/m suffixes, at most 16m
    /// (default 64,64k).
    #[arg(long, value_parser = body_list, value_name = "LIST")]
    pub bodies: Option<SizeList>,
    /// How long each measured run lasts: 500ms, 2s, 1m (default 2s; --quick 500ms).
    #[arg(long, value_parser = parse::duration, value_name = "DURATION", conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Requests per run instead of a duration, spread over the connections.
    #[arg(long, value_parser = parse::positive, value_name = "N")]
    pub count: Option<u64>,
    /// Unmeasured requests on the run's connections before it measures, for this long; 0
    /// for none (default 500ms; --quick 100ms).
    #[arg(long, value_parser = parse::warmup, value_name = "DURATION")]
    pub warmup: Option<Duration>,
    /// Runs of each server and configuration, interleaved (medians over them), at most 1000
    /// (default 5; --quick 3).
    #[arg(long, value_parser = parse::repeat, value_name = "N")]
    pub repeat: Option<u64>,
    /// Also run each configuration in open loop at this many requests per second over all
    /// connections, latency measured from each request's intended send time
    /// (coordinated-omission corrected).
    #[arg(long, value_parser = parse::positive, value_name = "REQS_PER_S")]
    pub rate: Option<u64>,
    /// Worker threads of each server and of the load generator's engine, at most 256
    /// (default 2).
    #[arg(long, value_parser = parse::workers, value_name = "N")]
    pub workers: Option<u64>,
    /// Short runs and three repeats: a first look in about a minute.
    #[arg(long)]
    pub quick: bool,
    /// Write the JSON report (medians, ratios, targets and every repeat) to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A `--servers` list (a newtype, so clap takes the whole list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerList(pub Vec<ServerKind>);

fn server_list(s: &str) -> Result<ServerList, String> {
    crate::http::kinds::list(s, "server").map(ServerList)
}

/// A `--proto` list (a newtype, so clap takes the whole list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoList(pub Vec<Proto>);

fn proto_list(s: &str) -> Result<ProtoList, String> {
    crate::http::kinds::list(s, "HTTP version").map(ProtoList)
}

/// A `--conns` list of `http` (a newtype, so clap takes the whole list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnsList(pub Vec<u64>);

fn conns_list(s: &str) -> Result<ConnsList, String> {
    parse::conns_list(s).map(ConnsList)
}

fn body_list(s: &str) -> Result<SizeList, String> {
    parse::bodies(s).map(SizeList)
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where to listen, e.g. vsock:any:5000, unix:/tmp/bench.sock, tcp:0.0.0.0:5000.
    #[arg(long, value_parser = parse::endpoint, value_name = "ENDPOINT")]
    pub listen: Endpoint,
    /// The server's backend.
    #[arg(long, default_value = "blocking")]
    pub backend: BackendKind,
    /// Worker threads, where the backend has them, at most 256.
    #[arg(long, value_parser = parse::workers, value_name = "N", default_value = "2")]
    pub workers: u64,
    /// vsock only: SO_VM_SOCKETS_BUFFER_SIZE of the server's sockets, 128 bytes to 1g (as
    /// the client's --vsock-buffer-size; set both, since both ends' buffers bound a
    /// connection).
    #[arg(long, value_parser = parse::vsock_buffer, value_name = "BYTES")]
    pub vsock_buffer_size: Option<u64>,
    /// Serve SOCK_SEQPACKET connections (for clients with --seqpacket); unix or vsock.
    #[arg(long)]
    pub seqpacket: bool,
    /// Exit after serving this many connections (for scripts and tests).
    #[arg(long, value_parser = parse::positive, value_name = "N")]
    pub max_conns: Option<u64>,
}

/// Options of `client`.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The workload to run.
    #[arg(long, value_enum)]
    pub workload: WorkloadArg,
    /// Workload options; --connect is required.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A compare or http run's JSON report; give one per transport (unix, tcp, and vsock
    /// from a VM). http reports make the HTTP section.
    #[arg(long = "json", value_name = "FILE", required = true)]
    pub jsons: Vec<PathBuf>,
    /// The Markdown file to write.
    #[arg(long, value_name = "FILE", default_value = "RESULTS.md")]
    pub out: PathBuf,
    /// The folder for the plots (SVG); default: next to `--out`.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// A Markdown file of analysis (why a target is missed, from profiles), appended under
    /// "Analysis"; profiles (`profile-*.txt`) in the plots folder are linked there too.
    #[arg(long, value_name = "FILE")]
    pub notes: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use crate::limits::{MAX_CONNS, MAX_REPEAT, MAX_WORKERS};

    fn help(sub: &str) -> String {
        let mut cmd = Cli::command();
        cmd.build();
        let sub = cmd.find_subcommand_mut(sub).expect("subcommand");
        sub.render_long_help().to_string()
    }

    #[test]
    fn help_states_the_limits_the_parsers_enforce() {
        let rr = help("rr");
        assert!(rr.contains(&format!("at most {MAX_CONNS}")), "{rr}");
        assert!(rr.contains(&format!("at most {MAX_WORKERS}")), "{rr}");
        assert!(rr.contains(&format!("at most {MAX_REPEAT}")), "{rr}");
        let serve = help("serve");
        assert!(serve.contains(&format!("at most {MAX_WORKERS}")), "{serve}");
        let http = help("http");
        assert!(http.contains(&format!("at most {MAX_CONNS}")), "{http}");
        assert!(http.contains(&format!("at most {MAX_WORKERS}")), "{http}");
        assert!(http.contains(&format!("at most {MAX_REPEAT}")), "{http}");
        assert!(http.contains("at most 16m"), "{http}");
    }
}
