//! The gRPC face of the grid's administration (`grid.v1.Admin`): tenants
//! and their quotas, tokens, and node credentials. Only the admin token
//! reaches it (the auth layer sees to that); it converts prost types and
//! calls into the token registry and the live state.

use crate::auth::tokens::{TokenInfo, Tokens};
use crate::auth::{Caller, tokens};
use crate::error::MasterError;
use crate::state::{LiveState, blocking};
use crate::tenants::TenantUsage;
use grid_core::TenantQuota;
use grid_core::token::{JoinToken, Token};
use grid_proto as pb;
use grid_proto::admin_server::Admin;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// What a revoked node's session ends with.
pub const REVOKED_NODE: &str = "this node's credential was revoked";

/// The tonic service.
pub struct AdminService {
    live: Arc<LiveState>,
    tokens: Arc<Tokens>,
    /// The pin join tokens carry.
    ca_pin: Option<[u8; 32]>,
    /// The lease, for a master of several on one database.
    lease: Option<Arc<crate::pg::lease::Lease>>,
}

impl AdminService {
    /// The service over `live` and `tokens`; join tokens carry `ca_pin`.
    pub fn new(live: Arc<LiveState>, tokens: Arc<Tokens>, ca_pin: Option<[u8; 32]>) -> Self {
        Self { live, tokens, ca_pin, lease: None }
    }

    /// The same service, for a master of several on the lease's database.
    pub fn with_lease(self, lease: Option<Arc<crate::pg::lease::Lease>>) -> Self {
        Self { lease, ..self }
    }

    /// A blocking write to the registry, off the async threads.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tokens) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, MasterError> {
        let tokens = self.tokens.clone();
        blocking(move || f(&tokens)).await
    }
}

fn admin_only<T>(req: &Request<T>) -> Result<(), Status> {
    match Caller::of(req)? {
        Caller::Admin => Ok(()),
        _ => Err(MasterError::Refused("only the admin token may administer the grid".into()).into()),
    }
}

fn token_to_pb(t: TokenInfo) -> pb::TokenInfo {
    pb::TokenInfo {
        id: t.id,
        kind: t.kind.as_str().to_owned(),
        subject: t.subject,
        created_ms: t.created_ms,
        last_used_ms: t.last_used_ms,
        expires_ms: t.expires_ms.unwrap_or(0),
        uses_left: t.uses_left.unwrap_or(0),
        revoked: t.revoked,
        joined_by: t.joined_by.unwrap_or_default(),
    }
}

fn tenant_to_pb(t: tokens::Tenant, usage: Option<&TenantUsage>) -> pb::TenantInfo {
    let usage = usage.cloned().unwrap_or_default();
    pb::TenantInfo {
        name: t.name,
        quota: Some(t.quota.into()),
        created_ms: t.created_ms,
        running: usage.running,
        queued: usage.queued,
        jobs_run: usage.jobs_run,
        fuel_burned: usage.fuel_burned,
        fuel_available: usage.fuel_available.unwrap_or(0),
    }
}

