//! `grid-cli admin`: what only an admin token may do: tenants and their
//! quotas, tokens, nodes' credentials and quarantines, and the masters.

pub mod masters;
pub mod node_token;
pub mod tenant;
pub mod tokens;

use crate::commands::GlobalArgs;
use crate::login::Remote;
use crate::rpc::admin::Admin;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Manage tenants, tokens and nodes (with an admin token).
///
/// The master writes its admin token to `admin.token` in its data dir on its
/// first start: log in with it (`grid-cli login URL --token "$(cat
/// DATA/admin.token)" --ca DATA/ca.pem`) or pass it with `--token`.
#[derive(Parser, Debug)]
pub struct AdminCommand {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    Tenant(tenant::TenantCommand),
    Tenants(tenant::TenantsCommand),
    NodeToken(node_token::NodeTokenCommand),
    Tokens(tokens::TokensCommand),
    Nodes(NodesCommand),
    Masters(masters::MastersCommand),
}

impl AdminCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        crate::commands::needs_master(global, "admin")?;
        let remote = global.remote.as_ref().expect("a master is named");
        let mut admin = Admin::connect(remote).await?;
        match self.verb {
            Verb::Tenant(c) => c.execute(&mut admin).await,
            Verb::Tenants(c) => c.execute(&mut admin).await,
            Verb::NodeToken(c) => c.execute(&mut admin, remote).await,
            Verb::Tokens(c) => c.execute(&mut admin).await,
            Verb::Nodes(c) => c.execute(&mut admin, remote).await,
            Verb::Masters(c) => c.execute(&mut admin).await,
        }
    }
}

/// Nodes' credentials and quarantines.
#[derive(Parser, Debug)]
struct NodesCommand {
    #[command(subcommand)]
    verb: NodesVerb,
}

#[derive(Subcommand, Debug)]
enum NodesVerb {
    /// Revoke a node's credential and end its session at once.
    Revoke {
        /// The node's name, as `grid-cli nodes` shows it.
        name: String,
    },
    /// Clear a node's quarantine: it may run jobs again, earning trust
    /// from zero (its credit is kept).
    Unquarantine {
        /// The node's name, as `grid-cli nodes --all` shows it.
        name: String,
    },
}

impl NodesCommand {
    async fn execute(self, admin: &mut Admin, remote: &Remote) -> anyhow::Result<ExitCode> {
        match self.verb {
            NodesVerb::Revoke { name } => {
                if admin.revoke_node(&name).await? {
                    outln!("revoked node `{name}`: its session on `{}` has ended", remote.url)?;
                } else {
                    outln!("node `{name}` had no live credential")?;
                }
            }
            NodesVerb::Unquarantine { name } => {
                if admin.clear_quarantine(&name).await? {
                    outln!("node `{name}` may run jobs again")?;
                } else {
                    outln!("node `{name}` was not quarantined")?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
