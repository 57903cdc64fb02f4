//! The CLI's admin calls: tenants, tokens and nodes' credentials, with an
//! admin token.

use super::{Reach, Retry, status};
use crate::login::Remote;
use anyhow::{Result, anyhow};
use grid_core::TenantQuota;
use grid_core::connect::Conn;
use grid_proto as pb;
use grid_proto::admin_client::AdminClient;
use std::time::Duration;

/// A token just made, shown this once.
#[derive(Debug)]
pub struct Created {
    pub id: String,
    pub token: String,
}

/// A tenant as `admin tenants` shows it.
#[derive(Debug, serde::Serialize)]
pub struct TenantRow {
    pub name: String,
    #[serde(skip)]
    pub quota: TenantQuota,
    pub created_ms: u64,
    pub running: u32,
    pub queued: u32,
    pub jobs_run: u64,
    pub fuel_burned: u64,
    /// Fuel in the tenant's bucket now, with a fuel quota.
    pub fuel_available: Option<u64>,
}

/// A master of the grid's database, as `admin masters` shows it.
#[derive(Debug, serde::Serialize)]
pub struct MasterRow {
    pub name: String,
    pub grpc_url: String,
    pub http_url: Option<String>,
    pub version: String,
    pub leader: bool,
    /// The leader's lease epoch.
    pub epoch: Option<u64>,
    /// When the leader's lease expires, and when it last renewed it (ms
    /// since the Unix epoch).
    pub lease_expires_ms: Option<u64>,
    pub renewed_ms: Option<u64>,
    pub started_ms: u64,
    pub seen_ms: u64,
}

/// The masters of the grid's database.
#[derive(Debug, serde::Serialize)]
pub struct Masters {
    /// `sqlite` (one master alone) or `postgres`.
    pub database: String,
    /// The database's clock when it answered (ms since the Unix epoch).
    pub now_ms: u64,
    /// The leader first.
    pub masters: Vec<MasterRow>,
}

/// A token as `admin tokens` shows it: never its secret.
#[derive(Debug, serde::Serialize)]
pub struct TokenRow {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub uses_left: Option<u32>,
    pub revoked: bool,
}

/// A connection to the admin service of whichever master leads.
pub struct Admin {
    client: AdminClient<Conn>,
    reach: Reach,
}

/// `$admin.call(retry, ..)` of the admin service's method `$method` with
/// `$req`, cloned for each attempt.
macro_rules! call {
    ($admin:ident, $retry:expr, $method:ident($req:expr)) => {{
        let req = $req;
        $admin
            .call($retry, move |mut client| {
                let req = req.clone();
                async move { client.$method(req).await }
            })
            .await
    }};
}

impl Admin {
    /// Connects to `remote`.
    pub async fn connect(remote: &Remote) -> Result<Self> {
        let mut reach = Reach::of(remote)?;
        let channel = reach.channel().await?;
        let client = grid_core::connect::admin(channel, remote.token.as_deref()).map_err(|e| anyhow!(e))?;
        Ok(Self { client, reach })
    }

    /// Makes the call `call`, and again on the leader as
    /// [`Reach::again`] says.
    async fn call<T, F, Fut>(&mut self, retry: Retry, call: F) -> Result<T>
    where
        F: Fn(AdminClient<Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let began = std::time::Instant::now();
        let mut tries = 0;
        loop {
            let failed = match call(self.client.clone()).await {
                Ok(answer) => return Ok(answer),
                Err(failed) => failed,
            };
            tries += 1;
            let Some(channel) = self.reach.again(&failed, retry, began, tries).await else {
                return Err(status(failed));
            };
            match grid_core::connect::admin(channel, self.reach.token()) {
                Ok(client) => self.client = client,
                Err(_) => return Err(status(failed)),
            }
        }
    }

    /// Makes tenant `name` with `quota`; its first token.
    pub async fn create_tenant(&mut self, name: &str, quota: TenantQuota) -> Result<Created> {
        let req = pb::CreateTenantRequest { name: name.to_owned(), quota: Some(quota.into()) };
        Ok(created(call!(self, Retry::Once, create_tenant(req))?.into_inner()))
    }

    /// Sets tenant `name`'s quotas to `quota`.
    pub async fn set_quota(&mut self, name: &str, quota: TenantQuota) -> Result<TenantRow> {
        let req = pb::SetTenantQuotaRequest { name: name.to_owned(), quota: Some(quota.into()) };
        Ok(tenant(call!(self, Retry::Safe, set_tenant_quota(req))?.into_inner()))
    }

