//! `grid-cli admin tenant create|set|token` and `grid-cli admin tenants`:
//! tenants, their quotas and their tokens.

use crate::rpc::admin::{Admin, TenantRow};
use clap::{Args, Parser, Subcommand};
use grid_core::units::{format_duration, format_size};
use grid_core::{FuelQuota, TenantQuota, format_fuel};
use std::process::ExitCode;
use std::time::Duration;

/// Tenants: each submits and manages its own jobs with its own tokens.
#[derive(Parser, Debug)]
pub struct TenantCommand {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Make a tenant with its quotas: prints its token as the last line of
    /// stdout.
    Create {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Change a tenant's quotas: those named change, the others stay, and
    /// `0` removes one.
    Set {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Make another token for a tenant: prints it as the last line of stdout.
    Token {
        /// The tenant's name.
        name: String,
    },
}

/// A tenant's quotas; each left out is no limit (`create`) or stays as it
/// is (`set`), and `0` removes it.
#[derive(Args, Debug, Clone, Default)]
pub struct QuotaArgs {
    /// Jobs running at once; more wait.
    #[arg(long, value_name = "N")]
    max_running: Option<u32>,
    /// Jobs waiting at once; more are refused.
    #[arg(long, value_name = "N")]
    max_queued: Option<u32>,
    /// Fuel as AMOUNT/PERIOD, e.g. `50G/h`: a bucket that refills at that
    /// rate, holds one period's amount and is billed what jobs burn.
    #[arg(long, value_name = "AMOUNT/PERIOD", value_parser = parse_fuel_rate)]
    fuel_per_hour: Option<FuelQuota>,
    /// The most fuel one job may ask for.
    #[arg(long, value_name = "N", value_parser = grid_core::parse_fuel)]
    max_job_fuel: Option<u64>,
    /// The most linear memory one job may ask for, e.g. `512MiB`.
    #[arg(long, value_name = "SIZE", value_parser = grid_core::parse_size)]
    max_job_memory: Option<u64>,
    /// The longest timeout one job may ask for, e.g. `10m`.
    #[arg(long, value_name = "DURATION", value_parser = grid_core::parse_duration)]
    max_job_timeout: Option<Duration>,
}

/// `AMOUNT/PERIOD`, or `0` for none.
fn parse_fuel_rate(s: &str) -> Result<FuelQuota, String> {
    match s.trim() {
        "0" | "none" => Ok(FuelQuota { rate_per_hour: 0, burst: 0 }),
        s => FuelQuota::parse(s),
    }
}

impl QuotaArgs {
    /// `quota` with the limits named here changed.
    pub fn apply(&self, mut quota: TenantQuota) -> TenantQuota {
        fn set<T: PartialEq + Default + Copy>(limit: &mut Option<T>, given: Option<T>) {
            if let Some(v) = given {
                *limit = (v != T::default()).then_some(v);
            }
        }
        set(&mut quota.max_running, self.max_running);
        set(&mut quota.max_queued, self.max_queued);
        set(&mut quota.max_job_fuel, self.max_job_fuel);
        set(&mut quota.max_job_memory, self.max_job_memory);
        set(&mut quota.max_job_timeout, self.max_job_timeout);
        if let Some(fuel) = self.fuel_per_hour {
            quota.fuel = (fuel.rate_per_hour > 0).then_some(fuel);
        }
        quota
    }
}

impl TenantCommand {
    /// Runs the command.
    pub async fn execute(self, admin: &mut Admin) -> anyhow::Result<ExitCode> {
        match self.verb {
            Verb::Create { name, quota } => {
                let created = admin.create_tenant(&name, quota.apply(TenantQuota::default())).await?;
                outln!("tenant `{name}` created; its token {} (shown this once):", created.id)?;
                outln!("{}", created.token)?;
            }
            Verb::Set { name, quota } => {
                let tenants = admin.tenants().await?;
                let Some(now) = tenants.into_iter().find(|t| t.name == name) else {
                    anyhow::bail!("no tenant `{name}`: make it with `grid-cli admin tenant create {name}`");
                };
                let row = admin.set_quota(&name, quota.apply(now.quota)).await?;
                outln!("tenant `{name}`: {}", describe(&row.quota))?;
            }
            Verb::Token { name } => {
                let created = admin.tenant_token(&name).await?;
                outln!("another token for tenant `{name}`, {} (shown this once):", created.id)?;
                outln!("{}", created.token)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A tenant's quotas in a few words.
fn describe(q: &TenantQuota) -> String {
    let cells = quota_cells(q);
    let names = ["max running", "max queued", "fuel", "max job fuel", "max job memory", "max job timeout"];
    let set: Vec<String> =
        names.iter().zip(&cells).filter(|(_, v)| *v != "-").map(|(n, v)| format!("{n} {v}")).collect();
    if set.is_empty() { "no quotas".to_owned() } else { set.join(", ") }
}

/// Each quota as a cell, `-` for none.
fn quota_cells(q: &TenantQuota) -> [String; 6] {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    [
        or_dash(q.max_running.map(|n| n.to_string())),
        or_dash(q.max_queued.map(|n| n.to_string())),
        or_dash(q.fuel.map(|f| format!("{}/h", format_fuel(f.rate_per_hour)))),
        or_dash(q.max_job_fuel.map(format_fuel)),
        or_dash(q.max_job_memory.map(format_size)),
        or_dash(q.max_job_timeout.map(format_duration)),
    ]
}

/// List the tenants: their use and their quotas.
#[derive(Parser, Debug)]
pub struct TenantsCommand {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl TenantsCommand {
    /// Runs the command.
    pub async fn execute(self, admin: &mut Admin) -> anyhow::Result<ExitCode> {
        let tenants = admin.tenants().await?;
        if self.json {
            let rows: Vec<serde_json::Value> = tenants.iter().map(json).collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        let header = [
            "TENANT",
            "RUNNING",
            "QUEUED",
            "JOBS RUN",
            "FUEL BURNED",
            "MAX RUNNING",
            "MAX QUEUED",
            "FUEL",
            "MAX JOB FUEL",
            "MAX JOB MEMORY",
            "MAX JOB TIMEOUT",
        ];
        let rows: Vec<[String; 11]> = tenants.iter().map(row).collect();
        crate::table::print_table(&header, &rows)?;
        if rows.is_empty() {
            errln!("no tenants: make one with `grid-cli admin tenant create NAME`");
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn row(t: &TenantRow) -> [String; 11] {
    let [a, b, c, d, e, f] = quota_cells(&t.quota);
    [
        t.name.clone(),
        t.running.to_string(),
        t.queued.to_string(),
        t.jobs_run.to_string(),
        format_fuel(t.fuel_burned),
        a,
        b,
        c,
        d,
        e,
        f,
    ]
}

fn json(t: &TenantRow) -> serde_json::Value {
    let q = &t.quota;
    serde_json::json!({
        "name": t.name,
        "created_ms": t.created_ms,
        "running": t.running,
        "queued": t.queued,
        "jobs_run": t.jobs_run,
        "fuel_burned": t.fuel_burned,
        "fuel_available": t.fuel_available,
        "quota": {
            "max_running": q.max_running,
            "max_queued": q.max_queued,
            "fuel_per_hour": q.fuel.map(|f| f.rate_per_hour),
            "fuel_burst": q.fuel.map(|f| f.burst),
            "max_job_fuel": q.max_job_fuel,
            "max_job_memory": q.max_job_memory,
            "max_job_timeout_ms": q.max_job_timeout.map(|d| d.as_millis() as u64),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_changes_only_the_quotas_named_and_zero_removes_one() {
        let now = TenantQuota {
            max_running: Some(4),
            max_queued: Some(100),
            fuel: Some(FuelQuota { rate_per_hour: 1_000, burst: 1_000 }),
            ..Default::default()
        };
        let args = QuotaArgs {
            max_running: Some(8),
            max_queued: Some(0),
            max_job_memory: Some(1 << 20),
            ..Default::default()
        };
        let q = args.apply(now);
        assert_eq!(q.max_running, Some(8));
        assert_eq!(q.max_queued, None);
        assert_eq!(q.fuel, now.fuel);
        assert_eq!(q.max_job_memory, Some(1 << 20));
        let none = QuotaArgs { fuel_per_hour: Some(parse_fuel_rate("0").unwrap()), ..Default::default() };
        assert_eq!(none.apply(now).fuel, None);
    }

    #[test]
    fn quotas_read_in_a_few_words() {
        assert_eq!(describe(&TenantQuota::default()), "no quotas");
        let q =
            TenantQuota { max_running: Some(4), max_job_timeout: Some(Duration::from_secs(600)), ..Default::default() };
        assert_eq!(describe(&q), "max running 4, max job timeout 10m");
    }
}
