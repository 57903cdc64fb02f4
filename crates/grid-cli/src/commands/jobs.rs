//! `grid-cli jobs`: the newest jobs.

use crate::commands::GlobalArgs;
use crate::commands::status::to_json;
use crate::rpc::Client;
use anyhow::Result;
use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};
use grid_core::JobState;
use std::process::ExitCode;
use std::sync::LazyLock;

/// List the newest jobs.
///
/// Each with its id, state, tenant, node, and how it ended (or why it still
/// waits).
#[derive(Parser, Debug)]
pub struct JobsCommand {
    /// Only jobs in this state.
    #[arg(long, value_name = "STATE", value_enum)]
    state: Option<StateArg>,
    /// At most this many jobs (fetched a page at a time).
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A job state as `--state` takes it, by `JobState`'s own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StateArg(JobState);

impl ValueEnum for StateArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<[StateArg; JobState::ALL.len()]> = LazyLock::new(|| JobState::ALL.map(StateArg));
        &*ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.as_str()))
    }
}

impl JobsCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let mut client = Client::connect(global.master.as_deref()).await?;
        let jobs = client.jobs(self.state.map(|s| s.0), self.limit).await?;
        if self.json {
            let all: Vec<_> = jobs.iter().map(to_json).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<[String; 6]> = jobs
            .iter()
            .map(|j| {
                let ended = j.result.as_ref().map_or(j.waiting.clone(), |r| match r.outcome.exit_code() {
                    Some(code) => format!("exit {code}"),
                    None => r.reason(),
                });
                let module = j.args.first().cloned().unwrap_or_else(|| j.module.chars().take(12).collect());
                [j.id.clone(), j.state.to_string(), j.tenant.clone(), j.node.clone(), module, ended]
            })
            .collect();
        crate::table::print_table(&["ID", "STATE", "TENANT", "NODE", "MODULE", "ENDED"], &rows);
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_takes_every_job_state_by_name_and_nothing_else() {
        let parse = |args: &[&str]| JobsCommand::try_parse_from(["jobs"].iter().chain(args));
        for state in JobState::ALL {
            assert_eq!(parse(&["--state", state.as_str()]).unwrap().state, Some(StateArg(state)));
        }
        assert_eq!(parse(&[]).unwrap().state, None);
        let err = parse(&["--state", "done"]).unwrap_err().to_string();
        assert!(err.contains("[possible values: queued, running, succeeded, failed, cancelled]"), "{err}");
    }
}
