//! `grid-bench`: measures the grid on this machine and prints a table.
//!
//! `cargo build --release --workspace && cargo run --release -p grid-bench -- all`
//! (`--quick` for a smoke run with tiny counts; `soak`, which `all` leaves
//! out, holds two million jobs through one master). Figures are medians over
//! repeated runs with min and max; ratios are taken pair by pair.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod grid;
mod guests;
mod soak;
mod stats;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use grid::{BenchGrid, Client, Setup};
use grid_core::Limits;
use grid_master::trust::VerifyMode;
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
    /// Run the master and the nodes as processes of their own (the release
    /// binaries next to this one) rather than inside the benchmark.
    #[arg(long)]
    processes: bool,
    /// The master serves plaintext (`grid-master --insecure`) instead of
    /// TLS: to measure what TLS costs.
    #[arg(long)]
    insecure: bool,
    /// How the master verifies its nodes' results: `off`, `adaptive` (the
    /// master's default: new nodes' results are checked by a second
    /// replica, trusted ones now and then) or `always`.
    #[arg(long, default_value = "adaptive", value_parser = ["off", "adaptive", "always"])]
    verify: String,
    /// Keep the master's job record in this PostgreSQL database
    /// (`grid-master --database URL`) instead of SQLite.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Keep the master's job record in a PostgreSQL server of its own:
    /// started for the run on a loopback port (Debian's `postgresql`,
    /// `fsync` on), and stopped after.
    #[arg(long, conflicts_with = "database")]
    postgres: bool,
    /// How many jobs `soak` runs through one master (`--quick`: 20,000).
    #[arg(long, default_value_t = 2_000_000, value_name = "N")]
    jobs: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    All,
    Latency,
    Throughput,
    Compute,
    Startup,
    Process,
    Memory,
    /// Not part of `all`: millions of jobs through one master, its RSS and
    /// throughput as they go.
    Soak,
}

fn main() -> Result<()> {
    // In-process nodes compile modules in a child of this binary.
    grid_node::compile::serve_if_child();
    let args: Args = grid_core::usage::parse();
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
    let verify = match args.verify.as_str() {
        "off" => VerifyMode::Off,
        "always" => VerifyMode::Always,
        _ => VerifyMode::Adaptive,
    };
    // One URL for the whole run; a server started for it lives as long.
    let server = match args.postgres {
        true => Some(grid_testpg::PgServer::start_durable().map_err(|e| anyhow::anyhow!("PostgreSQL: {e}"))?),
        false => None,
    };
    let url = match &server {
        Some(server) => Some(server.create_database("grid").map_err(|e| anyhow::anyhow!("PostgreSQL: {e}"))?),
        None => args.database,
    };
    let database = url.map(|url| &*Box::leak(url.into_boxed_str()));
    // A master on PostgreSQL leads through its lease: it runs as a process.
    let processes = args.processes || database.is_some();
    let setup = Setup { processes, fsync: true, insecure: args.insecure, verify, database };
    // Only throughput measures verification: the other figures are of one
    // run of each job, on grids that may have a single node.
    let own = Setup { verify: VerifyMode::Off, ..setup };
    println!(
        "# wasm-grid benchmarks ({machine}; master and nodes {}; verification {} in throughput, off elsewhere; job record in {}){}",
        if setup.processes { "as processes" } else { "in-process" },
        grid::verify_flag(verify),
        if setup.database.is_some() { "PostgreSQL" } else { "SQLite" },
        if q { " — quick smoke run, not a measurement" } else { "" }
    );
    let all = args.what == What::All;
    if all || args.what == What::Latency || args.what == What::Startup {
        latency_and_startup(q, own).await?;
    }
    if all || args.what == What::Throughput {
        throughput(q, setup).await?;
    }
    if all || args.what == What::Compute {
        compute(q, own).await?;
    }
    if all || args.what == What::Process {
        whole_process(q, own).await?;
    }
    if all || args.what == What::Memory {
        memory(q, Setup { fsync: true, insecure: false, ..own }).await?;
    }
    if args.what == What::Soak {
        soak::soak(if q { 20_000 } else { args.jobs }, if q { 2_000 } else { 100_000 }, own).await?;
    }
    Ok(())
}

