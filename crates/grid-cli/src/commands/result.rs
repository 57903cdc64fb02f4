//! `grid-cli result`: what a finished job left in `/out`, fetched after the
//! fact from the master's record.

use crate::commands::GlobalArgs;
use crate::exit::{self, Failure};
use crate::output_dir::{self, GUEST_PATH};
use crate::rpc::{Client, Event};
use anyhow::Result;
use clap::Parser;
use grid_core::Outcome;
use std::path::PathBuf;
use std::process::ExitCode;

/// Fetch what a finished job left in `/out`.
///
/// For a job submitted with `submit --output-dir`: the files it wrote to
/// its `/out` (a structured result as `result.json`) are written into DIR,
/// created if missing, as `run --output-dir` would have done; files already
/// in DIR stay unless the job wrote one of the same name. The master keeps
/// them with the job until it prunes the job.
#[derive(Parser, Debug)]
pub struct ResultCommand {
    /// The job's id.
    job: String,
    /// Where to write what the job left in `/out`.
    #[arg(long, value_name = "DIR")]
    output_dir: PathBuf,
}

impl ResultCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let id = &self.job;
        let mut client = Client::connect(global.remote.as_ref()).await?;
        let job = client.job(id).await?;
        if !job.state.is_final() {
            return Err(Failure::with(
                exit::GRID_ERROR,
                format!("job {id} is {} and has no result yet: wait for it with `grid-cli wait {id}`", job.state),
            ));
        }
        // The report the record keeps comes with the job's last event, its
        // written-back directories included.
        let mut watch = client.watch(id, true).await?;
        let mut report = None;
        while let Some(event) = watch.next().await? {
            if let Event::Finished(r) = event {
                report = Some(r);
            }
        }
        let Some(report) = report else {
            return Err(Failure::with(exit::GRID_ERROR, format!("the master sent no end of job {id}")));
        };
        if !report.dirs.iter().any(|d| d.guest_path == GUEST_PATH) {
            let why = match report.outcome {
                Outcome::DiskLimit => "it went over its disk limit, so nothing of it was kept".to_owned(),
                _ if job.attempts == 0 || report.node.is_empty() => format!("it never ran ({})", report.reason()),
                _ => "only a job submitted with `--output-dir` has one".to_owned(),
            };
            return Err(Failure::with(exit::GRID_ERROR, format!("job {id} left no `{GUEST_PATH}`: {why}")));
        }
        output_dir::create(&self.output_dir)?;
        output_dir::write_back(&report, &self.output_dir)?;
        Ok(ExitCode::SUCCESS)
    }
}
