//! What a standby master serves while another leads: every gRPC call is
//! answered `UNAVAILABLE` with where the leader is (the message, and the
//! `grid-leader` metadata clients follow), and HTTP answers `503` but for
//! `/healthz`, `/version` and `/metrics`, so that a load balancer's
//! `/readyz` check follows the leader.

use crate::pg::lease::Leader;
use crate::pg::lease_metrics::LeaseMetrics;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;

/// The metadata key that names the leader's gRPC URL, as clients read it.
pub const LEADER_HEADER: &str = grid_core::masters::LEADER_HEADER;

/// Who leads, as a standby last read it.
pub type LeaderView = watch::Receiver<Option<Leader>>;

/// The one line a standby answers with.
pub fn refusal(leader: Option<&Leader>) -> String {
    match leader.filter(|l| !l.grpc_url.is_empty()) {
        Some(l) => format!("this master is a standby; the leader is at {}", l.grpc_url),
        None => "this master is a standby; no master leads yet".to_owned(),
    }
}

/// `text` as a `grpc-message` carries it: percent-encoded outside
/// printable ASCII, and `%` itself.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The gRPC side: any call, on any path, ends at once with status 14
/// (`UNAVAILABLE`), in a trailers-only answer.
pub fn grpc_router(leader: LeaderView) -> Router {
    Router::new().fallback(move || {
        let current = leader.borrow().clone();
        async move {
            let mut response = StatusCode::OK.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert("grpc-status", HeaderValue::from_static("14"));
            let message = grpc_message(&refusal(current.as_ref()));
            if let Ok(v) = HeaderValue::from_str(&message) {
                headers.insert("grpc-message", v);
            }
            if let Some(url) = current.as_ref().map(|l| l.grpc_url.as_str()).filter(|u| !u.is_empty())
                && let Ok(v) = HeaderValue::from_str(url)
            {
                headers.insert(LEADER_HEADER, v);
            }
            response
        }
    })
}

/// The HTTP side: alive, not ready, and where the leader's HTTP API is.
pub fn http_router(leader: LeaderView, metrics: LeaseMetrics) -> Router {
    let refuse = move || {
        let current = leader.borrow().clone();
        async move { standby_answer(current.as_ref()) }
    };
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "ok": true, "role": "standby" })) }))
        .route("/version", get(crate::http::grid::version))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text) }
            }),
        )
        .fallback(refuse)
        .layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

fn standby_answer(leader: Option<&Leader>) -> Response {
    let url = leader.map(|l| l.http_url.as_str()).filter(|u| !u.is_empty());
    let error = match (leader, url) {
        (Some(_), Some(url)) => format!("this master is a standby; the leader is at {url}"),
        _ => refusal(leader),
    };
    let mut response =
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "error": error, "leader": url }))).into_response();
    if let Some(v) = url.and_then(|u| HeaderValue::from_str(u).ok()) {
        response.headers_mut().insert(LEADER_HEADER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(grpc: &str) -> Leader {
        Leader { name: "m1".into(), grpc_url: grpc.into(), http_url: String::new(), epoch: 3 }
    }

    #[test]
    fn the_refusal_names_the_leader_or_says_none_leads() {
        assert_eq!(
            refusal(Some(&leader("https://10.0.0.1:7070"))),
            "this master is a standby; the leader is at https://10.0.0.1:7070"
        );
        assert_eq!(refusal(None), "this master is a standby; no master leads yet");
        assert_eq!(refusal(Some(&leader(""))), "this master is a standby; no master leads yet");
    }

    #[test]
    fn grpc_messages_are_percent_encoded_outside_printable_ascii() {
        assert_eq!(grpc_message("a b:c/d"), "a b:c/d");
        assert_eq!(grpc_message("50% é"), "50%25 %C3%A9");
    }
}
