//! `grid-cli run`: run a module on the grid as if it ran here.

use crate::commands::GlobalArgs;
use crate::exit::{self, Failure};
use crate::rpc::{Event, Grid};
use anyhow::{Context, Result};
use clap::Parser;
use grid_core::archive::{self, Escape};
use grid_core::{JobReport, JobSpec, Limits, MappedDir, format_fuel};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Run a WebAssembly module (binary `.wasm` or text `.wat`) on the grid.
///
/// Arguments after `--` go to the guest. Standard input, when it is not a
/// terminal, is passed to the guest; its stdout and stderr stream here as it
/// runs.
#[derive(Parser, Debug)]
#[command(after_help = exit::HELP)]
pub struct RunCommand {
    /// Fuel the job may burn (about one unit per wasm instruction), e.g. `10G`.
    #[arg(long, default_value = "10G", value_name = "N", value_parser = grid_core::parse_fuel)]
    fuel: u64,
    /// Linear memory the job may use, e.g. `256MiB`.
    #[arg(long, default_value = "512MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    memory: u64,
    /// Wall-clock time the job may take, e.g. `30s` or `500ms`.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = grid_core::parse_duration)]
    timeout: Duration,
    /// Bytes the job may write to stdout and stderr together.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    output_limit: u64,
    /// Bytes the job's mapped directories may hold when it ends (and while it runs).
    #[arg(long, default_value = "256MiB", value_name = "SIZE", value_parser = grid_core::parse_size)]
    disk_limit: u64,
    /// Set an environment variable for the guest; `--env NAME` passes this
    /// process's value of NAME.
    #[arg(long = "env", value_name = "NAME[=VAL]", value_parser = parse_env)]
    env: Vec<(String, Option<String>)>,
    /// Map a host directory into the guest at GUEST (default: HOST as
    /// written). Its contents travel with the job, and what the guest
    /// creates, changes or deletes there is written back when it ends.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<(PathBuf, String)>,
    /// Print the job's fuel, peak memory, wall time and node on stderr after it ends.
    #[arg(long)]
    stats: bool,
    /// The module to run.
    #[arg(value_name = "MODULE")]
    module: PathBuf,
    /// Arguments for the guest.
    #[arg(value_name = "ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, Option<String>), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("`{s}` has no variable name")),
        Some((k, v)) => Ok((k.to_owned(), Some(v.to_owned()))),
        None => Ok((s.to_owned(), None)),
    }
}

