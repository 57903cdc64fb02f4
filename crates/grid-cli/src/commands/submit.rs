//! `grid-cli submit`: queue a job and print its id at once.

use crate::commands::GlobalArgs;
use crate::job::JobArgs;
use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;

/// Queue a job and print its id.
///
/// Follow it later with `status`, `logs` or `wait`. Takes the flags that
/// describe a job in `run` (not `--each`, `--output-dir` or `--stats`).
#[derive(Parser, Debug)]
pub struct SubmitCommand {
    #[command(flatten)]
    job: JobArgs,
}

impl SubmitCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        crate::commands::needs_master(global, "submit")?;
        let stdin = JobArgs::read_stdin()?;
        let (mut client, spec) = self.job.prepare(global.master.as_deref(), &stdin).await?;
        let job_id = client.submit(spec, self.job.submission()).await?;
        println!("{job_id}");
        Ok(ExitCode::SUCCESS)
    }
}
