//! `grid-node`: a volunteer's machine on the grid. It registers with a
//! master, fetches modules by hash, caches them compiled, and runs each job
//! in wasmtime (a core module with WASI preview 1, a component with WASI
//! preview 2) under fuel, memory and time limits.
//!
//! The binary is a thin wrapper over [`Node::run`], so tests and the
//! embedded grid of `grid-cli` run this very code in-process.

pub mod cache;
pub mod compile;
pub mod config;
pub mod credential;
pub mod ctx;
pub mod determinism;
#[cfg(test)]
mod determinism_tests;
pub mod disk;
pub mod engine;
pub mod error;
pub mod executor;
pub mod identity;
#[cfg(test)]
mod join_tests;
pub mod ledger;
pub mod limits;
pub mod linker;
pub mod lru;
pub mod metrics;
mod outbox;
pub mod output;
mod rpc;
mod state;

pub use config::{NodeConfig, default_name};

use credential::Start;
use dashmap::DashMap;
use grid_core::connect::Trust;
use grid_core::masters::{Masters, Standby};
use state::NodeShared;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Removes scratch directories left by node processes that no longer run.
fn clear_stale_scratch(jobs_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(jobs_dir) else { return };
    for entry in entries.flatten() {
        let alive = entry
            .file_name()
            .to_str()
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A node: its engine, its cache, and its session with the master.
pub struct Node {
    shared: Arc<NodeShared>,
    _ticker: engine::EpochTicker,
    /// Where to serve `/metrics` once the node has joined, if anywhere.
    metrics: Option<tokio::net::TcpListener>,
}

impl Node {
    /// Sets up the engine and opens the cache directory.
    pub fn new(config: NodeConfig) -> anyhow::Result<Self> {
        let engine = engine::new_engine(&config.capacity)?;
        let cache =
            cache::ModuleCache::open(&engine, &config.cache_dir.join("modules"), config.cache_size, config.compile)?;
        let jobs_dir = config.cache_dir.join("jobs");
        clear_stale_scratch(&jobs_dir);
        // Each node process has its own scratch root, so several nodes (or
        // embedded grids) can share one cache dir.
        let scratch_root = jobs_dir.join(std::process::id().to_string());
        std::fs::create_dir_all(&scratch_root)
            .map_err(|e| anyhow::anyhow!("failed to create scratch dir `{}`: {e}", scratch_root.display()))?;
        let identity = identity::load_or_create(&config.cache_dir)?;
        let metrics = metrics::NodeMetrics::new(cache.stats());
        let shared = NodeShared {
            metrics,
            identity,
            ledger: ledger::Ledger::new(config.capacity.clone()),
            config,
            cache,
            scratch_root,
            running: DashMap::new(),
            outboxes: DashMap::new(),
            delivered: Default::default(),
        };
        Ok(Self { _ticker: engine::EpochTicker::start(&engine), shared: Arc::new(shared), metrics: None })
    }

    /// The same node, serving its metrics in plain HTTP at `/metrics` on
    /// `listener` from the time it has joined until it stops.
    pub fn with_metrics(self, listener: tokio::net::TcpListener) -> Self {
        Self { metrics: Some(listener), ..self }
    }

    /// Serves the master until `shutdown` resolves, reconnecting with
    /// backoff whenever the master goes away. A node with no credential
    /// first trades its join token for one (see [`credential`]). On
    /// shutdown the node takes no new jobs, lets running ones finish for up
    /// to the grace period, hands the rest back to the master, and returns.
    /// Fails if it has neither credential nor join token, if the master
    /// refuses its credentials, or if the master refuses its first
    /// registration because another connected node has its name.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut masters = Masters::parse(&self.shared.config.master).map_err(|why| anyhow::anyhow!("{why}"))?;
        let session = tokio::select! {
            session = self.enrol(&mut masters) => session?,
            _ = &mut shutdown => {
                tracing::info!("node stopped before it joined");
                return Ok(());
            }
        };
        let (stop_tx, stop) = watch::channel(false);
        let summary = tokio::spawn(summarize(self.shared.clone()));
        // Stopped with the node, however its run ends.
        let _metrics = self.metrics.take().map(|l| Serving(tokio::spawn(serve_metrics(l, self.shared.clone()))));
        let serve = self.reconnect_loop(&session, &mut masters, stop);
        tokio::pin!(serve);
        let served = tokio::select! {
            served = &mut serve => served,
            _ = shutdown => {
                tracing::info!(grace = ?self.shared.config.grace, "shutting down: no new jobs");
                let _ = stop_tx.send(true);
                serve.await
            }
        };
        summary.abort();
        served?;
        tracing::info!("node stopped");
        Ok(())
    }

    /// The node's credential and trust: given, saved, or got by joining,
    /// retried with backoff while the master is out of reach.
    async fn enrol(&mut self, masters: &mut Masters) -> anyhow::Result<Session> {
        let shared = Arc::get_mut(&mut self.shared).expect("nothing shares the node before it runs");
        let config = &mut shared.config;
        let mut trust = credential::trust(&config.trust, &config.cache_dir);
        let join = match credential::start(config.token.as_deref(), &config.cache_dir, config.join.as_deref()) {
            Ok(Start::Credential(token)) => {
                if config.join.is_some() && config.token.is_none() {
                    tracing::info!("using the credential saved in the cache dir; the join token is not needed");
                }
                return Ok(Session { token, trust });
            }
            Ok(Start::Join(join)) => join,
            Err(why) => anyhow::bail!("{why}"),
        };
        let mut backoff = RETRY_MIN;
        loop {
            let url = masters.current().to_owned();
            match self::join(config, &url, &shared.identity, &join, &mut trust).await {
                Ok(token) => return Ok(Session { token, trust }),
                Err(rpc::Ended::Refused(why)) => anyhow::bail!("the master refused the join token: {why}"),
                Err(rpc::Ended::NameTaken(why) | rpc::Ended::Untrusted(why)) => anyhow::bail!("{why}"),
                Err(rpc::Ended::Lost(why)) => {
                    tracing::warn!(retry_in = ?backoff, "cannot join yet: {why}");
                    masters.next();
                }
                Err(rpc::Ended::Standby(why, standby)) => {
                    tracing::warn!(retry_in = ?backoff, "cannot join yet: {why}");
                    follow(masters, &standby);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    /// Serves whichever of `masters` leads, one session after another.
    async fn reconnect_loop(
        &self,
        session: &Session,
        masters: &mut Masters,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut backoff = RETRY_MIN;
        // Whether any session of this process has registered: a name taken
        // at the first registration is the volunteer's to fix, and ends the
        // node; later, it is a stale session of ours the master drops soon.
        let mut ever_registered = false;
        let config = &self.shared.config;
        loop {
            let mut registered = false;
            let client = masters
                .connect(&session.trust)
                .await
                .and_then(|channel| grid_core::connect::master(channel, Some(&session.token)));
            let outcome = match client {
                Ok(client) => rpc::session(&self.shared, client, || registered = true, stop.clone()).await,
                Err(e) => Err(rpc::Ended::Lost(e)),
            };
            if registered {
                backoff = RETRY_MIN;
                ever_registered = true;
            }
            match &outcome {
                Err(rpc::Ended::NameTaken(why)) if !ever_registered => {
                    self.stop_held().await;
                    return Err(anyhow::anyhow!("{why}"));
                }
                Err(rpc::Ended::NameTaken(why)) => tracing::warn!(retry_in = ?backoff, "refused: {why}"),
                Err(rpc::Ended::Refused(why)) => {
                    let saved = config.cache_dir.join(credential::TOKEN_FILE);
                    let hint = match config.token {
                        None => format!(" (to join again, remove `{}` and start with --join TOKEN)", saved.display()),
                        Some(_) => String::new(),
                    };
                    self.stop_held().await;
                    return Err(anyhow::anyhow!("the master refused the node's credential: {why}{hint}"));
                }
                Err(rpc::Ended::Lost(why) | rpc::Ended::Untrusted(why)) => {
                    tracing::warn!(retry_in = ?backoff, "{why}");
                    // A master that served us is tried again first; one
                    // that never did gives way to the next.
                    if !registered {
                        masters.next();
                    }
                }
                Err(rpc::Ended::Standby(why, standby)) => {
                    tracing::warn!(retry_in = ?backoff, "{why}");
                    follow(masters, standby);
                }
                Ok(()) => {}
            }
            // A stop, or a session that ended for it: nothing is held for a
            // next session. Otherwise the held jobs run on, and those held
            // too long without a master are stopped.
            if outcome.is_ok() || *stop.borrow() {
                self.stop_held().await;
                return Ok(());
            }
            self.give_up_on_unclaimed();
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {
                    self.stop_held().await;
                    return Ok(());
                }
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }
}

/// The shortest and longest waits between attempts to reach the master.
impl Node {
    /// Stops the held jobs no master has taken back within
    /// [`outbox::REATTACH_WITHIN`] of losing their session.
    fn give_up_on_unclaimed(&self) {
        let now = std::time::Instant::now();
        for outbox in self.shared.outboxes.iter() {
            if outbox.detached_for(now).is_some_and(|d| d >= outbox::REATTACH_WITHIN) {
                tracing::warn!(job = %outbox.job_id(), "no master took the job back; stopped");
                rpc::drop_held(&self.shared, outbox.value());
            }
        }
    }

    /// The node stops with no master to hand its jobs to: each held job is
    /// stopped, and waited for.
    async fn stop_held(&self) {
        for outbox in self.shared.outboxes.iter() {
            rpc::drop_held(&self.shared, outbox.value());
        }
        while !self.shared.running.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Moves to the leader a standby named, else to the next master.
fn follow(masters: &mut Masters, standby: &Standby) {
    match standby {
        Standby::Leader(url) if masters.follow(url) => tracing::info!(leader = %url, "following the leader"),
        _ => masters.next(),
    }
}

/// What the node's sessions use: its credential and whom it trusts.
struct Session {
    token: String,
    trust: Trust,
}

/// One attempt to trade `join` for a node credential with the master at
/// `url`: learns the master's
/// CA from the join token's pin when the node trusts no CA yet (and saves
/// it), then joins, saves the credential and takes the name the master
/// gives. Returns the credential.
async fn join(
    config: &mut NodeConfig,
    url: &str,
    identity: &str,
    join: &grid_core::JoinToken,
    trust: &mut Trust,
) -> Result<String, rpc::Ended> {
    if trust.ca_pem.is_none()
        && let Some(pin) = join.ca_pin
    {
        // Only a master out of reach is worth trying again; one whose CA
        // is not the pinned one is another master, or someone in between.
        let pem = grid_core::connect::fetch_ca(url, &pin).await.map_err(|why| {
            match why.starts_with("cannot reach master") {
                true => rpc::Ended::Lost(why),
                false => rpc::Ended::Untrusted(why),
            }
        })?;
        let path = credential::save_ca(&config.cache_dir, &pem)?;
        tracing::info!(ca = %path.display(), "learned the master's CA from the join token's pin");
        trust.ca_pem = Some(pem);
    }
    if trust.ca_pin.is_none() {
        trust.ca_pin = join.ca_pin;
    }
    let joined = rpc::join(url, trust, &join.to_string(), &config.name, identity).await?;
    let path = credential::save_token(&config.cache_dir, &joined.token)?;
    tracing::info!(
        name = %joined.name,
        owner = joined.owner.as_deref().unwrap_or("none: a public node"),
        credential = %path.display(),
        "joined the grid"
    );
    config.name = joined.name;
    Ok(joined.token)
}

/// The metrics server's task, stopped when dropped.
struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Scrapes served at once; past them, a connection waits in the backlog.
const METRICS_CONNECTIONS: usize = 16;
/// How long a scraper may take to send its request's headers.
const METRICS_HEADERS_WITHIN: Duration = Duration::from_secs(5);
/// How long one connection to the metrics server may stay open.
const METRICS_CONNECTION_LIFE: Duration = Duration::from_secs(30);

/// Serves `/metrics` on `listener` until the task is dropped or aborted;
/// every other path is not found. At most [`METRICS_CONNECTIONS`] are
/// served at once, each for at most [`METRICS_CONNECTION_LIFE`], so a
/// scraper that stops reading, or a stranger who opens connections and
/// says nothing, holds none of the node's file descriptors for long.
async fn serve_metrics(listener: tokio::net::TcpListener, node: Arc<NodeShared>) {
    use axum::routing::get;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let node = node.clone();
            async move {
                let text = node.metrics.render(&node.ledger.snapshot());
                ([(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text)
            }
        }),
    );
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(METRICS_HEADERS_WITHIN);
    let builder = Arc::new(builder);
    let open = Arc::new(tokio::sync::Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else { return };
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let serving = builder.serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(METRICS_CONNECTION_LIFE, serving).await;
        });
    }
}

/// Logs what the node has given, once a period.
async fn summarize(node: Arc<NodeShared>) {
    let mut tick = tokio::time::interval(node.config.summary_every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = node.ledger.snapshot();
        let c = node.ledger.capacity();
        tracing::info!(
            "summary: {} jobs run, {} fuel burned, {}/{} slots busy, {} fuel left of {}/h",
            s.jobs_run,
            grid_core::format_fuel(s.fuel_burned),
            s.running,
            c.slots,
            grid_core::format_fuel(s.fuel_available),
            grid_core::format_fuel(c.fuel_quota.rate_per_hour)
        );
    }
}
