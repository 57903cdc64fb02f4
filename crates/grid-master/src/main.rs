//! The `grid-master` binary: flags, logging, then [`grid_master::Master::serve`].

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` in the version pinned (3.3.2, which
/// `libmimalloc-sys` 0.1.49 builds): how long freed memory is kept before
/// it goes back to the system, 1,000 ms by default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once, not a second later (and
/// then only once the allocator is called again): what a hostile client
/// made the master hold, a stalled upload's buffers say, is returned as
/// soon as it is dropped, so the master's memory stays within its bounds
/// as the system sees it. The option is set only where it reads as its
/// documented default: an operator's `MIMALLOC_PURGE_DELAY` is kept, and
/// another version's numbering changes nothing.
fn return_freed_memory_at_once() {
    use libmimalloc_sys::{mi_option_get, mi_option_set};
    // SAFETY: mimalloc's options are plain integers it reads atomically;
    // setting one is safe at any time.
    unsafe {
        if mi_option_get(PURGE_DELAY) == 1000 {
            mi_option_set(PURGE_DELAY, 0);
        }
    }
}

use anyhow::Context;
use clap::Parser;
use grid_master::trust::{VerifyMode, VerifyPolicy};
use grid_master::{Master, MasterConfig, TlsSetup};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The wasm-grid master: accepts jobs, stores modules by hash, and routes
/// each job to the node with the most spare fuel capacity.
#[derive(Parser, Debug)]
#[command(name = "grid-master", version)]
struct Args {
    /// Address to listen on for clients and nodes (port 0 picks a free one;
    /// the address in use is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:7070", value_name = "ADDR")]
    listen: SocketAddr,
    /// Directory for the module store and the job record (`grid.db`)
    /// [default: the user's data dir, `wasm-grid/master`].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Largest module accepted, e.g. `64MiB`; the default admits real
    /// programs, which toolchains build to tens of MiB.
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    max_module_size: u64,
    /// How often nodes send heartbeats; a node silent for three is dropped.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = grid_core::parse_duration)]
    heartbeat: Duration,
    /// How many times a job runs when the nodes under it are lost, hand it
    /// back, or hold it past its timeout and `--grace`.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    /// Commit the job record to the OS without waiting for the disk: faster
    /// submissions; a master crash still loses nothing, but a power cut or a
    /// kernel crash may lose the last moments' submissions and results.
    #[arg(long)]
    no_fsync: bool,
    /// The largest output limit a job may ask for.
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    max_output: u64,
    /// The most stdin a job may bring.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    max_stdin: u64,
    /// The most bytes of args and env a job may bring, together.
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    max_args: u64,
    /// The most bytes of mapped directories (as archives) a job may bring, or
    /// bring back, together.
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    max_dirs: u64,
    /// The most jobs waiting for a node; submissions past it are refused
    /// until the queue drains.
    #[arg(long, default_value_t = grid_master::state::DEFAULT_MAX_QUEUED, value_name = "N")]
    max_queued: usize,
    /// How long past its timeout a running job may take (compiling, the
    /// network) before its node loses it and it runs elsewhere.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = grid_core::parse_duration)]
    grace: Duration,
    /// Prune finished jobs, with their output, once they are this old
    /// [default: keep them for ever].
    #[arg(long, value_name = "DURATION", value_parser = grid_core::parse_duration)]
    keep_finished: Option<Duration>,
    /// Drop an upload that sends nothing for this long.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = grid_core::parse_duration)]
    upload_idle_timeout: Duration,
    /// Serve plaintext instead of TLS: anyone on the network can read and
    /// forge calls. Only for a network where everyone is trusted.
    #[arg(long, conflicts_with_all = ["tls_name", "tls_cert"])]
    insecure: bool,
    /// Another name (DNS name or IP address) for the master's own server
    /// certificate, besides `localhost`, `127.0.0.1`, `::1` and the host's
    /// name. Repeatable.
    #[arg(long, value_name = "NAME", conflicts_with = "tls_cert")]
    tls_name: Vec<String>,
    /// Serve this certificate chain (PEM, the server's certificate first)
    /// instead of one signed by the master's own CA.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key of `--tls-cert` (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also serve the HTTP API, the dashboard and `/metrics` on this
    /// address (off by default; port 0 picks a free one, printed on stdout
    /// as `http: ADDR`). It speaks TLS with the master's own certificate,
    /// which clients trust through the same `ca.pem` as gRPC; with
    /// `--insecure` it is plaintext.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Serve `--http` as plain HTTP: refused unless its address is a
    /// loopback one (or the master is `--insecure`).
    #[arg(long, requires = "http")]
    http_plaintext: bool,
    /// How nodes' results are checked against other nodes'.
    #[arg(long, value_enum, default_value_t = Verify::Adaptive, value_name = "MODE")]
    verify: Verify,
    /// Agreeing results in a row after which a node may run jobs alone
    /// (then checked now and then, less as its streak grows).
    #[arg(long, default_value_t = VerifyPolicy::DEFAULT_TRUST_AFTER, value_name = "N")]
    trust_after: u32,
    /// The most replicas one job runs, those that disagreed included,
    /// before it fails with no quorum; also the most `--replicas` a job may
    /// ask for.
    #[arg(long, default_value_t = VerifyPolicy::DEFAULT_MAX_REPLICAS, value_name = "N",
          value_parser = clap::value_parser!(u32).range(2..))]
    max_replicas: u32,
    /// Strikes (results that disagreed, jobs held past their deadline) that
    /// quarantine a node until `grid-cli admin nodes unquarantine`.
    #[arg(long, default_value_t = VerifyPolicy::DEFAULT_QUARANTINE_AFTER, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    quarantine_after: u32,
    /// Slots a node not yet trusted may fill, whatever it declares; each
    /// agreeing result in its streak adds one.
    #[arg(long, default_value_t = VerifyPolicy::DEFAULT_UNTRUSTED_SLOTS, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    untrusted_slots: u32,
    /// How log lines on stderr are written: `text`, or `json` (one object
    /// a line, for a log collector).
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    log_format: grid_core::LogFormat,
    /// Keep the job record, tokens and the grid's identity in this
    /// PostgreSQL database (`postgres://user:password@host:port/db`)
    /// instead of SQLite in the data dir. Several masters on one database
    /// make one grid: one leads, the others stand by and take over when
    /// its lease expires. Give them one `--modules-dir`. The CA, the token
    /// key, the admin token and every token and tenant live there; each
    /// master writes `ca.pem` and `admin.token` into its data dir from it.
    #[arg(long, env = "GRID_DATABASE", value_name = "URL", hide_env_values = true)]
    database: Option<String>,
    /// This master's name among the masters of its database [default:
    /// HOST:PORT].
    #[arg(long, value_name = "NAME", requires = "database")]
    name: Option<String>,
    /// The URL clients and nodes reach this master at, as standbys tell
    /// them [default: from --listen, with the host's name for an
    /// unspecified address].
    #[arg(long, value_name = "URL", requires = "database")]
    advertise: Option<String>,
    /// How long the leader's lease lasts unrenewed (renewed every third of
    /// it): a standby takes over this long after the leader dies.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = grid_core::parse_duration, requires = "database")]
    lease: Duration,
    /// Where modules are stored [default: `modules` in the data dir].
    /// Masters on one database must share one directory (NFS, a mounted
    /// volume).
    #[arg(long, value_name = "DIR")]
    modules_dir: Option<PathBuf>,
}

