//! `grid-cli nodes`: the nodes connected to the master and what they give;
//! with `--all`, also those that left or were lost.

use crate::commands::GlobalArgs;
use crate::rpc::{Client, NodeRow};
use bytesize::ByteSize;
use clap::Parser;
use grid_core::format_fuel;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// List the nodes connected to the master.
///
/// Each with its name, state (`ready`, or `draining` while it shuts down),
/// owner (the tenant whose jobs alone a private node runs),
/// address, slots in use, memory, fuel capacity, cached modules, what it has
/// given so far, how many jobs lost on it ran to their end elsewhere (a
/// node that keeps losing jobs stands out), its trust (`trusted`,
/// `quarantined`, or `N/T`: N results in a row agreed with other replicas,
/// T make it trusted) and its credit (fuel of its results the grid
/// accepted). The counts are kept by name across the node's sessions and
/// the master's restarts.
#[derive(Parser, Debug)]
pub struct NodesCommand {
    /// Also list nodes that are not connected: `gone` (they left, or the
    /// master restarted without them) or `lost` (they went silent), with
    /// when they were last seen; the most recently seen 1000.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl NodesCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let mut client = Client::connect(global.remote.as_ref()).await?;
        let nodes = client.nodes(self.all).await?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&nodes)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        let header = [
            "NAME",
            "STATE",
            "OWNER",
            "ADDRESS",
            "SLOTS",
            "MEMORY",
            "FUEL/H",
            "FUEL LEFT",
            "CACHED",
            "JOBS",
            "FUEL BURNED",
            "LOST",
            "TRUST",
            "CREDIT",
            "LAST SEEN",
        ];
        let rows: Vec<[String; 15]> = nodes.iter().map(row).collect();
        crate::table::print_table(&header, &rows)?;
        if rows.is_empty() && global.master.is_none() && !self.all {
            errln!("no nodes connected (the embedded grid starts its node only for `run`)");
        } else if rows.is_empty() {
            errln!("{}", if self.all { "no nodes seen" } else { "no nodes connected" });
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One node's row; a node not connected shows only its history.
fn row(n: &NodeRow) -> [String; 15] {
    let connected = matches!(n.state.as_str(), "ready" | "draining");
    let live = |s: String| if connected { s } else { "-".to_owned() };
    [
        n.name.clone(),
        n.state.clone(),
        if n.owner.is_empty() { "-".to_owned() } else { n.owner.clone() },
        live(n.address.clone()),
        live(format!("{}/{}", n.slots_used, n.slots_total)),
        live(format!("{}/{}", ByteSize(n.memory_used).display().iec(), ByteSize(n.memory_total).display().iec())),
        live(format_fuel(n.fuel_per_hour)),
        live(format_fuel(n.fuel_available)),
        live(n.cached_modules.to_string()),
        n.jobs_run.to_string(),
        format_fuel(n.fuel_burned),
        n.lost_jobs.to_string(),
        trust(n),
        format_fuel(n.credit),
        if connected { "now".to_owned() } else { ago(n.last_seen_ms) },
    ]
}

/// Where a node stands: `quarantined`, `trusted`, or its streak out of
/// the master's threshold while it earns trust (the streak alone when no
/// streak makes a node trusted).
pub(crate) fn trust(n: &NodeRow) -> String {
    if n.quarantined {
        "quarantined".to_owned()
    } else if n.trusted {
        "trusted".to_owned()
    } else if n.trust_after > 0 {
        format!("{}/{}", n.trust, n.trust_after)
    } else {
        n.trust.to_string()
    }
}

/// How long ago `ms` (since the epoch) was, to the second.
fn ago(ms: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let secs = now.saturating_sub(ms) / 1000;
    format!("{} ago", grid_core::units::format_duration(Duration::from_secs(secs.max(1))))
}
