//! `grid-cli cancel`: stop a job.

use crate::commands::GlobalArgs;
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
        let mut client = Client::connect(global.master.as_deref()).await?;
        if client.cancel(&self.job).await? {
            println!("cancelling {}", self.job);
        } else {
            println!("{} had already ended", self.job);
        }
        Ok(ExitCode::SUCCESS)
    }
}
