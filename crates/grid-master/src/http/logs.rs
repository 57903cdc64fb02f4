//! `GET /api/v1/jobs/{id}/logs`: a job's output as plain text, or as
//! server-sent events that resume from `Last-Event-ID` (a byte offset).

use super::Api;
use super::auth::Who;
use super::error::{ApiError, ApiResult};
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use grid_proto as pb;
use grid_proto::master_server::Master as _;
use serde::Deserialize;

/// `logs`' query.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// `stdout` or `stderr`; both if none.
    pub stream: Option<String>,
    /// Resume after this many bytes (what `Last-Event-ID` says too).
    pub offset: Option<u64>,
    /// Plain text: follow a running job until it ends.
    #[serde(default)]
    pub follow: bool,
}

/// One piece of a job's log: output, or its end.
enum Piece {
    Output { stream: &'static str, data: Vec<u8>, offset: u64 },
    Retry(u32),
    End,
}

/// `GET /api/v1/jobs/{id}/logs`.
pub async fn logs(
    State(api): State<Api>,
    who: Who,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> ApiResult<Response> {
    who.client_only()?;
    let Query(q) = query?;
    let only = match q.stream.as_deref() {
        None | Some("") => None,
        Some("stdout") => Some(pb::OutputStream::Stdout as i32),
        Some("stderr") => Some(pb::OutputStream::Stderr as i32),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "`stream` is `stdout` or `stderr`, not `{}`",
                grid_core::text::cut(other, 32)
            )));
        }
    };
    let sse =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad("`Last-Event-ID` is not a byte offset"))?,
        ),
        None => q.offset,
    };
    let skip = resume.unwrap_or(0);
    // Known to the caller, or 404, before any stream opens.
    super::jobs::job(&api, &who, &id, false).await?;
    let permit = api.streams.enter(&who.client.to_string())?;
    let snapshot = !(sse || q.follow);
    let events = api.master.watch_job(who.request(pb::WatchJobRequest { job_id: id.clone(), snapshot })).await?;
    let mut offset = 0u64;
    let pieces = events.into_inner().filter_map(move |e| {
        let piece = match e.map(|e| e.event) {
            Ok(Some(pb::job_event::Event::Output(chunk))) if only.is_none_or(|s| s == chunk.stream) => {
                let stream = if chunk.stream == pb::OutputStream::Stderr as i32 { "stderr" } else { "stdout" };
                let len = chunk.data.len() as u64;
                let start = offset;
                offset += len;
                // Bytes the caller has, skipped.
                let cut = skip.saturating_sub(start).min(len) as usize;
                let data = chunk.data[cut..].to_vec();
                (!data.is_empty()).then_some(Ok(Piece::Output { stream, data, offset }))
            }
            Ok(Some(pb::job_event::Event::Retry(n))) => Some(Ok(Piece::Retry(n))),
            Ok(Some(pb::job_event::Event::Finished(_))) => Some(Ok(Piece::End)),
            Ok(_) => None,
            Err(status) => Some(Err(status)),
        };
        std::future::ready(piece)
    });
    if !sse {
        let body = pieces.filter_map(|p| {
            std::future::ready(match p {
                Ok(Piece::Output { data, .. }) => Some(Ok(Bytes::from(data))),
                Ok(_) => None,
                Err(status) => Some(Err(std::io::Error::other(status.message().to_owned()))),
            })
        });
        let held = body.map(move |b| {
            let _held = &permit;
            b
        });
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(held)).into_response());
    }
    let events = pieces.then(move |p| {
        let (api, who, id) = (api.clone(), who.clone(), id.clone());
        async move {
            let event = match p {
                Ok(Piece::Output { stream, data, offset }) => {
                    // SSE data is lines: a lone carriage return would end one.
                    let text = String::from_utf8_lossy(&data).replace("\r\n", "\n").replace('\r', "\n");
                    Event::default().event(stream).id(offset.to_string()).data(text)
                }
                Ok(Piece::Retry(n)) => Event::default().event("retry").data(n.to_string()),
                Ok(Piece::End) => match super::jobs::job(&api, &who, &id, true).await {
                    Ok(job) => Event::default().event("end").json_data(job).unwrap_or_default(),
                    Err(e) => Event::default().event("error").data(e.message),
                },
                Err(status) => Event::default().event("error").data(status.message().replace(['\r', '\n'], " ")),
            };
            Ok::<_, std::convert::Infallible>(event)
        }
    });
    let held = events.map(move |e| {
        let _held = &permit;
        e
    });
    Ok(Sse::new(held).keep_alive(KeepAlive::default()).into_response())
}
