//! `PUT /api/v1/modules`: a module's bytes as the raw body, streamed into
//! the module store under its size limit; answers `{"hash"}`.

use super::Api;
use super::auth::Who;
use super::error::{ApiError, ApiResult};
use crate::error::MasterError;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;

/// `PUT /api/v1/modules`.
pub async fn upload(
    State(api): State<Api>,
    who: Who,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    who.client_only()?;
    let store = api.master.store.clone();
    let limit = store.max_size();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(size) = declared.filter(|s| *s > limit) {
        return Err(MasterError::ModuleTooLarge { size, limit }.into());
    }
    let _permit = api.master.uploads.enter(&who.client.to_string())?;
    let idle = api.master.upload_idle;
    let mut upload = store.begin_any()?;
    let mut chunks = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(idle, chunks.next()).await {
            Err(_) => return Err(MasterError::upload_stalled(idle).into()),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ApiError::bad(format!("upload broke off: {e}"))),
            Ok(Some(Ok(chunk))) => chunk,
        };
        upload.write(&chunk)?;
    }
    let (hash, size) = upload.finish()?;
    tracing::info!(module = %hash.short(), size, "module stored (HTTP)");
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "hash": hash.to_string(), "size": size }))))
}
