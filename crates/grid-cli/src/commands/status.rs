//! `grid-cli status`: where a job stands, and how it ended.

use crate::commands::GlobalArgs;
use crate::rpc::{Client, JobRow};
use crate::when;
use anyhow::Result;
use clap::Parser;
use grid_core::format_fuel;
use std::process::ExitCode;

/// Show a job's state and result.
///
/// Its state, node, when it was submitted, started and ended (UTC), every
/// attempt (its node, when it started and ended, and how it ended) and,
/// once it has ended, its exit code or reason, fuel, peak memory and wall
/// time.
#[derive(Parser, Debug)]
pub struct StatusCommand {
    /// The job's id.
    job: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How many hex digits of a replica's digest the text shows.
const SHORT_DIGEST: usize = 12;

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
        "started_ms": j.started_ms,
        "finished_ms": j.finished_ms,
        "duration_ms": duration_ms(j),
        "module": j.module,
        "args": j.args,
        "quorum": j.quorum,
    });
    if !j.history.is_empty() {
        let history: Vec<_> = j
            .history
            .iter()
            .map(|a| {
                serde_json::json!({
                    "number": a.number,
                    "node": a.node,
                    "started_ms": a.started_ms,
                    "ended_ms": a.ended_ms,
                    "end": a.end.map(|e| e.as_str()),
                    "digest": a.digest,
                    "verdict": a.verdict.map(|v| v.as_str()),
                })
            })
            .collect();
        v["history"] = history.into();
    }
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

/// How long the job's last attempt ran, once it has ended.
pub fn duration_ms(j: &JobRow) -> Option<u64> {
    match (j.started_ms, j.finished_ms) {
        (Some(start), Some(end)) => Some(end.saturating_sub(start)),
        _ => None,
    }
}

impl StatusCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let mut client = Client::connect(global.remote.as_ref()).await?;
        let j = client.job(&self.job).await?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&to_json(&j))?)?;
            return Ok(ExitCode::SUCCESS);
        }
        outln!("job       {}", j.id)?;
        outln!("state     {}", j.state)?;
        if !j.waiting.is_empty() {
            outln!("          {}", j.waiting)?;
        }
        outln!("tenant    {} (priority {})", j.tenant, j.priority)?;
        if !j.node.is_empty() {
            outln!("node      {}", j.node)?;
        }
        outln!("attempts  {}", j.attempts)?;
        for a in &j.history {
            let ended = a.ended_ms.map_or("now".to_owned(), when::moment);
            let end = a.end.map_or("running", |e| e.as_str());
            let judged = match (&a.digest, a.verdict) {
                (Some(d), Some(v)) => format!(", result {}: {v}", &d[..d.len().min(SHORT_DIGEST)]),
                (Some(d), None) => format!(", result {}", &d[..d.len().min(SHORT_DIGEST)]),
                (None, _) => String::new(),
            };
            outln!("          {}. {} from {} to {ended}: {end}{judged}", a.number, a.node, when::moment(a.started_ms))?;
        }
        if j.quorum > 0 {
            outln!("quorum    {} replicas on distinct nodes must agree", j.quorum)?;
        }
        outln!("submitted {}", when::moment(j.submitted_ms))?;
        if let Some(started) = j.started_ms {
            outln!("started   {}", when::moment(started))?;
        }
        if let Some(ended) = j.finished_ms {
            let took = duration_ms(&j).map_or(String::new(), |ms| format!(" (ran {})", when::span(ms)));
            outln!("ended     {}{took}", when::moment(ended))?;
        }
        outln!("module    {}", j.module)?;
        if let Some(r) = &j.result {
            match r.outcome.exit_code() {
                Some(code) => outln!("exit code {code}")?,
                None => outln!("reason    {}", r.reason())?,
            }
            outln!("fuel      {} of {}", format_fuel(r.fuel_used), format_fuel(r.fuel_limit))?;
            outln!("memory    {}", bytesize::ByteSize(r.peak_memory).display().iec())?;
            outln!("wall      {:.1?}", r.wall)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
