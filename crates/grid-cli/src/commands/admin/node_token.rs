//! `grid-cli admin node-token create`: a join token for enrolling nodes.

use crate::login::Remote;
use crate::rpc::admin::Admin;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

/// Join tokens, for enrolling nodes.
#[derive(Parser, Debug)]
pub struct NodeTokenCommand {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    Create(CreateArgs),
}

/// Make a join token: prints it as the last line of stdout.
///
/// A node started with `grid-node --master URL --join TOKEN` trades it for
/// its own credential once, and trusts the master by the CA fingerprint the
/// token carries.
#[derive(Parser, Debug)]
struct CreateArgs {
    /// How many nodes may join with it [default: any number while it lasts].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    uses: Option<u32>,
    /// How long it may be used, e.g. `1h` [default: the master's, 24h].
    #[arg(long, value_name = "DURATION", value_parser = grid_core::parse_duration)]
    ttl: Option<Duration>,
    /// Make private nodes that run only this tenant's jobs.
    #[arg(long, value_name = "TENANT")]
    owner: Option<String>,
}

impl NodeTokenCommand {
    /// Runs the command.
    pub async fn execute(self, admin: &mut Admin, remote: &Remote) -> anyhow::Result<ExitCode> {
        let Verb::Create(args) = self.verb;
        let created = admin.join_token(args.uses.unwrap_or(0), args.ttl, args.owner.as_deref()).await?;
        let nodes = match &args.owner {
            Some(owner) => format!("private nodes of tenant `{owner}`"),
            None => "public nodes".to_owned(),
        };
        outln!("join token {} for {nodes}; start a node with it:", created.id)?;
        outln!("  grid-node --master {} --join TOKEN", remote.url)?;
        outln!("{}", created.token)?;
        Ok(ExitCode::SUCCESS)
    }
}
