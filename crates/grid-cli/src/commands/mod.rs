//! The subcommands, one file each, and the flags every one of them takes.

pub mod admin;
pub mod cancel;
pub mod completions;
pub mod jobs;
pub mod login;
pub mod logs;
pub mod new;
pub mod nodes;
pub mod prune;
pub mod result;
pub mod run;
pub mod status;
pub mod submit;
pub mod top;
pub mod up;
pub mod wait;

use clap::{Args, Parser, Subcommand};

/// Run WebAssembly programs on a wasm-grid: sandboxed, metered and limited,
/// with their output streamed back as if they ran here.
///
/// With no master named (`--master`, `$GRID_MASTER` or `grid-cli login`),
/// commands run on an embedded grid started in this process.
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
    /// The master to use, e.g. `https://127.0.0.1:7070`; or several masters
    /// of one grid, separated by commas (`https://m1:7070,https://m2:7070`),
    /// of which calls go to whichever leads [default: the one `grid-cli
    /// login` saved, else an embedded grid].
    #[arg(long, global = true, env = "GRID_MASTER", value_name = "URL")]
    pub master: Option<String>,
    /// The token to call the master with [default: the saved login's, for
    /// its master].
    #[arg(long, global = true, env = "GRID_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The CA certificate (PEM) to trust the master by [default: the saved
    /// login's, else the system roots].
    #[arg(long, global = true, env = "GRID_CA", value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
    /// The master and credentials the flags, the environment and the saved
    /// login name together (see `crate::login`); `None` for an embedded grid.
    #[arg(skip)]
    pub remote: Option<crate::login::Remote>,
    /// Print the grid's own diagnostics on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// What to do. Each subcommand's help is its struct's doc comment: the first
/// paragraph in the list of commands, all of it in its `--help`.
#[derive(Subcommand, Debug)]
pub enum Command {
    Run(run::RunCommand),
    Submit(submit::SubmitCommand),
    Status(status::StatusCommand),
    Wait(wait::WaitCommand),
    Logs(logs::LogsCommand),
    Result(result::ResultCommand),
    Cancel(cancel::CancelCommand),
    Jobs(jobs::JobsCommand),
    Nodes(nodes::NodesCommand),
    Prune(prune::PruneCommand),
    New(new::NewCommand),
    Login(login::LoginCommand),
    Logout(login::LogoutCommand),
    Admin(admin::AdminCommand),
    Top(top::TopCommand),
    Up(up::UpCommand),
    Completions(completions::CompletionsCommand),
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
            Command::Result(c) => c.execute(global).await,
            Command::Cancel(c) => c.execute(global).await,
            Command::Jobs(c) => c.execute(global).await,
            Command::Nodes(c) => c.execute(global).await,
            Command::Prune(c) => c.execute(global).await,
            Command::New(c) => c.execute().await,
            Command::Login(c) => c.execute(global).await,
            Command::Logout(c) => c.execute().await,
            Command::Admin(c) => c.execute(global).await,
            Command::Top(c) => c.execute(global).await,
            Command::Up(c) => c.execute(global).await,
            Command::Completions(c) => c.execute().await,
        }
    }
}

/// Refuses a verb that makes no sense on an embedded grid, which lives only
/// as long as this process.
pub fn needs_master(global: &GlobalArgs, verb: &str) -> anyhow::Result<()> {
    if global.master.is_none() {
        return Err(crate::exit::Failure::with(
            crate::exit::GRID_ERROR,
            format!("`{verb}` needs a master (--master, $GRID_MASTER or `grid-cli login`); without one, use `run`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_subcommand_lists_its_summary_and_shows_its_whole_doc_in_its_help() {
        Cli::command().debug_assert();
        let mut cli = Cli::command();
        // (subcommand, its summary, a phrase from further down its doc)
        for (name, summary, detail) in [
            ("run", "Run a module on the grid and stream its output here", "Standard input, when it is not a"),
            ("submit", "Queue a job and print its id", "collect later with `grid-cli result ID --output-dir DIR`"),
            ("result", "Fetch what a finished job left in `/out`", "as `run --output-dir` would have done"),
            ("status", "Show a job's state and result", "fuel, peak memory and wall time"),
            ("new", "Create a guest project in Rust, C or AssemblyScript", "its README says how to build"),
        ] {
            let sub = cli.find_subcommand_mut(name).unwrap();
            assert_eq!(sub.get_about().map(|s| s.to_string()).as_deref(), Some(summary), "{name}");
            let help = sub.render_long_help().to_string().replace('\n', " ");
            let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(help.contains(detail), "`{name} --help` lacks {detail:?}:\n{help}");
        }
    }
}
