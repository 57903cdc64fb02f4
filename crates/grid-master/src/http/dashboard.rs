//! The dashboard: static pages and scripts built into the binary, served
//! at `/`. They read everything they show from the API.
//!
//! The page is one HTML document, one script and one style sheet, with no
//! framework, build step or request outside the master. Every answer
//! carries a strict content security policy (`default-src 'self'`): no
//! inline script or style runs, so text the grid shows (job output, node
//! names, a tenant's arguments) can never become code in the page.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy every dashboard answer carries: only the master's own
/// scripts, styles, images and API; no framing by other sites.
const POLICY: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file and its content type.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset { body: include_str!("assets/index.html"), content_type: "text/html; charset=utf-8" };
const APP: Asset = Asset { body: include_str!("assets/app.js"), content_type: "text/javascript; charset=utf-8" };
const CHARTS: Asset = Asset { body: include_str!("assets/charts.js"), content_type: "text/javascript; charset=utf-8" };
const STYLE: Asset = Asset { body: include_str!("assets/style.css"), content_type: "text/css; charset=utf-8" };
const ICON: Asset = Asset { body: include_str!("assets/favicon.svg"), content_type: "image/svg+xml" };

/// The dashboard's routes: `/` and its assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| serve(&INDEX)))
        .route("/assets/app.js", get(|| serve(&APP)))
        .route("/assets/charts.js", get(|| serve(&CHARTS)))
        .route("/assets/style.css", get(|| serve(&STYLE)))
        .route("/assets/favicon.svg", get(|| serve(&ICON)))
}

/// Answers with `asset`, its type, and the headers that keep the page to
/// itself. The assets change only with the binary, so the browser checks
/// back each time (`no-cache`) rather than keeping an old script.
async fn serve(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        routes::<()>().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn assets_have_their_types_and_a_strict_policy() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/assets/app.js", "text/javascript"),
            ("/assets/charts.js", "text/javascript"),
            ("/assets/style.css", "text/css"),
            ("/assets/favicon.svg", "image/svg+xml"),
        ] {
            let answer = get(path).await;
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            let headers = answer.headers();
            assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind), "{path}");
            assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().starts_with("default-src 'self'"));
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

    #[tokio::test]
    async fn the_page_has_no_inline_script_or_style() {
        let body = to_bytes(get("/").await.into_body(), 1 << 20).await.unwrap();
        let page = String::from_utf8(body.to_vec()).unwrap();
        let scripts: Vec<&str> = page.match_indices("<script").map(|(at, _)| &page[at..]).collect();
        assert_eq!(scripts.len(), 2);
        for script in scripts {
            assert!(script.starts_with(r#"<script src="/assets/"#), "scripts load from files");
        }
        assert!(!page.contains("<style") && !page.contains("style="), "no inline style");
        let handler = page.split(|c: char| c.is_whitespace()).any(|word| {
            word.strip_prefix("on").is_some_and(|rest| {
                rest.split_once('=').is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_lowercase()))
            })
        });
        assert!(!handler, "no inline event handler");
    }

    #[tokio::test]
    async fn the_scripts_never_write_markup() {
        for script in [APP.body, CHARTS.body] {
            for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
                assert!(!script.contains(sink), "`{sink}` in a script");
            }
        }
    }
}
