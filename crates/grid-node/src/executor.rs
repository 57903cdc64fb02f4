//! Runs one job: a fresh store with the job's fuel, memory and time limits,
//! WASI (preview 1 for a module, preview 2 for a component) wired to the
//! job's args, env, stdin, output sinks and scratch directories, and the
//! classification of how it ended.

use crate::cache::Prepared;
use crate::ctx::JobCtx;
use crate::determinism;
use crate::disk;
use crate::error::one_line;
use crate::limits::{JobLimiter, MAX_RESOURCES_PER_JOB, MemoryLimitHit};
use crate::output::{Chunk, OutputBudget, OutputLimitHit};
use grid_core::archive::{self, Escape};
use grid_core::{JobReport, JobSpec, MappedDir, Outcome, OutputStream};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder, WasiView};

/// Fuel a job burns between yields to the async executor, so one job cannot
/// hold a worker thread.
pub const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// Raised by the epoch callback when a job's deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("wall-clock timeout")]
struct TimeoutHit;

/// A job ready to run on this node.
pub struct Run<'a> {
    /// The job.
    pub spec: &'a JobSpec,
    /// The compiled module or component.
    pub pre: Prepared,
    /// Where the job's output goes.
    pub output: mpsc::Sender<Chunk>,
    /// Resolves when someone cancels the job.
    pub cancelled: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>,
    /// A fresh directory for the job's scratch space, removed by the caller;
    /// `None` when the job maps no directories (it then has no scratch space).
    pub scratch: Option<&'a Path>,
    /// This node's name, for the report.
    pub node: &'a str,
    /// When the node received the job.
    pub received: Instant,
}

/// Runs a job to its end and reports how it went. Never fails: every way a
/// job can end is an [`Outcome`].
pub async fn run(job: Run<'_>) -> JobReport {
    let spec = job.spec;
    let started = Instant::now();
    let report = |outcome| JobReport::before_start(outcome, job.node, &spec.limits);

    // Mapped directories: unpacked into scratch, preopened at their guest paths.
    let mut builder = WasiCtxBuilder::new();
    let mut dirs = Vec::new();
    let mut unpacked = 0u64;
    for (i, dir) in spec.dirs.iter().enumerate() {
        let Some(scratch) = job.scratch else {
            return report(Outcome::NodeError("no scratch space for the job's directories".into()));
        };
        let host = scratch.join(i.to_string());
        let budget = spec.limits.disk.saturating_sub(unpacked);
        match std::fs::create_dir_all(&host).and_then(|_| archive::unpack(&dir.archive, &host, budget)) {
            Ok(bytes) => unpacked += bytes,
            Err(e) if e.kind() == std::io::ErrorKind::QuotaExceeded => return report(Outcome::DiskLimit),
            Err(e) => return report(Outcome::NodeError(format!("failed to unpack `{}`: {e}", dir.guest_path))),
        }
        if let Err(e) = builder.preopened_dir(&host, &dir.guest_path, FsPerms::ReadWrite) {
            return report(Outcome::NodeError(format!("failed to map `{}`: {}", dir.guest_path, one_line(&e))));
        }
        dirs.push((host, dir.guest_path.clone()));
    }

    let budget = OutputBudget::new(job.output, spec.limits.output);
    builder
        .args(&spec.args)
        .envs(&spec.env)
        .stdin(MemoryInputPipe::new(spec.stdin.clone()))
        .stdout(budget.sink(OutputStream::Stdout))
        .stderr(budget.sink(OutputStream::Stderr));
    // A deterministic job sees a virtual clock and seeded random bytes.
    let clock = spec.deterministic.then(|| determinism::configure(&mut builder, spec));
    let mut ctx = JobCtx::new(builder.build_p1(), JobLimiter::new(spec.limits.memory), clock);
    ctx.ctx().table.set_max_capacity(MAX_RESOURCES_PER_JOB);

    let mut store = Store::new(job.pre.engine(), ctx);
    store.limiter(|ctx| &mut ctx.limiter);
    if let Err(e) =
        store.set_fuel(spec.limits.fuel).and_then(|_| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)))
    {
        return report(Outcome::NodeError(one_line(&e)));
    }
    let deadline = started + spec.limits.timeout;
    store.set_epoch_deadline(1);
    // Checked once per tick until the deadline; the fuel yields already give
    // the other tasks their turn, so the check does not yield itself.
    store.epoch_deadline_callback(move |_| match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(UpdateDeadline::Continue(1)),
        _ => Err(wasmtime::Error::new(TimeoutHit)),
    });

    let mut startup = Duration::ZERO;
    let guest = async {
        match &job.pre {
            Prepared::Module(pre) => {
                let instance = pre.instantiate_async(&mut store).await?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                startup = job.received.elapsed();
                start.call_async(&mut store, ()).await
            }
            Prepared::Component(pre) => {
                let command = pre.instantiate_async(&mut store).await?;
                startup = job.received.elapsed();
                // `run` returning its error is the command's failure: exit code 1.
                match command.wasi_cli_run().call_run(&mut store).await? {
                    Ok(()) => Ok(()),
                    Err(()) => Err(wasmtime::Error::new(I32Exit(1))),
                }
            }
        }
    };
    // A guest blocked in a host call (a long sleep in `poll_oneoff`) does not
    // reach an epoch check, so the deadline is also enforced from outside.
    // Only mapped directories take space; a job without them has no scratch.
    let scratch = job.scratch.filter(|_| !dirs.is_empty());
    let disk_full = async {
        match scratch {
            None => std::future::pending().await,
            Some(scratch) => disk::exceeded(scratch.to_owned(), spec.limits.disk).await,
        }
    };
    let ended = tokio::select! {
        r = guest => Ended::Guest(r),
        _ = tokio::time::sleep_until(deadline.into()) => Ended::Timeout,
        _ = disk_full => Ended::DiskLimit,
        _ = job.cancelled => Ended::Cancelled,
    };
    let mut outcome = match ended {
        Ended::Timeout => Outcome::Timeout,
        Ended::Cancelled => Outcome::Cancelled,
        Ended::DiskLimit => Outcome::DiskLimit,
        Ended::Guest(Ok(())) => Outcome::Exited(0),
        Ended::Guest(Err(e)) => classify(&e, &store, &budget),
    };
    // What the guest wrote in its last moments counts too.
    if let Some(scratch) = scratch
        && outcome != Outcome::Cancelled
        && disk::usage(scratch, spec.limits.disk) > spec.limits.disk
    {
        outcome = Outcome::DiskLimit;
    }
    let mut report = finish(report(outcome), &store, started, &dirs, spec.deterministic);
    report.startup = startup;
    report
}

