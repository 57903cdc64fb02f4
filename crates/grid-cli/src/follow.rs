//! Following a job to its end: printing its output as it comes, riding out
//! a restarted master, cancelling on Ctrl-C, and the exit status that ends
//! `run` and `wait`.

use crate::exit::{self, Failure};
use crate::rpc::{Client, Event, Watch};
use anyhow::{Context, Result};
use grid_core::{JobReport, OutputStream, format_fuel};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a follower keeps trying to reach a master that went away.
const REATTACH_FOR: Duration = Duration::from_secs(120);

/// What to do with the job's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Print it to this process's stdout and stderr.
    Print,
    /// Leave it.
    Discard,
}

/// Follows `job_id` until it ends. With a named master, a broken stream is
/// followed again once the master is back, without printing twice what was
/// already printed. Ctrl-C cancels the job; a second Ctrl-C stops waiting.
/// `None` when our own stdout closed (the job is cancelled then). `first`
/// is a watch already open on the job, if any.
pub async fn follow(
    client: &mut Client,
    master: Option<&str>,
    job_id: &str,
    mut first: Option<Watch>,
    output: Output,
    verbose: bool,
) -> Result<Option<JobReport>> {
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("failed to listen for Ctrl-C")?;
    let mut interrupted = false;
    // Bytes printed so far per stream. After reattaching, or when the job
    // runs again, its output is replayed from the start and this much of it
    // is skipped: a program that prints the same again reads seamlessly.
    let mut printed = [0usize; 2];
    let mut lost_at: Option<Instant> = None;
    loop {
        if let Some(since) = lost_at {
            if since.elapsed() > REATTACH_FOR {
                return Err(Failure::with(
                    exit::GRID_ERROR,
                    format!("lost master `{}` while following job {job_id}", master.unwrap_or("embedded")),
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = interrupts.recv() => {
                    return Err(Failure::with(
                        exit::CANCELLED,
                        format!("interrupted while waiting for the master; job {job_id} may still run"),
                    ));
                }
            }
            match Client::connect(master).await {
                Ok(c) => *client = c,
                Err(_) => continue,
            }
        }
        let watched = match first.take() {
            Some(w) => Ok(w),
            None => client.watch(job_id, false).await,
        };
        let mut watch = match watched {
            Ok(w) => w,
            Err(_) if lost_at.is_some() => continue,
            Err(e) => return Err(e),
        };
        let mut seen = [0usize; 2];
        let broke = loop {
            let event = tokio::select! {
                e = watch.next() => e,
                _ = interrupts.recv() => {
                    if interrupted {
                        return Err(Failure::with(exit::CANCELLED, format!("interrupted; job {job_id} was asked to stop")));
                    }
                    interrupted = true;
                    client.cancel(job_id).await?;
                    continue;
                }
            };
            let event = match event {
                Ok(Some(event)) => event,
                Ok(None) => break anyhow::anyhow!("the event stream ended early"),
                Err(e) => break e,
            };
            lost_at = None;
            let written = match event {
                Event::Assigned(node) => {
                    if verbose {
                        eprintln!("grid: job {job_id} running on node `{node}`");
                    }
                    Ok(())
                }
                Event::Retry(attempt) => {
                    if verbose {
                        eprintln!("grid: job {job_id} lost its node; attempt {attempt} starts");
                    }
                    seen = [0, 0];
                    Ok(())
                }
                Event::Output(OutputStream::Stdout, data) => {
                    emit(output, &mut std::io::stdout(), &data, &mut seen[0], &mut printed[0])
                }
                Event::Output(OutputStream::Stderr, data) => {
                    emit(output, &mut std::io::stderr(), &data, &mut seen[1], &mut printed[1])
                }
                Event::Finished(report) => return Ok(Some(report)),
            };
            if let Err(e) = written {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    let _ = client.cancel(job_id).await;
                    return Ok(None);
                }
                return Err(e).context("failed to write the job's output");
            }
        };
        // Only a named master comes back; an embedded one died with us.
        if master.is_none() {
            return Err(Failure::with(exit::GRID_ERROR, format!("lost job {job_id}'s event stream: {broke:#}")));
        }
        if verbose {
            eprintln!("grid: lost the master ({broke:#}); following job {job_id} again once it is back");
        }
        lost_at.get_or_insert_with(Instant::now);
    }
}

/// Writes the part of `data` not printed before a reattach.
fn emit(
    output: Output,
    out: &mut impl Write,
    data: &[u8],
    seen: &mut usize,
    printed: &mut usize,
) -> std::io::Result<()> {
    let start = *seen;
    *seen += data.len();
    if output == Output::Discard || *seen <= *printed {
        return Ok(());
    }
    let skip = printed.saturating_sub(start);
    out.write_all(&data[skip..])?;
    out.flush()?;
    *printed = *seen;
    Ok(())
}

/// Prints the job's cost on stderr (for `--stats` and `-v`).
pub fn print_stats(job_id: &str, report: &JobReport) {
    eprintln!(
        "grid: job {job_id} on node `{}`: {}, fuel {} of {}, peak memory {}, wall {:.1?}, start-up {:.1?}",
        report.node,
        report.outcome,
        format_fuel(report.fuel_used),
        format_fuel(report.fuel_limit),
        bytesize::ByteSize(report.peak_memory).display().iec(),
        report.wall,
        report.startup
    );
}

/// The exit status for a finished job, with its one `grid:` line when it
/// did not exit by itself.
pub fn exit_status(report: &JobReport) -> ExitCode {
    if report.outcome.exit_code().is_none() {
        eprintln!("grid: {}", report.reason());
    }
    ExitCode::from(exit::for_outcome(&report.outcome))
}
