//! `grid-cli jobs`: the newest jobs.

use crate::commands::GlobalArgs;
use crate::commands::status::to_json;
use crate::rpc::{Client, JobQuery};
use crate::when;
use anyhow::Result;
use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};
use grid_core::JobState;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

/// List the newest jobs.
///
/// Each with its id, state, tenant, node, module, when it was submitted,
/// started and ended (in UTC; the time of day only for today's), how long
/// it ran, and how it ended (or why it still waits). The master does the
/// filtering.
#[derive(Parser, Debug)]
pub struct JobsCommand {
    /// Only jobs in this state.
    #[arg(long, value_name = "STATE", value_enum)]
    state: Option<StateArg>,
    /// Only this tenant's jobs.
    #[arg(long, value_name = "NAME")]
    tenant: Option<String>,
    /// Only jobs running on this node or that ended on it.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Only jobs of this module: a module file, or the start of its sha256
    /// (as `status` shows it).
    #[arg(long, value_name = "FILE|HASH", value_parser = parse_module)]
    module: Option<ModuleArg>,
    /// Only jobs older than this one: the next page after a listing that
    /// ended with it.
    #[arg(long, value_name = "ID")]
    after: Option<String>,
    /// At most this many jobs (fetched a page at a time).
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A module as `--module` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModuleArg {
    /// A module file, hashed as `run` would upload it.
    File(PathBuf),
    /// The start of a module's hash, in lower case.
    Prefix(String),
}

/// A module file that exists, else a hash prefix (hex digits, at most 64).
fn parse_module(s: &str) -> Result<ModuleArg, String> {
    let path = PathBuf::from(s);
    if path.is_file() {
        return Ok(ModuleArg::File(path));
    }
    if !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(ModuleArg::Prefix(s.to_ascii_lowercase()));
    }
    Err(format!("`{s}` is neither a module file nor the start of a module's sha256 (hex digits)"))
}

/// A job state as `--state` takes it, by `JobState`'s own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StateArg(JobState);

impl ValueEnum for StateArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<[StateArg; JobState::ALL.len()]> = LazyLock::new(|| JobState::ALL.map(StateArg));
        &*ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.as_str()))
    }
}

impl JobsCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let module_prefix = match &self.module {
            None => None,
            Some(ModuleArg::Prefix(prefix)) => Some(prefix.clone()),
            Some(ModuleArg::File(path)) => {
                let module = crate::module::load(path)?;
                let hash = tokio::task::spawn_blocking(move || module.hash()).await??;
                Some(hash.to_string())
            }
        };
        let query = JobQuery {
            state: self.state.map(|s| s.0),
            tenant: self.tenant.clone(),
            node: self.node.clone(),
            module_prefix,
            after: self.after.clone(),
        };
        let mut client = Client::connect(global.remote.as_ref()).await?;
        let jobs = client.jobs(&query, self.limit).await?;
        if self.json {
            let all: Vec<_> = jobs.iter().map(to_json).collect();
            outln!("{}", serde_json::to_string_pretty(&all)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        let now = when::now_ms();
        let at = |ms: Option<u64>| ms.map_or(String::new(), |ms| when::short(ms, now));
        let rows: Vec<[String; 10]> = jobs
            .iter()
            .map(|j| {
                let result = j.result.as_ref().map_or(j.waiting.clone(), |r| match r.outcome.exit_code() {
                    Some(code) => format!("exit {code}"),
                    None => r.reason(),
                });
                let module = j.args.first().cloned().unwrap_or_else(|| j.module.chars().take(12).collect());
                let took = match (j.started_ms, j.finished_ms) {
                    (Some(start), Some(end)) if end >= start => when::span(end - start),
                    _ => String::new(),
                };
                [
                    j.id.clone(),
                    j.state.to_string(),
                    j.tenant.clone(),
                    j.node.clone(),
                    module,
                    when::short(j.submitted_ms, now),
                    at(j.started_ms),
                    at(j.finished_ms),
                    took,
                    result,
                ]
            })
            .collect();
        let header = ["ID", "STATE", "TENANT", "NODE", "MODULE", "SUBMITTED", "STARTED", "ENDED", "DURATION", "RESULT"];
        crate::table::print_table(&header, &rows)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_takes_every_job_state_by_name_and_nothing_else() {
        let parse = |args: &[&str]| JobsCommand::try_parse_from(["jobs"].iter().chain(args));
        for state in JobState::ALL {
            assert_eq!(parse(&["--state", state.as_str()]).unwrap().state, Some(StateArg(state)));
        }
        assert_eq!(parse(&[]).unwrap().state, None);
        let err = parse(&["--state", "done"]).unwrap_err().to_string();
        assert!(err.contains("[possible values: queued, running, succeeded, failed, cancelled]"), "{err}");
    }

    #[test]
    fn module_takes_a_file_or_a_hash_prefix() {
        let parse = |args: &[&str]| JobsCommand::try_parse_from(["jobs"].iter().chain(args)).map(|c| c.module);
        assert_eq!(parse(&["--module", "AB12"]).unwrap(), Some(ModuleArg::Prefix("ab12".into())));
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        assert_eq!(parse(&["--module", path]).unwrap(), Some(ModuleArg::File(path.into())));
        let err = parse(&["--module", "no-such-module.wasm"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("neither a module file nor the start"), "{err}");
    }
}
