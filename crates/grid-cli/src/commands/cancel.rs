//! `grid-cli cancel`: stop a job.

use crate::commands::GlobalArgs;
use crate::exit::{self, Failure};
use crate::rpc::Client;
use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;

/// Cancel a job that is queued or running.
#[derive(Parser, Debug)]
pub struct CancelCommand {
    /// The job's id.
    job: String,
}

impl CancelCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let mut client = Client::connect(global.remote.as_ref()).await?;
        if global.master.is_none() {
            // The embedded grid in this process only reads the record: a job
            // not ended yet belongs to the `run` that started it.
            if client.job(&self.job).await?.result.is_none() {
                return Err(Failure::with(
                    exit::GRID_ERROR,
                    format!(
                        "job {} runs on the embedded grid of the `grid-cli run` that started it: \
                         Ctrl-C there cancels it",
                        self.job
                    ),
                ));
            }
            outln!("{} had already ended", self.job)?;
            return Ok(ExitCode::SUCCESS);
        }
        if client.cancel(&self.job).await? {
            outln!("cancelling {}", self.job)?;
        } else {
            outln!("{} had already ended", self.job)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
