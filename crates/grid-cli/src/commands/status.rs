//! `grid-cli status`: where a job stands, and how it ended.

use crate::commands::GlobalArgs;
use crate::rpc::{Client, JobRow};
use anyhow::Result;
use clap::Parser;
use grid_core::format_fuel;
use std::process::ExitCode;

/// Show a job's state and result.
///
/// Its state, node, attempts and, once it has ended, its exit code or
/// reason, fuel, peak memory and wall time.
#[derive(Parser, Debug)]
pub struct StatusCommand {
    /// The job's id.
    job: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// A job as JSON, for scripts.
pub fn to_json(j: &JobRow) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": j.id,
        "state": j.state.as_str(),
        "tenant": j.tenant,
        "priority": j.priority,
        "node": j.node,
        "attempts": j.attempts,
        "submitted_ms": j.submitted_ms,
        "module": j.module,
        "args": j.args,
    });
    if !j.waiting.is_empty() {
        v["waiting"] = j.waiting.clone().into();
    }
    if let Some(r) = &j.result {
        v["exit_code"] = r.outcome.exit_code().map_or(serde_json::Value::Null, Into::into);
        v["reason"] = if r.outcome.exit_code().is_some() { serde_json::Value::Null } else { r.reason().into() };
        v["fuel_used"] = r.fuel_used.into();
        v["peak_memory"] = r.peak_memory.into();
        v["wall_ms"] = (r.wall.as_secs_f64() * 1000.0).into();
        v["startup_us"] = (r.startup.as_micros() as u64).into();
    }
    v
}

impl StatusCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let mut client = Client::connect(global.master.as_deref()).await?;
        let j = client.job(&self.job).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&to_json(&j))?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("job       {}", j.id);
        println!("state     {}", j.state);
        if !j.waiting.is_empty() {
            println!("          {}", j.waiting);
        }
        println!("tenant    {} (priority {})", j.tenant, j.priority);
        if !j.node.is_empty() {
            println!("node      {}", j.node);
        }
        println!("attempts  {}", j.attempts);
        println!("module    {}", j.module);
        if let Some(r) = &j.result {
            match r.outcome.exit_code() {
                Some(code) => println!("exit code {code}"),
                None => println!("reason    {}", r.reason()),
            }
            println!("fuel      {} of {}", format_fuel(r.fuel_used), format_fuel(r.fuel_limit));
            println!("memory    {}", bytesize::ByteSize(r.peak_memory).display().iec());
            println!("wall      {:.1?}", r.wall);
        }
        Ok(ExitCode::SUCCESS)
    }
}
