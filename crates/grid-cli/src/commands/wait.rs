//! `grid-cli wait`: wait for a job and exit as `run` would have.

use crate::commands::GlobalArgs;
use crate::exit;
use crate::follow::{self, Follower, Output, Role};
use crate::rpc::Client;
use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;

/// Wait for a job and exit as `run` would.
///
/// Exits with the job's exit code, or with the grid's code and one `grid:`
/// line.
#[derive(Parser, Debug)]
#[command(after_help = exit::HELP)]
pub struct WaitCommand {
    /// The job's id.
    job: String,
}

impl WaitCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let master = global.remote.as_ref();
        let mut client = Client::connect(master).await?;
        let verbose = global.verbose > 0;
        let follower = Follower::new(Role::Watcher)?;
        let report = follower.follow(&mut client, master, &self.job, None, Output::Discard, verbose).await?;
        Ok(report.map_or(ExitCode::SUCCESS, |r| follow::exit_status(&r)))
    }
}
