//! `GET /api/v1/events`: the jobs and nodes that change, as server-sent
//! events or NDJSON, each `{seq, kind, job | node}` as the caller may see
//! it. `Last-Event-ID` (or `?after=SEQ`) resumes; a resume from before the
//! feed's ring (or from a previous master's numbers) gets
//! `{"kind":"reset"}` first, and the client lists again.

use super::Api;
use super::auth::Who;
use super::error::{ApiError, ApiResult};
use crate::feed::{Change, Since};
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::VecDeque;

/// Changes read from the feed at once.
const BATCH: usize = 64;

/// `events`' query.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Resume after this sequence number.
    pub after: Option<u64>,
}

/// One reader's place in the feed.
struct Reader {
    api: Api,
    who: Who,
    after: u64,
    latest: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    pending: VecDeque<Value>,
}

/// `change` as `who` may see it, or `None` if it may not.
async fn render(
    api: &Api,
    who: &Who,
    seq: u64,
    change: Change,
    nodes: &mut Option<Vec<super::json::Node>>,
) -> Option<Value> {
    match change {
        Change::Job(id) => {
            // Plainly another tenant's: not worth a look (the service would refuse it too).
            if let crate::auth::Caller::Tenant(mine) = &who.caller
                && api.live.tenant_of(&id).is_some_and(|t| t != *mine)
            {
                return None;
            }
            let job = super::jobs::job(api, who, &id, false).await.ok()?;
            let row = if who.node().is_some() { json!(job.for_volunteer()) } else { json!(job) };
            Some(json!({ "seq": seq, "kind": "job", "job": row }))
        }
        Change::Node(name) => {
            if nodes.is_none() {
                *nodes = Some(super::nodes::visible(api, who, true).await.ok()?.0);
            }
            let node = nodes.as_ref()?.iter().find(|n| n.name == name)?;
            Some(json!({ "seq": seq, "kind": "node", "node": node }))
        }
    }
}

/// The next change the reader may see, waiting for one; `None` once the
/// master shuts down.
async fn next(mut r: Reader) -> Option<(Value, Reader)> {
    loop {
        if let Some(v) = r.pending.pop_front() {
            return Some((v, r));
        }
        r.latest.borrow_and_update();
        match r.api.feed.since(r.after, BATCH) {
            Since::Reset { latest } => {
                r.after = latest;
                return Some((json!({ "seq": latest, "kind": "reset" }), r));
            }
            Since::Changes(changes) if changes.is_empty() => {
                if *r.closing.borrow() {
                    return None;
                }
                tokio::select! {
                    changed = r.latest.changed() => changed.ok()?,
                    _ = r.closing.wait_for(|c| *c) => return None,
                }
            }
            Since::Changes(changes) => {
                let mut nodes = None;
                for (seq, change) in changes {
                    r.after = seq;
                    if let Some(v) = render(&r.api, &r.who, seq, change, &mut nodes).await {
                        r.pending.push_back(v);
                    }
                }
            }
        }
    }
}

/// `GET /api/v1/events`.
pub async fn events(
    State(api): State<Api>,
    who: Who,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad("`Last-Event-ID` is not a sequence number"))?,
        None => q.after.unwrap_or_else(|| api.feed.latest()),
    };
    let permit = api.streams.enter(&who.client.to_string())?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ndjson = accept.contains("application/x-ndjson");
    let reader = Reader {
        latest: api.feed.subscribe(),
        closing: api.closing.clone(),
        api,
        who,
        after,
        pending: VecDeque::new(),
    };
    let changes = futures::stream::unfold(reader, next).map(move |v| {
        let _held = &permit;
        v
    });
    if ndjson {
        let lines = changes.map(|v| Ok::<_, std::convert::Infallible>(Bytes::from(format!("{v}\n"))));
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response());
    }
    let events = changes.map(|v| {
        let seq = v["seq"].as_u64().unwrap_or(0);
        Ok::<_, std::convert::Infallible>(Event::default().id(seq.to_string()).data(v.to_string()))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}