fn small() -> Limits {
    Limits { memory: 16 << 20, disk: 1 << 20, ..Limits::default() }
}

/// 1 and 4: one tiny job at a time on a warm grid, and the node's share of it.
async fn latency_and_startup(q: bool, setup: Setup) -> Result<()> {
    println!("\n## 1. Warm latency (hello, cached on every node, one job at a time)");
    let mut start = Samples::default();
    for fsync in [true, false] {
        let grid = BenchGrid::start(2, 2, Setup { fsync, ..setup }).await?;
        let mut client = grid.client().await?;
        let hello = client.upload(&wat::parse_str(guests::HELLO)?).await?;
        for _ in 0..20 {
            client.run(&hello, &[], small()).await?;
        }
        let mut lat = Samples::default();
        for _ in 0..if q { 30 } else { 1000 } {
            let t = Instant::now();
            let r = client.run(&hello, &[], small()).await?;
            lat.push(t.elapsed());
            start.push(r.startup);
        }
        let record = if fsync { "each submission on disk before its id returns" } else { "master `--no-fsync`" };
        println!("submit to finished, client side ({record}): {}", lat.percentiles());
        if !fsync {
            // The floor under it: one bare round trip to the master.
            let mut rtt = Samples::default();
            for _ in 0..if q { 30 } else { 1000 } {
                let t = Instant::now();
                client.nodes().await?;
                rtt.push(t.elapsed());
            }
            println!("one bare gRPC round trip to the master (`ListNodes`), for scale: {}", rtt.percentiles());
        }
    }
    let grid = BenchGrid::start(2, 2, setup).await?;
    let mut client = grid.client().await?;
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
async fn throughput(q: bool, setup: Setup) -> Result<()> {
    let grid = BenchGrid::start(2, 2, setup).await?;
    let mut client = grid.client().await?;
    let hello = client.upload(&wat::parse_str(guests::HELLO)?).await?;
    client.run(&hello, &[], small()).await?;
    let total = if q { 200 } else { 5000 };
    if setup.verify == VerifyMode::Adaptive {
        // New nodes earn trust first, as on a grid that has run a while:
        // past the threshold a job is checked with probability
        // threshold / streak.
        spread(&grid, &hello, if q { 200 } else { 2000 }, 4).await?;
    }
    println!(
        "\n## 2. Throughput (hello, one master, two nodes of two slots, verification {})",
        grid::verify_flag(setup.verify)
    );
    for clients in [1usize, 4] {
        let mut rates = Samples::default();
        let cpu_before =
            (cpu_time(std::process::id()), grid.children.iter().map(|c| cpu_time(c.id())).collect::<Vec<_>>());
        let mut jobs = 0;
        for _ in 0..if q { 1 } else { 3 } {
            jobs += total;
            let t = Instant::now();
            spread(&grid, &hello, total, clients).await?;
            rates.push_rate(total as f64 / t.elapsed().as_secs_f64());
        }
        println!("{clients} client task(s), up to 256 jobs in flight each: {}", rates.rate_summary("jobs/s"));
        // With the grid in processes of its own, where the CPU time goes.
        if setup.processes {
            let per_job = |before: Duration, after: Duration| {
                format!("{:.0} µs", (after - before).as_secs_f64() * 1e6 / jobs as f64)
            };
            let mut shares = vec![format!("client {}", per_job(cpu_before.0, cpu_time(std::process::id())))];
            for (i, child) in grid.children.iter().enumerate() {
                let who = if i == 0 { "master".to_owned() } else { format!("node {i}") };
                shares.push(format!("{who} {}", per_job(cpu_before.1[i], cpu_time(child.id()))));
            }
            println!("  CPU time per job (user + system): {}", shares.join(", "));
        }
    }
    Ok(())
}

/// The CPU time (user and system) process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Runs `total` tiny jobs of `module` from `clients` client tasks (each on
/// a connection of its own), up to 256 in flight each; fails if any fails.
async fn spread(grid: &BenchGrid, module: &grid_core::ModuleHash, total: usize, clients: usize) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, module) = (grid.client().await?, module.clone());
        tasks.spawn(async move { in_flight(client, module, total / clients, 256).await });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
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
async fn compute(q: bool, setup: Setup) -> Result<()> {
    let grid = BenchGrid::start(1, 1, setup).await?;
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
    let mut on_node = Samples::default();
    for _ in 0..if q { 2 } else { 7 } {
        let t = Instant::now();
        let r = client.run(&module, &[], limits).await?;
        let g = t.elapsed();
        anyhow::ensure!(r.outcome.exit_code() == Some(0), "the job failed: {}", r.outcome);
        let d = guests::run_direct(&with_fuel, &direct_module, true).await?;
        let u = guests::run_direct(&no_fuel, &no_fuel_module, false).await?;
        on_grid.push(g);
        on_node.push(r.wall);
        direct.push(d);
        unmetered.push(u);
        ratio.push_ratio(g.as_secs_f64() / d.as_secs_f64());
        fuel_ratio.push_ratio(d.as_secs_f64() / u.as_secs_f64());
    }
    println!("\n## 3. Compute overhead (trial-division primes below {n})");
    println!("through the grid, submit to finished: {}", on_grid.summary());
    println!("  of which the node's own wall time for the job: {}", on_node.summary());
    println!("plain embedding, same engine config (fuel on): {}", direct.summary());
    println!("plain embedding, fuel off: {}", unmetered.summary());
    println!("grid / direct, pair by pair: {}", ratio.ratio_summary());
    println!("fuel on / fuel off, pair by pair: {}", fuel_ratio.ratio_summary());
    Ok(())
}

