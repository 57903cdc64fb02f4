//! `grid-bench`: measures the grid on this machine and prints a table.
//!
//! `cargo build --release --workspace && cargo run --release -p grid-bench -- all`
//! (`--quick` for a smoke run with tiny counts). Figures are medians over
//! repeated runs with min and max; ratios are taken pair by pair.

mod grid;
mod guests;
mod stats;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use grid::{Client, Grid};
use grid_core::Limits;
use stats::Samples;
use std::time::{Duration, Instant};

/// Benchmarks for wasm-grid.
#[derive(Parser, Debug)]
#[command(name = "grid-bench", version)]
struct Args {
    /// What to measure.
    #[arg(value_enum, default_value = "all")]
    what: What,
    /// Tiny counts: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    All,
    Latency,
    Throughput,
    Compute,
    Startup,
    Memory,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let q = args.quick;
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    println!("# wasm-grid benchmarks ({machine}){}", if q { " — quick smoke run, not a measurement" } else { "" });
    let all = args.what == What::All;
    if all || args.what == What::Latency || args.what == What::Startup {
        latency_and_startup(q).await?;
    }
    if all || args.what == What::Throughput {
        throughput(q).await?;
    }
    if all || args.what == What::Compute {
        compute(q).await?;
    }
    if all || args.what == What::Memory {
        memory(q).await?;
    }
    Ok(())
}

fn small() -> Limits {
    Limits { memory: 16 << 20, disk: 1 << 20, ..Limits::default() }
}

/// 1 and 4: one tiny job at a time on a warm grid, and the node's share of it.
async fn latency_and_startup(q: bool) -> Result<()> {
    let grid = Grid::start(2, 2).await?;
    let mut client = grid.client().await?;
    let hello = client.upload(&wat::parse_str(guests::HELLO)?).await?;
    for _ in 0..20 {
        client.run(&hello, &[], small()).await?;
    }
    let (mut lat, mut start) = (Samples::default(), Samples::default());
    for _ in 0..if q { 30 } else { 1000 } {
        let t = Instant::now();
        let r = client.run(&hello, &[], small()).await?;
        lat.push(t.elapsed());
        start.push(r.startup);
    }
    println!("\n## 1. Warm latency (hello, cached on every node, one job at a time)");
    println!("submit to finished, client side: {}", lat.percentiles());
    println!("\n## 4. Start-up");
    println!("node side, assignment received to `_start`, cached module: {}", start.summary());

    // Cold: a module the grid has never seen, against plain compilation.
    let engine = grid_node::engine::new_engine(&grid_node::NodeConfig::new("", "").capacity)?;
    let (mut cold, mut compile) = (Samples::default(), Samples::default());
    for i in 0..if q { 3 } else { 15 } {
        let bytes = wat::parse_str(guests::unique_hello(i))?;
        let t = Instant::now();
        let module = client.upload(&bytes).await?;
        client.run(&module, &[], small()).await?;
        cold.push(t.elapsed());
        let t = Instant::now();
        engine.precompile_module(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        compile.push(t.elapsed());
    }
    println!("cold (upload, hash check, fetch, compile, run) on the grid: {}", cold.summary());
    println!("plain `Engine::precompile_module` of the same modules: {}", compile.summary());
    Ok(())
}

/// 2: tiny jobs per second with many in flight, from 1 and from 4 clients.
async fn throughput(q: bool) -> Result<()> {
    let grid = Grid::start(2, 2).await?;
    let mut client = grid.client().await?;
    let hello = client.upload(&wat::parse_str(guests::HELLO)?).await?;
    client.run(&hello, &[], small()).await?;
    let total = if q { 200 } else { 5000 };
    println!("\n## 2. Throughput (hello, one master, two nodes of two slots)");
    for clients in [1usize, 4] {
        let mut rates = Samples::default();
        for _ in 0..if q { 1 } else { 3 } {
            let t = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..clients {
                let (client, hello) = (grid.client().await?, hello.clone());
                tasks.spawn(async move { in_flight(client, hello, total / clients, 256).await });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            rates.push_rate(total as f64 / t.elapsed().as_secs_f64());
        }
        println!("{clients} client task(s), up to 256 jobs in flight each: {}", rates.rate_summary("jobs/s"));
    }
    Ok(())
}

async fn in_flight(client: Client, module: grid_core::ModuleHash, n: usize, window: usize) -> Result<()> {
    let reports = windowed(n, window, || {
        let (mut c, m) = (client.clone(), module.clone());
        async move { c.run(&m, &[], small()).await }
    })
    .await?;
    for report in reports {
        anyhow::ensure!(report.outcome.exit_code() == Some(0), "a job failed: {}", report.outcome);
    }
    Ok(())
}

/// Runs `n` tasks made by `task`, at most `window` at a time, and returns
/// their results.
async fn windowed<T, F, Fut>(n: usize, window: usize, task: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(window));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        let fut = task();
        tasks.spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        out.push(r??);
    }
    Ok(out)
}

