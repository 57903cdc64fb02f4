//! The HTTP face of the master (`grid-master --http ADDR`): the JSON API
//! under `/api/v1`, the dashboard at `/`, and `/metrics` for Prometheus.
//!
//! Handlers are thin: each turns its request into the gRPC message and
//! calls the very `Master`/`Admin` service methods gRPC calls, with the
//! [`Caller`](crate::auth::Caller) in the request's extensions, so limits,
//! quotas, isolation and refusals are the gRPC ones.

pub mod auth;
mod base64;
pub mod dashboard;
pub mod error;
mod events;
mod grid;
pub mod jobs;
pub mod json;
pub mod listener;
mod logs;
mod nodes;
mod session;
mod upload;

use crate::admin::AdminService;
use crate::auth::Tokens;
use crate::gates::Gate;
use crate::rpc::MasterService;
use crate::state::LiveState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use error::ApiError;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where and how the master serves HTTP.
pub struct HttpServe {
    /// The bound listener.
    pub listener: TcpListener,
    /// Plain HTTP instead of TLS with the master's own identity; only for
    /// a loopback address, or a master that serves gRPC plaintext too.
    pub plaintext: bool,
}

/// The largest JSON body but a submission's.
pub const MAX_JSON_BODY: usize = 64 << 10;
/// The largest submission body (its stdin travels in it).
pub const MAX_SUBMIT_BODY: usize = 8 << 20;
/// Streams (logs, events, waits) one client may hold open at once.
pub const STREAMS_PER_CLIENT: usize = 32;
/// Streams open at once on the whole master.
pub const STREAMS_IN_ALL: usize = 1024;
/// The longest a request may take before its answer starts (a `wait` is
/// at most a minute).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// What every handler shares: the master's own services and state.
#[derive(Clone)]
pub struct Api {
    pub(crate) master: Arc<MasterService>,
    pub(crate) admin: Arc<AdminService>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) live: Arc<LiveState>,
    /// Which jobs and nodes changed.
    pub(crate) feed: Arc<crate::feed::Feed>,
    /// Turns true when the master shuts down.
    pub(crate) closing: tokio::sync::watch::Receiver<bool>,
    /// Whether the API is served over TLS (the cookie is then `Secure`).
    pub(crate) tls: bool,
    /// Streams open, per client and in all.
    pub(crate) streams: Arc<Gate>,
}

impl Api {
    /// The API over the master's services.
    pub(crate) fn new(
        master: Arc<MasterService>,
        admin: Arc<AdminService>,
        tokens: Arc<Tokens>,
        feed: Arc<crate::feed::Feed>,
        closing: tokio::sync::watch::Receiver<bool>,
        tls: bool,
    ) -> Self {
        let live = master.live.clone();
        let streams = Gate::new("streams", STREAMS_PER_CLIENT, STREAMS_IN_ALL);
        Self { master, admin, tokens, live, feed, closing, tls, streams }
    }
}

/// Every route: the API, health, metrics, and the dashboard.
pub fn router(api: Api) -> Router {
    let v1 = Router::new()
        .route("/login", post(session::login))
        .route("/logout", post(session::logout))
        .route("/whoami", get(session::whoami))
        .route("/jobs", get(jobs::list).post(jobs::submit).layer(DefaultBodyLimit::max(MAX_SUBMIT_BODY)))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/wait", get(jobs::wait))
        .route("/jobs/{id}/logs", get(logs::logs))
        // Streamed into the store under its own size limit.
        .route("/modules", put(upload::upload).layer(DefaultBodyLimit::disable()))
        .route("/nodes", get(nodes::list))
        .route("/nodes/self", get(nodes::me))
        .route("/nodes/{name}", get(nodes::get))
        .route("/nodes/{name}/{action}", post(nodes::act))
        .route("/events", get(events::events))
        .route("/stats", get(grid::stats))
        .route("/tenants", get(grid::tenants))
        .fallback(|| async { ApiError::not_found("no such API route") });
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(grid::healthz))
        .route("/readyz", get(grid::readyz))
        .route("/version", get(grid::version))
        .route("/metrics", get(grid::metrics))
        .merge(dashboard::routes::<Api>())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(api)
}

/// Serves `router` on `http` until `closing` turns true, with TLS from
/// `identity` unless plaintext was asked for (or there is no identity:
/// an `--insecure` master).
pub(crate) async fn serve(
    http: HttpServe,
    router: Router,
    identity: Option<&crate::tls::ServerIdentity>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tls = match identity {
        Some(identity) if !http.plaintext => Some(listener::tls_config(identity)?),
        _ => None,
    };
    let addr = http.listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), "serving HTTP");
    let listener = listener::HttpListener::new(http.listener, tls)?;
    let service = router.into_make_service_with_connect_info::<auth::Peer>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = closing.wait_for(|c| *c).await;
        })
        .await?;
    Ok(())
}
