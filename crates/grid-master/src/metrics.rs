//! The master's Prometheus metrics, rendered at `/metrics`: counters and
//! histograms fed where each event happens in the live state (one atomic
//! add, or one uncontended histogram update under the state's lock), and
//! gauges read from the live state when scraped.

use crate::state::LiveState;
use grid_core::{NodeState, Outcome};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The content type of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `outcome` label of `grid_jobs_finished_total`, one per kind of
/// ending (exit codes are not labels: only zero and not zero).
pub const OUTCOMES: [&str; 14] = [
    "exited_zero",
    "exited_nonzero",
    "out_of_fuel",
    "memory_limit",
    "timeout",
    "output_limit",
    "disk_limit",
    "stack_overflow",
    "trap",
    "invalid_module",
    "link_error",
    "cancelled",
    "node_error",
    "no_quorum",
];

/// Where `outcome` is in [`OUTCOMES`].
fn outcome_index(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Exited(0) => 0,
        Outcome::Exited(_) => 1,
        Outcome::OutOfFuel => 2,
        Outcome::MemoryLimit => 3,
        Outcome::Timeout => 4,
        Outcome::OutputLimit => 5,
        Outcome::DiskLimit => 6,
        Outcome::StackOverflow => 7,
        Outcome::Trap(_) => 8,
        Outcome::InvalidModule(_) => 9,
        Outcome::LinkError(_) => 10,
        Outcome::Cancelled => 11,
        Outcome::NodeError(_) => 12,
        Outcome::NoQuorum(_) => 13,
    }
}

/// The `state` label of `grid_jobs`: the states a job is in while the
/// master holds it in memory.
const JOB_STATES: [&str; 2] = ["queued", "running"];

/// The gRPC methods the master serves, as `grid_rpc_requests_total` names
/// them; any other path counts as `other`.
pub const RPC_METHODS: [&str; 22] = [
    "MissingModules",
    "UploadModule",
    "SubmitJob",
    "WatchJob",
    "RunJob",
    "CancelJob",
    "GetJob",
    "ListJobs",
    "ListNodes",
    "NodeSession",
    "FetchModule",
    "JoinGrid",
    "CreateTenant",
    "SetTenantQuota",
    "ListTenants",
    "CreateTenantToken",
    "CreateJoinToken",
    "ListTokens",
    "RevokeToken",
    "RevokeNode",
    "ClearQuarantine",
    "ListMasters",
];

/// gRPC status code names, by code (as grpc-go and its Prometheus
/// middleware spell them).
pub const RPC_CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The index of gRPC method `path` (`/grid.v1.Master/SubmitJob`) in
/// [`RPC_METHODS`], or `RPC_METHODS.len()` for any other path.
pub fn rpc_method(path: &str) -> usize {
    let method = path.strip_prefix("/grid.v1.Master/").or_else(|| path.strip_prefix("/grid.v1.Admin/"));
    let found = method.and_then(|m| RPC_METHODS.iter().position(|known| *known == m));
    // Each service's own methods only.
    match (found, path.starts_with("/grid.v1.Admin/")) {
        (Some(i), true) if i >= 12 => i,
        (Some(i), false) if i < 12 => i,
        _ => RPC_METHODS.len(),
    }
}

/// Upper bounds of the queue wait histogram's buckets, in seconds.
const WAIT_BUCKETS: [f64; 13] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Upper bounds of the run time histogram's buckets, in seconds.
const RUN_BUCKETS: [f64; 14] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0];

/// Calls counted by method and status code: one atomic per pair, so that
/// counting takes no lock and allocates nothing; pairs never seen are not
/// rendered.
#[derive(Debug, Clone)]
pub struct RpcCounts(Arc<[AtomicU64]>);

impl RpcCounts {
    fn new() -> Self {
        Self((0..(RPC_METHODS.len() + 1) * RPC_CODES.len()).map(|_| AtomicU64::new(0)).collect())
    }

    /// One call of method `method` (see [`rpc_method`]) ended with `code`;
    /// a code past the known ones counts as `Unknown`.
    pub fn count(&self, method: usize, code: i32) {
        let code = usize::try_from(code).ok().filter(|c| *c < RPC_CODES.len()).unwrap_or(2);
        let method = method.min(RPC_METHODS.len());
        self.0[method * RPC_CODES.len() + code].fetch_add(1, Ordering::Relaxed);
    }

    /// Calls of `method` (a name of [`RPC_METHODS`], or `other`) that ended
    /// with `code` (a name of [`RPC_CODES`]).
    pub fn get(&self, method: &str, code: &str) -> u64 {
        let m = RPC_METHODS.iter().position(|n| *n == method).unwrap_or(RPC_METHODS.len());
        let c = RPC_CODES.iter().position(|n| *n == code).unwrap_or(2);
        self.0[m * RPC_CODES.len() + c].load(Ordering::Relaxed)
    }
}