/// 5: `grid-cli run hello.wasm` as a whole process against a warm local
/// grid, against `wasmtime run hello.wasm`, in alternation.
async fn whole_process(q: bool, setup: Setup) -> Result<()> {
    println!("\n## 5. Whole process (`grid-cli run hello.wasm` on a warm local grid)");
    let cli = grid::sibling("grid-cli")?;
    let dir = tempfile::tempdir()?;
    let built = cli.parent().context("exe dir")?.join("../wasm32-wasip1/release/hello.wasm");
    let hello = dir.path().join("hello.wasm");
    if built.is_file() {
        std::fs::copy(&built, &hello)?;
    } else {
        std::fs::write(&hello, wat::parse_str(guests::HELLO)?)?;
    }
    let grid = BenchGrid::start(2, 2, setup).await?;
    let grid_run = {
        let mut cmd = std::process::Command::new(&cli);
        cmd.args(["run", "--master", &grid.url]).arg(&hello).arg("world");
        cmd
    };
    let wasmtime = guests::wasmtime_cli();
    let mut precompiled = None;
    if let Some(w) = &wasmtime {
        let cwasm = dir.path().join("hello.cwasm");
        timed(std::process::Command::new(w).arg("compile").arg(&hello).arg("-o").arg(&cwasm)).await?;
        precompiled = Some(cwasm);
    }
    let (mut on_grid, mut plain, mut pre, mut ratio, mut pre_ratio) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default(), Samples::default());
    timed(&mut clone_cmd(&grid_run)).await?;
    for _ in 0..if q { 5 } else { 100 } {
        let g = timed(&mut clone_cmd(&grid_run)).await?;
        on_grid.push(g);
        if let (Some(w), Some(cwasm)) = (&wasmtime, &precompiled) {
            let p = timed(std::process::Command::new(w).arg("run").arg(&hello).arg("world")).await?;
            let c = timed(std::process::Command::new(w).args(["run", "--allow-precompiled"]).arg(cwasm).arg("world"))
                .await?;
            plain.push(p);
            pre.push(c);
            ratio.push_ratio(g.as_secs_f64() / p.as_secs_f64());
            pre_ratio.push_ratio(g.as_secs_f64() / c.as_secs_f64());
        }
    }
    let what = if built.is_file() { "examples/hello" } else { "a WAT hello" };
    println!("`grid-cli run --master URL hello.wasm` ({what}): {}", on_grid.summary());
    match &wasmtime {
        Some(w) => {
            let w = w.canonicalize().unwrap_or_else(|_| w.clone());
            println!("`wasmtime run hello.wasm` ({}): {}", w.display(), plain.summary());
            println!("`wasmtime run --allow-precompiled hello.cwasm`: {}", pre.summary());
            println!("grid-cli / wasmtime run, pair by pair: {}", ratio.ratio_summary());
            println!("grid-cli / wasmtime run of the precompiled module, pair by pair: {}", pre_ratio.ratio_summary());
        }
        None => println!("no `wasmtime` CLI on PATH (`scripts/bench` installs one): the comparison is skipped"),
    }
    Ok(())
}

