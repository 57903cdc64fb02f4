//! The subcommands, one file each, and the flags they share.

pub mod nodes;
pub mod run;

use clap::{Args, Parser, Subcommand};

/// Run WebAssembly programs on a wasm-grid: sandboxed, metered and limited,
/// with their output streamed back as if they ran here.
///
/// With no master named (`--master` or `$GRID_MASTER`), commands run on an
/// embedded grid started in this process.
#[derive(Parser, Debug)]
#[command(name = "grid-cli", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The master to use, e.g. `http://127.0.0.1:7070` [default: an embedded grid].
    #[arg(long, global = true, env = "GRID_MASTER", value_name = "URL")]
    pub master: Option<String>,
    /// Print the grid's own diagnostics on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a module on the grid and stream its output here.
    Run(run::RunCommand),
    /// List the nodes connected to the master.
    Nodes(nodes::NodesCommand),
}
