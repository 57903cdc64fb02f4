//! `/api/v1/jobs`: list, look at, submit, cancel and wait for jobs, each a
//! thin call into the gRPC service's own methods.

use super::Api;
use super::auth::Who;
use super::error::{ApiError, ApiResult};
use super::json::{Job, Terms, VolunteerJob};
use crate::listing;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use grid_core::{JobSpec, Limits, Submission};
use grid_proto as pb;
use grid_proto::master_server::Master as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest a `wait` holds a request open.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The longest filter or cursor a listing takes, in bytes.
pub const MAX_FILTER: usize = 128;

/// `GET /api/v1/jobs`'s query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub state: Option<String>,
    pub tenant: Option<String>,
    pub node: Option<String>,
    /// A module hash prefix.
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A page of jobs.
#[derive(Debug, Serialize)]
pub struct JobPage<J> {
    pub jobs: Vec<J>,
    pub next_cursor: Option<String>,
}

fn filter(name: &str, v: Option<String>) -> ApiResult<String> {
    let v = v.unwrap_or_default();
    if v.len() > MAX_FILTER {
        return Err(ApiError::bad(format!("`{name}` is {} bytes, over the limit of {MAX_FILTER}", v.len())));
    }
    Ok(v)
}

/// `GET /api/v1/jobs`: a page of the caller's jobs, newest first; a node
/// credential lists the jobs that ran on its node, cut to a volunteer's view.
pub async fn list(
    State(api): State<Api>,
    who: Who,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let Query(q) = query?;
    let mut req = pb::ListJobsRequest {
        state: filter("state", q.state)?,
        limit: q.limit.unwrap_or(0).min(listing::PAGE_MAX as u32),
        page_token: filter("cursor", q.cursor)?,
        tenant: filter("tenant", q.tenant)?,
        node: filter("node", q.node)?,
        module_prefix: filter("q", q.q)?,
        after: String::new(),
    };
    let (who, volunteer) = match who.node() {
        Some(name) => {
            req.node = name.to_owned();
            req.tenant.clear();
            (who.asker(), true)
        }
        None => (who, false),
    };
    let page = api.master.list_jobs(who.request(req)).await?.into_inner();
    let next_cursor = Some(page.next_page_token).filter(|t| !t.is_empty());
    let jobs = page.jobs.into_iter().map(|j| Job::from_pb(j, None));
    Ok(if volunteer {
        Json(JobPage { jobs: jobs.map(Job::for_volunteer).collect::<Vec<VolunteerJob>>(), next_cursor }).into_response()
    } else {
        Json(JobPage { jobs: jobs.collect(), next_cursor }).into_response()
    })
}

/// Job `id` as `who` may see it: whole for its tenant or the admin, with its
/// spec's limits; a node credential sees only a job that ran on its node.
pub async fn job(api: &Api, who: &Who, id: &str, with_spec: bool) -> ApiResult<Job> {
    if id.len() > MAX_FILTER {
        return Err(ApiError::not_found(format!("no job `{}`", grid_core::text::cut(id, 64))));
    }
    let asker = who.asker();
    let info = api.master.get_job(asker.request(pb::GetJobRequest { job_id: id.to_owned() })).await?.into_inner();
    let spec = if with_spec && who.node().is_none() { terms_of(api, id).await } else { None };
    let job = Job::from_pb(info, spec.as_ref());
    if let Some(name) = who.node()
        && !job.ran_on(name)
    {
        return Err(ApiError::not_found(format!("no job `{id}`")));
    }
    Ok(job)
}

/// How the job runs: from memory while the job is there, else from the
/// record (where a finished job's inputs are dropped); `None` if it cannot
/// be read.
async fn terms_of(api: &Api, id: &str) -> Option<Terms> {
    let terms = |(limits, replicas, deterministic)| Terms { limits, replicas, deterministic };
    if let Some(t) = api.live.terms_of(id) {
        return Some(terms(t));
    }
    let (store, id) = (api.live.store(), id.to_owned());
    let spec = crate::state::blocking(move || store.job(&id)).await.ok().flatten()?.spec;
    Some(terms((spec.limits, spec.replicas, spec.deterministic)))
}

/// `GET /api/v1/jobs/{id}`.
pub async fn get(State(api): State<Api>, who: Who, Path(id): Path<String>) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let job = job(&api, &who, &id, true).await?;
    Ok(if who.node().is_some() { Json(job.for_volunteer()).into_response() } else { Json(job).into_response() })
}

/// An amount given as a number or as text with a unit (`"64MiB"`, `"30s"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Number(u64),
    Text(String),
}

impl Amount {
    fn size(&self, name: &str) -> ApiResult<u64> {
        match self {
            Amount::Number(n) => Ok(*n),
            Amount::Text(t) => grid_core::parse_size(t).map_err(|e| ApiError::bad(format!("`{name}`: {e}"))),
        }
    }

    /// A fuel amount, as `--fuel` takes it (`10G` is ten billion).
    fn fuel(&self, name: &str) -> ApiResult<u64> {
        match self {
            Amount::Number(0) => Err(ApiError::bad(format!("`{name}`: 0 is no fuel: a job needs some to run"))),
            Amount::Number(n) => Ok(*n),
            Amount::Text(t) => grid_core::parse_fuel_limit(t).map_err(|e| ApiError::bad(format!("`{name}`: {e}"))),
        }
    }