fn clone_cmd(cmd: &std::process::Command) -> std::process::Command {
    let mut c = std::process::Command::new(cmd.get_program());
    c.args(cmd.get_args());
    c
}

/// Runs a command to its end, checks that it succeeded, and times it.
async fn timed(cmd: &mut std::process::Command) -> Result<Duration> {
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut cmd = std::mem::replace(cmd, std::process::Command::new("true"));
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let out = cmd.output()?;
        let took = t.elapsed();
        anyhow::ensure!(
            out.status.success(),
            "`{:?}` failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(took)
    })
    .await?
}

/// 6: the master's memory with many queued jobs, and a node's idle and busy.
async fn memory(q: bool, setup: Setup) -> Result<()> {
    let (Ok(_), Ok(node_bin)) = (grid::sibling("grid-master"), grid::sibling("grid-node")) else {
        println!("\n## 6. Memory\nskipped: build the binaries first (`cargo build --release --workspace`)");
        return Ok(());
    };
    let data = tempfile::tempdir()?;
    let (master, remote) = grid::spawn_master(&data.path().join("m"), setup).await?;
    let master = Reaped(master);
    let mut client = remote.client().await?;
    let hello = client.upload(&wat::parse_str(guests::HELLO)?).await?;
    let queued = if q { 2000 } else { 100_000 };
    let before = rss(master.0.id());
    windowed(queued, 256, || {
        let (mut c, m) = (client.clone(), hello.clone());
        async move { c.submit(&m, &[], small()).await }
    })
    .await?;
    let after = rss(master.0.id());
    println!("\n## 6. Memory");
    println!("master RSS: {before} idle, {after} with {queued} jobs queued");
    drop(master);

    // A node, idle and with every slot busy (against a fresh master).
    let (master, remote) = grid::spawn_master(&data.path().join("m2"), setup).await?;
    let _master = Reaped(master);
    let mut node = std::process::Command::new(&node_bin);
    remote.node_args(&mut node, &remote.join_token(1).await?);
    let node = node
        .args(["--slots", "2", "--cache-dir"])
        .arg(data.path().join("n"))
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let node = Reaped(node);
    let mut client = remote.client().await?;
    while client.nodes().await? == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let idle = rss(node.0.id());
    let sleeper = client.upload(&wat::parse_str(guests::SLEEP_2S)?).await?;
    let limits = Limits { memory: 64 << 20, ..small() };
    let ids = [client.submit(&sleeper, &[], limits).await?, client.submit(&sleeper, &[], limits).await?];
    tokio::time::sleep(Duration::from_millis(800)).await;
    let busy = rss(node.0.id());
    for id in &ids {
        client.wait(id).await?;
    }
    println!("node RSS (2 slots): {idle} idle, {busy} with both slots running");
    Ok(())
}

/// A child process killed when dropped, whichever way the benchmark ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss(pid: u32) -> String {
    rss_bytes(pid).map_or_else(|| "?".into(), |b| format!("{} kB", b >> 10))
}

/// Process `pid`'s resident set size in bytes (`VmRSS`).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().strip_suffix("kB")?.trim().parse::<u64>();
    kib.ok().map(|k| k << 10)
}
