//! `grid-cli submit`: queue a job and print its id at once.

use crate::commands::GlobalArgs;
use crate::job::JobArgs;
use crate::output_dir;
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Queue a job and print its id.
///
/// Follow it later with `status`, `logs` or `wait`. Takes the flags that
/// describe a job in `run` (not `--each` or `--stats`). With `--output-dir`,
/// what the job leaves in `/out` is kept with it: collect later with
/// `grid-cli result ID --output-dir DIR`.
#[derive(Parser, Debug)]
pub struct SubmitCommand {
    #[command(flatten)]
    job: JobArgs,
    /// Give the job an empty, writable directory at `/out`, as `run
    /// --output-dir` does. The master keeps what the job leaves there, and
    /// `grid-cli result ID --output-dir DIR` writes it into DIR (this one or
    /// any other) once the job has ended; nothing is written here now.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

impl SubmitCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        crate::commands::needs_master(global, "submit")?;
        let stdin = JobArgs::read_stdin()?;
        let out = self.output_dir.as_ref().map(|_| output_dir::mapping(&self.job)).transpose()?;
        let (mut client, mut spec) = self.job.prepare(global.remote.as_ref(), &stdin).await?;
        spec.dirs.extend(out);
        let job_id = client.submit(spec, self.job.submission()).await?;
        outln!("{job_id}")?;
        Ok(ExitCode::SUCCESS)
    }
}