/// 3: a CPU-bound job through the grid against a plain embedding with the
/// node's own engine configuration; and fuel metering's own price.
async fn compute(q: bool) -> Result<()> {
    let grid = Grid::start(1, 1).await?;
    let mut client = grid.client().await?;
    let n = if q { 200_000 } else { 2_500_000 };
    let bytes = wat::parse_str(guests::primes(n))?;
    let module = client.upload(&bytes).await?;
    let limits = Limits { fuel: 100_000_000_000, ..small() };
    client.run(&module, &[], limits).await?;
    let capacity = grid_node::NodeConfig::new("", "").capacity;
    let with_fuel = grid_node::engine::new_engine(&capacity)?;
    let no_fuel = guests::engine_without_fuel()?;
    let direct_module = wasmtime::Module::new(&with_fuel, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let no_fuel_module = wasmtime::Module::new(&no_fuel, &bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut on_grid, mut direct, mut unmetered, mut ratio, mut fuel_ratio) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default(), Samples::default());
    for _ in 0..if q { 2 } else { 7 } {
        let t = Instant::now();
        let r = client.run(&module, &[], limits).await?;
        let g = t.elapsed();
        anyhow::ensure!(r.outcome.exit_code() == Some(0), "the job failed: {}", r.outcome);
        let d = guests::run_direct(&with_fuel, &direct_module, true).await?;
        let u = guests::run_direct(&no_fuel, &no_fuel_module, false).await?;
        on_grid.push(g);
        direct.push(d);
        unmetered.push(u);
        ratio.push_ratio(g.as_secs_f64() / d.as_secs_f64());
        fuel_ratio.push_ratio(d.as_secs_f64() / u.as_secs_f64());
    }
    println!("\n## 3. Compute overhead (trial-division primes below {n})");
    println!("through the grid, submit to finished: {}", on_grid.summary());
    println!("plain embedding, same engine config (fuel on): {}", direct.summary());
    println!("plain embedding, fuel off: {}", unmetered.summary());
    println!("grid / direct, pair by pair: {}", ratio.ratio_summary());
    println!("fuel on / fuel off, pair by pair: {}", fuel_ratio.ratio_summary());
    Ok(())
}

/// 6: the master's memory with many queued jobs, and a node's idle and busy.
async fn memory(q: bool) -> Result<()> {
    let dir = std::env::current_exe()?.parent().context("exe dir")?.to_owned();
    let (master_bin, node_bin) = (dir.join("grid-master"), dir.join("grid-node"));
    if !master_bin.is_file() || !node_bin.is_file() {
        println!("\n## 6. Memory\nskipped: build the binaries first (`cargo build --release --workspace`)");
        return Ok(());
    }
    let data = tempfile::tempdir()?;
    let (mut master, url) = spawn_master(&master_bin, &data.path().join("m"))?;
    let mut client = Client::connect(&url).await?;
    let hello = client.upload(&wat::parse_str(guests::HELLO)?).await?;
    let queued = if q { 2000 } else { 100_000 };
    let before = rss(master.id());
    windowed(queued, 256, || {
        let (mut c, m) = (client.clone(), hello.clone());
        async move { c.submit(&m, &[], small()).await }
    })
    .await?;
    let after = rss(master.id());
    println!("\n## 6. Memory");
    println!("master RSS: {before} idle, {after} with {queued} jobs queued");
    let _ = master.kill();

    // A node, idle and with every slot busy (against a fresh master).
    let (mut master, url) = spawn_master(&master_bin, &data.path().join("m2"))?;
    let mut node = std::process::Command::new(&node_bin)
        .args(["--master", &url, "--slots", "2", "--cache-dir"])
        .arg(data.path().join("n"))
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut client = Client::connect(&url).await?;
    while client.nodes().await? == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let idle = rss(node.id());
    let sleeper = client.upload(&wat::parse_str(guests::SLEEP_2S)?).await?;
    let limits = Limits { memory: 64 << 20, ..small() };
    let ids = [client.submit(&sleeper, &[], limits).await?, client.submit(&sleeper, &[], limits).await?];
    tokio::time::sleep(Duration::from_millis(800)).await;
    let busy = rss(node.id());
    for id in &ids {
        client.wait(id).await?;
    }
    println!("node RSS (2 slots): {idle} idle, {busy} with both slots running");
    let _ = node.kill();
    let _ = master.kill();
    Ok(())
}

/// A `grid-master` process with its data in `dir`, and its URL once ready.
fn spawn_master(bin: &std::path::Path, dir: &std::path::Path) -> Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let mut master = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(master.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    Ok((master, format!("http://{addr}")))
}

fn rss(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l[6..].trim().to_owned()))
        .unwrap_or_else(|| "?".into())
}
