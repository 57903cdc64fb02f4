//! The `grid-node` binary: flags, logging, then [`grid_node::Node::run`].

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;
use grid_core::{FuelQuota, parse_duration, parse_fuel, parse_size};
use grid_node::{Node, NodeConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A wasm-grid node: lends this machine to the grid. Every job runs in
/// wasmtime (a core module with WASI preview 1, a component with WASI
/// preview 2), under fuel, memory, time, output and disk limits; the flags
/// below say how much this machine gives in all and to any one job.
#[derive(Parser, Debug)]
#[command(name = "grid-node", version)]
struct Args {
    /// The master to serve; or several masters of one grid, separated by
    /// commas (`https://m1:7070,https://m2:7070`): the node serves
    /// whichever leads, and follows the lead when it moves.
    #[arg(long, env = "GRID_MASTER", default_value = "https://127.0.0.1:7070", value_name = "URL")]
    master: String,
    /// The CA certificate (PEM) that signed the master's certificate
    /// [default: the one learned when the node joined, else the system roots].
    #[arg(long, env = "GRID_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// A join token (from `grid-cli admin node-token create`), traded once
    /// for the node's own credential, which is saved as `node.token` in the
    /// cache dir and used from then on.
    #[arg(long, env = "GRID_JOIN", value_name = "TOKEN", hide_env_values = true)]
    join: Option<String>,
    /// The node's name as `grid-cli nodes` shows it [default: HOSTNAME-PID].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// Jobs run at once [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "What this machine gives")]
    slots: Option<u32>,
    /// Linear memory for all running jobs together, e.g. `2GiB`.
    #[arg(long, default_value = "2GiB", value_name = "SIZE", value_parser = parse_size, help_heading = "What this machine gives")]
    memory: u64,
    /// Fuel given, as AMOUNT/PERIOD, e.g. `50G/h`: a token bucket that
    /// refills at that rate and holds one period's amount. A job reserves
    /// its fuel limit and is billed what it burned.
    #[arg(long, default_value = "1T/h", value_name = "AMOUNT/PERIOD", value_parser = FuelQuota::parse, help_heading = "What this machine gives")]
    fuel_quota: FuelQuota,
    /// Scratch space for the mapped directories of all running jobs together.
    #[arg(long, default_value = "4GiB", value_name = "SIZE", value_parser = parse_size, help_heading = "What this machine gives")]
    disk: u64,
    /// The most the compiled-module cache holds on disk; the least recently
    /// used modules are evicted past it.
    #[arg(long, default_value = "1GiB", value_name = "SIZE", value_parser = parse_size, help_heading = "What this machine gives")]
    cache_size: u64,

    /// The most fuel any one job may have.
    #[arg(long, default_value = "100G", value_name = "N", value_parser = parse_fuel, help_heading = "The most any one job gets")]
    max_job_fuel: u64,
    /// The most linear memory any one job may have [default: 1GiB, or --memory if less].
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "The most any one job gets")]
    max_job_memory: Option<u64>,
    /// The longest any one job may run.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration, help_heading = "The most any one job gets")]
    max_job_timeout: Duration,
    /// The most scratch space any one job may fill (at most 448MiB).
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = parse_job_disk, help_heading = "The most any one job gets")]
    max_job_disk: u64,

    /// The longest compiling one module may take; a module that takes
    /// longer fails its jobs as an invalid module. Not counted against any
    /// job's timeout.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_duration, help_heading = "Compiling")]
    compile_timeout: Duration,
    /// The most memory (address space) compiling one module may take; a
    /// module that needs more fails its jobs as an invalid module.
    #[arg(long, default_value = "4GiB", value_name = "SIZE", value_parser = parse_size, help_heading = "Compiling")]
    compile_memory: u64,

    /// Where the node's credential, compiled modules and job scratch space
    /// live [default: the user's cache dir, `wasm-grid/node`].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// On SIGTERM or Ctrl-C, how long running jobs may go on before they are
    /// handed back to the master to run elsewhere.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    grace: Duration,
    /// How often to log a one-line summary of what this node has given.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    summary_every: Duration,
    /// How log lines on stderr are written: `text`, or `json` (one object
    /// a line, for a log collector).
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    log_format: grid_core::LogFormat,
    /// Serve this node's metrics in plain HTTP at `http://ADDR/metrics`
    /// (Prometheus text format; port 0 picks a free one, printed on stdout).
    /// Nothing asks who scrapes: keep ADDR on loopback, or behind a
    /// firewall. Off by default.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

/// A job's scratch space comes back in one message, so it stays well under
/// the protocol's message limit.
fn parse_job_disk(s: &str) -> Result<u64, String> {
    let size = parse_size(s)?;
    if size > 448 << 20 {
        return Err(format!("`{s}` is over the 448MiB a job's scratch space may hold"));
    }
    Ok(size)
}

fn main() -> ExitCode {
    grid_node::compile::serve_if_child();
    let args: Args = grid_core::usage::parse();
    // Refused before anything starts: a node would otherwise retry for ever.
    if let Err(why) = grid_core::Masters::parse(&args.master) {
        eprintln!("grid-node: {why}");
        return ExitCode::from(2);
    }
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("wasm-grid").join("node"),
    };
    // A node that could never serve says so now rather than retrying.
    if let Err(why) = grid_node::credential::start(None, &cache_dir, args.join.as_deref()) {
        eprintln!("grid-node: {why}");
        return ExitCode::from(2);
    }
    let trust = match &args.ca {
        None => grid_core::connect::Trust::default(),
        Some(path) => match std::fs::read(path) {
            Ok(pem) => grid_core::connect::Trust { ca_pem: Some(pem), ca_pin: None },
            Err(e) => {
                eprintln!("grid-node: cannot read the CA certificate `{}`: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    args.log_format.init();
    match run(args, cache_dir, trust) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grid-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args, cache_dir: PathBuf, trust: grid_core::connect::Trust) -> anyhow::Result<()> {
    let mut config = NodeConfig::new(args.master, cache_dir);
    config.trust = trust;
    config.join = args.join;
    if let Some(name) = args.name {
        config.name = name;
    }
    let c = &mut config.capacity;
    if let Some(slots) = args.slots {
        c.slots = slots;
    }
    c.memory = args.memory;
    c.fuel_quota = args.fuel_quota;
    c.disk = args.disk;
    c.per_job.fuel = args.max_job_fuel;
    c.per_job.memory = args.max_job_memory.unwrap_or(c.per_job.memory).min(args.memory);
    c.per_job.timeout = args.max_job_timeout;
    c.per_job.disk = args.max_job_disk.min(args.disk);
    config.cache_size = args.cache_size;
    config.compile = grid_node::compile::CompileLimits { time: args.compile_timeout, memory: args.compile_memory };
    config.grace = args.grace;
    config.summary_every = args.summary_every;
    tracing::info!(
        name = %config.name,
        master = %config.master,
        slots = config.capacity.slots,
        memory = config.capacity.memory,
        fuel_per_hour = config.capacity.fuel_quota.rate_per_hour,
        "grid-node starting"
    );
    let mut node = Node::new(config)?;
    if let Some(addr) = args.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to listen for metrics on `{addr}`"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "metrics served beyond loopback: anyone who reaches it reads them");
        }
        println!("metrics: {addr}");
        node = node.with_metrics(listener);
    }
    node.run(shutdown_signal()).await
}

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
