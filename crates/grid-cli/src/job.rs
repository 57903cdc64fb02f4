//! What `run` and `submit` share: the flags that describe a job, and
//! turning them into a spec (its module uploaded) and a submission.

use crate::exit::{self, Failure};
use crate::rpc::Client;
use anyhow::{Context, Result};
use clap::Args;
use grid_core::archive::{self, Escape};
use grid_core::units::{format_duration, format_size};
use grid_core::{JobSpec, Limits, MappedDir, Submission, format_fuel};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

/// `Limits::default()` in the units people write: the defaults of the
/// limit flags, as `--help` shows them.
struct Defaults {
    fuel: String,
    memory: String,
    timeout: String,
    output: String,
    disk: String,
}

static DEFAULTS: LazyLock<Defaults> = LazyLock::new(|| {
    let limits = Limits::default();
    Defaults {
        fuel: format_fuel(limits.fuel),
        memory: format_size(limits.memory),
        timeout: format_duration(limits.timeout),
        output: format_size(limits.output),
        disk: format_size(limits.disk),
    }
});

/// A job: its module, arguments, environment, directories and limits.
#[derive(Args, Debug)]
pub struct JobArgs {
    /// Fuel the job may burn (about one unit per wasm instruction), above
    /// zero, e.g. `10G` or `1.5G`.
    #[arg(long, default_value = DEFAULTS.fuel.as_str(), value_name = "N", value_parser = grid_core::parse_fuel_limit)]
    pub fuel: u64,
    /// Linear memory the job may use, written with its unit and at least
    /// one wasm page (64KiB), e.g. `256MiB` or `1.5G`.
    #[arg(long, default_value = DEFAULTS.memory.as_str(), value_name = "SIZE", value_parser = grid_core::parse_memory_limit)]
    pub memory: u64,
    /// Wall-clock time the job may take, above zero, e.g. `30s` or `500ms`.
    #[arg(long, default_value = DEFAULTS.timeout.as_str(), value_name = "DURATION", value_parser = grid_core::parse_timeout)]
    pub timeout: Duration,
    /// Bytes the job may write to stdout and stderr together.
    #[arg(long, default_value = DEFAULTS.output.as_str(), value_name = "SIZE", value_parser = grid_core::parse_size)]
    pub output_limit: u64,
    /// Bytes the job's mapped directories may hold when it ends (and while it runs).
    #[arg(long, default_value = DEFAULTS.disk.as_str(), value_name = "SIZE", value_parser = grid_core::parse_size)]
    pub disk_limit: u64,
    /// Set an environment variable for the guest; `--env NAME` passes this
    /// process's value of NAME.
    #[arg(long = "env", value_name = "NAME[=VAL]", value_parser = parse_env)]
    pub env: Vec<(String, Option<String>)>,
    /// Map a host directory into the guest at GUEST (default: HOST as
    /// written). Its contents travel with the job, and what the guest
    /// creates, changes or deletes there is written back when it ends.
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub dirs: Vec<(PathBuf, String)>,
    /// Run deterministically: the guest sees a virtual clock that starts at
    /// 2000-01-01T00:00:00Z and advances with the fuel it burns, random
    /// bytes seeded by the job, and canonical NaNs, so every run of the same
    /// job gives the same output, files and fuel, on any node.
    #[arg(long)]
    pub deterministic: bool,
    /// Run the job on N distinct nodes, deterministically, and keep the
    /// result they agree on (more run while they disagree, up to the
    /// master's bound); 1 runs it once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub replicas: Option<u32>,
    /// Whose job this is, for admin tokens only: a tenant's token submits
    /// as its tenant, and an admin's as `default` unless this names another.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Higher runs first, from -100 to 100; negative runs after everything else.
    #[arg(long, default_value_t = 0, value_name = "N", allow_negative_numbers = true)]
    pub priority: i32,
    /// A key that makes the submission safe to retry: a second submission
    /// with the same key yields the first job [default: a fresh key].
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// The module to run.
    #[arg(value_name = "MODULE")]
    pub module: PathBuf,
    /// Arguments for the guest.
    #[arg(value_name = "ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, Option<String>), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("`{s}` has no variable name")),
        Some((k, v)) => Ok((k.to_owned(), Some(v.to_owned()))),
        None => Ok((s.to_owned(), None)),
    }
}

fn parse_dir(s: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = match s.split_once("::") {
        Some((host, guest)) => (host, guest),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("`{s}` is not HOST[::GUEST]"));
    }
    Ok((PathBuf::from(host), guest.to_owned()))
}

/// A key no other submission has: the time, this process and a counter.
pub fn fresh_key() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

impl JobArgs {
    /// Everything up to the submission: reads the module, packs the
    /// directories, connects, and uploads the module if the master lacks
    /// it. Returns the connected client and the spec.
    pub async fn prepare(&self, master: Option<&crate::login::Remote>, stdin: &[u8]) -> Result<(Client, JobSpec)> {
        let module = crate::module::load(&self.module)?;
        let spec = self.spec(stdin)?;
        let mut client = Client::connect_to_run(master).await.map_err(|e| match crate::rpc::refusal(&e).is_some() {
            true => e,
            false => Failure::with(exit::GRID_ERROR, format!("{e:#}")),
        })?;
        let module = client
            .ensure_module(&module)
            .await
            .with_context(|| format!("failed to upload `{}`", self.module.display()))?;
        Ok((client, JobSpec { module, ..spec }))
    }

