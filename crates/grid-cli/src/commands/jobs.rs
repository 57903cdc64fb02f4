//! `grid-cli jobs`: the newest jobs.

use crate::commands::GlobalArgs;
use crate::commands::status::to_json;
use crate::rpc::Client;
use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;

/// List the newest jobs.
///
/// Each with its id, state, tenant, node, and how it ended (or why it still
/// waits).
#[derive(Parser, Debug)]
pub struct JobsCommand {
    /// Only jobs in this state.
    #[arg(long, value_name = "STATE", value_parser = ["queued", "running", "succeeded", "failed", "cancelled"])]
    state: Option<String>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl JobsCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let mut client = Client::connect(global.master.as_deref()).await?;
        let jobs = client.jobs(self.state.as_deref(), self.limit).await?;
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
                let module = j.args.first().cloned().unwrap_or_else(|| j.module[..12].to_owned());
                [j.id.clone(), j.state.clone(), j.tenant.clone(), j.node.clone(), module, ended]
            })
            .collect();
        crate::table::print_table(&["ID", "STATE", "TENANT", "NODE", "MODULE", "ENDED"], &rows);
        Ok(ExitCode::SUCCESS)
    }
}
