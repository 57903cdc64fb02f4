//! The grid as a whole: stats for the charts, tenants, health, version and
//! the Prometheus metrics.

use super::Api;
use super::auth::Who;
use super::error::ApiResult;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use grid_proto as pb;
use grid_proto::admin_server::Admin as _;
use grid_proto::master_server::Master as _;
use serde_json::{Value, json};

/// `GET /api/v1/stats` (the admin's): the grid's recent samples, and the
/// fuel each node burned.
pub async fn stats(State(api): State<Api>, who: Who) -> ApiResult<Json<Value>> {
    // The grid's series sum every tenant's work: the admin's alone.
    who.admin_only()?;
    let nodes = api.master.list_nodes(who.request(pb::ListNodesRequest { all: true })).await?.into_inner().nodes;
    let fuel: Vec<Value> = nodes.into_iter().map(|n| json!({ "node": n.name, "fuel": n.fuel_burned })).collect();
    Ok(Json(json!({ "series": api.live.series().grid(), "fuel_by_node": fuel })))
}

/// `GET /api/v1/tenants` (the admin's): each tenant, its quota's use.
pub async fn tenants(State(api): State<Api>, who: Who) -> ApiResult<Json<Value>> {
    who.admin_only()?;
    let listed = api.admin.list_tenants(who.request(pb::ListTenantsRequest {})).await?.into_inner();
    let tenants: Vec<Value> = listed
        .tenants
        .into_iter()
        .map(|t| {
            json!({
                "name": t.name,
                "created_ms": t.created_ms,
                "running": t.running,
                "queued": t.queued,
                "jobs_run": t.jobs_run,
                "fuel_burned": t.fuel_burned,
                "fuel_available": t.fuel_available,
                "quota": t.quota.map(|q| json!({
                    "max_running": q.max_running,
                    "max_queued": q.max_queued,
                    "fuel_per_hour": q.fuel_per_hour,
                    "fuel_burst": q.fuel_burst,
                    "max_job_fuel": q.max_job_fuel,
                    "max_job_memory": q.max_job_memory,
                    "max_job_timeout_ms": q.max_job_timeout_ms,
                })),
            })
        })
        .collect();
    Ok(Json(json!({ "tenants": tenants })))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// `GET /readyz`: 200 while the master takes work, 503 once it shuts down.
pub async fn readyz(State(api): State<Api>) -> impl IntoResponse {
    if *api.closing.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": "the master is shutting down" })))
    } else {
        (StatusCode::OK, Json(json!({ "ok": true })))
    }
}

/// `GET /version`.
pub async fn version() -> Json<Value> {
    Json(json!({ "name": "grid-master", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    let text = api.live.metrics().render(&api.live);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}
