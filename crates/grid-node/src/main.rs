//! The `grid-node` binary: flags, logging, then [`grid_node::Node::run`].

use clap::Parser;
use grid_core::FuelQuota;
use grid_node::{Node, NodeConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// A wasm-grid node: lends this machine to the grid. Every job runs in
/// wasmtime with WASI preview 1, under fuel, memory and time limits.
#[derive(Parser, Debug)]
#[command(name = "grid-node", version)]
struct Args {
    /// The master to serve.
    #[arg(long, env = "GRID_MASTER", default_value = "http://127.0.0.1:7070", value_name = "URL")]
    master: String,
    /// The node's name as `grid-cli nodes` shows it [default: HOSTNAME-PID].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Jobs run at once [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    slots: Option<u32>,
    /// Linear memory for all running jobs together, e.g. `2GiB`.
    #[arg(long, default_value = "2GiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    memory: u64,
    /// Fuel this node gives, as AMOUNT/PERIOD, e.g. `50G/h`: a token bucket
    /// that refills at that rate and holds one period's amount.
    #[arg(long, default_value = "1T/h", value_name = "AMOUNT/PERIOD", value_parser = FuelQuota::parse)]
    fuel_quota: FuelQuota,
    /// Where compiled modules and job scratch space live
    /// [default: the user's cache dir, `wasm-grid/node`].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grid-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> anyhow::Result<()> {
    let cache_dir = match args.cache_dir {
        Some(dir) => dir,
        None => dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("wasm-grid").join("node"),
    };
    let mut config = NodeConfig::new(args.master, cache_dir);
    if let Some(name) = args.name {
        config.name = name;
    }
    if let Some(slots) = args.slots {
        config.slots = slots;
    }
    config.memory = args.memory;
    config.fuel_quota = args.fuel_quota;
    tracing::info!(name = %config.name, master = %config.master, slots = config.slots, memory = config.memory, "grid-node starting");
    let node = Node::new(config)?;
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
