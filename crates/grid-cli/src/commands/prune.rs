//! `grid-cli prune`: forget the embedded grid's old finished jobs now.

use crate::commands::GlobalArgs;
use crate::embedded::{self, KEEP_FINISHED};
use crate::exit::{self, Failure};
use anyhow::Result;
use clap::Parser;
use grid_core::units::format_duration;
use std::process::ExitCode;
use std::sync::LazyLock;
use std::time::Duration;

static KEEP: LazyLock<String> = LazyLock::new(|| format_duration(KEEP_FINISHED));

/// Forget the embedded grid's finished jobs older than a bound.
///
/// The embedded grid prunes its record (under the user's cache dir) of jobs
/// that finished more than 7 days ago each time it runs a job; this prunes
/// now, with their output, and says how many it forgot. Queued and running
/// jobs stay. A named master prunes its own record: start it with
/// `grid-master --keep-finished DURATION`.
#[derive(Parser, Debug)]
pub struct PruneCommand {
    /// Forget jobs that finished longer ago than this, e.g. `1d` or `12h`
    /// (`0s`: every finished job).
    #[arg(long, default_value = KEEP.as_str(), value_name = "DURATION", value_parser = grid_core::parse_duration)]
    older_than: Duration,
}

impl PruneCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        if let Some(master) = &global.master {
            return Err(Failure::with(
                exit::GRID_ERROR,
                format!(
                    "`prune` prunes the embedded grid's record; master `{master}` prunes its own when started \
                     with `grid-master --keep-finished DURATION`"
                ),
            ));
        }
        let (pruned, record) = embedded::prune(self.older_than).await?;
        let jobs = if pruned == 1 { "job" } else { "jobs" };
        outln!(
            "pruned {pruned} finished {jobs} older than {} from `{}`",
            format_duration(self.older_than),
            record.display()
        )?;
        Ok(ExitCode::SUCCESS)
    }
}
