//! `grid-cli run`: run a module on the grid as if it ran here.

use crate::commands::GlobalArgs;
use crate::exit::{self, Failure};
use crate::follow::{self, Follower, Output, Role};
use crate::job::JobArgs;
use crate::output_dir;
use anyhow::{Context, Result};
use clap::Parser;
use grid_core::JobReport;
use grid_core::archive;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a module on the grid and stream its output here.
///
/// MODULE is a binary `.wasm` or a text `.wat` file, a core module or a
/// component. Arguments after `--` go to the guest. Standard input, when it
/// is not a terminal, is passed to the guest; its stdout and stderr stream
/// here as it runs. With `--output-dir DIR`, what it writes to `/out` (a
/// structured result as `/out/result.json`) lands in DIR.
#[derive(Parser, Debug)]
#[command(after_help = exit::HELP)]
pub struct RunCommand {
    #[command(flatten)]
    job: JobArgs,
    /// Print the job's fuel, peak memory, wall time and node on stderr after it ends.
    #[arg(long)]
    stats: bool,
    /// Run one job per file matching this pattern (e.g. `'inputs/*.txt'`),
    /// in parallel across the grid, each with its file as stdin and the
    /// file's path as its last argument.
    #[arg(long, value_name = "GLOB")]
    each: Option<String>,
    /// Give the job an empty, writable directory at `/out`; what it writes
    /// there (its structured result as `/out/result.json`, say) is written
    /// into DIR, created if missing, when the job ends, whatever its exit
    /// code (but not past its disk limit). Files already in DIR stay unless
    /// the job writes one of the same name. With --each, each job's stdout
    /// goes to `DIR/<input name>.out` (its stderr, if any, to
    /// `<input name>.err`) and its `/out` to `DIR/<input name>/` [default
    /// with --each: grid-out]
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

impl RunCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let master = global.remote.as_ref();
        if let Some(pattern) = &self.each {
            let out_dir = self.output_dir.clone().unwrap_or_else(|| PathBuf::from("grid-out"));
            return crate::each::run_each(&self.job, master, pattern, &out_dir).await;
        }
        let stdin = JobArgs::read_stdin()?;
        let out = self.output_dir.as_ref().map(|_| output_dir::mapping(&self.job)).transpose()?;
        let (mut client, mut spec) = self.job.prepare(master, &stdin).await?;
        if let (Some(out), Some(dir)) = (out, &self.output_dir) {
            spec.dirs.push(out);
            output_dir::create(dir)?;
        }
        // Listening before the job exists: a signal from now on cancels it.
        let follower = Follower::new(Role::Owner)?;
        let (job_id, watch) = client.run(spec, self.job.submission()).await?;
        let verbose = global.verbose > 0;
        if verbose {
            errln!("grid: job {job_id} queued");
        }
        let Some(report) = follower.follow(&mut client, master, &job_id, Some(watch), Output::Print, verbose).await?
        else {
            // Our stdout closed under us: the job was cancelled, and that is fine.
            return Ok(ExitCode::SUCCESS);
        };
        self.write_back(&report)?;
        if let Some(dir) = &self.output_dir {
            output_dir::write_back(&report, dir)?;
        }
        if self.stats || verbose {
            follow::print_stats(&job_id, &report);
        }
        Ok(follow::exit_status(&report))
    }

    /// Applies what the job did in its mapped directories to the host. A job
    /// that never ran, or went over its disk limit, sends nothing back and
    /// changes nothing here.
    fn write_back(&self, report: &JobReport) -> Result<()> {
        if report.dirs.is_empty() {
            return Ok(());
        }
        for (host, guest) in &self.job.dirs {
            let Some(dir) = report.dirs.iter().find(|d| d.guest_path == *guest) else {
                return Err(Failure::with(exit::GRID_ERROR, format!("the node sent no contents for `{guest}`")));
            };
            archive::write_back(&dir.archive, host)
                .with_context(|| format!("failed to write back `{}`", host.display()))?;
        }
        Ok(())
    }
}
