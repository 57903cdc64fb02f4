//! `grid-cli admin tokens`: every token without its secret, and
//! `tokens revoke ID`.

use crate::rpc::admin::{Admin, TokenRow};
use crate::when;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// List the tokens (never their secrets), or revoke one.
///
/// Each with its id, kind (`admin`, `tenant`, `node` or `join`), subject
/// (the tenant, the node, or the owner a join token gives its nodes), when
/// it was made and last used, when it expires, the uses a join token has
/// left, and whether it is revoked.
#[derive(Parser, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokensCommand {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    verb: Option<Verb>,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Revoke a token by its id: it works no more, and a node's session
    /// ends at once.
    Revoke {
        /// The token's id, as `grid-cli admin tokens` shows it.
        id: String,
    },
}

impl TokensCommand {
    /// Runs the command.
    pub async fn execute(self, admin: &mut Admin) -> anyhow::Result<ExitCode> {
        if let Some(Verb::Revoke { id }) = self.verb {
            if admin.revoke(&id).await? {
                outln!("revoked token {id}")?;
            } else {
                outln!("token {id} was already revoked")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let tokens = admin.tokens().await?;
        if self.json {
            outln!("{}", serde_json::to_string_pretty(&tokens)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        let now = when::now_ms();
        let header = ["ID", "KIND", "SUBJECT", "CREATED", "LAST USED", "EXPIRES", "USES LEFT", "REVOKED"];
        let rows: Vec<[String; 8]> = tokens.iter().map(|t| row(t, now)).collect();
        crate::table::print_table(&header, &rows)?;
        Ok(ExitCode::SUCCESS)
    }
}

fn row(t: &TokenRow, now: u64) -> [String; 8] {
    let at = |ms: Option<u64>, none: &str| ms.map_or_else(|| none.to_owned(), |ms| when::short(ms, now));
    [
        t.id.clone(),
        t.kind.clone(),
        if t.subject.is_empty() { "-".to_owned() } else { t.subject.clone() },
        when::short(t.created_ms, now),
        at(t.last_used_ms, "never"),
        at(t.expires_ms, "never"),
        t.uses_left.map_or_else(|| "-".to_owned(), |n| n.to_string()),
        if t.revoked { "yes" } else { "no" }.to_owned(),
    ]
}
