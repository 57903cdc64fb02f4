//! `grid-cli nodes`: the nodes connected to the master and what they give.

use crate::commands::GlobalArgs;
use crate::rpc::Client;
use bytesize::ByteSize;
use clap::Parser;
use grid_core::format_fuel;
use std::process::ExitCode;

/// List the nodes connected to the master.
///
/// Each with its name, address, slots in use, memory, fuel capacity, cached
/// modules, what it has given so far, and how many jobs lost on it ran to
/// their end elsewhere (a node that keeps losing jobs stands out).
#[derive(Parser, Debug)]
pub struct NodesCommand {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl NodesCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let mut client = Client::connect(global.master.as_deref()).await?;
        let nodes = client.nodes().await?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&nodes)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        let header =
            ["NAME", "ADDRESS", "SLOTS", "MEMORY", "FUEL/H", "FUEL LEFT", "CACHED", "JOBS", "FUEL BURNED", "LOST"];
        let rows: Vec<[String; 10]> = nodes
            .iter()
            .map(|n| {
                [
                    n.name.clone(),
                    n.address.clone(),
                    format!("{}/{}", n.slots_used, n.slots_total),
                    format!("{}/{}", ByteSize(n.memory_used).display().iec(), ByteSize(n.memory_total).display().iec()),
                    format_fuel(n.fuel_per_hour),
                    format_fuel(n.fuel_available),
                    n.cached_modules.to_string(),
                    n.jobs_run.to_string(),
                    format_fuel(n.fuel_burned),
                    n.lost_jobs.to_string(),
                ]
            })
            .collect();
        crate::table::print_table(&header, &rows)?;
        if rows.is_empty() && global.master.is_none() {
            errln!("no nodes connected (the embedded grid starts its node only for `run`)");
        } else if rows.is_empty() {
            errln!("no nodes connected");
        }
        Ok(ExitCode::SUCCESS)
    }
}