    /// Every tenant.
    pub async fn tenants(&mut self) -> Result<Vec<TenantRow>> {
        let reply = call!(self, Retry::Safe, list_tenants(pb::ListTenantsRequest {}))?.into_inner();
        Ok(reply.tenants.into_iter().map(tenant).collect())
    }

    /// Another token for tenant `name`.
    pub async fn tenant_token(&mut self, name: &str) -> Result<Created> {
        let req = pb::CreateTenantTokenRequest { tenant: name.to_owned() };
        Ok(created(call!(self, Retry::Once, create_tenant_token(req))?.into_inner()))
    }

    /// A join token for `uses` nodes (0: any number), valid for `ttl`
    /// (`None`: the master's default), making private nodes of `owner`.
    pub async fn join_token(&mut self, uses: u32, ttl: Option<Duration>, owner: Option<&str>) -> Result<Created> {
        let req = pb::CreateJoinTokenRequest {
            uses,
            ttl_ms: ttl.map_or(0, |t| t.as_millis().max(1) as u64),
            owner: owner.unwrap_or_default().to_owned(),
        };
        Ok(created(call!(self, Retry::Once, create_join_token(req))?.into_inner()))
    }

    /// Every token, without secrets.
    pub async fn tokens(&mut self) -> Result<Vec<TokenRow>> {
        let reply = call!(self, Retry::Safe, list_tokens(pb::ListTokensRequest {}))?.into_inner();
        let some = |n: u64| (n > 0).then_some(n);
        Ok(reply
            .tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                kind: t.kind,
                subject: t.subject,
                created_ms: t.created_ms,
                last_used_ms: some(t.last_used_ms),
                expires_ms: some(t.expires_ms),
                uses_left: (t.uses_left > 0).then_some(t.uses_left),
                revoked: t.revoked,
            })
            .collect())
    }

    /// Revokes token `id`; whether it was live.
    pub async fn revoke(&mut self, id: &str) -> Result<bool> {
        let req = pb::RevokeTokenRequest { id: id.to_owned() };
        Ok(call!(self, Retry::Safe, revoke_token(req))?.into_inner().revoked)
    }

    /// Revokes node `name`'s credential, ending its session; whether it
    /// had a live one.
    pub async fn revoke_node(&mut self, name: &str) -> Result<bool> {
        let req = pb::RevokeNodeRequest { name: name.to_owned() };
        Ok(call!(self, Retry::Safe, revoke_node(req))?.into_inner().revoked)
    }

    /// The masters of the grid's database.
    pub async fn masters(&mut self) -> Result<Masters> {
        let r = call!(self, Retry::Safe, list_masters(pb::ListMastersRequest {}))?.into_inner();
        let some = |v: u64| (v > 0).then_some(v);
        let masters = r
            .masters
            .into_iter()
            .map(|m| MasterRow {
                http_url: Some(m.http_url).filter(|u| !u.is_empty()),
                epoch: some(m.epoch),
                lease_expires_ms: some(m.lease_expires_ms),
                renewed_ms: some(m.renewed_ms),
                name: m.name,
                grpc_url: m.grpc_url,
                version: m.version,
                leader: m.leader,
                started_ms: m.started_ms,
                seen_ms: m.seen_ms,
            })
            .collect();
        Ok(Masters { database: r.database, now_ms: r.now_ms, masters })
    }

    /// Clears node `name`'s quarantine, so that it may run jobs again;
    /// whether it was quarantined.
    pub async fn clear_quarantine(&mut self, name: &str) -> Result<bool> {
        let req = pb::ClearQuarantineRequest { name: name.to_owned() };
        Ok(call!(self, Retry::Safe, clear_quarantine(req))?.into_inner().cleared)
    }
}

fn created(c: pb::CreatedToken) -> Created {
    Created { id: c.id, token: c.token }
}

fn tenant(t: pb::TenantInfo) -> TenantRow {
    let quota: TenantQuota = t.quota.unwrap_or_default().into();
    TenantRow {
        name: t.name,
        fuel_available: quota.fuel.map(|_| t.fuel_available),
        quota,
        created_ms: t.created_ms,
        running: t.running,
        queued: t.queued,
        jobs_run: t.jobs_run,
        fuel_burned: t.fuel_burned,
    }
}