    /// How the job is submitted: its key (`--idempotency-key`, else a
    /// fresh one), its tenant (`--tenant`, else the token's: empty here) and
    /// its priority.
    pub fn submission(&self) -> Submission {
        Submission {
            key: Some(self.idempotency_key.clone().unwrap_or_else(fresh_key)),
            tenant: self.tenant.clone().unwrap_or_default(),
            priority: self.priority,
        }
    }

    /// Standard input, when it is not a terminal, read to its end.
    pub fn read_stdin() -> Result<Vec<u8>> {
        let mut stdin = Vec::new();
        if !std::io::stdin().is_terminal() {
            std::io::stdin().read_to_end(&mut stdin).context("failed to read stdin")?;
        }
        Ok(stdin)
    }

    /// Everything in the job's spec but the module.
    fn spec(&self, stdin: &[u8]) -> Result<JobSpec> {
        let mut args = vec![self.module.display().to_string()];
        args.extend(self.args.iter().cloned());
        let env = self
            .env
            .iter()
            .filter_map(|(k, v)| match v {
                Some(v) => Some((k.clone(), v.clone())),
                None => std::env::var(k).ok().map(|v| (k.clone(), v)),
            })
            .collect();
        let mut dirs = Vec::new();
        // A deterministic job's directories travel without times or owners,
        // so its seed depends on their contents alone.
        let deterministic = self.deterministic || self.replicas.is_some_and(|n| n > 1);
        let pack = if deterministic { archive::pack_deterministic } else { archive::pack };
        for (host, guest) in &self.dirs {
            if !host.is_dir() {
                return Err(Failure::with(exit::GRID_ERROR, format!("`{}` is not a directory", host.display())));
            }
            let archive = pack(host, Escape::Fail)
                .map_err(|e| Failure::with(exit::GRID_ERROR, format!("failed to pack `{}`: {e}", host.display())))?;
            dirs.push(MappedDir { guest_path: guest.clone(), archive });
        }
        let limits = self.limits();
        Ok(JobSpec {
            deterministic: self.deterministic,
            replicas: self.replicas.unwrap_or(0),
            module: grid_core::ModuleHash::of(&[]),
            args,
            env,
            stdin: stdin.to_vec(),
            dirs,
            limits,
        })
    }

    /// The job's limits.
    fn limits(&self) -> Limits {
        Limits {
            fuel: self.fuel,
            memory: self.memory,
            timeout: self.timeout,
            output: self.output_limit,
            disk: self.disk_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        job: JobArgs,
    }

    #[test]
    fn limit_flags_refuse_zero_and_a_memory_without_unit_and_take_decimals() {
        for (flag, value) in [("--fuel", "0"), ("--memory", "0"), ("--memory", "64"), ("--timeout", "0s")] {
            let err = Cmd::try_parse_from(["run", flag, value, "app.wasm"]).map(|_| ()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{flag} {value}");
            assert!(err.to_string().contains(&format!("`{value}`")), "{flag} {value}: {err}");
        }
        let job = Cmd::try_parse_from(["run", "--fuel", "1.5G", "--memory", "1.5G", "app.wasm"]).unwrap().job;
        assert_eq!((job.fuel, job.memory), (1_500_000_000, 1_500_000_000));
    }

    #[test]
    fn deterministic_and_replicas_go_into_the_spec() {
        let job = Cmd::try_parse_from(["run", "app.wasm"]).unwrap().job;
        let spec = job.spec(&[]).unwrap();
        assert_eq!((spec.deterministic, spec.replicas), (false, 0));
        let job = Cmd::try_parse_from(["run", "--deterministic", "--replicas", "3", "app.wasm"]).unwrap().job;
        let spec = job.spec(&[]).unwrap();
        assert_eq!((spec.deterministic, spec.replicas), (true, 3));
        for bad in ["0", "17", "-1", "two"] {
            let err = Cmd::try_parse_from(["run", "--replicas", bad, "app.wasm"]).map(|_| ()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "--replicas {bad}");
        }
        assert!(Cmd::try_parse_from(["run", "--replicas", "16", "app.wasm"]).is_ok());
    }

    #[test]
    fn the_limit_flags_default_to_limits_default_shown_in_units() {
        let job = Cmd::try_parse_from(["run", "app.wasm"]).unwrap().job;
        assert_eq!(job.limits(), Limits::default());
        let help = Cmd::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (flag, shown) in [
            ("--fuel <N>", "10G"),
            ("--memory <SIZE>", "512MiB"),
            ("--timeout <DURATION>", "5m"),
            ("--output-limit <SIZE>", "64MiB"),
            ("--disk-limit <SIZE>", "256MiB"),
        ] {
            let after = help.split(flag).nth(1).unwrap();
            let default = after.split("[default: ").nth(1).and_then(|d| d.split(']').next());
            assert_eq!(default, Some(shown), "{flag}");
        }
    }
}