impl EncodeMetric for RpcCounts {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (i, n) in self.0.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let method = RPC_METHODS.get(i / RPC_CODES.len()).copied().unwrap_or("other");
            let labels = [("method", method), ("code", RPC_CODES[i % RPC_CODES.len()])];
            encoder.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// The `route` and `status` labels of `grid_http_requests_total`.
type HttpLabels = [(&'static str, String); 2];

/// The master's counters and histograms; gauges are read from the live
/// state when scraped.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    submitted: Counter,
    finished: [Counter; OUTCOMES.len()],
    queue_wait: Histogram,
    run: Histogram,
    fuel: Counter,
    retries: Counter,
    disagreed: Counter,
    jobs: [Gauge; JOB_STATES.len()],
    nodes: [Gauge; NodeState::ALL.len()],
    oldest_queued: Gauge<f64, AtomicU64>,
    rpc: RpcCounts,
    http: Family<HttpLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, all zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let submitted = Counter::default();
        registry.register("grid_jobs_submitted", "Jobs submitted since the master started", submitted.clone());
        let finished_family = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let finished = OUTCOMES.map(|o| finished_family.get_or_create(&[("outcome", o)]).clone());
        registry.register("grid_jobs_finished", "Jobs ended since the master started, by outcome", finished_family);
        let queue_wait = Histogram::new(WAIT_BUCKETS);
        registry.register_with_unit(
            "grid_job_queue_wait",
            "Time from a job's submission to the start of its first attempt",
            Unit::Seconds,
            queue_wait.clone(),
        );
        let run = Histogram::new(RUN_BUCKETS);
        registry.register_with_unit(
            "grid_job_run",
            "Time from the start of a job's last attempt to its end, as the master saw it",
            Unit::Seconds,
            run.clone(),
        );
        let oldest_queued = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "grid_oldest_queued_job_age",
            "Time since the submission of the oldest job waiting for a node (0 with none waiting)",
            Unit::Seconds,
            oldest_queued.clone(),
        );
        let fuel = Counter::default();
        registry.register("grid_fuel_burned", "Fuel burned by every attempt and replica nodes reported", fuel.clone());
        let retries = Counter::default();
        registry.register(
            "grid_job_retries",
            "Attempts started again: after a node was lost, handed a job back or held it past its deadline, \
             and replicas started in place of ones that came to nothing",
            retries.clone(),
        );
        let disagreed = Counter::default();
        registry.register(
            "grid_replicas_disagreed",
            "Replicas whose result disagreed with the one their quorum agreed on",
            disagreed.clone(),
        );
        let jobs_family = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        let jobs = JOB_STATES.map(|s| jobs_family.get_or_create(&[("state", s)]).clone());
        registry.register("grid_jobs", "Jobs in the master's memory, by state", jobs_family);
        let nodes_family = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        let nodes = NodeState::ALL.map(|s| nodes_family.get_or_create(&[("state", s.as_str())]).clone());
        registry.register("grid_nodes", "Nodes the master knows in memory, by state", nodes_family);
        let rpc = RpcCounts::new();
        registry.register("grid_rpc_requests", "gRPC calls ended, by method and status code", rpc.clone());
        let http = Family::<HttpLabels, Counter>::default();
        registry.register("grid_http_requests", "HTTP requests answered, by route and status", http.clone());
        Self {
            registry,
            submitted,
            finished,
            queue_wait,
            run,
            fuel,
            retries,
            disagreed,
            jobs,
            nodes,
            oldest_queued,
            rpc,
            http,
        }
    }

    /// A job was queued.
    pub fn submitted(&self) {
        self.submitted.inc();
    }

    /// A job ended with `outcome`; its last attempt started `ran` ago, if
    /// it started at all.
    pub fn finished(&self, outcome: &Outcome, ran: Option<Duration>) {
        self.finished[outcome_index(outcome)].inc();
        if let Some(ran) = ran {
            self.run.observe(ran.as_secs_f64());
        }
    }

    /// A job's first attempt started `waited` after its submission.
    pub fn started(&self, waited: Duration) {
        self.queue_wait.observe(waited.as_secs_f64());
    }

    /// A node reported `fuel` burned by an attempt or replica.
    pub fn burned(&self, fuel: u64) {
        self.fuel.inc_by(fuel);
    }

    /// An attempt or replica is to start again in place of one that came
    /// to nothing.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// A replica's result disagreed with its quorum.
    pub fn disagreed(&self) {
        self.disagreed.inc();
    }

    /// The gRPC call counts.
    pub fn rpc(&self) -> &RpcCounts {
        &self.rpc
    }

    /// An HTTP request to `route` (the route's template, such as
    /// `/api/v1/jobs/{id}`, never a path with ids in it; `other` for none)
    /// was answered with `status`.
    pub fn http_request(&self, route: &str, status: u16) {
        self.http.get_or_create(&[("route", route.to_owned()), ("status", status.to_string())]).inc();
    }

    /// Also serves the lease's metrics (a master of several on one database).
    pub fn register_lease(&mut self, lease: &crate::pg::lease_metrics::LeaseMetrics) {
        lease.register(&mut self.registry);
    }

    /// Jobs submitted since the master started.
    pub fn submitted_total(&self) -> u64 {
        self.submitted.get()
    }

    /// Jobs ended since the master started.
    pub fn finished_total(&self) -> u64 {
        self.finished.iter().map(Counter::get).sum()
    }

    /// Jobs ended with the outcome labelled `label` (see [`OUTCOMES`]).
    pub fn finished_with(&self, label: &str) -> u64 {
        OUTCOMES.iter().position(|o| *o == label).map_or(0, |i| self.finished[i].get())
    }

    /// Fuel burned since the master started.
    pub fn fuel_total(&self) -> u64 {
        self.fuel.get()
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]),
    /// gauges read from `live`.
    pub fn render(&self, live: &LiveState) -> String {
        let census = live.census(true);
        self.jobs[0].set(census.queued as i64);
        self.jobs[1].set(census.running as i64);
        for (gauge, n) in self.nodes.iter().zip(census.nodes) {
            gauge.set(n as i64);
        }
        let age = census.oldest_queued_ms.map_or(0, |ms| crate::model::now_ms().saturating_sub(ms));
        self.oldest_queued.set(age as f64 / 1000.0);
        let mut out = String::with_capacity(8 << 10);
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
