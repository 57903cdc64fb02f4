//! `/api/v1/nodes`: the grid's nodes, one node's page, a node credential's
//! own page, and the admin's actions on a node.

use super::Api;
use super::auth::Who;
use super::error::{ApiError, ApiResult};
use super::json::Node;
use crate::auth::Caller;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use grid_proto as pb;
use grid_proto::admin_server::Admin as _;
use grid_proto::master_server::Master as _;
use serde::Deserialize;
use serde_json::{Value, json};

/// `GET /api/v1/nodes`'s query.
#[derive(Debug, Default, Deserialize)]
pub struct NodesQuery {
    /// Also the nodes that left or were lost.
    #[serde(default)]
    pub all: bool,
}

/// Every node `who` may see (a node credential: its own alone).
pub(super) async fn visible(api: &Api, who: &Who, all: bool) -> ApiResult<(Vec<Node>, u32)> {
    let asker = who.asker();
    let listed = api.master.list_nodes(asker.request(pb::ListNodesRequest { all })).await?.into_inner();
    let mut nodes: Vec<Node> = listed.nodes.into_iter().map(Node::from_pb).collect();
    if let Some(name) = who.node() {
        nodes.retain(|n| n.name == name);
    }
    if !matches!(who.caller, Caller::Admin) {
        for n in &mut nodes {
            n.address = None;
        }
    }
    Ok((nodes, listed.trust_after))
}

/// `GET /api/v1/nodes`.
pub async fn list(
    State(api): State<Api>,
    who: Who,
    query: Result<Query<NodesQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let (nodes, trust_after) = visible(&api, &who, q.all).await?;
    Ok(Json(json!({ "nodes": nodes, "trust_after": trust_after })))
}

/// One node's page: the node and its recent samples.
async fn page(api: &Api, who: &Who, name: &str) -> ApiResult<Json<Value>> {
    let (nodes, _) = visible(api, who, true).await?;
    let node = nodes
        .into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no node `{}`", grid_core::text::cut(name, 64))))?;
    let series = api.live.series().node(name);
    Ok(Json(json!({ "node": node, "series": series })))
}

/// `GET /api/v1/nodes/{name}`.
pub async fn get(State(api): State<Api>, who: Who, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    page(&api, &who, &name).await
}

/// `GET /api/v1/nodes/self`: a node credential's own page.
pub async fn me(State(api): State<Api>, who: Who) -> ApiResult<Json<Value>> {
    let Some(name) = who.node().map(str::to_owned) else {
        return Err(ApiError::forbidden("only a node credential has a node of its own"));
    };
    page(&api, &who, &name).await
}

/// `POST /api/v1/nodes/{name}/ACTION`: `drain`, `undrain`, `revoke` or
/// `unquarantine` (the admin's).
pub async fn act(State(api): State<Api>, who: Who, Path(name): Path<String>, action: &str) -> ApiResult<Json<Value>> {
    who.admin_only()?;
    let done = match action {
        "drain" | "undrain" => {
            let held = action == "drain";
            if !api.live.hold_node(&name, held) {
                return Err(ApiError::not_found(format!("no connected node `{}`", grid_core::text::cut(&name, 64))));
            }
            json!({ "draining": held })
        }
        "revoke" => {
            let r = api.admin.revoke_node(who.request(pb::RevokeNodeRequest { name })).await?.into_inner();
            json!({ "revoked": r.revoked })
        }
        "unquarantine" => {
            let r = api.admin.clear_quarantine(who.request(pb::ClearQuarantineRequest { name })).await?.into_inner();
            json!({ "cleared": r.cleared })
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no node action `{}`: drain, undrain, revoke or unquarantine",
                grid_core::text::cut(other, 32)
            )));
        }
    };
    Ok(Json(done))
}