fn parse_dir(s: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = match s.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{s}` is not HOST[::GUEST]"));
    }
    Ok((PathBuf::from(host), guest.to_owned()))
}

impl RunCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let bytes = crate::module::load(&self.module)?;
        let spec_without_module = self.spec_parts()?;
        let mut grid = Grid::connect(global.master.as_deref())
            .await
            .map_err(|e| Failure::with(exit::GRID_ERROR, format!("{e:#}")))?;
        let module = grid
            .ensure_module(&bytes)
            .await
            .with_context(|| format!("failed to upload `{}`", self.module.display()))?;
        let spec = JobSpec { module, ..spec_without_module };
        let job_id = grid.submit(spec).await.context("failed to submit the job")?;
        if global.verbose > 0 {
            eprintln!("grid: job {job_id} queued");
        }
        let report = self.follow(&mut grid, &job_id, global.verbose > 0).await?;
        let Some(report) = report else {
            // Our stdout closed under us: the job was cancelled, and that is fine.
            return Ok(ExitCode::SUCCESS);
        };
        self.write_back(&report)?;
        if self.stats || global.verbose > 0 {
            eprintln!(
                "grid: job {job_id} on node `{}`: {}, fuel {} of {}, peak memory {}, wall {:.1?}",
                report.node,
                report.outcome,
                format_fuel(report.fuel_used),
                format_fuel(report.fuel_limit),
                bytesize::ByteSize(report.peak_memory).display().iec(),
                report.wall
            );
        }
        if report.outcome.exit_code().is_none() {
            eprintln!("grid: {}", report.reason());
        }
        Ok(ExitCode::from(exit::for_outcome(&report.outcome)))
    }

    /// Everything in the job's spec but the module.
    fn spec_parts(&self) -> Result<JobSpec> {
        let mut args = vec![self.module.display().to_string()];
        args.extend(self.args.iter().cloned());
        let env = self
            .env
            .iter()
            .filter_map(|(k, v)| match v {
                Some(v) => Some((k.clone(), v.clone())),
                None => std::env::var(k).ok().map(|v| (k.clone(), v)),
            })
            .collect();
        let mut stdin = Vec::new();
        if !std::io::stdin().is_terminal() {
            std::io::stdin().read_to_end(&mut stdin).context("failed to read stdin")?;
        }
        let mut dirs = Vec::new();
        for (host, guest) in &self.dirs {
            if !host.is_dir() {
                return Err(Failure::with(exit::GRID_ERROR, format!("`{}` is not a directory", host.display())));
            }
            let archive = archive::pack(host, Escape::Fail)
                .map_err(|e| Failure::with(exit::GRID_ERROR, format!("failed to pack `{}`: {e}", host.display())))?;
            dirs.push(MappedDir { guest_path: guest.clone(), archive });
        }
        let limits = Limits {
            fuel: self.fuel,
            memory: self.memory,
            timeout: self.timeout,
            output: self.output_limit,
            disk: self.disk_limit,
        };
        Ok(JobSpec { module: grid_core::ModuleHash::of(&[]), args, env, stdin, dirs, limits })
    }

    /// Streams the job's output until it ends. Ctrl-C cancels the job on
    /// the grid. `None` when our own stdout closed.
    async fn follow(&self, grid: &mut Grid, job_id: &str, verbose: bool) -> Result<Option<JobReport>> {
        // One listener for the whole job, so no Ctrl-C falls between two.
        let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("failed to listen for Ctrl-C")?;
        let mut watch = grid.watch(job_id).await?;
        let mut interrupted = false;
        loop {
            let event = tokio::select! {
                e = watch.next() => e?,
                _ = interrupts.recv() => {
                    if interrupted {
                        return Err(Failure::with(exit::CANCELLED, format!("interrupted; job {job_id} was asked to stop")));
                    }
                    interrupted = true;
                    grid.cancel(job_id).await?;
                    continue;
                }
            };
            let Some(event) = event else {
                return Err(Failure::with(
                    exit::GRID_ERROR,
                    format!("the master ended job {job_id}'s event stream early"),
                ));
            };
            let written = match event {
                Event::Assigned(node) => {
                    if verbose {
                        eprintln!("grid: job {job_id} running on node `{node}`");
                    }
                    Ok(())
                }
                Event::Stdout(data) => write_all(&mut std::io::stdout(), &data),
                Event::Stderr(data) => write_all(&mut std::io::stderr(), &data),
                Event::Finished(report) => return Ok(Some(report)),
            };
            if let Err(e) = written {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    let _ = grid.cancel(job_id).await;
                    return Ok(None);
                }
                return Err(e).context("failed to write the job's output");
            }
        }
    }

    /// Applies what the job did in its mapped directories to the host.
    /// A job that never ran, or went over its disk limit, sends nothing back
    /// and changes nothing here.
    fn write_back(&self, report: &JobReport) -> Result<()> {
        if report.dirs.is_empty() {
            return Ok(());
        }
        for (host, guest) in &self.dirs {
            let Some(dir) = report.dirs.iter().find(|d| d.guest_path == *guest) else {
                return Err(Failure::with(exit::GRID_ERROR, format!("the node sent no contents for `{guest}`")));
            };
            archive::write_back(&dir.archive, host)
                .with_context(|| format!("failed to write back `{}`", host.display()))?;
        }
        Ok(())
    }
}

fn write_all(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data)?;
    out.flush()
}