    /// A duration: a number is milliseconds.
    fn duration(&self, name: &str) -> ApiResult<Duration> {
        match self {
            Amount::Number(n) => Ok(Duration::from_millis(*n)),
            Amount::Text(t) => grid_core::parse_duration(t).map_err(|e| ApiError::bad(format!("`{name}`: {e}"))),
        }
    }
}

/// `POST /api/v1/jobs`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The module's hash, as `PUT /api/v1/modules` answered it.
    pub module: String,
    /// The guest's arguments, after its program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// The guest's program name (`argv[0]`); the module's short hash if none.
    pub program: Option<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    pub stdin: Option<String>,
    pub stdin_base64: Option<String>,
    pub fuel: Option<Amount>,
    pub memory: Option<Amount>,
    pub timeout: Option<Amount>,
    pub output_limit: Option<Amount>,
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub deterministic: bool,
    #[serde(default)]
    pub priority: i32,
    /// Whose job it is: the admin's choice; a tenant's own otherwise.
    pub tenant: Option<String>,
}

/// Parses a JSON body, refusing bad JSON with one line.
pub fn parse<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

impl SubmitBody {
    /// The gRPC request this body makes, with `key` as its idempotency key.
    fn request(self, key: Option<String>) -> ApiResult<pb::SubmitJobRequest> {
        let module = grid_core::ModuleHash::parse(&self.module).map_err(|e| ApiError::bad(format!("`module`: {e}")))?;
        let stdin = match (self.stdin, self.stdin_base64) {
            (Some(_), Some(_)) => return Err(ApiError::bad("give `stdin` or `stdin_base64`, not both")),
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => {
                super::base64::decode(&b64).map_err(|e| ApiError::bad(format!("`stdin_base64`: {e}")))?
            }
            (None, None) => Vec::new(),
        };
        let d = Limits::default();
        let limits = Limits {
            fuel: self.fuel.map(|a| a.fuel("fuel")).transpose()?.unwrap_or(d.fuel),
            memory: self.memory.map(|a| a.size("memory")).transpose()?.unwrap_or(d.memory),
            timeout: self.timeout.map(|a| a.duration("timeout")).transpose()?.unwrap_or(d.timeout),
            output: self.output_limit.map(|a| a.size("output_limit")).transpose()?.unwrap_or(d.output),
            disk: d.disk,
        };
        let program = self.program.unwrap_or_else(|| module.short().to_string());
        let spec = JobSpec {
            args: std::iter::once(program).chain(self.args).collect(),
            module,
            env: self.env.into_iter().collect(),
            stdin,
            dirs: Vec::new(),
            limits,
            deterministic: self.deterministic,
            replicas: self.replicas,
        };
        let submission = Submission { key, tenant: self.tenant.unwrap_or_default(), priority: self.priority };
        Ok(grid_core::wire::submit_request(spec, submission))
    }
}

/// `POST /api/v1/jobs`: submits a job; the same `Idempotency-Key` again
/// yields the same job.
pub async fn submit(
    State(api): State<Api>,
    who: Who,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    who.client_only()?;
    let body: SubmitBody = parse(body)?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::bad("`Idempotency-Key` is not text"))?.to_owned()),
        None => None,
    };
    let req = body.request(key)?;
    let id = api.master.submit_job(who.request(req)).await?.into_inner().job_id;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))))
}

/// `POST /api/v1/jobs/{id}/cancel`.
pub async fn cancel(State(api): State<Api>, who: Who, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    who.client_only()?;
    let cancelled = api.master.cancel_job(who.request(pb::CancelJobRequest { job_id: id })).await?.into_inner();
    Ok(Json(serde_json::json!({ "cancelled": cancelled.cancelled })))
}

/// `wait`'s query.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    pub timeout: Option<String>,
}

/// `GET /api/v1/jobs/{id}/wait?timeout=30s`: the job once it finishes, or
/// as it stands when the timeout (at most a minute) passes.
pub async fn wait(
    State(api): State<Api>,
    who: Who,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let Query(q) = query?;
    let timeout = match q.timeout.as_deref() {
        Some(t) => grid_core::parse_duration(t).map_err(|e| ApiError::bad(format!("`timeout`: {e}")))?,
        None => Duration::from_secs(30),
    }
    .min(MAX_WAIT);
    let first = job(&api, &who, &id, false).await?;
    if !first.finished() {
        let _permit = api.streams.enter(&who.client.to_string())?;
        let asker = who.asker();
        let events = api.master.watch_job(asker.request(pb::WatchJobRequest { job_id: id.clone(), snapshot: false }));
        let finished = async {
            let mut events = events.await?.into_inner();
            while let Some(e) = events.next().await {
                if let Some(pb::job_event::Event::Finished(_)) = e?.event {
                    break;
                }
            }
            Ok::<_, ApiError>(())
        };
        if let Ok(ended) = tokio::time::timeout(timeout, finished).await {
            ended?;
        }
    }
    let job = job(&api, &who, &id, true).await?;
    Ok(if who.node().is_some() { Json(job.for_volunteer()).into_response() } else { Json(job).into_response() })
}