enum Ended {
    Guest(wasmtime::Result<()>),
    Timeout,
    DiskLimit,
    Cancelled,
}

fn classify(e: &wasmtime::Error, store: &Store<JobCtx>, budget: &OutputBudget) -> Outcome {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return Outcome::Exited(exit.0);
    }
    if budget.exceeded() || e.downcast_ref::<OutputLimitHit>().is_some() {
        return Outcome::OutputLimit;
    }
    let table_full = matches!(e.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full));
    if store.data().limiter.hit() || e.downcast_ref::<MemoryLimitHit>().is_some() || table_full {
        return Outcome::MemoryLimit;
    }
    if e.downcast_ref::<TimeoutHit>().is_some() {
        return Outcome::Timeout;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::StackOverflow) => Outcome::StackOverflow,
        Some(Trap::Interrupt) => Outcome::Timeout,
        Some(trap) => Outcome::Trap(trap.to_string().trim_start_matches("wasm trap: ").to_owned()),
        // The outermost layers are wasm backtraces; the last one says what happened.
        None => Outcome::Trap(e.chain().last().map(one_line).unwrap_or_else(|| one_line(e))),
    }
}

fn finish(
    mut report: JobReport,
    store: &Store<JobCtx>,
    started: Instant,
    dirs: &[(std::path::PathBuf, String)],
    deterministic: bool,
) -> JobReport {
    report.wall = started.elapsed();
    report.fuel_used = report.fuel_limit.saturating_sub(store.get_fuel().unwrap_or(0));
    report.peak_memory = store.data().limiter.peak();
    if report.outcome == Outcome::DiskLimit {
        // Over its limit: nothing of it travels back.
        return report;
    }
    // A deterministic job's directories travel without times or owners, so
    // the same files give the same bytes on every node.
    let pack = if deterministic { archive::pack_deterministic } else { archive::pack };
    for (host, guest_path) in dirs {
        match pack(host, Escape::Skip) {
            Ok(archive) => report.dirs.push(MappedDir { guest_path: guest_path.clone(), archive }),
            Err(e) => {
                report.outcome = Outcome::NodeError(format!("failed to pack `{guest_path}` for write-back: {e}"));
                report.dirs.clear();
                return report;
            }
        }
    }
    report
}
