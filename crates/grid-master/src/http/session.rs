//! Signing in with a token: `login` sets the cookie, `logout` clears it,
//! `whoami` says who a request is.

use super::Api;
use super::auth::{COOKIE, Who, authenticate};
use super::error::{ApiError, ApiResult};
use crate::auth::Caller;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// What `whoami` answers for `caller`.
pub fn identity(caller: &Caller) -> Value {
    match caller {
        Caller::Admin => json!({ "kind": "admin", "tenant": null, "node": null }),
        Caller::Tenant(t) => json!({ "kind": "tenant", "tenant": t, "node": null }),
        Caller::Node { name, owner, .. } => json!({ "kind": "node", "tenant": owner, "node": name }),
        Caller::Join { .. } => json!({ "kind": "join", "tenant": null, "node": null }),
    }
}

/// `GET /api/v1/whoami`.
pub async fn whoami(who: Who) -> Json<Value> {
    Json(identity(&who.caller))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    token: String,
}

fn cookie(api: &Api, value: &str, max_age: Option<u64>) -> HeaderValue {
    let secure = if api.tls { "; Secure" } else { "" };
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    let text = format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/{secure}{age}");
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("grid_token=; Max-Age=0; Path=/"))
}

/// `POST /api/v1/login` `{"token": "..."}`: checks the token and sets the
/// cookie. The body must be JSON (`Content-Type: application/json`), which
/// a cross-site form cannot send.
pub async fn login(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "log in with a JSON body (`Content-Type: application/json`)",
        ));
    }
    let Login { token } = super::jobs::parse(body)?;
    let token = token.trim();
    let caller = authenticate(&api, token)?;
    if !token.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',') {
        return Err(ApiError::bad("the token holds characters a cookie cannot"));
    }
    Ok(([(header::SET_COOKIE, cookie(&api, token, None))], Json(identity(&caller))).into_response())
}

/// `POST /api/v1/logout`: clears the cookie.
pub async fn logout(State(api): State<Api>) -> Response {
    ([(header::SET_COOKIE, cookie(&api, "", Some(0)))], Json(json!({ "logged_out": true }))).into_response()
}