/// `--verify`: how nodes' results are checked.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Verify {
    /// Take every result as its node reports it (a grid of one's own machines).
    Off,
    /// Check a node's results with a second replica until it is trusted, then now and then.
    Adaptive,
    /// Run every job on a public node on two nodes at least.
    Always,
}

impl Args {
    /// The verification policy the flags describe.
    fn verify(&self) -> VerifyPolicy {
        VerifyPolicy {
            mode: match self.verify {
                Verify::Off => VerifyMode::Off,
                Verify::Adaptive => VerifyMode::Adaptive,
                Verify::Always => VerifyMode::Always,
            },
            trust_after: self.trust_after,
            max_replicas: self.max_replicas,
            quarantine_after: self.quarantine_after,
            untrusted_slots: self.untrusted_slots,
        }
    }
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    let args: Args = grid_core::usage::parse();
    args.log_format.init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grid-master: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let verify = args.verify();
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("wasm-grid").join("master"));
    let config = MasterConfig {
        data_dir: data_dir.clone(),
        max_module_size: args.max_module_size,
        heartbeat: args.heartbeat,
        max_attempts: args.max_attempts,
        fsync: !args.no_fsync,
        ceilings: grid_master::SubmitCeilings {
            output: args.max_output,
            stdin: args.max_stdin,
            args: args.max_args,
            dirs: args.max_dirs,
        },
        max_queued: args.max_queued,
        grace: args.grace,
        keep_finished: args.keep_finished,
        upload_idle: args.upload_idle_timeout,
        recovery: grid_master::Recovery::Resume,
        tls: match (args.insecure, args.tls_cert, args.tls_key) {
            (true, _, _) => TlsSetup::Off,
            (false, Some(cert), Some(key)) => TlsSetup::Files { cert, key },
            _ => TlsSetup::Auto { names: args.tls_name },
        },
        verify,
        database: args.database.clone(),
        modules_dir: args.modules_dir.clone(),
    };
    if let Some(http) = args.http
        && args.http_plaintext
        && !args.insecure
        && !http.ip().is_loopback()
    {
        anyhow::bail!(
            "--http-plaintext on `{http}`, not a loopback address: anyone on the network could read tokens; serve TLS (drop --http-plaintext) or listen on 127.0.0.1"
        );
    }
    if let Some(url) = &args.database {
        let several = grid_master::leading::Flags {
            listen: args.listen,
            http: args.http.map(|addr| (addr, args.http_plaintext)),
            name: args.name.clone(),
            advertise: args.advertise.clone(),
            lease: args.lease,
        };
        return grid_master::leading::start(config, url, several, shutdown_signal()).await;
    }
    let mut master =
        Master::open(config).with_context(|| format!("failed to open data dir `{}`", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on `{}`", args.listen))?;
    let addr = listener.local_addr()?;
    let http = match args.http {
        Some(http) => {
            let listener = tokio::net::TcpListener::bind(http)
                .await
                .with_context(|| format!("failed to listen on `{http}` (--http)"))?;
            let addr = listener.local_addr()?;
            let plaintext = args.http_plaintext || !master.serves_tls();
            master = master.with_http(grid_master::http::HttpServe { listener, plaintext });
            Some(addr)
        }
        None => None,
    };
    println!("grid-master listening on {addr}");
    if let Some(http) = http {
        println!("http: {http}");
    }
    tracing::info!(%addr, data_dir = %data_dir.display(), "grid-master ready");
    match (master.ca_file(), master.ca_pin()) {
        (Some(ca), Some(pin)) => {
            tracing::info!(ca = %ca.display(), pin = %hex::encode(pin), "clients and nodes trust this CA")
        }
        (None, Some(pin)) => tracing::info!(pin = %hex::encode(pin), "clients and nodes trust the CA of --tls-cert"),
        _ => {}
    }
    master.serve(listener, shutdown_signal()).await
}

/// Resolves at the first SIGINT or SIGTERM; a second one exits at once,
/// without waiting for the clean shutdown.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down (a second signal exits at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("grid-master: a second signal: exiting without a clean shutdown");
        std::process::exit(130);
    });
}
