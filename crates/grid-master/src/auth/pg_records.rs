//! The token registry's tables in the grid's PostgreSQL database: what
//! every master of the grid reads when it becomes the leader, and what the
//! leader writes, each write fenced by its lease.
//!
//! The registry's calls are synchronous and made on blocking threads
//! (`state::blocking`); each runs its transaction to the end on the
//! runtime it was opened on (`Handle::block_on`, which panics on an async
//! thread).

use super::records::{Entry, Tenant, TokenInfo, TokenRecord, quota_columns};
use crate::error::Result;
use crate::pg::{Fence, Pool, db_err};
use grid_core::token::TokenKind;
use grid_core::{FuelQuota, TenantQuota};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// One statement of a write and its parameters.
type Statement = (&'static str, Vec<Box<dyn ToSql + Send + Sync>>);

const TOKEN_ROW: &str = "SELECT id, kind, subject, owner, hash, created_ms, last_used_ms, expires_ms, uses_left, \
                         revoked, joined_by FROM tokens";
const TENANT_ROW: &str = "SELECT name, created_ms, max_running, max_queued, fuel_per_hour, fuel_burst, max_job_fuel, \
                          max_job_memory, max_job_timeout_ms FROM tenants";

/// The registry's tables in PostgreSQL, written by the lease's holder.
pub(super) struct PgRecord {
    pool: Pool,
    fence: Arc<Fence>,
    runtime: tokio::runtime::Handle,
}

impl PgRecord {
    /// The record, and every token and tenant it holds now.
    pub(super) async fn open(
        pool: Pool,
        fence: Arc<Fence>,
    ) -> Result<(Self, HashMap<String, Entry>, BTreeMap<String, Tenant>)> {
        let client = pool.get().await.map_err(db_err)?;
        let mut tokens = HashMap::new();
        for row in client.query(TOKEN_ROW, &[]).await.map_err(tokens_err)? {
            let entry = token_row(&row)?;
            tokens.insert(entry.info.id.clone(), entry);
        }
        let mut tenants = BTreeMap::new();
        for row in client.query(TENANT_ROW, &[]).await.map_err(tokens_err)? {
            let tenant = tenant_row(&row)?;
            tenants.insert(tenant.name.clone(), tenant);
        }
        drop(client);
        Ok((Self { pool, fence, runtime: tokio::runtime::Handle::current() }, tokens, tenants))
    }

    /// Runs `statements` in one transaction that first checks the fence.
    fn write(&self, statements: Vec<Statement>) -> Result<()> {
        self.runtime.block_on(async {
            let mut client = self.pool.get().await.map_err(db_err)?;
            let tx = client.transaction().await.map_err(tokens_err)?;
            self.fence.check(&tx).await?;
            for (sql, params) in &statements {
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
                tx.execute(*sql, &params).await.map_err(tokens_err)?;
            }
            tx.commit().await.map_err(tokens_err)
        })
    }
}

fn tokens_err(e: tokio_postgres::Error) -> crate::MasterError {
    crate::MasterError::Db(format!("tokens: {e}"))
}

fn ids(ids: &[String]) -> Box<dyn ToSql + Send + Sync> {
    Box::new(ids.to_vec())
}

impl TokenRecord for PgRecord {
    fn insert_token(&self, info: &TokenInfo, hash: &blake3::Hash) -> Result<()> {
        self.write(vec![(
            "INSERT INTO tokens (id, kind, subject, owner, hash, created_ms, last_used_ms, expires_ms, uses_left, \
             revoked, joined_by) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, false, $9)",
            vec![
                Box::new(info.id.clone()),
                Box::new(info.kind.as_str().to_owned()),
                Box::new(info.subject.clone()),
                Box::new(info.owner.clone()),
                Box::new(hash.as_bytes().to_vec()),
                Box::new(info.created_ms as i64),
                Box::new(info.expires_ms.map(|v| v as i64)),
                Box::new(info.uses_left.map(i64::from)),
                Box::new(info.joined_by.clone()),
            ],
        )])
    }

    fn delete_tokens(&self, list: &[String]) -> Result<()> {
        self.write(vec![("DELETE FROM tokens WHERE id = ANY($1)", vec![ids(list)])])
    }

    fn revoke_tokens(&self, list: &[String]) -> Result<()> {
        self.write(vec![("UPDATE tokens SET revoked = true WHERE id = ANY($1)", vec![ids(list)])])
    }

    fn set_uses_left(&self, id: &str, left: u32) -> Result<()> {
        self.write(vec![(
            "UPDATE tokens SET uses_left = $2 WHERE id = $1",
            vec![Box::new(id.to_owned()), Box::new(i64::from(left))],
        )])
    }

    fn insert_tenant(&self, tenant: &Tenant) -> Result<()> {
        let mut params: Vec<Box<dyn ToSql + Send + Sync>> =
            vec![Box::new(tenant.name.clone()), Box::new(tenant.created_ms as i64)];
        params.extend(quota_columns(&tenant.quota).map(|v| Box::new(v) as Box<dyn ToSql + Send + Sync>));
        self.write(vec![(
            "INSERT INTO tenants (name, created_ms, max_running, max_queued, fuel_per_hour, fuel_burst, \
             max_job_fuel, max_job_memory, max_job_timeout_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            params,
        )])
    }

    fn set_quota(&self, name: &str, quota: &TenantQuota) -> Result<()> {
        let mut params: Vec<Box<dyn ToSql + Send + Sync>> = vec![Box::new(name.to_owned())];
        params.extend(quota_columns(quota).map(|v| Box::new(v) as Box<dyn ToSql + Send + Sync>));
        self.write(vec![(
            "UPDATE tenants SET max_running = $2, max_queued = $3, fuel_per_hour = $4, fuel_burst = $5, \
             max_job_fuel = $6, max_job_memory = $7, max_job_timeout_ms = $8 WHERE name = $1",
            params,
        )])
    }

    fn write_last_used(&self, used: &[(String, u64)]) -> Result<()> {
        let list: Vec<String> = used.iter().map(|(id, _)| id.clone()).collect();
        let times: Vec<i64> = used.iter().map(|(_, ms)| *ms as i64).collect();
        self.write(vec![(
            "UPDATE tokens SET last_used_ms = u.ms FROM unnest($1::text[], $2::bigint[]) AS u(id, ms) \
             WHERE tokens.id = u.id",
            vec![Box::new(list), Box::new(times)],
        )])
    }

    fn token(&self, id: &str) -> Result<Option<Entry>> {
        self.runtime.block_on(async {
            let client = self.pool.get().await.map_err(db_err)?;
            let row = client.query_opt(&format!("{TOKEN_ROW} WHERE id = $1"), &[&id]).await.map_err(tokens_err)?;
            row.as_ref().map(token_row).transpose()
        })
    }
}

fn token_row(r: &tokio_postgres::Row) -> Result<Entry> {
    let get = |i: usize| -> Result<Option<i64>> { r.try_get(i).map_err(tokens_err) };
    let kind: String = r.try_get(1).map_err(tokens_err)?;
    let hash: Vec<u8> = r.try_get(4).map_err(tokens_err)?;
    // A row whose hash is not 32 bytes matches no secret.
    let hash = <[u8; 32]>::try_from(hash).unwrap_or([0; 32]);
    let known = TokenKind::parse(&kind);
    let info = TokenInfo {
        id: r.try_get(0).map_err(tokens_err)?,
        // A kind this master does not know is taken as revoked.
        kind: known.unwrap_or(TokenKind::Join),
        subject: r.try_get(2).map_err(tokens_err)?,
        owner: r.try_get(3).map_err(tokens_err)?,
        created_ms: get(5)?.unwrap_or(0) as u64,
        last_used_ms: get(6)?.unwrap_or(0) as u64,
        expires_ms: get(7)?.map(|v| v as u64),
        uses_left: get(8)?.map(|v| v.clamp(0, i64::from(u32::MAX)) as u32),
        revoked: r.try_get::<_, bool>(9).map_err(tokens_err)? || known.is_none(),
        joined_by: r.try_get(10).map_err(tokens_err)?,
    };
    Ok(Entry { info, hash: blake3::Hash::from_bytes(hash) })
}

fn tenant_row(r: &tokio_postgres::Row) -> Result<Tenant> {
    let opt = |i: usize| -> Result<Option<u64>> {
        Ok(r.try_get::<_, Option<i64>>(i).map_err(tokens_err)?.map(|v| v.max(0) as u64))
    };
    let (rate, burst) = (opt(4)?, opt(5)?);
    Ok(Tenant {
        name: r.try_get(0).map_err(tokens_err)?,
        created_ms: opt(1)?.unwrap_or(0),
        quota: TenantQuota {
            max_running: opt(2)?.map(|v| v.min(u64::from(u32::MAX)) as u32),
            max_queued: opt(3)?.map(|v| v.min(u64::from(u32::MAX)) as u32),
            fuel: rate.map(|rate| FuelQuota { rate_per_hour: rate, burst: burst.unwrap_or(rate) }),
            max_job_fuel: opt(6)?,
            max_job_memory: opt(7)?,
            max_job_timeout: opt(8)?.map(Duration::from_millis),
        },
    })
}

#[cfg(test)]
#[path = "pg_tests.rs"]
mod tests;
