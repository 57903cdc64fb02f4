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
pub(crate) mod grid;
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
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{MethodRouter, any, get, post, put};
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

/// Routes as they are added, each with its methods: the router is built
/// from this table, and the OpenAPI document must list the same.
struct Table {
    router: Router<Api>,
    listed: Vec<(String, String)>,
}

impl Table {
    fn at(mut self, path: &str, methods: &[&str], route: MethodRouter<Api>) -> Self {
        self.listed.extend(methods.iter().map(|m| (m.to_string(), path.to_owned())));
        self.router = self.router.route(path, route);
        self
    }
}

/// Every route but the dashboard's, with its methods.
fn table() -> Table {
    let node = |action: &'static str| {
        post(move |api: State<Api>, who: auth::Who, name: Path<String>| nodes::act(api, who, name, action))
    };
    Table { router: Router::new(), listed: Vec::new() }
        .at("/api/v1/login", &["post"], post(session::login))
        .at("/api/v1/logout", &["post"], post(session::logout))
        .at("/api/v1/whoami", &["get"], get(session::whoami))
        .at(
            "/api/v1/jobs",
            &["get", "post"],
            get(jobs::list).post(jobs::submit).layer(DefaultBodyLimit::max(MAX_SUBMIT_BODY)),
        )
        .at("/api/v1/jobs/{id}", &["get"], get(jobs::get))
        .at("/api/v1/jobs/{id}/cancel", &["post"], post(jobs::cancel))
        .at("/api/v1/jobs/{id}/wait", &["get"], get(jobs::wait))
        .at("/api/v1/jobs/{id}/logs", &["get"], get(logs::logs))
        // Streamed into the store under its own size limit.
        .at("/api/v1/modules", &["put"], put(upload::upload).layer(DefaultBodyLimit::disable()))
        .at("/api/v1/nodes", &["get"], get(nodes::list))
        .at("/api/v1/nodes/self", &["get"], get(nodes::me))
        .at("/api/v1/nodes/{name}", &["get"], get(nodes::get))
        .at("/api/v1/nodes/{name}/drain", &["post"], node("drain"))
        .at("/api/v1/nodes/{name}/undrain", &["post"], node("undrain"))
        .at("/api/v1/nodes/{name}/revoke", &["post"], node("revoke"))
        .at("/api/v1/nodes/{name}/unquarantine", &["post"], node("unquarantine"))
        .at("/api/v1/events", &["get"], get(events::events))
        .at("/api/v1/stats", &["get"], get(grid::stats))
        .at("/api/v1/tenants", &["get"], get(grid::tenants))
        .at("/api/v1/openapi.json", &["get"], get(openapi))
        .at("/healthz", &["get"], get(grid::healthz))
        .at("/readyz", &["get"], get(grid::readyz))
        .at("/version", &["get"], get(grid::version))
        .at("/metrics", &["get"], get(grid::metrics))
}

/// The OpenAPI 3.1 document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Counts each answer in `grid_http_requests_total`, by the template of
/// the route it matched (never the path itself: it holds ids) and status.
async fn counted(
    State(api): State<Api>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    let answer = next.run(req).await;
    api.live.metrics().http_request(route.as_deref().unwrap_or("other"), answer.status().as_u16());
    answer
}

/// Every route: the API, health, metrics, and the dashboard.
pub fn router(api: Api) -> Router {
    let counting = axum::middleware::from_fn_with_state(api.clone(), counted);
    table()
        .router
        .route("/api/v1/{*rest}", any(|| async { ApiError::not_found("no such API route") }))
        .merge(dashboard::routes::<Api>())
        .method_not_allowed_fallback(|| async {
            ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(counting)
        // No answer (a job's output as text, say) is ever sniffed into a page.
        .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(api)
}

/// How long a client may take to send a request's headers.
const HEADER_READ: Duration = Duration::from_secs(10);
/// HTTP/2 requests one connection may have open at once.
const STREAMS_PER_CONNECTION: u32 = 16;
/// How often an idle HTTP/2 connection is pinged, and how long its answer
/// may take before the connection is closed.
const PING: Duration = Duration::from_secs(20);

/// Serves `router` on `http` until `closing` turns true, with TLS from
/// `identity` unless plaintext was asked for (or there is no identity:
/// an `--insecure` master). Each connection has [`HEADER_READ`] to send a
/// request's headers, at most [`STREAMS_PER_CONNECTION`] HTTP/2 requests at
/// once, and HTTP/2 pings that close a peer gone silent.
pub(crate) async fn serve(
    http: HttpServe,
    router: Router,
    identity: Option<&crate::tls::ServerIdentity>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let tls = match identity {
        Some(identity) if !http.plaintext => Some(listener::tls_config(identity)?),
        _ => None,
    };
    let addr = http.listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), "serving HTTP");
    let mut listener = listener::HttpListener::new(http.listener, tls)?;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(STREAMS_PER_CONNECTION)
        .keep_alive_interval(PING)
        .keep_alive_timeout(PING);
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (conn, peer) = tokio::select! {
            accepted = listener.next() => accepted,
            _ = closing.wait_for(|c| *c) => break,
        };
        let app = router.clone().layer(axum::Extension(axum::extract::ConnectInfo(auth::Peer(peer))));
        let service = hyper_util::service::TowerToHyperService::new(app);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let serving = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
            if let Err(e) = watcher.watch(serving.into_owned()).await {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        });
    }
    drop(listener);
    // Streams end on `closing` by themselves; what is left gets the
    // master's own shutdown wait.
    let _ = tokio::time::timeout(crate::SHUTDOWN_WAIT, graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_lists_every_route_and_no_other() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        let routed: BTreeSet<_> = super::table().listed.into_iter().collect();
        assert_eq!(documented, routed);
    }
}