fn created(id: String, token: String) -> Response<pb::CreatedToken> {
    Response::new(pb::CreatedToken { id, token })
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_tenant(&self, req: Request<pb::CreateTenantRequest>) -> Result<Response<pb::CreatedToken>, Status> {
        admin_only(&req)?;
        let req = req.into_inner();
        let quota = TenantQuota::from(req.quota.unwrap_or_default());
        let name = req.name;
        let (tenant, info, token) = self.write(move |t| t.create_tenant(&name, quota)).await?;
        self.live.set_quota(&tenant.name, tenant.quota);
        tracing::info!(tenant = %tenant.name, "tenant created");
        Ok(created(info.id, token.to_string()))
    }

    async fn set_tenant_quota(
        &self,
        req: Request<pb::SetTenantQuotaRequest>,
    ) -> Result<Response<pb::TenantInfo>, Status> {
        admin_only(&req)?;
        let req = req.into_inner();
        let quota = TenantQuota::from(req.quota.unwrap_or_default());
        let name = req.name;
        let tenant = self.write(move |t| t.set_quota(&name, quota)).await?;
        self.live.set_quota(&tenant.name, tenant.quota);
        let usage = self.live.tenant_usage();
        let mine = usage.iter().find(|u| u.name == tenant.name);
        Ok(Response::new(tenant_to_pb(tenant, mine)))
    }

    async fn list_tenants(
        &self,
        req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        admin_only(&req)?;
        let usage = self.live.tenant_usage();
        let tenants = self
            .tokens
            .tenants()
            .into_iter()
            .map(|t| {
                let mine = usage.iter().find(|u| u.name == t.name);
                tenant_to_pb(t, mine)
            })
            .collect();
        Ok(Response::new(pb::ListTenantsResponse { tenants }))
    }

    async fn create_tenant_token(
        &self,
        req: Request<pb::CreateTenantTokenRequest>,
    ) -> Result<Response<pb::CreatedToken>, Status> {
        admin_only(&req)?;
        let tenant = req.into_inner().tenant;
        let (info, token) = self.write(move |t| t.issue_tenant(&tenant)).await?;
        Ok(created(info.id, token.to_string()))
    }

    async fn create_join_token(
        &self,
        req: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreatedToken>, Status> {
        admin_only(&req)?;
        let req = req.into_inner();
        let uses = Some(req.uses).filter(|u| *u > 0);
        let ttl = Some(req.ttl_ms).filter(|t| *t > 0).map(Duration::from_millis);
        let owner = Some(req.owner).filter(|o| !o.is_empty());
        let (info, token): (TokenInfo, Token) = self.write(move |t| t.issue_join(uses, ttl, owner)).await?;
        let join = JoinToken { token, ca_pin: self.ca_pin };
        Ok(created(info.id, join.to_string()))
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        admin_only(&req)?;
        let tokens = self.tokens.list().into_iter().map(token_to_pb).collect();
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        admin_only(&req)?;
        let id = req.into_inner().id;
        let revoked = self.write(move |t| t.revoke(&id)).await?;
        if let Some(info) = &revoked {
            tracing::info!(token = %info.id, kind = %info.kind, subject = %info.subject, "token revoked");
            if info.kind == grid_core::token::TokenKind::Node {
                self.live.drop_node_named(&info.subject, REVOKED_NODE);
            }
        }
        Ok(Response::new(pb::RevokeTokenResponse { revoked: revoked.is_some() }))
    }

    async fn revoke_node(
        &self,
        req: Request<pb::RevokeNodeRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        admin_only(&req)?;
        let name = req.into_inner().name;
        let owned = name.clone();
        let revoked = self.write(move |t| t.revoke_node(&owned)).await?;
        let dropped = self.live.drop_node_named(&name, REVOKED_NODE);
        if revoked == 0 && !dropped {
            let shown = grid_core::text::cut(&name, tokens::MAX_NAME);
            return Err(MasterError::NotFound(format!("no node `{shown}` with a live credential")).into());
        }
        tracing::info!(node = %name, credentials = revoked, "node revoked");
        Ok(Response::new(pb::RevokeTokenResponse { revoked: revoked > 0 }))
    }

    async fn clear_quarantine(
        &self,
        req: Request<pb::ClearQuarantineRequest>,
    ) -> Result<Response<pb::ClearQuarantineResponse>, Status> {
        admin_only(&req)?;
        let name = req.into_inner().name;
        let store = self.live.store();
        let owned = name.clone();
        let recorded = blocking(move || store.node(&owned)).await?;
        let cleared = self.live.clear_quarantine(&name, recorded)?;
        // The answer promises the clear: it is in the record first.
        self.live.store().flush().await?;
        Ok(Response::new(pb::ClearQuarantineResponse { cleared }))
    }

    async fn list_masters(
        &self,
        req: Request<pb::ListMastersRequest>,
    ) -> Result<Response<pb::ListMastersResponse>, Status> {
        admin_only(&req)?;
        let Some(lease) = &self.lease else {
            let now_ms = crate::model::now_ms();
            return Ok(Response::new(pb::ListMastersResponse { masters: vec![], database: "sqlite".into(), now_ms }));
        };
        let (rows, now_ms) = lease.masters().await?;
        let masters = rows
            .into_iter()
            .map(|m| pb::MasterInfo {
                name: m.name,
                grpc_url: m.grpc_url,
                http_url: m.http_url,
                version: m.version,
                leader: m.leader,
                epoch: m.epoch,
                lease_expires_ms: m.lease_expires_ms,
                renewed_ms: m.renewed_ms,
                started_ms: m.started_ms,
                seen_ms: m.seen_ms,
            })
            .collect();
        Ok(Response::new(pb::ListMastersResponse { masters, database: "postgres".into(), now_ms }))
    }
}
