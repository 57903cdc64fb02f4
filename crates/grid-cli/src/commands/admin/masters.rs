//! `grid-cli admin masters`: the masters of the grid's database, which one
//! leads, its epoch and its lease.

use crate::rpc::admin::{Admin, MasterRow};
use crate::when;
use clap::Parser;
use std::process::ExitCode;

/// List the masters of the grid's database: which one leads, the lease's
/// epoch, when the leader last renewed its lease and when it expires, and
/// when each standby was last heard of.
///
/// A master alone on its SQLite record has no others to list.
#[derive(Parser, Debug)]
pub struct MastersCommand {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl MastersCommand {
    /// Runs the command.
    pub async fn execute(self, admin: &mut Admin) -> anyhow::Result<ExitCode> {
        let masters = admin.masters().await?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&masters)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        if masters.database == "sqlite" {
            outln!(
                "one master, alone on its SQLite record: it leads (several masters share a PostgreSQL database: grid-master --database postgres://...)"
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        let header = ["NAME", "ROLE", "EPOCH", "LEASE", "RENEWED", "SEEN", "GRPC", "HTTP", "VERSION"];
        let rows: Vec<[String; 9]> = masters.masters.iter().map(|m| row(m, masters.now_ms)).collect();
        crate::table::print_table(&header, &rows)?;
        if !masters.masters.iter().any(|m| m.leader) {
            outln!("no master leads now: the lease is free or expired")?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn row(m: &MasterRow, now: u64) -> [String; 9] {
    let dash = || "-".to_owned();
    let ago = |ms: u64| format!("{} ago", when::span(now.saturating_sub(ms)));
    [
        m.name.clone(),
        if m.leader { "leader" } else { "standby" }.to_owned(),
        m.epoch.map_or_else(dash, |e| e.to_string()),
        m.lease_expires_ms.map_or_else(dash, |ms| format!("{} left", when::span(ms.saturating_sub(now)))),
        m.renewed_ms.map_or_else(dash, ago),
        ago(m.seen_ms),
        m.grpc_url.clone(),
        m.http_url.clone().unwrap_or_else(dash),
        m.version.clone(),
    ]
}
