//! `grid-cli login` and `grid-cli logout`: save a master, a token and its
//! CA for every later command, as `gh auth login` does.

use crate::commands::GlobalArgs;
use crate::exit::{self, Failure};
use crate::login::{self, Remote};
use crate::rpc::Client;
use clap::Parser;
use std::process::ExitCode;

/// Log in to a master: check the token works, then save it for every later
/// command.
///
/// Saves the master's URL, the token and a copy of the CA in the user's
/// config dir (`wasm-grid/config.json`, readable by the user alone). Later
/// commands use them when no `--master`, `--token` or `--ca` (or
/// `$GRID_MASTER`, `$GRID_TOKEN`, `$GRID_CA`) says otherwise; the saved
/// token goes to the saved master only. Example:
/// `grid-cli login https://grid.example:7070 --token "$(cat admin.token)" --ca ca.pem`
#[derive(Parser, Debug)]
pub struct LoginCommand {
    /// The master, e.g. `https://127.0.0.1:7070`; or several masters of
    /// one grid, separated by commas, of which commands use whichever leads.
    url: String,
}

impl LoginCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
        let url = match grid_core::Masters::parse(&self.url) {
            // One master, saved with its scheme, as always.
            Ok(masters) if masters.urls().len() == 1 => {
                grid_core::wire::master_url(&self.url).map_err(|why| Failure::with(exit::USAGE, why))?
            }
            Ok(masters) => masters.to_string(),
            Err(why) => return Err(Failure::with(exit::USAGE, why)),
        };
        let Some(token) = global.token.clone() else {
            return Err(Failure::with(exit::USAGE, "`login` needs a token: grid-cli login URL --token TOKEN"));
        };
        let ca_pem = match &global.ca {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Failure::with(exit::USAGE, format!("cannot read the CA certificate `{}`: {e}", path.display()))
            })?),
            None => None,
        };
        let remote = Remote { url: url.clone(), token: Some(token.clone()), ca: global.ca.clone() };
        // A cheap call that any tenant's or the admin's token may make.
        Client::connect(Some(&remote)).await?.check().await?;
        let path = login::save(&login::dir()?, &url, &token, ca_pem.as_deref())?;
        outln!("logged in to {url}; saved in `{}`", path.display())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Forget the saved login.
#[derive(Parser, Debug)]
pub struct LogoutCommand {}

impl LogoutCommand {
    /// Runs the command.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let dir = login::dir()?;
        match login::forget(&dir)? {
            Some(master) => outln!("logged out of {master}; removed the login in `{}`", dir.display())?,
            None => outln!("not logged in")?,
        }
        Ok(ExitCode::SUCCESS)
    }
}
