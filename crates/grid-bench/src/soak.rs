//! `grid-bench soak`: millions of tiny jobs through one master, in stretches,
//! with the master's RSS and the stretch's throughput after each; at the end,
//! whether RSS stayed flat and throughput held.

use crate::grid::{BenchGrid, Setup};
use crate::{guests, rss_bytes, small, spread};
use anyhow::{Context, Result};
use std::time::Instant;

/// RSS may grow to this many times its level after the first stretch.
const RSS_FACTOR: u64 = 2;
/// Throughput has fallen if the last stretches' mean is under this share
/// of the first stretches' mean.
const RATE_FLOOR: f64 = 0.8;

/// Runs `total` hello jobs through one master and two nodes of two slots,
/// from four clients of 256 jobs in flight, reporting every `stretch` jobs.
pub async fn soak(total: usize, stretch: usize, setup: Setup) -> Result<()> {
    let grid = BenchGrid::start(2, 2, setup).await?;
    let mut client = grid.client().await?;
    let hello = client.upload(&wat::parse_str(guests::HELLO)?).await?;
    client.run(&hello, &[], small()).await?;
    // In-process, the master shares this process with the nodes and the
    // clients; with `--processes`, it is a process of its own.
    let (pid, whose) = match grid.children.first() {
        Some(master) => (master.id(), "the master process's"),
        None => (std::process::id(), "this process's (master, nodes and clients)"),
    };
    println!(
        "\n## 7. Soak ({total} hello jobs through one master; two nodes of two slots; 4 clients, 256 in flight each)"
    );
    println!("RSS is {whose}; throughput is per stretch of {stretch} jobs");
    let mut stretches: Vec<(u64, f64)> = Vec::new();
    let mut done = 0;
    while done < total {
        let n = stretch.min(total - done);
        let t = Instant::now();
        spread(&grid, &hello, n, 4).await.with_context(|| format!("after {done} jobs"))?;
        let rate = n as f64 / t.elapsed().as_secs_f64();
        done += n;
        let rss = rss_bytes(pid).context("no VmRSS")?;
        println!("{done:>9} jobs: RSS {:>5} MiB, {rate:>6.0} jobs/s", rss >> 20);
        stretches.push((rss, rate));
    }
    let first = stretches[0].0;
    let peak = stretches.iter().map(|s| s.0).max().unwrap_or(first);
    let flat = peak <= RSS_FACTOR * first;
    println!(
        "RSS {} within {RSS_FACTOR}x of its level after the first stretch ({} MiB; peak {} MiB)",
        if flat { "stayed" } else { "did not stay" },
        first >> 20,
        peak >> 20
    );
    let quarter = stretches.len().div_ceil(4);
    let mean = |s: &[(u64, f64)]| s.iter().map(|s| s.1).sum::<f64>() / s.len() as f64;
    let (early, late) = (mean(&stretches[..quarter]), mean(&stretches[stretches.len() - quarter..]));
    let fell = late < RATE_FLOOR * early;
    println!(
        "throughput {}: {early:.0} jobs/s over the first {quarter} stretch(es), {late:.0} over the last {quarter}",
        if fell { "fell" } else { "held" }
    );
    Ok(())
}
