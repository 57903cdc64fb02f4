//! `grid-cli logs`: a job's output, kept with the job.

use crate::commands::GlobalArgs;
use crate::follow::{Follower, Output, Role};
use crate::rpc::{Client, Event};
use anyhow::Result;
use clap::Parser;
use grid_core::OutputStream;
use std::io::Write;
use std::process::ExitCode;

/// Print a job's output.
///
/// Its stdout and stderr: what it has written so far (of its last attempt),
/// or with `--follow` everything until it ends.
#[derive(Parser, Debug)]
pub struct LogsCommand {
    /// The job's id.
    job: String,
    /// Keep printing until the job ends.
    #[arg(short, long)]
    follow: bool,
}

impl LogsCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let master = global.remote.as_ref();
        let mut client = Client::connect(master).await?;
        if self.follow {
            let verbose = global.verbose > 0;
            Follower::new(Role::Watcher)?.follow(&mut client, master, &self.job, None, Output::Print, verbose).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut watch = client.watch(&self.job, true).await?;
        let mut chunks = Vec::new();
        while let Some(event) = watch.next().await? {
            match event {
                // Output before a retry belongs to a void attempt.
                Event::Retry(_) => chunks.clear(),
                Event::Output(stream, d) => chunks.push((stream, d)),
                Event::Assigned(_) | Event::Finished(_) => {}
            }
        }
        for (stream, data) in chunks {
            match stream {
                OutputStream::Stdout => std::io::stdout().write_all(&data)?,
                // A closed stderr leaves stdout to be written.
                OutputStream::Stderr => {
                    let _ = std::io::stderr().write_all(&data);
                }
            }
        }
        std::io::stdout().flush()?;
        Ok(ExitCode::SUCCESS)
    }
}
