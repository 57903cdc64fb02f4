//! The subcommands, one file each, and the flags they share.

pub mod cancel;
pub mod each;
pub mod follow;
pub mod job;
pub mod jobs;
pub mod logs;
pub mod new;
pub mod nodes;
pub mod output;
pub mod run;
pub mod status;
pub mod submit;
pub mod wait;

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
    /// Queue a job and print its id.
    Submit(submit::SubmitCommand),
    /// Show a job's state and result.
    Status(status::StatusCommand),
    /// Wait for a job and exit as `run` would.
    Wait(wait::WaitCommand),
    /// Print a job's output.
    Logs(logs::LogsCommand),
    /// Cancel a job.
    Cancel(cancel::CancelCommand),
    /// List the newest jobs.
    Jobs(jobs::JobsCommand),
    /// List the nodes connected to the master.
    Nodes(nodes::NodesCommand),
    /// Create a guest project in Rust, C or AssemblyScript.
    New(new::NewCommand),
}

impl Command {
    /// Runs the subcommand.
    pub async fn execute(self, global: &GlobalArgs) -> anyhow::Result<std::process::ExitCode> {
        match self {
            Command::Run(c) => c.execute(global).await,
            Command::Submit(c) => c.execute(global).await,
            Command::Status(c) => c.execute(global).await,
            Command::Wait(c) => c.execute(global).await,
            Command::Logs(c) => c.execute(global).await,
            Command::Cancel(c) => c.execute(global).await,
            Command::Jobs(c) => c.execute(global).await,
            Command::Nodes(c) => c.execute(global).await,
            Command::New(c) => c.execute().await,
        }
    }
}

/// Refuses a verb that makes no sense on an embedded grid, which lives only
/// as long as this process.
pub fn needs_master(global: &GlobalArgs, verb: &str) -> anyhow::Result<()> {
    if global.master.is_none() {
        return Err(crate::exit::Failure::with(
            crate::exit::GRID_ERROR,
            format!("`{verb}` needs a master (--master or $GRID_MASTER); without one, use `run`"),
        ));
    }
    Ok(())
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
